//! Per-CPU scheduler state: run queues, placement, wakeups and stealing.
//!
//! Each CPU owns its [`CpuSched`]: only that CPU runs threads from it,
//! other CPUs only push to it (placement, wakeup) or pop from its back
//! (stealing), under its queue lock. There is no global scheduler lock.
//! CPU ids need not be dense (`smp::online`): every loop here walks the
//! online set. The policy (which CPU, whether a CPU has work to spare)
//! is pure logic in `klib::cpuset`, unit-tested on the host.
//!
//! Placement claims its target. A placer reads the loads (queued +
//! reserved + running), picks a CPU, then adds one to its `reserved`
//! (SeqCst) before it pushes. If the load it finds at that moment, minus
//! its own reservation, exceeds the load it decided on, another placer
//! claimed the same CPU meanwhile: it gives the reservation back and picks
//! again (at most [`PLACE_ATTEMPTS`] times, then it keeps its pick). Of
//! two wakers that both saw one idle CPU, exactly one keeps it.
//!
//! Idle handoff (no lost wakeup): an idle CPU clears `kicked`, sets `idle`
//! (SeqCst) and only then takes its last look at every online queue and
//! halts with `sti; hlt`; a placer pushes under the queue lock, stores
//! `queued` (SeqCst) and only then reads `idle` flags. One of the two sees
//! the other: the idle CPU finds the thread (its own or one to steal), or
//! the placer sends the IPI, and an IPI pending at `sti` ends the `hlt`.
//!
//! Halted CPUs get the work. After a push, if the target now has a thread
//! to spare (`klib::cpuset::has_spare`: one running and one waiting, or
//! two waiting), the placer kicks one halted CPU: the first online CPU
//! (other than the target and itself) that is idle with nothing queued or
//! reserved and whose `kicked` it turns from false to true; the kicked
//! CPU wakes, finds its queue empty and steals from the longest queue.
//! The `kicked` claim keeps two placers from kicking the same CPU while a
//! third stays halted. Preemption re-queues the running thread through
//! the same path, so a CPU that keeps two runnable threads offers one to
//! a halted CPU at every slice: no CPU stays halted for more than one
//! slice while another has two runnable threads.
//!
//! Lock order: a thread lock (held by wakers) before a queue lock; one
//! queue lock at a time; the IPI is sent after the queue lock is dropped.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use klib::cpuset;

use super::thread::Thread;
use crate::mm::addr_space::AddrSpace;
use crate::smp::{self, MAX_CPUS};
use crate::sync::{class, CachePadded, IrqMutex};

/// How often a placer picks again after losing its target to another
/// placer (see the module doc); then it keeps its last pick, and the kick
/// protocol moves the extra thread to a halted CPU.
pub const PLACE_ATTEMPTS: usize = 4;

/// One CPU's scheduler state, laid out by who touches it: the queue and
/// the placement counters are read and written by every placer and waker;
/// the rest is written by the owning CPU only (`user_since` on every entry
/// to user mode), on lines of their own so those writes never invalidate
/// the lines the wakers read. `repr(C)` keeps the order; [`CachePadded`]
/// starts a new line.
#[repr(C)]
pub struct CpuSched {
    /// Runnable threads waiting for this CPU.
    pub queue: CachePadded<IrqMutex<VecDeque<Arc<Thread>>, class::RunQueue>>,
    /// `queue.len()`, readable without the lock (placement, stealing).
    pub queued: AtomicUsize,
    /// Placements that chose this CPU and have not pushed yet (claims).
    pub reserved: AtomicUsize,
    /// Halted in idle, or about to be.
    pub idle: AtomicBool,
    /// A placer has sent this idle CPU an IPI to steal spare work; no
    /// other placer kicks it until it has looked (cleared by its own CPU
    /// on the way into idle and out of it).
    pub kicked: AtomicBool,
    /// TSC when user mode was last entered here (own CPU, every entry).
    pub user_since: CachePadded<AtomicU64>,
    /// A queued thread should preempt the current one at the next exit.
    pub need_resched: AtomicBool,
    /// The one-shot deadline currently armed (0 = none).
    pub armed_tsc: AtomicU64,
    /// The thread resident here (own CPU only).
    pub current: IrqMutex<Option<Arc<Thread>>, class::CpuCurrent>,
    /// The user address space loaded in CR3 (own CPU only).
    pub space: IrqMutex<Option<Arc<AddrSpace>>, class::CpuSpace>,
}

impl CpuSched {
    const fn new() -> CpuSched {
        CpuSched {
            queue: CachePadded(IrqMutex::new(VecDeque::new())),
            queued: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
            user_since: CachePadded(AtomicU64::new(0)),
            need_resched: AtomicBool::new(false),
            armed_tsc: AtomicU64::new(0),
            current: IrqMutex::new(None),
            space: IrqMutex::new(None),
        }
    }

