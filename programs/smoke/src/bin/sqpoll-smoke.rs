//! `sqpoll-smoke`: rings consumed by the kernel's SQPOLL poller.
//!
//! One part per run, chosen by the first argument:
//! - `bulk`: the main thread switches its own ring to SQPOLL, submits
//!   10,000 NOPs plus 400 timer operations (TimerNow and TimerSleep) by
//!   writing memory only, reaps every completion (each user_data exactly
//!   once), and must have made fewer than 20 system calls in all
//!   (RingStats), with every submission consumed by the poller;
//! - `multi N`: N threads, each spawned with its own SQPOLL ring, submit
//!   and reap 2,000 NOPs each the same way; with two or more CPUs they
//!   must have run on at least two;
//! - `idle R`: R rounds in which the ring goes idle (NEED_WAKEUP seen),
//!   then one submission wakes it; then R rounds that submit at spread
//!   moments around the idle transition. Every submission completes
//!   (none stranded) and the wakeups are counted;
//! - `ops`: the other operations in SQPOLL mode (SetTls, MemMap/MemUnmap,
//!   ThreadSpawn/Join from an SQPOLL thread, Park/Unpark, KernelMem,
//!   RingMode back to `cap_enter` consumption and again);
//! - `rt`: rt's own client (`sys::submit`, `sys::wait_for`, `sys::call`)
//!   on an SQPOLL ring: 2,000 NOPs in batches of 16 and 200 sleeps, with
//!   fewer than one system call per two operations;
//! - `hostile`: a lying SQ tail and garbage header flags on an SQPOLL
//!   ring (nothing consumed, nothing stuck once honest), and more SQPOLL
//!   rings than `SQPOLL_RINGS_MAX` (the one past the limit gets `Busy`);
//! - `exit-busy S`: three SQPOLL threads keep their pollers busy; the main
//!   thread (SQPOLL too) ends the process with status S;
//! - `exit-worker S`: as `exit-busy`, but one of the busy SQPOLL threads
//!   ends the process.
#![no_std]
#![no_main]

use abi::caps::{CapKind, SELF_SLOT};
use abi::op::Op;
use abi::ring::{Sqe, ENTER_SQ_WAKEUP, RING_SETUP_SQPOLL};
use core::sync::atomic::{AtomicU32, Ordering};
use rt::ring::Ring;
use rt::sys::{self, RingStats};
use rt::thread::{self, Thread};
use rt::{println, tls, Args};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const NOPS: u64 = 10_000;
const TIMER_OPS: u64 = 400;
const SYSCALLS_MAX: u64 = 20;
const STACK: u64 = 32 * 1024;

fn main(args: &Args) -> i64 {
    let part = args.get(0).unwrap_or("bulk");
    let name = match part {
        "exit-busy" | "exit-worker" => return exit_part(args, part == "exit-worker"),
        "multi" => "sqpoll-multi",
        "idle" => "sqpoll-idle",
        "ops" => "sqpoll-ops",
        "rt" => "sqpoll-rt",
        "hostile" => "sqpoll-hostile",
        _ => "sqpoll-bulk",
    };
    smoke::run(name, args, body)
}

fn body(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    match a.get(0).unwrap_or("bulk") {
        "bulk" => bulk(timer, a.tsc_hz()),
        "multi" => multi(a.get_u64(1).unwrap_or(4), a.cpus(), a.tsc_hz()),
        "idle" => idle(a.get_u64(1).unwrap_or(100), a.tsc_hz()),
        "ops" => ops(timer),
        "rt" => rt_api(timer),
        "hostile" => hostile(a.tsc_hz()),
        other => fail!("unknown part {}", other),
    }
}

fn stats() -> Result<RingStats, Fail> {
    sys::ring_stats(SELF_SLOT).ctx("ring stats")
}

fn nop(user_data: u64) -> Sqe {
    Sqe {
        opcode: Op::Nop as u32,
        user_data,
        ..Sqe::default()
    }
}

/// After publishing: wakes the poller if it sleeps (the protocol of
/// abi::ring: `needs_wakeup` fences first).
fn kick(ring: &Ring) -> Result<(), Fail> {
    if ring.needs_wakeup() {
        sys::enter_flags(0, 0, ENTER_SQ_WAKEUP).ctx("wakeup")?;
    }
    Ok(())
}

