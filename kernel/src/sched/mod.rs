//! The scheduler: threads, per-CPU run queues, switching, timers.
//!
//! Every CPU is an independent scheduler owner (see cpu.rs and
//! docs/architecture/scheduling.md for the residency rule and lock order).
//! The kernel runs on one kernel stack per CPU: a thread that leaves the
//! CPU leaves its whole user context (trap frame, FS base, FPU state) in
//! its [`thread::Thread`], so any CPU can resume it.

pub mod cpu;
pub mod switch;
pub mod thread;
pub mod timer;

use core::sync::atomic::Ordering;

use crate::arch::{self, TrapFrame};

pub use switch::{current, exit_to_user};

/// Runs the scheduler on this CPU forever (boot CPU after init, and every AP).
pub fn cpu_main(cpu: usize) -> ! {
    // From here on the scheduler owns this CPU's timer: bring-up left a
    // periodic tick running; stop it, and arm one-shots only when needed
    // (a slice when threads wait, else the earliest timer: tickless).
    crate::time::disarm();
    cpu::cpu(cpu).armed_tsc.store(0, Ordering::Relaxed);
    arch::run_first_user_frame(exit_to_user)
}

/// Entry point of an application processor once it is initialized.
pub fn ap_main(cpu: usize) -> ! {
    cpu_main(cpu)
}

/// Accounts the user time that just ended on this CPU (called on every
/// entry from user mode).
pub fn enter_from_user() {
    let me = arch::cpu_id();
    let c = cpu::cpu(me);
    let now = arch::rdtsc();
    let since = c.user_since.load(Ordering::Relaxed);
    if since != 0 && now > since {
        let cycles = now - since;
        crate::percpu::stats(me)
            .busy_cycles
            .fetch_add(cycles, Ordering::Relaxed);
        if let Some(t) = current() {
            t.account(me, cycles);
        }
    }
    c.user_since.store(0, Ordering::Relaxed);
}

/// The LAPIC timer fired on this CPU.
pub fn timer_tick(frame: &mut TrapFrame) {
    let me = arch::cpu_id();
    cpu::cpu(me).armed_tsc.store(0, Ordering::Relaxed);
    switch::run_expired_timers(me);
    if frame.came_from_user() {
        // The SQPOLL poller's turn on a CPU busy with user code.
        crate::cap::sqpoll::tick(me);
    }
    if cpu::cpu(me).queued.load(Ordering::Relaxed) > 0 {
        cpu::cpu(me).need_resched.store(true, Ordering::Relaxed);
    }
}

/// A reschedule IPI arrived: the exit path re-evaluates the queue.
pub fn resched_ipi(_frame: &mut TrapFrame) {}

/// The system call (both entry paths).
pub fn syscall(frame: &mut TrapFrame) {
    crate::cap::enter::cap_enter(frame);
}

/// A user-mode exception: demand paging, or the end of the process.
pub fn user_fault(frame: &mut TrapFrame, addr: u64) {
    crate::proc::fault::handle(frame, addr);
}
