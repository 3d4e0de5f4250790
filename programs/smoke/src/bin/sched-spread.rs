//! `sched-spread`: exactly as many CPU-bound threads as CPUs, woken by
//! racing wakers; every CPU must end up running one of them (issue 11,
//! defect 4: two wakers picking the same idle CPU, and a halted CPU that
//! nobody tells about the spare thread).
//!
//! Each round, with n CPUs and k = n/2: the parent starts k "sleepers"
//! (they land on CPUs 1..=k, the parent being on CPU 0), lets them sleep
//! for the same 100 ms from the same moment, and meanwhile starts n - k
//! "spinners", which take the sleepers' CPUs while they sleep, then blocks
//! in join. The k sleep timers then expire at once on k busy CPUs, and
//! each timer interrupt places its woken sleeper away from its busy CPU:
//! k wakers racing for the n - k idle CPUs. Every thread then spins; the
//! threads themselves watch the kernel's per-thread CPU records
//! (`CpuRecord`) and end the round as soon as the union of the CPUs they
//! ran on holds n CPUs. If two wakers picked the same idle CPU and nothing
//! tells the other idle CPU, two threads share one CPU while another stays
//! halted and the union stays short: after a generous guard (3 s of
//! spinning, there only so that a broken kernel ends in a FAIL and not a
//! hang) the round fails and names the CPUs that ran. Nothing is timed:
//! the verdict is which CPUs ran the threads.
//!
//! At the end, `StatsBusy` must show user work on every online CPU.
//!
//! The race itself needs two CPUs in the same few hundred instructions, so
//! on a busy host a broken kernel may survive a run. Booted with a hole in
//! the CPU ids (defect 5: the kernel command-line test hook
//! `test_skip_ap=1` at `-smp 4`, as `harness test --cpu-hole` does in
//! `make test`), it fails at once when the scheduler's loops skip an
//! online CPU or leave a halted CPU halted while two threads share
//! another.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::thread::{self, Thread};
use rt::{println, sys, Args};
use smoke::{ensure, need_cap, Ctx, Fail};

rt::entry!(main);

const STACK: u64 = 16 * 1024;
/// Most threads (and CPUs) one round uses.
const MAX_THREADS: usize = 16;
/// Rounds per run: each is one chance for the placement race.
const ROUNDS: u32 = 60;
/// How long a thread spins between looks at the CPU records.
const LOOK_EVERY_NS: u64 = 1_000_000;
/// Spinning after which a round that has not spread fails (hang guard).
const GUARD_NS: u64 = 3_000_000_000;
/// How long the sleepers sleep (the spinners start meanwhile).
const SLEEP_NS: u64 = 100_000_000;
/// How long the parent sleeps while it waits for the sleepers.
const PARENT_POLL_NS: u64 = 1_000_000;
/// Most CPUs the busy check reads.
const MAX_CPUS: usize = 64;

fn main(a: &Args) -> i64 {
    smoke::run("sched-spread", a, parent)
}

/// Thread handles of the round, in order; `FILLED` says how many are set.
static SLOTS: [AtomicU32; MAX_THREADS] = [const { AtomicU32::new(0) }; MAX_THREADS];
static FILLED: AtomicU32 = AtomicU32::new(0);
/// Sleepers that are running; the parent opens `GO` when all are.
static READY: AtomicU32 = AtomicU32::new(0);
static GO: AtomicU32 = AtomicU32::new(0);
/// Sleepers about to sleep: the parent starts the spinners after all are,
/// so that the spinners take the sleepers' CPUs.
static SLEEPING: AtomicU32 = AtomicU32::new(0);
/// Set when the round is decided (spread, or the guard ran out).
static STOP: AtomicU32 = AtomicU32::new(0);
/// The union of CPUs when the round was decided.
static UNION: AtomicU64 = AtomicU64::new(0);

/// Round parameters, copied into each thread.
#[derive(Clone, Copy)]
struct Round {
    threads: usize,
    sleepers: usize,
    timer: u32,
    hz: u64,
}

/// What a thread reports: 0 spread, 1 not spread, 2 a kernel error.
const SPREAD: i64 = 0;
const NOT_SPREAD: i64 = 1;
const ERROR: i64 = 2;

/// Spins until the round is decided; the thread that decides it records
/// the union of CPUs the round's threads ran on.
fn spin_until_spread(r: Round) -> i64 {
    let guard = u128::from(GUARD_NS) * u128::from(r.hz) / 1_000_000_000;
    let guard = u64::try_from(guard).unwrap_or(u64::MAX);
    let t0 = rt::arch::rdtsc();
    loop {
        smoke::spin_ns(LOOK_EVERY_NS, r.hz);
        if STOP.load(Ordering::Acquire) != 0 {
            return SPREAD;
        }
        if FILLED.load(Ordering::Acquire) as usize == r.threads {
            let mut union = 0;
            for s in SLOTS.iter().take(r.threads) {
                match sys::cpu_record(s.load(Ordering::Acquire)) {
                    Ok((mask, _)) => union |= mask,
                    // A sibling decided and its handles are being closed.
                    Err(_) if STOP.load(Ordering::Acquire) != 0 => return SPREAD,
                    Err(_) => {
                        STOP.store(1, Ordering::Release);
                        return ERROR;
                    }
                }
            }
            if smoke::cpu_count(union) as usize >= r.threads {
                UNION.store(union, Ordering::Release);
                STOP.store(1, Ordering::Release);
                return SPREAD;
            }
            if rt::arch::rdtsc().wrapping_sub(t0) > guard {
                UNION.store(union, Ordering::Release);
                STOP.store(1, Ordering::Release);
                return NOT_SPREAD;
            }
        }
    }
}

