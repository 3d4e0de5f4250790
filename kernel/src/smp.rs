//! SMP placeholder (until the APIC work lands): one CPU.

/// Most CPUs supported.
pub const MAX_CPUS: usize = 64;

/// CPUs online.
pub fn cpu_count() -> usize {
    1
}

/// Sends a reschedule IPI.
pub fn send_resched(_cpu: usize) {}

/// Invalidates `pages` (all non-global translations when empty) on `mask`.
pub fn shootdown(mask: u64, pages: &[u64]) {
    if mask & (1 << crate::arch::cpu_id()) != 0 {
        if pages.is_empty() {
            crate::arch::cpu::write_cr3_same();
        } else {
            for p in pages {
                crate::arch::cpu::invlpg(*p);
            }
        }
    }
}

/// Stops every other CPU.
pub fn stop_others() {}
