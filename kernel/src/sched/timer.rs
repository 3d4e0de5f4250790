//! Per-CPU timers: sleeps, cap_enter and park timeouts, the watchdog.
//!
//! A timer lives on the CPU that armed it, in that CPU's
//! [`klib::timer_heap::TimerHeap`]: adding, cancelling and taking the
//! earliest are O(log n), so no path scans a list a program can grow
//! (issue 11, defect 3), and its memory follows the live timers (each is
//! charged to a budget while it lives; nothing stays behind after). Adding returns a [`TimerHandle`]; whoever owns
//! the wait (a thread's sleep set, a park entry, a cap_enter wait) keeps
//! it and cancels the timer when the wait ends early or its thread dies,
//! so no timer outlives what it was for. A stale handle cancels nothing.
//!
//! The CPU keeps its one-shot timer programmed for the earliest deadline
//! (and is otherwise tickless). Expiry runs in the timer interrupt, one
//! event at a time, outside the heap lock.
//!
//! Lock order: a thread's lock (or a park bucket's) may be held while
//! adding or cancelling; the heap lock is innermost.

use klib::timer_heap::{TimerHeap, TimerKey};

use super::thread::ThreadRef;
use crate::smp::MAX_CPUS;
use crate::sync::{CachePadded, IrqMutex};

/// What happens when a timer expires.
#[derive(Clone)]
pub enum TimerEvent {
    /// End a cap_enter wait (if it is still wait `seq`).
    WaitTimeout { thread: ThreadRef, seq: u64 },
    /// Complete a TimerSleep (`id` names it in the thread's sleep set).
    Sleep {
        thread: ThreadRef,
        id: u64,
        user_data: u64,
    },
    /// End a park (if still parked with `seq`).
    ParkTimeout {
        key: abi::memobj::ParkKey,
        thread: ThreadRef,
        seq: u64,
    },
    /// The scenario watchdog.
    Watchdog,
    /// Every program ended: print the verdict.
    Finish,
}

/// Names one pending timer: the CPU whose heap holds it and its key there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerHandle {
    cpu: usize,
    key: TimerKey,
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW: CachePadded<TimerLock> = CachePadded(IrqMutex::new(TimerHeap::new()));
/// Each CPU's timer heap, on its own cache line (other CPUs cancel here).
static TIMERS: [CachePadded<TimerLock>; MAX_CPUS] = [NEW; MAX_CPUS];

type TimerLock = IrqMutex<TimerHeap<TimerEvent>, crate::sync::class::TimerHeap>;

/// Adds a timer on this CPU.
pub fn add(deadline_tsc: u64, event: TimerEvent) -> TimerHandle {
    let cpu = crate::arch::cpu_id();
    let key = TIMERS[cpu].lock().insert(deadline_tsc, event);
    TimerHandle { cpu, key }
}

/// Cancels a timer; false if it already fired or was cancelled.
pub fn cancel(h: TimerHandle) -> bool {
    TIMERS[h.cpu].lock().cancel(h.key).is_some()
}

/// The earliest deadline on `cpu`, if any.
pub fn earliest(cpu: usize) -> Option<u64> {
    TIMERS[cpu].lock().earliest()
}

/// Removes and returns one event on `cpu` due at `now_tsc`.
pub fn pop_expired(cpu: usize, now_tsc: u64) -> Option<TimerEvent> {
    TIMERS[cpu].lock().pop_due(now_tsc).map(|(_, ev)| ev)
}

/// Timers pending on `cpu` (for the end-of-scenario memory check).
pub fn pending(cpu: usize) -> usize {
    TIMERS[cpu].lock().len()
}
