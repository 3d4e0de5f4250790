//! Kernel-level per-CPU counters, indexed by CPU id (online ids may have
//! a hole: loops walk `crate::smp::online()`).
//!
//! The arch per-CPU block (`arch::percpu`, through GS) holds what the entry
//! assembly needs; these statistics live here, in a static array, so any
//! CPU can read any other's (for `CPUSTAT` lines and benchmarks). Each
//! counter is written by its own CPU only (except `ipi_sent`, which counts
//! on the sender), so relaxed atomics are enough.
//!
//! Who updates what: the scheduler `busy_cycles`, `idle_cycles`,
//! `switches`, `steals`; `crate::irq` and `crate::smp` `ticks`, `ipi_sent`,
//! `ipi_recv`, `shootdowns`.

use core::sync::atomic::{AtomicU64, Ordering};

/// Most CPUs the kernel runs on (a CPU mask is one u64).
pub const MAX_CPUS: usize = crate::arch::acpi::MAX_CPUS;

/// One CPU's counters, on cache lines of their own (each CPU writes only
/// its own).
#[derive(Default)]
#[repr(align(64))]
pub struct CpuStats {
    /// TSC cycles spent running user threads.
    pub busy_cycles: AtomicU64,
    /// TSC cycles spent idle (halted).
    pub idle_cycles: AtomicU64,
    /// Context switches.
    pub switches: AtomicU64,
    /// Threads stolen from other CPUs' queues.
    pub steals: AtomicU64,
    /// IPIs this CPU sent.
    pub ipi_sent: AtomicU64,
    /// IPIs this CPU received.
    pub ipi_recv: AtomicU64,
    /// TLB shootdown requests this CPU carried out.
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

static STATS: [CpuStats; MAX_CPUS] = [const { CpuStats::new() }; MAX_CPUS];

/// CPU `cpu`'s counters. Panics when `cpu >= MAX_CPUS` (a kernel bug).
pub fn stats(cpu: usize) -> &'static CpuStats {
    &STATS[cpu]
}

/// Adds one to `counter`.
#[inline]
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Prints one `CPUSTAT` line per online CPU (CONTRACTS.md section 4).
pub fn print_cpustat() {
    for cpu in crate::smp::online().iter() {
        let s = stats(cpu);
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        kprintln!(
            "CPUSTAT cpu={} busy_ms={} idle_ms={} switches={} steals={} ipi_sent={} ipi_recv={} shootdowns={} ticks={}",
            cpu,
            crate::time::cycles_to_ms(r(&s.busy_cycles)),
            crate::time::cycles_to_ms(r(&s.idle_cycles)),
            r(&s.switches),
            r(&s.steals),
            r(&s.ipi_sent),
            r(&s.ipi_recv),
            r(&s.shootdowns),
            r(&s.ticks)
        );
    }
}
