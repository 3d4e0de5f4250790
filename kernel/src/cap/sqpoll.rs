//! SQPOLL: rings whose SQ the kernel consumes without `cap_enter`.
//!
//! Consumer model: **per-CPU pollers that adopt rings**, not a kernel
//! context per ring. The kernel has no kernel threads (one kernel stack
//! per CPU, every context is a user thread's trap), and under our PVM KVM
//! ring-0 code runs emulated at about 1 us an instruction, so a spinning
//! context per ring would burn a CPU's worth of emulation for every ring.
//! Instead every CPU polls the awake rings of the poll set in bounded
//! passes, at two moments:
//! - in its idle loop (no runnable thread): it spins over the awake rings,
//!   looking at its run queue between passes, so a runnable user thread
//!   is picked up after at most one pass;
//! - in its timer tick, when the tick interrupted user mode: while a ring
//!   is awake and no CPU polls from its idle loop ([`tick_needed`]), the
//!   exit path arms a tick every [`POLL_TICK_NS`], so under `-smp 1` the
//!   poller gets the CPU even while the submitting thread busy-polls its
//!   CQ, and the interrupted thread gets the CPU back after one pass of at
//!   most [`PASS_SQES`] submissions. When an idle CPU polls, the busy
//!   CPUs are left alone (under PVM each tick costs emulated ring 0).
//!
//! Exactly one consumer per ring: a ring is consumed by its own thread's
//! `cap_enter` while not in SQPOLL mode, and only by the poller that holds
//! its owner word (`Thread::poll_owner`, claimed by compare-and-swap from
//! [`FREE`] to the CPU's id + 1) while in SQPOLL mode; the mode changes
//! only inside the consumption of a RingMode submission, by whichever is
//! the consumer then, and both consumers check the mode under the thread
//! lock before taking each SQE.
//!
//! Thread death stops the consumer first ([`stop_consumer`], called at the
//! top of `proc::exit::thread_died`): a free owner word becomes [`DEAD`]
//! (no poller claims it again); a claimed one gets the [`REAP`] bit and the
//! death is left to the poller, which runs `thread_died` itself when it
//! lets go. So a ring's kernel bookkeeping (in-flight counts, sleeps,
//! parks) is never torn down under a running SQE, and no CPU waits for
//! another (two pollers killing each other's threads cannot deadlock).
//! Ring memory is touched only under the thread lock while `ring` is
//! Some, and death takes it out under that lock: no use after free.
//!
//! Idle and wakeup follow io_uring with the ordering of `abi::ring`
//! (checked in `abi::sqpoll`): after `sq_idle` without new entries the
//! poller sets NEED_WAKEUP, fences, re-reads `sq_tail`, and only then
//! stops polling the ring; `cap_enter` with `ENTER_SQ_WAKEUP` wakes it.
//!
//! Lock order: a thread lock, then the poll-set lock ([`SET`]); the poll
//! pass takes the set lock alone, copies one entry, drops it, and only
//! then looks the thread up and locks it.

use alloc::sync::Arc;
use core::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

use abi::error::Error;
use abi::limits::{SQPOLL_RINGS_MAX, SQ_IDLE_NS_DEFAULT, SQ_IDLE_NS_MAX};
use abi::op::Op;
use abi::ring::{
    Cqe, Sqe, CQ_ENTRIES, RING_FLAG_NEED_WAKEUP, RING_FLAG_SQPOLL, RING_SETUP_ALL,
    RING_SETUP_SQPOLL, SQ_ENTRIES,
};

use super::ops::{done, Outcome};
use super::ring;
use crate::sched::thread::{self, SqPollMode, Thread, ThreadInner, ThreadRef};
use crate::sync::IrqMutex;

/// Poll tick while any ring is awake and no CPU polls from its idle loop
/// (1 ms, the default idle time): how long a submission may wait for a
/// poller when every CPU is busy with user code. Under our PVM KVM a tick
/// and its pass run emulated (about 1 us an instruction), so a faster
/// tick would take most of the interrupted CPU.
pub const POLL_TICK_NS: u64 = 1_000_000;
/// Most submissions one poll pass consumes, all rings together: the
/// bound on the ring-0 time a pass takes from the interrupted thread.
pub const PASS_SQES: u32 = SQ_ENTRIES;

