//! Trap dispatch: what happens after an entry stub saved a frame.
//!
//! Exceptions from kernel mode are kernel bugs: they panic with the vector,
//! RIP, error code and (for #PF) CR2. Exceptions from user mode end the
//! faulting process. Interrupt vectors go to their owners.

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
    if from_user {
        crate::sched::enter_from_user();
    }
    if frame.vector < 32 {
        exception(frame);
    } else {
        crate::irq::handle(frame);
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
    if frame.came_from_user() {
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
