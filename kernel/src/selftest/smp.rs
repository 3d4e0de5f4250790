//! The SMP self-test (`selftests = ["smp"]`, manifests/smoke-smp.toml).
//!
//! Runs on the boot CPU after bring-up and checks, printing one SMOKE line
//! each, then `SMOKE smp PASS|FAIL`:
//! - `smp-online`: the online count equals the MADT's usable processors;
//! - `smp-ticks`: every CPU's timer ticks advance;
//! - `smp-ipi`: the wake IPI reaches every other CPU, and a call IPI
//!   ping-pongs between every ordered pair (round-trip TSC cycles printed);
//! - `smp-shootdown`: pages mapped in the kernel half, read by every CPU,
//!   remapped and shot down (by page list and by full flush) read back new
//!   everywhere; then every CPU shoots every other down at once, with
//!   interrupts off (the deadlock case);
//! - `smp-stop`: each other CPU is parked by an NMI (the stop path without
//!   the final halt), shown frozen, released and shown alive. The halt
//!   itself ends the machine, so it is exercised only by a real panic.
//! - `smp-selfipi`: an IPI this CPU sends itself (the x2APIC's SELF IPI
//!   MSR, or the xAPIC ICR's self shorthand) arrives.
//!
//! Last it prints one measurement, never judged (timing belongs to the
//! benchmarks; docs/architecture/smp.md has the table):
//! `APICBENCH mode=<xapic|x2apic> timer=<lapic|tsc-deadline> cpus=<n>
//! ipi_rtt=<cycles> self_ipi=<cycles> arm=<cycles> eoi=<cycles>`: the mean
//! call-IPI round trip over every ordered pair (0 on one CPU), a self IPI
//! from send to handler, one `time::arm_oneshot_ns`, and one EOI write.
//!
//! Reading the test pages needs raw pointers, hence the local allow.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use crate::mm::paging::{self, flags};
use crate::mm::{self, frame, kernel_space};
use crate::percpu::{stats, MAX_CPUS};
use crate::{arch, smp, time};

/// Ping-pong round trips per ordered pair.
const PING_ROUNDS: u64 = 4;
/// Simultaneous shootdowns each CPU sends in the storm.
const STORM_ROUNDS: u64 = 4;
/// Pages in the shootdown test (all flushed by one IPI per CPU).
const TEST_PAGES: usize = 4;
/// Where the test pages are mapped: in the shared MMIO window's PML4 slot,
/// 256 GiB in, far from the device mappings, so every CPU's tables see it.
const TEST_VA: u64 = mm::MMIO_BASE + (256 << 30);
/// Ticks every CPU must show, and how long that may take.
const TICKS_WANTED: u64 = 3;
const TICKS_TIMEOUT_NS: u64 = 3_000_000_000;
/// The one-shot timer test's delay.
const ONESHOT_NS: u64 = 5_000_000;
/// Bound on single waits (a wake IPI, a park).
const WAIT_NS: u64 = 2_000_000_000;
/// How long a parked CPU is watched for ticks.
const PARK_WATCH_NS: u64 = 30_000_000;

/// What each CPU read from the test pages.
static SEEN: [[AtomicU64; TEST_PAGES]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; TEST_PAGES] }; MAX_CPUS];
/// Pongs each CPU answered.
static PONGS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Round-trip cycles measured by each initiator (sum over its rounds).
static RTT_SUM: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// The mean round trip over every pair, from `ipi` (for APICBENCH).
static RTT_AVG: AtomicU64 = AtomicU64::new(0);
/// Self IPIs sent by `self_ipi` and the cycles they took in all.
static SELF_IPI_CYCLES: AtomicU64 = AtomicU64::new(0);
/// Repetitions of each APICBENCH measurement.
const BENCH_ROUNDS: u64 = 16;
/// What APICBENCH arms the timer for (far enough never to fire meanwhile).
const BENCH_ARM_NS: u64 = 1_000_000_000;

/// One check: Ok, or the reason it failed.
type Check = fn() -> Result<(), &'static str>;

/// Runs every check; true when all passed.
pub fn run() -> bool {
    let checks: [(&str, Check); 7] = [
        ("smp-online", online),
        ("smp-ticks", ticks),
        ("smp-oneshot", oneshot),
        ("smp-ipi", ipi),
        ("smp-selfipi", self_ipi),
        ("smp-shootdown", shootdown),
        ("smp-stop", stop),
    ];
    let mut first_failure = None;
    for (name, check) in checks {
        match check() {
            Ok(()) => kprintln!("SMOKE {name} PASS"),
            Err(reason) => {
                kprintln!("SMOKE {name} FAIL reason={reason}");
                first_failure.get_or_insert(reason);
            }
        }
    }
    bench();
    match first_failure {
        None => kprintln!("SMOKE smp PASS cpus={}", smp::cpu_count()),
        Some(reason) => kprintln!("SMOKE smp FAIL reason={reason}"),
    }
    first_failure.is_none()
}

