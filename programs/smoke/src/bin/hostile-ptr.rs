//! `hostile-ptr`: bad user pointers fail their submission, nothing else.
//!
//! Every operation that takes a pointer gets the whole catalogue of bad
//! addresses: the kernel half, non-canonical values, unmapped user pages
//! (the null page, a hole, the stack guard, the gap after a ring), ranges
//! straddling a mapped/unmapped boundary or the user/kernel boundary,
//! lengths that wrap past 2^64, zero lengths and unaligned park words.
//! Operations: ConsoleWrite, Spawn (the block, its name, argv array and
//! strings, caps array), StatsBusy (also into read-only memory), Park and
//! Unpark, ThreadSpawn (entry, stack, TLS), SetTls, MemMap and MemUnmap.
//! Each must complete with `BadAddress` or `Invalid` (exactly the one the
//! ABI names), and the process carries on: afterwards its memory, ring and
//! console still work.
//!
//! Child modes (first argument) start a thread whose entry or stack is an
//! unmapped user address: the kernel accepts such a spawn (the address is a
//! user address), so the thread faults and the process ends `Faulted`,
//! which the parent checks. Any other mode exits 0 at once.
#![no_std]
#![no_main]

use abi::caps::CapKind;
use abi::layout::{MAIN_STACK_SIZE, MAIN_STACK_TOP, PAGE_SIZE, STARTUP_ADDR, USER_END};
use abi::op::{ExitKind, Op, SpawnArgs, UserStr, CONSOLE_WRITE_MAX, SPAWN_MAX_STR};
use abi::ring::RING_BYTES;
use core::sync::atomic::AtomicU32;
use rt::{process, sys, tls, Args, Error};
use smoke::{ensure, need_cap, raw_call, Checks, Ctx, Fail};

rt::entry!(main);

const NAME: &str = "hostile-ptr";
const SELF: u32 = abi::caps::SELF_SLOT;

/// Addresses no user access may reach, with a name for failure reasons.
/// Each is bad for any length from 1 to 16 bytes.
const BAD: [(&str, u64); 9] = [
    ("kernel-half", 0xffff_8000_0000_0000),
    ("kernel-top", 0xffff_ffff_ffff_f000),
    ("noncanon-user-end", USER_END),
    ("noncanon-high", 0x8000_0000_0000_0000),
    ("noncanon-mid", 0x1234_5678_9abc_def0),
    ("unmapped-hole", 0x0000_4000_0000_0000),
    ("null-page", 0x10),
    ("stack-guard", MAIN_STACK_TOP - MAIN_STACK_SIZE - 16),
    ("wrap", u64::MAX - 7),
];

/// Addresses in the kernel half or not canonical: bad for every operation,
/// even those (ThreadSpawn, SetTls) that only check "is a user address".
const NOT_USER: [(&str, u64); 5] = [
    ("kernel-half", 0xffff_8000_0000_0000),
    ("kernel-top", 0xffff_ffff_ffff_f000),
    ("noncanon-user-end", USER_END),
    ("noncanon-high", 0x8000_0000_0000_0000),
    ("noncanon-mid", 0x1234_5678_9abc_def0),
];

fn main(a: &Args) -> i64 {
    match a.get(0) {
        None => smoke::run("hostile-ptr", a, body),
        Some("bad-entry") => bad_thread(0x10, 0),
        Some("bad-stack") => bad_thread(0, 0x10),
        Some(_) => 0,
    }
}

/// Memory the checks use: one mapped page with an unmapped guard page
/// right after it (MemMap leaves one after every area).
struct Page {
    base: u64,
}

impl Page {
    fn end(&self) -> u64 {
        self.base + PAGE_SIZE
    }
}

