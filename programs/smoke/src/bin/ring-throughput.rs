//! `ring-throughput`: NOPs per second per thread and submit-to-completion
//! latency, with the ring consumed by `cap_enter` (`plain`) or by the
//! kernel's SQPOLL poller (`sqpoll`). A benchmark, not a test: it prints
//! numbers (docs/benchmarks.md) and fails only when an operation fails.
//!
//! Arguments: `plain|sqpoll`, NOPs per thread (default 20,000), latency
//! samples per thread (default 200), threads (default: one per CPU).
//!
//! Per thread it prints
//! `RINGBENCH mode=<m> thread=<i> ops=<n> ms=<ms> ops_per_s=<x> lat_p50_ns=<ns> lat_p90_ns=<ns> syscalls=<n> polled=<n>`
//! and the main thread a `RINGBENCH mode=<m> total_ops_per_s=<x> threads=<w>`
//! summary. Throughput keeps up to [`BATCH`] NOPs in flight: `plain`
//! submits a batch and waits for it with one `cap_enter`; `sqpoll`
//! refills the SQ and reaps the CQ by memory only. Latency is one NOP at
//! a time: from publishing it to seeing its completion.
#![no_std]
#![no_main]

use abi::caps::SELF_SLOT;
use abi::op::Op;
use abi::ring::{Sqe, ENTER_SQ_WAKEUP, RING_SETUP_SQPOLL};
use rt::ring::Ring;
use rt::thread::{self, Thread};
use rt::{println, sys, tls, Args};

rt::entry!(main);

/// NOPs in flight at once in the throughput phase.
const BATCH: u64 = 32;
const MAX_THREADS: usize = 16;
const MAX_SAMPLES: usize = 1000;
const STACK: u64 = 64 * 1024;

#[derive(Clone, Copy)]
struct Cfg {
    sqpoll: bool,
    ops: u64,
    samples: usize,
    hz: u64,
}

fn main(a: &Args) -> i64 {
    let sqpoll = a.get(0) == Some("sqpoll");
    let cfg = Cfg {
        sqpoll,
        ops: a.get_u64(1).unwrap_or(20_000),
        samples: (a.get_u64(2).unwrap_or(200) as usize).clamp(1, MAX_SAMPLES),
        hz: a.tsc_hz(),
    };
    let w = (a.get_u64(3).unwrap_or(a.cpus()) as usize).clamp(1, MAX_THREADS);
    let mode = if sqpoll { "sqpoll" } else { "plain" };
    let mut ts: [Option<Thread>; MAX_THREADS] = [const { None }; MAX_THREADS];
    let flags = if sqpoll { RING_SETUP_SQPOLL } else { 0 };
    for (i, t) in ts.iter_mut().take(w).enumerate() {
        match thread::spawn_with_ring(STACK, flags, 0, move || worker(i, cfg)) {
            Ok(h) => *t = Some(h),
            Err(e) => {
                println!("RINGBENCH FAIL spawn: {}", e.name());
                return 1;
            }
        }
    }
    let mut total = 0u64;
    for t in ts.iter_mut().take(w).flatten() {
        match t.join() {
            Ok(v) if v > 0 => total += v as u64,
            _ => {
                println!("RINGBENCH FAIL a worker failed");
                return 1;
            }
        }
    }
    println!(
        "RINGBENCH mode={} total_ops_per_s={} threads={}",
        mode, total, w
    );
    0
}

fn nop(user_data: u64) -> Sqe {
    Sqe {
        opcode: Op::Nop as u32,
        user_data,
        ..Sqe::default()
    }
}

fn kick(ring: &Ring) -> bool {
    !ring.needs_wakeup() || sys::enter_flags(0, 0, ENTER_SQ_WAKEUP).is_ok()
}

/// Throughput: `ops` NOPs with up to BATCH in flight; false on an error.
fn throughput(ring: &Ring, c: &Cfg) -> bool {
    let (mut sent, mut got) = (0u64, 0u64);
    while got < c.ops {
        let room = BATCH - (sent - got);
        let mut n = 0;
        while n < room && sent < c.ops && ring.push(&nop(sent)) {
            sent += 1;
            n += 1;
        }
        if c.sqpoll {
            if n > 0 && !kick(ring) {
                return false;
            }
        } else if sys::enter(sent - got, abi::TIMEOUT_NEVER).is_err() {
            return false;
        }
        while let Some(cqe) = ring.pop() {
            if cqe.result < 0 {
                return false;
            }
            got += 1;
        }
    }
    true
}

/// One NOP's submit-to-completion time in TSC cycles.
fn one(ring: &Ring, c: &Cfg, ud: u64) -> Option<u64> {
    let t0 = rt::arch::rdtsc();
    if !ring.push(&nop(ud)) {
        return None;
    }
    if c.sqpoll {
        if !kick(ring) {
            return None;
        }
    } else if sys::enter(1, abi::TIMEOUT_NEVER).is_err() {
        return None;
    }
    loop {
        if let Some(cqe) = ring.pop() {
            let t1 = rt::arch::rdtsc();
            return (cqe.user_data == ud).then_some(t1.wrapping_sub(t0));
        }
        core::hint::spin_loop();
    }
}

/// Returns its NOPs per second, or a value <= 0 on failure.
fn worker(i: usize, c: Cfg) -> i64 {
    let ring = tls::current().ring();
    let Ok(s0) = sys::ring_stats(SELF_SLOT) else {
        return -1;
    };
    let t0 = rt::arch::rdtsc();
    if !throughput(&ring, &c) {
        return -2;
    }
    let cycles = rt::arch::rdtsc().wrapping_sub(t0).max(1);
    let mut lat = [0u64; MAX_SAMPLES];
    for (k, l) in lat.iter_mut().take(c.samples).enumerate() {
        match one(&ring, &c, k as u64) {
            Some(v) => *l = v,
            None => return -3,
        }
    }
    let Ok(s1) = sys::ring_stats(SELF_SLOT) else {
        return -4;
    };
    let lat = &mut lat[..c.samples];
    lat.sort_unstable();
    let ns = |cyc: u64| (u128::from(cyc) * 1_000_000_000 / u128::from(c.hz.max(1))) as u64;
    let ops_per_s = (u128::from(c.ops) * u128::from(c.hz) / u128::from(cycles)) as u64;
    println!(
        "RINGBENCH mode={} thread={} ops={} ms={} ops_per_s={} lat_p50_ns={} lat_p90_ns={} syscalls={} polled={}",
        if c.sqpoll { "sqpoll" } else { "plain" },
        i,
        c.ops,
        ns(cycles) / 1_000_000,
        ops_per_s,
        ns(lat[lat.len() / 2]),
        ns(lat[lat.len() * 9 / 10]),
        s1.syscalls - s0.syscalls,
        s1.polled - s0.polled
    );
    ops_per_s.max(1) as i64
}
