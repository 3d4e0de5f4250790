//! Time: the TSC frequency, cycle/nanosecond conversions, and each CPU's
//! timer: the local APIC timer in TSC-deadline mode, its calibrated
//! one-shot/periodic modes, or the PIT on a machine without an APIC.
//!
//! Which timer runs is chosen once by `crate::smp` from the manifest's
//! `[kernel] timer` and CPUID ([`set_timer_kind`]). In TSC-deadline mode a
//! CPU's LVT is set up once ([`init_cpu_timer`]) and arming is one WRMSR of
//! an absolute TSC value; the APIC timer needs no calibration then (only
//! the TSC does, for ns conversions). TSC-deadline has no periodic mode:
//! the bring-up tick re-arms itself from the interrupt ([`on_timer_interrupt`]).
//!
//! [`calibrate`] runs once on the boot CPU. On a PC (port 0x61 present) it
//! measures the TSC and the local APIC timer together against 10 ms
//! windows of PIT channel 2 and accepts the result when two windows in a
//! row agree within 2 % and the frequencies are plausible (at most six
//! windows: bounded time even where every instruction is emulated).
//! Without port 0x61 (QEMU microvm) channel 2 cannot be gated or read, so
//! the TSC frequency comes from, in this order: CPUID leaf 0x15 (crystal
//! ratio) or 0x16 (base MHz), the hypervisor's TSC-frequency leaf
//! (0x40000010, kHz), or PIT channel 0 read by latching, in the same
//! agreeing windows; the local APIC timer is then timed against the TSC.
//! The boot log names the source. APs reuse the result; QEMU and real
//! machines give every CPU the same TSC and APIC timer clock.
//!
//! Conversions use 32.32 fixed-point multipliers computed once, so the hot
//! paths (`now_ns`, `arm_oneshot_ns`) are one multiply and a shift.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::arch::{self, apic, pit};
use crate::percpu::MAX_CPUS;

/// The local APIC timer's vector.
pub const TIMER_VECTOR: u8 = 0xf0;
/// The vector of the PIT tick on the no-APIC fallback (IRQ0 after remapping).
pub const PIT_TIMER_VECTOR: u8 = arch::pic::PIT_VECTOR;
/// The periodic tick every CPU starts with (low: under our KVM every
/// kernel instruction costs about 1 us, DESIGN.md).
pub const DEFAULT_TICK_HZ: u64 = 100;

/// Length of one calibration window.
const CALIBRATION_WINDOW_MS: u64 = 10;
/// Most windows measured before settling for the last result.
const CALIBRATION_MAX_WINDOWS: usize = 6;
/// Two windows agree when they differ by at most 1/50 (2 %).
const AGREEMENT_DIVISOR: u64 = 50;
/// Plausible TSC frequencies.
const TSC_HZ_MIN: u64 = 50_000_000;
const TSC_HZ_MAX: u64 = 20_000_000_000;
/// Plausible local APIC timer frequencies (after the divider).
const LAPIC_HZ_MIN: u64 = 100_000;
const LAPIC_HZ_MAX: u64 = 2_000_000_000;
/// Used when the PIT never answers: QEMU's 1 GHz APIC bus, divided by 16.
const LAPIC_HZ_FALLBACK: u64 = 1_000_000_000 / apic::TIMER_DIVIDE as u64;
/// Used when neither the PIT nor CPUID tells the TSC frequency.
const TSC_HZ_FALLBACK: u64 = 1_000_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Which device ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TimerKind {
    /// Not set up yet.
    None = 0,
    /// Each CPU's local APIC timer.
    LocalApic = 1,
    /// PIT channel 0 through the PIC, boot CPU only.
    Pit = 2,
    /// Each CPU's local APIC timer in TSC-deadline mode.
    TscDeadline = 3,
}

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// ns per TSC cycle, 32.32 fixed point.
static NS_PER_CYCLE_FP: AtomicU64 = AtomicU64::new(0);
/// TSC cycles per ns, 32.32 fixed point.
static CYCLES_PER_NS_FP: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer ticks (divided clock) per second.
static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer ticks per ns, 32.32 fixed point.
static LAPIC_PER_NS_FP: AtomicU64 = AtomicU64::new(0);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static KIND: AtomicU8 = AtomicU8::new(TimerKind::None as u8);
/// TSC-deadline mode: each CPU's emulated periodic tick (TSC cycles
/// between ticks; 0 = one-shot or off). Written only by its own CPU.
static PERIOD_TSC: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// TSC-deadline mode: whether each CPU's LVT is set up ([`init_cpu_timer`]).
static DEADLINE_READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn fp_ratio(num: u64, den: u64) -> u64 {
    ((u128::from(num) << 32) / u128::from(den.max(1))).min(u128::from(u64::MAX)) as u64
}

