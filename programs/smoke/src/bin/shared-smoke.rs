//! `shared-smoke`: memory objects and park words shared across processes.
//!
//! Run without arguments (console, timer, spawner) it checks, spawning
//! itself in child roles and passing memory objects through Spawn's caps:
//!
//! - a stale handle: after CapClose, the slot fails with BadSlot; closing
//!   the last handle of a mapped object keeps the mapping usable, and
//!   unmapping it gives every frame back;
//! - a park on a word of a mapping that this process unmaps wakes with
//!   `Unmapped`;
//! - ping-pong: parent and child map one object at different addresses and
//!   pass the turn 10,000 times each way through a shared mutex and
//!   condvar; the shared counter ends at exactly 20,000;
//! - three child processes contend on one shared lock around a
//!   non-atomic read-modify-write; the counter is exact;
//! - read-only: a READ_ONLY handle cannot map writable (`Denied`), nor be
//!   widened by CapRestrict, nor passed on without TRANSFER; a child
//!   holding it reads what the parent wrote, gets `Denied` for a writable
//!   map, then writes and faults (ProcWait says Faulted, vector 14);
//! - killing one side while the other is parked: the survivor's park
//!   ends with `PeerGone`, and once both ended and the parent dropped the
//!   object, the free-frame count is what it was before.
#![no_std]
#![no_main]

