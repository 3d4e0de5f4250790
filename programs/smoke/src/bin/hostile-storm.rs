//! `hostile-storm`: storms that exhaust or pin the kernel (issue 11).
//!
//! The first argument picks the case; each prints `SMOKE hostile-<case>`:
//! - `sleep-heap` (defect 1): a child spawns threads that each keep 4,096
//!   `TimerSleep(u64::MAX)` outstanding until the kernel answers NoMemory
//!   (the budget), then exits 0 with all of them still armed. The child
//!   must end with status 0 and every frame and charge must come back.
//!   Today the timer lists fill the heap: `PANIC memory allocation ... failed`.
//! - `enter-pinned` (defect 2): a sibling keeps a thread's SQ full and its
//!   CQ drained while that thread is in `cap_enter(0, 0)` (then in a
//!   waiting `cap_enter`); one call may consume at most SQ_ENTRIES. A third
//!   thread maps, touches and unmaps meanwhile (TLB shootdowns), which
//!   must be answered. Today the call runs as long as the sibling feeds it.
//! - `timers` (defect 3): 8 threads keep 2,000 sleeps (1 to 201 ms) and
//!   1,900 park timeouts each outstanding, beside 32,000 hour-long sleeps
//!   (63,200 timers), then one Unpark wakes every park early while a
//!   sibling shoots down (today each cancel scans a CPU's whole list with
//!   interrupts off). Every completion
//!   must arrive exactly once, no sleep before its delay, and the woken
//!   count must match Unpark's result. (The ABI promises no completion
//!   order between sleeps, so none is checked.)
//! - `unpark`: beside 32,000 hour-long sleeps, up to 16,384 threads park
//!   (with a timeout) on one word; one `Unpark(u64::MAX)` wakes them while
//!   a sibling on another CPU shoots down. Today the
//!   linear timer cancel keeps the CPU in ring 0 long enough for the
//!   shootdown to panic ("did not answer").
//! - `exhaust`: children create threads, mappings and parks until the
//!   kernel refuses with NoMemory, release them, and exit 0; frames and
//!   charges must come back (in the child and after it).
#![no_std]
#![no_main]

use abi::caps::{CapKind, SELF_SLOT};
use abi::error::Error;
use abi::op::{ExitKind, Op, ParkResult};
use abi::ring::SQ_ENTRIES;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use rt::process::{self, Child};
use rt::ring::Ring;
use rt::{println, sys, thread, Args};
use smoke::hostile::{self, nap, raw_spawn, sqe, wait_count, RawRing, Shooter, Snapshot};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-storm";
/// A park timeout that never fires during a test (one hour).
const HOUR_NS: u64 = 3_600_000_000_000;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        Some("sleep-heap") => smoke::run("hostile-sleep-heap", a, sleep_heap),
        Some("sleep-heap-child") => sleep_heap_child(a),
        Some("enter-pinned") => smoke::run("hostile-enter-pinned", a, enter_pinned),
        Some("timers") => smoke::run("hostile-timers", a, timers),
        Some("unpark") => smoke::run("hostile-unpark", a, unpark_storm),
        Some("exhaust") => smoke::run("hostile-exhaust", a, exhaust),
        Some("exhaust-threads") => child_status(exhaust_threads()),
        Some("exhaust-maps") => child_status(exhaust_maps()),
        Some("exhaust-parks") => child_status(exhaust_parks()),
        Some("noop") => 0,
        _ => 100,
    }
}

/// A child's verdict: 0, or 1 after printing why.
fn child_status(r: Result<(), Fail>) -> i64 {
    match r {
        Ok(()) => 0,
        Err(f) => {
            println!("HOSTILE child-fail reason={}", f.0.as_str());
            1
        }
    }
}