fn fp_mul(x: u64, fp: u64) -> u64 {
    ((u128::from(x) * u128::from(fp)) >> 32).min(u128::from(u64::MAX)) as u64
}

/// One window: (TSC Hz, local APIC timer Hz or 0).
fn measure_once(lapic: Option<&'static dyn apic::LocalApic>) -> Option<(u64, u64)> {
    let (w, lapic_ticks) = pit::measure(
        CALIBRATION_WINDOW_MS,
        || {
            if let Some(a) = lapic {
                a.timer_start(TIMER_VECTOR, u32::MAX, false);
            }
        },
        || lapic.map_or(0, |a| u64::from(u32::MAX - a.timer_current())),
    )?;
    if let Some(a) = lapic {
        a.timer_stop();
    }
    let tsc_hz = w.tsc_cycles * pit::PIT_HZ / w.pit_ticks;
    let lapic_hz = lapic_ticks * pit::PIT_HZ / w.pit_ticks;
    Some((tsc_hz, lapic_hz))
}

fn agree(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= b / AGREEMENT_DIVISOR
}

fn plausible(tsc_hz: u64, lapic_hz: u64, with_lapic: bool) -> bool {
    (TSC_HZ_MIN..=TSC_HZ_MAX).contains(&tsc_hz)
        && (!with_lapic || (LAPIC_HZ_MIN..=LAPIC_HZ_MAX).contains(&lapic_hz))
}

/// The TSC frequency CPUID reports (leaf 0x15, else 0x16), if any.
fn tsc_hz_from_cpuid() -> Option<(u64, &'static str)> {
    let max = arch::cpu::cpuid(0, 0)[0];
    if max >= 0x15 {
        let [den, num, crystal, _] = arch::cpu::cpuid(0x15, 0);
        if den != 0 && num != 0 && crystal != 0 {
            return Some((
                u64::from(crystal) * u64::from(num) / u64::from(den),
                "CPUID leaf 0x15",
            ));
        }
    }
    if max >= 0x16 {
        let mhz = arch::cpu::cpuid(0x16, 0)[0] & 0xffff;
        if mhz != 0 {
            return Some((u64::from(mhz) * 1_000_000, "CPUID leaf 0x16"));
        }
    }
    None
}

/// The hypervisor's TSC frequency (leaf 0x40000010, EAX in kHz: the
/// VMware convention QEMU/KVM and others follow), if it offers the leaf.
fn tsc_hz_from_hypervisor() -> Option<(u64, &'static str)> {
    /// CPUID.1:ECX bit 31: running under a hypervisor.
    const HYPERVISOR_BIT: u32 = 1 << 31;
    const HV_BASE: u32 = 0x4000_0000;
    const HV_TSC_LEAF: u32 = 0x4000_0010;
    if arch::cpu::cpuid(1, 0)[2] & HYPERVISOR_BIT == 0 {
        return None;
    }
    let max = arch::cpu::cpuid(HV_BASE, 0)[0];
    if !(HV_TSC_LEAF..HV_BASE + 0x100).contains(&max) {
        return None;
    }
    let khz = arch::cpu::cpuid(HV_TSC_LEAF, 0)[0];
    (khz != 0).then(|| (u64::from(khz) * 1000, "hypervisor leaf 0x40000010"))
}

