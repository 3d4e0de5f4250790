//! Leaving the kernel: keep the current thread, or switch to another one,
//! or idle until there is one.
//!
//! Residency rule: a thread runs on at most one CPU. Its context is saved
//! into the thread under the thread's lock in the same critical section
//! that moves it out of `Running` (to Runnable, Blocked or Dead), and a CPU
//! switches a thread in only from `Runnable`, under the same lock. So no
//! CPU resumes a thread whose context is still in another CPU's registers.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use super::cpu::{self, CpuSched};
use super::thread::{RunState, Thread, ThreadInner};
use super::timer::{self, TimerEvent};
use crate::arch::{self, TrapFrame};
use crate::mm::addr_space::AddrSpace;

/// Preemption slice when other threads wait for this CPU.
pub const SLICE_NS: u64 = 10_000_000;

/// The thread resident on this CPU.
pub fn current() -> Option<Arc<Thread>> {
    cpu::cpu(arch::cpu_id()).current.lock().clone()
}

/// Saves the CPU's user context into the thread (caller holds its lock).
pub fn save_context(ti: &mut ThreadInner, frame: &TrapFrame) {
    ti.frame = *frame;
    ti.fs_base = arch::fs_base();
    ti.fpu.save();
}

/// Finishes every trap from user mode (and starts each CPU): picks the
/// thread to run and loads its context into `frame`.
pub fn exit_to_user(frame: &mut TrapFrame) {
    let me = arch::cpu_id();
    let c = cpu::cpu(me);
    loop {
        let cur = c.current.lock().clone();
        if let Some(t) = cur {
            if keep_current(&t, frame, me, c) {
                break;
            }
        }
        let next = next_thread(me, c);
        if switch_in(&next, frame, me, c) {
            break;
        }
    }
    arm_timer(me, c);
    frame.sanitize_for_user();
    c.user_since.store(arch::rdtsc(), Ordering::Relaxed);
}

/// Decides about the resident thread; returns whether it keeps the CPU.
fn keep_current(t: &Arc<Thread>, frame: &mut TrapFrame, me: usize, c: &CpuSched) -> bool {
    let mut ti = t.inner.lock();
    match ti.state {
        RunState::Running(cpu) if cpu == me => {
            crate::cap::sqpoll::apply_pending_tls(&mut ti);
            if ti.kill {
                ti.state = RunState::Dead;
                drop(ti);
                *c.current.lock() = None;
                crate::proc::exit::thread_died(t);
                return false;
            }
            let preempt = c.need_resched.swap(false, Ordering::Relaxed)
                && c.queued.load(Ordering::Relaxed) > 0;
            if !preempt {
                return true;
            }
            save_context(&mut ti, frame);
            ti.state = RunState::Runnable;
            drop(ti);
            *c.current.lock() = None;
            crate::percpu::stats(me)
                .switches
                .fetch_add(1, Ordering::Relaxed);
            cpu::enqueue(t.clone(), me);
            false
        }
        RunState::Dead => {
            drop(ti);
            *c.current.lock() = None;
            crate::proc::exit::thread_died(t);
            false
        }
        _ => {
            // Blocked (context already saved by cap_enter) or already
            // resumed elsewhere: it is no longer ours.
            drop(ti);
            *c.current.lock() = None;
            false
        }
    }
}

/// Switches `t` in; false if it must not run after all (killed meanwhile).
fn switch_in(t: &Arc<Thread>, frame: &mut TrapFrame, me: usize, c: &CpuSched) -> bool {
    let mut ti = t.inner.lock();
    if ti.state != RunState::Runnable {
        return false;
    }
    if ti.kill {
        ti.state = RunState::Dead;
        drop(ti);
        crate::proc::exit::thread_died(t);
        return false;
    }
    ti.state = RunState::Running(me);
    ti.last_cpu = me;
    *frame = ti.frame;
    arch::set_fs_base(ti.fs_base);
    ti.fpu.restore();
    if ti.resume_cap_enter {
        ti.resume_cap_enter = false;
        crate::cap::ring::flush_overflow(&mut ti);
        frame.rax = u64::from(crate::cap::ring::cq_ready(&ti));
    }
    drop(ti);
    switch_space(me, c, &t.process.space);
    *c.current.lock() = Some(t.clone());
    crate::percpu::stats(me)
        .switches
        .fetch_add(1, Ordering::Relaxed);
    t.cpus_ran.fetch_or(1 << me, Ordering::Relaxed);
    true
}

fn switch_space(me: usize, c: &CpuSched, space: &Arc<AddrSpace>) {
    let mut cur = c.space.lock();
    if cur.as_ref().is_some_and(|s| Arc::ptr_eq(s, space)) {
        return;
    }
    space.mark_active(me);
    arch::load_address_space(space.root_phys());
    if let Some(old) = cur.take() {
        old.mark_inactive(me);
    }
    *cur = Some(space.clone());
}

