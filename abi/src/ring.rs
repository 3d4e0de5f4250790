//! Per-thread capability rings, in the style of io_uring.
//!
//! Each thread owns one ring region of [`RING_BYTES`], mapped into its
//! process at a kernel-chosen address (given to the thread at entry). The
//! region holds a [`RingHeader`] at offset 0, [`SQ_ENTRIES`] submission
//! entries at [`SQ_OFFSET`] and [`CQ_ENTRIES`] completion entries at
//! [`CQ_OFFSET`].
//!
//! Ordering (the io_uring rules):
//! - user space writes SQEs, then publishes them with a *release* store of
//!   `sq_tail`; the kernel reads `sq_tail` with *acquire*, consumes the
//!   entries and publishes `sq_head` with release.
//! - the kernel writes CQEs, then publishes them with a release store of
//!   `cq_tail`; user space reads `cq_tail` with acquire, reads the entries
//!   and publishes `cq_head` with release.
//! - indices are free-running `u32`s; an entry lives at `index % ENTRIES`.
//!
//! Overflow: the kernel never overwrites an unread CQE. A completion that
//! finds the CQ full goes to a per-thread kernel overflow list and is moved
//! into the CQ, in order, as soon as user space frees room (at the next
//! `cap_enter`). `cq_overflow` shows how many are waiting there. To bound
//! that list, `cap_enter` stops consuming submissions while the CQ plus the
//! overflow list could not take their completions (back-pressure): such
//! submissions simply stay in the SQ.
//!
//! SQPOLL (docs/proposals/ring-v2-smp-proposal.md): a ring set up with
//! [`RING_SETUP_SQPOLL`] (ThreadSpawn `args[4]`, or the RingMode op on the
//! caller's own ring) is consumed by the kernel's poller, not by
//! `cap_enter`. The kernel shows the mode as [`RING_FLAG_SQPOLL`] in
//! [`RingHeader::flags`]. After `sq_idle_ns` without new entries the
//! poller sets [`RING_FLAG_NEED_WAKEUP`] and stops polling the ring; the
//! submitter then calls `cap_enter` with [`ENTER_SQ_WAKEUP`] in `rdx`.
//!
//! NEED_WAKEUP ordering (a Dekker pair; both fences are SeqCst, `mfence`):
//! - submitter: write SQEs; store `sq_tail` (release); **fence(SeqCst)**;
//!   load `flags`; if NEED_WAKEUP is set, `cap_enter(.., ENTER_SQ_WAKEUP)`.
//! - poller going idle: set NEED_WAKEUP in `flags`; **fence(SeqCst)**;
//!   load `sq_tail` again; if it moved, clear the flag and keep polling,
//!   else stop polling the ring.
//!
//! One of the two loads sees the other's store, so either the poller sees
//! the new tail or the submitter sees the flag: no submission is stranded.
//! The state machine is checked exhaustively under a store-buffer (TSO)
//! model in [`crate::sqpoll`].

use core::sync::atomic::AtomicU32;

/// [`RingHeader::flags`]: the poller stopped polling this ring; submit
/// with `cap_enter(.., ENTER_SQ_WAKEUP)` (written by the kernel).
pub const RING_FLAG_NEED_WAKEUP: u32 = 1 << 0;
/// [`RingHeader::flags`]: the ring is in SQPOLL mode (written by the kernel).
pub const RING_FLAG_SQPOLL: u32 = 1 << 1;

/// Ring setup flag (ThreadSpawn `args[4]`, RingMode `args[0]`): SQPOLL.
pub const RING_SETUP_SQPOLL: u64 = 1 << 0;
/// Every ring setup flag the kernel knows; other bits are `Invalid`.
pub const RING_SETUP_ALL: u64 = RING_SETUP_SQPOLL;

/// `cap_enter` flag in `rdx`: wake this ring's poller (clears
/// NEED_WAKEUP). Other `rdx` bits are ignored (older programs left `rdx`
/// unset); a wakeup of a ring that is not SQPOLL does nothing.
pub const ENTER_SQ_WAKEUP: u64 = 1 << 0;

