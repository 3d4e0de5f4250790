//! This CPU's TLB: flush one page or every non-global translation.
//! (Other CPUs are reached through `crate::smp::shootdown`.)

use super::cpu;

/// Drops the translation of the page holding `va` (global or not).
pub fn flush_page(va: u64) {
    cpu::invlpg(va);
}

/// Drops every non-global translation by reloading CR3.
pub fn flush_all() {
    // SAFETY: reloading the current CR3 changes no mapping; it only
    // empties the TLB of non-global entries.
    unsafe { cpu::write_cr3(cpu::cr3()) };
}