/// A sleeper: waits for the others, sleeps the same time from the same
/// moment as they do, then spins like everyone.
fn sleeper(r: Round) -> i64 {
    READY.fetch_add(1, Ordering::AcqRel);
    while GO.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    SLEEPING.fetch_add(1, Ordering::AcqRel);
    if sys::sleep(r.timer, SLEEP_NS).is_err() {
        STOP.store(1, Ordering::Release);
        return ERROR;
    }
    spin_until_spread(r)
}

fn start(r: Round, i: usize, f: fn(Round) -> i64) -> Result<Thread, Fail> {
    let t = thread::spawn_with_stack(STACK, move || f(r)).ctx("spawn")?;
    SLOTS[i].store(t.slot(), Ordering::Release);
    FILLED.fetch_add(1, Ordering::AcqRel);
    Ok(t)
}

/// One round; the worst thread result and the union of CPUs.
fn round(r: Round) -> Result<(i64, u64), Fail> {
    FILLED.store(0, Ordering::Release);
    READY.store(0, Ordering::Release);
    GO.store(0, Ordering::Release);
    SLEEPING.store(0, Ordering::Release);
    STOP.store(0, Ordering::Release);
    UNION.store(0, Ordering::Release);
    let mut ts: [Option<Thread>; MAX_THREADS] = [const { None }; MAX_THREADS];
    for (i, t) in ts.iter_mut().enumerate().take(r.sleepers) {
        *t = Some(start(r, i, sleeper)?);
    }
    while READY.load(Ordering::Acquire) as usize != r.sleepers {
        sys::sleep(r.timer, PARENT_POLL_NS).ctx("sleep")?;
    }
    GO.store(1, Ordering::Release);
    // Let the sleepers reach their sleep, so their CPUs are free for the
    // spinners (the last poll covers the step from the count to the call).
    while SLEEPING.load(Ordering::Acquire) as usize != r.sleepers {
        sys::sleep(r.timer, PARENT_POLL_NS).ctx("sleep")?;
    }
    sys::sleep(r.timer, PARENT_POLL_NS).ctx("sleep")?;
    for (i, t) in ts.iter_mut().enumerate().take(r.threads).skip(r.sleepers) {
        *t = Some(start(r, i, spin_until_spread)?);
    }
    let mut worst = SPREAD;
    for t in ts.iter_mut() {
        if let Some(mut t) = t.take() {
            worst = worst.max(t.join().ctx("join")?);
            t.close().ctx("close")?;
        }
    }
    Ok((worst, UNION.load(Ordering::Acquire)))
}

fn parent(a: &Args) -> Result<(), Fail> {
    let stats = need_cap(a, CapKind::Stats)?;
    let timer = need_cap(a, CapKind::Timer)?;
    let (cpus, hz) = sys::sys_info().ctx("sys-info")?;
    let n = usize::try_from(cpus)
        .unwrap_or(MAX_THREADS)
        .min(MAX_THREADS);
    ensure!(n >= 1, "sys-info says {} CPUs", cpus);
    let r = Round {
        threads: n,
        sleepers: n / 2,
        timer,
        hz,
    };
    let mut before = [0u64; MAX_CPUS];
    let (listed, _) = sys::stats_busy(stats, &mut before).ctx("stats")?;
    ensure!(
        listed as u64 == cpus,
        "StatsBusy lists {} CPUs, SysInfo {}",
        listed,
        cpus
    );
    for i in 0..ROUNDS {
        let (worst, union) = round(r)?;
        ensure!(worst != ERROR, "round {}: a kernel call failed", i);
        ensure!(
            worst == SPREAD,
            "round {}: {} threads ran only on CPUs {:#x} of {}",
            i,
            n,
            union,
            n
        );
        ensure!(
            smoke::cpu_count(union) as usize == n,
            "round {}: union {:#x} of {} CPUs",
            i,
            union,
            n
        );
    }
    let mut after = [0u64; MAX_CPUS];
    sys::stats_busy(stats, &mut after).ctx("stats")?;
    for cpu in 0..listed.min(MAX_CPUS) {
        ensure!(
            after[cpu] > before[cpu],
            "online CPU #{} did no user work",
            cpu
        );
    }
    println!(
        "sched-spread: {} rounds of {} threads on {} CPUs",
        ROUNDS, n, n
    );
    Ok(())
}
