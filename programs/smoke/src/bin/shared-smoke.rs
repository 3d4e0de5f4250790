//! `shared-smoke`: memory objects and park words shared across processes.
//!
//! Run without arguments (console, timer, spawner) it checks, spawning
//! itself in child roles and passing memory objects through Spawn's caps:
//!
//! - a stale handle: after CapClose, the slot fails with BadSlot; closing
//!   the last handle of a mapped object keeps the mapping usable, and
//!   unmapping it gives every frame back;
//! - a park on a word of a mapping that this process unmaps wakes with
//!   `Unmapped`; an unpark through a second mapping of the same object
//!   (another address, same process) wakes a park made through the first;
//! - hostile arguments: sizes 0 and past `MEMOBJ_PAGES_MAX`, unknown flag
//!   and rights bits (`Invalid`), fixed addresses unaligned, outside the
//!   window or overlapping (`BadAddress` / `Invalid`), unmapping what is
//!   not a mapping start (`BadAddress`), memory-object operations on other
//!   kinds and other operations on a memory object (`Denied`), creating
//!   objects until the budget says `NoMemory`, mapping one object until
//!   the per-space limit says `NoMemory`; afterwards every frame is back;
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
    two_mappings()?;
    hostile(console)?;
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

fn two_mappings() -> Result<(), Fail> {
    let obj = MemObject::create(2).ctx("create")?;
    let a = obj.map(true).ctx("map a")?;
    let b = obj.map(false).ctx("map b")?;
    ensure!(a.addr() != b.addr(), "two mappings at one address");
    let token = sys::submit(sys::sqe(
        Op::Park,
        SELF_SLOT,
        &[a.addr() + 4096 + PARK_WORD, 0, TIMEOUT_NEVER],
    ))
    .ctx("submit park")?;
    // Same object and offset through the read-only mapping: same word.
    let woken = sys::unpark(word(&b, 4096 + PARK_WORD)?, 1).ctx("unpark")?;
    ensure!(
        woken == 1,
        "unpark through the second mapping woke {}",
        woken
    );
    let c = sys::wait_for(token);
    sys::check(&c).ctx("park")?;
    ensure!(
        ParkResult::from_raw(c.value0) == Some(ParkResult::Woken),
        "park ended with {}",
        c.value0
    );
    // A different offset is a different word.
    let woken = sys::unpark(word(&b, PARK_WORD)?, 1).ctx("unpark")?;
    ensure!(woken == 0, "unpark of another word woke {}", woken);
    a.unmap().ctx("unmap a")?;
    b.unmap().ctx("unmap b")?;
    obj.close().ctx("close")?;
    Ok(())
}

fn expect_err(
    what: &str,
    got: Result<impl core::fmt::Debug, Error>,
    want: Error,
) -> Result<(), Fail> {
    match got {
        Err(e) if e == want => Ok(()),
        other => fail!(
            "{}: {:?}, expected {}",
            what,
            other.map(|_| ()),
            want.name()
        ),
    }
}