/// The TSC measured against PIT channel 0 read by latching: two windows
/// in a row that agree, at most [`CALIBRATION_MAX_WINDOWS`].
fn tsc_hz_from_pit_channel0() -> Option<(u64, &'static str)> {
    let mut last: Option<u64> = None;
    for _ in 0..CALIBRATION_MAX_WINDOWS {
        let w = pit::measure_channel0(CALIBRATION_WINDOW_MS)?;
        let hz = w.tsc_cycles * pit::PIT_HZ / w.pit_ticks.max(1);
        if let Some(prev) = last {
            if plausible(hz, 0, false) && agree(hz, prev) {
                return Some(((hz + prev) / 2, "PIT channel 0 (latched)"));
            }
        }
        last = Some(hz);
    }
    None
}

/// The local APIC timer's frequency timed against the TSC (`tsc_hz`
/// known): two 10 ms windows in a row that agree, at most
/// [`CALIBRATION_MAX_WINDOWS`].
fn lapic_hz_from_tsc(a: &dyn apic::LocalApic, tsc_hz: u64) -> Option<u64> {
    let window = tsc_hz * CALIBRATION_WINDOW_MS / 1000;
    let mut last: Option<u64> = None;
    for _ in 0..CALIBRATION_MAX_WINDOWS {
        a.timer_start(TIMER_VECTOR, u32::MAX, false);
        let start = arch::rdtsc();
        let mut now = start;
        while now.wrapping_sub(start) < window {
            core::hint::spin_loop();
            now = arch::rdtsc();
        }
        let ticks = u64::from(u32::MAX - a.timer_current());
        a.timer_stop();
        let cycles = now.wrapping_sub(start).max(1);
        // u128: ticks (< 2^32) times a TSC rate (< 2^35) can pass 2^64.
        let hz = u64::try_from(u128::from(ticks) * u128::from(tsc_hz) / u128::from(cycles))
            .unwrap_or(u64::MAX);
        if let Some(prev) = last {
            if (LAPIC_HZ_MIN..=LAPIC_HZ_MAX).contains(&hz) && agree(hz, prev) {
                return Some((hz + prev) / 2);
            }
        }
        last = Some(hz);
    }
    None
}

/// The PC way: TSC and local APIC timer against PIT channel 2. Returns
/// (TSC Hz, APIC timer Hz, source, windows), or `None` with the windows
/// spent when the PIT gave nothing plausible.
fn calibrate_channel2(
    lapic: Option<&'static dyn apic::LocalApic>,
) -> Result<(u64, u64, &'static str, usize), usize> {
    let mut last: Option<(u64, u64)> = None;
    let mut windows = 0;
    while windows < CALIBRATION_MAX_WINDOWS {
        windows += 1;
        let Some(m) = measure_once(lapic) else { break };
        if let Some(prev) = last {
            if plausible(m.0, m.1, lapic.is_some()) && agree(m.0, prev.0) && agree(m.1, prev.1) {
                let (t, l) = ((m.0 + prev.0) / 2, (m.1 + prev.1) / 2);
                return Ok((t, l, "PIT channel 2", windows));
            }
        }
        last = Some(m);
    }
    match last {
        Some((t, l)) if plausible(t, l, lapic.is_some()) => Ok((
            t,
            l,
            "PIT channel 2 (windows disagreed; last kept)",
            windows,
        )),
        _ => Err(windows),
    }
}

/// Without port 0x61: the TSC from CPUID, the hypervisor leaf or PIT
/// channel 0, then the local APIC timer against the TSC.
fn calibrate_without_gate(
    lapic: Option<&'static dyn apic::LocalApic>,
) -> (u64, u64, &'static str, &'static str) {
    let (tsc_hz, tsc_how) = tsc_hz_from_cpuid()
        .filter(|&(hz, _)| plausible(hz, 0, false))
        .or_else(|| tsc_hz_from_hypervisor().filter(|&(hz, _)| plausible(hz, 0, false)))
        .or_else(tsc_hz_from_pit_channel0)
        .unwrap_or((TSC_HZ_FALLBACK, "fallback (no CPUID leaf, no PIT)"));
    let (lapic_hz, lapic_how) = match lapic {
        None => (0, "not calibrated"),
        Some(a) => match lapic_hz_from_tsc(a, tsc_hz) {
            Some(hz) => (hz, "timed against the TSC"),
            None => (LAPIC_HZ_FALLBACK, "fallback (windows disagreed)"),
        },
    };
    (tsc_hz, lapic_hz, tsc_how, lapic_how)
}

