//! Time (placeholder until the APIC work lands): TSC conversions and the
//! per-CPU one-shot timer API the scheduler uses.

use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);
static BOOT_TSC: AtomicU64 = AtomicU64::new(0);

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// The TSC now.
pub fn now_tsc() -> u64 {
    crate::arch::rdtsc()
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    tsc_to_ns(now_tsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

/// TSC ticks to nanoseconds.
pub fn tsc_to_ns(t: u64) -> u64 {
    ((t as u128 * 1_000_000_000) / tsc_hz() as u128) as u64
}

/// Nanoseconds to TSC ticks (saturating).
pub fn ns_to_tsc(ns: u64) -> u64 {
    ((ns as u128 * tsc_hz() as u128) / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Arms this CPU's timer to fire once after `ns`.
pub fn arm_oneshot_ns(_ns: u64) {}

/// Stops this CPU's timer.
pub fn disarm() {}
