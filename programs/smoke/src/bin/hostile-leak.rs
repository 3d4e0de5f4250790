//! `hostile-leak`: what a thread or process leaves behind must come back,
//! and ending must always get through (issue 11).
//!
//! The first argument picks the case; each prints `SMOKE hostile-<case>`:
//! - `rounds` (defect 1): 300 rounds of spawn a thread, which leaves an
//!   endless and an hour-long sleep, two parks and a ProcWait outstanding
//!   and exits, then join and close it. KernelMem and free frames must be
//!   where they were after the warm-up. Today the sleeps, parks and waiter
//!   entries stay in kernel lists, and the ring's page tables stay mapped.
//! - `thread-exit` (defect 8): a child with ~2,000 threads exits (status
//!   77); a child whose ~1,000 threads end one by one with ThreadExit is
//!   joined thread by thread (each exit value checked).
//! - `exit-pending N`: the main thread keeps 3,968 endless sleeps in flight
//!   and lets 128 short ones fill its CQ (4,096 outstanding), then calls
//!   Exit(N): the process must end with N (the manifest expects exit:N).
//!   Today Exit waits in the SQ behind the back-pressure, forever.
//! - `thread-exit-pending`: the same on a second thread, which then calls
//!   ThreadExit(5); the main thread joins it.
//! - `unmap-rounds [N]`: N (default 2,000) rounds of MemMap 1 GiB, touch
//!   its first and last page, MemUnmap: frames and charges come back.
//!   Today the page tables of every round stay allocated.
//! - `unmap-end`: MemUnmap of a range that ends past ANON_END (the main
//!   stack) fails with BadAddress. Today it unmaps the stack.
//! - `self-join`: ThreadJoin on the caller's own handle completes at once
//!   with Invalid. Today it never completes and later joiners get Stale.
#![no_std]
#![no_main]

use abi::caps::{CapKind, SELF_SLOT};
use abi::error::Error;
use abi::layout::{ANON_END, MAIN_STACK_SIZE, MAIN_STACK_TOP, PAGE_SIZE};
use abi::op::{ExitKind, Op};
use abi::ring::CQ_ENTRIES;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::process;
use rt::{println, sys, thread, Args};
use smoke::hostile::{self, raw_spawn, sqe, wait_count, RawRing, Snapshot};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-leak";
const HOUR_NS: u64 = 3_600_000_000_000;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        Some("rounds") => smoke::run("hostile-rounds", a, rounds),
        Some("idle") => idle(),
        Some("thread-exit") => smoke::run("hostile-thread-exit", a, thread_exit_checker),
        Some("many-exit") => many_exit(),
        Some("many-join") => many_join(),
        Some("exit-pending") => exit_pending(a),
        Some("thread-exit-pending") => {
            smoke::run("hostile-thread-exit-pending", a, thread_exit_pending)
        }
        Some("unmap-rounds") => smoke::run("hostile-unmap-rounds", a, unmap_rounds),
        Some("unmap-end") => smoke::run("hostile-unmap-end", a, unmap_end),
        Some("self-join") => smoke::run("hostile-self-join", a, self_join),
        Some("noop") => 0,
        _ => 100,
    }
}

static NEVER: AtomicU32 = AtomicU32::new(0);

/// Parks until killed.
fn idle() -> i64 {
    loop {
        let _ = sys::park(&NEVER, 0, TIMEOUT_NEVER);
    }
}

// ---- rounds -----------------------------------------------------------

const WARM_ROUNDS: u32 = 3;
const ROUNDS: u32 = 300;

static LEAK_WORD: AtomicU32 = AtomicU32::new(0);

