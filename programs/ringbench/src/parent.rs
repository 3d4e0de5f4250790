//! The parent: argument parsing, the timed runs in both modes, the verdict.
//!
//! A failure stays a failure: a worker that ends any way but with exactly
//! its operation count makes its run `ok=0` and the parent exit
//! [`status::PARENT_WORKER_FAILED`] after that run (later runs are not
//! started: a failed worker's partner may be parked for good, and the
//! parent's exit ends it).

use crate::report::{self, BusyList, Failure, WorkerResult};
use crate::worker::{self, Job, Mix, STACK_BYTES};
use abi::caps::CapKind;
use abi::manifest::WORKERS_MAX;
use abi::op::{ExitKind, Op, LOCKSTAT_PRINT, LOCKSTAT_RESET};
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use ringbench::status;
use rt::arch::rdtsc;
use rt::process::{self, Child};
use rt::thread::{self, Thread};
use rt::{println, sys, Args, Error};

/// Most CPUs whose busy counters we read.
const MAX_CPUS: usize = 64;
/// Most ProcWaits in flight at once (the completion stash holds the rest).
const MAX_WAITS_IN_FLIGHT: usize = rt::stash::STASH_ENTRIES / 2;
const W_MAX: usize = WORKERS_MAX as usize;

/// The parsed parent arguments.
#[derive(Clone, Copy, Debug)]
struct Config {
    mix: Mix,
    workers: usize,
    threads: bool,
    repeat: u64,
}

impl Config {
    fn expected(&self) -> u64 {
        self.mix
            .ops_per_worker()
            .saturating_mul(self.workers as u64)
    }
}

/// Capabilities and machine facts the runs need.
struct Env {
    spawner: Option<u32>,
    stats: Option<u32>,
    timer: Option<u32>,
    cpus: u64,
    tsc_hz: u64,
}

fn parse(a: &Args) -> Option<Config> {
    // a[0] is "parent"; a[1..=4] the mix.
    let mix = worker::parse_mix(a, 1)?;
    let workers = usize::try_from(a.get_u64(5)?).ok()?;
    let threads = match a.get(6)? {
        "process" => false,
        "thread" => true,
        _ => return None,
    };
    let c = Config {
        mix,
        workers,
        threads,
        repeat: a.get_u64(7)?,
    };
    let ok = (1..=W_MAX).contains(&c.workers) && c.repeat >= 1;
    ok.then_some(c)
}

/// Runs every timed run; 0 iff every worker of every run counted exactly
/// its operations.
pub fn run(a: &Args) -> i64 {
    let Some(cfg) = parse(a) else {
        println!("ringbench: bad arguments (want parent ROUNDS NOPS TIMERS PINGPONGS WORKERS MODE REPEAT)");
        return 2;
    };
    let (cpus, tsc_hz) = sys::sys_info().unwrap_or((a.cpus(), a.tsc_hz()));
    let env = Env {
        spawner: a.find_cap(CapKind::Spawner),
        stats: a.find_cap(CapKind::Stats),
        timer: a.find_cap(CapKind::Timer),
        cpus,
        tsc_hz,
    };
    if cfg.mix.timers > 0 && env.timer.is_none() {
        println!("ringbench: the mix has timers but no timer capability was granted");
        return 2;
    }
    for k in 1..=cfg.repeat {
        let outcome = if cfg.threads {
            run_threads(&cfg, &env, k)
        } else {
            run_processes(&cfg, &env, k)
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return status::PARENT_WORKER_FAILED,
            Err((what, e)) => {
                println!("ringbench: run {} failed: {}: {}", k, what, e.name());
                return 1;
            }
        }
    }
    0
}

