//! Per-CPU timer lists: sleeps, cap_enter and park timeouts, the watchdog.
//!
//! A timer lives on the CPU that armed it; that CPU keeps its one-shot
//! timer programmed for the earliest deadline (and is otherwise tickless).
//! Expiry runs in the timer interrupt, outside the list lock.

use alloc::sync::Weak;
use alloc::vec::Vec;

use super::thread::ThreadRef;
use crate::proc::Process;
use crate::smp::MAX_CPUS;
use crate::sync::IrqMutex;

/// What happens when a timer expires.
#[derive(Clone)]
pub enum TimerEvent {
    /// End a cap_enter wait (if it is still wait `seq`).
    WaitTimeout { thread: ThreadRef, seq: u64 },
    /// Complete a TimerSleep.
    Sleep { thread: ThreadRef, user_data: u64 },
    /// End a park (if still parked with `seq`).
    ParkTimeout {
        process: Weak<Process>,
        addr: u64,
        thread: ThreadRef,
        seq: u64,
    },
    /// The scenario watchdog.
    Watchdog,
}

struct Timer {
    deadline_tsc: u64,
    event: TimerEvent,
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW: IrqMutex<Vec<Timer>> = IrqMutex::new(Vec::new());
static TIMERS: [IrqMutex<Vec<Timer>>; MAX_CPUS] = [NEW; MAX_CPUS];

/// Adds a timer on this CPU.
pub fn add(deadline_tsc: u64, event: TimerEvent) {
    TIMERS[crate::arch::cpu_id()].lock().push(Timer {
        deadline_tsc,
        event,
    });
}

/// Removes the timers on `cpu` that `pred` selects (a wait or park that
/// ended early), so finished waits leave nothing behind.
pub fn cancel(cpu: usize, pred: impl Fn(&TimerEvent) -> bool) {
    TIMERS[cpu].lock().retain(|t| !pred(&t.event));
}

/// The earliest deadline on `cpu`, if any.
pub fn earliest(cpu: usize) -> Option<u64> {
    TIMERS[cpu].lock().iter().map(|t| t.deadline_tsc).min()
}

/// Removes and returns the events on `cpu` due at `now_tsc`.
pub fn take_expired(cpu: usize, now_tsc: u64) -> Vec<TimerEvent> {
    let mut list = TIMERS[cpu].lock();
    let mut due = Vec::new();
    let mut i = 0;
    while i < list.len() {
        if list[i].deadline_tsc <= now_tsc {
            due.push(list.swap_remove(i).event);
        } else {
            i += 1;
        }
    }
    due
}
