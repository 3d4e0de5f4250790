//! `exit-smoke`: process exit, from the waiter's side.
//!
//! Run without arguments (console, spawner) it checks that:
//! - exit statuses (7, -5) flow to the waiter as ExitKind::Exited;
//! - a tree of processes three levels deep (each node spawns two children
//!   with the spawner passed down and exits with its subtree's size) ends
//!   with status 15;
//! - a process exits (status 42) while its other threads spin and park;
//!   a non-main thread's Exit ends the process (43) while main is parked;
//!   the last thread's ThreadExit value becomes the status (44);
//! - frames are reclaimed: free frames before a batch of children and after
//!   they all ended and their handles closed are equal (after a warm-up
//!   batch, so one-time kernel allocations are not counted).
//!
//! Child modes (first argument): `status N`, `tree D`, `threads`,
//! `thread-exits-process`, `last-thread`. `exit-smoke status 3` doubles as
//! the manifest's `expect = "exit:3"` entry.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::ExitKind;
use core::sync::atomic::AtomicU32;
use rt::process::{self, Child};
use rt::{sys, thread, Args};
use smoke::{ensure, fail, need_cap, num, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "exit-smoke";

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run("exit", a, parent),
        Some("status") => a.get(1).and_then(parse_i64).unwrap_or(100),
        Some("tree") => tree(a),
        Some("threads") => threads_then_exit(a),
        Some("thread-exits-process") => thread_exits_process(a),
        Some("last-thread") => last_thread(a),
        Some(_) => 100,
    }
}

fn parse_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(m) => rt::args::parse_u64(m)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        None => rt::args::parse_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A tree node: exits with the number of nodes in its subtree (-1 on error).
fn tree(a: &Args) -> i64 {
    let depth = a.get_u64(1).unwrap_or(0);
    if depth == 0 {
        return 1;
    }
    let Some(spawner) = a.find_cap(CapKind::Spawner) else {
        return -1;
    };
    let d = num(depth - 1);
    let mut total = 1;
    let mut kids = [None, None];
    for k in kids.iter_mut() {
        match process::spawn(spawner, NAME, &["tree", d.as_str()], &[spawner]) {
            Ok(c) => *k = Some(c),
            Err(_) => return -1,
        }
    }
    for c in kids.into_iter().flatten() {
        match c.wait() {
            Ok((ExitKind::Exited, n)) if n > 0 => total += n,
            _ => return -1,
        }
        let _ = c.close();
    }
    total
}

static NEVER_CHANGES: AtomicU32 = AtomicU32::new(0);

fn park_forever() -> i64 {
    loop {
        let _ = sys::park(&NEVER_CHANGES, 0, abi::TIMEOUT_NEVER);
    }
}

fn spin_forever() -> i64 {
    loop {
        core::hint::spin_loop();
    }
}

/// Exits with 42 while one thread spins and another is parked.
fn threads_then_exit(a: &Args) -> i64 {
    if thread::spawn_with_stack(16 * 1024, spin_forever).is_err()
        || thread::spawn_with_stack(16 * 1024, park_forever).is_err()
    {
        return -1;
    }
    smoke::spin_ns(5_000_000, a.tsc_hz());
    42
}

/// A spawned thread ends the process (43) while main is parked.
fn thread_exits_process(a: &Args) -> i64 {
    let hz = a.tsc_hz();
    if thread::spawn_with_stack(16 * 1024, move || {
        smoke::spin_ns(5_000_000, hz);
        sys::exit(43)
    })
    .is_err()
    {
        return -1;
    }
    park_forever()
}

/// Main ends first; the last thread's value (44) becomes the status.
fn last_thread(a: &Args) -> i64 {
    let hz = a.tsc_hz();
    if thread::spawn_with_stack(16 * 1024, move || {
        smoke::spin_ns(10_000_000, hz);
        44
    })
    .is_err()
    {
        return -1;
    }
    thread::exit(0)
}

fn run_child(spawner: u32, args: &[&str], caps: &[u32]) -> Result<Child, Fail> {
    process::spawn(spawner, NAME, args, caps).ctx("spawn")
}

fn expect_exit(c: Child, what: &str, want: i64) -> Result<(), Fail> {
    let r = c.wait().ctx("wait")?;
    c.close().ctx("close")?;
    ensure!(
        r == (ExitKind::Exited, want),
        "{}: ended {:?}, want exit {}",
        what,
        r,
        want
    );
    Ok(())
}

fn parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    for (arg, want) in [("7", 7), ("-5", -5), ("0", 0)] {
        expect_exit(run_child(spawner, &["status", arg], &[])?, "status", want)?;
    }
    expect_exit(
        run_child(spawner, &["tree", "3"], &[spawner])?,
        "tree depth 3",
        15,
    )?;
    expect_exit(
        run_child(spawner, &["threads"], &[])?,
        "exit with threads running",
        42,
    )?;
    expect_exit(
        run_child(spawner, &["thread-exits-process"], &[])?,
        "thread calls exit",
        43,
    )?;
    expect_exit(
        run_child(spawner, &["last-thread"], &[])?,
        "last thread's value",
        44,
    )?;
    frames_reclaimed(spawner)
}

/// Runs a batch of children concurrently and waits for all.
fn batch(spawner: u32) -> Result<(), Fail> {
    const MODES: [(&[&str], i64); 6] = [
        (&["status", "0"], 0),
        (&["status", "1"], 1),
        (&["status", "2"], 2),
        (&["threads"], 42),
        (&["last-thread"], 44),
        (&["tree", "2"], 7),
    ];
    let mut kids: [Option<Child>; 6] = [const { None }; 6];
    for (k, (args, _)) in kids.iter_mut().zip(MODES) {
        *k = Some(run_child(spawner, args, &[spawner])?);
    }
    for (k, (_, want)) in kids.into_iter().zip(MODES) {
        let Some(c) = k else { fail!("child missing") };
        expect_exit(c, "batch child", want)?;
    }
    Ok(())
}

fn frames_reclaimed(spawner: u32) -> Result<(), Fail> {
    batch(spawner)?; // warm-up: kernel tables grow once
    let mut last = (0, 0);
    for _ in 0..3 {
        let (before, _) = sys::mem_stats().ctx("mem-stats")?;
        batch(spawner)?;
        let (after, _) = sys::mem_stats().ctx("mem-stats")?;
        if before == after {
            return Ok(());
        }
        last = (before, after);
    }
    fail!(
        "free frames before a batch {} after {} (3 tries)",
        last.0,
        last.1
    )
}