fn body(a: &Args) -> Result<(), Fail> {
    let console = need_cap(a, CapKind::Console)?;
    let spawner = need_cap(a, CapKind::Spawner)?;
    let stats = need_cap(a, CapKind::Stats)?;
    let base = sys::mem_map(PAGE_SIZE).ctx("mem-map")?;
    // SAFETY: the page was just mapped for us, writable; touching it makes
    // it present, so the page after it is the first unmapped one.
    unsafe { core::ptr::write_volatile(base as *mut u64, 0x5eed) };
    let page = Page { base };
    let mut c = Checks::default();
    console_write(&mut c, console, &page)?;
    spawn(&mut c, spawner, &page)?;
    stats_busy(&mut c, stats, &page)?;
    park(&mut c, &page)?;
    threads(&mut c, spawner)?;
    memory(&mut c, &page)?;
    // Everything still works.
    // SAFETY: the page is still ours (every unmap above failed).
    let v = unsafe { core::ptr::read_volatile(base as *const u64) };
    ensure!(v == 0x5eed, "mapped page changed to {:#x}", v);
    sys::mem_unmap(base, PAGE_SIZE).ctx("final unmap")?;
    sys::nop(SELF).ctx("nop after bad pointers")?;
    rt::println!("hostile-ptr: {} bad-pointer checks held", c.count);
    Ok(())
}

/// ConsoleWrite(ptr, len).
fn console_write(c: &mut Checks, console: u32, page: &Page) -> Result<(), Fail> {
    let w = |ptr: u64, len: u64| raw_call(Op::ConsoleWrite, console, &[ptr, len]);
    for (case, addr) in BAD {
        c.err("console-write", case, w(addr, 16), Error::BadAddress)?;
        c.err("console-write 1 byte", case, w(addr, 1), Error::BadAddress)?;
    }
    let straddles = [
        ("straddle-mapped", page.end() - 8),
        ("straddle-user-end", USER_END - 8),
    ];
    for (case, addr) in straddles {
        c.err("console-write", case, w(addr, 16), Error::BadAddress)?;
    }
    let ring_gap = tls::current().ring().addr() as u64 + RING_BYTES;
    c.err(
        "console-write",
        "ring-gap",
        w(ring_gap, 8),
        Error::BadAddress,
    )?;
    // Lengths past the limit (the ABI's Invalid) and lengths that wrap.
    c.err(
        "console-write",
        "len-max+1",
        w(page.base, CONSOLE_WRITE_MAX + 1),
        Error::Invalid,
    )?;
    c.err(
        "console-write",
        "len-wraps",
        w(page.base, u64::MAX - page.base + 16),
        Error::Invalid,
    )?;
    c.err(
        "console-write",
        "len-u64-max",
        w(page.base, u64::MAX),
        Error::Invalid,
    )?;
    // Zero length: the ABI does not say; nothing may break.
    for (case, addr) in [
        ("zero-kernel", BAD[0].1),
        ("zero-null", 0),
        ("zero-wrap", u64::MAX),
    ] {
        c.one_of(
            "console-write",
            case,
            w(addr, 0),
            &[Error::BadAddress],
            true,
        )?;
    }
    // Reading read-only data is fine.
    let line = b"hostile-ptr: console write from read-only data\n";
    let n = c.ok(
        "console-write",
        "from-rodata",
        w(line.as_ptr() as u64, line.len() as u64),
    )?;
    ensure!(
        u64::try_from(n) == Ok(line.len() as u64),
        "wrote {} bytes",
        n
    );
    Ok(())
}

