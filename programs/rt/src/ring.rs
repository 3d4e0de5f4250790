//! A thread's view of its capability ring (layout in [`abi::ring`]).
//!
//! [`Ring`] only moves entries: [`Ring::push`] writes an SQE and publishes
//! `sq_tail` (release); [`Ring::pop`] reads `cq_tail` (acquire), copies the
//! CQE out and publishes `cq_head` (release). Entering the kernel is
//! [`crate::sys::enter`]. A ring belongs to one thread; nothing here is
//! safe to share between threads.
//!
//! SQPOLL: in that mode the kernel's poller consumes what [`Ring::push`]
//! publishes; the submitter checks [`Ring::needs_wakeup`] (full fence,
//! then the NEED_WAKEUP flag) and enters the kernel only when the poller
//! sleeps ([`crate::sys::submit`] does both; rt's waits spin briefly on
//! the ring before they enter the kernel, see `sys::ring_enter`).

use abi::ring::{
    pending, slot, Cqe, RingHeader, Sqe, CQE_BYTES, CQ_ENTRIES, CQ_OFFSET, RING_FLAG_NEED_WAKEUP,
    RING_FLAG_SQPOLL, SQE_BYTES, SQ_ENTRIES, SQ_OFFSET,
};
use core::sync::atomic::Ordering;

/// A ring region shared with the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    base: usize,
}

impl Ring {
    /// Wraps the ring region at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the 8-byte aligned start of a ring region of
    /// [`abi::ring::RING_BYTES`], mapped read-write for as long as the
    /// returned value (and its copies) is used, and only the calling thread
    /// may use it from user space.
    pub const unsafe fn from_raw(base: usize) -> Ring {
        Ring { base }
    }

    /// The region's address.
    pub fn addr(&self) -> usize {
        self.base
    }

    /// The shared header.
    pub fn header(&self) -> &RingHeader {
        // SAFETY: `from_raw`'s contract: the region is mapped and aligned;
        // the header consists of atomics, so shared access is sound.
        unsafe { &*(self.base as *const RingHeader) }
    }

    /// Submissions published but not yet consumed by the kernel (`None` if
    /// the indices are corrupt).
    pub fn sq_pending(&self) -> Option<u32> {
        let h = self.header();
        pending(
            h.sq_head.load(Ordering::Acquire),
            h.sq_tail.load(Ordering::Relaxed),
            SQ_ENTRIES,
        )
    }

    /// Completions waiting to be popped (`None` if the indices are corrupt).
    pub fn cq_ready(&self) -> Option<u32> {
        let h = self.header();
        pending(
            h.cq_head.load(Ordering::Relaxed),
            h.cq_tail.load(Ordering::Acquire),
            CQ_ENTRIES,
        )
    }

