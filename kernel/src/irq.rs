//! Interrupt vectors and their dispatch (device IRQs, IPIs, spurious).

use crate::arch::TrapFrame;

/// Called for every vector >= 32.
pub fn handle(frame: &mut TrapFrame) {
    panic!("unexpected interrupt vector {} at rip={:#x}", frame.vector, frame.rip);
}