fn hostile(console: u32) -> Result<(), Fail> {
    use abi::layout::{OBJ_BASE, OBJ_END};
    use abi::limits::{MEMOBJ_MAPPINGS_MAX, MEMOBJ_PAGES_MAX};
    let before = free_frames()?;
    expect_err("create 0", sys::memobj_create(0), Error::Invalid)?;
    expect_err(
        "create too big",
        sys::memobj_create(MEMOBJ_PAGES_MAX + 1),
        Error::Invalid,
    )?;
    expect_err(
        "create u64::MAX",
        sys::memobj_create(u64::MAX),
        Error::Invalid,
    )?;
    let obj = MemObject::create(2).ctx("create")?;
    let s = obj.slot();
    expect_err("map flags", sys::memobj_map(s, 4, 0), Error::Invalid)?;
    expect_err(
        "map fixed unaligned",
        sys::memobj_map(s, 3, OBJ_BASE + 8),
        Error::BadAddress,
    )?;
    expect_err(
        "map fixed below",
        sys::memobj_map(s, 3, OBJ_BASE - 4096),
        Error::BadAddress,
    )?;
    expect_err(
        "map fixed past end",
        sys::memobj_map(s, 3, OBJ_END - 4096),
        Error::BadAddress,
    )?;
    expect_err(
        "map fixed kernel",
        sys::memobj_map(s, 3, 0xffff_8000_0000_0000),
        Error::BadAddress,
    )?;
    let fixed = OBJ_BASE + 0x20_0000_0000;
    let m = obj.map_at(fixed, true).ctx("map fixed")?;
    ensure!(m.addr() == fixed, "fixed map at {:#x}", m.addr());
    expect_err(
        "map overlapping",
        sys::memobj_map(s, 3, fixed + 4096),
        Error::Invalid,
    )?;
    expect_err(
        "map overlapping below",
        sys::memobj_map(s, 3, fixed - 4096),
        Error::Invalid,
    )?;
    expect_err(
        "unmap inside",
        sys::memobj_unmap(fixed + 4096),
        Error::BadAddress,
    )?;
    expect_err(
        "unmap nothing",
        sys::memobj_unmap(OBJ_BASE + 0x30_0000_0000),
        Error::BadAddress,
    )?;
    expect_err(
        "unmap anon",
        sys::memobj_unmap(abi::layout::ANON_BASE),
        Error::BadAddress,
    )?;
    expect_err("restrict bits", sys::cap_restrict(s, 8), Error::Invalid)?;
    expect_err(
        "restrict on console",
        sys::cap_restrict(console, 1),
        Error::Denied,
    )?;
    expect_err("map console", sys::memobj_map(console, 0, 0), Error::Denied)?;
    expect_err("info on self", sys::memobj_info(SELF_SLOT), Error::Denied)?;
    expect_err(
        "create on memobj",
        smoke::raw_call(Op::MemObjCreate, s, &[1]),
        Error::Denied,
    )?;
    expect_err(
        "unmap on memobj",
        smoke::raw_call(Op::MemObjUnmap, s, &[fixed]),
        Error::Denied,
    )?;
    expect_err(
        "console write on memobj",
        sys::raw_console_write(s, fixed, 4),
        Error::Denied,
    )?;
    m.unmap().ctx("unmap fixed")?;
    // The window now has room again at that address.
    obj.map_at(fixed, false)
        .ctx("map fixed again")?
        .unmap()
        .ctx("unmap")?;
    // Mappings per space: at most MEMOBJ_MAPPINGS_MAX.
    let mut addrs = [0u64; MEMOBJ_MAPPINGS_MAX];
    for a in addrs.iter_mut() {
        *a = sys::memobj_map(s, 0, 0).ctx("map many")?;
    }
    expect_err(
        "map past the limit",
        sys::memobj_map(s, 0, 0),
        Error::NoMemory,
    )?;
    for a in addrs {
        sys::memobj_unmap(a).ctx("unmap many")?;
    }
    obj.close().ctx("close")?;
    // Objects until the budget (or memory) says no; then all back.
    let mut slots = [0u32; 64];
    let mut n = 0;
    let stop = loop {
        if n == slots.len() {
            fail!("64 objects of {} pages fit in the budget", MEMOBJ_PAGES_MAX);
        }
        match sys::memobj_create(MEMOBJ_PAGES_MAX) {
            Ok((slot, _)) => {
                slots[n] = slot;
                n += 1;
            }
            Err(e) => break e,
        }
    };
    ensure!(
        stop == Error::NoMemory && n > 0,
        "create stopped after {} with {}",
        n,
        stop.name()
    );
    for slot in &slots[..n] {
        sys::cap_close(*slot).ctx("close object")?;
    }
    let after = free_frames()?;
    ensure!(
        after == before,
        "frames: {} before, {} after",
        before,
        after
    );
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