/// A thread that leaves later-completing operations behind and exits.
fn leave_behind(timer: u32, proc_slot: u32) -> i64 {
    let addr = &LEAK_WORD as *const AtomicU32 as u64;
    let ops = [
        sys::sqe(Op::TimerSleep, timer, &[u64::MAX]),
        sys::sqe(Op::TimerSleep, timer, &[HOUR_NS]),
        sys::sqe(Op::Park, SELF_SLOT, &[addr, 0, HOUR_NS]),
        sys::sqe(Op::Park, SELF_SLOT, &[addr, 0, TIMEOUT_NEVER]),
        sys::sqe(Op::ProcWait, proc_slot, &[]),
    ];
    for s in ops {
        if sys::submit(s).is_err() {
            return 1;
        }
    }
    0
}

fn round(timer: u32, proc_slot: u32) -> Result<(), Fail> {
    let mut t = thread::spawn_with_stack(16 * 1024, move || leave_behind(timer, proc_slot))
        .ctx("spawn thread")?;
    ensure!(t.join().ctx("join")? == 0, "a submission failed");
    t.close().ctx("close thread")
}

fn rounds(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let spawner = need_cap(a, CapKind::Spawner)?;
    let idle = process::spawn(spawner, NAME, &["idle"], &[]).ctx("spawn idle")?;
    for _ in 0..WARM_ROUNDS {
        round(timer, idle.slot())?;
    }
    let base = Snapshot::take()?;
    for _ in 0..ROUNDS {
        round(timer, idle.slot())?;
    }
    let r = base.expect_back("spawn/sleep/exit/join rounds");
    idle.kill().ctx("kill idle")?;
    let w = idle.wait().ctx("wait idle")?;
    idle.close().ctx("close idle")?;
    r?;
    ensure!(w.0 == ExitKind::Killed, "idle child ended {:?}", w);
    Ok(())
}

// ---- thread-exit ------------------------------------------------------

const MANY_EXIT_THREADS: u32 = 2000;
const MANY_JOIN_THREADS: u32 = 1000;
/// Fewest threads a child must get before the budget refuses.
const MANY_MIN: u32 = 200;

static G_WORD: AtomicU32 = AtomicU32::new(0);
static G_READY: AtomicU32 = AtomicU32::new(0);

/// Waits at the gate, then ends with `value`.
fn gated(value: u64, r: RawRing) -> i64 {
    G_READY.fetch_add(1, Ordering::AcqRel);
    while G_WORD.load(Ordering::Acquire) == 0 {
        r.park(&G_WORD, 0, TIMEOUT_NEVER);
    }
    value as i64
}

/// Starts up to `max` gated threads; keeps their handle slots in `slots`
/// (or closes them when `slots` is empty). The number started.
fn start_gated(max: u32, slots: &mut [u32]) -> Result<u32, Fail> {
    let mut n = 0;
    while n < max {
        match raw_spawn(gated, u64::from(n) + 1) {
            Ok((slot, _)) => match slots.get_mut(n as usize) {
                Some(s) => *s = slot,
                None => sys::cap_close(slot).ctx("close handle")?,
            },
            Err(Error::NoMemory) if n >= MANY_MIN => break,
            Err(e) => fail!("thread {} failed to start: {}", n, e.name()),
        }
        n += 1;
    }
    wait_count(&G_READY, n);
    Ok(n)
}

/// Exits with 77 while ~2,000 threads wait at the gate.
fn many_exit() -> i64 {
    match start_gated(MANY_EXIT_THREADS, &mut []) {
        Ok(n) => {
            println!("HOSTILE thread-exit process-exit threads={n}");
            77
        }
        Err(f) => {
            println!("HOSTILE child-fail reason={}", f.0.as_str());
            1
        }
    }
}

/// Opens the gate for ~1,000 threads and joins each (value = index + 1).
fn many_join() -> i64 {
    let mut slots = [0u32; MANY_JOIN_THREADS as usize];
    let r = (|| -> Result<u32, Fail> {
        let n = start_gated(MANY_JOIN_THREADS, &mut slots)?;
        G_WORD.store(1, Ordering::Release);
        sys::unpark(&G_WORD, u64::MAX).ctx("open gate")?;
        for (i, s) in slots.iter().take(n as usize).enumerate() {
            let v = sys::thread_join(*s).ctx("join")?;
            ensure!(v == i as i64 + 1, "thread {} ended {}", i, v);
            sys::cap_close(*s).ctx("close")?;
        }
        Ok(n)
    })();
    match r {
        Ok(n) => {
            println!("HOSTILE thread-exit joined threads={n}");
            0
        }
        Err(f) => {
            println!("HOSTILE child-fail reason={}", f.0.as_str());
            1
        }
    }
}