    /// Writes `sqe` into the next free SQ entry and publishes it. Returns
    /// false (and writes nothing) when the SQ is full.
    pub fn push(&self, sqe: &Sqe) -> bool {
        let h = self.header();
        let head = h.sq_head.load(Ordering::Acquire);
        let tail = h.sq_tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(head) >= SQ_ENTRIES {
            return false;
        }
        let at =
            self.base + SQ_OFFSET as usize + slot(tail, SQ_ENTRIES) as usize * SQE_BYTES as usize;
        let dst = at as *mut Sqe;
        // Field by field: one volatile store of the 64-byte struct was seen
        // lowered to partial byte stores with +sse (scripts/build-programs.sh).
        // SAFETY: `at` is an aligned SQE slot inside the mapped region (slot
        // < SQ_ENTRIES); the kernel reads it only after we publish the tail.
        unsafe {
            core::ptr::write_volatile(&raw mut (*dst).opcode, sqe.opcode);
            core::ptr::write_volatile(&raw mut (*dst).cap, sqe.cap);
            core::ptr::write_volatile(&raw mut (*dst).user_data, sqe.user_data);
            for (i, a) in sqe.args.iter().enumerate() {
                core::ptr::write_volatile(&raw mut (*dst).args[i], *a);
            }
        }
        h.sq_tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Whether the kernel consumes this ring in SQPOLL mode (its flag in
    /// the header; user memory, so only a hint: a ring that is not SQPOLL
    /// consumes at the next `cap_enter` anyway).
    pub fn is_sqpoll(&self) -> bool {
        self.header().flags.load(Ordering::Relaxed) & RING_FLAG_SQPOLL != 0
    }

    /// The submitter's half of the NEED_WAKEUP protocol (abi::ring): call
    /// after publishing `sq_tail`. A full fence orders the tail store
    /// before the flag load; true when the poller sleeps and the caller
    /// must `cap_enter` with `ENTER_SQ_WAKEUP`.
    pub fn needs_wakeup(&self) -> bool {
        core::sync::atomic::fence(Ordering::SeqCst);
        self.header().flags.load(Ordering::Relaxed) & RING_FLAG_NEED_WAKEUP != 0
    }

    /// Takes the oldest completion, if any.
    pub fn pop(&self) -> Option<Cqe> {
        let h = self.header();
        let head = h.cq_head.load(Ordering::Relaxed);
        let tail = h.cq_tail.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let at =
            self.base + CQ_OFFSET as usize + slot(head, CQ_ENTRIES) as usize * CQE_BYTES as usize;
        let src = at as *const Cqe;
        // SAFETY: `at` is an aligned CQE slot inside the mapped region; the
        // kernel published it (acquire on cq_tail) and will not reuse it
        // until we advance cq_head below. Field by field, like `push`.
        let cqe = unsafe {
            Cqe {
                user_data: core::ptr::read_volatile(&raw const (*src).user_data),
                result: core::ptr::read_volatile(&raw const (*src).result),
                value0: core::ptr::read_volatile(&raw const (*src).value0),
                value1: core::ptr::read_volatile(&raw const (*src).value1),
            }
        };
        h.cq_head.store(head.wrapping_add(1), Ordering::Release);
        Some(cqe)
    }

    /// Takes the oldest completion carrying `user_data`, wherever it sits
    /// in the CQ; the completions before it keep their order and stay.
    ///
    /// Entries between `cq_head` and `cq_tail` belong to user space until
    /// it advances `cq_head`, so the ones before the match move up one
    /// slot and the head advances by one (release): the kernel reuses only
    /// the slot freed at the old head. `None` when no CQ entry matches or
    /// the indices are corrupt.
    pub fn take(&self, user_data: u64) -> Option<Cqe> {
        let h = self.header();
        let head = h.cq_head.load(Ordering::Relaxed);
        let tail = h.cq_tail.load(Ordering::Acquire);
        let ready = pending(head, tail, CQ_ENTRIES)?;
        let at =
            (0..ready).find(|&i| self.read_cqe(head.wrapping_add(i)).user_data == user_data)?;
        let found = self.read_cqe(head.wrapping_add(at));
        for i in (0..at).rev() {
            let c = self.read_cqe(head.wrapping_add(i));
            self.write_cqe(head.wrapping_add(i + 1), &c);
        }
        h.cq_head.store(head.wrapping_add(1), Ordering::Release);
        Some(found)
    }

    fn cqe_ptr(&self, index: u32) -> *mut Cqe {
        (self.base + CQ_OFFSET as usize + slot(index, CQ_ENTRIES) as usize * CQE_BYTES as usize)
            as *mut Cqe
    }

    /// Reads the CQE at free-running `index` (which the caller knows lies
    /// between head and tail).
    fn read_cqe(&self, index: u32) -> Cqe {
        let src = self.cqe_ptr(index);
        // SAFETY: an aligned CQE slot inside the mapped region (slot <
        // CQ_ENTRIES), published by the kernel and not yet given back.
        unsafe {
            Cqe {
                user_data: core::ptr::read_volatile(&raw const (*src).user_data),
                result: core::ptr::read_volatile(&raw const (*src).result),
                value0: core::ptr::read_volatile(&raw const (*src).value0),
                value1: core::ptr::read_volatile(&raw const (*src).value1),
            }
        }
    }

    /// Rewrites the CQE at free-running `index`, a slot user space still
    /// owns (between head and tail).
    fn write_cqe(&self, index: u32, c: &Cqe) {
        let dst = self.cqe_ptr(index);
        // SAFETY: an aligned CQE slot inside the mapped region that the
        // kernel will not touch until cq_head passes it.
        unsafe {
            core::ptr::write_volatile(&raw mut (*dst).user_data, c.user_data);
            core::ptr::write_volatile(&raw mut (*dst).result, c.result);
            core::ptr::write_volatile(&raw mut (*dst).value0, c.value0);
            core::ptr::write_volatile(&raw mut (*dst).value1, c.value1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ring::RING_BYTES;

    /// A ring region in host memory plus a fake kernel that completes every
    /// submission with `result = user_data * 2`.
    struct Fake {
        mem: Vec<u64>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                mem: vec![0; RING_BYTES as usize / 8],
            }
        }

        fn ring(&mut self) -> Ring {
            // SAFETY: the Vec outlives the test's use of the ring.
            unsafe { Ring::from_raw(self.mem.as_mut_ptr() as usize) }
        }

        /// Consumes every submission, posting as many completions as fit.
        fn kernel_step(&mut self) -> u32 {
            let r = self.ring();
            let h = r.header();
            let mut done = 0;
            loop {
                let sh = h.sq_head.load(Ordering::Relaxed);
                let st = h.sq_tail.load(Ordering::Acquire);
                let ch = h.cq_head.load(Ordering::Acquire);
                let ct = h.cq_tail.load(Ordering::Relaxed);
                if sh == st || ct.wrapping_sub(ch) == CQ_ENTRIES {
                    return done;
                }
                let at = r.base + SQ_OFFSET as usize + slot(sh, SQ_ENTRIES) as usize * 64;
                // SAFETY: inside the fake region.
                let sqe = unsafe { *(at as *const Sqe) };
                h.sq_head.store(sh.wrapping_add(1), Ordering::Release);
                let cat = r.base + CQ_OFFSET as usize + slot(ct, CQ_ENTRIES) as usize * 32;
                let cqe = Cqe {
                    user_data: sqe.user_data,
                    result: sqe.user_data as i64 * 2,
                    ..Cqe::default()
                };
                // SAFETY: inside the fake region.
                unsafe { *(cat as *mut Cqe) = cqe };
                h.cq_tail.store(ct.wrapping_add(1), Ordering::Release);
                done += 1;
            }
        }
    }

    #[test]
    fn push_until_full_then_drain() {
        let mut f = Fake::new();
        let r = f.ring();
        for i in 0..SQ_ENTRIES {
            assert!(r.push(&Sqe {
                user_data: u64::from(i),
                ..Sqe::default()
            }));
        }
        assert!(!r.push(&Sqe::default()), "SQ must report full");
        assert_eq!(r.sq_pending(), Some(SQ_ENTRIES));
        assert_eq!(f.kernel_step(), SQ_ENTRIES);
        assert_eq!(r.cq_ready(), Some(SQ_ENTRIES));
        for i in 0..SQ_ENTRIES {
            let c = r.pop().expect("completion");
            assert_eq!(c.user_data, u64::from(i));
            assert_eq!(c.result, i64::from(i) * 2);
        }
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn indices_wrap_around_u32() {
        let mut f = Fake::new();
        let r = f.ring();
        let start = u32::MAX - 5;
        let h = r.header();
        h.sq_head.store(start, Ordering::Relaxed);
        h.sq_tail.store(start, Ordering::Relaxed);
        h.cq_head.store(start, Ordering::Relaxed);
        h.cq_tail.store(start, Ordering::Relaxed);
        let mut next = 0u64;
        for _ in 0..10 {
            for _ in 0..7 {
                assert!(r.push(&Sqe {
                    user_data: next,
                    ..Sqe::default()
                }));
                next += 1;
            }
            f.kernel_step();
        }
        for want in 0..next {
            assert_eq!(r.pop().map(|c| c.user_data), Some(want));
        }
        assert!(h.sq_tail.load(Ordering::Relaxed) < start, "indices wrapped");
    }

    #[test]
    fn full_cq_leaves_submissions_pending() {
        let mut f = Fake::new();
        let r = f.ring();
        let mut pushed = 0u64;
        while pushed < u64::from(CQ_ENTRIES) + 10 {
            if r.push(&Sqe {
                user_data: pushed,
                ..Sqe::default()
            }) {
                pushed += 1;
            } else {
                f.kernel_step();
            }
        }
        f.kernel_step();
        assert_eq!(r.cq_ready(), Some(CQ_ENTRIES));
        assert_eq!(r.sq_pending(), Some(10));
        let mut seen = 0;
        while seen < pushed {
            match r.pop() {
                Some(c) => {
                    assert_eq!(c.user_data, seen);
                    seen += 1;
                }
                None => {
                    f.kernel_step();
                }
            }
        }
    }

    #[test]
    fn take_from_the_middle_keeps_the_rest_in_order() {
        let mut f = Fake::new();
        let r = f.ring();
        // Start near the u32 wrap so the shifted entries cross it.
        let start = u32::MAX - 2;
        let h = r.header();
        for a in [&h.sq_head, &h.sq_tail, &h.cq_head, &h.cq_tail] {
            a.store(start, Ordering::Relaxed);
        }
        for ud in 0..6 {
            assert!(r.push(&Sqe {
                user_data: ud,
                ..Sqe::default()
            }));
        }
        f.kernel_step();
        assert_eq!(r.take(4).map(|c| c.result), Some(8));
        assert_eq!(r.take(4), None);
        assert_eq!(r.take(99), None);
        assert_eq!(r.cq_ready(), Some(5));
        assert_eq!(r.take(0).map(|c| c.user_data), Some(0));
        // The kernel reuses freed slots without clobbering what is left.
        for ud in 10..(10 + u64::from(CQ_ENTRIES) - 4) {
            if !r.push(&Sqe {
                user_data: ud,
                ..Sqe::default()
            }) {
                f.kernel_step();
                assert!(r.push(&Sqe {
                    user_data: ud,
                    ..Sqe::default()
                }));
            }
        }
        f.kernel_step();
        assert_eq!(r.cq_ready(), Some(CQ_ENTRIES));
        let mut order = Vec::new();
        while let Some(c) = r.pop() {
            order.push(c.user_data);
        }
        let want: Vec<u64> = [1, 2, 3, 5]
            .into_iter()
            .chain(10..(10 + u64::from(CQ_ENTRIES) - 4))
            .collect();
        assert_eq!(order, want);
    }

    #[test]
    fn corrupt_indices_detected() {
        let mut f = Fake::new();
        let r = f.ring();
        r.header().sq_tail.store(1000, Ordering::Relaxed);
        assert_eq!(r.sq_pending(), None);
    }
}