/// Spins with interrupts on until `done` or `timeout_ns` passes (not
/// `hlt`: with a timer under test, nothing else may wake this CPU).
fn spin_with_interrupts(timeout_ns: u64, done: impl Fn() -> bool) {
    let deadline = time::deadline_after_ns(timeout_ns);
    arch::sti();
    while !done() && !time::passed(deadline) {
        core::hint::spin_loop();
    }
    arch::cli();
}

fn others() -> impl Iterator<Item = usize> {
    let me = arch::cpu_id();
    smp::bits(smp::online_mask()).filter(move |&c| c != me)
}

fn online() -> Result<(), &'static str> {
    kprintln!(
        "SMP online cpus={} expected={}",
        smp::cpu_count(),
        smp::expected_count()
    );
    if smp::cpu_count() != smp::expected_count() {
        return Err("online-count-differs-from-madt");
    }
    Ok(())
}

fn ticks() -> Result<(), &'static str> {
    let mask = smp::online_mask();
    // The APs already run the scheduler, which keeps their timers off when
    // idle (tickless): run the periodic tick on every CPU for this test
    // only, and stop it again afterwards.
    smp::call_on(mask, time::set_periodic, time::DEFAULT_TICK_HZ);
    let mut start = [0u64; MAX_CPUS];
    for c in smp::bits(mask) {
        start[c] = stats(c).ticks.load(Ordering::Relaxed);
    }
    let advanced = |c: usize| stats(c).ticks.load(Ordering::Relaxed) >= start[c] + TICKS_WANTED;
    // The boot CPU takes its own ticks only with interrupts on.
    spin_with_interrupts(TICKS_TIMEOUT_NS, || smp::bits(mask).all(advanced));
    for c in smp::bits(mask) {
        kprintln!(
            "SMP ticks cpu={} ticks={}",
            c,
            stats(c).ticks.load(Ordering::Relaxed) - start[c]
        );
    }
    let ok = smp::bits(mask).all(advanced);
    smp::call_on(mask & !(1 << arch::cpu_id()), |_| time::disarm(), 0);
    if ok {
        Ok(())
    } else {
        Err("ticks-stalled")
    }
}

/// The scheduler's timer API on this CPU: a one-shot fires once, then
/// stays quiet; the periodic tick comes back afterwards.
/// How long `oneshot` waits for a tick that was pending at `disarm`.
const DRAIN_NS: u64 = 20_000_000;

fn oneshot() -> Result<(), &'static str> {
    let me = arch::cpu_id();
    let count = || stats(me).ticks.load(Ordering::SeqCst);
    time::disarm();
    // A tick that was already pending when the timer stopped may still be
    // delivered: let it arrive before counting.
    spin_with_interrupts(DRAIN_NS, || false);
    let before = count();
    let t0 = time::now_ns();
    time::arm_oneshot_ns(ONESHOT_NS);
    spin_with_interrupts(TICKS_TIMEOUT_NS, || count() != before);
    let fired_after_ns = time::now_ns() - t0;
    let fired = count() > before;
    // A one-shot must not repeat: watch for a few more periods.
    let after_fire = count();
    spin_with_interrupts(ONESHOT_NS * 4, || false);
    let repeated = count() != after_fire;
    time::set_periodic(time::DEFAULT_TICK_HZ);
    kprintln!("SMP oneshot cpu={me} requested_ns={ONESHOT_NS} fired_after_ns={fired_after_ns} repeated={repeated}");
    match (fired, repeated) {
        (false, _) => Err("oneshot-never-fired"),
        (true, true) => Err("oneshot-repeated"),
        (true, false) if fired_after_ns < ONESHOT_NS / 2 => Err("oneshot-early"),
        _ => Ok(()),
    }
}

fn pong(_arg: u64) {
    PONGS[arch::cpu_id()].fetch_add(1, Ordering::SeqCst);
}

/// Runs on the initiator: `PING_ROUNDS` call round trips to CPU `target`.
fn ping(target: u64) {
    let mut sum = 0;
    for _ in 0..PING_ROUNDS {
        let t0 = time::now_tsc();
        smp::call_on(1 << target, pong, 0);
        sum += time::now_tsc().wrapping_sub(t0);
    }
    RTT_SUM[arch::cpu_id()].store(sum, Ordering::SeqCst);
}

