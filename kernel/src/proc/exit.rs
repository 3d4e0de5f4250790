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
use crate::mm::budget::{self, Kind};
use crate::sched::thread::{self, RunState, Thread};

/// Starts ending `p` with `status` (first caller wins), and with it every
/// process it spawned, and theirs (a job tree: no process is ever left
/// without someone who can wait for it or kill it). Iterative, so a deep
/// chain of children cannot overflow the kernel stack.
pub fn exit_process(p: &Arc<Process>, status: ExitStatus) {
    let killed = ExitStatus {
        kind: ExitKind::Killed,
        status: 0,
    };
    let mut work: Vec<(Arc<Process>, ExitStatus)> = alloc::vec![(p.clone(), status)];
    let me = crate::arch::cpu_id();
    while let Some((p, status)) = work.pop() {
        let (threads, children) = {
            let mut inner = p.inner.lock();
            if inner.exiting.is_some() {
                continue;
            }
            inner.exiting = Some(status);
            let threads: Vec<Arc<Thread>> = inner.threads.values().cloned().collect();
            let children: Vec<Arc<Process>> = inner
                .children
                .values()
                .filter_map(|c| c.upgrade())
                .collect();
            (threads, children)
        };
        for t in threads {
            kill_thread(&t, me);
            crate::smp::answer_requests();
        }
        work.extend(children.into_iter().map(|c| (c, killed)));
        crate::smp::answer_requests();
    }
}

/// Marks `t` killed and makes it die as soon as it is off every CPU.
pub fn kill_thread(t: &Arc<Thread>, me: usize) {
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
/// runs; idempotent. Everything the thread waited for is cancelled or
/// removed (its wait timeout, sleeps, parks and ProcWaits), and the
/// charges of its operations still in flight come back.
pub fn thread_died(t: &Arc<Thread>) {
    if !crate::cap::sqpoll::stop_consumer(t) {
        // An SQPOLL poller is running one of its SQEs: it runs this death
        // when it lets go of the ring (cap::sqpoll module doc).
        return;
    }
    let (ring, joiner, value, unregister, waits) = {
        let mut ti = t.inner.lock();
        if ti.reaped {
            return;
        }
        ti.reaped = true;
        crate::cap::sqpoll::forget(t, &mut ti);
        ti.state = RunState::Dead;
        let value = *ti.exit_value.get_or_insert(0);
        let joiner = ti.joiner.take();
        if joiner.is_some() {
            ti.joined = true;
        }
        ti.overflow = Default::default();
        if let Some(h) = ti.wait_timer.take() {
            crate::sched::timer::cancel(h);
        }
        for h in core::mem::take(&mut ti.sleeps).into_values() {
            crate::sched::timer::cancel(h);
        }
        // The thread's own charge comes back at its death; a handle that
        // keeps its record is charged for it (proc::cap_charge).
        t.process
            .account()
            .uncharge(Kind::Heap, budget::THREAD_HEAP_BYTES);
        let in_flight = crate::cap::ring::in_flight(&ti);
        ti.delivered = ti.issued;
        t.process
            .account()
            .uncharge(Kind::Heap, in_flight * budget::IN_FLIGHT_HEAP_BYTES);
        let waits = (
            core::mem::take(&mut ti.parks),
            core::mem::take(&mut ti.proc_waits),
        );
        (ti.ring.take(), joiner, value, !ti.handle_open, waits)
    };
    let p = t.process.clone();
    let (parks, proc_waits) = waits;
    crate::cap::park::thread_gone(parks);
    for (token, target) in proc_waits {
        if let Some(target) = target.upgrade() {
            target.inner.lock().waiters.remove(&token);
        }
        crate::smp::answer_requests();
    }
    if let Some(ring) = ring {
        let mut inner = p.inner.lock();
        if inner.exiting.is_some() {
            // The teardown unmaps and shoots down everything at once.
            inner.dead_rings.push(ring);
        } else {
            drop(inner);
            p.space.unmap_range(t.ring_addr, t.ring_addr + RING_BYTES);
            p.free_ring(ring);
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
        inner.threads.remove(&t.tid);
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

/// Empties `p`'s capability table, giving the slots' charges back; thread
/// handles release their dead threads from the registry.
pub fn release_caps(p: &Arc<Process>) {
    let caps = p.caps.write().clear();
    let mut held = 0;
    for cap in caps.into_iter().flatten() {
        held += super::cap_charge(&cap);
        if let crate::cap::table::Cap::Thread(r) = cap {
            crate::cap::ops::thread_handle_closed(r);
        }
    }
    p.account().uncharge(Kind::Heap, held);
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
    // Parkers of other processes on objects this one had mapped learn
    // that a peer ended; the objects' frames go when the last reference
    // (maybe this one) drops, after the teardown's shootdown.
    for obj in p.space.teardown().objects() {
        crate::cap::park::peer_gone(obj.id(), p.pid);
        drop(obj);
        crate::smp::answer_requests();
    }
    let rings = core::mem::take(&mut p.inner.lock().dead_rings);
    for r in rings {
        p.free_ring(r);
        crate::smp::answer_requests();
    }
    // Close every handle outside the table lock.
    release_caps(p);
    let (status, waiters) = {
        let mut inner = p.inner.lock();
        inner.reclaimed = true;
        // The record's own charge; a handle that keeps it is charged for it.
        p.account().uncharge(Kind::Heap, budget::PROCESS_HEAP_BYTES);
        (
            inner.ended.expect("finalize after end"),
            core::mem::take(&mut inner.waiters),
        )
    };
    if let Some(parent) = p.parent.upgrade() {
        parent.inner.lock().children.remove(&p.pid);
    }
    for w in waiters.into_values() {
        notify(p, w, status);
        crate::smp::answer_requests();
    }
}

/// Tells one waiter how `p` ended.
pub fn notify(p: &Arc<Process>, w: Waiter, st: ExitStatus) {
    match w {
        Waiter::Thread {
            thread,
            user_data,
            token,
        } => {
            crate::cap::ring::post_if(
                thread,
                Cqe {
                    user_data,
                    result: 0,
                    value0: st.kind as u64,
                    value1: st.status as u64,
                },
                |ti| ti.proc_waits.remove(&token).is_some(),
            );
        }
        Waiter::Init => crate::init::process_ended(p.pid, st),
    }
}

/// Adds a waiter, or tells it at once if `p` already ended and was
/// reclaimed (a process that ended but whose teardown still runs on some
/// CPU tells its waiters when the teardown is done). A thread
/// waiter is recorded in its thread's `proc_waits` first (the caller holds
/// no lock), so its death can remove it from `p`'s list.
pub fn add_waiter(p: &Arc<Process>, w: Waiter) {
    if let Waiter::Thread { thread, token, .. } = w {
        if let Some(t) = thread::lookup(thread) {
            t.inner.lock().proc_waits.insert(token, Arc::downgrade(p));
        }
    }
    let key = match w {
        Waiter::Thread { token, .. } => token,
        Waiter::Init => 0,
    };
    let ended = {
        let mut inner = p.inner.lock();
        match inner.ended {
            Some(st) if inner.reclaimed => Some(st),
            _ => {
                inner.waiters.insert(key, w);
                None
            }
        }
    };
    if let Some(st) = ended {
        notify(p, w, st);
    }
}