/// Runs `hostile-storm <mode>` as a child with `caps` and checks that it
/// exits 0 and that frames and charges come back afterwards.
fn run_child_checked(a: &Args, mode: &str, caps: &[u32]) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    // Warm-up: a first spawn may grow this process's tables for good.
    let w = process::spawn(spawner, NAME, &["noop"], &[]).ctx("spawn noop")?;
    w.wait().ctx("wait noop")?;
    w.close().ctx("close noop")?;
    let base = Snapshot::take()?;
    let c: Child = process::spawn(spawner, NAME, &[mode], caps).ctx("spawn child")?;
    let r = c.wait().ctx("wait child")?;
    c.close().ctx("close child")?;
    ensure!(
        r == (ExitKind::Exited, 0),
        "{}: child ended {:?}, want exit 0",
        mode,
        r
    );
    base.expect_back_soon(mode, 100)
}

// ---- sleep-heap -------------------------------------------------------

/// Most sleeper threads before the test gives up waiting for NoMemory.
const SLEEPERS_MAX: u32 = 1000;
/// Sleeps each sleeper keeps outstanding (just below the per-thread limit
/// of 4,096, so that a refusal can only come from the budget).
const SLEEPS_PER_THREAD: u32 = 4000;

static SH_DONE: AtomicU32 = AtomicU32::new(0);
static SH_NOMEM: AtomicU32 = AtomicU32::new(0);
static SH_BAD: AtomicU32 = AtomicU32::new(0);
static SH_SLEEPS: AtomicU64 = AtomicU64::new(0);

fn sleep_heap(a: &Args) -> Result<(), Fail> {
    let console = need_cap(a, CapKind::Console)?;
    let timer = need_cap(a, CapKind::Timer)?;
    run_child_checked(a, "sleep-heap-child", &[console, timer])
}

/// Keeps 4,096 endless sleeps outstanding, then waits forever.
fn sleeper(timer: u64, r: RawRing) -> i64 {
    let res = r.flood(
        SLEEPS_PER_THREAD,
        |i| sqe(Op::TimerSleep, timer as u32, u64::from(i) + 1, &[u64::MAX]),
        |_| {},
    );
    SH_SLEEPS.fetch_add(
        u64::from(res.consumed - res.no_memory.min(res.consumed)),
        Ordering::AcqRel,
    );
    if res.no_memory > 0 {
        SH_NOMEM.fetch_add(1, Ordering::AcqRel);
    }
    if res.stalled || res.other_errors > 0 {
        SH_BAD.fetch_add(1, Ordering::AcqRel);
    }
    SH_DONE.fetch_add(1, Ordering::AcqRel);
    loop {
        r.enter(1, TIMEOUT_NEVER);
        while r.0.pop().is_some() {}
    }
}

fn sleep_heap_child(a: &Args) -> i64 {
    let Some(timer) = a.find_cap(CapKind::Timer) else {
        return 2;
    };
    let mut threads = 0;
    let mut spawn_err = None;
    while threads < SLEEPERS_MAX {
        match raw_spawn(sleeper, u64::from(timer)) {
            Ok((slot, _)) => {
                let _ = sys::cap_close(slot);
            }
            Err(e) => {
                spawn_err = Some(e);
                break;
            }
        }
        threads += 1;
        wait_count(&SH_DONE, threads);
        if SH_NOMEM.load(Ordering::Acquire) > 0 || SH_BAD.load(Ordering::Acquire) > 0 {
            break;
        }
    }
    println!(
        "HOSTILE sleep-heap threads={} sleeps={} nomem_threads={} spawn_err={}",
        threads,
        SH_SLEEPS.load(Ordering::Acquire),
        SH_NOMEM.load(Ordering::Acquire),
        spawn_err.map_or("none", Error::name)
    );
    if SH_BAD.load(Ordering::Acquire) > 0 {
        println!("HOSTILE child-fail reason=a sleeper's ring stalled or saw another error");
        return 3;
    }
    let refused = SH_NOMEM.load(Ordering::Acquire) > 0 || spawn_err == Some(Error::NoMemory);
    if !refused {
        println!("HOSTILE child-fail reason=no NoMemory after {threads} threads");
        return 4;
    }
    // Exit with every sleep still armed: the kernel must release them all.
    0
}

