//! `sched-smoke`: many short processes and threads that sleep, park and
//! wake each other across CPUs; every round must complete (no lost
//! wakeup), and nothing may hang.
//!
//! - ping-pong: two threads hand a turn word back and forth 2,000 times
//!   through park/unpark;
//! - a baton ring: six threads pass a token around 100 laps, each waking
//!   everyone parked on the token word (a small wake storm each step);
//! - 12 child processes at once (`sched-smoke child I`), each sleeping a
//!   little, then running its own ping-pong, exiting with I.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ExitKind;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, Ordering};
use rt::process::{self, Child};
use rt::thread::{self, Thread};
use rt::{sys, Args};
use smoke::{ensure, fail, need_cap, num, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "sched-smoke";
const STACK: u64 = 16 * 1024;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run("sched", a, parent),
        Some("child") => child(a),
        Some(_) => 100,
    }
}

/// Waits until `word` holds `want` (parking while it holds something else).
fn wait_for_value(word: &AtomicU32, want: u32) -> bool {
    loop {
        let v = word.load(Ordering::Acquire);
        if v == want {
            return true;
        }
        if sys::park(word, v, TIMEOUT_NEVER).is_err() {
            return false;
        }
    }
}

/// Two threads alternate `rounds` times on one word; true when both
/// finished every round.
fn ping_pong(turn: &'static AtomicU32, rounds: u32) -> Result<bool, rt::Error> {
    let side = move |me: u32| {
        move || {
            for _ in 0..rounds {
                if !wait_for_value(turn, me) {
                    return 0;
                }
                turn.store(1 - me, Ordering::Release);
                if sys::unpark(turn, 1).is_err() {
                    return 0;
                }
            }
            1
        }
    };
    turn.store(0, Ordering::Release);
    let mut a = thread::spawn_with_stack(STACK, side(0))?;
    let mut b = thread::spawn_with_stack(STACK, side(1))?;
    let done = a.join()? + b.join()?;
    a.close()?;
    b.close()?;
    Ok(done == 2)
}

static CHILD_TURN: AtomicU32 = AtomicU32::new(0);

/// A child process: sleep a little, ping-pong, exit with its index.
fn child(a: &Args) -> i64 {
    let i = a.get_u64(1).unwrap_or(0);
    if let Some(timer) = a.find_cap(CapKind::Timer) {
        let _ = sys::sleep(timer, (1 + i % 5) * 1_000_000);
    }
    match ping_pong(&CHILD_TURN, 200) {
        Ok(true) => i as i64,
        _ => -1,
    }
}

static TURN: AtomicU32 = AtomicU32::new(0);
static BATON: AtomicU32 = AtomicU32::new(0);

const RING_THREADS: u32 = 6;
const LAPS: u32 = 100;

/// Thread `me` of the baton ring: waits for every token value `me mod N`,
/// passes it on and wakes all parked on the word.
fn baton_runner(me: u32) -> i64 {
    let mut passes = 0;
    let mut want = me;
    while want < RING_THREADS * LAPS {
        if !wait_for_value(&BATON, want) {
            return -1;
        }
        BATON.store(want + 1, Ordering::Release);
        if sys::unpark(&BATON, u64::from(u32::MAX)).is_err() {
            return -1;
        }
        passes += 1;
        want += RING_THREADS;
    }
    passes
}

fn baton_ring() -> Result<(), Fail> {
    let mut ts: [Option<Thread>; RING_THREADS as usize] = [const { None }; RING_THREADS as usize];
    for (i, t) in ts.iter_mut().enumerate() {
        *t = Some(thread::spawn_with_stack(STACK, move || baton_runner(i as u32)).ctx("spawn")?);
    }
    let mut passes = 0;
    for t in ts.iter_mut() {
        let Some(mut t) = t.take() else {
            fail!("missing thread")
        };
        passes += t.join().ctx("join")?;
        t.close().ctx("close")?;
    }
    ensure!(
        passes == i64::from(RING_THREADS * LAPS),
        "baton passed {} times",
        passes
    );
    ensure!(
        BATON.load(Ordering::Acquire) == RING_THREADS * LAPS,
        "baton at {}",
        BATON.load(Ordering::Acquire)
    );
    Ok(())
}

/// Most CPUs the busy check reads.
const MAX_CPUS: usize = 64;

fn parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let timer = need_cap(a, CapKind::Timer)?;
    let stats = need_cap(a, CapKind::Stats)?;
    let mut before = [0u64; MAX_CPUS];
    let (cpus, hz) = sys::stats_busy(stats, &mut before).ctx("stats")?;
    work(spawner, timer)?;
    // Every CPU must have run user threads during the scenario: one
    // spinner per CPU (parked on a gate, then released together) makes
    // sure there is work for each, and the kernel's counters must show it.
    let union = smoke::gated_spinners(cpus.min(16), 20_000_000, hz)?;
    let mut after = [0u64; MAX_CPUS];
    sys::stats_busy(stats, &mut after).ctx("stats")?;
    for cpu in 0..cpus.min(MAX_CPUS) {
        ensure!(
            after[cpu] > before[cpu],
            "CPU {} did no user work (spinners ran on {:#x})",
            cpu,
            union
        );
    }
    Ok(())
}

fn work(spawner: u32, timer: u32) -> Result<(), Fail> {
    ensure!(
        ping_pong(&TURN, 2000).ctx("ping-pong")?,
        "ping-pong lost a round"
    );
    baton_ring()?;

    const CHILDREN: usize = 12;
    let mut kids: [Option<Child>; CHILDREN] = [const { None }; CHILDREN];
    for (i, k) in kids.iter_mut().enumerate() {
        let n = num(i as u64);
        *k = Some(process::spawn(spawner, NAME, &["child", n.as_str()], &[timer]).ctx("spawn")?);
    }
    // Meanwhile, the parent keeps its own threads busy.
    ensure!(
        ping_pong(&TURN, 500).ctx("ping-pong during children")?,
        "ping-pong lost a round"
    );
    for (i, k) in kids.into_iter().enumerate() {
        let Some(c) = k else { fail!("missing child") };
        let r = c.wait().ctx("wait")?;
        c.close().ctx("close")?;
        ensure!(
            r == (ExitKind::Exited, i as i64),
            "child {} ended {:?}",
            i,
            r
        );
    }
    Ok(())
}
