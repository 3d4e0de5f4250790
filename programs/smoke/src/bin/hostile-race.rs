//! `hostile-race`: a process ends (Exit, the last ThreadExit, or ProcKill)
//! while its threads are in the middle of everything, hundreds of times.
//!
//! The parent runs `ROUNDS` rounds (argument 1, default 240), cycling
//! through three endings, each with a varying delay:
//! - `exit`: the child's main thread calls Exit(7) while its siblings are
//!   blocked in `cap_enter` with nothing outstanding, sleeping forever,
//!   parked forever, sleeping 1 ms over and over, spinning (two of them,
//!   so other CPUs are busy too), joining a spinner, spawning and joining
//!   threads, and mapping, touching and unmapping memory in a loop;
//! - `last`: every thread does a bounded version of the same and ends with
//!   ThreadExit(9); the main thread leaves first, so the process ends with
//!   whichever exit comes last, on whichever CPU;
//! - `kill`: the parent kills the child (with the `exit` siblings running
//!   and its main thread parked) after 0-3 ms.
//!
//! Every child must end as expected (Exited 7, Exited 9, Killed 0), and
//! once all have ended, the free frame count (MemStats) must be back at
//! its value after a warm-up round of each kind: no difference allowed.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ExitKind;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::{process, sys, thread, Args};
use smoke::{ensure, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-race";
const MS: u64 = 1_000_000;
/// Rounds when the manifest gives no count.
const DEFAULT_ROUNDS: u64 = 240;
/// Exit status of the `exit` ending.
const EXIT_STATUS: i64 = 7;
/// Every thread's value in the `last` ending.
const LAST_VALUE: i64 = 9;
/// Iterations of each bounded sibling in the `last` ending.
const BOUNDED: u32 = 3;
/// Stack of each sibling thread.
const STACK: u64 = 16 * 1024;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None | Some("parent") => smoke::run("hostile-race", a, parent),
        Some("exit") => child(a, Ending::Exit),
        Some("last") => child(a, Ending::Last),
        Some("kill") => child(a, Ending::Kill),
        Some(_) => 2,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exit,
    Last,
    Kill,
}

fn parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let timer = need_cap(a, CapKind::Timer)?;
    let console = need_cap(a, CapKind::Console)?;
    let rounds = a.get_u64(1).unwrap_or(DEFAULT_ROUNDS);
    // Warm up: one round of each kind, so the baseline counts whatever the
    // kernel keeps after the first use (nothing, ideally).
    for i in 0..3 {
        round(spawner, timer, console, i)?;
    }
    let (baseline, _) = sys::mem_stats().ctx("mem-stats")?;
    for i in 0..rounds {
        round(spawner, timer, console, i)?;
    }
    let (after, _) = sys::mem_stats().ctx("mem-stats")?;
    rt::println!(
        "hostile-race: {} rounds; free frames {} before, {} after",
        rounds,
        baseline,
        after
    );
    ensure!(
        after == baseline,
        "leak: free frames {} after {} rounds, {} before (diff {})",
        after,
        rounds,
        baseline,
        i128::from(baseline) - i128::from(after)
    );
    Ok(())
}

/// One child, ended the way round `i` says.
fn round(spawner: u32, timer: u32, console: u32, i: u64) -> Result<(), Fail> {
    let (ending, want) = match i % 3 {
        0 => ("exit", (ExitKind::Exited, EXIT_STATUS)),
        1 => ("last", (ExitKind::Exited, LAST_VALUE)),
        _ => ("kill", (ExitKind::Killed, 0)),
    };
    // Delay before the ending, in microseconds: 0, 200, ... 800.
    let delay = smoke::num((i / 3 % 5) * 200);
    let c = process::spawn(spawner, NAME, &[ending, delay.as_str()], &[console, timer])
        .ctx("spawn child")?;
    if ending == "kill" {
        let ms = i / 3 % 4;
        if ms > 0 {
            sys::sleep(timer, ms * MS).ctx("sleep")?;
        }
        c.kill().ctx("kill")?;
    }
    let got = c.wait().ctx("wait child")?;
    c.close().ctx("close child")?;
    ensure!(
        got == want,
        "round {} ({} after {} us): child ended {:?}, want {:?}",
        i,
        ending,
        delay.as_str(),
        got,
        want
    );
    Ok(())
}

/// Siblings that have started.
static STARTED: AtomicU32 = AtomicU32::new(0);
/// Word the parked siblings park on (never changes).
static PARK_WORD: AtomicU32 = AtomicU32::new(0);
/// Slot of the first spinner's handle, for the joiner.
static SPINNER_SLOT: AtomicU64 = AtomicU64::new(u64::MAX);

