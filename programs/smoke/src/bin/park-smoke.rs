//! `park-smoke`: park/unpark and the locks built on them.
//!
//! - a park with a deadline ends TimedOut; a park whose word already
//!   changed ends ValueChanged without sleeping;
//! - wake counts: with five threads parked, unpark(2) wakes exactly 2,
//!   unpark(10) the remaining 3, unpark(1) none;
//! - producer/consumer on rt's Mutex + Condvar: every item arrives once;
//! - a mutex-protected counter from 8 threads adds up exactly;
//! - a wake storm: parkers wait for a shared counter while unparkers bump
//!   it and wake everyone; everybody finishes (nothing hangs) and the
//!   counter is exact.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ParkResult;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::sync::{Condvar, Mutex};
use rt::thread::{self, Thread};
use rt::{sys, Args};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const STACK: u64 = 16 * 1024;

fn main(args: &Args) -> i64 {
    smoke::run("park", args, body)
}

fn body(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    basics()?;
    wake_counts(timer)?;
    producer_consumer()?;
    counter()?;
    storm()?;
    spread()?;
    Ok(())
}

/// Under two or more CPUs, sibling threads released from one park word
/// must run on at least two CPUs (the kernel's per-thread CPU record).
fn spread() -> Result<(), Fail> {
    let (cpus, hz) = rt::sys::sys_info().ctx("sys-info")?;
    if cpus < 2 {
        rt::println!("park-smoke: 1 CPU, spread check skipped");
        return Ok(());
    }
    let union = smoke::gated_spinners((2 * cpus).min(8) as usize, 30_000_000, hz)?;
    ensure!(
        smoke::cpu_count(union) >= 2,
        "threads woken from one park word ran only on CPUs {:#x}",
        union
    );
    Ok(())
}

fn join_all(ts: &mut [Option<Thread>]) -> Result<i64, Fail> {
    let mut sum = 0;
    for t in ts.iter_mut() {
        if let Some(mut t) = t.take() {
            sum += t.join().ctx("join")?;
            t.close().ctx("close")?;
        }
    }
    Ok(sum)
}

fn basics() -> Result<(), Fail> {
    let word = AtomicU32::new(0);
    let r = sys::park(&word, 0, 5_000_000).ctx("park with timeout")?;
    ensure!(r == ParkResult::TimedOut, "park with a deadline: {:?}", r);
    let r = sys::park(&word, 1, TIMEOUT_NEVER).ctx("park on a changed word")?;
    ensure!(
        r == ParkResult::ValueChanged,
        "park with a stale value: {:?}",
        r
    );
    let r = sys::unpark(&word, 5).ctx("unpark nobody")?;
    ensure!(r == 0, "unpark with nobody parked woke {}", r);
    Ok(())
}

static WAKE_WORD: AtomicU32 = AtomicU32::new(0);
static READY: AtomicU32 = AtomicU32::new(0);

fn wake_counts(timer: u32) -> Result<(), Fail> {
    const N: usize = 5;
    let mut ts: [Option<Thread>; N] = [const { None }; N];
    for t in ts.iter_mut() {
        *t = Some(
            thread::spawn_with_stack(STACK, || {
                READY.fetch_add(1, Ordering::AcqRel);
                match sys::park(&WAKE_WORD, 0, TIMEOUT_NEVER) {
                    Ok(ParkResult::Woken) => 1,
                    _ => 100,
                }
            })
            .ctx("spawn")?,
        );
    }
    // Every thread announced itself; give the last ones time to reach the
    // kernel's park (the counts below need all five asleep).
    while READY.load(Ordering::Acquire) < N as u32 {
        sys::sleep(timer, 1_000_000).ctx("sleep")?;
    }
    sys::sleep(timer, 100_000_000).ctx("sleep")?;
    let woke2 = sys::unpark(&WAKE_WORD, 2).ctx("unpark 2")?;
    let woke10 = sys::unpark(&WAKE_WORD, 10).ctx("unpark 10")?;
    let sum = join_all(&mut ts)?;
    let woke1 = sys::unpark(&WAKE_WORD, 1).ctx("unpark 1")?;
    ensure!(
        woke2 == 2 && woke10 == 3 && woke1 == 0,
        "woke {} then {} then {}",
        woke2,
        woke10,
        woke1
    );
    ensure!(
        sum == N as i64,
        "park results sum {} (a thread was not Woken)",
        sum
    );
    Ok(())
}

/// A bounded queue for producer/consumer.
struct Queue {
    items: [u64; 8],
    head: usize,
    len: usize,
    closed_producers: u32,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    items: [0; 8],
    head: 0,
    len: 0,
    closed_producers: 0,
});
static NOT_EMPTY: Condvar = Condvar::new();
static NOT_FULL: Condvar = Condvar::new();
static CONSUMED_SUM: AtomicU64 = AtomicU64::new(0);

