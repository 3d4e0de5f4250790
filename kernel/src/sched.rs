//! Scheduler placeholder (replaced by sched/).

use crate::arch::TrapFrame;

/// A user-mode exception.
pub fn user_fault(frame: &mut TrapFrame, addr: u64) {
    panic!("user fault vector {} rip={:#x} addr={addr:#x}", frame.vector, frame.rip);
}

/// The system call.
pub fn syscall(frame: &mut TrapFrame) {
    panic!("syscall from rip={:#x}", frame.rip);
}