/// Spawn: the block, then every pointer inside it.
fn spawn(c: &mut Checks, spawner: u32, page: &Page) -> Result<(), Fail> {
    let s = |ptr: u64| raw_call(Op::Spawn, spawner, &[ptr]);
    for (case, addr) in BAD {
        c.err("spawn-block", case, s(addr), Error::BadAddress)?;
    }
    // The block straddles the end of the mapped page.
    let at = page.end() - 24;
    c.err("spawn-block", "straddle-mapped", s(at), Error::BadAddress)?;
    c.err(
        "spawn-block",
        "straddle-user-end",
        s(USER_END - 24),
        Error::BadAddress,
    )?;

    let name = UserStr {
        ptr: NAME.as_ptr() as u64,
        len: NAME.len() as u64,
    };
    let good = SpawnArgs {
        name,
        ..SpawnArgs::default()
    };
    let bad_str = |ptr: u64, len: u64| UserStr { ptr, len };
    let try_block = |c: &mut Checks, what: &str, case: &str, b: SpawnArgs, want: Error| {
        let r = sys::spawn(spawner, &b).map(|(slot, _)| i64::from(slot));
        if let Ok(slot) = r {
            // A wrongly accepted spawn: end the child before failing.
            let slot = u32::try_from(slot).unwrap_or(0);
            let _ = sys::proc_kill(slot);
            let _ = sys::proc_wait(slot);
            let _ = sys::cap_close(slot);
        }
        c.err(what, case, r, want)
    };
    for (case, addr) in BAD {
        let mut b = good;
        b.name = bad_str(addr, 8);
        try_block(c, "spawn-name", case, b, Error::BadAddress)?;
    }
    let mut b = good;
    b.name = bad_str(page.end() - 4, 8);
    try_block(c, "spawn-name", "straddle-mapped", b, Error::BadAddress)?;
    b.name = bad_str(name.ptr, SPAWN_MAX_STR + 1);
    try_block(c, "spawn-name", "too-long", b, Error::Invalid)?;
    b.name = bad_str(name.ptr, u64::MAX);
    try_block(c, "spawn-name", "len-u64-max", b, Error::Invalid)?;

    // argv: the array pointer, its length, and the strings it points at.
    let argv_one = [bad_str(BAD[0].1, 4)];
    for (case, addr) in BAD {
        let mut b = good;
        b.argv = addr;
        b.argc = 1;
        try_block(c, "spawn-argv", case, b, Error::BadAddress)?;
    }
    let mut b = good;
    b.argv = page.end() - 8;
    b.argc = 1;
    try_block(c, "spawn-argv", "straddle-mapped", b, Error::BadAddress)?;
    b.argv = argv_one.as_ptr() as u64;
    try_block(c, "spawn-argv-str", "kernel-half", b, Error::BadAddress)?;
    b.argc = u64::MAX;
    try_block(c, "spawn-argv", "argc-u64-max", b, Error::Invalid)?;
    b.argc = abi::op::SPAWN_MAX_ARGS + 1;
    try_block(c, "spawn-argv", "argc-max+1", b, Error::Invalid)?;
    for (case, addr) in BAD {
        let argv = [bad_str(addr, 4)];
        let mut b = good;
        b.argv = argv.as_ptr() as u64;
        b.argc = 1;
        try_block(c, "spawn-argv-str", case, b, Error::BadAddress)?;
    }
    let argv = [bad_str(name.ptr, u64::MAX)];
    let mut b = good;
    b.argv = argv.as_ptr() as u64;
    b.argc = 1;
    try_block(c, "spawn-argv-str", "len-u64-max", b, Error::Invalid)?;

    // caps: the slot array.
    for (case, addr) in BAD {
        let mut b = good;
        b.caps = addr;
        b.ncaps = 1;
        try_block(c, "spawn-caps", case, b, Error::BadAddress)?;
    }
    let mut b = good;
    b.caps = page.end() - 2;
    b.ncaps = 1;
    try_block(c, "spawn-caps", "straddle-mapped", b, Error::BadAddress)?;
    b.caps = page.base;
    b.ncaps = u64::MAX;
    try_block(c, "spawn-caps", "ncaps-u64-max", b, Error::Invalid)?;
    Ok(())
}

