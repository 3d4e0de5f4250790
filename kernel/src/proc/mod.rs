//! Processes: an address space, a capability table, a park table and
//! threads. A file per operation: spawn, exit, fault; the program image
//! cache in image.rs.

pub mod exit;
pub mod fault;
pub mod image;
pub mod spawn;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use abi::op::ExitKind;

use crate::cap::park::ParkTable;
use crate::cap::table::CapTable;
use crate::mm::addr_space::AddrSpace;
use crate::mm::ring_mem::RingPages;
use crate::sched::thread::{Thread, ThreadRef};
use crate::sync::IrqMutex;

/// Who is told when a process ends.
#[derive(Clone, Copy, Debug)]
pub enum Waiter {
    /// A thread that submitted ProcWait.
    Thread {
        /// The waiting thread.
        thread: ThreadRef,
        /// Its submission's user_data.
        user_data: u64,
    },
    /// The init service.
    Init,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exited, faulted or killed.
    pub kind: ExitKind,
    /// Exit status, or the fault vector.
    pub status: i64,
}

/// The mutable part of a process.
pub struct ProcInner {
    /// Threads not yet dead.
    pub threads: Vec<Arc<Thread>>,
    /// Set when the process starts ending (first exit, fault or kill wins).
    pub exiting: Option<ExitStatus>,
    /// Set once every thread is gone and the resources are reclaimed.
    pub ended: Option<ExitStatus>,
    /// Told at the end.
    pub waiters: Vec<Waiter>,
    /// Next ring slot index (ring i lives at RING_BASE + i * RING_STRIDE).
    pub next_ring: u64,
    /// Rings of threads that died while the process was ending: freed
    /// after the address space is torn down and shot down.
    pub dead_rings: Vec<RingPages>,
}

/// A process.
pub struct Process {
    /// Process id.
    pub pid: u64,
    /// Program name.
    pub name: String,
    /// Its address space.
    pub space: Arc<AddrSpace>,
    /// Its capabilities.
    pub caps: IrqMutex<CapTable>,
    /// Parked threads by word address.
    pub park: IrqMutex<ParkTable>,
    /// Threads, exit state, waiters.
    pub inner: IrqMutex<ProcInner>,
    /// CPUs any of its threads ran on.
    pub cpus_ran: AtomicU64,
    /// User TSC cycles of all its threads.
    pub busy_cycles: AtomicU64,
}