/// Submission queue entries per ring (a power of two).
pub const SQ_ENTRIES: u32 = 64;
/// Completion queue entries per ring (a power of two).
pub const CQ_ENTRIES: u32 = 128;
/// Offset of the SQE array in the ring region.
pub const SQ_OFFSET: u64 = 4096;
/// Offset of the CQE array in the ring region.
pub const CQ_OFFSET: u64 = 8192;
/// Size of the ring region (three pages).
pub const RING_BYTES: u64 = 3 * 4096;

/// The shared header at the start of a ring region.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RingHeader {
    /// Next SQE the kernel will consume (written by the kernel).
    pub sq_head: AtomicU32,
    /// One past the last SQE user space published (written by user space).
    pub sq_tail: AtomicU32,
    /// Next CQE user space will read (written by user space).
    pub cq_head: AtomicU32,
    /// One past the last CQE the kernel published (written by the kernel).
    pub cq_tail: AtomicU32,
    /// Completions waiting in the kernel overflow list (written by the kernel).
    pub cq_overflow: AtomicU32,
    /// SQ_ENTRIES, for checking (written by the kernel at setup).
    pub sq_entries: AtomicU32,
    /// CQ_ENTRIES, for checking (written by the kernel at setup).
    pub cq_entries: AtomicU32,
    /// [`RING_FLAG_NEED_WAKEUP`] and [`RING_FLAG_SQPOLL`] (written by the
    /// kernel; was `reserved`, zero, before SQPOLL: same offset and size).
    pub flags: AtomicU32,
}

/// A submission: one operation on one capability.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// An [`crate::op::Op`] code.
    pub opcode: u32,
    /// The capability slot the operation acts on.
    pub cap: u32,
    /// Returned unchanged in the completion.
    pub user_data: u64,
    /// Operation arguments; meaning per opcode (see [`crate::op`]).
    pub args: [u64; 6],
}

/// A completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    /// The submission's `user_data`.
    pub user_data: u64,
    /// `>= 0` on success (meaning per opcode), or a negated [`crate::error::Error`].
    pub result: i64,
    /// First extra value (per opcode).
    pub value0: u64,
    /// Second extra value (per opcode).
    pub value1: u64,
}

/// Size of one SQE in bytes.
pub const SQE_BYTES: u64 = core::mem::size_of::<Sqe>() as u64;
/// Size of one CQE in bytes.
pub const CQE_BYTES: u64 = core::mem::size_of::<Cqe>() as u64;

const _: () = assert!(SQ_ENTRIES.is_power_of_two() && CQ_ENTRIES.is_power_of_two());
const _: () = assert!(SQ_OFFSET + SQ_ENTRIES as u64 * SQE_BYTES <= CQ_OFFSET);
const _: () = assert!(CQ_OFFSET + CQ_ENTRIES as u64 * CQE_BYTES <= RING_BYTES);
const _: () = assert!(core::mem::size_of::<RingHeader>() as u64 <= SQ_OFFSET);
const _: () = assert!(core::mem::size_of::<RingHeader>() == 32);
const _: () = assert!(core::mem::offset_of!(RingHeader, flags) == 28);

/// Number of unconsumed entries between `head` and `tail`, or `None` when
/// the pair is impossible for a ring of `entries` (user space corrupted it).
pub fn pending(head: u32, tail: u32, entries: u32) -> Option<u32> {
    let n = tail.wrapping_sub(head);
    (n <= entries).then_some(n)
}

/// Slot index of free-running index `i` in a ring of `entries`.
pub fn slot(i: u32, entries: u32) -> u32 {
    i & (entries - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(SQE_BYTES, 64);
        assert_eq!(CQE_BYTES, 32);
    }

    #[test]
    fn pending_wraps() {
        assert_eq!(pending(0, 0, 64), Some(0));
        assert_eq!(pending(u32::MAX, 3, 64), Some(4));
        assert_eq!(pending(10, 74, 64), Some(64));
        assert_eq!(pending(10, 75, 64), None);
        assert_eq!(pending(10, 9, 64), None);
        assert_eq!(slot(65, 64), 1);
    }
}
