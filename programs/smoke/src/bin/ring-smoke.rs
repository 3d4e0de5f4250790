//! `ring-smoke`: the capability ring protocol, from user space.
//!
//! - thousands of NOPs and TimerNows in full-SQ batches, every completion
//!   matched by user_data exactly once;
//! - `cap_enter(n)` returns `>= n` once n completions can arrive;
//! - `cap_enter(n, short timeout)` with fewer outstanding returns fewer;
//! - more completions than the CQ holds, none reaped meanwhile: none is
//!   lost (kernel overflow list / back-pressure), all arrive in order;
//! - sleeps with decreasing durations complete out of order and are
//!   matched by user_data (raw, and through rt's completion stash);
//! - bad pointers, an unknown opcode and an unknown slot fail just their
//!   submission, with BadAddress, BadOpcode and BadSlot.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::Op;
use abi::ring::{Cqe, CQ_ENTRIES, SQ_ENTRIES};
use abi::TIMEOUT_NEVER;
use rt::ring::Ring;
use rt::{sys, tls, Args, Error};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const MS: u64 = 1_000_000;

fn main(args: &Args) -> i64 {
    smoke::run("ring", args, body)
}

fn body(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let ring = tls::current().ring();
    batches(&ring, timer)?;
    min_complete(&ring, timer)?;
    timeout(&ring, timer)?;
    overflow(&ring)?;
    out_of_order(&ring, timer)?;
    stash_matching(timer)?;
    bad_submissions(a)?;
    Ok(())
}

fn push(ring: &Ring, op: Op, cap: u32, user_data: u64, args: &[u64]) -> Result<(), Fail> {
    let mut s = sys::sqe(op, cap, args);
    s.user_data = user_data;
    ensure!(ring.push(&s), "SQ unexpectedly full");
    Ok(())
}

fn pop(ring: &Ring) -> Result<Cqe, Fail> {
    match ring.pop() {
        Some(c) => Ok(c),
        None => fail!("CQ empty although cap_enter said otherwise"),
    }
}

/// 5,000 operations in batches of SQ_ENTRIES; odd user_data are TimerNow.
fn batches(ring: &Ring, timer: u32) -> Result<(), Fail> {
    const TOTAL: u64 = 5000;
    let mut next = 0u64;
    let mut seen = 0u64;
    let mut last_ns = 0u64;
    while next < TOTAL {
        let batch = (TOTAL - next).min(u64::from(SQ_ENTRIES));
        let first = next;
        for _ in 0..batch {
            if next.is_multiple_of(2) {
                push(ring, Op::Nop, 0, next, &[])?;
            } else {
                push(ring, Op::TimerNow, timer, next, &[])?;
            }
            next += 1;
        }
        let n = sys::enter(batch, TIMEOUT_NEVER).ctx("cap_enter batch")?;
        ensure!(u64::from(n) >= batch, "cap_enter({}) returned {}", batch, n);
        let mut got = [false; SQ_ENTRIES as usize];
        for _ in 0..batch {
            let c = pop(ring)?;
            ensure!(c.result == 0, "op {} failed: {}", c.user_data, c.result);
            let Some(i) = c.user_data.checked_sub(first).filter(|i| *i < batch) else {
                fail!("stray user_data {} in batch from {}", c.user_data, first);
            };
            ensure!(
                !got[i as usize],
                "user_data {} completed twice",
                c.user_data
            );
            got[i as usize] = true;
            if c.user_data % 2 == 1 {
                ensure!(c.value1 > 0, "TimerNow gave TSC Hz 0");
                ensure!(
                    c.value0 >= last_ns,
                    "clock went back: {} < {}",
                    c.value0,
                    last_ns
                );
                last_ns = c.value0;
            }
            seen += 1;
        }
    }
    ensure!(
        seen == TOTAL && ring.pop().is_none(),
        "saw {} of {}",
        seen,
        TOTAL
    );
    Ok(())
}

