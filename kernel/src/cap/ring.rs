//! Posting completions into a thread's CQ, from any CPU.
//!
//! A completion goes to a thread by [`ThreadRef`]: a reaped thread is
//! simply not found. Under the thread's lock it is written to the CQ, or
//! appended to the overflow list when the CQ is full or older overflowed
//! completions still wait (order is kept). If the thread waits in
//! `cap_enter` and now has enough completions, it becomes runnable.

use alloc::collections::VecDeque;
use alloc::sync::Arc;

use abi::ring::{Cqe, CQ_ENTRIES};

use crate::mm::budget::{self, Kind};
use crate::sched::thread::{self, RunState, Thread, ThreadInner, ThreadRef};
use crate::sched::{cpu, timer};
use crate::sync::IrqMutexGuard;

/// Completions in the CQ (as the user's head says), clamped when user
/// space corrupted its head.
pub fn cq_ready(ti: &ThreadInner) -> u32 {
    let Some(ring) = &ti.ring else { return 0 };
    abi::ring::pending(ring.cq_head(), ti.cq_tail, CQ_ENTRIES).unwrap_or(CQ_ENTRIES)
}

/// Free CQ slots.
fn cq_room(ti: &ThreadInner) -> u32 {
    CQ_ENTRIES - cq_ready(ti)
}

/// Adds a completion to `ti`'s CQ or overflow list.
pub fn push(ti: &mut ThreadInner, cqe: Cqe) {
    if ti.ring.is_none() {
        return;
    }
    if ti.overflow.is_empty() && cq_room(ti) > 0 {
        write(ti, &cqe);
    } else {
        ti.overflow.push_back(cqe);
        publish_overflow(ti);
    }
}

fn write(ti: &mut ThreadInner, cqe: &Cqe) {
    if let Some(ring) = &ti.ring {
        ring.write_cqe(ti.cq_tail, cqe);
        ti.cq_tail = ti.cq_tail.wrapping_add(1);
        ring.set_cq_tail(ti.cq_tail);
    }
}

fn publish_overflow(ti: &ThreadInner) {
    if let Some(ring) = &ti.ring {
        ring.set_cq_overflow(ti.overflow.len() as u32);
    }
}

/// Moves overflowed completions into the CQ while there is room.
pub fn flush_overflow(ti: &mut ThreadInner) {
    if ti.overflow.is_empty() {
        return;
    }
    while cq_room(ti) > 0 {
        let Some(c) = ti.overflow.pop_front() else {
            break;
        };
        write(ti, &c);
    }
    if ti.overflow.is_empty() && ti.overflow.capacity() > OVERFLOW_KEEP {
        // Give the burst's capacity back: its charges already went.
        ti.overflow = VecDeque::new();
    }
    publish_overflow(ti);
}

/// Overflow capacity a thread keeps once its overflow list drained.
const OVERFLOW_KEEP: usize = 32;

/// Operations of this thread that will complete later and have not yet.
pub fn in_flight(ti: &ThreadInner) -> u64 {
    ti.issued.wrapping_sub(ti.delivered)
}

/// Completions available to a waiter (CQ plus overflow).
pub fn available(ti: &ThreadInner) -> usize {
    cq_ready(ti) as usize + ti.overflow.len()
}

/// Adds an immediate completion of `t`'s own submission (from its
/// `cap_enter` or its SQPOLL poller) and wakes `t` if it waits in
/// `cap_enter` and now has enough. Nothing goes to a dead thread.
pub fn deliver(t: &Arc<Thread>, cqe: Cqe) {
    let mut ti = t.inner.lock();
    if ti.reaped || ti.state == RunState::Dead {
        return;
    }
    push(&mut ti, cqe);
    wake_if_ready(t, ti);
}

/// Makes `t` runnable if it waits in `cap_enter` for no more completions
/// than it now has (consumes the caller's guard of its lock).
fn wake_if_ready(t: &Arc<Thread>, mut ti: IrqMutexGuard<'_, ThreadInner>) {
    if let RunState::Blocked { min, .. } = ti.state {
        if available(&ti) >= min as usize {
            if let Some(h) = ti.wait_timer.take() {
                timer::cancel(h);
            }
            ti.state = RunState::Runnable;
            let last = ti.last_cpu;
            drop(ti);
            cpu::place_woken(t, last);
        }
    }
}

/// Posts `cqe` to thread `r`; returns whether the thread still existed.
/// Every post completes an operation that was counted in flight (see
/// cap::enter), so it gives that operation's charge back.
pub fn post(r: ThreadRef, cqe: Cqe) -> bool {
    post_if(r, cqe, |_| true)
}

/// Like [`post`], but first runs `claim` under the thread's lock; posts
/// only if it returns true. The owner of a wait uses it to take the wait
/// out of the thread's bookkeeping (its sleep set, park set, ProcWait
/// set) atomically with the completion, so a wait is completed at most
/// once, either here or by the thread's death.
pub fn post_if(r: ThreadRef, cqe: Cqe, claim: impl FnOnce(&mut ThreadInner) -> bool) -> bool {
    let Some(t) = thread::lookup(r) else {
        return false;
    };
    let mut ti = t.inner.lock();
    if ti.reaped || ti.ring.is_none() || ti.kill || ti.state == RunState::Dead {
        return false;
    }
    if !claim(&mut ti) {
        return false;
    }
    push(&mut ti, cqe);
    ti.delivered = ti.delivered.wrapping_add(1);
    t.process
        .account()
        .uncharge(Kind::Heap, budget::IN_FLIGHT_HEAP_BYTES);
    wake_if_ready(&t, ti);
    true
}