/// Owner word: nobody consumes the ring now.
const FREE: u64 = 0;
/// Owner word: the thread died; nobody consumes the ring ever again.
const DEAD: u64 = u64::MAX;
/// Owner word bit: the thread died while a poller held the ring; that
/// poller runs the death when it lets go.
const REAP: u64 = 1 << 63;

/// One ring of the poll set.
#[derive(Clone, Copy)]
struct Entry {
    thread: ThreadRef,
    awake: bool,
}

/// The rings in SQPOLL mode: a dense table (no heap), `len` used.
struct PollSet {
    entries: [Option<Entry>; SQPOLL_RINGS_MAX],
    len: usize,
}

static SET: IrqMutex<PollSet, crate::sync::class::SqpollSet> = IrqMutex::new(PollSet {
    entries: [None; SQPOLL_RINGS_MAX],
    len: 0,
});
/// Rings awake (polled); readable without the lock by the idle loop and
/// the timer.
static AWAKE: AtomicUsize = AtomicUsize::new(0);
/// Where the next pass starts, so no ring is always last.
static CURSOR: AtomicUsize = AtomicUsize::new(0);
/// CPUs polling from their idle loop (bit per CPU). While one does, the
/// CPUs busy with user code take no poll tick: the idle CPU is the poller.
static IDLE_POLLING: AtomicU64 = AtomicU64::new(0);

const _: () = assert!(crate::smp::MAX_CPUS <= 64);

/// Whether any ring is awake (so CPUs must keep polling).
pub fn awake() -> bool {
    AWAKE.load(Ordering::SeqCst) > 0
}

/// Whether a CPU busy with user code must tick for the poller: a ring is
/// awake and no CPU polls from its idle loop. The CPU that leaves idle
/// polling clears its bit before its exit path arms its timer, so while
/// a ring is awake some CPU always either idle-polls or ticks.
pub fn tick_needed() -> bool {
    awake() && IDLE_POLLING.load(Ordering::SeqCst) == 0
}

/// This CPU leaves its idle loop with a thread to run.
pub fn idle_end(me: usize) {
    let bit = 1u64 << me;
    if IDLE_POLLING.load(Ordering::Relaxed) & bit != 0 {
        IDLE_POLLING.fetch_and(!bit, Ordering::SeqCst);
    }
}

impl PollSet {
    fn find(&self, r: ThreadRef) -> Option<usize> {
        (0..self.len).find(|&i| self.entries[i].is_some_and(|e| e.thread == r))
    }

