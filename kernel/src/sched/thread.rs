//! Threads and generation-checked thread references.
//!
//! A [`Thread`] is shared (`Arc`) between its process, the run queue or CPU
//! that holds it, and the registry. Other CPUs and kernel objects (timers,
//! park queues, joiners, thread handles) refer to it only by [`ThreadRef`]
//! (registry index + generation): a lookup after the thread was reaped and
//! its slot reused yields `None`, never another thread.
//!
//! Everything mutable sits under the thread's own lock (`inner`): the run
//! state, the saved user context, the ring bookkeeping and the completion
//! overflow list. Lock order: process lock, then thread lock, then a run
//! queue lock.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use abi::ring::Cqe;

use super::timer::TimerHandle;
use crate::arch::fpu::FpuState;
use crate::arch::TrapFrame;
use crate::mm::ring_mem::RingPages;
use crate::proc::Process;
use crate::sync::{class, CachePadded, IrqMutex};

/// A generation-checked reference to a thread: a registry slot and the
/// 64-bit generation it was issued for. Kernel-internal (timer events,
/// park entries, joiners, thread-handle capabilities); user space sees
/// only capability slot numbers.
pub type ThreadRef = klib::slots::SlotRef<u64>;

/// Where a thread is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// In a run queue (or about to be put in one); its context is saved.
    Runnable,
    /// Resident on this CPU; its context is in that CPU's registers.
    Running(usize),
    /// Waiting in `cap_enter` for `min` completions; context saved.
    Blocked {
        /// Completions it waits for.
        min: u32,
        /// Identifies this wait, so a stale timeout cannot end a later one.
        seq: u64,
    },
    /// Ended; never runs again.
    Dead,
}

/// Who waits for a thread's exit.
#[derive(Clone, Copy, Debug)]
pub struct Joiner {
    /// The joining thread.
    pub thread: ThreadRef,
    /// Its submission's user_data.
    pub user_data: u64,
}

/// Its ring's SQPOLL mode (cap::sqpoll owns the logic).
#[derive(Clone, Copy, Debug)]
pub struct SqPollMode {
    /// Idle time after which the poller stops polling (TSC ticks).
    pub idle_tsc: u64,
    /// When the poller last found a new entry (or the ring woke).
    pub last_active_tsc: u64,
    /// NEED_WAKEUP published; not polled until a wakeup.
    pub asleep: bool,
}

/// A thread's ring counters (RingStats op, RINGSTAT lines).
#[derive(Default)]
pub struct RingCounters {
    /// System calls it made.
    pub syscalls: AtomicU64,
    /// Its SQEs the SQPOLL poller consumed.
    pub polled: AtomicU64,
    /// Times its sleeping ring was woken by `cap_enter`.
    pub wakeups: AtomicU64,
}

/// The mutable part of a thread.
pub struct ThreadInner {
    /// Run state.
    pub state: RunState,
    /// Saved user registers (valid unless `Running`).
    pub frame: TrapFrame,
    /// Saved FS base (TLS).
    pub fs_base: u64,
    /// Saved FPU/SSE state.
    pub fpu: Box<FpuState>,
    /// The ring's frames (None once freed).
    pub ring: Option<RingPages>,
    /// Kernel copy of the SQ head (user space cannot move it).
    pub sq_head: u32,
    /// Kernel copy of the CQ tail.
    pub cq_tail: u32,
    /// Completions waiting for CQ room, in order.
    pub overflow: VecDeque<Cqe>,
    /// The process is ending or the thread exited: it must not run again.
    pub kill: bool,
    /// When resumed from a `cap_enter` wait, rax gets the CQ count.
    pub resume_cap_enter: bool,
    /// Sequence for waits (see [`RunState::Blocked`]).
    pub wait_seq: u64,
    /// Operations that will complete later, started (`issued`) and
    /// completed (`delivered`); their difference is bounded (back-pressure).
    pub issued: u64,
    /// See `issued`.
    pub delivered: u64,
    /// CPU it last ran on.
    pub last_cpu: usize,
    /// Exit value once it ended.
    pub exit_value: Option<i64>,
    /// Who waits to join it.
    pub joiner: Option<Joiner>,
    /// A thread handle to it exists (it stays in the registry until joined
    /// or the handle is closed).
    pub handle_open: bool,
    /// Its exit value was collected by a join.
    pub joined: bool,
    /// Death bookkeeping done (ring freed, joiner told, process counted).
    pub reaped: bool,
    /// Everything below is what the thread waits for; its death cancels
    /// or removes each, so nothing it started outlives it.
    /// The timeout of its current cap_enter wait.
    pub wait_timer: Option<TimerHandle>,
    /// Pending TimerSleeps, by sleep id.
    pub sleeps: BTreeMap<u64, TimerHandle>,
    /// Its entries in the park table, as (word key, seq).
    pub parks: BTreeSet<(abi::memobj::ParkKey, u64)>,
    /// Its pending ProcWaits, as token -> the process waited for.
    pub proc_waits: BTreeMap<u64, alloc::sync::Weak<Process>>,
    /// Next sleep id.
    pub next_sleep_id: u64,
    /// Its ring's SQPOLL mode; None: its own `cap_enter` consumes the SQ.
    pub sqpoll: Option<SqPollMode>,
    /// It was in SQPOLL mode at some point (reported at its death).
    pub sqpoll_used: bool,
    /// A SetTls the poller ran while the thread was running on another
    /// CPU: the base, and the completion that CPU posts once it loaded it.
    pub tls_pending: Option<(u64, Cqe)>,
}