/// Submits `total` entries made by `make(i)` (user_data = i) and reaps
/// them all by memory only, checking each user_data once; fails after
/// `limit_cycles` without progress (a stranded submission).
fn pump(
    ring: &Ring,
    total: u64,
    seen: &mut [u64],
    limit_cycles: u64,
    make: impl Fn(u64) -> Sqe,
) -> Result<(), Fail> {
    let (mut sent, mut got) = (0u64, 0u64);
    let mut last = rt::arch::rdtsc();
    while got < total {
        let mut pushed = false;
        while sent < total && ring.push(&make(sent)) {
            sent += 1;
            pushed = true;
        }
        if pushed {
            kick(ring)?;
        }
        while let Some(c) = ring.pop() {
            ensure!(c.result >= 0, "op {} failed: {}", c.user_data, c.result);
            let i = c.user_data;
            ensure!(i < total, "unexpected user_data {}", i);
            let (w, b) = ((i / 64) as usize, i % 64);
            ensure!(seen[w] & (1 << b) == 0, "user_data {} completed twice", i);
            seen[w] |= 1 << b;
            got += 1;
            last = rt::arch::rdtsc();
        }
        if rt::arch::rdtsc().wrapping_sub(last) > limit_cycles {
            fail!("stuck: sent={} got={} of {}", sent, got, total);
        }
        core::hint::spin_loop();
    }
    Ok(())
}

fn bulk(timer: u32, hz: u64) -> Result<(), Fail> {
    // 100 ms idle: the poller keeps this ring while it is busy, even when
    // a slow pass (ring 0 is emulated under PVM) leaves it empty a while.
    sys::ring_mode(RING_SETUP_SQPOLL, 100_000_000).ctx("ring mode")?;
    let ring = tls::current().ring();
    ensure!(ring.is_sqpoll(), "the ring does not show SQPOLL");
    let s0 = stats()?;
    let total = NOPS + TIMER_OPS;
    let mut seen = [0u64; ((NOPS + TIMER_OPS) / 64 + 1) as usize];
    pump(&ring, total, &mut seen, hz * 10, |i| {
        let mut s = nop(i);
        if i % 50 == 0 {
            s.opcode = Op::TimerSleep as u32;
            s.cap = timer;
            s.args[0] = 1000 + (i % 7) * 1000;
        } else if i % 50 == 25 {
            s.opcode = Op::TimerNow as u32;
            s.cap = timer;
        }
        s
    })?;
    let s1 = stats()?;
    let calls = s1.syscalls - s0.syscalls;
    let polled = s1.polled - s0.polled;
    println!(
        "SQPOLL bulk ops={} syscalls={} polled={} wakeups={}",
        total,
        calls,
        polled,
        s1.wakeups - s0.wakeups
    );
    ensure!(
        calls < SYSCALLS_MAX,
        "{} system calls for {} ops",
        calls,
        total
    );
    ensure!(
        polled >= total,
        "the poller consumed only {} of {}",
        polled,
        total
    );
    Ok(())
}

fn multi_worker(hz: u64) -> i64 {
    let ring = tls::current().ring();
    let mut seen = [0u64; 2000 / 64 + 1];
    if !ring.is_sqpoll() || pump(&ring, 2000, &mut seen, hz * 10, nop).is_err() {
        return -1;
    }
    match sys::ring_stats(SELF_SLOT) {
        Ok(s) if s.polled >= 2000 => s.syscalls as i64,
        _ => -2,
    }
}

fn multi(n: u64, cpus: u64, hz: u64) -> Result<(), Fail> {
    let n = n.clamp(1, 8) as usize;
    let mut ts: [Option<Thread>; 8] = [const { None }; 8];
    for t in ts.iter_mut().take(n) {
        *t = Some(
            thread::spawn_with_ring(STACK, RING_SETUP_SQPOLL, 10_000_000, move || {
                multi_worker(hz)
            })
            .ctx("spawn")?,
        );
    }
    let mut mask = 0u64;
    for (i, t) in ts.iter_mut().take(n).enumerate() {
        let Some(t) = t else { fail!("missing thread") };
        let (m, _) = t.cpu_record().ctx("cpu record")?;
        let v = t.join().ctx("join")?;
        ensure!(v >= 0, "worker {} failed ({})", i, v);
        ensure!(
            v < 100,
            "worker {} made {} system calls for 2,000 ops",
            i,
            v
        );
        let (m2, _) = t.cpu_record().ctx("cpu record")?;
        mask |= m | m2;
    }
    for t in ts.into_iter().take(n).flatten() {
        t.close().ctx("close")?;
    }
    println!("SQPOLL multi threads={} cpus_mask={:#x}", n, mask);
    if cpus >= 2 && n >= 2 {
        ensure!(
            mask.count_ones() >= 2,
            "{} SQPOLL threads ran on one CPU only ({:#x})",
            n,
            mask
        );
    }
    Ok(())
}

