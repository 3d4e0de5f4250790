//! Completions that arrived while the thread waited for another one.
//!
//! [`crate::sys::call`] waits for the completion carrying its own
//! `user_data`; anything else it pops from the CQ on the way is kept here,
//! in arrival order, until someone asks for it. Fixed capacity, no heap.
//!
//! A full stash is not an error: the CQ itself is the buffer. Once the
//! stash is full, [`collect`] stops popping and looks for the wanted
//! completion inside the CQ ([`Ring::take`]), and [`wait_for`] waits for
//! one completion more than the CQ already holds. Only when the stash
//! *and* the CQ are full of completions nobody asked for can nothing move
//! (the kernel consumes no submission while the CQ is full); then the call
//! fails with [`Error::Busy`] instead of panicking or spinning. The
//! operation itself may still complete later; its completion then waits in
//! the CQ like any other.
//!
//! The waiting logic lives here, apart from the system call (`enter` is a
//! parameter), so that host tests drive it against a fake kernel.

use crate::ring::Ring;
use abi::error::Error;
use abi::ring::{Cqe, CQ_ENTRIES, SQ_ENTRIES};
use abi::TIMEOUT_NEVER;

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

    /// Whether no more fits.
    pub fn is_full(&self) -> bool {
        self.len == N
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

/// A completion that reports `e` for `token`.
pub fn error_cqe(token: u64, e: Error) -> Cqe {
    Cqe {
        user_data: token,
        result: e.as_result(),
        value0: 0,
        value1: 0,
    }
}

/// Moves completions from the CQ to the stash, except the one carrying
/// `want`, which is returned. Stops popping when the stash is full and
/// then looks for `want` inside the CQ, leaving the rest there.
pub fn collect<const N: usize>(
    ring: &Ring,
    stash: &mut Stash<N>,
    want: Option<u64>,
) -> Option<Cqe> {
    collect_counting(ring, stash, want).0
}

/// [`collect`], and how many other completions it left in the CQ: 0 when
/// it emptied the CQ into the stash, else the CQ's count before its scan
/// for `want` (all of them someone else's). A waiter asks the kernel for
/// one more than that. Counting after the scan instead would be a lost
/// wakeup: a completion that lands between the scan and the count (an
/// SQPOLL poller, a timer on another CPU) would be counted as someone
/// else's, and the waiter would wait for one more that never comes.
pub fn collect_counting<const N: usize>(
    ring: &Ring,
    stash: &mut Stash<N>,
    want: Option<u64>,
) -> (Option<Cqe>, u32) {
    while !stash.is_full() {
        let Some(c) = ring.pop() else {
            return (None, 0);
        };
        if Some(c.user_data) == want {
            return (Some(c), 0);
        }
        // Cannot fail: the stash has room.
        let _ = stash.put(c);
    }
    let left = ring.cq_ready().unwrap_or(0);
    (want.and_then(|w| ring.take(w)), left)
}

/// Whether neither side can move: the stash and the CQ hold only
/// completions nobody asked for, so the kernel consumes no submission and
/// can post no completion.
fn stuck<const N: usize>(ring: &Ring, stash: &Stash<N>) -> bool {
    stash.is_full() && ring.cq_ready().is_none_or(|n| n >= CQ_ENTRIES)
}

/// Publishes `sqe`, making room in the SQ first if it is full (entering
/// the kernel with `enter(min_complete, timeout_ns)` and keeping what
/// completed). `Busy` when nothing can make room.
pub fn push<const N: usize>(
    ring: &Ring,
    stash: &mut Stash<N>,
    sqe: &abi::ring::Sqe,
    mut enter: impl FnMut(u64, u64) -> Result<u32, Error>,
) -> Result<(), Error> {
    while !ring.push(sqe) {
        collect(ring, stash, None);
        enter(0, 0)?;
        if ring.sq_pending() == Some(SQ_ENTRIES) && stuck(ring, stash) {
            return Err(Error::Busy);
        }
    }
    Ok(())
}

/// Waits for the completion carrying `token`: from the stash, the CQ, or
/// by entering the kernel until it arrives. A kernel error, or `Busy` when
/// nothing can move (see the module docs), comes back as a completion
/// carrying that error.
pub fn wait_for<const N: usize>(
    ring: &Ring,
    stash: &mut Stash<N>,
    token: u64,
    mut enter: impl FnMut(u64, u64) -> Result<u32, Error>,
) -> Cqe {
    loop {
        if let Some(c) = stash.take(token) {
            return c;
        }
        let (found, held) = collect_counting(ring, stash, Some(token));
        if let Some(c) = found {
            return c;
        }
        if stuck(ring, stash) {
            return error_cqe(token, Error::Busy);
        }
        // The `held` completions the scan saw are someone else's (they
        // stay in the CQ when the stash is full): wait for one more.
        if let Err(e) = enter(u64::from(held) + 1, TIMEOUT_NEVER) {
            return error_cqe(token, e);
        }
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

    /// A ring in host memory and a fake kernel behind `enter`: opcode 0
    /// completes at once (result = user_data), opcode 1 completes later,
    /// one per `enter`, newest first. No submission is consumed while the
    /// CQ is full (the real kernel's back-pressure).
    struct Kernel {
        mem: Vec<u64>,
        later: Vec<Cqe>,
        mins: Vec<u64>,
    }

    impl Kernel {
        fn new() -> Kernel {
            Kernel {
                mem: vec![0; abi::ring::RING_BYTES as usize / 8],
                later: Vec::new(),
                mins: Vec::new(),
            }
        }

        fn ring(&mut self) -> Ring {
            // SAFETY: the Vec outlives every use of the ring in a test.
            unsafe { Ring::from_raw(self.mem.as_mut_ptr() as usize) }
        }

        fn post(&mut self, c: Cqe) -> bool {
            let r = self.ring();
            let h = r.header();
            let tail = h.cq_tail.load(Ordering::Relaxed);
            if tail.wrapping_sub(h.cq_head.load(Ordering::Acquire)) >= CQ_ENTRIES {
                return false;
            }
            let at = r.addr()
                + abi::ring::CQ_OFFSET as usize
                + abi::ring::slot(tail, CQ_ENTRIES) as usize * 32;
            // SAFETY: a CQE slot inside the fake region.
            unsafe { *(at as *mut Cqe) = c };
            h.cq_tail.store(tail.wrapping_add(1), Ordering::Release);
            true
        }

        fn enter(&mut self, min: u64, _timeout: u64) -> Result<u32, Error> {
            self.mins.push(min);
            let r = self.ring();
            let h = r.header();
            loop {
                let head = h.sq_head.load(Ordering::Relaxed);
                if head == h.sq_tail.load(Ordering::Acquire) || r.cq_ready() == Some(CQ_ENTRIES) {
                    break;
                }
                let at = r.addr()
                    + abi::ring::SQ_OFFSET as usize
                    + abi::ring::slot(head, SQ_ENTRIES) as usize * 64;
                // SAFETY: an SQE slot inside the fake region.
                let sqe = unsafe { *(at as *const abi::ring::Sqe) };
                h.sq_head.store(head.wrapping_add(1), Ordering::Release);
                let c = cqe(sqe.user_data, sqe.user_data as i64);
                if sqe.opcode == 1 {
                    self.later.push(c);
                } else {
                    self.post(c);
                }
            }
            if let Some(c) = self.later.pop() {
                if !self.post(c) {
                    self.later.push(c);
                }
            }
            Ok(r.cq_ready().unwrap_or(0))
        }
    }

    use core::sync::atomic::Ordering;

    fn full_stash() -> Stash<STASH_ENTRIES> {
        let mut s = Stash::new();
        for i in 0..STASH_ENTRIES as u64 {
            s.put(cqe(1000 + i, 0)).unwrap();
        }
        s
    }

    #[test]
    fn full_stash_takes_the_wanted_one_from_the_cq() {
        let mut k = Kernel::new();
        let ring = k.ring();
        let mut s = full_stash();
        for ud in [1, 2, 3, 4, 5, 77, 6, 7] {
            assert!(k.post(cqe(ud, ud as i64)));
        }
        let c = wait_for(&ring, &mut s, 77, |m, t| k.enter(m, t));
        assert_eq!((c.user_data, c.result), (77, 77));
        assert_eq!(s.len(), STASH_ENTRIES);
        let rest: Vec<u64> = core::iter::from_fn(|| ring.pop())
            .map(|c| c.user_data)
            .collect();
        assert_eq!(rest, [1, 2, 3, 4, 5, 6, 7]);
        assert!(k.mins.is_empty(), "found without entering the kernel");
    }

    #[test]
    fn full_stash_waits_for_one_more_than_the_cq_holds() {
        let mut k = Kernel::new();
        let ring = k.ring();
        let mut s = full_stash();
        for ud in [1, 2, 3] {
            assert!(k.post(cqe(ud, 0)));
        }
        k.later.push(cqe(42, 42));
        let c = wait_for(&ring, &mut s, 42, |m, t| k.enter(m, t));
        assert_eq!(c.result, 42);
        assert_eq!(k.mins, [4]);
        assert_eq!(ring.cq_ready(), Some(3));
    }

    #[test]
    fn counting_names_only_what_the_scan_saw() {
        let mut k = Kernel::new();
        let ring = k.ring();
        // Room in the stash: the CQ is emptied, nothing is left to count.
        let mut s = Stash::<4>::new();
        for ud in [1, 2] {
            assert!(k.post(cqe(ud, 0)));
        }
        assert_eq!(collect_counting(&ring, &mut s, Some(9)), (None, 0));
        assert_eq!(s.len(), 2);
        // A completion landing after the scan is not counted as someone
        // else's: the next wait asks for exactly one more than before.
        assert!(k.post(cqe(9, 9)));
        let (found, left) = collect_counting(&ring, &mut s, Some(9));
        assert_eq!((found.map(|c| c.user_data), left), (Some(9), 0));
        // A full stash: the CQ's count before the scan.
        let mut f = full_stash();
        for ud in [3, 4, 5] {
            assert!(k.post(cqe(ud, 0)));
        }
        assert_eq!(collect_counting(&ring, &mut f, Some(9)), (None, 3));
    }

    #[test]
    fn full_stash_and_full_cq_is_busy_not_a_panic() {
        let mut k = Kernel::new();
        let ring = k.ring();
        let mut s = full_stash();
        for ud in 0..u64::from(CQ_ENTRIES) {
            assert!(k.post(cqe(ud, 0)));
        }
        let c = wait_for(&ring, &mut s, 9999, |m, t| k.enter(m, t));
        assert_eq!(Error::from_result(c.result), Some(Error::Busy));
        assert_eq!(c.user_data, 9999);
        // Nothing was lost or reordered.
        assert_eq!(
            (s.len(), ring.cq_ready()),
            (STASH_ENTRIES, Some(CQ_ENTRIES))
        );
        assert_eq!(ring.pop().map(|c| c.user_data), Some(0));
        // With one CQ slot free again, a deferred completion gets through.
        k.later.push(cqe(9999, 1));
        let c = wait_for(&ring, &mut s, 9999, |m, t| k.enter(m, t));
        assert_eq!(c.result, 1);
    }

    #[test]
    fn push_with_everything_full_is_busy() {
        let mut k = Kernel::new();
        let ring = k.ring();
        let mut s = full_stash();
        for ud in 0..u64::from(CQ_ENTRIES) {
            assert!(k.post(cqe(ud, 0)));
        }
        let sqe = abi::ring::Sqe::default();
        for _ in 0..SQ_ENTRIES {
            push(&ring, &mut s, &sqe, |m, t| k.enter(m, t)).unwrap();
        }
        assert_eq!(
            push(&ring, &mut s, &sqe, |m, t| k.enter(m, t)),
            Err(Error::Busy)
        );
        assert_eq!(ring.sq_pending(), Some(SQ_ENTRIES));
    }

    #[test]
    fn many_deferred_completions_arriving_in_reverse() {
        // 150 operations outstanding (more than the stash, less than the
        // stash plus the CQ), completing newest first: waiting for the
        // oldest must neither panic nor lose any.
        let mut k = Kernel::new();
        let ring = k.ring();
        let mut s = Stash::<STASH_ENTRIES>::new();
        let n = 150u64;
        for ud in 0..n {
            let sqe = abi::ring::Sqe {
                opcode: 1,
                user_data: ud,
                ..Default::default()
            };
            push(&ring, &mut s, &sqe, |m, t| k.enter(m, t)).unwrap();
        }
        k.enter(0, 0).unwrap();
        let mut seen = vec![false; n as usize];
        for ud in 0..n {
            let c = wait_for(&ring, &mut s, ud, |m, t| k.enter(m, t));
            assert_eq!(c.user_data, ud, "{c:?}");
            assert!(!seen[ud as usize]);
            seen[ud as usize] = true;
        }
        assert!(s.is_empty() && ring.pop().is_none());
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
