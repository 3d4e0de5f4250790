//! Trap dispatch: what happens after an entry stub saved a frame.
//!
//! Exceptions from kernel mode are kernel bugs: they panic with the vector,
//! RIP, error code and (for #PF) CR2. Exceptions from user mode end the
//! faulting process. Interrupt vectors go to their owners.
//!
//! Two exceptions to that rule:
//! - #DB from kernel mode is not a kernel bug: a user that sets RFLAGS.TF
//!   (popf) can have a single-step trap delivered on the first instruction
//!   of the syscall stub on CPUs that check TF before applying SFMASK (or
//!   after `mov ss`/`pop ss` defers it). The kernel sets no breakpoints, so
//!   such a #DB is dropped: TF is cleared in the interrupted kernel frame
//!   and the stub goes on. The arch layer has already run it on its own
//!   IST stack with the right GS (docs/architecture/boot.md).
//! - #DF and #MC always panic, whatever CS says: neither is something a
//!   user program can cause, and neither leaves a state worth continuing.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, TrapFrame};

/// Exception names by vector (Intel SDM vol. 3, table 6-1).
const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Vector of the debug exception (#DB).
const VECTOR_DEBUG: u64 = 1;
/// Vector of the double fault (#DF).
const VECTOR_DOUBLE_FAULT: u64 = 8;
/// Vector of the x87 floating-point error (#MF; CR0.NE is set).
const VECTOR_X87_ERROR: u64 = 16;
/// Vector of the machine check (#MC).
const VECTOR_MACHINE_CHECK: u64 = 18;
/// Vector of the SIMD floating-point exception (#XM; CR4.OSXMMEXCPT is set).
const VECTOR_SIMD_ERROR: u64 = 19;
/// RFLAGS.TF (single step).
const RFLAGS_TF: u64 = 1 << 8;

/// How many #DB traps arrived in kernel mode and were dropped (a user's
/// TF carried into the syscall stub). Counted, not printed: the trap can
/// interrupt code that holds the console lock.
pub static KERNEL_DEBUG_TRAPS: AtomicU64 = AtomicU64::new(0);

/// Vector of the NMI (stop and park requests, `crate::smp`).
const VECTOR_NMI: u64 = 2;
/// Vector of the page fault.
const VECTOR_PAGE_FAULT: u64 = 14;

/// Called by the entry stubs for every vector.
pub fn handle(frame: &mut TrapFrame) {
    if arch::entry::is_reflected_syscall(frame) {
        // Under our KVM the syscall stub's first fetch faulted: this is a
        // system call (docs/architecture/capabilities.md).
        arch::entry::reflect_syscall(frame);
        syscall(frame);
        return;
    }
    if frame.vector == VECTOR_NMI {
        crate::irq::nmi(frame);
        return;
    }
    let from_user = frame.came_from_user();
    if frame.vector == VECTOR_DEBUG && !from_user {
        frame.rflags &= !RFLAGS_TF;
        KERNEL_DEBUG_TRAPS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if from_user {
        crate::sched::enter_from_user();
    }
    if frame.vector < 32 {
        exception(frame);
    } else {
        crate::irq::handle(frame);
        if from_user && frame.rip >= abi::layout::USER_END {
            // QEMU's TCG lets a jump to a non-canonical address complete
            // and faults only on the next fetch; an interrupt taken in
            // between saves that RIP. `iretq` to it would fault in ring 0,
            // so end the process here, as the fetch would have.
            frame.vector = VECTOR_GENERAL_PROTECTION;
            crate::sched::user_fault(frame, frame.rip);
        }
    }
    if from_user {
        crate::sched::exit_to_user(frame);
    }
}

fn exception(frame: &mut TrapFrame) {
    let name = EXCEPTION_NAMES[frame.vector as usize];
    let addr = if frame.vector == VECTOR_PAGE_FAULT {
        arch::cpu::cr2()
    } else {
        0
    };
    let fatal_anyway = frame.vector == VECTOR_DOUBLE_FAULT || frame.vector == VECTOR_MACHINE_CHECK;
    if frame.came_from_user() && !fatal_anyway {
        if frame.vector == VECTOR_X87_ERROR || frame.vector == VECTOR_SIMD_ERROR {
            // The thread dies: drop its pending x87/SSE state now rather
            // than at the next thread's restore (arch::fpu module doc).
            arch::fpu::load_clean();
        }
        crate::sched::user_fault(frame, addr);
        return;
    }
    panic!(
        "kernel {} (vector {}) rip={:#x} error={:#x} cr2={:#x} rsp={:#x}",
        name, frame.vector, frame.rip, frame.error, addr, frame.rsp
    );
}

/// The one system call, from either entry path.
pub fn syscall(frame: &mut TrapFrame) {
    crate::sched::enter_from_user();
    if frame.rip >= abi::layout::USER_END || frame.rsp >= abi::layout::USER_END {
        // `iretq` to a non-canonical address would fault in ring 0: a user
        // that jumped to the stub with such registers is ended instead.
        frame.vector = VECTOR_GENERAL_PROTECTION;
        crate::sched::user_fault(frame, frame.rip);
    } else if frame.rax != abi::SYS_CAP_ENTER {
        frame.rax = abi::error::Error::BadOpcode.as_result() as u64;
    } else {
        crate::sched::syscall(frame);
    }
    crate::sched::exit_to_user(frame);
}

/// Vector of the general-protection fault.
const VECTOR_GENERAL_PROTECTION: u64 = 13;