/// Waits (spinning, no system call) until the poller sleeps.
fn wait_asleep(ring: &Ring, hz: u64) -> Result<(), Fail> {
    let t0 = rt::arch::rdtsc();
    while !ring.needs_wakeup() {
        if rt::arch::rdtsc().wrapping_sub(t0) > hz * 10 {
            fail!("the ring never went idle");
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// One submission and its completion, by memory (and a wakeup if needed).
fn one(ring: &Ring, ud: u64, hz: u64) -> Result<(), Fail> {
    ensure!(ring.push(&nop(ud)), "the SQ is full");
    kick(ring)?;
    let t0 = rt::arch::rdtsc();
    loop {
        if let Some(c) = ring.pop() {
            ensure!(c.user_data == ud, "got {} for {}", c.user_data, ud);
            return Ok(());
        }
        if rt::arch::rdtsc().wrapping_sub(t0) > hz * 10 {
            fail!("submission {} stranded", ud);
        }
        core::hint::spin_loop();
    }
}

fn idle(rounds: u64, hz: u64) -> Result<(), Fail> {
    // 100 us idle time: the ring sleeps between rounds.
    sys::ring_mode(RING_SETUP_SQPOLL, 100_000).ctx("ring mode")?;
    let ring = tls::current().ring();
    let s0 = stats()?;
    for r in 0..rounds {
        wait_asleep(&ring, hz)?;
        one(&ring, r, hz)?;
    }
    let s1 = stats()?;
    // Each round saw NEED_WAKEUP. Nearly every one is a real wakeup; a
    // round may instead have caught the poller between publishing the
    // flag and re-reading the tail (abi::ring), and then the poller saw
    // the new entry itself: the protocol's transient, not a lost wakeup.
    let woken = s1.wakeups - s0.wakeups;
    ensure!(
        woken >= rounds / 2,
        "{} wakeups for {} rounds that each found the ring asleep",
        woken,
        rounds
    );
    // Submissions at spread moments around the idle transition (0 to
    // about 250 us after the last completion): none may be stranded.
    let us = hz / 1_000_000;
    for r in 0..rounds {
        let pause = (r * 7919 % 250) * us;
        let t0 = rt::arch::rdtsc();
        while rt::arch::rdtsc().wrapping_sub(t0) < pause {
            core::hint::spin_loop();
        }
        one(&ring, rounds + r, hz)?;
    }
    let s2 = stats()?;
    println!(
        "SQPOLL idle rounds={} wakeups={} syscalls={} polled={}",
        2 * rounds,
        s2.wakeups - s0.wakeups,
        s2.syscalls - s0.syscalls,
        s2.polled - s0.polled
    );
    ensure!(
        s2.polled - s0.polled >= 2 * rounds,
        "the poller consumed {} of {}",
        s2.polled - s0.polled,
        2 * rounds
    );
    Ok(())
}

static WORD: AtomicU32 = AtomicU32::new(0);

fn ops(timer: u32) -> Result<(), Fail> {
    sys::ring_mode(RING_SETUP_SQPOLL, 0).ctx("ring mode")?;
    let me = tls::current().self_ptr() as u64;
    sys::set_tls(me).ctx("set tls")?;
    tls::set_user_word(0x1234);
    ensure!(tls::user_word() == 0x1234, "TLS lost after SetTls");
    let a = sys::mem_map(3 * 4096).ctx("mem map")?;
    sys::mem_unmap(a, 3 * 4096).ctx("mem unmap")?;
    sys::sleep(timer, 100_000).ctx("sleep")?;
    sys::kernel_mem().ctx("kernel mem")?;
    // A thread spawned with an SQPOLL ring spawns and joins its own child.
    let mut t = thread::spawn_with_ring(STACK, RING_SETUP_SQPOLL, 0, || {
        let r = thread::spawn(|| {
            tls::set_user_word(7);
            tls::user_word() as i64 * 6
        });
        match r {
            Ok(mut c) => {
                let v = c.join().unwrap_or(-1);
                let _ = c.close();
                v
            }
            Err(_) => -1,
        }
    })
    .ctx("spawn")?;
    ensure!(t.join().ctx("join")? == 42, "grandchild value wrong");
    t.close().ctx("close")?;
    // Park with a changed value, and an unpark with nobody parked.
    WORD.store(1, Ordering::SeqCst);
    sys::park(&WORD, 0, 1_000_000).ctx("park")?;
    ensure!(
        sys::unpark(&WORD, 1).ctx("unpark")? == 0,
        "unpark woke someone"
    );
    // A parked SQPOLL thread, woken by this one.
    WORD.store(0, Ordering::SeqCst);
    let mut p = thread::spawn_with_ring(STACK, RING_SETUP_SQPOLL, 0, || {
        match sys::park(&WORD, 0, abi::TIMEOUT_NEVER) {
            Ok(_) => 1,
            Err(_) => -1,
        }
    })
    .ctx("spawn parker")?;
    let mut woken = 0;
    for _ in 0..100_000 {
        woken += sys::unpark(&WORD, 1).ctx("unpark")?;
        if woken > 0 {
            break;
        }
    }
    ensure!(woken == 1, "the parked SQPOLL thread was never woken");
    ensure!(p.join().ctx("join parker")? == 1, "parker failed");
    p.close().ctx("close parker")?;
    // Back to cap_enter consumption, and SQPOLL again.
    sys::ring_mode(0, 0).ctx("ring mode off")?;
    ensure!(!tls::current().ring().is_sqpoll(), "still SQPOLL");
    sys::nop(0).ctx("nop")?;
    sys::ring_mode(RING_SETUP_SQPOLL, 0).ctx("ring mode on")?;
    sys::nop(0).ctx("nop")?;
    // Bad setup values fail that submission only.
    ensure!(
        sys::ring_mode(1 << 5, 0).is_err(),
        "unknown ring flag accepted"
    );
    ensure!(
        sys::ring_mode(RING_SETUP_SQPOLL, abi::limits::SQ_IDLE_NS_MAX + 1).is_err(),
        "idle time over the limit accepted"
    );
    let st = stats()?;
    ensure!(st.polled > 0, "nothing was polled");
    Ok(())
}

fn rt_api(timer: u32) -> Result<(), Fail> {
    sys::ring_mode(RING_SETUP_SQPOLL, 0).ctx("ring mode")?;
    let s0 = stats()?;
    let mut tokens = [0u64; 16];
    for b in 0..125u64 {
        for (k, t) in tokens.iter_mut().enumerate() {
            let mut s = nop(0);
            if k == 0 && b % 5 == 0 {
                s = sys::sqe(Op::TimerSleep, timer, &[10_000]);
            }
            *t = sys::submit(s).ctx("submit")?;
        }
        for t in tokens {
            let c = sys::wait_for(t);
            ensure!(
                c.user_data == t && c.result >= 0,
                "batch {}: {}",
                b,
                c.result
            );
        }
    }
    for _ in 0..50 {
        sys::nop(0).ctx("call")?;
    }
    let s1 = stats()?;
    let calls = s1.syscalls - s0.syscalls;
    println!(
        "SQPOLL rt ops=2050 syscalls={} polled={} wakeups={}",
        calls,
        s1.polled - s0.polled,
        s1.wakeups - s0.wakeups
    );
    // Plain mode makes at least one per op (submit) plus the waits; here
    // the waits mostly spin (under PVM, where the poller is emulated ring
    // 0 and slow, more of them block: about 450 seen at -smp 4).
    ensure!(
        calls < 1025,
        "{} system calls for 2,050 ops through rt",
        calls
    );
    ensure!(
        s1.polled - s0.polled >= 2050,
        "not every op went through the poller"
    );
    Ok(())
}

static GATE: AtomicU32 = AtomicU32::new(0);

fn hostile(hz: u64) -> Result<(), Fail> {
    sys::ring_mode(RING_SETUP_SQPOLL, 0).ctx("ring mode")?;
    let ring = tls::current().ring();
    let h = ring.header();
    // A tail far ahead: the poller must consume nothing, and the ring
    // works again once the tail is honest.
    let tail = h.sq_tail.load(Ordering::Relaxed);
    h.sq_tail.store(tail.wrapping_add(1000), Ordering::Release);
    let _ = sys::enter_flags(0, 0, ENTER_SQ_WAKEUP);
    let t0 = rt::arch::rdtsc();
    while rt::arch::rdtsc().wrapping_sub(t0) < hz / 100 {
        core::hint::spin_loop();
    }
    ensure!(
        h.sq_head.load(Ordering::Acquire) == tail,
        "the poller moved a corrupt SQ"
    );
    h.sq_tail.store(tail, Ordering::Release);
    one(&ring, 1, hz)?;
    // Garbage in the kernel-written flags word.
    h.flags.store(u32::MAX, Ordering::Relaxed);
    one(&ring, 2, hz)?;
    for k in 0..50 {
        one(&ring, 3 + k, hz)?;
    }
    // More SQPOLL rings than the limit: each holder parks until released.
    GATE.store(0, Ordering::SeqCst);
    const N: usize = abi::limits::SQPOLL_RINGS_MAX + 1;
    let mut ts: [Option<Thread>; N] = [const { None }; N];
    let mut busy = 0;
    for t in ts.iter_mut() {
        let r = thread::spawn_with_ring(8 * 1024, RING_SETUP_SQPOLL, 0, || {
            while GATE.load(Ordering::SeqCst) == 0 {
                let _ = sys::park(&GATE, 0, abi::TIMEOUT_NEVER);
            }
            0
        });
        match r {
            Ok(h) => *t = Some(h),
            Err(rt::Error::Busy) => busy += 1,
            Err(e) => fail!("spawn: {}", e.name()),
        }
    }
    GATE.store(1, Ordering::SeqCst);
    sys::unpark(&GATE, u64::MAX).ctx("unpark")?;
    for t in ts.iter_mut().flatten() {
        ensure!(t.join().ctx("join")? == 0, "holder failed");
    }
    for t in ts.into_iter().flatten() {
        t.close().ctx("close")?;
    }
    // This thread's ring is one of the SQPOLL rings: the limit is reached
    // one spawn earlier.
    ensure!(busy >= 2, "only {} of {} SQPOLL spawns refused", busy, N);
    ensure!(
        busy <= 3,
        "{} SQPOLL spawns refused below the limit ({})",
        busy,
        N
    );
    Ok(())
}

fn busy_worker(exit_status: Option<i64>) -> i64 {
    let ring = tls::current().ring();
    let mut i = 0u64;
    loop {
        while ring.push(&nop(i)) {
            i += 1;
        }
        let _ = ring.needs_wakeup() && sys::enter_flags(0, 0, ENTER_SQ_WAKEUP).is_ok();
        while ring.pop().is_some() {}
        if let Some(s) = exit_status {
            if i > 3000 {
                sys::exit(s);
            }
        }
        core::hint::spin_loop();
    }
}

/// Ends the process while its pollers are busy (expect `exit:S`).
fn exit_part(a: &Args, by_worker: bool) -> i64 {
    let status = a.get_u64(1).unwrap_or(7) as i64;
    let Some(timer) = a.find_cap(CapKind::Timer) else {
        return 90;
    };
    if sys::ring_mode(RING_SETUP_SQPOLL, 0).is_err() {
        return 91;
    }
    let mut hold: [Option<Thread>; 4] = [const { None }; 4];
    for (k, h) in hold.iter_mut().enumerate() {
        let ex = (by_worker && k == 3).then_some(status);
        match thread::spawn_with_ring(STACK, RING_SETUP_SQPOLL, 0, move || busy_worker(ex)) {
            Ok(t) => *h = Some(t),
            Err(_) => return 92,
        }
    }
    let _ = sys::sleep(timer, 20_000_000);
    if by_worker {
        // The worker ends the process; wait for it.
        let _ = sys::sleep(timer, 60_000_000_000);
        return 93;
    }
    sys::exit(status)
}