type RunError = (&'static str, Error);

/// Reads the per-CPU busy counters (zeros without a stats capability).
fn read_busy(env: &Env, out: &mut [u64; MAX_CPUS]) -> Result<usize, RunError> {
    let n = usize::try_from(env.cpus)
        .unwrap_or(MAX_CPUS)
        .clamp(1, MAX_CPUS);
    let Some(stats) = env.stats else {
        *out = [0; MAX_CPUS];
        return Ok(n);
    };
    let (reported, _) = sys::stats_busy(stats, &mut out[..n]).map_err(|e| ("stats-busy", e))?;
    Ok(reported.clamp(1, n))
}

/// LockStat `cmd` on the stats capability for run `k`: the kernel's lock
/// counters zeroed right before the timed section and printed right after
/// it (`LOCKSTAT ... section=timed run=k`). Nothing without a stats
/// capability, or from a kernel built without lock statistics.
fn lockstat(env: &Env, cmd: u64, k: u64) -> Result<(), RunError> {
    let Some(stats) = env.stats else {
        return Ok(());
    };
    match sys::lockstat(stats, cmd, k) {
        Ok(()) | Err(Error::BadOpcode) => Ok(()),
        Err(e) => Err(("lockstat", e)),
    }
}

/// Prints the WORKER lines and the SCALE line (and a line per failed
/// worker); whether every worker counted exactly its operations.
fn report(
    cfg: &Config,
    env: &Env,
    k: u64,
    results: &[WorkerResult],
    span: (u64, u64),
    busy: (&[u64], &[u64]),
) -> bool {
    report::print_workers(results);
    let mut ok = true;
    for (i, r) in results.iter().enumerate() {
        if let Some(f) = r.failure {
            println!("ringbench: run {} worker {} failed: {}", k, i, f);
            ok = false;
        }
    }
    let count: u64 = results
        .iter()
        .filter(|r| r.failure.is_none())
        .map(|r| r.count)
        .sum();
    let expected = cfg.expected();
    ok &= count == expected;
    let (reparks, timeouts) = results
        .iter()
        .filter_map(|r| r.reparks)
        .fold((0, 0), |(a, b), (r, t)| (a + r, b + t));
    let cycles = span.1.saturating_sub(span.0);
    let m = cfg.mix;
    println!(
        "SCALE run={} mode={} workers={} cpus={} lo=0 hi=0 count={} expected={} ok={} cycles={} ms={} busy={} kind=ring ops={} ops_per_s={} rounds={} nops={} timers={} pingpongs={} reparks={} timeouts={}",
        k,
        if cfg.threads { "thread" } else { "process" },
        cfg.workers,
        env.cpus,
        count,
        expected,
        u8::from(ok),
        cycles,
        report::cycles_to_ms(cycles, env.tsc_hz),
        BusyList { before: busy.0, after: busy.1, hz: env.tsc_hz },
        count,
        report::ops_per_s(count, cycles, env.tsc_hz),
        m.rounds,
        m.nops,
        m.timers,
        m.pingpongs,
        reparks,
        timeouts
    );
    ok
}

/// A CPU record for a WORKER line; an error is said, not hidden.
fn cpus_of(i: usize, record: Result<(u64, u64), Error>) -> u64 {
    match record {
        Ok((mask, _)) => mask,
        Err(e) => {
            println!(
                "ringbench: worker {} cpu record unavailable: {}",
                i,
                e.name()
            );
            0
        }
    }
}

/// Formats a number into a small buffer.
fn num(n: u64) -> rt::console::LineBuf<24> {
    use core::fmt::Write;
    let mut b = rt::console::LineBuf::<24>::new();
    let _ = write!(b, "{n}");
    b
}

/// Process mode: each worker process gets the timer capability only. A
/// worker's start/end are the parent's TSC just before it spawned that
/// worker and just after it reaped it.
fn run_processes(cfg: &Config, env: &Env, k: u64) -> Result<bool, RunError> {
    let spawner = env
        .spawner
        .ok_or(("no spawner capability", Error::Denied))?;
    let w = cfg.workers;
    let mut results = [WorkerResult::default(); W_MAX];
    let mut children: [Option<Child>; W_MAX] = [const { None }; W_MAX];
    let mut tokens = [0u64; W_MAX];
    let mut busy0 = [0u64; MAX_CPUS];
    let mut busy1 = [0u64; MAX_CPUS];
    let caps: &[u32] = match env.timer {
        Some(t) => &[t],
        None => &[],
    };
    let m = cfg.mix;
    let (rounds, nops, timers, pingpongs) = (
        num(m.rounds.into()),
        num(m.nops.into()),
        num(m.timers.into()),
        num(m.pingpongs.into()),
    );
    let ncpu = read_busy(env, &mut busy0)?;

    lockstat(env, LOCKSTAT_RESET, k)?;
    let t0 = rdtsc();
    for (i, child) in children.iter_mut().enumerate().take(w) {
        let idx = num(i as u64);
        results[i].start = rdtsc();
        let args = [
            "worker",
            idx.as_str(),
            rounds.as_str(),
            nops.as_str(),
            timers.as_str(),
            pingpongs.as_str(),
        ];
        *child = Some(process::spawn(spawner, "ringbench", &args, caps).map_err(|e| ("spawn", e))?);
    }
    let mut next_wait = 0;
    let mut in_flight = 0;
    let mut reaped = 0;
    while reaped < w {
        while next_wait < w && in_flight < MAX_WAITS_IN_FLIGHT {
            let slot = children[next_wait].as_ref().map_or(0, Child::slot);
            tokens[next_wait] =
                sys::submit(sys::sqe(Op::ProcWait, slot, &[])).map_err(|e| ("submit wait", e))?;
            next_wait += 1;
            in_flight += 1;
        }
        let c = sys::next_completion();
        let Some(i) = tokens[..next_wait].iter().position(|t| *t == c.user_data) else {
            sys::check(&c).map_err(|e| ("unexpected completion", e))?;
            continue;
        };
        results[i].end = rdtsc();
        tokens[i] = 0;
        in_flight -= 1;
        reaped += 1;
        sys::check(&c).map_err(|e| ("wait", e))?;
        let value = c.value1 as i64;
        match ExitKind::from_raw(c.value0) {
            Some(ExitKind::Exited) => results[i].set_status(value, m.ops_per_worker()),
            Some(ExitKind::Faulted) => results[i].failure = Some(Failure::Faulted(value)),
            Some(ExitKind::Killed) => results[i].failure = Some(Failure::Killed),
            None => results[i].failure = Some(Failure::UnknownEnd(c.value0)),
        }
    }
    let t1 = rdtsc();
    read_busy(env, &mut busy1)?;
    lockstat(env, LOCKSTAT_PRINT, k)?;

    for (i, child) in children.iter_mut().enumerate().take(w) {
        if let Some(ch) = child.take() {
            results[i].cpus = cpus_of(i, ch.cpu_record());
            ch.close().map_err(|e| ("close", e))?;
        }
    }
    Ok(report(
        cfg,
        env,
        k,
        &results[..w],
        (t0, t1),
        (&busy0[..ncpu], &busy1[..ncpu]),
    ))
}

/// One pair's shared state in thread mode, alone on its cache lines.
#[repr(C, align(128))]
struct Slot {
    /// The pair's ping-pong word.
    word: AtomicU32,
    start: AtomicU64,
    end: AtomicU64,
    /// Reparks and park timeouts of the worker and of the partner.
    reparks: [AtomicU64; 2],
    timeouts: [AtomicU64; 2],
}

/// The start gate of thread mode: 0 closed, 1 open.
static GATE: AtomicU32 = AtomicU32::new(0);

fn wait_gate() {
    while GATE.load(Ordering::Acquire) == 0 {
        let _ = sys::park(&GATE, 0, TIMEOUT_NEVER);
    }
}

fn slot(addr: usize) -> &'static Slot {
    // SAFETY: `addr` is a slot in the parent's zeroed slot mapping, which
    // stays mapped until every thread using it has been joined (or the
    // process ends); a Slot is all atomics, so shared access is sound.
    unsafe { &*(addr as *const Slot) }
}