    fn set_awake(&mut self, r: ThreadRef, awake: bool) {
        if let Some(i) = self.find(r) {
            if let Some(e) = &mut self.entries[i] {
                if e.awake != awake {
                    e.awake = awake;
                    // SeqCst: the waker's increment and its later look at
                    // IDLE_POLLING pair with idle_poll's clear-then-recheck.
                    if awake {
                        AWAKE.fetch_add(1, Ordering::SeqCst);
                    } else {
                        AWAKE.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
        }
    }

    fn remove(&mut self, r: ThreadRef) {
        self.set_awake(r, false);
        if let Some(i) = self.find(r) {
            self.len -= 1;
            self.entries[i] = self.entries[self.len];
            self.entries[self.len] = None;
        }
    }
}

fn publish_flags(ti: &ThreadInner) {
    let flags = match ti.sqpoll {
        None => 0,
        Some(m) if m.asleep => RING_FLAG_SQPOLL | RING_FLAG_NEED_WAKEUP,
        Some(_) => RING_FLAG_SQPOLL,
    };
    if let Some(r) = &ti.ring {
        r.set_flags(flags);
    }
}

/// Checks ring setup flags and idle time; the idle time in TSC ticks.
pub fn check_setup(flags: u64, idle_ns: u64) -> Result<u64, Error> {
    if flags & !RING_SETUP_ALL != 0 || idle_ns > SQ_IDLE_NS_MAX {
        return Err(Error::Invalid);
    }
    let ns = if idle_ns == 0 {
        SQ_IDLE_NS_DEFAULT
    } else {
        idle_ns
    };
    Ok(crate::time::ns_to_tsc(ns))
}

/// Sets `t`'s ring mode (RingMode, or ThreadSpawn's setup flags) under
/// its lock `ti`. The caller is the ring's current consumer.
pub fn set_mode(t: &Thread, ti: &mut ThreadInner, flags: u64, idle_ns: u64) -> Result<(), Error> {
    let idle_tsc = check_setup(flags, idle_ns)?;
    if ti.ring.is_none() || ti.kill {
        return Err(Error::Stale);
    }
    let now = crate::arch::rdtsc();
    if flags & RING_SETUP_SQPOLL == 0 {
        if ti.sqpoll.take().is_some() {
            SET.lock().remove(t.tref);
            publish_flags(ti);
        }
        return Ok(());
    }
    if let Some(m) = &mut ti.sqpoll {
        m.idle_tsc = idle_tsc;
        return Ok(());
    }
    {
        let mut set = SET.lock();
        if set.len == SQPOLL_RINGS_MAX {
            return Err(Error::Busy);
        }
        let i = set.len;
        set.entries[i] = Some(Entry {
            thread: t.tref,
            awake: false,
        });
        set.len += 1;
        set.set_awake(t.tref, true);
    }
    ti.sqpoll = Some(SqPollMode {
        idle_tsc,
        last_active_tsc: now,
        asleep: false,
    });
    ti.sqpoll_used = true;
    publish_flags(ti);
    kick_idle_cpu();
    Ok(())
}

/// RingMode(flags, idle_ns) on the caller's own ring.
pub fn ring_mode(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let mut ti = t.inner.lock();
    set_mode(t, &mut ti, sqe.args[0], sqe.args[1])?;
    Ok(done(sqe, 0, 0, 0))
}

/// RingStats of `t`.
pub fn stats(sqe: &Sqe, t: &Thread) -> Result<Outcome, Error> {
    let s = &t.ring_stats;
    let calls = s.syscalls.load(Ordering::Relaxed);
    Ok(done(
        sqe,
        i64::try_from(calls).unwrap_or(i64::MAX),
        s.polled.load(Ordering::Relaxed),
        s.wakeups.load(Ordering::Relaxed),
    ))
}

/// RingStats on a thread handle.
pub fn stats_of(sqe: &Sqe, r: ThreadRef) -> Result<Outcome, Error> {
    let t = thread::lookup(r).ok_or(Error::Stale)?;
    stats(sqe, &t)
}

/// `cap_enter` on an SQPOLL ring (under the thread lock): wakes a
/// sleeping ring when asked (`wake`) or when submissions wait in it
/// anyway (a client that forgot the flag is not stranded either).
/// Returns whether the ring is in SQPOLL mode (then `cap_enter` consumes
/// nothing).
pub fn enter(t: &Thread, ti: &mut ThreadInner, wake: bool) -> bool {
    let Some(mode) = ti.sqpoll else {
        return false;
    };
    let waiting = ti
        .ring
        .as_ref()
        .is_some_and(|r| abi::ring::pending(ti.sq_head, r.sq_tail(), SQ_ENTRIES) != Some(0));
    if mode.asleep && (wake || waiting) {
        ti.sqpoll = Some(SqPollMode {
            asleep: false,
            last_active_tsc: crate::arch::rdtsc(),
            ..mode
        });
        SET.lock().set_awake(t.tref, true);
        t.ring_stats.wakeups.fetch_add(1, Ordering::Relaxed);
        publish_flags(ti);
        kick_idle_cpu();
    }
    true
}

/// Sends one halted CPU a reschedule IPI: its idle loop polls.
fn kick_idle_cpu() {
    let me = crate::arch::cpu_id();
    let idle = crate::smp::online()
        .without(me)
        .iter()
        .find(|&c| crate::sched::cpu::cpu(c).idle.load(Ordering::SeqCst));
    if let Some(c) = idle {
        crate::smp::send_resched(c);
    }
}

fn claim(t: &Thread, me: usize) -> bool {
    t.poll_owner
        .compare_exchange(FREE, me as u64 + 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
}

/// Lets go of a ring; runs a death that was left to this poller.
fn release(t: &Arc<Thread>) {
    let old = t.poll_owner.swap(FREE, Ordering::Release);
    if old & REAP != 0 {
        crate::proc::exit::thread_died(t);
    }
}

/// Called first by a thread's death: true if it may proceed now (no
/// poller holds the ring, and none will again); false if a poller holds
/// it, which then runs the death itself when it lets go.
pub fn stop_consumer(t: &Thread) -> bool {
    let mut cur = t.poll_owner.load(Ordering::Acquire);
    loop {
        let next = match cur {
            DEAD => return true,
            FREE => DEAD,
            held if held & REAP != 0 => return false,
            held => held | REAP,
        };
        match t
            .poll_owner
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return next == DEAD,
            Err(now) => cur = now,
        }
    }
}

/// The thread died (under its lock): its ring leaves the poll set, and
/// its counters go to the end-of-scenario report.
pub fn forget(t: &Thread, ti: &mut ThreadInner) {
    if ti.sqpoll.take().is_some() {
        SET.lock().remove(t.tref);
    }
    if ti.sqpoll_used {
        report::record(t);
    }
}

/// A SetTls for `t`, which is not the thread running here: applied to
/// its saved context, or (running elsewhere) handed to its CPU, which
/// loads it and posts the completion before the thread runs user code
/// again.
pub fn set_tls_remote(t: &Thread, base: u64, sqe: &Sqe) -> Result<Outcome, Error> {
    let mut ti = t.inner.lock();
    match ti.state {
        thread::RunState::Dead => Err(Error::Stale),
        thread::RunState::Running(cpu) => {
            let cqe = Cqe {
                user_data: sqe.user_data,
                ..Cqe::default()
            };
            ti.tls_pending = Some((base, cqe));
            drop(ti);
            crate::smp::send_resched(cpu);
            Ok(Outcome::Deferred)
        }
        _ => {
            ti.fs_base = base;
            Ok(done(sqe, 0, 0, 0))
        }
    }
}

/// Applies a SetTls the poller handed to the thread running here (its
/// lock held); see [`set_tls_remote`].
pub fn apply_pending_tls(ti: &mut ThreadInner) {
    if let Some((base, cqe)) = ti.tls_pending.take() {
        crate::arch::set_fs_base(base);
        ring::push(ti, cqe);
    }
}

/// What the poller found in a ring.
enum Take {
    Sqe(Sqe),
    Stop,
}

/// Takes the next SQE of an SQPOLL ring, or decides that the ring goes
/// to sleep (the poller's half of the NEED_WAKEUP protocol).
fn take(t: &Thread) -> Take {
    let mut ti = t.inner.lock();
    if ti.kill || ti.reaped {
        return Take::Stop;
    }
    let Some(mut mode) = ti.sqpoll else {
        return Take::Stop;
    };
    if mode.asleep || ti.tls_pending.is_some() {
        // (A SetTls waits for the thread's own CPU: the SQEs after it wait
        // too, so they see the new FS base and complete in order.)
        return Take::Stop;
    }
    ring::flush_overflow(&mut ti);
    let Some(r) = &ti.ring else {
        return Take::Stop;
    };
    let head = ti.sq_head;
    let now = crate::arch::rdtsc();
    let empty = |tail| abi::ring::pending(head, tail, SQ_ENTRIES).is_none_or(|n| n == 0);
    if empty(r.sq_tail()) {
        if now.saturating_sub(mode.last_active_tsc) < mode.idle_tsc {
            return Take::Stop;
        }
        // Publish NEED_WAKEUP, full fence, re-read the tail (abi::ring).
        r.set_flags(RING_FLAG_SQPOLL | RING_FLAG_NEED_WAKEUP);
        fence(Ordering::SeqCst);
        if empty(r.sq_tail()) {
            mode.asleep = true;
            ti.sqpoll = Some(mode);
            SET.lock().set_awake(t.tref, false);
            return Take::Stop;
        }
        r.set_flags(RING_FLAG_SQPOLL);
    }
    let sqe = r.read_sqe(head);
    if !super::enter::needs_no_cqe(Op::from_raw(sqe.opcode))
        && ring::available(&ti) >= CQ_ENTRIES as usize
    {
        // Back-pressure: the program must drain its CQ first.
        return Take::Stop;
    }
    r.set_sq_head(head.wrapping_add(1));
    ti.sq_head = head.wrapping_add(1);
    mode.last_active_tsc = now;
    ti.sqpoll = Some(mode);
    Take::Sqe(sqe)
}

/// Consumes up to `max` SQEs of `t`'s ring (claimed by this CPU).
fn poll_ring(t: &Arc<Thread>, me: usize, max: u32) -> u32 {
    let mut n = 0;
    while n < max {
        let Take::Sqe(sqe) = take(t) else { break };
        n += 1;
        t.ring_stats.polled.fetch_add(1, Ordering::Relaxed);
        if !super::enter::consume(t, &sqe) {
            // Exit or ThreadExit: the thread ends wherever it is.
            crate::proc::exit::kill_thread(t, me);
            break;
        }
        crate::smp::answer_requests();
    }
    n
}

/// One bounded poll pass over the awake rings on CPU `me` (no lock held).
/// Returns the submissions consumed.
pub fn poll(me: usize) -> u32 {
    if !awake() {
        return 0;
    }
    let len = SET.lock().len;
    if len == 0 {
        return 0;
    }
    let start = CURSOR.fetch_add(1, Ordering::Relaxed) % len;
    let mut budget = PASS_SQES;
    for k in 0..len {
        let entry = {
            let set = SET.lock();
            set.entries[(start + k) % len.max(1)]
        };
        let Some(e) = entry else { continue };
        if !e.awake {
            continue;
        }
        let Some(t) = thread::lookup(e.thread) else {
            continue;
        };
        if !claim(&t, me) {
            continue;
        }
        let n = poll_ring(&t, me, budget);
        release(&t);
        budget -= n;
        if budget == 0 {
            break;
        }
    }
    PASS_SQES - budget
}

/// The idle loop's turn (no runnable thread here): one pass, expired
/// timers and other CPUs' requests; false when no ring is awake (halt).
pub fn idle_poll(me: usize) -> bool {
    if !awake() {
        // Clear this CPU's polling bit, then look again: a waker makes a
        // ring awake and then reads IDLE_POLLING (tick_needed), both
        // SeqCst, so either it sees the bit gone and ticks, or this look
        // sees the ring awake and keeps polling. Looking only before the
        // clear would let both miss: the ring awake, no tick, this CPU
        // halted (a submission stranded until something else woke it).
        idle_end(me);
        if !awake() {
            return false;
        }
    }
    if IDLE_POLLING.load(Ordering::Relaxed) & (1 << me) == 0 {
        // As before a halt: the poller needs no user address space (it
        // reaches rings and user memory through the direct map), and a
        // space left loaded here would be shot down for nothing.
        crate::sched::switch::drop_space(me);
        IDLE_POLLING.fetch_or(1 << me, Ordering::SeqCst);
    }
    poll(me);
    crate::sched::switch::run_expired_timers(me);
    crate::smp::answer_requests();
    core::hint::spin_loop();
    true
}

/// The timer tick interrupted user mode here: one pass, unless an idle
/// CPU is polling anyway.
pub fn tick(me: usize) {
    if tick_needed() {
        poll(me);
    }
}

pub mod report {
    //! RINGSTAT lines: the counters of every thread that used SQPOLL,
    //! summed per process, printed at the end of the scenario.

    use core::sync::atomic::Ordering;

    use crate::sched::thread::Thread;
    use crate::sync::IrqMutex;

    /// Processes reported one by one; the rest are summed as pid=0.
    const PROCS: usize = 64;

    #[derive(Clone, Copy, Default)]
    struct Row {
        pid: u64,
        threads: u64,
        syscalls: u64,
        polled: u64,
        wakeups: u64,
    }

    static ROWS: IrqMutex<[Row; PROCS + 1], crate::sync::class::RingStat> = IrqMutex::new(
        [Row {
            pid: 0,
            threads: 0,
            syscalls: 0,
            polled: 0,
            wakeups: 0,
        }; PROCS + 1],
    );

    /// Adds a dead thread's counters.
    pub fn record(t: &Thread) {
        let pid = t.process.pid;
        let mut rows = ROWS.lock();
        let i = (0..PROCS)
            .find(|&i| rows[i].pid == pid || rows[i].threads == 0)
            .unwrap_or(PROCS);
        let row = &mut rows[i];
        if i < PROCS {
            row.pid = pid;
        }
        let s = &t.ring_stats;
        row.threads += 1;
        row.syscalls += s.syscalls.load(Ordering::Relaxed);
        row.polled += s.polled.load(Ordering::Relaxed);
        row.wakeups += s.wakeups.load(Ordering::Relaxed);
    }

    /// Prints one `RINGSTAT` line per process that used SQPOLL.
    pub fn print() {
        let rows = *ROWS.lock();
        for r in rows.iter().filter(|r| r.threads > 0) {
            crate::kprintln!(
                "RINGSTAT pid={} threads={} syscalls={} sqpoll_sqes={} wakeups={}",
                r.pid,
                r.threads,
                r.syscalls,
                r.polled,
                r.wakeups
            );
        }
    }
}