/// A thread.
pub struct Thread {
    /// Thread id (unique for the kernel's lifetime).
    pub tid: u64,
    /// Its registry reference.
    pub tref: ThreadRef,
    /// Its process.
    pub process: Arc<Process>,
    /// Where its ring is mapped in the process.
    pub ring_addr: u64,
    /// Mutable state.
    pub inner: IrqMutex<ThreadInner, class::Thread>,
    /// Bit mask of the CPUs it has run on.
    pub cpus_ran: AtomicU64,
    /// TSC cycles it spent in user mode.
    pub busy_cycles: AtomicU64,
    /// Ring counters.
    pub ring_stats: RingCounters,
    /// Who may consume its SQ in SQPOLL mode (cap::sqpoll's owner word).
    pub poll_owner: AtomicU64,
}

impl Thread {
    /// Records that it ran on `cpu` for `cycles`.
    pub fn account(&self, cpu: usize, cycles: u64) {
        self.cpus_ran.fetch_or(1 << cpu, Ordering::Relaxed);
        self.busy_cycles.fetch_add(cycles, Ordering::Relaxed);
        self.process.cpus_ran.fetch_or(1 << cpu, Ordering::Relaxed);
        self.process
            .busy_cycles
            .fetch_add(cycles, Ordering::Relaxed);
    }
}

/// The registry: every live thread by [`ThreadRef`], in two parts.
///
/// - Which slot a new thread gets, and its generation, comes from
///   `klib::slots` (64-bit generations that never wrap, a slot retired
///   rather than wrapped, first-in first-out reuse; unit-tested there),
///   under [`ALLOC`]. Only thread creation and reaping take it.
/// - The threads themselves sit in a table of slots, each under its own
///   lock on its own cache line, in chunks allocated on first use and
///   never freed. A lookup takes only its slot's lock, so completions
///   posted to different threads never serialize, and a stale reference
///   (generation moved on, or slot emptied) resolves to `None`, never to
///   a later thread in the same slot.
///
/// Lock order: `ALLOC`, then one slot lock; nothing is taken under a slot
/// lock (a thread's last reference is dropped after it is released).
type SlotAlloc = klib::slots::Slots<(), u64>;

static ALLOC: IrqMutex<SlotAlloc, class::RegistryAlloc> =
    IrqMutex::new(SlotAlloc::new(MAX_THREADS));
static NEXT_TID: AtomicU64 = AtomicU64::new(1);

/// Most threads alive at once.
pub const MAX_THREADS: usize = 16 * 1024;

/// Slots per chunk of the table (a chunk is 64 cache lines).
const CHUNK_SLOTS: usize = 64;

/// One registry slot: the generation its current (or last) thread was
/// issued, and the thread while it is registered.
struct Entry {
    generation: u64,
    thread: Option<Arc<Thread>>,
}

type SlotLock = CachePadded<IrqMutex<Entry, class::RegistrySlot>>;

struct Chunk([SlotLock; CHUNK_SLOTS]);

#[allow(clippy::declare_interior_mutable_const)]
const NO_CHUNK: Once<&'static Chunk> = Once::new();
/// The table: chunk `i` holds slots `i * CHUNK_SLOTS ..`; set once.
static TABLE: [Once<&'static Chunk>; MAX_THREADS / CHUNK_SLOTS] =
    [NO_CHUNK; MAX_THREADS / CHUNK_SLOTS];

/// Slot `index`, if its chunk exists.
fn slot(index: u32) -> Option<&'static SlotLock> {
    let i = index as usize;
    let chunk = TABLE.get(i / CHUNK_SLOTS)?.get()?;
    Some(&chunk.0[i % CHUNK_SLOTS])
}

