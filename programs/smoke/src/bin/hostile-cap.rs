//! `hostile-cap`: capability garbage fails with the error the ABI names.
//!
//! - every operation on slots out of range (`MAX_SLOTS`, `u32::MAX`, ...)
//!   or empty: `BadSlot` (a Nop completes on any slot, by the ABI);
//! - every operation on every held slot of the wrong kind (self, console,
//!   timer, spawner, stats, a process handle, a thread handle): `Denied`;
//! - CapClose on slot 0 (the process itself): `Denied`;
//! - closed slots: close twice, wait, kill, join, CPU record: `BadSlot`;
//! - stale slot numbers: a closed slot is reused by the next handle, and
//!   the old number then reaches the new object (its own status); a thread
//!   joined twice: `Stale`; joining a closed thread handle: `BadSlot`;
//! - a killed process waited for twice (and by two waiters at once):
//!   `Killed` each time;
//! - Spawn passing garbage slots (`BadSlot`) or kinds that may not travel
//!   (self, process, thread: `Denied`) to a child;
//! - a thread joining its own handle: the join must fail, not hang, and
//!   the real joiner still gets the thread's value.
#![no_std]
#![no_main]

use abi::caps::{CapKind, MAX_SLOTS, SELF_SLOT};
use abi::op::{ExitKind, Op, SpawnArgs, UserStr};
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rt::console::LineBuf;
use rt::{process, sys, thread, Args, Error};
use smoke::{ensure, expect_end, need_cap, raw_call, Checks, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-cap";
const MS: u64 = 1_000_000;
/// A kernel-half address: arguments that no operation accepts, so a
/// wrongly allowed call fails with something other than `Denied`.
const POISON: u64 = 0xffff_8000_0000_0000;

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run_steps("hostile-cap", a, &STEPS),
        Some("exit") => a
            .get_u64(1)
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(1),
        Some("park") => {
            let w = AtomicU32::new(0);
            loop {
                let _ = sys::park(&w, 0, abi::TIMEOUT_NEVER);
            }
        }
        Some(_) => 0,
    }
}

const STEPS: [smoke::Step; 6] = [
    ("out-of-range", out_of_range),
    ("wrong-kind", wrong_kind),
    ("closed-and-stale-processes", closed_processes),
    ("closed-and-stale-threads", closed_threads),
    ("spawn-cap-garbage", spawn_caps),
    ("self-join", self_join),
];

/// Every opcode but Nop, with the kinds it accepts.
const OPS: [(Op, &[CapKind]); 23] = [
    (Op::ConsoleWrite, &[CapKind::Console]),
    (Op::TimerNow, &[CapKind::Timer]),
    (Op::TimerSleep, &[CapKind::Timer]),
    (Op::Spawn, &[CapKind::Spawner]),
    (Op::ProcWait, &[CapKind::Process]),
    (Op::ProcKill, &[CapKind::Process]),
    (Op::Exit, &[CapKind::SelfProcess]),
    (Op::ThreadSpawn, &[CapKind::SelfProcess]),
    (Op::ThreadJoin, &[CapKind::Thread]),
    (Op::ThreadExit, &[CapKind::SelfProcess]),
    (Op::Park, &[CapKind::SelfProcess]),
    (Op::Unpark, &[CapKind::SelfProcess]),
    (Op::StatsBusy, &[CapKind::Stats]),
    (Op::CpuRecord, &[CapKind::Process, CapKind::Thread]),
    (
        Op::CapClose,
        &[
            CapKind::Console,
            CapKind::Timer,
            CapKind::Spawner,
            CapKind::Stats,
            CapKind::Process,
            CapKind::Thread,
        ],
    ),
    (Op::SysInfo, &[CapKind::SelfProcess]),
    (Op::MemMap, &[CapKind::SelfProcess]),
    (Op::MemUnmap, &[CapKind::SelfProcess]),
    (Op::MemStats, &[CapKind::SelfProcess]),
    (Op::SetTls, &[CapKind::SelfProcess]),
    (Op::RingMode, &[CapKind::SelfProcess]),
    (Op::RingStats, &[CapKind::SelfProcess, CapKind::Thread]),
    (Op::LockStat, &[CapKind::Stats]),
];

