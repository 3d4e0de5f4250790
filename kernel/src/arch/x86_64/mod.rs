//! x86-64: everything that touches the processor directly.
//!
//! The rest of the kernel says `arch::` and never names a register; all
//! assembly lives in this directory.
#![allow(unsafe_code)]

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod bootinfo;
pub mod cpu;
pub mod entry;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod multiboot;
pub mod percpu;
pub mod pic;
pub mod pit;
pub mod pvh;
pub mod qemu;
pub mod serial;
pub mod syscall;
pub mod tlb;
pub mod trampoline;

pub use cpu::{cli, halt_forever, interrupts_enabled, rdtsc, sti, sti_hlt, zero_page};
pub use entry::TrapFrame;
pub use percpu::cpu_id;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};

/// Size of each CPU's kernel stack (TSS.RSP0 and the syscall stack).
pub const KERNEL_STACK_BYTES: usize = 64 * 1024;

/// Sets up this CPU's descriptor tables, per-CPU block, syscall MSRs and
/// control-register features. Returns the top of its kernel stack.
pub fn init_cpu(cpu_id: usize, apic_id: u32) -> u64 {
    if cpu_id != 0 {
        // The boot CPU is counted from reset (percpu::UNINSTALLED).
        percpu::begin_bring_up();
    }
    let hard = cpu::enable_features();
    report_hardening(cpu_id, hard);
    let stack: &'static mut [u8] =
        Box::leak(alloc::vec![0u8; KERNEL_STACK_BYTES].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + KERNEL_STACK_BYTES as u64) & !15;
    let block = Box::leak(Box::new(percpu::PerCpu {
        self_ptr: 0,
        kernel_stack_top: top,
        user_rsp_scratch: 0,
        cpu_id: cpu_id as u64,
        apic_id: u64::from(apic_id),
    }));
    gdt::init_cpu(top, block as *const percpu::PerCpu as u64);
    idt::load();
    percpu::install(block);
    percpu::end_bring_up();
    syscall::init_cpu();
    if cpu_id == 0 {
        check_kernel_single_step();
    }
    top
}

/// Set once a CPU without UMIP has been reported (the log says it once).
static UMIP_GAP_REPORTED: AtomicBool = AtomicBool::new(false);

/// Boot-log lines about CPU hardening: the boot CPU's summary, and once
/// for the whole machine a CPU that could not turn UMIP on.
fn report_hardening(cpu_id: usize, h: cpu::Hardening) {
    if cpu_id == 0 {
        kprintln!(
            "arch: cpu hardening: x87 errors as #MF (CR0.NE) {}, UMIP {}, SMEP {}, #DB/#MC/#DF/NMI on IST stacks",
            if cpu::x87_errors_native() { "on" } else { "OFF" },
            if h.umip { "on" } else { "off" },
            if h.smep { "on" } else { "off" },
        );
    }
    if !h.umip && !UMIP_GAP_REPORTED.swap(true, Ordering::Relaxed) {
        if h.umip_advertised {
            kprintln!(
                "arch: CPU {cpu_id}: CR4.UMIP did not stick; sgdt/sidt/sldt/str/smsw stay usable from user mode"
            );
        } else {
            kprintln!(
                "arch: CPU {cpu_id} has no UMIP (CPUID.7.0:ECX[2] clear); sgdt/sidt/sldt/str/smsw stay usable from user mode"
            );
        }
    }
}

/// Boot check of the kernel-mode #DB path (its IST stack, the paranoid
/// GS handling, and trap.rs dropping the trap): a single step in ring 0
/// must come back with exactly one dropped #DB counted. Skipped under KVM,
/// where guest ring 0 is emulated.
fn check_kernel_single_step() {
    if cpu::under_kvm() {
        kprintln!("arch: kernel single-step check skipped under KVM");
        return;
    }
    let before = crate::trap::KERNEL_DEBUG_TRAPS.load(Ordering::Relaxed);
    cpu::single_step_once();
    let after = crate::trap::KERNEL_DEBUG_TRAPS.load(Ordering::Relaxed);
    assert_eq!(
        after,
        before + 1,
        "a kernel single-step #DB was not handled once"
    );
    assert_eq!(percpu::cpu_id(), 0, "GS lost across a kernel #DB");
    kprintln!("arch: kernel single-step #DB dropped on its IST stack");
}

/// This thread's FS base (user TLS pointer).
pub fn fs_base() -> u64 {
    cpu::rdmsr(cpu::msr::FS_BASE)
}

/// Sets the FS base for the user thread about to run, and resets its GS
/// base to 0, the only value the ABI gives user space.
///
/// CR4.FSGSBASE is off, so `wrgsbase` is #UD on TCG and real hardware.
/// Under our KVM (PVM), though, guest user code runs in the host's ring 3
/// with the host's CR4, and `wrgsbase` works there (the hostile-trap smoke
/// checks it). The kernel never trusts that value (entry.rs: paranoid
/// entries load GS from the IST stack, not from a guess on GS_BASE), but it
/// must not carry over to the next thread on this CPU either.
pub fn set_fs_base(v: u64) {
    // KERNEL_GS_BASE holds the user's GS base while the kernel runs
    // (percpu.rs); 0 is its ABI value.
    // SAFETY: the kernel never uses FS or the user GS base; a non-canonical
    // FS value was refused when it was set (SetTls).
    unsafe {
        cpu::wrmsr(cpu::msr::FS_BASE, v);
        cpu::wrmsr(cpu::msr::KERNEL_GS_BASE, 0);
    }
}

/// Loads a user address space's PML4.
pub fn load_address_space(root_phys: u64) {
    // SAFETY: every address space's PML4 copies the kernel half of the
    // kernel PML4 (mm::addr_space::AddrSpace::new), so the kernel stays mapped.
    unsafe { cpu::write_cr3(root_phys) };
}

/// Starts scheduling on this CPU: builds an empty user frame at the top of
/// this CPU's kernel stack, lets `pick` fill it with a thread's context,
/// and leaves to user mode through it. Everything on the stack below is
/// abandoned: this CPU's kernel stack restarts from the top.
pub fn run_first_user_frame(pick: impl FnOnce(&mut TrapFrame)) -> ! {
    let top = percpu::kernel_stack_top();
    let slot = entry::user_frame_slot(top);
    // Callers run on another stack (the boot stack, or an AP's bring-up
    // stack), so nothing live sits in that area.
    // SAFETY: `slot` is the aligned top frame-sized area of this CPU's kernel
    // stack, unused by the running code, so writing it is exclusive.
    let frame = unsafe {
        slot.write(TrapFrame::default());
        &mut *slot
    };
    pick(frame);
    // SAFETY: `pick` loaded a complete user context (exit_to_user ends with
    // a sanitized user frame).
    unsafe { entry::enter_frame(slot) }
}