/// Ten 1 ms sleeps: cap_enter(10) comes back with all ten.
fn min_complete(ring: &Ring, timer: u32) -> Result<(), Fail> {
    for i in 0..10 {
        push(ring, Op::TimerSleep, timer, 100 + i, &[MS])?;
    }
    let n = sys::enter(10, TIMEOUT_NEVER).ctx("cap_enter(10)")?;
    ensure!(n >= 10, "cap_enter(10) returned {}", n);
    for _ in 0..10 {
        let c = pop(ring)?;
        ensure!(
            (100..110).contains(&c.user_data) && c.result == 0,
            "sleep cqe {:?}",
            c
        );
    }
    Ok(())
}

/// One 300 ms sleep outstanding: cap_enter(2, 5 ms) comes back with fewer
/// than 2 (after the timeout); then cap_enter(1) gets the sleep.
fn timeout(ring: &Ring, timer: u32) -> Result<(), Fail> {
    push(ring, Op::TimerSleep, timer, 200, &[300 * MS])?;
    let n = sys::enter(2, 5 * MS).ctx("cap_enter(2, 5ms)")?;
    ensure!(
        n < 2,
        "cap_enter(2, 5ms) returned {} with one op outstanding",
        n
    );
    let n = sys::enter(1, TIMEOUT_NEVER).ctx("cap_enter(1)")?;
    ensure!(n >= 1, "cap_enter(1) returned {}", n);
    let c = pop(ring)?;
    ensure!(c.user_data == 200 && c.result == 0, "sleep cqe {:?}", c);
    Ok(())
}

/// CQ_ENTRIES + 100 NOPs submitted without reaping any (as many as the
/// kernel takes: it may hold submissions back while its CQ and overflow
/// list are full): every one arrives, once, in order.
fn overflow(ring: &Ring) -> Result<(), Fail> {
    let total = u64::from(CQ_ENTRIES) + 100;
    let mut submitted = 0u64;
    let mut stuck = 0;
    let mut max_overflow = 0;
    while submitted < total && stuck < 3 {
        let mut s = sys::sqe(Op::Nop, 0, &[]);
        s.user_data = 1000 + submitted;
        if ring.push(&s) {
            submitted += 1;
            continue;
        }
        // SQ full: let the kernel consume what it will (it may hold back
        // while the CQ is full: back-pressure).
        let before = ring
            .header()
            .sq_head
            .load(core::sync::atomic::Ordering::Acquire);
        sys::enter(0, 0).ctx("cap_enter(0,0) while overflowing")?;
        let after = ring
            .header()
            .sq_head
            .load(core::sync::atomic::Ordering::Acquire);
        max_overflow = max_overflow.max(
            ring.header()
                .cq_overflow
                .load(core::sync::atomic::Ordering::Acquire),
        );
        stuck = if after == before { stuck + 1 } else { 0 };
    }
    sys::enter(0, 0).ctx("cap_enter(0,0)")?;
    max_overflow = max_overflow.max(
        ring.header()
            .cq_overflow
            .load(core::sync::atomic::Ordering::Acquire),
    );
    let ready = ring.cq_ready().unwrap_or(0);
    ensure!(ready <= CQ_ENTRIES, "CQ claims {} entries", ready);
    // Reap everything, entering the kernel whenever the CQ runs dry.
    let mut want = 1000u64;
    while want < 1000 + submitted {
        match ring.pop() {
            Some(c) => {
                ensure!(
                    c.user_data == want,
                    "overflow: got user_data {} want {}",
                    c.user_data,
                    want
                );
                ensure!(c.result == 0, "overflow nop failed: {}", c.result);
                want += 1;
            }
            None => {
                let n = sys::enter(1, 2000 * MS).ctx("cap_enter reaping overflow")?;
                ensure!(
                    n > 0,
                    "lost completions: {} of {} arrived",
                    want - 1000,
                    submitted
                );
            }
        }
    }
    ensure!(ring.pop().is_none(), "extra completion after overflow test");
    // Even with back-pressure (no overflow list) a full CQ plus a full SQ
    // were outstanding at once.
    ensure!(
        submitted > u64::from(CQ_ENTRIES),
        "only {} submissions outstanding",
        submitted
    );
    rt::println!(
        "ring-smoke: overflow test: {} nops unreaped, cq_entries={} peak cq_overflow={}",
        submitted,
        CQ_ENTRIES,
        max_overflow
    );
    Ok(())
}