/// Drops this CPU's user address space (idle, or its process ended).
pub fn drop_space(me: usize) {
    let c = cpu::cpu(me);
    let mut cur = c.space.lock();
    if let Some(old) = cur.take() {
        crate::mm::kernel_space::activate_on_this_cpu();
        old.mark_inactive(me);
    }
}

/// The next thread for this CPU: local queue, then stealing, else idle.
fn next_thread(me: usize, c: &CpuSched) -> Arc<Thread> {
    loop {
        if let Some(t) = cpu::pop_local(me).or_else(|| cpu::steal(me)) {
            crate::cap::sqpoll::idle_end(me);
            return t;
        }
        // Nothing to run: poll the awake SQPOLL rings instead of halting
        // (one bounded pass, then the queues again).
        if crate::cap::sqpoll::idle_poll(me) {
            continue;
        }
        idle_wait(me, c);
    }
}

/// Halts until an interrupt, with the lost-wakeup-free protocol of cpu.rs:
/// clear `kicked`, set `idle`, then look at every online queue, then halt.
fn idle_wait(me: usize, c: &CpuSched) {
    drop_space(me);
    c.kicked.store(false, Ordering::SeqCst);
    c.idle.store(true, Ordering::SeqCst);
    let work = c.queued.load(Ordering::SeqCst) > 0 || cpu::others_have_queued(me);
    if !work {
        arm_timer(me, c);
        let t0 = arch::rdtsc();
        arch::sti_hlt();
        arch::cli();
        crate::percpu::stats(me)
            .idle_cycles
            .fetch_add(arch::rdtsc().saturating_sub(t0), Ordering::Relaxed);
    }
    c.idle.store(false, Ordering::SeqCst);
    // Awake: next_thread looks at the queues now, so a kick that came in
    // meanwhile is served; clear it so placers may kick this CPU again.
    c.kicked.store(false, Ordering::SeqCst);
}

/// Programs this CPU's one-shot timer: the slice if others wait, else the
/// earliest timer, else nothing (tickless).
fn arm_timer(me: usize, c: &CpuSched) {
    let now = arch::rdtsc();
    let slice = if c.queued.load(Ordering::Relaxed) > 0 && !c.idle.load(Ordering::Relaxed) {
        Some(now + crate::time::ns_to_tsc(SLICE_NS))
    } else {
        None
    };
    // While SQPOLL rings are awake a CPU running user code ticks, so the
    // poller gets it (cap::sqpoll).
    let poll = (crate::cap::sqpoll::tick_needed() && !c.idle.load(Ordering::Relaxed))
        .then(|| now + crate::time::ns_to_tsc(crate::cap::sqpoll::POLL_TICK_NS));
    let deadline = [slice, timer::earliest(me), poll]
        .into_iter()
        .flatten()
        .min();
    match deadline {
        None => {
            if c.armed_tsc.swap(0, Ordering::Relaxed) != 0 {
                crate::time::disarm();
            }
        }
        Some(d) => {
            let armed = c.armed_tsc.load(Ordering::Relaxed);
            // Keep an earlier pending deadline; re-arm only when it moves earlier
            // or nothing is armed.
            if armed == 0 || d < armed {
                c.armed_tsc.store(d, Ordering::Relaxed);
                crate::time::arm_oneshot_ns(crate::time::tsc_to_ns(d.saturating_sub(now)).max(1));
            }
        }
    }
}

/// Runs this CPU's expired timers.
pub fn run_expired_timers(me: usize) {
    // One event at a time, outside the heap lock; a burst of expiries
    // answers other CPUs' requests between events.
    while let Some(ev) = timer::pop_expired(me, arch::rdtsc()) {
        match ev {
            TimerEvent::WaitTimeout { thread, seq } => wait_timeout(thread, seq),
            TimerEvent::Sleep {
                thread,
                id,
                user_data,
            } => crate::cap::ops::sleep_fired(thread, id, user_data),
            TimerEvent::ParkTimeout { key, thread, seq } => {
                crate::cap::park::timeout(key, thread, seq)
            }
            TimerEvent::Watchdog => crate::init::watchdog_fired(),
            TimerEvent::Finish => crate::init::finish_now(),
        }
        crate::smp::answer_requests();
    }
}

fn wait_timeout(r: super::thread::ThreadRef, seq: u64) {
    let Some(t) = super::thread::lookup(r) else {
        return;
    };
    let mut ti = t.inner.lock();
    if let RunState::Blocked { seq: s, .. } = ti.state {
        if s == seq {
            ti.wait_timer = None;
            ti.state = RunState::Runnable;
            let last = ti.last_cpu;
            drop(ti);
            cpu::place_woken(&t, last);
        }
    }
}
