//! `thread-smoke`: thread spawn/join at volume, TLS, stale handles, SMP.
//!
//! - 1,000 threads in 20 waves of 50; each sets its TLS user word to a
//!   value derived from its argument and re-reads it (through FS) across
//!   about a millisecond of spinning, so preemption and migration happen
//!   in between; its exit value proves what it saw;
//! - joining a thread that exited long ago returns its value;
//! - a closed handle is refused (BadSlot or Stale), and so is a thread op
//!   on a slot of another kind (Denied);
//! - with two or more CPUs, spinning siblings run on at least two CPUs
//!   (the union of their CpuRecord masks).
#![no_std]
#![no_main]

use abi::caps::CapKind;
use rt::thread::{self, Thread};
use rt::{sys, tls, Args, Error};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const WAVES: u64 = 20;
const PER_WAVE: usize = 50;
const STACK: u64 = 16 * 1024;

fn main(args: &Args) -> i64 {
    smoke::run("thread", args, body)
}

fn body(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let hz = a.tsc_hz();
    waves(hz)?;
    join_after_exit(timer)?;
    stale_handles(timer)?;
    spread(a, hz)?;
    Ok(())
}

fn tls_value(i: u64) -> u64 {
    0x5a5a_0000_0000 ^ (i * 0x9e37_79b9)
}

/// A wave worker: returns i + 1 if its TLS value held throughout, else 0.
fn tls_worker(i: u64, hz: u64) -> i64 {
    let want = tls_value(i);
    tls::set_user_word(want);
    let me = tls::current().self_ptr();
    let cycles = hz / 1000;
    let t0 = rt::arch::rdtsc();
    while rt::arch::rdtsc().wrapping_sub(t0) < cycles {
        if tls::user_word() != want || tls::current().self_ptr() != me {
            return 0;
        }
        core::hint::spin_loop();
    }
    i as i64 + 1
}

fn waves(hz: u64) -> Result<(), Fail> {
    let mut index_seen = 0u64;
    for w in 0..WAVES {
        let mut ts: [Option<Thread>; PER_WAVE] = [const { None }; PER_WAVE];
        for (k, t) in ts.iter_mut().enumerate() {
            let i = w * PER_WAVE as u64 + k as u64;
            *t = Some(
                thread::spawn_with_stack(STACK, move || tls_worker(i, hz)).ctx("thread spawn")?,
            );
        }
        for (k, t) in ts.into_iter().enumerate() {
            let i = w * PER_WAVE as u64 + k as u64;
            let Some(mut t) = t else {
                fail!("missing thread")
            };
            let v = t.join().ctx("join")?;
            ensure!(
                v == i as i64 + 1,
                "thread {} returned {} (TLS value lost?)",
                i,
                v
            );
            t.close().ctx("close")?;
            index_seen += 1;
        }
    }
    ensure!(
        index_seen == WAVES * PER_WAVE as u64,
        "joined {}",
        index_seen
    );
    ensure!(tls::thread_index() == 0, "main thread's TLS index changed");
    Ok(())
}

fn join_after_exit(timer: u32) -> Result<(), Fail> {
    let mut t = thread::spawn_with_stack(STACK, || 77).ctx("spawn")?;
    sys::sleep(timer, 20_000_000).ctx("sleep")?;
    let v = t.join().ctx("join of an exited thread")?;
    ensure!(v == 77, "exited thread's value {}", v);
    t.close().ctx("close")?;
    Ok(())
}

fn stale_handles(timer: u32) -> Result<(), Fail> {
    let mut t = thread::spawn_with_stack(STACK, || 5).ctx("spawn")?;
    let slot = t.slot();
    t.join().ctx("join")?;
    t.close().ctx("close")?;
    let r = sys::thread_join(slot);
    ensure!(
        matches!(r, Err(Error::BadSlot) | Err(Error::Stale)),
        "join on a closed handle: {:?}",
        r
    );
    let r = sys::cpu_record(slot);
    ensure!(
        matches!(r, Err(Error::BadSlot) | Err(Error::Stale)),
        "cpu-record on a closed handle: {:?}",
        r
    );
    // A new handle may reuse the slot: it must name the new thread.
    let mut t2 = thread::spawn_with_stack(STACK, || 6).ctx("spawn")?;
    let v = t2.join().ctx("join")?;
    ensure!(v == 6, "new thread in a reused slot returned {}", v);
    t2.close().ctx("close")?;
    let r = sys::thread_join(timer);
    ensure!(r == Err(Error::Denied), "join on the timer slot: {:?}", r);
    let r = sys::thread_join(0);
    ensure!(r == Err(Error::Denied), "join on the self slot: {:?}", r);
    Ok(())
}

fn spread(a: &Args, hz: u64) -> Result<(), Fail> {
    let (cpus, _) = sys::sys_info().ctx("sys-info")?;
    if cpus < 2 {
        rt::println!("thread-smoke: 1 CPU, spread check skipped");
        return Ok(());
    }
    let n = (2 * cpus).min(8) as usize;
    let mut ts: [Option<Thread>; 8] = [const { None }; 8];
    for t in ts.iter_mut().take(n) {
        *t = Some(
            thread::spawn_with_stack(STACK, move || {
                smoke::spin_ns(30_000_000, hz);
                0
            })
            .ctx("spawn")?,
        );
    }
    let mut union = 0u64;
    for t in ts.iter_mut().take(n) {
        let Some(mut t) = t.take() else {
            fail!("missing thread")
        };
        t.join().ctx("join")?;
        union |= t.cpu_record().ctx("cpu-record")?.0;
        t.close().ctx("close")?;
    }
    let _ = a;
    ensure!(
        smoke::cpu_count(union) >= 2,
        "{} spinning threads ran only on CPUs {:#x}",
        n,
        union
    );
    Ok(())
}