// ---- enter-pinned -----------------------------------------------------

/// NOPs the feeder offers at most (it stops earlier once the victim is done).
const FEED_MAX: u64 = 400_000;
/// Calls the victim makes per variant (the feeder must catch one of them
/// while it runs on another CPU).
const VICTIM_TRIES: u32 = 40;

static V_RING: AtomicU64 = AtomicU64::new(0);
static V_DONE: AtomicBool = AtomicBool::new(false);
static V_MAX: AtomicU32 = AtomicU32::new(0);
static FEEDING: AtomicBool = AtomicBool::new(false);
static FEED_STOPPED: AtomicBool = AtomicBool::new(false);
static FEED_BEAT: AtomicU64 = AtomicU64::new(0);
static V_CONCURRENT: AtomicU32 = AtomicU32::new(0);

/// Spins the victim waits at most for proof that the feeder runs on
/// another CPU right now.
const CONCURRENT_SPINS: u32 = 1 << 22;

/// Whether the feeder's heartbeat moves while this thread spins (so the two
/// run on different CPUs at this moment).
fn feeder_runs_beside_me() -> bool {
    let b0 = FEED_BEAT.load(Ordering::Acquire);
    for _ in 0..1000 {
        core::hint::spin_loop();
    }
    FEED_BEAT.load(Ordering::Acquire) != b0
}

/// The pinned thread: each time the feeder has filled its SQ (and, with
/// several CPUs, runs beside it), enters once and records how many SQEs
/// that one call consumed; then drains what the feeder left.
fn victim(min: u64, timeout_ns: u64, cpus: u64) -> i64 {
    let r = RawRing::current();
    V_RING.store(r.0.addr() as u64, Ordering::Release);
    for _ in 0..VICTIM_TRIES {
        let mut spins = 0u32;
        loop {
            if FEED_STOPPED.load(Ordering::Acquire) {
                break;
            }
            let full = FEEDING.load(Ordering::Acquire) && r.0.sq_pending() == Some(SQ_ENTRIES);
            if full && (cpus < 2 || spins >= CONCURRENT_SPINS) {
                break;
            }
            if full && feeder_runs_beside_me() {
                V_CONCURRENT.fetch_add(1, Ordering::AcqRel);
                break;
            }
            spins = spins.saturating_add(1);
            core::hint::spin_loop();
        }
        let h0 = r.sq_head();
        r.enter(min, timeout_ns);
        V_MAX.fetch_max(r.sq_head().wrapping_sub(h0), Ordering::AcqRel);
    }
    V_DONE.store(true, Ordering::Release);
    while !FEED_STOPPED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    loop {
        while r.0.pop().is_some() {}
        if r.0.sq_pending() == Some(0) {
            return 0;
        }
        r.enter(0, 0);
    }
}

/// Keeps the victim's SQ full and its CQ empty until it is done.
fn feeder() -> i64 {
    let addr = loop {
        let v = V_RING.load(Ordering::Acquire);
        if v != 0 {
            break v;
        }
        core::hint::spin_loop();
    };
    // SAFETY: the victim's ring, mapped read-write in this process; the
    // victim only enters the kernel while this thread feeds, and drains the
    // ring itself only after FEED_STOPPED.
    let ring = unsafe { Ring::from_raw(addr as usize) };
    let nop = sqe(Op::Nop, SELF_SLOT, 7, &[]);
    let mut fed = 0u64;
    FEEDING.store(true, Ordering::Release);
    while !V_DONE.load(Ordering::Acquire) && fed < FEED_MAX {
        if ring.push(&nop) {
            fed += 1;
        }
        while ring.pop().is_some() {}
        FEED_BEAT.fetch_add(1, Ordering::Release);
    }
    FEED_STOPPED.store(true, Ordering::Release);
    fed as i64
}