/// Slot `index`, allocating its chunk the first time (under `ALLOC`).
fn slot_or_new(index: u32) -> &'static SlotLock {
    let i = index as usize;
    let chunk = TABLE[i / CHUNK_SLOTS].call_once(|| {
        #[allow(clippy::declare_interior_mutable_const)]
        const EMPTY: SlotLock = CachePadded(IrqMutex::new(Entry {
            generation: 0,
            thread: None,
        }));
        alloc::boxed::Box::leak(alloc::boxed::Box::new(Chunk([EMPTY; CHUNK_SLOTS])))
    });
    &chunk.0[i % CHUNK_SLOTS]
}

/// Creates a thread (not yet runnable anywhere) and registers it; when the
/// registry is full, hands the ring back.
pub fn create(
    process: Arc<Process>,
    ring_addr: u64,
    ring: RingPages,
    frame: TrapFrame,
    fs_base: u64,
) -> Result<Arc<Thread>, RingPages> {
    let mut reg = ALLOC.lock();
    let Some(tref) = reg.vacant() else {
        return Err(ring);
    };
    let slot = slot_or_new(tref.index());
    let t = Arc::new(Thread {
        tid: NEXT_TID.fetch_add(1, Ordering::Relaxed),
        tref,
        process,
        ring_addr,
        inner: IrqMutex::new(ThreadInner {
            state: RunState::Runnable,
            frame,
            fs_base,
            fpu: Box::new(FpuState::new()),
            ring: Some(ring),
            sq_head: 0,
            cq_tail: 0,
            overflow: VecDeque::new(),
            kill: false,
            resume_cap_enter: false,
            wait_seq: 0,
            issued: 0,
            delivered: 0,
            last_cpu: 0,
            exit_value: None,
            joiner: None,
            handle_open: false,
            joined: false,
            reaped: false,
            wait_timer: None,
            sleeps: BTreeMap::new(),
            parks: BTreeSet::new(),
            proc_waits: BTreeMap::new(),
            next_sleep_id: 0,
            sqpoll: None,
            sqpoll_used: false,
            tls_pending: None,
        }),
        cpus_ran: AtomicU64::new(0),
        busy_cycles: AtomicU64::new(0),
        ring_stats: RingCounters::default(),
        poll_owner: AtomicU64::new(0),
    });
    // `vacant` named the slot `insert` fills: same table, same lock held.
    let inserted = reg.insert(());
    assert!(
        inserted.is_ok_and(|r| r == tref),
        "thread registry: the vacant slot changed under its lock"
    );
    *slot.lock() = Entry {
        generation: tref.generation(),
        thread: Some(t.clone()),
    };
    Ok(t)
}

/// Follows a reference; `None` if the thread was reaped (stale). Takes
/// only the slot's own lock.
pub fn lookup(r: ThreadRef) -> Option<Arc<Thread>> {
    let e = slot(r.index())?.lock();
    if e.generation != r.generation() {
        return None;
    }
    e.thread.clone()
}

/// Prints one `THREAD` line per registered thread (a watchdog report: what
/// each thread waits for when a scenario stalls). Takes each slot's lock
/// and then the thread's lock, one thread at a time.
pub fn report() {
    for chunk in TABLE.iter().filter_map(|c| c.get()) {
        for slot in chunk.0.iter() {
            let Some(t) = slot.lock().thread.clone() else {
                continue;
            };
            let ti = t.inner.lock();
            let sq_tail = ti.ring.as_ref().map(|r| r.sq_tail());
            kprintln!(
                "THREAD tid={} pid={} state={:?} sqpoll={:?} sq_head={} sq_tail={:?} cq_ready={} in_flight={} owner={:#x}",
                t.tid,
                t.process.pid,
                ti.state,
                ti.sqpoll.map(|m| m.asleep),
                ti.sq_head,
                sq_tail,
                crate::cap::ring::cq_ready(&ti),
                crate::cap::ring::in_flight(&ti),
                t.poll_owner.load(Ordering::Relaxed),
            );
        }
    }
}

/// Removes a thread from the registry: its references go stale at once.
pub fn unregister(r: ThreadRef) {
    let mut reg = ALLOC.lock();
    if reg.remove(r).is_none() {
        return;
    }
    let removed = slot(r.index()).and_then(|s| s.lock().thread.take());
    drop(reg);
    // The Arc is dropped after the locks (a last reference frees the thread).
    drop(removed);
}

// The heap charge of a thread covers its record (in its Arc), its FPU
// area and its registry slot (generation, value, free-list index); see
// mm::budget.
const _: () = assert!(
    core::mem::size_of::<Thread>()
        + 2 * core::mem::size_of::<usize>()
        + core::mem::size_of::<FpuState>()
        + core::mem::size_of::<ThreadRef>()
        + core::mem::size_of::<SlotLock>()
        + 4
        + 64
        <= crate::mm::budget::THREAD_HEAP_BYTES as usize
);
