//! The parent: argument parsing, the timed runs in both modes, the verdict.
//!
//! A failure stays a failure: a worker that ends any way but with a count
//! (negative status, fault, kill, failed join) makes its run `ok=0` and the
//! parent exit [`status::PARENT_WORKER_FAILED`], with a line naming the
//! worker and why; it never adds 0 to the total.

use crate::report::{self, BusyList, Failure, WorkerResult};
use crate::status;
use abi::caps::CapKind;
use abi::manifest::WORKERS_MAX;
use abi::op::{ExitKind, Op};
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::arch::rdtsc;
use rt::process::{self, Child};
use rt::sync::Mutex;
use rt::thread::{self, Thread};
use rt::{println, sys, Args, Error};
use workload::Scratch;

/// Most CPUs whose busy counters we read.
const MAX_CPUS: usize = 64;
/// Most ProcWaits in flight at once (the completion stash holds the rest).
const MAX_WAITS_IN_FLIGHT: usize = rt::stash::STASH_ENTRIES / 2;
/// Stack of a worker thread: the scratch is mapped separately, so counting
/// needs little stack.
const WORKER_STACK_BYTES: u64 = 32 * 1024;

/// The parsed parent arguments.
#[derive(Clone, Copy, Debug)]
struct Config {
    lo: u64,
    hi: u64,
    expected: u64,
    workers: usize,
    threads: bool,
    repeat: u64,
    serialize: bool,
}

/// Capabilities and machine facts the runs need.
struct Env {
    spawner: Option<u32>,
    stats: Option<u32>,
    cpus: u64,
    tsc_hz: u64,
}

fn parse(a: &Args) -> Option<Config> {
    // a[0] is "parent".
    let workers = usize::try_from(a.get_u64(4)?).ok()?;
    let threads = match a.get(5)? {
        "process" => false,
        "thread" => true,
        _ => return None,
    };
    let serialize = match a.get(7)? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let c = Config {
        lo: a.get_u64(1)?,
        hi: a.get_u64(2)?,
        expected: a.get_u64(3)?,
        workers,
        threads,
        repeat: a.get_u64(6)?,
        serialize,
    };
    let ok = c.hi > c.lo
        && c.hi <= abi::limits::HI_MAX
        && (1..=WORKERS_MAX as usize).contains(&c.workers)
        && c.repeat >= 1;
    ok.then_some(c)
}

/// Runs every timed run; 0 iff all counts matched.
pub fn run(a: &Args) -> i64 {
    let Some(cfg) = parse(a) else {
        println!(
            "primes: bad arguments (want parent LO HI EXPECTED WORKERS MODE REPEAT SERIALIZE)"
        );
        return 2;
    };
    let (cpus, tsc_hz) = sys::sys_info().unwrap_or((a.cpus(), a.tsc_hz()));
    let env = Env {
        spawner: a.find_cap(CapKind::Spawner),
        stats: a.find_cap(CapKind::Stats),
        cpus,
        tsc_hz,
    };
    let mut worst = RunVerdict::Pass;
    for k in 1..=cfg.repeat {
        let outcome = if cfg.threads {
            run_threads(&cfg, &env, k)
        } else {
            run_processes(&cfg, &env, k)
        };
        match outcome {
            Ok(v) => worst = worst.max(v),
            Err((what, e)) => {
                println!("primes: run {} failed: {}: {}", k, what, e.name());
                return 1;
            }
        }
    }
    match worst {
        RunVerdict::Pass => 0,
        RunVerdict::WrongCount => 1,
        RunVerdict::WorkerFailed => status::PARENT_WORKER_FAILED,
    }
}

/// How a timed run ended, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RunVerdict {
    /// Every worker counted and the total matched.
    Pass,
    /// Every worker counted, but the total is wrong.
    WrongCount,
    /// A worker failed: no total to compare.
    WorkerFailed,
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

/// Prints the WORKER lines and the SCALE line (and a line per failed
/// worker); how the run ended.
fn report(
    cfg: &Config,
    env: &Env,
    k: u64,
    results: &[WorkerResult],
    span: (u64, u64),
    busy: (&[u64], &[u64]),
) -> RunVerdict {
    report::print_workers(results);
    let mut failed = false;
    for (i, r) in results.iter().enumerate() {
        if let Some(f) = r.failure {
            println!("primes: run {} worker {} failed: {}", k, i, f);
            failed = true;
        }
    }
    let count: u64 = results
        .iter()
        .filter(|r| r.failure.is_none())
        .map(|r| r.count)
        .sum();
    let verdict = if failed {
        RunVerdict::WorkerFailed
    } else if count != cfg.expected {
        RunVerdict::WrongCount
    } else {
        RunVerdict::Pass
    };
    let ok = verdict == RunVerdict::Pass;
    let cycles = span.1.saturating_sub(span.0);
    println!(
        "SCALE run={} mode={} workers={} cpus={} lo={} hi={} count={} expected={} ok={} cycles={} ms={} busy={}",
        k,
        if cfg.threads { "thread" } else { "process" },
        cfg.workers,
        env.cpus,
        cfg.lo,
        cfg.hi,
        count,
        cfg.expected,
        u8::from(ok),
        cycles,
        report::cycles_to_ms(cycles, env.tsc_hz),
        BusyList { before: busy.0, after: busy.1, hz: env.tsc_hz }
    );
    verdict
}