fn enter_pinned(a: &Args) -> Result<(), Fail> {
    let shooter = Shooter::start(true)?;
    let cpus = a.cpus();
    // cap_enter(0, 0), then a waiting cap_enter that can never be satisfied
    // (min = CQ size while the feeder drains the CQ) with a 5 ms timeout.
    for (min, timeout) in [(0u64, 0u64), (u64::from(abi::ring::CQ_ENTRIES), 5_000_000)] {
        V_RING.store(0, Ordering::Release);
        V_DONE.store(false, Ordering::Release);
        V_MAX.store(0, Ordering::Release);
        V_CONCURRENT.store(0, Ordering::Release);
        FEEDING.store(false, Ordering::Release);
        FEED_STOPPED.store(false, Ordering::Release);
        let mut v = thread::spawn_with_stack(16 * 1024, move || victim(min, timeout, cpus))
            .ctx("spawn victim")?;
        let mut f = thread::spawn_with_stack(16 * 1024, feeder).ctx("spawn feeder")?;
        let fed = f.join().ctx("join feeder")?;
        ensure!(v.join().ctx("join victim")? == 0, "victim failed");
        f.close().ctx("close feeder")?;
        v.close().ctx("close victim")?;
        let consumed = V_MAX.load(Ordering::Acquire);
        println!(
            "HOSTILE enter-pinned min={} cpus={} tries={} concurrent={} max_consumed={} fed={} shootdowns={}",
            min,
            cpus,
            VICTIM_TRIES,
            V_CONCURRENT.load(Ordering::Acquire),
            consumed,
            fed,
            Shooter::rounds()
        );
        ensure!(
            consumed <= SQ_ENTRIES,
            "one cap_enter(min={}) consumed {} SQEs (> {})",
            min,
            consumed,
            SQ_ENTRIES
        );
    }
    shooter.stop()?;
    Ok(())
}

// ---- timers -----------------------------------------------------------

const TIMER_THREADS: usize = 8;
const SLEEPS_EACH: u32 = 2000;
const PARKS_EACH: u32 = 1900;
const SLEEP_TAG: u64 = 1 << 40;
const PARK_TAG: u64 = 2 << 40;

static T_WORD: AtomicU32 = AtomicU32::new(0);
static T_SUBMITTED: AtomicU32 = AtomicU32::new(0);

/// Delay of sleep `i`: 1 ms to 200.9 ms, shuffled.
fn sleep_ns(i: u32) -> u64 {
    1_000_000 + u64::from(i * 7919 % SLEEPS_EACH) * 100_000
}

/// Timeout of park `j`: every 8th a short one (5 to 44 ms) that may fire
/// before the unpark, the rest an hour plus a spread.
fn park_timeout(j: u32) -> u64 {
    if j.is_multiple_of(8) {
        5_000_000 + u64::from(j * 31 % 40) * 1_000_000
    } else {
        HOUR_NS + u64::from(j) * 1000
    }
}

/// What one timer thread saw.
struct Tally {
    seen: [u64; ((SLEEPS_EACH + PARKS_EACH) as usize).div_ceil(64)],
    /// 0, or the first problem's code (see [`timers`]).
    bad: i64,
    woken: i64,
    got: u32,
    t0: u64,
    tsc_hz: u64,
}

