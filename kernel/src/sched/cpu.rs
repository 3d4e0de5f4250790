//! Per-CPU scheduler state: run queues, placement, wakeups and stealing.
//!
//! Each CPU owns its [`CpuSched`]: only that CPU runs threads from it,
//! other CPUs only push to it (placement, wakeup) or pop from its back
//! (stealing), under its queue lock. There is no global scheduler lock.
//!
//! Idle handoff: an idle CPU sets `idle` (SeqCst) *before* its last look
//! at its queue and halts with `sti; hlt`; a waker pushes under the queue
//! lock and then reads `idle` (SeqCst). One of the two sees the other, so
//! either the idle CPU finds the thread or the waker sends the reschedule
//! IPI, and an IPI pending at `sti` ends the `hlt` (no lost wakeup).

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::thread::Thread;
use crate::mm::addr_space::AddrSpace;
use crate::smp::{self, MAX_CPUS};
use crate::sync::IrqMutex;

/// One CPU's scheduler state.
pub struct CpuSched {
    /// Runnable threads waiting for this CPU.
    pub queue: IrqMutex<VecDeque<Arc<Thread>>>,
    /// `queue.len()`, readable without the lock (placement, stealing).
    pub queued: AtomicUsize,
    /// The thread resident here (own CPU only).
    pub current: IrqMutex<Option<Arc<Thread>>>,
    /// The user address space loaded in CR3 (own CPU only).
    pub space: IrqMutex<Option<Arc<AddrSpace>>>,
    /// Halted in idle, or about to be.
    pub idle: AtomicBool,
    /// A queued thread should preempt the current one at the next exit.
    pub need_resched: AtomicBool,
    /// TSC when user mode was last entered here.
    pub user_since: AtomicU64,
    /// The one-shot deadline currently armed (0 = none).
    pub armed_tsc: AtomicU64,
}

impl CpuSched {
    const fn new() -> CpuSched {
        CpuSched {
            queue: IrqMutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            current: IrqMutex::new(None),
            space: IrqMutex::new(None),
            idle: AtomicBool::new(false),
            need_resched: AtomicBool::new(false),
            user_since: AtomicU64::new(0),
            armed_tsc: AtomicU64::new(0),
        }
    }

    /// Load seen by placement: queued threads plus the running one.
    fn load(&self) -> usize {
        let running = usize::from(!self.idle.load(Ordering::Relaxed));
        self.queued.load(Ordering::Relaxed) + running
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW: CpuSched = CpuSched::new();
static CPUS: [CpuSched; MAX_CPUS] = [NEW; MAX_CPUS];

/// CPU `cpu`'s scheduler state.
pub fn cpu(cpu: usize) -> &'static CpuSched {
    &CPUS[cpu]
}

/// The least-loaded online CPU (ties go to the lowest id after `prefer`).
pub fn least_loaded(prefer: usize) -> usize {
    let n = smp::cpu_count();
    let mut best = prefer % n;
    let mut best_load = CPUS[best].load();
    for i in 1..n {
        let c = (prefer + i) % n;
        let l = CPUS[c].load();
        if l < best_load {
            best = c;
            best_load = l;
        }
    }
    best
}

/// Where a woken thread goes: its last CPU, unless that one is busy and
/// another is idle.
pub fn wake_target(last: usize) -> usize {
    let last = last.min(smp::cpu_count() - 1);
    if CPUS[last].load() == 0 {
        return last;
    }
    let other = least_loaded(last);
    if CPUS[other].load() == 0 {
        other
    } else {
        last
    }
}

/// Puts a Runnable thread on `target`'s queue and, if `target` is another
/// CPU that is idle or has nothing else queued (its tick may be off), sends
/// it a reschedule IPI.
pub fn enqueue(t: Arc<Thread>, target: usize) {
    let was_empty = {
        let mut q = CPUS[target].queue.lock();
        q.push_back(t);
        CPUS[target].queued.store(q.len(), Ordering::SeqCst);
        q.len() == 1
    };
    let me = crate::arch::cpu_id();
    if target != me && (CPUS[target].idle.load(Ordering::SeqCst) || was_empty) {
        smp::send_resched(target);
    }
}

/// Makes a Blocked thread Runnable (caller holds its lock and has set the
/// state) and places it.
pub fn place_woken(t: &Arc<Thread>, last_cpu: usize) {
    enqueue(t.clone(), wake_target(last_cpu));
}

/// Pops the next runnable thread of this CPU.
pub fn pop_local(me: usize) -> Option<Arc<Thread>> {
    let mut q = CPUS[me].queue.lock();
    let t = q.pop_front();
    CPUS[me].queued.store(q.len(), Ordering::SeqCst);
    t
}

/// Steals one thread from the CPU with the longest queue.
pub fn steal(me: usize) -> Option<Arc<Thread>> {
    let n = smp::cpu_count();
    let victim = (0..n)
        .filter(|&c| c != me)
        .max_by_key(|&c| CPUS[c].queued.load(Ordering::Relaxed))?;
    if CPUS[victim].queued.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let mut q = CPUS[victim].queue.lock();
    let t = q.pop_back();
    CPUS[victim].queued.store(q.len(), Ordering::SeqCst);
    drop(q);
    if t.is_some() {
        crate::percpu::stats(me)
            .steals
            .fetch_add(1, Ordering::Relaxed);
    }
    t
}