    /// Its placement counters, for the claim and kick protocol of
    /// `klib::cpuset::CpuLoad`.
    fn counters(&self) -> cpuset::CpuLoad<'_> {
        cpuset::CpuLoad {
            queued: &self.queued,
            reserved: &self.reserved,
            idle: &self.idle,
            kicked: &self.kicked,
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW: CpuSched = CpuSched::new();
/// Every CPU's state; each starts on its own cache line (its padded
/// fields align it).
static CPUS: [CpuSched; MAX_CPUS] = [NEW; MAX_CPUS];

/// CPU `cpu`'s scheduler state.
pub fn cpu(cpu: usize) -> &'static CpuSched {
    &CPUS[cpu]
}

fn load_of(c: usize) -> usize {
    CPUS[c].counters().load()
}

/// Places a new thread on the least-loaded online CPU (search from
/// `prefer`), claiming it first (see the module doc).
pub fn place_new(t: Arc<Thread>, prefer: usize) {
    place(t, || {
        cpuset::least_loaded(smp::online(), prefer, load_of).unwrap_or((0, 0))
    });
}

/// Places a thread its waker has just made Runnable: its last CPU, unless
/// that one is busy and another is idle (`klib::cpuset::wake_target`).
/// Takes only a queue lock, so the caller may hold the thread's lock.
pub fn place_woken(t: &Arc<Thread>, last_cpu: usize) {
    place(t.clone(), || {
        cpuset::wake_target(smp::online(), last_cpu, load_of).unwrap_or((0, 0))
    });
}

/// Claims a target from `pick` (the CPU and the load it saw there) and
/// pushes `t` there.
fn place(t: Arc<Thread>, pick: impl Fn() -> (usize, usize)) {
    for attempt in 1..=PLACE_ATTEMPTS {
        let (target, seen) = pick();
        let c = CPUS[target].counters();
        if attempt == PLACE_ATTEMPTS {
            c.claim();
        } else if !c.try_claim(seen) {
            // Another placer took it since we looked: pick again.
            continue;
        }
        push(t, target, true);
        return;
    }
}

/// Puts a Runnable thread on `target`'s queue (no claim: the CPU's own
/// preemption, or a caller that must use this CPU).
pub fn enqueue(t: Arc<Thread>, target: usize) {
    push(t, target, false);
}

/// Pushes `t` (releasing the caller's reservation if `claimed`), wakes
/// `target` if it is another CPU that is idle or had nothing queued (its
/// tick may be off), and kicks a halted CPU if `target` now has a thread
/// to spare.
fn push(t: Arc<Thread>, target: usize, claimed: bool) {
    let c = &CPUS[target];
    let waiting = {
        let mut q = c.queue.lock();
        q.push_back(t);
        c.queued.store(q.len(), Ordering::SeqCst);
        if claimed {
            c.counters().release();
        }
        q.len()
    };
    let me = crate::arch::cpu_id();
    let idle = c.idle.load(Ordering::SeqCst);
    if target != me && (idle || waiting == 1) {
        smp::send_resched(target);
    }
    if cpuset::has_spare(waiting, !idle) {
        kick_halted(target, me);
    }
}

/// Sends one halted CPU (not `busy`, not this one) a reschedule IPI so
/// that it steals from `busy`; does nothing when no CPU is halted.
fn kick_halted(busy: usize, me: usize) {
    let candidates = smp::online().without(busy).without(me);
    let kicked = cpuset::pick_halted(candidates, busy + 1, |c| CPUS[c].counters().try_kick());
    if let Some(c) = kicked {
        smp::send_resched(c);
    }
}

/// Pops the next runnable thread of this CPU.
pub fn pop_local(me: usize) -> Option<Arc<Thread>> {
    let mut q = CPUS[me].queue.lock();
    let t = q.pop_front();
    CPUS[me].queued.store(q.len(), Ordering::SeqCst);
    t
}

/// Whether another online CPU has a thread waiting in its queue (the idle
/// CPU's last look before it halts: SeqCst, after it set `idle`).
pub fn others_have_queued(me: usize) -> bool {
    smp::online()
        .without(me)
        .iter()
        .any(|c| CPUS[c].queued.load(Ordering::SeqCst) > 0)
}

/// Steals one thread from the online CPU with the longest queue.
pub fn steal(me: usize) -> Option<Arc<Thread>> {
    let others = smp::online().without(me);
    let victim = others
        .iter()
        .max_by_key(|&c| CPUS[c].queued.load(Ordering::SeqCst))?;
    if CPUS[victim].queued.load(Ordering::SeqCst) == 0 {
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