fn ipi() -> Result<(), &'static str> {
    // The wake IPI reaches every other CPU out of `sti; hlt`.
    for c in others() {
        let before = stats(c).ipi_recv.load(Ordering::SeqCst);
        smp::send_resched(c);
        let deadline = time::deadline_after_ns(WAIT_NS);
        while stats(c).ipi_recv.load(Ordering::SeqCst) == before {
            if time::passed(deadline) {
                return Err("wake-ipi-lost");
            }
            core::hint::spin_loop();
        }
    }
    let me = arch::cpu_id();
    let mask = smp::online_mask();
    let (mut pairs, mut min, mut max, mut total) = (0u64, u64::MAX, 0u64, 0u64);
    for a in smp::bits(mask) {
        for b in smp::bits(mask).filter(|&b| b != a) {
            let pongs_before = PONGS[b].load(Ordering::SeqCst);
            if a == me {
                ping(b as u64);
            } else {
                smp::call_on(1 << a, ping, b as u64);
            }
            if PONGS[b].load(Ordering::SeqCst) != pongs_before + PING_ROUNDS {
                return Err("ping-pong-lost");
            }
            let rtt = RTT_SUM[a].load(Ordering::SeqCst) / PING_ROUNDS;
            kprintln!("SMP ipi from={a} to={b} rounds={PING_ROUNDS} rtt_cycles={rtt}");
            pairs += 1;
            min = min.min(rtt);
            max = max.max(rtt);
            total += rtt;
        }
    }
    if let Some(avg) = total.checked_div(pairs) {
        RTT_AVG.store(avg, Ordering::Relaxed);
        kprintln!(
            "SMP ipi pairs={pairs} rtt_cycles_min={min} rtt_cycles_avg={avg} rtt_cycles_max={max} rtt_ns_avg={}",
            time::tsc_to_ns(avg)
        );
    }
    Ok(())
}

/// `BENCH_ROUNDS` self IPIs (the wake vector), each waited for with
/// interrupts on.
fn self_ipi() -> Result<(), &'static str> {
    let me = arch::cpu_id();
    let recv = || stats(me).ipi_recv.load(Ordering::SeqCst);
    let mut total = 0u64;
    for _ in 0..BENCH_ROUNDS {
        let before = recv();
        let t0 = time::now_tsc();
        smp::send_resched(me);
        spin_with_interrupts(WAIT_NS, || recv() != before);
        total += time::now_tsc().wrapping_sub(t0);
        if recv() == before {
            return Err("self-ipi-lost");
        }
    }
    SELF_IPI_CYCLES.store(total / BENCH_ROUNDS, Ordering::Relaxed);
    Ok(())
}

/// The mean cycles of `BENCH_ROUNDS` runs of `f`.
fn mean_cycles(mut f: impl FnMut()) -> u64 {
    let t0 = time::now_tsc();
    for _ in 0..BENCH_ROUNDS {
        f();
    }
    time::now_tsc().wrapping_sub(t0) / BENCH_ROUNDS
}

/// Prints the APICBENCH line (see the module doc); interrupts stay off.
fn bench() {
    let arm = mean_cycles(|| time::arm_oneshot_ns(BENCH_ARM_NS));
    time::disarm();
    // An EOI with nothing in service changes nothing (SDM 11.8.5); it
    // costs the same register write as a real one.
    let eoi = match arch::apic::local() {
        Some(a) => mean_cycles(|| a.eoi()),
        None => 0,
    };
    let (mode, timer) = smp::mode_fields();
    kprintln!(
        "APICBENCH mode={mode} timer={timer} cpus={} ipi_rtt={} self_ipi={} arm={arm} eoi={eoi}",
        smp::cpu_count(),
        RTT_AVG.load(Ordering::Relaxed),
        SELF_IPI_CYCLES.load(Ordering::Relaxed)
    );
    time::set_periodic(time::DEFAULT_TICK_HZ);
}

fn test_va(i: usize) -> u64 {
    TEST_VA + i as u64 * mm::PAGE_SIZE
}

/// Each CPU reads every test page (through its TLB) into `SEEN`.
fn read_pages(_arg: u64) {
    let me = arch::cpu_id();
    for (i, slot) in SEEN[me].iter().enumerate() {
        // SAFETY: the test pages are mapped (kernel half, shared by every
        // CPU's tables) for the whole time any CPU runs this function.
        let v = unsafe { core::ptr::read_volatile(test_va(i) as *const u64) };
        slot.store(v, Ordering::SeqCst);
    }
}

