//! Completions that arrived while the thread waited for another one.
//!
//! [`crate::sys::call`] waits for the completion carrying its own
//! `user_data`; anything else it pops from the CQ on the way is kept here,
//! in arrival order, until someone asks for it. Fixed capacity, no heap.

use abi::ring::Cqe;

/// Most completions one thread can have parked here at once.
pub const STASH_ENTRIES: usize = 32;

/// A small ordered buffer of completions, matched by `user_data`.
#[derive(Debug)]
pub struct Stash<const N: usize> {
    entries: [Cqe; N],
    len: usize,
}

impl<const N: usize> Default for Stash<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Stash<N> {
    /// An empty stash.
    pub const fn new() -> Self {
        Stash {
            entries: [Cqe {
                user_data: 0,
                result: 0,
                value0: 0,
                value1: 0,
            }; N],
            len: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `cqe`; gives it back when the stash is full.
    pub fn put(&mut self, cqe: Cqe) -> Result<(), Cqe> {
        if self.len == N {
            return Err(cqe);
        }
        self.entries[self.len] = cqe;
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the oldest entry with this `user_data`.
    pub fn take(&mut self, user_data: u64) -> Option<Cqe> {
        let i = self.entries[..self.len]
            .iter()
            .position(|c| c.user_data == user_data)?;
        Some(self.remove(i))
    }

    /// Removes and returns the oldest entry.
    pub fn take_first(&mut self) -> Option<Cqe> {
        (self.len > 0).then(|| self.remove(0))
    }

    fn remove(&mut self, i: usize) -> Cqe {
        let c = self.entries[i];
        self.entries.copy_within(i + 1..self.len, i);
        self.len -= 1;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cqe(user_data: u64, result: i64) -> Cqe {
        Cqe {
            user_data,
            result,
            ..Cqe::default()
        }
    }

    #[test]
    fn matches_out_of_order() {
        let mut s = Stash::<4>::new();
        s.put(cqe(3, 30)).unwrap();
        s.put(cqe(1, 10)).unwrap();
        s.put(cqe(2, 20)).unwrap();
        assert_eq!(s.take(2).map(|c| c.result), Some(20));
        assert_eq!(s.take(2), None);
        assert_eq!(s.take_first().map(|c| c.user_data), Some(3));
        assert_eq!(s.take(1).map(|c| c.result), Some(10));
        assert!(s.is_empty());
    }

    #[test]
    fn full_gives_back() {
        let mut s = Stash::<2>::new();
        s.put(cqe(1, 0)).unwrap();
        s.put(cqe(2, 0)).unwrap();
        assert_eq!(s.put(cqe(3, 0)), Err(cqe(3, 0)));
        assert_eq!(s.len(), 2);
        s.take(1).unwrap();
        s.put(cqe(3, 0)).unwrap();
        assert_eq!(s.take_first().map(|c| c.user_data), Some(2));
        assert_eq!(s.take_first().map(|c| c.user_data), Some(3));
    }

    #[test]
    fn duplicate_user_data_oldest_first() {
        let mut s = Stash::<4>::new();
        s.put(cqe(7, 1)).unwrap();
        s.put(cqe(7, 2)).unwrap();
        assert_eq!(s.take(7).map(|c| c.result), Some(1));
        assert_eq!(s.take(7).map(|c| c.result), Some(2));
    }
}
