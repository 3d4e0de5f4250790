//! Per-CPU scheduler counters (placeholder until the APIC work lands).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::smp::MAX_CPUS;

/// One CPU's counters.
pub struct CpuStats {
    /// TSC cycles spent running user threads.
    pub busy_cycles: AtomicU64,
    /// TSC cycles spent halted in idle.
    pub idle_cycles: AtomicU64,
    /// Context switches.
    pub switches: AtomicU64,
    /// Threads stolen from other CPUs.
    pub steals: AtomicU64,
    /// Reschedule IPIs sent.
    pub ipi_sent: AtomicU64,
    /// Reschedule IPIs received.
    pub ipi_recv: AtomicU64,
    /// TLB shootdowns initiated.
    pub shootdowns: AtomicU64,
    /// Timer interrupts.
    pub ticks: AtomicU64,
}

impl CpuStats {
    const fn new() -> CpuStats {
        CpuStats {
            busy_cycles: AtomicU64::new(0),
            idle_cycles: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            ipi_sent: AtomicU64::new(0),
            ipi_recv: AtomicU64::new(0),
            shootdowns: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const NEW: CpuStats = CpuStats::new();
static STATS: [CpuStats; MAX_CPUS] = [NEW; MAX_CPUS];

/// CPU `cpu`'s counters.
pub fn stats(cpu: usize) -> &'static CpuStats {
    &STATS[cpu]
}

/// Prints one CPUSTAT line per online CPU (CONTRACTS.md section 4).
pub fn print_cpustat() {
    let ms = |c: u64| crate::time::tsc_to_ns(c) / 1_000_000;
    for cpu in 0..crate::smp::cpu_count() {
        let s = stats(cpu);
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        kprintln!(
            "CPUSTAT cpu={} busy_ms={} idle_ms={} switches={} steals={} ipi_sent={} ipi_recv={} shootdowns={} ticks={}",
            cpu,
            ms(g(&s.busy_cycles)),
            ms(g(&s.idle_cycles)),
            g(&s.switches),
            g(&s.steals),
            g(&s.ipi_sent),
            g(&s.ipi_recv),
            g(&s.shootdowns),
            g(&s.ticks)
        );
    }
}