/// Measures the TSC (and, with `with_lapic`, the local APIC timer) and
/// records the results (see the module doc for the sources). Runs once,
/// on the boot CPU, with interrupts off, before any other CPU starts.
pub fn calibrate(with_lapic: bool) {
    BOOT_TSC.store(arch::rdtsc(), Ordering::Relaxed);
    let lapic = if with_lapic { apic::local() } else { None };
    let (tsc_hz, lapic_hz) = if pit::channel2_gate_present() {
        let (t, l, how, windows) = calibrate_channel2(lapic).unwrap_or_else(|windows| {
            let (t, how) = tsc_hz_from_cpuid()
                .unwrap_or((TSC_HZ_FALLBACK, "fallback (PIT channel 2 unusable)"));
            (t, LAPIC_HZ_FALLBACK, how, windows)
        });
        kprintln!(
            "time: tsc {}.{:03} MHz, lapic timer {} kHz (divide {}), from {} in {} window(s) of {} ms",
            t / 1_000_000,
            t / 1_000 % 1_000,
            l / 1_000,
            apic::TIMER_DIVIDE,
            how,
            windows,
            CALIBRATION_WINDOW_MS
        );
        (t, l)
    } else {
        let (t, l, tsc_how, lapic_how) = calibrate_without_gate(lapic);
        kprintln!(
            "time: no port 0x61 (no PIT channel 2 gate): tsc {}.{:03} MHz from {}, lapic timer {} kHz (divide {}) {}",
            t / 1_000_000,
            t / 1_000 % 1_000,
            tsc_how,
            l / 1_000,
            apic::TIMER_DIVIDE,
            lapic_how
        );
        (t, l)
    };
    set_frequencies(tsc_hz, if lapic.is_some() { lapic_hz } else { 0 });
}

fn set_frequencies(tsc_hz: u64, lapic_hz: u64) {
    TSC_HZ.store(tsc_hz, Ordering::Relaxed);
    NS_PER_CYCLE_FP.store(fp_ratio(NS_PER_SEC, tsc_hz), Ordering::Relaxed);
    CYCLES_PER_NS_FP.store(fp_ratio(tsc_hz, NS_PER_SEC), Ordering::Relaxed);
    LAPIC_HZ.store(lapic_hz, Ordering::Relaxed);
    LAPIC_PER_NS_FP.store(fp_ratio(lapic_hz, NS_PER_SEC), Ordering::Relaxed);
}

/// Records which device ticks (set by `crate::smp` at bring-up).
pub fn set_timer_kind(kind: TimerKind) {
    KIND.store(kind as u8, Ordering::Relaxed);
}

/// Which device ticks.
pub fn timer_kind() -> TimerKind {
    match KIND.load(Ordering::Relaxed) {
        1 => TimerKind::LocalApic,
        2 => TimerKind::Pit,
        3 => TimerKind::TscDeadline,
        _ => TimerKind::None,
    }
}

/// Sets up this CPU's timer for the chosen kind (each CPU once, after its
/// local APIC is enabled and before its first tick): in TSC-deadline mode
/// the LVT is switched to deadline mode here, fenced (SDM 11.5.4.1: the
/// LVT write must be ordered before the first IA32_TSC_DEADLINE write),
/// and left that way; the other kinds program their registers per arm.
pub fn init_cpu_timer() {
    if timer_kind() != TimerKind::TscDeadline {
        return;
    }
    if let Some(a) = apic::local() {
        a.timer_deadline_mode(TIMER_VECTOR);
        apic::set_tsc_deadline(0);
        let me = arch::cpu_id();
        PERIOD_TSC[me].store(0, Ordering::Relaxed);
        DEADLINE_READY[me].store(true, Ordering::Relaxed);
    }
}

/// Arms this CPU's TSC-deadline timer at `deadline` (0 disarms), if its
/// LVT is in deadline mode.
fn write_deadline(deadline: u64) {
    if DEADLINE_READY[arch::cpu_id()].load(Ordering::Relaxed) {
        apic::set_tsc_deadline(deadline);
    }
}