/// A worker's CPU record for its WORKER line; an error is said, not hidden.
fn cpus_of(i: usize, record: Result<(u64, u64), Error>) -> u64 {
    match record {
        Ok((mask, _)) => mask,
        Err(e) => {
            println!("primes: worker {} cpu record unavailable: {}", i, e.name());
            0
        }
    }
}

/// Process mode. A worker's start/end are the parent's TSC just before it
/// spawned that worker and just after it reaped it (a process cannot hand
/// its own timestamps back: it reports only its exit status).
fn run_processes(cfg: &Config, env: &Env, k: u64) -> Result<RunVerdict, RunError> {
    let spawner = env
        .spawner
        .ok_or(("no spawner capability", Error::Denied))?;
    let w = cfg.workers;
    let mut results = [WorkerResult::default(); WORKERS_MAX as usize];
    let mut children: [Option<Child>; WORKERS_MAX as usize] =
        [const { None }; WORKERS_MAX as usize];
    let mut tokens = [0u64; WORKERS_MAX as usize];
    let mut busy0 = [0u64; MAX_CPUS];
    let mut busy1 = [0u64; MAX_CPUS];
    let ncpu = read_busy(env, &mut busy0)?;

    let t0 = rdtsc();
    for i in 0..w {
        let mut idx = rt::console::LineBuf::<24>::new();
        let mut ws = rt::console::LineBuf::<24>::new();
        let mut lo = rt::console::LineBuf::<24>::new();
        let mut hi = rt::console::LineBuf::<24>::new();
        use core::fmt::Write;
        let _ = write!(idx, "{i}");
        let _ = write!(ws, "{w}");
        let _ = write!(lo, "{}", cfg.lo);
        let _ = write!(hi, "{}", cfg.hi);
        results[i].start = rdtsc();
        let args = [
            "worker",
            idx.as_str(),
            ws.as_str(),
            lo.as_str(),
            hi.as_str(),
        ];
        let child = process::spawn(spawner, "primes", &args, &[]).map_err(|e| ("spawn", e))?;
        children[i] = Some(child);
    }
    // Reap in completion order, keeping a bounded number of waits in flight.
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
        // value1 carries the i64 status, bit for bit.
        let value = c.value1 as i64;
        match ExitKind::from_raw(c.value0) {
            Some(ExitKind::Exited) => results[i].set_status(value),
            Some(ExitKind::Faulted) => results[i].failure = Some(Failure::Faulted(value)),
            Some(ExitKind::Killed) => results[i].failure = Some(Failure::Killed),
            None => results[i].failure = Some(Failure::UnknownEnd(c.value0)),
        }
    }
    let t1 = rdtsc();
    read_busy(env, &mut busy1)?;

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

/// One thread worker's result slot, alone on its cache line(s).
#[repr(C, align(128))]
struct Slot {
    start: AtomicU64,
    end: AtomicU64,
}

/// The start gate of thread mode: 0 closed, 1 open.
static GATE: AtomicU32 = AtomicU32::new(0);
/// The lock every worker holds while counting when `serialize` is set.
static SERIAL: Mutex<()> = Mutex::new(());

/// What a worker thread needs, copied into its closure.
#[derive(Clone, Copy)]
struct ThreadJob {
    idx: u32,
    workers: u32,
    lo: u64,
    hi: u64,
    scratch: usize,
    slot: usize,
    serialize: bool,
}

fn worker_thread(job: ThreadJob) -> i64 {
    while GATE.load(Ordering::Acquire) == 0 {
        let _ = sys::park(&GATE, 0, TIMEOUT_NEVER);
    }
    // SAFETY: the parent mapped the scratch area for this worker alone and
    // reset it to `Scratch::new()` before opening the gate; it outlives us.
    let scratch = unsafe { &mut *(job.scratch as *mut Scratch) };
    // SAFETY: the parent's slot array (mapped, zeroed) outlives the run;
    // slot `idx` is written only by this worker, read after the join.
    let slot = unsafe { &*(job.slot as *const Slot) };
    let guard = job.serialize.then(|| SERIAL.lock());
    slot.start.store(rdtsc(), Ordering::Relaxed);
    let count = workload::count_worker(job.lo, job.hi, job.idx, job.workers, scratch);
    slot.end.store(rdtsc(), Ordering::Relaxed);
    drop(guard);
    status::of_count(count)
}

