//! Ending threads and processes.
//!
//! A process ends in two steps. `exit_process` (Exit, a fault, a kill, or
//! the last thread's ThreadExit) records the status and marks every
//! thread killed: a blocked or queued thread dies on the spot or when it
//! is next picked, a thread running on another CPU is sent a reschedule
//! IPI and dies in that CPU's exit path. Each death runs `thread_died`
//! exactly once (the `reaped` flag). The last one `finalize`s: the address
//! space is torn down (with a shootdown of every CPU that had it loaded),
//! the capability table is emptied, dead rings are freed, and only then are
//! waiters told, so a waiter that checks free memory sees it all returned.

use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::op::ExitKind;
use abi::ring::{Cqe, RING_BYTES};

use super::{ExitStatus, Process, Waiter};
use crate::sched::thread::{self, RunState, Thread};

/// Starts ending `p` with `status` (first caller wins).
pub fn exit_process(p: &Arc<Process>, status: ExitStatus) {
    let threads: Vec<Arc<Thread>> = {
        let mut inner = p.inner.lock();
        if inner.exiting.is_some() {
            return;
        }
        inner.exiting = Some(status);
        inner.threads.clone()
    };
    let me = crate::arch::cpu_id();
    for t in threads {
        kill_thread(&t, me);
    }
}

/// Marks `t` killed and makes it die as soon as it is off every CPU.
fn kill_thread(t: &Arc<Thread>, me: usize) {
    let mut ti = t.inner.lock();
    ti.kill = true;
    match ti.state {
        RunState::Blocked { .. } => {
            ti.state = RunState::Dead;
            drop(ti);
            thread_died(t);
        }
        RunState::Running(cpu) if cpu != me => {
            drop(ti);
            crate::smp::send_resched(cpu);
        }
        // Running here: this CPU's exit path ends it. Runnable: the CPU
        // that picks it ends it. Dead: done.
        _ => {}
    }
}

/// Death bookkeeping for a thread whose state is Dead and that no CPU
/// runs; idempotent.
pub fn thread_died(t: &Arc<Thread>) {
    let (ring, joiner, value, unregister) = {
        let mut ti = t.inner.lock();
        if ti.reaped {
            return;
        }
        ti.reaped = true;
        ti.state = RunState::Dead;
        let value = *ti.exit_value.get_or_insert(0);
        let joiner = ti.joiner.take();
        if joiner.is_some() {
            ti.joined = true;
        }
        ti.overflow.clear();
        (ti.ring.take(), joiner, value, !ti.handle_open)
    };
    let p = t.process.clone();
    if let Some(ring) = ring {
        let mut inner = p.inner.lock();
        if inner.exiting.is_some() {
            // The teardown unmaps and shoots down everything at once.
            inner.dead_rings.push(ring);
        } else {
            drop(inner);
            p.space.unmap_range(t.ring_addr, t.ring_addr + RING_BYTES);
            ring.free();
        }
    }
    if let Some(j) = joiner {
        crate::cap::ring::post(
            j.thread,
            Cqe {
                user_data: j.user_data,
                result: 0,
                value0: 0,
                value1: value as u64,
            },
        );
    }
    if unregister {
        thread::unregister(t.tref);
    }
    let last = {
        let mut inner = p.inner.lock();
        inner.threads.retain(|x| !Arc::ptr_eq(x, t));
        if inner.threads.is_empty() && inner.ended.is_none() {
            let st = *inner.exiting.get_or_insert(ExitStatus {
                kind: ExitKind::Exited,
                status: value,
            });
            inner.ended = Some(st);
            true
        } else {
            false
        }
    };
    if last {
        finalize(&p);
    }
}

/// Reclaims everything of a process whose threads are all dead, then
/// tells its waiters.
fn finalize(p: &Arc<Process>) {
    let me = crate::arch::cpu_id();
    // If this CPU still has the space loaded, leave it first.
    let loaded_here = {
        let c = crate::sched::cpu::cpu(me);
        let s = c.space.lock();
        s.as_ref().is_some_and(|s| Arc::ptr_eq(s, &p.space))
    };
    if loaded_here {
        crate::sched::switch::drop_space(me);
    }
    p.space.teardown();
    let rings = core::mem::take(&mut p.inner.lock().dead_rings);
    for r in rings {
        r.free();
    }
    // Close every handle outside the table lock; thread handles release
    // their dead threads from the registry.
    let caps = p.caps.lock().clear();
    for cap in caps.into_iter().flatten() {
        if let crate::cap::table::Cap::Thread(r) = cap {
            crate::cap::ops::thread_handle_closed(r);
        }
    }
    p.park.lock().clear();
    let (status, waiters) = {
        let mut inner = p.inner.lock();
        (
            inner.ended.expect("finalize after end"),
            core::mem::take(&mut inner.waiters),
        )
    };
    for w in waiters {
        notify(p, w, status);
    }
}

/// Tells one waiter how `p` ended.
pub fn notify(p: &Arc<Process>, w: Waiter, st: ExitStatus) {
    match w {
        Waiter::Thread { thread, user_data } => {
            crate::cap::ring::post(
                thread,
                Cqe {
                    user_data,
                    result: 0,
                    value0: st.kind as u64,
                    value1: st.status as u64,
                },
            );
        }
        Waiter::Init => crate::init::process_ended(p.pid, st),
    }
}

/// Adds a waiter, or tells it at once if `p` already ended.
pub fn add_waiter(p: &Arc<Process>, w: Waiter) {
    let ended = {
        let mut inner = p.inner.lock();
        match inner.ended {
            Some(st) => Some(st),
            None => {
                inner.waiters.push(w);
                None
            }
        }
    };
    if let Some(st) = ended {
        notify(p, w, st);
    }
}
