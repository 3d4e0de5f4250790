//! Kernel-memory budgets: every kernel object a program causes is charged
//! to its account, and the charge comes back when the object goes.
//!
//! One [`Account`] per manifest program, shared by every process it
//! spawns (its job tree: children die with their parent, so the tree ends
//! together). The limit is the program's `kernel_kib` (abi::limits). A
//! charge that would pass the limit fails, and the submission that wanted
//! the object completes with `NoMemory`; the program goes on.
//!
//! Charges that live on the kernel heap are also taken from one global
//! pool, sized to fit in the heap with room to spare for the kernel's own
//! allocations ([`HEAP_POOL_BYTES`]), so no program, nor all programs
//! together, can reach the heap's alloc-error path. Frames (rings, page
//! tables) come from the frame allocator, which fails cleanly.
//!
//! The sizes charged per object are named constants below: each is at
//! least what the object costs on the heap, counting the growth slack of
//! the vectors and trees that hold it (docs/architecture/limits.md).

use core::sync::atomic::{AtomicU64, Ordering};

use abi::error::Error;

use super::heap::HEAP_BYTES;

/// A process record, its capability table, park table and address-space
/// bookkeeping on the heap.
pub const PROCESS_HEAP_BYTES: u64 = 4096;
/// A thread record, its FPU area, registry slot and queue entries.
pub const THREAD_HEAP_BYTES: u64 = 2048;
/// One operation that completes later (sleep, wait, join, park): its timer,
/// its waiter or park entry, its overflow completion, its tracking entry.
pub const IN_FLIGHT_HEAP_BYTES: u64 = 512;
/// One capability slot.
pub const CAP_HEAP_BYTES: u64 = 64;
/// One demand-zero region (MemMap).
pub const REGION_HEAP_BYTES: u64 = 64;
/// A memory object's record (plus 8 bytes per page for its frame list).
pub const MEMOBJ_HEAP_BYTES: u64 = 128;
/// One frame (a ring page or a page table).
pub const FRAME_BYTES: u64 = abi::layout::PAGE_SIZE;

/// The heap share all accounts together may hold: three quarters of the
/// heap; the rest is for the kernel's own allocations (per-CPU structures,
/// the image cache index, transient buffers).
pub const HEAP_POOL_BYTES: u64 = HEAP_BYTES / 4 * 3;

// The heap outside the pool also holds what the per-CPU object caches
// keep (at most MAX_CACHED_BYTES_PER_CPU per CPU): keep that under half of it.
const _: () = assert!(
    crate::arch::acpi::MAX_CPUS * super::heap::MAX_CACHED_BYTES_PER_CPU
        <= (HEAP_BYTES - HEAP_POOL_BYTES) as usize / 2
);

static HEAP_POOL_USED: AtomicU64 = AtomicU64::new(0);

/// What a charge is for: heap charges also draw on the global pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Kernel heap.
    Heap,
    /// Whole frames.
    Frames,
}

/// One program's kernel-memory account.
pub struct Account {
    limit_bytes: u64,
    used_bytes: AtomicU64,
}

fn try_add(counter: &AtomicU64, bytes: u64, limit: u64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(bytes).filter(|&n| n <= limit)
        })
        .is_ok()
}

impl Account {
    /// An account with a limit of `kib` KiB.
    pub fn new(kib: u32) -> Account {
        Account {
            limit_bytes: u64::from(kib) * 1024,
            used_bytes: AtomicU64::new(0),
        }
    }

    /// Charges `bytes`, or fails with `NoMemory` at the limit (or when the
    /// global heap pool is spent).
    pub fn charge(&self, kind: Kind, bytes: u64) -> Result<(), Error> {
        if !try_add(&self.used_bytes, bytes, self.limit_bytes) {
            return Err(Error::NoMemory);
        }
        if kind == Kind::Heap && !try_add(&HEAP_POOL_USED, bytes, HEAP_POOL_BYTES) {
            self.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(Error::NoMemory);
        }
        Ok(())
    }

    /// Gives back a charge.
    pub fn uncharge(&self, kind: Kind, bytes: u64) {
        let prev = self.used_bytes.fetch_sub(bytes, Ordering::AcqRel);
        assert!(prev >= bytes, "budget: uncharged more than was charged");
        if kind == Kind::Heap {
            let prev = HEAP_POOL_USED.fetch_sub(bytes, Ordering::AcqRel);
            assert!(prev >= bytes, "budget: heap pool underflow");
        }
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used_bytes.load(Ordering::Acquire)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit_bytes
    }
}

/// Heap bytes charged by all accounts together.
pub fn heap_pool_used() -> u64 {
    HEAP_POOL_USED.load(Ordering::Acquire)
}