/// The child: start the siblings, wait until all run, wait the delay, end.
fn child(a: &Args, ending: Ending) -> i64 {
    let Some(timer) = a.find_cap(CapKind::Timer) else {
        return 3;
    };
    let delay_ns = a.get_u64(1).unwrap_or(0) * 1000;
    let bounded = ending == Ending::Last;
    let started = match start_siblings(timer, bounded) {
        Ok(n) => n,
        Err(code) => return code,
    };
    while STARTED.load(Ordering::Acquire) < started {
        core::hint::spin_loop();
    }
    smoke::spin_ns(delay_ns, a.tsc_hz());
    match ending {
        Ending::Exit => EXIT_STATUS,
        Ending::Last => thread::exit(LAST_VALUE),
        Ending::Kill => loop {
            let _ = sys::park(&PARK_WORD, 0, TIMEOUT_NEVER);
        },
    }
}

fn go() {
    STARTED.fetch_add(1, Ordering::AcqRel);
}

/// Starts every kind of sibling; how many. Forever variants unless
/// `bounded`, where each ends with ThreadExit(LAST_VALUE) after a few
/// iterations. An error becomes the child's exit status.
fn start_siblings(timer: u32, bounded: bool) -> Result<u32, i64> {
    let rounds = move || if bounded { BOUNDED } else { u32::MAX };
    let spawn = |f: fn(u32, u32) -> i64| {
        let r = rounds();
        thread::spawn_with_stack(STACK, move || f(timer, r)).map_err(|_| 10)
    };
    // Spinners first, so the joiner has a handle to wait on.
    let first = spawn(spinner)?;
    SPINNER_SLOT.store(u64::from(first.slot()), Ordering::Release);
    let mut n = 1;
    for f in [
        spinner as fn(u32, u32) -> i64,
        blocked_enter,
        sleeper,
        parker,
        napper,
        joiner,
        thread_spawner,
        mapper,
    ] {
        spawn(f)?;
        n += 1;
    }
    Ok(n)
}

fn spinner(_: u32, rounds: u32) -> i64 {
    go();
    let hz = rt::args::args().map_or(1_000_000_000, |a| a.tsc_hz());
    for _ in 0..rounds {
        smoke::spin_ns(MS, hz);
    }
    LAST_VALUE
}

/// Blocked in cap_enter with nothing outstanding (a timeout when bounded).
fn blocked_enter(_: u32, rounds: u32) -> i64 {
    go();
    let timeout = if rounds == u32::MAX {
        TIMEOUT_NEVER
    } else {
        MS
    };
    for _ in 0..rounds {
        let _ = sys::enter(1, timeout);
    }
    LAST_VALUE
}

/// One sleep that outlives the process (1 ms sleeps when bounded).
fn sleeper(timer: u32, rounds: u32) -> i64 {
    go();
    let ns = if rounds == u32::MAX { u64::MAX } else { MS };
    for _ in 0..rounds {
        let _ = sys::sleep(timer, ns);
    }
    LAST_VALUE
}

fn parker(_: u32, rounds: u32) -> i64 {
    go();
    let timeout = if rounds == u32::MAX {
        TIMEOUT_NEVER
    } else {
        MS
    };
    for _ in 0..rounds {
        let _ = sys::park(&PARK_WORD, 0, timeout);
    }
    LAST_VALUE
}

/// Short sleeps, over and over.
fn napper(timer: u32, rounds: u32) -> i64 {
    go();
    for _ in 0..rounds {
        let _ = sys::sleep(timer, MS);
    }
    LAST_VALUE
}

/// Blocked in ThreadJoin on the first spinner.
fn joiner(_: u32, rounds: u32) -> i64 {
    go();
    let Ok(slot) = u32::try_from(SPINNER_SLOT.load(Ordering::Acquire)) else {
        return 11;
    };
    if rounds == u32::MAX {
        let _ = sys::thread_join(slot);
    }
    LAST_VALUE
}

/// Spawns, joins and closes short threads.
fn thread_spawner(_: u32, rounds: u32) -> i64 {
    go();
    for _ in 0..rounds {
        match thread::spawn_with_stack(STACK, || LAST_VALUE) {
            Ok(mut t) => {
                let _ = t.join();
                let _ = t.close();
            }
            Err(_) => return 12,
        }
    }
    LAST_VALUE
}

/// Maps, touches and unmaps memory.
fn mapper(_: u32, rounds: u32) -> i64 {
    const BYTES: u64 = 64 * 1024;
    go();
    for _ in 0..rounds {
        let Ok(base) = sys::mem_map(BYTES) else {
            return 13;
        };
        for off in (0..BYTES).step_by(4096) {
            // SAFETY: a fresh writable mapping of BYTES, ours alone.
            unsafe { core::ptr::write_volatile((base + off) as *mut u64, off) };
        }
        if sys::mem_unmap(base, BYTES).is_err() {
            return 14;
        }
    }
    LAST_VALUE
}