/// Maps the test pages onto `frames`.
fn map_pages(frames: &[frame::Frame; TEST_PAGES]) -> Result<(), &'static str> {
    let root = kernel_space::kernel_pml4();
    for (i, f) in frames.iter().enumerate() {
        let _ = paging::unmap_4k(root, test_va(i));
        paging::map_4k(
            root,
            test_va(i),
            f.phys(),
            flags::WRITABLE | flags::NO_EXECUTE,
        )
        .map_err(|_| "map-failed")?;
    }
    Ok(())
}

/// Every online CPU reads the pages and must see `frames`' tags.
fn all_see(frames: &[frame::Frame; TEST_PAGES]) -> Result<(), &'static str> {
    smp::call_on(smp::online_mask(), read_pages, 0);
    for c in smp::bits(smp::online_mask()) {
        for (i, f) in frames.iter().enumerate() {
            if SEEN[c][i].load(Ordering::SeqCst) != tag(f) {
                kprintln!(
                    "SMP shootdown cpu={c} page={i} stale value={:#x}",
                    SEEN[c][i].load(Ordering::SeqCst)
                );
                return Err("stale-translation");
            }
        }
    }
    Ok(())
}

fn tag(f: &frame::Frame) -> u64 {
    0x5eed_0000_0000_0000 | f.phys()
}

/// Every CPU shoots every CPU down, all at once (called on each).
fn storm(_arg: u64) {
    let pages: [u64; TEST_PAGES] = core::array::from_fn(test_va);
    for r in 0..STORM_ROUNDS {
        let list: &[u64] = if r % 2 == 0 { &pages } else { &[] };
        smp::shootdown(smp::online_mask(), list);
    }
}

fn shootdown() -> Result<(), &'static str> {
    let alloc = || frame::alloc().ok_or("no-memory");
    let a: [frame::Frame; TEST_PAGES] = [alloc()?, alloc()?, alloc()?, alloc()?];
    let b: [frame::Frame; TEST_PAGES] = [alloc()?, alloc()?, alloc()?, alloc()?];
    for f in a.iter().chain(b.iter()) {
        // SAFETY: the frame was just allocated for this test and is reached
        // through the direct map; nothing else uses it.
        unsafe { core::ptr::write_volatile(f.virt() as *mut u64, tag(f)) };
    }
    let mask = smp::online_mask();
    let pages: [u64; TEST_PAGES] = core::array::from_fn(test_va);
    let before: u64 = smp::bits(mask)
        .map(|c| stats(c).shootdowns.load(Ordering::SeqCst))
        .sum();
    let result = (|| {
        map_pages(&a)?;
        all_see(&a)?;
        map_pages(&b)?;
        smp::shootdown(mask, &pages);
        all_see(&b)?;
        map_pages(&a)?;
        smp::shootdown(mask, &[]);
        all_see(&a)?;
        smp::call_on(mask, storm, 0);
        all_see(&a)
    })();
    let after: u64 = smp::bits(mask)
        .map(|c| stats(c).shootdowns.load(Ordering::SeqCst))
        .sum();
    let root = kernel_space::kernel_pml4();
    for i in 0..TEST_PAGES {
        let _ = paging::unmap_4k(root, test_va(i));
    }
    smp::shootdown(mask, &pages);
    let n = smp::cpu_count() as u64;
    kprintln!(
        "SMP shootdown cpus={n} pages_per_ipi={TEST_PAGES} handled={}",
        after - before
    );
    result?;
    // Two single shootdowns plus each CPU's storm rounds, on every CPU.
    if after - before != n * (2 + n * STORM_ROUNDS) {
        return Err("shootdown-count-mismatch");
    }
    for f in a.into_iter().chain(b) {
        frame::free(f);
    }
    Ok(())
}

fn stop() -> Result<(), &'static str> {
    let mut parked = 0;
    for c in others() {
        if !smp::park(c, WAIT_NS) {
            return Err("park-nmi-not-answered");
        }
        let ticks = stats(c).ticks.load(Ordering::SeqCst);
        time::delay_ns(PARK_WATCH_NS);
        let frozen = smp::is_parked(c) && stats(c).ticks.load(Ordering::SeqCst) == ticks;
        if !smp::unpark(c, WAIT_NS) {
            return Err("unpark-not-answered");
        }
        if !frozen {
            return Err("parked-cpu-kept-running");
        }
        let pongs = PONGS[c].load(Ordering::SeqCst);
        smp::call_on(1 << c, pong, 0);
        if PONGS[c].load(Ordering::SeqCst) != pongs + 1 {
            return Err("cpu-dead-after-unpark");
        }
        parked += 1;
    }
    kprintln!("SMP stop parked={parked} released={parked}");
    Ok(())
}