impl Tally {
    fn check(&mut self, c: &abi::ring::Cqe) {
        let total = SLEEPS_EACH + PARKS_EACH;
        let tag = c.user_data & !((1 << 40) - 1);
        let i = (c.user_data & ((1 << 40) - 1)) as u32;
        let bit = if tag == SLEEP_TAG { i } else { SLEEPS_EACH + i };
        if (tag != SLEEP_TAG && tag != PARK_TAG)
            || bit >= total
            || self.seen[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        {
            self.bad = -2; // unknown or duplicate completion
            return;
        }
        self.seen[(bit / 64) as usize] |= 1 << (bit % 64);
        self.got += 1;
        if c.result != 0 {
            self.bad = -3;
        } else if tag == SLEEP_TAG {
            let min_cycles =
                (u128::from(sleep_ns(i)) * u128::from(self.tsc_hz) / 1_000_000_000) as u64;
            if rt::arch::rdtsc().wrapping_sub(self.t0) < min_cycles {
                self.bad = -4; // completed before its delay
            }
        } else {
            match ParkResult::from_raw(c.value0) {
                Some(ParkResult::Woken) => self.woken += 1,
                Some(ParkResult::TimedOut) => {}
                _ => self.bad = -5,
            }
        }
    }
}

/// One timer thread: the number of its parks that were woken, or a
/// negative problem code.
fn timer_thread(timer: u32, tsc_hz: u64) -> i64 {
    let r = RawRing::current();
    let addr = &T_WORD as *const AtomicU32 as u64;
    let total = SLEEPS_EACH + PARKS_EACH;
    let mut t = Tally {
        seen: [0; ((SLEEPS_EACH + PARKS_EACH) as usize).div_ceil(64)],
        bad: 0,
        woken: 0,
        got: 0,
        t0: rt::arch::rdtsc(),
        tsc_hz,
    };
    let res = r.flood(
        total,
        |k| {
            if k < SLEEPS_EACH {
                sqe(
                    Op::TimerSleep,
                    timer,
                    SLEEP_TAG | u64::from(k),
                    &[sleep_ns(k)],
                )
            } else {
                let j = k - SLEEPS_EACH;
                sqe(
                    Op::Park,
                    SELF_SLOT,
                    PARK_TAG | u64::from(j),
                    &[addr, 0, park_timeout(j)],
                )
            }
        },
        |c| t.check(c),
    );
    T_SUBMITTED.fetch_add(1, Ordering::AcqRel);
    if res.stalled || res.consumed != total {
        return -1;
    }
    while t.got < total && t.bad == 0 {
        r.enter(1, TIMEOUT_NEVER);
        while let Some(c) = r.0.pop() {
            t.check(&c);
        }
    }
    if t.bad != 0 {
        t.bad
    } else {
        t.woken
    }
}

/// Threads that only hold hour-long sleeps (never cancelled, released at
/// exit), so the timer lists are long while the parks are cancelled.
const BALLAST_THREADS: u32 = 8;
const BALLAST_SLEEPS: u32 = 4000;

static BALLAST_READY: AtomicU32 = AtomicU32::new(0);
static BALLAST_BAD: AtomicU32 = AtomicU32::new(0);

fn ballast(timer: u64, r: RawRing) -> i64 {
    let res = r.flood(
        BALLAST_SLEEPS,
        |i| {
            sqe(
                Op::TimerSleep,
                timer as u32,
                u64::from(i),
                &[HOUR_NS + u64::from(i)],
            )
        },
        |_| {},
    );
    if res.stalled || res.completed > 0 {
        BALLAST_BAD.fetch_add(1, Ordering::AcqRel);
    }
    BALLAST_READY.fetch_add(1, Ordering::AcqRel);
    loop {
        r.enter(1, TIMEOUT_NEVER);
        while r.0.pop().is_some() {}
    }
}

/// Starts the ballast threads and waits until their sleeps are armed.
fn start_ballast(timer: u32) -> Result<(), Fail> {
    for _ in 0..BALLAST_THREADS {
        let (slot, _) = raw_spawn(ballast, u64::from(timer)).ctx("spawn ballast")?;
        sys::cap_close(slot).ctx("close ballast")?;
    }
    wait_count(&BALLAST_READY, BALLAST_THREADS);
    ensure!(
        BALLAST_BAD.load(Ordering::Acquire) == 0,
        "a ballast sleep failed or stalled"
    );
    Ok(())
}

fn timers(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let hz = a.tsc_hz();
    start_ballast(timer)?;
    let shooter = Shooter::start(false)?;
    let mut ts: [Option<thread::Thread>; TIMER_THREADS] = [const { None }; TIMER_THREADS];
    for t in ts.iter_mut() {
        *t = Some(
            thread::spawn_with_stack(32 * 1024, move || timer_thread(timer, hz))
                .ctx("spawn timer thread")?,
        );
    }
    wait_count(&T_SUBMITTED, TIMER_THREADS as u32);
    let beside = a.cpus() > 1 && Shooter::wait_beside_me(1000);
    let unparked = sys::unpark(&T_WORD, u64::MAX).ctx("unpark")?;
    let mut woken = 0u64;
    for t in ts.iter_mut() {
        let Some(mut t) = t.take() else { continue };
        let v = t.join().ctx("join timer thread")?;
        t.close().ctx("close timer thread")?;
        match v {
            -1 => fail!("a timer thread's submissions stalled"),
            -2 => fail!("a completion arrived twice or was unknown"),
            -3 => fail!("a sleep or park failed"),
            -4 => fail!("a sleep completed before its delay"),
            -5 => fail!("a park ended neither woken nor timed out"),
            v if v < 0 => fail!("timer thread error {}", v),
            v => woken += v as u64,
        }
    }
    let rounds = shooter.stop()?;
    println!(
        "HOSTILE timers threads={} sleeps={} hour_sleeps={} parks={} unparked={} woken={} shootdowns={} shooter_beside={}",
        TIMER_THREADS,
        TIMER_THREADS as u32 * SLEEPS_EACH,
        BALLAST_THREADS * BALLAST_SLEEPS,
        TIMER_THREADS as u32 * PARKS_EACH,
        unparked,
        woken,
        rounds,
        beside
    );
    ensure!(
        woken == unparked,
        "Unpark reported {} woken, parkers saw {}",
        unparked,
        woken
    );
    ensure!(woken > 0, "no park was woken");
    Ok(())
}

// ---- unpark storm -----------------------------------------------------

/// Parkers attempted at most (the thread registry's size).
const PARKERS_MAX: u32 = 16 * 1024;

static U_WORD: AtomicU32 = AtomicU32::new(0);
static U_READY: AtomicU32 = AtomicU32::new(0);
static U_FINISHED: AtomicU32 = AtomicU32::new(0);
static U_WOKEN: AtomicU32 = AtomicU32::new(0);
static U_CHANGED: AtomicU32 = AtomicU32::new(0);
static U_NOMEM: AtomicU32 = AtomicU32::new(0);
static U_OTHER: AtomicU32 = AtomicU32::new(0);

fn parker(_: u64, r: RawRing) -> i64 {
    U_READY.fetch_add(1, Ordering::AcqRel);
    let c = r.park(&U_WORD, 0, HOUR_NS);
    let counter = match (c.result, ParkResult::from_raw(c.value0)) {
        (0, Some(ParkResult::Woken)) => &U_WOKEN,
        (0, Some(ParkResult::ValueChanged)) => &U_CHANGED,
        // The budget may run out between a parker's start and its park.
        (r, _) if r == Error::NoMemory.as_result() => &U_NOMEM,
        _ => &U_OTHER,
    };
    counter.fetch_add(1, Ordering::AcqRel);
    U_FINISHED.fetch_add(1, Ordering::AcqRel);
    0
}

fn unpark_storm(a: &Args) -> Result<(), Fail> {
    // Hour-long sleeps first (long timer lists), then the shooter: the
    // parkers may fill the thread registry.
    start_ballast(need_cap(a, CapKind::Timer)?)?;
    let shooter = Shooter::start(false)?;
    let mut n = 0u32;
    let mut stop = None;
    while n < PARKERS_MAX {
        match raw_spawn(parker, 0) {
            Ok((slot, _)) => sys::cap_close(slot).ctx("close parker handle")?,
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        n += 1;
    }
    if let Some(e) = stop {
        ensure!(
            e == Error::NoMemory,
            "parker spawn {} failed with {}",
            n,
            e.name()
        );
    }
    ensure!(n >= 64, "only {} parkers could be started", n);
    wait_count(&U_READY, n);
    // Let the last ones reach Park (late ones see ValueChanged).
    nap(100_000_000);
    println!("HOSTILE unpark parked={n} phase=unpark");
    // Unpark while the shooter runs on another CPU, so that its next
    // shootdown needs the CPU doing the Unpark.
    let beside = a.cpus() > 1 && Shooter::wait_beside_me(1000);
    U_WORD.store(1, Ordering::Release);
    let (r0, t0) = (Shooter::rounds(), rt::arch::rdtsc());
    let woken = sys::unpark(&U_WORD, u64::MAX).ctx("unpark")?;
    // For the log only: how long the one call took, how many shooter
    // rounds ran meanwhile.
    let unpark_ms = rt::arch::rdtsc().wrapping_sub(t0) / (a.tsc_hz() / 1000).max(1);
    let during = Shooter::rounds() - r0;
    wait_count(&U_FINISHED, n);
    let rounds = shooter.stop()?;
    let (w, ch, nomem, other) = (
        U_WOKEN.load(Ordering::Acquire),
        U_CHANGED.load(Ordering::Acquire),
        U_NOMEM.load(Ordering::Acquire),
        U_OTHER.load(Ordering::Acquire),
    );
    println!(
        "HOSTILE unpark parkers={} stop={} woken={} value_changed={} park_nomem={} cpus={} shootdowns={} unpark_ms={} shootdowns_during={} shooter_beside={}",
        n,
        stop.map_or("cap", Error::name),
        woken,
        ch,
        nomem,
        a.cpus(),
        rounds,
        unpark_ms,
        during,
        beside
    );
    ensure!(other == 0, "{} parks ended with an error or timeout", other);
    ensure!(
        u64::from(w) == woken,
        "Unpark said {} woken, parkers saw {}",
        woken,
        w
    );
    ensure!(
        w + ch + nomem == n,
        "{} + {} + {} parkers ended, want {}",
        w,
        ch,
        nomem,
        n
    );
    ensure!(woken > 0, "nobody was woken");
    Ok(())
}

// ---- exhaust ----------------------------------------------------------

fn exhaust(a: &Args) -> Result<(), Fail> {
    let console = need_cap(a, CapKind::Console)?;
    for mode in ["exhaust-threads", "exhaust-maps", "exhaust-parks"] {
        run_child_checked(a, mode, &[console])?;
    }
    Ok(())
}

/// Threads attempted at most.
const STORM_THREADS_MAX: u32 = 20_000;

static E_WORD: AtomicU32 = AtomicU32::new(0);
static E_READY: AtomicU32 = AtomicU32::new(0);
static E_FINISHED: AtomicU32 = AtomicU32::new(0);

fn storm_thread(_: u64, r: RawRing) -> i64 {
    E_READY.fetch_add(1, Ordering::AcqRel);
    let _ = r.park(&E_WORD, 0, TIMEOUT_NEVER);
    E_FINISHED.fetch_add(1, Ordering::AcqRel);
    0
}

fn expect_refusal(what: &str, made: u32, stop: Option<Error>) -> Result<(), Fail> {
    println!(
        "HOSTILE exhaust {}={} stop={}",
        what,
        made,
        stop.map_or("cap", Error::name)
    );
    match stop {
        Some(Error::NoMemory) => Ok(()),
        Some(e) => fail!("{} storm stopped with {} after {}", what, e.name(), made),
        None => fail!("{} storm reached {} without NoMemory", what, made),
    }
}

fn exhaust_threads() -> Result<(), Fail> {
    let mut n = 0;
    let mut stop = None;
    while n < STORM_THREADS_MAX {
        match raw_spawn(storm_thread, 0) {
            Ok((slot, _)) => sys::cap_close(slot).ctx("close thread handle")?,
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        n += 1;
    }
    wait_count(&E_READY, n);
    E_WORD.store(1, Ordering::Release);
    sys::unpark(&E_WORD, u64::MAX).ctx("unpark storm threads")?;
    wait_count(&E_FINISHED, n);
    expect_refusal("threads", n, stop)
}

/// Mappings attempted at most.
const STORM_MAPS_MAX: usize = 20_000;
/// Size of each mapping (the largest MemMap).
const MAP_BYTES: u64 = 1 << 30;

static MAPS: [AtomicU64; STORM_MAPS_MAX] = [const { AtomicU64::new(0) }; STORM_MAPS_MAX];

fn exhaust_maps() -> Result<(), Fail> {
    for m in &MAPS {
        m.store(0, Ordering::Relaxed); // touch the table before the snapshot
    }
    let base = Snapshot::take()?;
    let mut n = 0;
    let mut stop = None;
    while n < STORM_MAPS_MAX {
        match sys::mem_map(MAP_BYTES) {
            Ok(addr) => {
                hostile::touch(addr, 1, 1);
                hostile::touch(addr + MAP_BYTES - 1, 1, 1);
                MAPS[n].store(addr, Ordering::Relaxed);
            }
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        n += 1;
    }
    for m in MAPS.iter().take(n) {
        sys::mem_unmap(m.load(Ordering::Relaxed), MAP_BYTES).ctx("unmap")?;
    }
    expect_refusal("maps", n as u32, stop)?;
    base.expect_frames_back("map storm")
}

/// Park threads at most, and parks each keeps outstanding (below the
/// per-thread limit, so the refusal comes from the budget or the table).
const PARK_THREADS_MAX: u32 = 64;
const PARKS_PER_THREAD: u32 = 4000;

static P_WORD: AtomicU32 = AtomicU32::new(0);
static P_DONE: AtomicU32 = AtomicU32::new(0);
static P_NOMEM: AtomicU32 = AtomicU32::new(0);
static P_BAD: AtomicU32 = AtomicU32::new(0);
static P_PARKED: AtomicU32 = AtomicU32::new(0);
static P_WOKEN: AtomicU32 = AtomicU32::new(0);

/// Keeps 4,000 parks outstanding; after the unpark collects them.
fn park_thread(_: u64, r: RawRing) -> i64 {
    let addr = &P_WORD as *const AtomicU32 as u64;
    let res = r.flood(
        PARKS_PER_THREAD,
        |i| {
            sqe(
                Op::Park,
                SELF_SLOT,
                u64::from(i) + 1,
                &[addr, 0, TIMEOUT_NEVER],
            )
        },
        |_| {},
    );
    let parked = res.consumed - res.completed.min(res.consumed);
    P_PARKED.fetch_add(parked, Ordering::AcqRel);
    if res.no_memory > 0 {
        P_NOMEM.fetch_add(1, Ordering::AcqRel);
    }
    if res.stalled || res.other_errors > 0 || res.completed != res.no_memory {
        P_BAD.fetch_add(1, Ordering::AcqRel);
    }
    P_DONE.fetch_add(1, Ordering::AcqRel);
    let mut got = 0;
    while got < parked {
        r.enter(1, TIMEOUT_NEVER);
        while let Some(c) = r.0.pop() {
            got += 1;
            if c.result == 0 && c.value0 == ParkResult::Woken as u64 {
                P_WOKEN.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    0
}

fn exhaust_parks() -> Result<(), Fail> {
    let mut n = 0;
    let mut stop = None;
    while n < PARK_THREADS_MAX {
        match raw_spawn(park_thread, 0) {
            Ok((slot, _)) => sys::cap_close(slot).ctx("close park thread")?,
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
        n += 1;
        wait_count(&P_DONE, n);
        if P_NOMEM.load(Ordering::Acquire) > 0 {
            stop = Some(Error::NoMemory);
            break;
        }
        ensure!(
            P_BAD.load(Ordering::Acquire) == 0,
            "a park thread stalled or saw an error"
        );
    }
    let parked = P_PARKED.load(Ordering::Acquire);
    P_WORD.store(1, Ordering::Release);
    let woken = sys::unpark(&P_WORD, u64::MAX).ctx("unpark parks")?;
    println!("HOSTILE exhaust park-threads={n} parked={parked} unparked={woken}");
    ensure!(
        woken == u64::from(parked),
        "unpark woke {} of {} parks",
        woken,
        parked
    );
    wait_count(&P_WOKEN, parked);
    expect_refusal("parks", parked, stop)
}