/// The opcode's name for failure reasons (its Debug form, so that new
/// opcodes need no change here).
fn op_name(op: Op) -> LineBuf<24> {
    let mut b = LineBuf::new();
    let _ = write!(b, "{op:?}");
    b
}

fn poisoned(op: Op, slot: u32) -> Result<i64, Error> {
    raw_call(op, slot, &[POISON; 6])
}

/// Slots that hold nothing: past the table, far past it, and in range but
/// never filled.
fn out_of_range(_: &Args) -> Result<(), Fail> {
    let mut c = Checks::default();
    let slots = [
        ("max-slots", MAX_SLOTS),
        ("max-slots+1", MAX_SLOTS + 1),
        ("u32-max", u32::MAX),
        ("million", 1_000_000),
        ("empty-last", MAX_SLOTS - 1),
        ("empty-100", 100),
    ];
    for (case, slot) in slots {
        for (op, _) in OPS {
            c.err(
                op_name(op).as_str(),
                case,
                poisoned(op, slot),
                Error::BadSlot,
            )?;
        }
        c.ok("nop", case, raw_call(Op::Nop, slot, &[POISON; 6]))?;
    }
    rt::println!("hostile-cap: {} out-of-range checks held", c.count);
    Ok(())
}

static GATE: AtomicU32 = AtomicU32::new(0);

/// A thread that waits for [`GATE`], then ends with `value`.
fn gated_thread(value: i64) -> Result<thread::Thread, Fail> {
    thread::spawn(move || {
        while GATE.load(Ordering::Acquire) == 0 {
            let _ = sys::park(&GATE, 0, abi::TIMEOUT_NEVER);
        }
        value
    })
    .ctx("spawn thread")
}

fn open_gate() -> Result<(), Fail> {
    GATE.store(1, Ordering::Release);
    sys::unpark(&GATE, u64::MAX).ctx("unpark gate")?;
    Ok(())
}

/// Every operation on every held slot of a kind it does not accept.
fn wrong_kind(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    GATE.store(0, Ordering::Release);
    let child = process::spawn(spawner, NAME, &["park"], &[]).ctx("spawn park child")?;
    let mut t = gated_thread(5)?;
    let held = [
        (SELF_SLOT, CapKind::SelfProcess),
        (need_cap(a, CapKind::Console)?, CapKind::Console),
        (need_cap(a, CapKind::Timer)?, CapKind::Timer),
        (spawner, CapKind::Spawner),
        (need_cap(a, CapKind::Stats)?, CapKind::Stats),
        (child.slot(), CapKind::Process),
        (t.slot(), CapKind::Thread),
    ];
    let mut c = Checks::default();
    for (op, kinds) in OPS {
        for (slot, kind) in held {
            if kinds.contains(&kind) {
                continue;
            }
            c.err(
                op_name(op).as_str(),
                kind.name(),
                poisoned(op, slot),
                Error::Denied,
            )?;
        }
    }
    // The process itself can never be closed.
    c.err(
        "cap-close",
        "self",
        raw_call(Op::CapClose, SELF_SLOT, &[]),
        Error::Denied,
    )?;
    // LockStat on the right kind with a command it does not know: Invalid
    // whether or not the kernel has lock statistics built in.
    c.err(
        "lock-stat",
        "bad-command",
        poisoned(Op::LockStat, need_cap(a, CapKind::Stats)?),
        Error::Invalid,
    )?;
    // Everything still works after all that.
    open_gate()?;
    ensure!(t.join().ctx("join")? == 5, "thread value changed");
    t.close().ctx("close thread")?;
    child.kill().ctx("kill")?;
    expect_end(&child, "parked child", (ExitKind::Killed, 0))?;
    child.close().ctx("close child")?;
    sys::timer_now(need_cap(a, CapKind::Timer)?).ctx("timer after wrong kinds")?;
    rt::println!("hostile-cap: {} wrong-kind checks held", c.count);
    Ok(())
}

