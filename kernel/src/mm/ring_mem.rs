//! The kernel's view of one thread's ring pages.
//!
//! A ring is three kernel-allocated frames mapped into the thread's process
//! (abi::ring layout: header page, SQ page, CQ page). The kernel reaches
//! them through the direct map from any CPU, without switching address
//! spaces, so a completion can be posted to a thread running or sleeping
//! anywhere. User space writes these pages concurrently, so every read
//! here is a copy or an atomic load, and every value read is untrusted.
#![allow(unsafe_code)]

use core::sync::atomic::Ordering;

use abi::ring::{Cqe, RingHeader, Sqe, CQ_ENTRIES, SQ_ENTRIES};

use super::frame::{self, Frame};

/// The three frames of a ring. Owned: freed by [`RingPages::free`] once the
/// user mapping is gone and shot down.
pub struct RingPages {
    frames: [Frame; 3],
}

impl RingPages {
    /// Allocates and zeroes the frames and fills in the header's sizes.
    pub fn new() -> Option<RingPages> {
        let mut frames = [Frame::from_phys(0); 3];
        for i in 0..3 {
            match frame::alloc() {
                Some(f) => {
                    crate::arch::zero_page(f.virt());
                    frames[i] = f;
                }
                None => {
                    for f in &frames[..i] {
                        frame::free(*f);
                    }
                    return None;
                }
            }
        }
        let r = RingPages { frames };
        r.header().sq_entries.store(SQ_ENTRIES, Ordering::Relaxed);
        r.header().cq_entries.store(CQ_ENTRIES, Ordering::Relaxed);
        Some(r)
    }

    /// The frames, for mapping into user space.
    pub fn frames(&self) -> [Frame; 3] {
        self.frames
    }

    fn header(&self) -> &RingHeader {
        // SAFETY: frame 0 is ours (allocated in `new`, freed only by `free`
        // which consumes self), page-aligned and direct-mapped; RingHeader is
        // a repr(C) struct of atomics, valid for any bit pattern.
        unsafe { &*(self.frames[0].virt() as *const RingHeader) }
    }

    /// The user's `sq_tail` (acquire: SQEs before it are visible).
    pub fn sq_tail(&self) -> u32 {
        self.header().sq_tail.load(Ordering::Acquire)
    }

    /// Publishes the kernel's `sq_head`.
    pub fn set_sq_head(&self, v: u32) {
        self.header().sq_head.store(v, Ordering::Release);
    }

    /// The user's `cq_head` (acquire).
    pub fn cq_head(&self) -> u32 {
        self.header().cq_head.load(Ordering::Acquire)
    }

    /// Publishes `cq_tail` (release: the CQEs before it are written).
    pub fn set_cq_tail(&self, v: u32) {
        self.header().cq_tail.store(v, Ordering::Release);
    }

    /// Publishes the header flags (SeqCst: the poller's half of the
    /// NEED_WAKEUP protocol, abi::ring, fences right after).
    pub fn set_flags(&self, v: u32) {
        self.header().flags.store(v, Ordering::SeqCst);
    }

    /// Publishes the overflow count.
    pub fn set_cq_overflow(&self, v: u32) {
        self.header().cq_overflow.store(v, Ordering::Relaxed);
    }

    /// Copies SQE `index % SQ_ENTRIES`.
    pub fn read_sqe(&self, index: u32) -> Sqe {
        let slot = abi::ring::slot(index, SQ_ENTRIES) as usize;
        let base = self.frames[1].virt() as *const Sqe;
        // SAFETY: slot < SQ_ENTRIES and 64 * 64 bytes fill frame 1 exactly;
        // a volatile copy of plain integers cannot observe invalid values.
        unsafe { core::ptr::read_volatile(base.add(slot)) }
    }

    /// Writes CQE `index % CQ_ENTRIES`.
    pub fn write_cqe(&self, index: u32, cqe: &Cqe) {
        let slot = abi::ring::slot(index, CQ_ENTRIES) as usize;
        let base = self.frames[2].virt() as *mut Cqe;
        // SAFETY: slot < CQ_ENTRIES and 128 * 32 bytes fill frame 2 exactly.
        unsafe { core::ptr::write_volatile(base.add(slot), *cqe) };
    }

    /// Gives the frames back. The caller has removed the user mapping and
    /// shot it down.
    pub fn free(self) {
        for f in self.frames {
            frame::free(f);
        }
    }
}
