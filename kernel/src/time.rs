//! Time: the TSC frequency, cycle/nanosecond conversions, and each CPU's
//! timer (the local APIC timer, or the PIT on a machine without an APIC).
//!
//! [`calibrate`] runs once on the boot CPU: it measures the TSC and the
//! local APIC timer together against 10 ms windows of PIT channel 2 and
//! accepts the result when two windows in a row agree within 2 % and the
//! frequencies are plausible (at most six windows: bounded time even where
//! every instruction is emulated). APs reuse the result; QEMU and real
//! machines give every CPU the same TSC and APIC timer clock.
//!
//! Conversions use 32.32 fixed-point multipliers computed once, so the hot
//! paths (`now_ns`, `arm_oneshot_ns`) are one multiply and a shift.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::arch::{self, apic, pit};

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
fn tsc_hz_from_cpuid() -> Option<u64> {
    let max = arch::cpu::cpuid(0, 0)[0];
    if max >= 0x15 {
        let [den, num, crystal, _] = arch::cpu::cpuid(0x15, 0);
        if den != 0 && num != 0 && crystal != 0 {
            return Some(u64::from(crystal) * u64::from(num) / u64::from(den));
        }
    }
    if max >= 0x16 {
        let mhz = arch::cpu::cpuid(0x16, 0)[0] & 0xffff;
        if mhz != 0 {
            return Some(u64::from(mhz) * 1_000_000);
        }
    }
    None
}

/// Measures the TSC (and, with `with_lapic`, the local APIC timer) against
/// the PIT and records the results. Runs once, on the boot CPU, with
/// interrupts off, before any other CPU starts.
pub fn calibrate(with_lapic: bool) {
    BOOT_TSC.store(arch::rdtsc(), Ordering::Relaxed);
    let lapic = if with_lapic { apic::local() } else { None };
    let mut last: Option<(u64, u64)> = None;
    let mut accepted = None;
    let mut windows = 0;
    while windows < CALIBRATION_MAX_WINDOWS {
        windows += 1;
        let Some(m) = measure_once(lapic) else { break };
        if let Some(prev) = last {
            if plausible(m.0, m.1, lapic.is_some()) && agree(m.0, prev.0) && agree(m.1, prev.1) {
                accepted = Some(((m.0 + prev.0) / 2, (m.1 + prev.1) / 2));
                break;
            }
        }
        last = Some(m);
    }
    let (tsc_hz, lapic_hz, how) = match (accepted, last) {
        (Some((t, l)), _) => (t, l, "PIT"),
        (None, Some((t, l))) if plausible(t, l, lapic.is_some()) => {
            (t, l, "PIT (windows disagreed; last kept)")
        }
        _ => (
            tsc_hz_from_cpuid().unwrap_or(TSC_HZ_FALLBACK),
            LAPIC_HZ_FALLBACK,
            "fallback (PIT unusable)",
        ),
    };
    set_frequencies(tsc_hz, if lapic.is_some() { lapic_hz } else { 0 });
    kprintln!(
        "time: tsc {}.{:03} MHz, lapic timer {} kHz (divide {}), from {} in {} window(s) of {} ms",
        tsc_hz / 1_000_000,
        tsc_hz / 1_000 % 1_000,
        lapic_hz / 1_000,
        apic::TIMER_DIVIDE,
        how,
        windows,
        CALIBRATION_WINDOW_MS
    );
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
        _ => TimerKind::None,
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
        TimerKind::Pit => pit::start_periodic(hz),
        TimerKind::None => {}
    }
}

/// Whole milliseconds in `cycles` TSC cycles.
pub fn cycles_to_ms(cycles: u64) -> u64 {
    tsc_to_ns(cycles) / 1_000_000
}