/// Closed process handles, slot reuse, killed processes waited twice.
fn closed_processes(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let mut c = Checks::default();
    let first = process::spawn(spawner, NAME, &["exit", "4"], &[]).ctx("spawn")?;
    expect_end(&first, "exit 4", (ExitKind::Exited, 4))?;
    let slot = first.slot();
    first.close().ctx("close")?;
    for op in [Op::CapClose, Op::ProcWait, Op::ProcKill, Op::CpuRecord] {
        c.err(
            op_name(op).as_str(),
            "closed-process",
            raw_call(op, slot, &[]),
            Error::BadSlot,
        )?;
    }
    // The lowest free slot is reused: the old number now names the new
    // child, and waiting on it gives the new child's status.
    let second = process::spawn(spawner, NAME, &["exit", "6"], &[]).ctx("spawn")?;
    ensure!(
        second.slot() == slot,
        "slot {} not reused ({})",
        slot,
        second.slot()
    );
    let (kind, status) = sys::proc_wait(slot).ctx("wait reused slot")?;
    ensure!(
        (kind, status) == (ExitKind::Exited, 6),
        "reused slot reached {:?}",
        (kind, status)
    );
    second.close().ctx("close")?;

    // Killed, then waited for twice, and by two waiters at once.
    let victim = process::spawn(spawner, NAME, &["park"], &[]).ctx("spawn")?;
    let w1 = sys::submit(sys::sqe(Op::ProcWait, victim.slot(), &[])).ctx("submit wait")?;
    let w2 = sys::submit(sys::sqe(Op::ProcWait, victim.slot(), &[])).ctx("submit wait")?;
    victim.kill().ctx("kill")?;
    for w in [w1, w2] {
        let r = sys::wait_for(w);
        ensure!(
            r.result == 0 && r.value0 == ExitKind::Killed as u64,
            "concurrent waiter got {:?}",
            r
        );
    }
    expect_end(&victim, "killed, wait 1", (ExitKind::Killed, 0))?;
    expect_end(&victim, "killed, wait 2", (ExitKind::Killed, 0))?;
    let again = victim.kill();
    c.one_of(
        "proc-kill",
        "dead-process",
        again.map(|_| 0),
        &[Error::Stale],
        true,
    )?;
    victim.close().ctx("close")?;
    rt::println!("hostile-cap: {} closed-process checks held", c.count);
    Ok(())
}

/// Closed and joined thread handles.
fn closed_threads(_: &Args) -> Result<(), Fail> {
    let mut c = Checks::default();
    GATE.store(1, Ordering::Release);
    let mut t = gated_thread(11)?;
    ensure!(t.join().ctx("join")? == 11, "join value");
    let slot = t.slot();
    c.err(
        "thread-join",
        "twice",
        raw_call(Op::ThreadJoin, slot, &[]),
        Error::Stale,
    )?;
    c.ok(
        "cpu-record",
        "joined-thread",
        raw_call(Op::CpuRecord, slot, &[]),
    )?;
    t.close().ctx("close")?;
    for op in [Op::CapClose, Op::ThreadJoin, Op::CpuRecord] {
        c.err(
            op_name(op).as_str(),
            "closed-thread",
            raw_call(op, slot, &[]),
            Error::BadSlot,
        )?;
    }
    // The slot is reused by the next thread; its number reaches that one.
    let mut t2 = gated_thread(22)?;
    ensure!(
        t2.slot() == slot,
        "thread slot {} not reused ({})",
        slot,
        t2.slot()
    );
    ensure!(
        t2.join().ctx("join")? == 22,
        "reused slot joined the wrong thread"
    );
    t2.close().ctx("close")?;
    // A handle closed while its thread still runs cannot be joined.
    GATE.store(0, Ordering::Release);
    let t3 = gated_thread(33)?;
    let slot = t3.slot();
    c.ok(
        "cap-close",
        "running-thread",
        raw_call(Op::CapClose, slot, &[]),
    )?;
    c.err(
        "thread-join",
        "closed-running",
        raw_call(Op::ThreadJoin, slot, &[]),
        Error::BadSlot,
    )?;
    // t3's memory stays mapped (it may still run); only its handle is gone.
    open_gate()?;
    rt::println!("hostile-cap: {} closed-thread checks held", c.count);
    Ok(())
}

