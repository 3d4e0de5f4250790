//! x86-64: everything that touches the processor directly.
//!
//! The rest of the kernel says `arch::` and never names a register; all
//! assembly lives in this directory.
#![allow(unsafe_code)]

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod multiboot;
pub mod percpu;
pub mod pic;
pub mod pit;
pub mod qemu;
pub mod serial;
pub mod syscall;
pub mod tlb;
pub mod trampoline;

pub use cpu::{cli, halt_forever, interrupts_enabled, rdtsc, sti, sti_hlt, zero_page};
pub use entry::TrapFrame;
pub use percpu::cpu_id;

use alloc::boxed::Box;

/// Size of each CPU's kernel stack (TSS.RSP0 and the syscall stack).
pub const KERNEL_STACK_BYTES: usize = 64 * 1024;

/// Sets up this CPU's descriptor tables, per-CPU block, syscall MSRs and
/// control-register features. Returns the top of its kernel stack.
pub fn init_cpu(cpu_id: usize, apic_id: u32) -> u64 {
    cpu::enable_features();
    let stack: &'static mut [u8] = Box::leak(alloc::vec![0u8; KERNEL_STACK_BYTES].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + KERNEL_STACK_BYTES as u64) & !15;
    gdt::init_cpu(top);
    idt::load();
    let block = Box::leak(Box::new(percpu::PerCpu {
        self_ptr: 0,
        kernel_stack_top: top,
        user_rsp_scratch: 0,
        cpu_id: cpu_id as u64,
        apic_id: u64::from(apic_id),
    }));
    percpu::install(block);
    syscall::init_cpu();
    top
}
