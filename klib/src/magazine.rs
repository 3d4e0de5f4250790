//! Magazines: a small per-CPU stack of free items in front of a shared
//! pool, the bookkeeping behind the kernel's per-CPU frame caches
//! (`kernel/src/mm/frame.rs`) and heap object caches
//! (`kernel/src/mm/heap.rs`).
//!
//! An allocation pops from the CPU's own magazine; only when it is empty
//! does the CPU go to the pool, and then it takes a whole batch in one
//! visit ([`Magazine::refill`]). A free pushes onto the magazine; only
//! when the magazine is at its limit does the CPU give a batch back
//! ([`Magazine::drain`]) before it pushes. So a CPU that allocates and
//! frees in a steady state never touches the pool, and one that only
//! allocates (or only frees) touches it once per batch.
//!
//! The magazine holds at most `N` items; a caller may keep it below that
//! with a smaller `limit` (the heap's large size classes hold fewer
//! objects). It never allocates, and an empty one is all zeros (so an
//! array of them lives in `.bss`). Items moved between the pool and a
//! magazine are conserved: every item is in exactly one place, which is
//! what keeps the kernel's free counts exact (tested below).

/// At most `N` free items, last in, first out (the item freed last is
/// the one most likely still in this CPU's cache).
pub struct Magazine<T: Copy, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy, const N: usize> Magazine<T, N> {
    /// An empty magazine; `fill` only initializes unused storage.
    pub const fn new(fill: T) -> Self {
        Magazine {
            items: [fill; N],
            len: 0,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether it holds `limit` items (or `N`) and a free must drain first.
    pub fn is_full(&self, limit: usize) -> bool {
        self.len >= limit.min(N)
    }

    /// Takes the item freed last.
    pub fn pop(&mut self) -> Option<T> {
        self.len = self.len.checked_sub(1)?;
        Some(self.items[self.len])
    }

    /// Adds an item; gives it back when the magazine is at `limit` (or `N`).
    pub fn push(&mut self, item: T, limit: usize) -> Result<(), T> {
        if self.is_full(limit) {
            return Err(item);
        }
        self.items[self.len] = item;
        self.len += 1;
        Ok(())
    }

    /// Takes up to `batch` items from the pool (`take` answers `None` when
    /// it has no more), never holding more than `N`. Returns how many.
    pub fn refill(&mut self, batch: usize, mut take: impl FnMut() -> Option<T>) -> usize {
        let mut n = 0;
        while n < batch && self.len < N {
            let Some(item) = take() else { break };
            self.items[self.len] = item;
            self.len += 1;
            n += 1;
        }
        n
    }

    /// Gives items back to the pool (`give`) until at most `keep` remain;
    /// the oldest go first. Returns how many it gave.
    pub fn drain(&mut self, keep: usize, mut give: impl FnMut(T)) -> usize {
        let keep = keep.min(self.len);
        let n = self.len - keep;
        for &item in &self.items[..n] {
            give(item);
        }
        self.items.copy_within(n..self.len, 0);
        self.len = keep;
        n
    }
}

/// The batch a magazine of `limit` items refills and drains by: half of
/// it, at least one, so that after either the magazine can serve a run
/// of allocations and a run of frees before it visits the pool again.
pub const fn batch(limit: usize) -> usize {
    if limit < 2 {
        1
    } else {
        limit / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_is_last_in_first_out_and_empty_is_none() {
        let mut m: Magazine<u64, 4> = Magazine::new(0);
        assert_eq!(m.pop(), None);
        m.push(1, 4).unwrap();
        m.push(2, 4).unwrap();
        assert_eq!(m.pop(), Some(2));
        assert_eq!(m.pop(), Some(1));
        assert_eq!(m.pop(), None);
        assert!(m.is_empty());
    }

    #[test]
    fn push_respects_the_limit_and_the_capacity() {
        let mut m: Magazine<u64, 4> = Magazine::new(0);
        for i in 0..2 {
            m.push(i, 2).unwrap();
        }
        assert_eq!(m.push(9, 2), Err(9), "limit 2");
        assert!(m.is_full(2));
        m.push(2, 100).unwrap();
        m.push(3, 100).unwrap();
        assert_eq!(m.push(4, 100), Err(4), "capacity 4 caps a larger limit");
    }

    #[test]
    fn refill_takes_a_batch_and_stops_when_the_pool_runs_dry() {
        let mut pool: Vec<u64> = (0..5).collect();
        let mut m: Magazine<u64, 8> = Magazine::new(0);
        assert_eq!(m.refill(3, || pool.pop()), 3);
        assert_eq!((m.len(), pool.len()), (3, 2));
        assert_eq!(m.refill(10, || pool.pop()), 2, "only two left");
        assert_eq!((m.len(), pool.len()), (5, 0));
        assert_eq!(m.refill(10, || pool.pop()), 0);
    }

    #[test]
    fn refill_never_overfills() {
        let mut m: Magazine<u64, 4> = Magazine::new(0);
        let mut next = 0;
        let n = m.refill(100, || {
            next += 1;
            Some(next)
        });
        assert_eq!(n, 4);
        assert_eq!(next, 4, "no item taken that could not be stored");
    }

    #[test]
    fn drain_gives_the_oldest_back_and_keeps_the_newest() {
        let mut m: Magazine<u64, 8> = Magazine::new(0);
        for i in 0..6 {
            m.push(i, 8).unwrap();
        }
        let mut back = Vec::new();
        assert_eq!(m.drain(2, |x| back.push(x)), 4);
        assert_eq!(back, vec![0, 1, 2, 3]);
        assert_eq!(m.pop(), Some(5));
        assert_eq!(m.pop(), Some(4));
        assert_eq!(m.pop(), None);
        assert_eq!(m.drain(3, |_| panic!("nothing to give")), 0);
    }

    #[test]
    fn batch_is_half_and_at_least_one() {
        assert_eq!(batch(64), 32);
        assert_eq!(batch(3), 1);
        assert_eq!(batch(1), 1);
        assert_eq!(batch(0), 1);
    }

    /// Several CPUs' magazines over one pool, driven by a fixed
    /// pseudo-random sequence of allocations and frees, with the kernel's
    /// policy (refill a batch when empty, drain a batch when full, take
    /// from other magazines when the pool is dry): every item is always in
    /// exactly one place, the free count (pool plus magazines) is exact at
    /// every step, and allocation fails only when nothing is free anywhere.
    #[test]
    fn items_are_conserved_across_cpus() {
        const CPUS: usize = 4;
        const LIMIT: usize = 8;
        const TOTAL: u64 = 40;
        let mut pool: Vec<u64> = (0..TOTAL).collect();
        let mut mags: Vec<Magazine<u64, 16>> = (0..CPUS).map(|_| Magazine::new(0)).collect();
        let mut held: Vec<u64> = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let cpu = (seed % CPUS as u64) as usize;
            let alloc = !(seed >> 8).is_multiple_of(3) || held.is_empty();
            if alloc {
                let m = &mut mags[cpu];
                let got = m.pop().or_else(|| {
                    m.refill(batch(LIMIT), || pool.pop());
                    m.pop()
                });
                let got = got.or_else(|| mags.iter_mut().find_map(|o| o.pop()));
                match got {
                    Some(x) => held.push(x),
                    None => assert_eq!(held.len() as u64, TOTAL, "failed with frames free"),
                }
            } else {
                let x = held.swap_remove((seed >> 16) as usize % held.len());
                let m = &mut mags[cpu];
                if m.is_full(LIMIT) {
                    m.drain(LIMIT - batch(LIMIT), |y| pool.push(y));
                }
                m.push(x, LIMIT).unwrap();
            }
            let free = pool.len() + mags.iter().map(|m| m.len()).sum::<usize>();
            assert_eq!(free + held.len(), TOTAL as usize);
        }
        // Everything given back: every item present exactly once.
        for m in &mut mags {
            m.drain(0, |y| pool.push(y));
        }
        pool.extend(held);
        pool.sort_unstable();
        assert_eq!(pool, (0..TOTAL).collect::<Vec<_>>());
    }
}