fn thread_exit_checker(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let console = need_cap(a, CapKind::Console)?;
    // Warm-up: a first spawn may grow this process's tables for good.
    let w = process::spawn(spawner, NAME, &["noop"], &[]).ctx("spawn noop")?;
    w.wait().ctx("wait noop")?;
    w.close().ctx("close noop")?;
    for (mode, want) in [("many-exit", 77), ("many-join", 0)] {
        let base = Snapshot::take()?;
        let c = process::spawn(spawner, NAME, &[mode], &[console]).ctx("spawn")?;
        let r = c.wait().ctx("wait")?;
        c.close().ctx("close")?;
        ensure!(
            r == (ExitKind::Exited, want),
            "{} ended {:?}, want exit {}",
            mode,
            r,
            want
        );
        base.expect_back_soon(mode, 100)?;
    }
    Ok(())
}

// ---- exit with 4,096 outstanding --------------------------------------

/// Endless sleeps, then short ones that fill the CQ: 4,096 outstanding.
const ENDLESS: u32 = 4096 - CQ_ENTRIES;

/// Leaves 4,096 operations outstanding with a full CQ. False if the kernel
/// stalled before or the short sleeps never filled the CQ.
fn pin_ring(r: RawRing, timer: u32, tsc_hz: u64) -> bool {
    let total = ENDLESS + CQ_ENTRIES;
    let start = r.sq_head();
    let mut pushed = 0u32;
    let mut idle = 0u32;
    while r.sq_head().wrapping_sub(start) < total {
        while pushed < total {
            let ns = if pushed < ENDLESS {
                u64::MAX
            } else {
                1_000_000
            };
            if !r
                .0
                .push(&sqe(Op::TimerSleep, timer, u64::from(pushed) + 1, &[ns]))
            {
                break;
            }
            pushed += 1;
        }
        let before = r.sq_head();
        r.enter(0, 0);
        if r.sq_head() == before {
            idle += 1;
            if idle > 2000 {
                return false;
            }
        }
    }
    for _ in 0..500 {
        if r.0.cq_ready() == Some(CQ_ENTRIES) {
            return true;
        }
        smoke::spin_ns(10_000_000, tsc_hz);
    }
    false
}

fn exit_pending(a: &Args) -> i64 {
    let status = a
        .get_u64(1)
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(99);
    let Some(timer) = a.find_cap(CapKind::Timer) else {
        return 2;
    };
    let r = RawRing::current();
    if !pin_ring(r, timer, a.tsc_hz()) {
        return 3;
    }
    r.exit(status)
}

static PIN_OK: AtomicU64 = AtomicU64::new(0);

fn thread_exit_pending(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let hz = a.tsc_hz();
    let mut t = thread::spawn_with_stack(32 * 1024, move || {
        let r = RawRing::current();
        if pin_ring(r, timer, hz) {
            PIN_OK.store(1, Ordering::Release);
        }
        r.thread_exit(5)
    })
    .ctx("spawn")?;
    let v = t.join().ctx("join")?;
    t.close().ctx("close")?;
    ensure!(
        PIN_OK.load(Ordering::Acquire) == 1,
        "could not get 4,096 outstanding with a full CQ"
    );
    ensure!(v == 5, "thread ended {}, want 5", v);
    Ok(())
}

// ---- MemUnmap ---------------------------------------------------------

const UNMAP_ROUNDS: u64 = 2000;
const GIB: u64 = 1 << 30;

