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
//! adding or cancelling; then a heap lock, then a cancel inbox (the owner
//! drains its inbox under its heap lock; a remote cancel takes the inbox
//! alone).

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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

/// Each CPU's earliest deadline (`u64::MAX`: none), stored under its
/// heap lock after every change. The owner reads it without the lock on
/// every switch ([`earliest`], and [`pop_expired`] when nothing is due),
/// so a remote cancel (a waker ending a wait armed on this CPU) rarely
/// finds the lock held. Only the owner adds, so the owner never reads a
/// value later than its own earliest timer; a remote cancel can leave an
/// earlier one behind for a moment, which costs one early, empty wakeup.
static EARLIEST: [CachePadded<AtomicU64>; MAX_CPUS] =
    [const { CachePadded(AtomicU64::new(u64::MAX)) }; MAX_CPUS];

/// Publishes `heap`'s earliest deadline for `cpu` (its lock held).
fn publish(cpu: usize, heap: &TimerHeap<TimerEvent>) {
    EARLIEST[cpu].store(heap.earliest().unwrap_or(u64::MAX), Ordering::Release);
}

/// Adds a timer on this CPU.
pub fn add(deadline_tsc: u64, event: TimerEvent) -> TimerHandle {
    let cpu = crate::arch::cpu_id();
    let mut heap = TIMERS[cpu].lock();
    drain(cpu, &mut heap);
    let key = heap.insert(deadline_tsc, event);
    publish(cpu, &heap);
    TimerHandle { cpu, key }
}

/// Cancelled keys waiting for their heap's owner: a remote cancel leaves
/// its key here instead of taking the heap lock.
struct Inbox {
    keys: [Option<TimerKey>; INBOX_SLOTS],
    len: usize,
}

/// Keys one CPU's inbox holds; a cancel that finds it full takes the heap
/// lock and waits.
const INBOX_SLOTS: usize = 64;

type InboxLock = IrqMutex<Inbox, crate::sync::class::TimerInbox>;

static INBOX: [CachePadded<InboxLock>; MAX_CPUS] = [const {
    CachePadded(IrqMutex::new(Inbox {
        keys: [None; INBOX_SLOTS],
        len: 0,
    }))
}; MAX_CPUS];

/// Keys waiting in each CPU's inbox (changed under its lock, read
/// without it): the owner skips the inbox lock when nothing waits.
static WAITING: [CachePadded<AtomicUsize>; MAX_CPUS] =
    [const { CachePadded(AtomicUsize::new(0)) }; MAX_CPUS];

/// Cancels the keys waiting in `cpu`'s inbox (its heap lock held). A key
/// that arrives after the check waits for the next drain; its timer at
/// worst fires, which is harmless (see [`cancel`]).
fn drain(cpu: usize, heap: &mut TimerHeap<TimerEvent>) {
    if WAITING[cpu].load(Ordering::Acquire) == 0 {
        return;
    }
    // Take the keys out in small batches and cancel them with the inbox
    // lock released: a remote cancel waits at most for a few copies, never
    // for heap work (which is emulated, about 1 us an instruction, under PVM).
    loop {
        let mut batch = [None; 8];
        let n = {
            let mut inbox = INBOX[cpu].lock();
            let n = inbox.len.min(batch.len());
            let len = inbox.len;
            for (i, b) in batch.iter_mut().enumerate().take(n) {
                *b = inbox.keys[len - 1 - i].take();
            }
            inbox.len = len - n;
            WAITING[cpu].store(inbox.len, Ordering::Relaxed);
            n
        };
        for key in batch.into_iter().take(n).flatten() {
            heap.cancel(key);
        }
        if n < batch.len() {
            return;
        }
    }
}

/// Cancels a timer (nothing if it already fired or was cancelled). Its
/// own CPU's heap is changed at once. For another CPU's heap (a waker
/// ending a wait armed there) the key goes to the owner's inbox, which
/// the owner empties under its heap lock before it next adds or pops a
/// timer: only the owner takes its heap lock (unless the inbox is full),
/// so a waker never spins on it and the owner never waits for a waker. An event that fires before
/// its cancel is applied is harmless: every handler checks that its wait
/// still exists (`post_if`, the wait's sequence number, the park entry).
pub fn cancel(h: TimerHandle) {
    if h.cpu != crate::arch::cpu_id() {
        let mut inbox = INBOX[h.cpu].lock();
        if inbox.len < INBOX_SLOTS {
            let i = inbox.len;
            inbox.keys[i] = Some(h.key);
            inbox.len += 1;
            WAITING[h.cpu].store(inbox.len, Ordering::Release);
            return;
        }
    }
    let mut heap = TIMERS[h.cpu].lock();
    drain(h.cpu, &mut heap);
    heap.cancel(h.key);
    publish(h.cpu, &heap);
}

/// The earliest deadline on `cpu`, if any (read without its lock).
pub fn earliest(cpu: usize) -> Option<u64> {
    let t = EARLIEST[cpu].load(Ordering::Acquire);
    (t != u64::MAX).then_some(t)
}

/// Removes and returns one event on `cpu` due at `now_tsc`; takes the
/// lock only when something may be due.
pub fn pop_expired(cpu: usize, now_tsc: u64) -> Option<TimerEvent> {
    if EARLIEST[cpu].load(Ordering::Acquire) > now_tsc {
        return None;
    }
    let mut heap = TIMERS[cpu].lock();
    drain(cpu, &mut heap);
    let ev = heap.pop_due(now_tsc).map(|(_, ev)| ev);
    publish(cpu, &heap);
    ev
}

/// Timers pending on `cpu` (for the end-of-scenario memory check).
pub fn pending(cpu: usize) -> usize {
    let mut heap = TIMERS[cpu].lock();
    drain(cpu, &mut heap);
    publish(cpu, &heap);
    heap.len()
}
