//! Memory objects: a fixed set of zero-filled frames that several address
//! spaces can map (abi::memobj, docs/architecture/memory.md).
//!
//! A [`MemObject`] owns its frames; it is shared by `Arc` between the
//! capability handles that name it and the mappings that show it (the
//! address spaces' provenance maps). The frames and their charge go back
//! when the last reference drops, which is always after every mapping of
//! it was unmapped and shot down: an address space drops its reference
//! only after the shootdown. Page tables that map an object are the
//! mapping space's, charged to that space's account; the object's frames
//! are charged to its creator's account.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::error::Error;
use abi::layout::PAGE_SIZE;
use abi::limits::MEMOBJ_PAGES_MAX;

use super::budget::{self, Account, Kind};
use super::frame::{self, Frame};

/// Object ids, never reused (a stale shared park key can never name a
/// newer object).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Frames zeroed between two answers to other CPUs' requests.
const ZERO_BATCH: usize = 64;

/// One memory object.
pub struct MemObject {
    id: u64,
    /// Pages charged (every frame once the object is complete).
    pages: u64,
    frames: Vec<Frame>,
    account: Arc<Account>,
}

/// Heap bytes charged for an object of `pages` pages: its record and its
/// frame vector.
fn heap_charge(pages: u64) -> u64 {
    budget::MEMOBJ_HEAP_BYTES + pages * core::mem::size_of::<Frame>() as u64
}

impl MemObject {
    /// A new object of `pages` zero-filled frames, charged to `account`
    /// (frames and record). Zeroing answers other CPUs' requests between
    /// batches; the caller holds no lock.
    pub fn new(pages: u64, account: &Arc<Account>) -> Result<Arc<MemObject>, Error> {
        if pages == 0 || pages > MEMOBJ_PAGES_MAX {
            return Err(Error::Invalid);
        }
        account.charge(Kind::Heap, heap_charge(pages))?;
        if let Err(e) = account.charge(Kind::Frames, pages * budget::FRAME_BYTES) {
            account.uncharge(Kind::Heap, heap_charge(pages));
            return Err(e);
        }
        // From here the Drop of the (possibly partial) object gives back
        // exactly what was charged.
        let mut obj = MemObject {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pages,
            frames: Vec::with_capacity(pages as usize),
            account: account.clone(),
        };
        for _ in 0..pages {
            let Some(f) = frame::alloc() else {
                return Err(Error::NoMemory);
            };
            crate::arch::zero_page(f.virt());
            obj.frames.push(f);
            if obj.frames.len().is_multiple_of(ZERO_BATCH) {
                crate::smp::answer_requests();
            }
        }
        Ok(Arc::new(obj))
    }

    /// Its id (unique for the kernel's lifetime).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Number of pages.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.pages() * PAGE_SIZE
    }

    /// The frame of page `i`.
    pub fn frame(&self, i: u64) -> Option<Frame> {
        self.frames.get(usize::try_from(i).ok()?).copied()
    }
}

impl Drop for MemObject {
    fn drop(&mut self) {
        for f in self.frames.drain(..) {
            frame::free(f);
        }
        let pages = self.pages;
        self.account
            .uncharge(Kind::Frames, pages * budget::FRAME_BYTES);
        self.account.uncharge(Kind::Heap, heap_charge(pages));
    }
}
