//! `cap_enter(min_complete, timeout_ns)`: the one system call.
//!
//! 1. Move overflowed completions into the CQ room the user made. Read
//!    the SQ tail once: this call consumes at most the submissions
//!    that were there when it started, never more than `SQ_ENTRIES`, so a
//!    sibling that keeps appending cannot hold the CPU in ring 0.
//! 2. Consume them in order. Each SQE is copied out of shared memory before
//!    it is looked at, and executed with no thread lock held; other CPUs'
//!    requests (shootdowns) are answered between SQEs. An SQE that needs a
//!    completion waits in the SQ while the CQ and overflow list hold
//!    `CQ_ENTRIES` completions (the program must drain its CQ); Exit and
//!    ThreadExit need none and are always consumed.
//! 3. An operation that may complete later (sleep, wait, join, park) is
//!    counted in flight and charged to the process's budget first. Past
//!    `MAX_PENDING` in flight, or at the budget, it completes at once with
//!    `NoMemory` and the ring goes on.
//! 4. Return the CQ count at once if it is at least `min_complete`, the
//!    timeout is 0, or the thread is being killed. Otherwise save the
//!    context, mark the thread Blocked (both under its lock, the residency
//!    rule), arm the timeout, and leave the CPU; whoever posts the
//!    completion that reaches `min_complete` (or the timeout) makes it
//!    runnable, and it resumes with rax = the CQ count.
//!
//! A corrupt SQ (tail more than SQ_ENTRIES ahead of the kernel's head)
//! fails the call with `Invalid` and consumes nothing.
//!
//! On a ring in SQPOLL mode (cap::sqpoll) step 2 is skipped: the poller
//! is the ring's one consumer. `cap_enter` then only flushes overflow,
//! wakes the sleeping poller (`rdx` bit `ENTER_SQ_WAKEUP`) and waits. The
//! same [`consume`] runs an SQE for both consumers; its completion goes
//! through [`ring::deliver`], which also wakes the thread when it waits
//! here (the poller runs while the thread may be Blocked).
//!
//! Every call counts in the thread's `ring_stats.syscalls` (RingStats).

use abi::error::Error;
use abi::op::Op;
use abi::ring::{Sqe, CQ_ENTRIES, ENTER_SQ_WAKEUP, SQ_ENTRIES};
use core::sync::atomic::Ordering;

use super::ops::{self, Outcome};
use super::{ring, sqpoll};
use crate::arch::TrapFrame;
use crate::mm::budget::{self, Kind};
use crate::sched::thread::{RunState, Thread};
use crate::sched::timer::{self, TimerEvent};
use crate::sched::{self, cpu, switch};
use alloc::sync::Arc;

/// Most operations of one thread in flight at once (started, not yet
/// completed). Each also holds a budget charge; this bound keeps one
/// thread's share of its process's budget (and its overflow list) sane.
pub const MAX_PENDING: u64 = 4096;

/// Whether an operation may complete later (and so is counted in flight).
fn may_complete_later(op: Option<Op>) -> bool {
    matches!(
        op,
        Some(Op::TimerSleep | Op::ProcWait | Op::ThreadJoin | Op::Park)
    )
}

/// Whether an operation needs no completion slot (it never completes).
pub(super) fn needs_no_cqe(op: Option<Op>) -> bool {
    matches!(op, Some(Op::Exit | Op::ThreadExit))
}

/// Takes the next SQE if this call may consume it.
fn next_sqe(t: &Arc<Thread>) -> Option<Sqe> {
    let mut ti = t.inner.lock();
    ring::flush_overflow(&mut ti);
    if ti.kill || ti.sqpoll.is_some() {
        // A RingMode just handed the ring to the poller: it consumes the rest.
        return None;
    }
    let head = ti.sq_head;
    let sqe = ti.ring.as_ref()?.read_sqe(head);
    if !needs_no_cqe(Op::from_raw(sqe.opcode)) && ring::available(&ti) >= CQ_ENTRIES as usize {
        return None;
    }
    if let Some(r) = &ti.ring {
        r.set_sq_head(head.wrapping_add(1));
    }
    ti.sq_head = head.wrapping_add(1);
    Some(sqe)
}