fn map_touch_unmap() -> Result<(), Fail> {
    let a = sys::mem_map(GIB).ctx("map 1 GiB")?;
    hostile::touch(a, 1, 1);
    hostile::touch(a + GIB - 1, 1, 1);
    sys::mem_unmap(a, GIB).ctx("unmap 1 GiB")
}

fn unmap_rounds(a: &Args) -> Result<(), Fail> {
    let n = a.get_u64(1).unwrap_or(UNMAP_ROUNDS);
    map_touch_unmap()?;
    map_touch_unmap()?;
    let base = Snapshot::take()?;
    for _ in 0..n {
        map_touch_unmap()?;
    }
    println!("HOSTILE unmap-rounds rounds={n}");
    base.expect_back("map/touch/unmap rounds")
}

static END_RESULT: AtomicU64 = AtomicU64::new(0);

fn unmap_end(_: &Args) -> Result<(), Fail> {
    match sys::mem_unmap(ANON_END - PAGE_SIZE, 2 * PAGE_SIZE) {
        Err(Error::BadAddress) => {}
        other => fail!("MemUnmap across ANON_END: {:?}", other),
    }
    // The main stack lies past ANON_END. Unmap it from another thread:
    // if the kernel lets it go, this thread must not return to it.
    let mut t = thread::spawn_with_stack(16 * 1024, || {
        match sys::mem_unmap(MAIN_STACK_TOP - MAIN_STACK_SIZE, MAIN_STACK_SIZE) {
            Err(Error::BadAddress) => 0,
            Ok(()) => {
                println!(
                    "SMOKE hostile-unmap-end FAIL reason=MemUnmap of the main stack (past ANON_END) succeeded"
                );
                sys::exit(1)
            }
            Err(e) => {
                END_RESULT.store(e as u64, Ordering::Release);
                1
            }
        }
    })
    .ctx("spawn")?;
    let v = t.join().ctx("join")?;
    t.close().ctx("close")?;
    ensure!(
        v == 0,
        "MemUnmap of the main stack failed with code {}, want bad-address",
        END_RESULT.load(Ordering::Acquire)
    );
    Ok(())
}

static OWN_SLOT: AtomicU64 = AtomicU64::new(u64::MAX);
static SELF_JOINED: AtomicU32 = AtomicU32::new(0);

/// The self-joining thread: 0 when the join completed at once with
/// Invalid, 1 when it did not complete at once, 100 + the error code when
/// it completed with another error or 100 when it succeeded.
fn join_self() -> i64 {
    let slot = loop {
        let s = OWN_SLOT.load(Ordering::Acquire);
        if s != u64::MAX {
            break s as u32;
        }
        hostile::nap(1_000_000);
    };
    let token = sys::submit(sys::sqe(Op::ThreadJoin, slot, &[]));
    // It must have completed within that one cap_enter.
    let r = match token.map(|t| (t, RawRing::current().0.pop())) {
        Ok((t, Some(c))) if c.user_data == t => match hostile::cqe_error(&c) {
            Some(Error::Invalid) => 0,
            Some(e) => 100 + e as i64,
            None => 100,
        },
        Ok(_) => 1,
        Err(e) => 100 + e as i64,
    };
    SELF_JOINED.store(1, Ordering::Release);
    r
}

fn self_join(_: &Args) -> Result<(), Fail> {
    let mut t = thread::spawn_with_stack(16 * 1024, join_self).ctx("spawn")?;
    OWN_SLOT.store(u64::from(t.slot()), Ordering::Release);
    // Join only after it tried, so that its own join is the first one.
    wait_count(&SELF_JOINED, 1);
    let v = t.join();
    t.close().ctx("close")?;
    match v {
        Ok(0) => Ok(()),
        Ok(1) => fail!("self-join did not complete at once"),
        Ok(100) => fail!("self-join succeeded"),
        Ok(v) => fail!(
            "self-join failed with {}, want invalid",
            Error::from_result(100 - v).map_or("?", Error::name)
        ),
        Err(e) => fail!("self-join did not complete; joining it got {}", e.name()),
    }
}