use abi::caps::{CapKind, SELF_SLOT};
use abi::error::Error;
use abi::memobj::MemRights;
use abi::op::{ExitKind, Op, ParkResult};
use abi::TIMEOUT_NEVER;
use core::sync::atomic::Ordering;
use rt::memobj::{Mapping, MemObject, SharedCondvar, SharedMutex};
use rt::process::{self, Child};
use rt::{sys, Args};
use smoke::{ensure, fail, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "shared-smoke";
/// Ping-pong rounds each way.
const ROUNDS: u64 = 10_000;
/// Increments per contending process.
const CONTEND_ITERS: u64 = 2_000;
/// Contending processes.
const CONTENDERS: usize = 3;
/// Where the pong child maps the object (the parent lets the kernel pick,
/// which gives the bottom of the window).
const PONG_ADDR: u64 = abi::layout::OBJ_BASE + 0x10_0000_0000;
/// What the parent writes for the read-only child to find.
const MAGIC: u32 = 0x00c0_ffee;

// Layout of the shared page (byte offsets).
const MUTEX: u64 = 0;
const CONDVAR: u64 = 4;
const TURN: u64 = 8;
const COUNTER: u64 = 16;
const CHILD_ADDR: u64 = 24;
const PARK_WORD: u64 = 32;
const PARKED_FLAG: u64 = 36;
const VICTIM_WORD: u64 = 40;
const VICTIM_FLAG: u64 = 44;

fn main(args: &Args) -> i64 {
    match args.get(0) {
        Some(role) => child(role, args),
        None => smoke::run("shared", args, body),
    }
}

fn body(a: &Args) -> Result<(), Fail> {
    let timer = need_cap(a, CapKind::Timer)?;
    let spawner = need_cap(a, CapKind::Spawner)?;
    let console = need_cap(a, CapKind::Console)?;
    stale_handle()?;
    unmap_wakes()?;
    ping_pong(spawner, console)?;
    contention(spawner, console)?;
    read_only(spawner, console)?;
    kill_parked(spawner, console, timer)?;
    Ok(())
}

fn word(m: &Mapping, off: u64) -> Result<&core::sync::atomic::AtomicU32, Fail> {
    match m.u32_at(off) {
        Some(w) => Ok(w),
        None => fail!("word at {} outside the mapping", off),
    }
}

fn wide(m: &Mapping, off: u64) -> Result<&core::sync::atomic::AtomicU64, Fail> {
    match m.u64_at(off) {
        Some(w) => Ok(w),
        None => fail!("u64 at {} outside the mapping", off),
    }
}

fn free_frames() -> Result<u64, Fail> {
    Ok(sys::mem_stats().ctx("mem-stats")?.0)
}

fn stale_handle() -> Result<(), Fail> {
    let before = free_frames()?;
    let obj = MemObject::create(4).ctx("create")?;
    let (len, rights) = obj.info().ctx("info")?;
    ensure!(
        len == 4 * 4096 && rights == MemRights::ALL,
        "info: {} {:?}",
        len,
        rights
    );
    let copy = obj.restrict(MemRights::READ_ONLY).ctx("restrict")?;
    let stale = copy.slot();
    copy.close().ctx("close copy")?;
    let got = sys::memobj_info(stale);
    ensure!(
        got == Err(Error::BadSlot),
        "info on a closed handle: {:?}",
        got
    );
    let got = sys::memobj_map(stale, 0, 0);
    ensure!(
        got == Err(Error::BadSlot),
        "map of a closed handle: {:?}",
        got
    );
    // The mapping keeps the object alive after its last handle goes.
    let m = obj.map(true).ctx("map")?;
    obj.close().ctx("close")?;
    word(&m, 4 * 4096 - 4)?.store(7, Ordering::Release);
    ensure!(
        word(&m, 4 * 4096 - 4)?.load(Ordering::Acquire) == 7,
        "mapping lost its object"
    );
    let got = sys::memobj_unmap(m.addr() + 4096);
    ensure!(
        got == Err(Error::BadAddress),
        "unmap inside a mapping: {:?}",
        got
    );
    m.unmap().ctx("unmap")?;
    let after = free_frames()?;
    ensure!(
        after == before,
        "frames: {} before, {} after",
        before,
        after
    );
    Ok(())
}

fn unmap_wakes() -> Result<(), Fail> {
    let obj = MemObject::create(1).ctx("create")?;
    let m = obj.map(true).ctx("map")?;
    let addr = m.addr() + PARK_WORD;
    let token =
        sys::submit(sys::sqe(Op::Park, SELF_SLOT, &[addr, 0, TIMEOUT_NEVER])).ctx("submit park")?;
    m.unmap().ctx("unmap")?;
    let c = sys::wait_for(token);
    sys::check(&c).ctx("park")?;
    ensure!(
        ParkResult::from_raw(c.value0) == Some(ParkResult::Unmapped),
        "park on an unmapped word ended with {}",
        c.value0
    );
    obj.close().ctx("close")?;
    Ok(())
}

fn spawn(spawner: u32, args: &[&str], caps: &[u32]) -> Result<Child, Fail> {
    process::spawn(spawner, NAME, args, caps).ctx("spawn")
}

fn expect_exit(c: Child, what: &str, kind: ExitKind, status: i64) -> Result<(), Fail> {
    let (k, s) = c.wait().ctx("wait")?;
    c.close().ctx("close child")?;
    ensure!(
        k == kind && s == status,
        "{}: ended {:?} {}, expected {:?} {}",
        what,
        k,
        s,
        kind,
        status
    );
    Ok(())
}

/// One side of the ping-pong: `rounds` times, wait for `me`'s turn, bump
/// the counter, hand the turn over.
fn play(m: &Mapping, me: u32, rounds: u64) -> Result<(), Fail> {
    let lock = SharedMutex::new(word(m, MUTEX)?);
    let cv = SharedCondvar::new(word(m, CONDVAR)?);
    let turn = word(m, TURN)?;
    let counter = wide(m, COUNTER)?;
    for _ in 0..rounds {
        let mut g = lock.lock().ctx("lock")?;
        while turn.load(Ordering::Acquire) != me {
            let (g2, r) = cv.wait(g).ctx("wait")?;
            g = g2;
            ensure!(r != ParkResult::PeerGone, "the other side ended");
        }
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        turn.store(1 - me, Ordering::Release);
        cv.notify_one();
        drop(g);
    }
    Ok(())
}

fn ping_pong(spawner: u32, console: u32) -> Result<(), Fail> {
    let obj = MemObject::create(1).ctx("create")?;
    let m = obj.map(true).ctx("map")?;
    let rounds = smoke::num(ROUNDS);
    let c = spawn(spawner, &["pong", rounds.as_str()], &[console, obj.slot()])?;
    play(&m, 0, ROUNDS)?;
    expect_exit(c, "pong", ExitKind::Exited, 0)?;
    let total = wide(&m, COUNTER)?.load(Ordering::Acquire);
    ensure!(total == 2 * ROUNDS, "ping-pong counter {}", total);
    let theirs = wide(&m, CHILD_ADDR)?.load(Ordering::Acquire);
    ensure!(
        theirs == PONG_ADDR && theirs != m.addr(),
        "mapped at {:#x} here and {:#x} there",
        m.addr(),
        theirs
    );
    rt::println!(
        "shared-smoke: ping-pong {} rounds, here {:#x}, there {:#x}",
        total,
        m.addr(),
        theirs
    );
    m.unmap().ctx("unmap")?;
    obj.close().ctx("close")?;
    Ok(())
}

fn contention(spawner: u32, console: u32) -> Result<(), Fail> {
    let obj = MemObject::create(1).ctx("create")?;
    let m = obj.map(true).ctx("map")?;
    let iters = smoke::num(CONTEND_ITERS);
    let mut kids: [Option<Child>; CONTENDERS] = [const { None }; CONTENDERS];
    for k in kids.iter_mut() {
        *k = Some(spawn(
            spawner,
            &["contend", iters.as_str()],
            &[console, obj.slot()],
        )?);
    }
    for k in kids.iter_mut() {
        if let Some(c) = k.take() {
            expect_exit(c, "contender", ExitKind::Exited, 0)?;
        }
    }
    let total = wide(&m, COUNTER)?.load(Ordering::Acquire);
    ensure!(
        total == CONTENDERS as u64 * CONTEND_ITERS,
        "contended counter {}",
        total
    );
    m.unmap().ctx("unmap")?;
    obj.close().ctx("close")?;
    Ok(())
}

fn read_only(spawner: u32, console: u32) -> Result<(), Fail> {
    let obj = MemObject::create(1).ctx("create")?;
    let m = obj.map(true).ctx("map")?;
    word(&m, 0)?.store(MAGIC, Ordering::Release);
    let ro = obj.restrict(MemRights::READ_ONLY).ctx("restrict")?;
    let (_, rights) = ro.info().ctx("info")?;
    ensure!(rights == MemRights::READ_ONLY, "restricted to {:?}", rights);
    let got = ro.map(true).map(|_| ());
    ensure!(
        got.is_err_and(|e| e == Error::Denied),
        "read-only mapped writable: {:?}",
        got
    );
    let got = ro.restrict(MemRights::ALL).map(|_| ());
    ensure!(
        got.is_err_and(|e| e == Error::Denied),
        "read-only widened: {:?}",
        got
    );
    // Without TRANSFER a handle stays home.
    let home = ro.restrict(MemRights::READ).ctx("restrict read")?;
    let got = process::spawn(spawner, NAME, &["ro"], &[console, home.slot()]).map(|_| ());
    ensure!(
        got.is_err_and(|e| e == Error::Denied),
        "spawn with an untransferable handle: {:?}",
        got
    );
    home.close().ctx("close")?;
    let c = spawn(spawner, &["ro"], &[console, ro.slot()])?;
    // The child's store to its read-only mapping is a page fault (#PF, 14).
    expect_exit(c, "read-only child", ExitKind::Faulted, 14)?;
    ensure!(
        word(&m, 0)?.load(Ordering::Acquire) == MAGIC,
        "read-only child changed the page"
    );
    ro.close().ctx("close")?;
    m.unmap().ctx("unmap")?;
    obj.close().ctx("close")?;
    Ok(())
}

fn wait_flag(m: &Mapping, off: u64, timer: u32) -> Result<(), Fail> {
    let w = word(m, off)?;
    // Bounded: a child that never sets its flag failed (the guest
    // watchdog is the backstop; this is not a timing assertion).
    for _ in 0..100_000 {
        if w.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        sys::sleep(timer, 1_000_000).ctx("sleep")?;
    }
    fail!("child never set flag {}", off)
}

fn kill_parked(spawner: u32, console: u32, timer: u32) -> Result<(), Fail> {
    let before = free_frames()?;
    let obj = MemObject::create(2).ctx("create")?;
    let m = obj.map(true).ctx("map")?;
    let victim = spawn(spawner, &["victim"], &[console, obj.slot()])?;
    wait_flag(&m, VICTIM_FLAG, timer)?;
    let parker = spawn(spawner, &["parker"], &[console, obj.slot()])?;
    wait_flag(&m, PARKED_FLAG, timer)?;
    // Both are parked now (each set its flag after its park was queued).
    victim.kill().ctx("kill")?;
    expect_exit(victim, "victim", ExitKind::Killed, 0)?;
    expect_exit(parker, "parker", ExitKind::Exited, 0)?;
    m.unmap().ctx("unmap")?;
    obj.close().ctx("close")?;
    let after = free_frames()?;
    ensure!(
        after == before,
        "frames: {} before, {} after",
        before,
        after
    );
    Ok(())
}

// ---- child roles ----

fn child(role: &str, a: &Args) -> i64 {
    match child_body(role, a) {
        Ok(()) => 0,
        Err(f) => {
            rt::println!("shared-smoke {}: {}", role, f.0.as_str());
            1
        }
    }
}

fn child_obj(a: &Args) -> Result<MemObject, Fail> {
    Ok(MemObject::from_slot(need_cap(a, CapKind::MemObject)?))
}

/// Submits a park on `w` (expected 0, no deadline), lets the kernel
/// queue it, then sets `flag`: whoever sees the flag knows the park is
/// queued. Returns how the park ended.
fn park_then_flag(w: u64, flag: &core::sync::atomic::AtomicU32) -> Result<u64, Fail> {
    let token =
        sys::submit(sys::sqe(Op::Park, SELF_SLOT, &[w, 0, TIMEOUT_NEVER])).ctx("submit park")?;
    flag.store(1, Ordering::Release);
    let c = sys::wait_for(token);
    sys::check(&c).ctx("park")?;
    Ok(c.value0)
}

fn child_body(role: &str, a: &Args) -> Result<(), Fail> {
    let obj = child_obj(a)?;
    match role {
        "pong" => {
            let rounds = a.get_u64(1).unwrap_or(0);
            let m = obj.map_at(PONG_ADDR, true).ctx("map at")?;
            wide(&m, CHILD_ADDR)?.store(m.addr(), Ordering::Release);
            play(&m, 1, rounds)
        }
        "contend" => {
            let iters = a.get_u64(1).unwrap_or(0);
            let m = obj.map(true).ctx("map")?;
            let lock = SharedMutex::new(word(&m, MUTEX)?);
            let counter = wide(&m, COUNTER)?;
            for i in 0..iters {
                let g = lock.lock().ctx("lock")?;
                // A non-atomic read-modify-write: only the lock keeps it exact.
                let v = counter.load(Ordering::Relaxed);
                if i % 16 == 0 {
                    for _ in 0..200 {
                        core::hint::spin_loop();
                    }
                }
                counter.store(v + 1, Ordering::Relaxed);
                drop(g);
            }
            Ok(())
        }
        "ro" => {
            let got = obj.map(true).map(|_| ());
            ensure!(
                got.is_err_and(|e| e == Error::Denied),
                "writable map: {:?}",
                got
            );
            let m = obj.map(false).ctx("map read-only")?;
            let w = word(&m, 0)?;
            ensure!(
                w.load(Ordering::Acquire) == MAGIC,
                "read {:#x}",
                w.load(Ordering::Acquire)
            );
            // This store faults: the process ends here, Faulted.
            w.store(1, Ordering::Release);
            fail!("a store to a read-only mapping succeeded")
        }
        "victim" => {
            let m = obj.map(true).ctx("map")?;
            // Parked until killed; its death removes the park.
            park_then_flag(m.addr() + VICTIM_WORD, word(&m, VICTIM_FLAG)?)?;
            fail!("victim woke up")
        }
        "parker" => {
            let m = obj.map(true).ctx("map")?;
            let r = park_then_flag(m.addr() + PARK_WORD, word(&m, PARKED_FLAG)?)?;
            ensure!(
                r == ParkResult::PeerGone as u64,
                "parked survivor ended with {}",
                r
            );
            Ok(())
        }
        _ => fail!("unknown role"),
    }
}
