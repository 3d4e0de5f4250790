//! `fault-smoke`: hostile programs end only themselves.
//!
//! Run without arguments (console, spawner), it spawns one child per fault
//! mode and checks that each ends as ExitKind::Faulted (the kernel prints
//! its FAULT line and goes on), then checks that bad submissions fail just
//! that submission (BadAddress, BadOpcode, BadSlot) and that children that
//! corrupt their ring's indices get an error back instead of crashing
//! anything.
//!
//! Child modes (first argument): the faults `null`, `null-write`,
//! `kernel-read`, `kernel-write`, `noncanonical`, `hlt`, `cli`, `ud2`,
//! `exec-data`, `write-text`, `below-stack`; and `garbage-sq`,
//! `garbage-cq`, which exit 0 when the kernel answered with an error.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::op::{ExitKind, Op, SpawnArgs};
use core::sync::atomic::Ordering;
use rt::process;
use rt::{sys, tls, Args, Error};
use smoke::{ensure, need_cap, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "fault-smoke";

const FAULTS: [&str; 11] = [
    "null",
    "null-write",
    "kernel-read",
    "kernel-write",
    "noncanonical",
    "hlt",
    "cli",
    "ud2",
    "exec-data",
    "write-text",
    "below-stack",
];

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run("fault", a, parent),
        Some("garbage-sq") => garbage_sq(),
        Some("garbage-cq") => garbage_cq(),
        Some(mode) => {
            fault(mode);
            // Still alive: the fault did not happen.
            7
        }
    }
}

/// A word in .data, for the execute-data fault.
static DATA_WORD: [u8; 16] = [0xc3; 16];

fn fault(mode: &str) {
    let read = |addr: u64| {
        // SAFETY: deliberately invalid: the test is that the kernel ends
        // this process with a fault instead of returning a value.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    };
    let write = |addr: u64| {
        // SAFETY: deliberately invalid, as above.
        unsafe { core::ptr::write_volatile(addr as *mut u64, 0xbad) }
    };
    match mode {
        "null" => {
            read(0);
        }
        "null-write" => write(8),
        "kernel-read" => {
            read(0xffff_8000_0000_0000);
        }
        "kernel-write" => write(0xffff_ffff_8000_0000),
        "noncanonical" => {
            read(0x8000_0000_0000_0000);
        }
        // SAFETY: a privileged instruction in ring 3: #GP, by design.
        "hlt" => unsafe { core::arch::asm!("hlt") },
        // SAFETY: as above.
        "cli" => unsafe { core::arch::asm!("cli") },
        // SAFETY: #UD, by design.
        "ud2" => unsafe { core::arch::asm!("ud2") },
        "exec-data" => {
            // SAFETY: jumping into a non-executable page: #PF, by design.
            let f: extern "C" fn() = unsafe { core::mem::transmute(DATA_WORD.as_ptr()) };
            f();
        }
        "write-text" => write(fault as *const () as u64),
        "below-stack" => {
            // Just under the main stack's lowest page: the guard page.
            let guard = abi::layout::MAIN_STACK_TOP - abi::layout::MAIN_STACK_SIZE - 8;
            write(guard);
        }
        _ => {}
    }
}

/// Publishes an SQ tail far ahead of the head; cap_enter must fail.
fn garbage_sq() -> i64 {
    let ring = tls::current().ring();
    let h = ring.header();
    let head = h.sq_head.load(Ordering::Acquire);
    h.sq_tail.store(head.wrapping_add(1000), Ordering::Release);
    let r = rt::arch::cap_enter(0, 0);
    // Nothing real is pending: make the tail equal the head, wherever the
    // kernel left the head.
    h.sq_tail
        .store(h.sq_head.load(Ordering::Acquire), Ordering::Release);
    if r >= 0 {
        return 2;
    }
    // The ring works again once the indices are sane.
    if sys::nop(0).is_err() {
        return 3;
    }
    0
}

/// Publishes a CQ head far past the tail; the kernel must not trust it.
/// Any answer but a crash is fine; the ring must work once restored.
fn garbage_cq() -> i64 {
    let ring = tls::current().ring();
    let h = ring.header();
    let head = h.cq_head.load(Ordering::Relaxed);
    h.cq_head.store(head.wrapping_add(5000), Ordering::Release);
    let _ = rt::arch::cap_enter(0, 0);
    let _ = rt::arch::cap_enter(1, 1_000_000);
    h.cq_head
        .store(h.cq_tail.load(Ordering::Acquire), Ordering::Release);
    if sys::nop(0).is_err() {
        return 3;
    }
    0
}

fn parent(a: &Args) -> Result<(), Fail> {
    let spawner = need_cap(a, CapKind::Spawner)?;
    let console = need_cap(a, CapKind::Console)?;
    let mut faulted = 0;
    for mode in FAULTS {
        let c = process::spawn(spawner, NAME, &[mode], &[]).ctx("spawn")?;
        let r = c.wait().ctx("wait")?;
        c.close().ctx("close")?;
        ensure!(
            r.0 == ExitKind::Faulted,
            "mode {} ended {:?}, want a fault",
            mode,
            r
        );
        faulted += 1;
    }
    for mode in ["garbage-sq", "garbage-cq"] {
        let c = process::spawn(spawner, NAME, &[mode], &[]).ctx("spawn")?;
        let r = c.wait().ctx("wait")?;
        c.close().ctx("close")?;
        ensure!(
            r == (ExitKind::Exited, 0),
            "mode {} ended {:?}, want exit 0",
            mode,
            r
        );
    }
    bad_submissions(console, spawner)?;
    rt::println!(
        "fault-smoke: {} faulting children ended as Faulted",
        faulted
    );
    Ok(())
}

/// Bad arguments fail just their submission; the process goes on.
fn bad_submissions(console: u32, spawner: u32) -> Result<(), Fail> {
    let r = sys::raw_console_write(console, 0x1000, 10);
    ensure!(
        r == Err(Error::BadAddress),
        "console write from page 1: {:?}",
        r
    );
    let r = sys::raw_console_write(console, 0xffff_8000_0010_0000, 10);
    ensure!(
        r == Err(Error::BadAddress),
        "console write from the kernel half: {:?}",
        r
    );
    let c = sys::call(sys::sqe(Op::Spawn, spawner, &[0x10]));
    ensure!(
        sys::check(&c) == Err(Error::BadAddress),
        "spawn with a null block: {:?}",
        c
    );
    let bad_name = SpawnArgs {
        name: abi::op::UserStr {
            ptr: 0xffff_8000_0000_0000,
            len: 4,
        },
        ..SpawnArgs::default()
    };
    let r = sys::spawn(spawner, &bad_name);
    ensure!(
        r == Err(Error::BadAddress),
        "spawn with a kernel-half name: {:?}",
        r
    );
    let r = process::spawn(spawner, "no-such-program", &[], &[]);
    ensure!(
        r.as_ref().err() == Some(&Error::NotFound),
        "spawn of a missing program: {:?}",
        r.map(|c| c.pid())
    );
    let c = sys::call(abi::ring::Sqe {
        opcode: 4242,
        ..Default::default()
    });
    ensure!(
        sys::check(&c) == Err(Error::BadOpcode),
        "unknown opcode: {:?}",
        c
    );
    let r = sys::timer_now(777);
    ensure!(r == Err(Error::BadSlot), "unknown slot: {:?}", r);
    let r = sys::cap_close(0);
    ensure!(r.is_err(), "closing the self slot was allowed");
    sys::nop(0).ctx("nop after bad submissions")?;
    Ok(())
}
