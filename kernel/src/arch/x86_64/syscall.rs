//! The syscall MSRs.
//!
//! STAR selects the kernel segments on entry (0x08/0x10); the user half of
//! STAR is set for completeness although the kernel returns with `iretq`
//! only. FMASK clears IF, TF, DF and AC on entry, so the stub runs with
//! interrupts off. LSTAR points at the stub in `entry.rs`.

use super::cpu::{msr, wrmsr};
use super::entry::syscall_entry_addr;
use super::gdt::KERNEL_CS;

/// RFLAGS bits cleared on `syscall`: TF, IF, DF, AC.
const SYSCALL_FMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 18);
/// STAR[63:48]: sysret would use 0x10+16 | 3 = 0x23 (user code) and 0x10+8 | 3 = 0x1b (user data).
const STAR_USER_BASE: u64 = 0x10;

/// Programs this CPU's syscall MSRs.
pub fn init_cpu() {
    let star = (STAR_USER_BASE << 48) | (u64::from(KERNEL_CS) << 32);
    // SAFETY: the values name this kernel's selectors and its entry stub,
    // which are valid for the life of the kernel.
    unsafe {
        wrmsr(msr::STAR, star);
        wrmsr(msr::LSTAR, syscall_entry_addr());
        wrmsr(msr::FMASK, SYSCALL_FMASK);
    }
}