/// Sleeps of 150, 100, 50, 5 ms complete shortest first (spaced by several
/// timer ticks, so a tick-granular kernel timer keeps the order).
fn out_of_order(ring: &Ring, timer: u32) -> Result<(), Fail> {
    for (i, ms) in [150u64, 100, 50, 5].into_iter().enumerate() {
        push(ring, Op::TimerSleep, timer, 300 + i as u64, &[ms * MS])?;
    }
    let mut order = [0u64; 4];
    for slot in order.iter_mut() {
        if ring.cq_ready() == Some(0) {
            sys::enter(1, TIMEOUT_NEVER).ctx("cap_enter out-of-order")?;
        }
        let c = pop(ring)?;
        ensure!(c.result == 0, "sleep failed: {}", c.result);
        *slot = c.user_data;
    }
    ensure!(
        order == [303, 302, 301, 300],
        "completion order {:?}",
        order
    );
    Ok(())
}

/// The same through rt: wait for the longest sleep first; the shorter ones
/// arrive meanwhile, go to the stash, and are found there.
fn stash_matching(timer: u32) -> Result<(), Fail> {
    let mut tokens = [0u64; 3];
    for (t, ms) in tokens.iter_mut().zip([100u64, 50, 5]) {
        *t = sys::submit(sys::sqe(Op::TimerSleep, timer, &[ms * MS])).ctx("submit sleep")?;
    }
    for t in tokens {
        let c = sys::wait_for(t);
        ensure!(
            c.user_data == t && c.result == 0,
            "wait_for({}) got {:?}",
            t,
            c
        );
    }
    Ok(())
}

fn bad_submissions(a: &Args) -> Result<(), Fail> {
    let console = need_cap(a, CapKind::Console)?;
    let cases: [(u64, u64, &str); 4] = [
        (0x10, 5, "null page"),
        (0xffff_8000_0000_0000, 8, "kernel half"),
        (0x0000_7fff_ffff_f800, 0x1000, "past user end"),
        (0x0000_4000_0000_0000, 16, "unmapped user"),
    ];
    for (ptr, len, what) in cases {
        let r = sys::raw_console_write(console, ptr, len);
        ensure!(
            r == Err(Error::BadAddress),
            "console write from {}: {:?}",
            what,
            r
        );
    }
    let r = sys::raw_console_write(console, 0x40_0000, abi::op::CONSOLE_WRITE_MAX + 1);
    ensure!(r.is_err(), "oversized console write accepted: {:?}", r);
    let c = sys::call(abi::ring::Sqe {
        opcode: 0xdead,
        ..Default::default()
    });
    ensure!(
        sys::check(&c) == Err(Error::BadOpcode),
        "unknown opcode: {:?}",
        c
    );
    let r = sys::nop(abi::caps::MAX_SLOTS + 7);
    ensure!(
        r.is_ok() || r == Err(Error::BadSlot),
        "nop on slot out of range: {:?}",
        r
    );
    let r = sys::timer_now(abi::caps::MAX_SLOTS + 7);
    ensure!(
        r.is_err_and(|e| e == Error::BadSlot),
        "timer-now on slot out of range: {:?}",
        r
    );
    let r = sys::timer_now(900);
    ensure!(
        r.is_err_and(|e| e == Error::BadSlot),
        "timer-now on empty slot: {:?}",
        r
    );
    // The ring still works after all that.
    sys::nop(0).ctx("nop after bad submissions")?;
    Ok(())
}
