//! Processes: an address space, a capability table and threads (their
//! parked threads live in the global park table, cap/park.rs). A file per operation: spawn, exit, fault; the program image
//! cache in image.rs.

pub mod exit;
pub mod fault;
pub mod image;
pub mod spawn;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::AtomicU64;

use abi::error::Error;

use abi::op::ExitKind;

use crate::cap::table::Cap;
use crate::cap::table::CapTable;
use crate::mm::addr_space::AddrSpace;
use crate::mm::budget::{self, Account, Kind};
use crate::mm::ring_mem::RingPages;
use crate::sched::thread::{Thread, ThreadRef};
use crate::sync::{IrqMutex, IrqRwLock};

/// Who is told when a process ends.
#[derive(Clone, Copy, Debug)]
pub enum Waiter {
    /// A thread that submitted ProcWait.
    Thread {
        /// The waiting thread.
        thread: ThreadRef,
        /// Its submission's user_data.
        user_data: u64,
        /// Names this wait in the waiter's `proc_waits` (and in
        /// `ProcInner::waiters`), so a waiter that dies first removes it.
        token: u64,
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
    /// Threads not yet dead, by tid (removal is O(log n), so a process
    /// whose threads all die at once is not quadratic).
    pub threads: BTreeMap<u64, Arc<Thread>>,
    /// Set when the process starts ending (first exit, fault or kill wins).
    pub exiting: Option<ExitStatus>,
    /// Set once every thread is gone and the resources are reclaimed.
    pub ended: Option<ExitStatus>,
    /// Set by `finalize` once everything is reclaimed, when it takes the
    /// waiters: a waiter added later is told at once, one added earlier
    /// waits for the reclaim (so it always sees the frames back).
    pub reclaimed: bool,
    /// Told at the end, by token (init's own wait has token 0).
    pub waiters: BTreeMap<u64, Waiter>,
    /// Processes it spawned that have not ended: they die with it (job
    /// tree), so no process is ever unreachable.
    pub children: BTreeMap<u64, Weak<Process>>,
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
    pub caps: IrqRwLock<CapTable, crate::sync::class::CapTable>,
    /// Threads, exit state, waiters.
    pub inner: IrqMutex<ProcInner, crate::sync::class::Process>,
    /// The process that spawned it (none for init's programs).
    pub parent: Weak<Process>,
    /// CPUs any of its threads ran on.
    pub cpus_ran: AtomicU64,
    /// User TSC cycles of all its threads.
    pub busy_cycles: AtomicU64,
}

impl Process {
    /// The kernel-memory account this process charges (shared by its job).
    pub fn account(&self) -> &Arc<Account> {
        self.space.account()
    }

    /// Puts `cap` in the lowest free slot, charging the slot.
    pub fn insert_cap(&self, cap: Cap) -> Result<u32, Error> {
        let cost = cap_charge(&cap);
        self.account().charge(Kind::Heap, cost)?;
        let slot = self.caps.write().insert(cap);
        slot.ok_or_else(|| {
            self.account().uncharge(Kind::Heap, cost);
            Error::NoMemory
        })
    }

    /// Empties `slot`, giving its charge back.
    pub fn remove_cap(&self, slot: u32) -> Result<Cap, Error> {
        let cap = self.caps.write().remove(slot)?;
        self.account().uncharge(Kind::Heap, cap_charge(&cap));
        Ok(cap)
    }

    /// Frees a thread's ring frames and gives their charge back.
    pub fn free_ring(&self, ring: RingPages) {
        ring.free();
        self.account().uncharge(Kind::Frames, abi::ring::RING_BYTES);
    }
}

/// What holding `cap` costs its holder. A process or thread handle can
/// keep the object's record alive after the object ended (and gave its own
/// charge back, at reclaim or death), so the handle carries the record's
/// charge: then the record is paid for as long as anyone can reach it,
/// and the charges of an ended process or thread are back the moment its
/// waiter or joiner learns of the end, whatever CPU drops the last
/// reference later.
pub fn cap_charge(cap: &Cap) -> u64 {
    budget::CAP_HEAP_BYTES
        + match cap {
            Cap::Process(_) => budget::PROCESS_HEAP_BYTES,
            Cap::Thread(_) => budget::THREAD_HEAP_BYTES,
            _ => 0,
        }
}

// The heap charge of a process covers its record (in its Arc) and its
// address space's; capability slots and regions are charged one by one.
const _: () = assert!(
    core::mem::size_of::<Process>()
        + core::mem::size_of::<AddrSpace>()
        + 4 * core::mem::size_of::<usize>()
        + 256
        <= budget::PROCESS_HEAP_BYTES as usize
);