/// StatsBusy(buf, n): a write into user memory.
fn stats_busy(c: &mut Checks, stats: u32, page: &Page) -> Result<(), Fail> {
    let sb = |ptr: u64, n: u64| raw_call(Op::StatsBusy, stats, &[ptr, n]);
    for (case, addr) in BAD {
        c.err("stats-busy", case, sb(addr, 1), Error::BadAddress)?;
    }
    let text = main as *const () as u64;
    c.err(
        "stats-busy",
        "read-only-text",
        sb(text, 1),
        Error::BadAddress,
    )?;
    c.err(
        "stats-busy",
        "read-only-startup",
        sb(STARTUP_ADDR, 1),
        Error::BadAddress,
    )?;
    c.err(
        "stats-busy",
        "straddle-user-end",
        sb(USER_END - 8, 2),
        Error::BadAddress,
    )?;
    let (cpus, _) = sys::sys_info().ctx("sys-info")?;
    let straddle = sb(page.end() - 8, 2);
    if cpus >= 2 {
        c.err("stats-busy", "straddle-mapped", straddle, Error::BadAddress)?;
    } else {
        // One CPU: only 8 bytes are written, all in the mapped page.
        c.ok("stats-busy", "one-cpu-at-page-end", straddle)?;
    }
    c.one_of(
        "stats-busy",
        "zero-kernel",
        sb(BAD[0].1, 0),
        &[Error::BadAddress],
        true,
    )?;
    // A huge count is clamped to the CPUs there are.
    let mut buf = [0u64; 256];
    let n = c.ok(
        "stats-busy",
        "n-u64-max",
        sb(buf.as_mut_ptr() as u64, u64::MAX),
    )?;
    ensure!(
        u64::try_from(n) == Ok(cpus),
        "stats-busy reported {} CPUs",
        n
    );
    Ok(())
}

/// Park(addr, expected, timeout) and Unpark(addr, count).
fn park(c: &mut Checks, page: &Page) -> Result<(), Fail> {
    let p = |addr: u64, expected: u64, timeout: u64| {
        raw_call(Op::Park, SELF, &[addr, expected, timeout])
    };
    for (case, addr) in BAD {
        // An aligned address of each class (the wrap case is aligned too).
        let addr = addr & !3;
        c.err("park", case, p(addr, 0, 0), Error::BadAddress)?;
        c.err(
            "park-forever",
            case,
            p(addr, 0, abi::TIMEOUT_NEVER),
            Error::BadAddress,
        )?;
    }
    let word = AtomicU32::new(0);
    let w = &word as *const AtomicU32 as u64;
    for off in 1..4 {
        let case = ["", "unaligned+1", "unaligned+2", "unaligned+3"][off as usize];
        c.err("park", case, p(w + off, 0, 0), Error::BadAddress)?;
    }
    c.err(
        "park",
        "page-end-unaligned",
        p(page.end() - 2, 0, 0),
        Error::BadAddress,
    )?;
    c.err("park", "expected>u32", p(w, 1 << 32, 0), Error::Invalid)?;
    c.err(
        "park",
        "expected-u64-max",
        p(w, u64::MAX, 0),
        Error::Invalid,
    )?;
    // A good word that does not hold the value never sleeps.
    let r = c.ok("park", "value-changed", p(w, 7, abi::TIMEOUT_NEVER))?;
    ensure!(r == 0, "park result {}", r);
    // Unpark does not read the word: an unmapped one wakes nobody.
    for (case, addr) in BAD {
        let r = raw_call(Op::Unpark, SELF, &[addr, u64::MAX]);
        c.one_of(
            "unpark",
            case,
            r,
            &[Error::BadAddress, Error::Invalid],
            true,
        )?;
        if let Ok(n) = r {
            ensure!(n == 0, "unpark {} woke {}", case, n);
        }
    }
    Ok(())
}