fn worker_thread(job: Job, at: usize) -> i64 {
    wait_gate();
    let s = slot(at);
    s.start.store(rdtsc(), Ordering::Relaxed);
    let r = worker::run_worker(&job);
    s.end.store(rdtsc(), Ordering::Relaxed);
    if let Ok(c) = &r {
        s.reparks[0].store(c.reparks, Ordering::Relaxed);
        s.timeouts[0].store(c.timeouts, Ordering::Relaxed);
    }
    worker::status_of(r)
}

fn partner_thread(job: Job, at: usize) -> i64 {
    wait_gate();
    let r = worker::run_partner(&job);
    if let Ok(c) = &r {
        let s = slot(at);
        s.reparks[1].store(c.reparks, Ordering::Relaxed);
        s.timeouts[1].store(c.timeouts, Ordering::Relaxed);
    }
    worker::status_of(r)
}

/// Thread mode: every worker and partner thread is created before the timed
/// section and waits at GATE; the timed section is "open the gate, join
/// every thread". Each worker records its own start and end TSC.
fn run_threads(cfg: &Config, env: &Env, k: u64) -> Result<bool, RunError> {
    let w = cfg.workers;
    let bytes = (w * core::mem::size_of::<Slot>()) as u64;
    let slots = sys::mem_map(bytes).map_err(|e| ("map slots", e))? as usize;
    let outcome = run_threads_in(cfg, env, k, slots);
    // A failed run ends the parent (and any partner still parked) right
    // after it; only a clean run gives its slots back.
    if matches!(outcome, Ok(true)) {
        let _ = sys::mem_unmap(slots as u64, bytes);
    }
    outcome
}

