//! `cap_enter(min_complete, timeout_ns)`: the one system call.
//!
//! 1. Flush overflowed completions into the CQ.
//! 2. Consume new SQEs in order while the CQ has room for their immediate
//!    completions and fewer than `MAX_PENDING` completions are pending or
//!    in flight (back-pressure: the rest stay in the SQ for the next
//!    call). Each SQE is copied out of shared memory before it is looked
//!    at, and executed with no thread lock held.
//! 3. Return the CQ count at once if it is at least `min_complete`, the
//!    timeout is 0, or the thread is being killed. Otherwise save the
//!    context, mark the thread Blocked (both under its lock, the residency
//!    rule), arm the timeout, and leave the CPU; whoever posts the
//!    completion that reaches `min_complete` (or the timeout) makes it
//!    runnable, and it resumes with rax = the CQ count.
//!
//! A corrupt SQ (tail more than SQ_ENTRIES ahead of the kernel's head)
//! fails the call with `Invalid` and consumes nothing.

use abi::error::Error;
use abi::ring::{CQ_ENTRIES, SQ_ENTRIES};

use super::ops::{self, Outcome};
use super::ring;
use crate::arch::TrapFrame;
use crate::sched::thread::RunState;
use crate::sched::timer::{self, TimerEvent};
use crate::sched::{self, cpu, switch};

/// Most completions a thread may have pending: those in its CQ and
/// overflow list plus operations still in flight (sleeps, waits, joins,
/// parks). Beyond it, new submissions wait in the SQ, which bounds the
/// kernel memory (overflow list, timers, waiter lists) one thread can use.
const MAX_PENDING: u64 = 4096;

/// Runs the system call for the current thread.
pub fn cap_enter(frame: &mut TrapFrame) {
    let Some(t) = sched::current() else {
        panic!("cap_enter without a current thread")
    };
    let min = frame.rdi.min(u64::from(CQ_ENTRIES)) as u32;
    let timeout_ns = frame.rsi;
    loop {
        let sqe = {
            let mut ti = t.inner.lock();
            ring::flush_overflow(&mut ti);
            if ti.kill
                || ring::available(&ti) >= CQ_ENTRIES as usize
                || ring::available(&ti) as u64 + ring::in_flight(&ti) >= MAX_PENDING
            {
                None
            } else {
                let Some(r) = &ti.ring else { break };
                let tail = r.sq_tail();
                match abi::ring::pending(ti.sq_head, tail, SQ_ENTRIES) {
                    None => {
                        frame.rax = Error::Invalid.as_result() as u64;
                        return;
                    }
                    Some(0) => None,
                    Some(_) => {
                        let head = ti.sq_head;
                        let sqe = r.read_sqe(head);
                        r.set_sq_head(head.wrapping_add(1));
                        ti.sq_head = head.wrapping_add(1);
                        Some(sqe)
                    }
                }
            }
        };
        let Some(sqe) = sqe else { break };
        match ops::dispatch(&t, &sqe) {
            Outcome::Now(cqe) => ring::push(&mut t.inner.lock(), cqe),
            Outcome::Later => {
                let mut ti = t.inner.lock();
                ti.issued = ti.issued.wrapping_add(1);
            }
            Outcome::Gone => return,
        }
    }
    let me = crate::arch::cpu_id();
    let mut ti = t.inner.lock();
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
        timer::add(
            deadline,
            TimerEvent::WaitTimeout {
                thread: t.tref,
                seq,
            },
        );
        ti.wait_timer = Some(me);
    }
    drop(ti);
    *cpu::cpu(me).current.lock() = None;
}