/// ThreadSpawn(entry, stack, arg, tls) and SetTls(base) with addresses
/// outside the user half; then children whose thread starts at an
/// unmapped entry or stack must end Faulted.
fn threads(c: &mut Checks, spawner: u32) -> Result<(), Fail> {
    let entry = rt::arch::thread_trampoline();
    let tls_block = tls::current() as *const tls::Tls as u64;
    let stack = MAIN_STACK_TOP - 4096;
    let ts = |e: u64, s: u64, t: u64| raw_call(Op::ThreadSpawn, SELF, &[e, s, 0, t]);
    for (case, addr) in NOT_USER {
        c.err(
            "thread-spawn-entry",
            case,
            ts(addr, stack, tls_block),
            Error::BadAddress,
        )?;
        c.err(
            "thread-spawn-stack",
            case,
            ts(entry, addr, tls_block),
            Error::BadAddress,
        )?;
        c.err(
            "thread-spawn-tls",
            case,
            ts(entry, stack, addr),
            Error::BadAddress,
        )?;
        c.err(
            "set-tls",
            case,
            raw_call(Op::SetTls, SELF, &[addr]),
            Error::BadAddress,
        )?;
    }
    // FS still points at our block.
    ensure!(
        tls::current() as *const tls::Tls as u64 == tls_block,
        "TLS moved"
    );
    for mode in ["bad-entry", "bad-stack"] {
        let child = process::spawn(spawner, NAME, &[mode], &[]).ctx("spawn child")?;
        let (kind, _) = child.wait().ctx("wait child")?;
        child.close().ctx("close child")?;
        c.count += 1;
        ensure!(
            kind == ExitKind::Faulted,
            "{}: child ended {:?}",
            mode,
            kind
        );
    }
    Ok(())
}

/// Child: a thread at an unmapped (user) entry or stack. The spawn itself
/// succeeds; the thread faults and ends the process. 0 would mean the
/// thread never faulted.
fn bad_thread(entry: u64, stack: u64) -> i64 {
    let entry = if entry == 0 {
        rt::arch::thread_trampoline()
    } else {
        entry
    };
    let tls_block = tls::current() as *const tls::Tls as u64;
    if raw_call(Op::ThreadSpawn, SELF, &[entry, stack, 0, tls_block]).is_err() {
        return 3;
    }
    // Wait for the fault to end us.
    loop {
        let _ = rt::arch::cap_enter(1, abi::TIMEOUT_NEVER);
    }
}

/// MemMap(len) and MemUnmap(addr, len): only exact MemMap areas unmap.
fn memory(c: &mut Checks, page: &Page) -> Result<(), Fail> {
    let map = |len: u64| raw_call(Op::MemMap, SELF, &[len]);
    c.err("mem-map", "zero", map(0), Error::Invalid)?;
    c.err("mem-map", "u64-max", map(u64::MAX), Error::Invalid)?;
    c.err("mem-map", "1GiB+1", map((1 << 30) + 1), Error::Invalid)?;
    let un = |addr: u64, len: u64| raw_call(Op::MemUnmap, SELF, &[addr, len]);
    for (case, addr) in BAD {
        c.err(
            "mem-unmap",
            case,
            un(addr & !(PAGE_SIZE - 1), PAGE_SIZE),
            Error::BadAddress,
        )?;
    }
    let ring = tls::current().ring().addr() as u64;
    let text = (main as *const () as u64) & !(PAGE_SIZE - 1);
    let cases = [
        ("len-wraps", page.base, u64::MAX),
        ("len-wraps-2", page.base, u64::MAX - page.base + PAGE_SIZE),
        ("top-wraps", u64::MAX - (PAGE_SIZE - 1), 2 * PAGE_SIZE),
        ("zero-len", page.base, 0),
        ("wrong-len", page.base, 2 * PAGE_SIZE),
        ("mid-area", page.base + 8, 8),
        ("guard-page", page.end(), PAGE_SIZE),
        ("ring", ring, RING_BYTES),
        ("text", text, PAGE_SIZE),
        ("stack", MAIN_STACK_TOP - PAGE_SIZE, PAGE_SIZE),
        ("startup", STARTUP_ADDR, PAGE_SIZE),
        ("straddle-user-end", USER_END - PAGE_SIZE, 2 * PAGE_SIZE),
    ];
    for (case, addr, len) in cases {
        c.err("mem-unmap", case, un(addr, len), Error::BadAddress)?;
    }
    // A real area unmaps once; the second time it is gone.
    let area = sys::mem_map(2 * PAGE_SIZE).ctx("mem-map area")?;
    c.ok("mem-unmap", "area", un(area, 2 * PAGE_SIZE))?;
    c.err(
        "mem-unmap",
        "twice",
        un(area, 2 * PAGE_SIZE),
        Error::BadAddress,
    )?;
    Ok(())
}
