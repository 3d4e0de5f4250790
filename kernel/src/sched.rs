//! Scheduler placeholder (replaced by sched/).

use crate::arch::{self, TrapFrame};

/// A user-mode exception.
pub fn user_fault(frame: &mut TrapFrame, addr: u64) {
    panic!(
        "user fault vector {} rip={:#x} addr={addr:#x}",
        frame.vector, frame.rip
    );
}

/// The system call.
pub fn syscall(frame: &mut TrapFrame) {
    panic!("syscall from rip={:#x}", frame.rip);
}

/// An AP's scheduler loop, entered once it is online: idle for now.
pub fn ap_main(_cpu: usize) -> ! {
    loop {
        arch::sti_hlt();
    }
}

/// This CPU's timer tick (after EOI).
pub fn timer_tick(_frame: &mut TrapFrame) {}

/// The reschedule IPI (after EOI).
pub fn resched_ipi(_frame: &mut TrapFrame) {}