fn run_threads_in(cfg: &Config, env: &Env, k: u64, slots: usize) -> Result<bool, RunError> {
    let w = cfg.workers;
    let mut results = [WorkerResult::default(); W_MAX];
    let mut workers: [Option<Thread>; W_MAX] = [const { None }; W_MAX];
    let mut partners: [Option<Thread>; W_MAX] = [const { None }; W_MAX];
    let mut busy0 = [0u64; MAX_CPUS];
    let mut busy1 = [0u64; MAX_CPUS];
    let at = |i: usize| slots + i * core::mem::size_of::<Slot>();
    GATE.store(0, Ordering::Release);
    for i in 0..w {
        let job = Job {
            idx: i as u16,
            mix: cfg.mix,
            timer: env.timer.unwrap_or(0),
            word: at(i),
        };
        let a = at(i);
        let t = thread::spawn_with_stack(STACK_BYTES, move || worker_thread(job, a));
        workers[i] = Some(t.map_err(|e| ("thread spawn", e))?);
        if cfg.mix.pingpongs > 0 {
            let t = thread::spawn_with_stack(STACK_BYTES, move || partner_thread(job, a));
            partners[i] = Some(t.map_err(|e| ("thread spawn", e))?);
        }
    }
    let ncpu = read_busy(env, &mut busy0)?;

    lockstat(env, LOCKSTAT_RESET, k)?;
    let t0 = rdtsc();
    GATE.store(1, Ordering::Release);
    sys::unpark(&GATE, 2 * w as u64).map_err(|e| ("unpark", e))?;
    let opw = cfg.mix.ops_per_worker();
    let mut mine = [0i64; W_MAX];
    for (i, t) in workers.iter_mut().enumerate().take(w) {
        if let Some(th) = t {
            mine[i] = match th.join() {
                Ok(v) => v,
                Err(e) => {
                    results[i].failure = Some(Failure::Join(e));
                    -1
                }
            };
        }
    }
    for (i, t) in partners.iter_mut().enumerate().take(w) {
        // A failed worker's partner may wait for good: not joined.
        if let (Some(th), true) = (t, mine[i] >= 0) {
            match th.join() {
                Ok(v) if v >= 0 => mine[i] += v,
                Ok(v) => mine[i] = v,
                Err(e) => results[i].failure = Some(Failure::Join(e)),
            }
        }
    }
    let t1 = rdtsc();
    read_busy(env, &mut busy1)?;
    lockstat(env, LOCKSTAT_PRINT, k)?;

    for i in 0..w {
        if results[i].failure.is_none() {
            results[i].set_status(mine[i], opw);
        }
        let s = slot(at(i));
        results[i].start = s.start.load(Ordering::Relaxed);
        results[i].end = s.end.load(Ordering::Relaxed);
        let r = |a: &[AtomicU64; 2]| a[0].load(Ordering::Relaxed) + a[1].load(Ordering::Relaxed);
        results[i].reparks = Some((r(&s.reparks), r(&s.timeouts)));
        let joined = mine[i] >= 0;
        if let Some(th) = workers[i].take() {
            results[i].cpus = cpus_of(i, th.cpu_record());
            if joined {
                th.close().map_err(|e| ("close", e))?;
            }
        }
        if let Some(th) = partners[i].take() {
            results[i].partner_cpus = Some(cpus_of(i, th.cpu_record()));
            if joined {
                th.close().map_err(|e| ("close", e))?;
            }
        }
    }
    Ok(report(
        cfg,
        env,
        k,
        &results[..w],
        (t0, t1),
        (&busy0[..ncpu], &busy1[..ncpu]),
    ))
}