/// Spawn passing slots that are empty or may not travel.
fn spawn_caps(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let console = need_cap(a, CapKind::Console)?;
    let mut c = Checks::default();
    GATE.store(0, Ordering::Release);
    let t = gated_thread(0)?;
    let parked = process::spawn(spawner, NAME, &["park"], &[]).ctx("spawn")?;
    let cases = [
        ("u32-max", u32::MAX, Error::BadSlot),
        ("max-slots", MAX_SLOTS, Error::BadSlot),
        ("empty", 200, Error::BadSlot),
        ("self", SELF_SLOT, Error::Denied),
        ("process", parked.slot(), Error::Denied),
        ("thread", t.slot(), Error::Denied),
    ];
    let s = |t: &str| UserStr {
        ptr: t.as_ptr() as u64,
        len: t.len() as u64,
    };
    // Should a spawn be wrongly allowed, the child just exits 0.
    let argv = [s("exit"), s("0")];
    for (case, slot, want) in cases {
        let caps = [console, slot];
        let block = SpawnArgs {
            name: s(NAME),
            argv: argv.as_ptr() as u64,
            argc: 2,
            caps: caps.as_ptr() as u64,
            ncaps: 2,
        };
        let r = sys::spawn(spawner, &block);
        if let Ok((slot, _)) = r {
            let _ = sys::proc_wait(slot);
            let _ = sys::cap_close(slot);
        }
        c.err("spawn-caps", case, r.map(|(s, _)| i64::from(s)), want)?;
    }
    // The same grantable capability twice is fine.
    let dup =
        process::spawn(spawner, NAME, &["exit", "0"], &[console, console]).ctx("spawn dup")?;
    expect_end(&dup, "duplicate caps", (ExitKind::Exited, 0))?;
    dup.close().ctx("close")?;
    open_gate()?;
    parked.kill().ctx("kill")?;
    expect_end(&parked, "parked", (ExitKind::Killed, 0))?;
    parked.close().ctx("close")?;
    let mut t = t;
    t.join().ctx("join")?;
    t.close().ctx("close")?;
    rt::println!("hostile-cap: {} spawn-cap checks held", c.count);
    Ok(())
}

/// The joiner thread's own handle slot, published after spawn.
static OWN_SLOT: AtomicU64 = AtomicU64::new(u64::MAX);
/// Set once the self-joiner's join was submitted.
static SUBMITTED: AtomicU32 = AtomicU32::new(0);

/// How long a self-join may take to fail before it counts as hung (a hang
/// detector: an honest answer is immediate).
const SELF_JOIN_LIMIT_NS: u64 = 3000 * MS;

/// A thread joins its own handle: the join must fail at once (it can never
/// complete), and the real joiner must still get the thread's value.
fn self_join(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    OWN_SLOT.store(u64::MAX, Ordering::Release);
    let mut t = thread::spawn(move || {
        let slot = loop {
            let s = OWN_SLOT.load(Ordering::Acquire);
            if s != u64::MAX {
                break s;
            }
            core::hint::spin_loop();
        };
        let Ok(slot) = u32::try_from(slot) else {
            return 9;
        };
        let Ok(join) = sys::submit(sys::sqe(Op::ThreadJoin, slot, &[])) else {
            return 8;
        };
        let Ok(limit) = sys::submit(sys::sqe(Op::TimerSleep, timer, &[SELF_JOIN_LIMIT_NS])) else {
            return 7;
        };
        SUBMITTED.store(1, Ordering::Release);
        loop {
            let c = sys::next_completion();
            if c.user_data == limit {
                return 1; // the self-join never answered
            }
            if c.user_data == join {
                // 100 + the error code: it failed, as it must.
                return if c.result < 0 { 100 - c.result } else { 2 };
            }
        }
    })
    .ctx("spawn self-joiner")?;
    OWN_SLOT.store(u64::from(t.slot()), Ordering::Release);
    // Join only after the thread's own join reached the kernel.
    while SUBMITTED.load(Ordering::Acquire) == 0 {
        core::hint::spin_loop();
    }
    let v = t.join();
    if v == Err(Error::Busy) {
        // The self-join took the handle's one join (it can never complete).
        let _ = t.close();
        smoke::fail!("a thread's join on its own handle was accepted: the real join got busy");
    }
    let _ = t.close();
    match v {
        Ok(code @ 101..=199) => {
            let e = Error::from_result(100 - code).map_or("unknown", Error::name);
            rt::println!("hostile-cap: a self-join failed with {}", e);
            Ok(())
        }
        Ok(1) => smoke::fail!("a thread's join on its own handle never completed"),
        Ok(2) => smoke::fail!("a thread's join on its own handle succeeded"),
        Ok(other) => smoke::fail!("self-joiner ended {}", other),
        Err(e) => smoke::fail!("joining the self-joiner: {}", e.name()),
    }
}