const PRODUCERS: u64 = 3;
const CONSUMERS: usize = 3;
const ITEMS: u64 = 2000;

fn produce(p: u64) -> i64 {
    for k in 0..ITEMS {
        let mut q = QUEUE.lock();
        while q.len == q.items.len() {
            q = NOT_FULL.wait(q);
        }
        let at = (q.head + q.len) % q.items.len();
        q.items[at] = p * ITEMS + k + 1;
        q.len += 1;
        drop(q);
        NOT_EMPTY.notify_one();
    }
    let mut q = QUEUE.lock();
    q.closed_producers += 1;
    drop(q);
    NOT_EMPTY.notify_all();
    0
}

fn consume() -> i64 {
    let mut n = 0;
    loop {
        let mut q = QUEUE.lock();
        while q.len == 0 && u64::from(q.closed_producers) < PRODUCERS {
            q = NOT_EMPTY.wait(q);
        }
        if q.len == 0 {
            return n;
        }
        let v = q.items[q.head];
        q.head = (q.head + 1) % q.items.len();
        q.len -= 1;
        drop(q);
        NOT_FULL.notify_one();
        CONSUMED_SUM.fetch_add(v, Ordering::Relaxed);
        n += 1;
    }
}

fn producer_consumer() -> Result<(), Fail> {
    let mut ts: [Option<Thread>; 6] = [const { None }; 6];
    for (i, t) in ts.iter_mut().enumerate() {
        let spawned = if i < CONSUMERS {
            thread::spawn_with_stack(STACK, consume)
        } else {
            let p = (i - CONSUMERS) as u64;
            thread::spawn_with_stack(STACK, move || produce(p))
        };
        *t = Some(spawned.ctx("spawn")?);
    }
    let consumed = join_all(&mut ts)?;
    let total = PRODUCERS * ITEMS;
    let want_sum = total * (total + 1) / 2;
    let sum = CONSUMED_SUM.load(Ordering::Relaxed);
    ensure!(
        consumed == total as i64,
        "consumed {} of {} items",
        consumed,
        total
    );
    ensure!(sum == want_sum, "item sum {} want {}", sum, want_sum);
    Ok(())
}

static COUNTER: Mutex<u64> = Mutex::new(0);

fn counter() -> Result<(), Fail> {
    const THREADS: usize = 8;
    const EACH: u64 = 3000;
    let mut ts: [Option<Thread>; THREADS] = [const { None }; THREADS];
    for t in ts.iter_mut() {
        *t = Some(
            thread::spawn_with_stack(STACK, || {
                for _ in 0..EACH {
                    let mut c = COUNTER.lock();
                    // A non-atomic read-modify-write: only the lock keeps it exact.
                    let v = core::hint::black_box(*c);
                    *c = v + 1;
                }
                0
            })
            .ctx("spawn")?,
        );
    }
    join_all(&mut ts)?;
    let v = *COUNTER.lock();
    ensure!(
        v == THREADS as u64 * EACH,
        "counter {} want {}",
        v,
        THREADS as u64 * EACH
    );
    Ok(())
}

static STORM: AtomicU32 = AtomicU32::new(0);
static STORM_WAKES: AtomicU64 = AtomicU64::new(0);

const PARKERS: usize = 8;
const UNPARKERS: usize = 4;
const BUMPS: u32 = 1000;

fn storm() -> Result<(), Fail> {
    let target = UNPARKERS as u32 * BUMPS;
    let mut ts: [Option<Thread>; PARKERS + UNPARKERS] = [const { None }; PARKERS + UNPARKERS];
    for (i, t) in ts.iter_mut().enumerate() {
        let spawned = if i < PARKERS {
            thread::spawn_with_stack(STACK, move || {
                let mut parks = 0;
                loop {
                    let seen = STORM.load(Ordering::Acquire);
                    if seen >= target {
                        return parks;
                    }
                    if sys::park(&STORM, seen, TIMEOUT_NEVER).is_err() {
                        return -1_000_000;
                    }
                    parks += 1;
                }
            })
        } else {
            thread::spawn_with_stack(STACK, || {
                for _ in 0..BUMPS {
                    STORM.fetch_add(1, Ordering::AcqRel);
                    match sys::unpark(&STORM, u64::from(u32::MAX)) {
                        Ok(n) => STORM_WAKES.fetch_add(n, Ordering::Relaxed),
                        Err(_) => return -1_000_000,
                    };
                }
                0
            })
        };
        *t = Some(spawned.ctx("spawn")?);
    }
    let sum = join_all(&mut ts)?;
    ensure!(sum >= 0, "a storm thread saw a park/unpark error");
    let v = STORM.load(Ordering::Acquire);
    ensure!(v == target, "storm counter {} want {}", v, target);
    let wakes = STORM_WAKES.load(Ordering::Relaxed);
    if wakes > sum as u64 {
        fail!("{} wakes reported for {} parks", wakes, sum);
    }
    Ok(())
}