/// Runs one consumed SQE of `t` (from `t`'s own `cap_enter`, or from the
/// SQPOLL poller that holds its ring); false if the thread is gone.
pub(super) fn consume(t: &Arc<Thread>, sqe: &Sqe) -> bool {
    let later = may_complete_later(Op::from_raw(sqe.opcode));
    if later {
        let full = ring::in_flight(&t.inner.lock()) >= MAX_PENDING;
        let charged = !full
            && t.process
                .account()
                .charge(Kind::Heap, budget::IN_FLIGHT_HEAP_BYTES)
                .is_ok();
        if !charged {
            if let Outcome::Now(cqe) = ops::fail(sqe, Error::NoMemory) {
                ring::deliver(t, cqe);
            }
            return true;
        }
    }
    match ops::dispatch(t, sqe) {
        Outcome::Now(cqe) => {
            if later {
                t.process
                    .account()
                    .uncharge(Kind::Heap, budget::IN_FLIGHT_HEAP_BYTES);
            }
            ring::deliver(t, cqe);
        }
        Outcome::Later => {
            let mut ti = t.inner.lock();
            ti.issued = ti.issued.wrapping_add(1);
        }
        Outcome::Deferred => {}
        Outcome::Gone => return false,
    }
    true
}

/// Runs the system call for the current thread.
pub fn cap_enter(frame: &mut TrapFrame) {
    let Some(t) = sched::current() else {
        panic!("cap_enter without a current thread")
    };
    let min = frame.rdi.min(u64::from(CQ_ENTRIES)) as u32;
    let timeout_ns = frame.rsi;
    let wake = frame.rdx & ENTER_SQ_WAKEUP != 0;
    t.ring_stats.syscalls.fetch_add(1, Ordering::Relaxed);
    let new = {
        let mut ti = t.inner.lock();
        // Room the user made in its CQ goes to overflowed completions
        // first, whether or not anything new was submitted.
        ring::flush_overflow(&mut ti);
        if sqpoll::enter(&t, &mut ti, wake) {
            Some(0)
        } else {
            match &ti.ring {
                None => Some(0),
                Some(r) => abi::ring::pending(ti.sq_head, r.sq_tail(), SQ_ENTRIES),
            }
        }
    };
    let Some(new) = new else {
        frame.rax = Error::Invalid.as_result() as u64;
        return;
    };
    for _ in 0..new {
        let Some(sqe) = next_sqe(&t) else { break };
        if !consume(&t, &sqe) {
            return;
        }
        crate::smp::answer_requests();
    }
    let me = crate::arch::cpu_id();
    let mut ti = t.inner.lock();
    // A SetTls the poller handed over lands before the thread decides to
    // wait (held lock: no new one until it is Blocked, cap::sqpoll).
    sqpoll::apply_pending_tls(&mut ti);
    ring::flush_overflow(&mut ti);
    let ready = ring::cq_ready(&ti);
    if ring::available(&ti) >= min as usize || timeout_ns == 0 || ti.kill {
        frame.rax = u64::from(ready);
        return;
    }
    ti.wait_seq += 1;
    let seq = ti.wait_seq;
    switch::save_context(&mut ti, frame);
    ti.resume_cap_enter = true;
    ti.state = RunState::Blocked { min, seq };
    if timeout_ns != abi::TIMEOUT_NEVER {
        // Armed under the thread lock, so a completion that ends the wait
        // early finds `wait_timer` and cancels the entry.
        let deadline = crate::arch::rdtsc().saturating_add(crate::time::ns_to_tsc(timeout_ns));
        ti.wait_timer = Some(timer::add(
            deadline,
            TimerEvent::WaitTimeout {
                thread: t.tref,
                seq,
            },
        ));
    }
    drop(ti);
    *cpu::cpu(me).current.lock() = None;
}
