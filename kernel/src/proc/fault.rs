//! User-mode exceptions: demand-zero paging, or report and end the process.

use abi::op::ExitKind;

use super::exit::exit_process;
use super::ExitStatus;
use crate::arch::TrapFrame;

/// Page-fault vector.
const PAGE_FAULT: u64 = 14;
/// #PF error code bit: the access was a write.
const PF_WRITE: u64 = 1 << 1;
/// #PF error code bit: the page was present (a protection fault).
const PF_PRESENT: u64 = 1 << 0;

/// Handles an exception raised by the current user thread.
pub fn handle(frame: &mut TrapFrame, addr: u64) {
    let Some(t) = crate::sched::current() else {
        panic!("user fault with no current thread, vector {}", frame.vector);
    };
    if frame.vector == PAGE_FAULT
        && frame.error & PF_PRESENT == 0
        && t.process
            .space
            .handle_fault(addr, frame.error & PF_WRITE != 0)
    {
        return;
    }
    kprintln!(
        "FAULT pid={} tid={} vector={} rip={:#x} addr={:#x} prog={}",
        t.process.pid,
        t.tid,
        frame.vector,
        frame.rip,
        addr,
        t.process.name
    );
    // Mark the faulting thread itself first: if the process was already
    // ending, exit_process returns at once, and this thread must still
    // never return to the faulting instruction.
    t.inner.lock().kill = true;
    exit_process(
        &t.process,
        ExitStatus {
            kind: ExitKind::Faulted,
            status: frame.vector as i64,
        },
    );
}
