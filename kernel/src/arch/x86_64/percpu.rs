//! The per-CPU block reached through GS.
//!
//! Convention (settled for the whole kernel): while a CPU runs kernel code,
//! `GS_BASE` points at its [`PerCpu`] block and `KERNEL_GS_BASE` holds the
//! user's GS base (0 by the ABI; CR4.FSGSBASE is off, but under our KVM
//! user code runs with the host's CR4 and can `wrgsbase` any value, so the
//! kernel never trusts it and resets it on every thread switch). Every
//! entry from user mode (syscall, interrupt, exception) executes `swapgs`
//! first, every return to user mode executes it last; entries from kernel
//! mode don't. The entries that can land anywhere (NMI, and #DB/#DF/#MC
//! from kernel mode) neither swap nor guess: they save GS_BASE, load this
//! block's address from their IST stack and restore GS_BASE on the way out
//! (entry.rs). So `gs:` addressing in the kernel always reaches this CPU's
//! block.
//!
//! The block holds only what the entry assembly needs at fixed offsets plus
//! the CPU's id; everything else per-CPU lives in `crate::percpu`, indexed
//! by that id.

use core::mem::offset_of;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::cpu::{msr, rdmsr, wrmsr};

/// The arch part of a CPU's state, at fixed offsets for the entry stubs.
#[repr(C, align(64))]
pub struct PerCpu {
    /// Points at this block (for reading the block's address via `gs:0`).
    pub self_ptr: u64,
    /// Top of this CPU's kernel stack (also TSS.RSP0).
    pub kernel_stack_top: u64,
    /// The user RSP saved by the syscall stub before switching stacks.
    pub user_rsp_scratch: u64,
    /// Dense CPU index, 0 = boot CPU.
    pub cpu_id: u64,
    /// Local APIC id.
    pub apic_id: u64,
}

/// `gs:` offset of [`PerCpu::kernel_stack_top`], used by the syscall stub.
pub const KERNEL_STACK_TOP_OFFSET: usize = offset_of!(PerCpu, kernel_stack_top);
/// `gs:` offset of [`PerCpu::user_rsp_scratch`].
pub const USER_RSP_SCRATCH_OFFSET: usize = offset_of!(PerCpu, user_rsp_scratch);
/// `gs:` offset of [`PerCpu::cpu_id`].
pub const CPU_ID_OFFSET: usize = offset_of!(PerCpu, cpu_id);

/// Installs `block` as this CPU's GS base. Called once per CPU at bring-up,
/// before interrupts are enabled.
pub fn install(block: &'static mut PerCpu) {
    assert_eq!(rdmsr(msr::GS_BASE), 0, "GS base installed twice");
    let addr = block as *mut PerCpu as u64;
    block.self_ptr = addr;
    // SAFETY: GS base is owned by this module and written once per CPU;
    // `block` is 'static so the pointer never dangles. KERNEL_GS_BASE = 0
    // is the user's GS base (see the module doc).
    unsafe {
        wrmsr(msr::GS_BASE, addr);
        wrmsr(msr::KERNEL_GS_BASE, 0);
    }
}

/// This CPU's dense index.
#[inline(always)]
pub fn cpu_id() -> usize {
    let id: u64;
    // SAFETY: GS base points at this CPU's PerCpu block while in the
    // kernel (module doc); the load reads its `cpu_id` field.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) id, off = const CPU_ID_OFFSET,
                         options(nostack, preserves_flags, readonly))
    };
    id as usize
}

/// CPUs running kernel code without their block installed yet: the boot
/// CPU from reset until its `install`, and each AP from the start of its
/// `init_cpu` until its `install`. While it is not zero, [`cpu_id_checked`]
/// answers `None` on every CPU (a CPU with GS base 0 must not read `gs:`).
/// Read on every lock and allocation, written only at bring-up, so the
/// line stays shared in every cache.
static UNINSTALLED: AtomicUsize = AtomicUsize::new(1);

/// An AP is about to run kernel code before its block exists (start of
/// its `init_cpu`).
pub fn begin_bring_up() {
    UNINSTALLED.fetch_add(1, Ordering::SeqCst);
}

/// This CPU's block is installed (end of its bring-up, after `install`).
pub fn end_bring_up() {
    UNINSTALLED.fetch_sub(1, Ordering::SeqCst);
}

/// This CPU's index, or `None` while some CPU may run without its block
/// (boot, AP bring-up): then per-CPU caches and counters are bypassed.
#[inline(always)]
pub fn cpu_id_checked() -> Option<usize> {
    if UNINSTALLED.load(Ordering::Acquire) != 0 {
        return None;
    }
    Some(cpu_id())
}

/// Whether this CPU has installed its block yet (false very early in boot).
pub fn installed() -> bool {
    rdmsr(msr::GS_BASE) != 0
}

/// Top of this CPU's kernel stack.
pub fn kernel_stack_top() -> u64 {
    let top: u64;
    // SAFETY: as in `cpu_id`, reading the `kernel_stack_top` field.
    unsafe {
        core::arch::asm!("mov {}, gs:[{off}]", out(reg) top, off = const KERNEL_STACK_TOP_OFFSET,
                         options(nostack, preserves_flags, readonly))
    };
    top
}