/// Memory for a thread-mode run: result slots and per-worker scratch.
struct ThreadMem {
    slots: u64,
    slots_bytes: u64,
    scratch: u64,
    scratch_bytes: u64,
}

impl ThreadMem {
    fn map(w: usize) -> Result<ThreadMem, RunError> {
        let slots_bytes = (w * core::mem::size_of::<Slot>()) as u64;
        let scratch_each = core::mem::size_of::<Scratch>().next_multiple_of(4096) as u64;
        let scratch_bytes = scratch_each * w as u64;
        let slots = sys::mem_map(slots_bytes).map_err(|e| ("map slots", e))?;
        let scratch = sys::mem_map(scratch_bytes).map_err(|e| ("map scratch", e))?;
        Ok(ThreadMem {
            slots,
            slots_bytes,
            scratch,
            scratch_bytes,
        })
    }

    fn scratch_at(&self, i: usize) -> usize {
        let each = self.scratch_bytes as usize / self.workers();
        self.scratch as usize + i * each
    }

    fn slot_at(&self, i: usize) -> usize {
        self.slots as usize + i * core::mem::size_of::<Slot>()
    }

    fn workers(&self) -> usize {
        self.slots_bytes as usize / core::mem::size_of::<Slot>()
    }

    fn unmap(&self) {
        let _ = sys::mem_unmap(self.slots, self.slots_bytes);
        let _ = sys::mem_unmap(self.scratch, self.scratch_bytes);
    }
}

/// Thread mode: threads are created (stacks, TLS, scratch mapped) before
/// the timed section and wait on GATE; the timed section is "open the gate,
/// join every worker". Each worker records its own start and end TSC.
fn run_threads(cfg: &Config, env: &Env, k: u64) -> Result<RunVerdict, RunError> {
    let w = cfg.workers;
    let mem = ThreadMem::map(w)?;
    let outcome = run_threads_in(cfg, env, k, &mem);
    mem.unmap();
    outcome
}

fn run_threads_in(
    cfg: &Config,
    env: &Env,
    k: u64,
    mem: &ThreadMem,
) -> Result<RunVerdict, RunError> {
    let w = cfg.workers;
    let mut results = [WorkerResult::default(); WORKERS_MAX as usize];
    let mut threads: [Option<Thread>; WORKERS_MAX as usize] =
        [const { None }; WORKERS_MAX as usize];
    let mut busy0 = [0u64; MAX_CPUS];
    let mut busy1 = [0u64; MAX_CPUS];
    GATE.store(0, Ordering::Release);
    for (i, t) in threads.iter_mut().enumerate().take(w) {
        // SAFETY: scratch_at(i) is page aligned inside our mapping, sized
        // for one Scratch, and no thread uses it yet.
        unsafe { core::ptr::write(mem.scratch_at(i) as *mut Scratch, Scratch::new()) };
        let job = ThreadJob {
            idx: i as u32,
            workers: w as u32,
            lo: cfg.lo,
            hi: cfg.hi,
            scratch: mem.scratch_at(i),
            slot: mem.slot_at(i),
            serialize: cfg.serialize,
        };
        let spawned = thread::spawn_with_stack(WORKER_STACK_BYTES, move || worker_thread(job));
        *t = Some(spawned.map_err(|e| ("thread spawn", e))?);
    }
    let ncpu = read_busy(env, &mut busy0)?;

    let t0 = rdtsc();
    GATE.store(1, Ordering::Release);
    sys::unpark(&GATE, w as u64).map_err(|e| ("unpark", e))?;
    for (i, t) in threads.iter_mut().enumerate().take(w) {
        if let Some(th) = t {
            match th.join() {
                Ok(v) => results[i].set_status(v),
                Err(e) => results[i].failure = Some(Failure::Join(e)),
            }
        }
    }
    let t1 = rdtsc();
    read_busy(env, &mut busy1)?;

    for (i, t) in threads.iter_mut().enumerate().take(w) {
        if let Some(th) = t.take() {
            // SAFETY: the worker finished (joined); its slot is in our mapping.
            let slot = unsafe { &*(mem.slot_at(i) as *const Slot) };
            results[i].start = slot.start.load(Ordering::Relaxed);
            results[i].end = slot.end.load(Ordering::Relaxed);
            results[i].cpus = cpus_of(i, th.cpu_record());
            th.close().map_err(|e| ("close", e))?;
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