/// Called from the timer interrupt before anything else: in TSC-deadline
/// mode, re-arms this CPU's emulated periodic tick.
pub fn on_timer_interrupt() {
    if timer_kind() != TimerKind::TscDeadline {
        return;
    }
    let period = PERIOD_TSC[arch::cpu_id()].load(Ordering::Relaxed);
    if period != 0 {
        write_deadline(arch::rdtsc().saturating_add(period));
    }
}

/// TSC cycles per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// The TSC now.
#[inline]
pub fn now_tsc() -> u64 {
    arch::rdtsc()
}

/// Cycles to nanoseconds.
#[inline]
pub fn tsc_to_ns(cycles: u64) -> u64 {
    fp_mul(cycles, NS_PER_CYCLE_FP.load(Ordering::Relaxed))
}

/// Nanoseconds to cycles.
#[inline]
pub fn ns_to_tsc(ns: u64) -> u64 {
    fp_mul(ns, CYCLES_PER_NS_FP.load(Ordering::Relaxed))
}

/// Nanoseconds since calibration (early boot).
pub fn now_ns() -> u64 {
    tsc_to_ns(arch::rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// A TSC deadline `ns` from now, for bounded spin-waits.
pub fn deadline_after_ns(ns: u64) -> u64 {
    arch::rdtsc().saturating_add(ns_to_tsc(ns))
}

/// Whether the TSC has passed `deadline`.
#[inline]
pub fn passed(deadline: u64) -> bool {
    arch::rdtsc() >= deadline
}

/// Spins for `ns` nanoseconds (TSC-timed).
pub fn delay_ns(ns: u64) {
    let deadline = deadline_after_ns(ns);
    while !passed(deadline) {
        core::hint::spin_loop();
    }
}

/// Arms this CPU's timer to fire [`TIMER_VECTOR`] once, `ns` from now
/// (clamped to what the counter holds: about 68 s on the APIC timer at
/// 62.5 MHz, 55 ms on the PIT).
pub fn arm_oneshot_ns(ns: u64) {
    match timer_kind() {
        TimerKind::LocalApic => {
            if let Some(a) = apic::local() {
                let count = fp_mul(ns, LAPIC_PER_NS_FP.load(Ordering::Relaxed))
                    .clamp(1, u64::from(u32::MAX));
                a.timer_start(TIMER_VECTOR, count as u32, false);
            }
        }
        TimerKind::TscDeadline => {
            PERIOD_TSC[arch::cpu_id()].store(0, Ordering::Relaxed);
            write_deadline(arch::rdtsc().saturating_add(ns_to_tsc(ns).max(1)));
        }
        TimerKind::Pit => pit::start_oneshot(fp_mul(ns, fp_ratio(pit::PIT_HZ, NS_PER_SEC))),
        TimerKind::None => {}
    }
}

/// Stops this CPU's timer.
pub fn disarm() {
    match timer_kind() {
        TimerKind::LocalApic => {
            if let Some(a) = apic::local() {
                a.timer_stop();
            }
        }
        TimerKind::TscDeadline => {
            PERIOD_TSC[arch::cpu_id()].store(0, Ordering::Relaxed);
            write_deadline(0);
        }
        TimerKind::Pit => pit::stop(),
        TimerKind::None => {}
    }
}

/// Makes this CPU's timer tick periodically at `hz`.
pub fn set_periodic(hz: u64) {
    let hz = hz.max(1);
    match timer_kind() {
        TimerKind::LocalApic => {
            if let Some(a) = apic::local() {
                let count = (LAPIC_HZ.load(Ordering::Relaxed) / hz).clamp(1, u64::from(u32::MAX));
                a.timer_start(TIMER_VECTOR, count as u32, true);
            }
        }
        TimerKind::TscDeadline => {
            let period = (tsc_hz() / hz).max(1);
            PERIOD_TSC[arch::cpu_id()].store(period, Ordering::Relaxed);
            write_deadline(arch::rdtsc().saturating_add(period));
        }
        TimerKind::Pit => pit::start_periodic(hz),
        TimerKind::None => {}
    }
}

/// Whole milliseconds in `cycles` TSC cycles.
pub fn cycles_to_ms(cycles: u64) -> u64 {
    tsc_to_ns(cycles) / 1_000_000
}
