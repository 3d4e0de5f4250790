//! Address spaces: one user half per process over the shared kernel half.
//!
//! An [`AddrSpace`] owns its PML4 and every frame mapped `OWNED` in its user
//! half. Pages can be mapped eagerly (program images, rings, the start-up
//! block) or reserved as demand-zero regions (stacks, `MemMap`), which get
//! a zeroed frame on first touch: zeroing is ring-0 work, expensive where
//! guest kernel code is emulated, so only touched pages pay for it.
//!
//! `active` is the set of CPUs that have this space loaded in CR3; an
//! unmapping shoots down exactly those (and flushes locally) before the
//! frames are freed. Lock order: the space lock is taken after thread and
//! process locks and before the frame allocator's.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::layout::{PAGE_SIZE, USER_END};

use super::frame::{self, Frame};
use super::paging::{self, flags};
use crate::sync::IrqMutex;

/// Most demand-zero regions one address space may hold (each `MemMap` adds
/// one; they are searched on every demand fault).
const MAX_LAZY_REGIONS: usize = 4096;

/// Page permissions for user mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

impl Perm {
    /// Read-only data.
    pub const RO: Perm = Perm {
        write: false,
        exec: false,
    };
    /// Read-write data.
    pub const RW: Perm = Perm {
        write: true,
        exec: false,
    };

    fn bits(self) -> u64 {
        flags::USER
            | if self.write { flags::WRITABLE } else { 0 }
            | if self.exec { 0 } else { flags::NO_EXECUTE }
    }
}

/// A demand-zero region.
#[derive(Clone, Copy, Debug)]
struct Lazy {
    start: u64,
    end: u64,
    perm: Perm,
}

/// Why a user-memory operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceError {
    /// Not mapped (and not demand-zero), or not allowed for this access.
    BadAddress,
    /// Out of frames.
    NoMemory,
    /// Already mapped.
    Overlap,
}

struct Inner {
    lazy: Vec<Lazy>,
    /// Next free address of the anonymous area (bump allocation).
    anon_next: u64,
    /// Set by teardown; later maps fail.
    dead: bool,
}

/// One process's address space.
pub struct AddrSpace {
    root: Frame,
    inner: IrqMutex<Inner>,
    active: AtomicU64,
    root_freed: AtomicBool,
}

impl AddrSpace {
    /// A new, empty user half over the kernel half.
    pub fn new() -> Result<Arc<AddrSpace>, SpaceError> {
        let root = paging::alloc_table().ok_or(SpaceError::NoMemory)?;
        let kernel = super::kernel_space::kernel_pml4();
        for i in paging::KERNEL_PML4_START..512 {
            paging::set_root_entry(root, i, paging::root_entry(kernel, i));
        }
        Ok(Arc::new(AddrSpace {
            root,
            inner: IrqMutex::new(Inner {
                lazy: Vec::new(),
                anon_next: abi::layout::ANON_BASE,
                dead: false,
            }),
            active: AtomicU64::new(0),
            root_freed: AtomicBool::new(false),
        }))
    }

    /// Physical address of the PML4 (for CR3).
    pub fn root_phys(&self) -> u64 {
        self.root.phys()
    }

    /// Records that `cpu` loaded this space.
    pub fn mark_active(&self, cpu: usize) {
        self.active.fetch_or(1 << cpu, Ordering::SeqCst);
    }

    /// Records that `cpu` switched away from this space.
    pub fn mark_inactive(&self, cpu: usize) {
        self.active.fetch_and(!(1 << cpu), Ordering::SeqCst);
    }

    /// CPUs that have this space loaded.
    pub fn active_mask(&self) -> u64 {
        self.active.load(Ordering::SeqCst)
    }

    /// Maps a new zeroed frame at `va`.
    pub fn map_zeroed(&self, va: u64, perm: Perm) -> Result<Frame, SpaceError> {
        let f = frame::alloc().ok_or(SpaceError::NoMemory)?;
        crate::arch::zero_page(f.virt());
        match self.map_frame(va, f, perm, true) {
            Ok(()) => Ok(f),
            Err(e) => {
                frame::free(f);
                Err(e)
            }
        }
    }

    /// Maps `f` at `va`. With `owned`, the space frees it on unmap/teardown.
    pub fn map_frame(&self, va: u64, f: Frame, perm: Perm, owned: bool) -> Result<(), SpaceError> {
        check_user_page(va)?;
        let inner = self.inner.lock();
        if inner.dead {
            return Err(SpaceError::BadAddress);
        }
        let bits = perm.bits() | if owned { flags::OWNED } else { 0 };
        paging::map_4k(self.root, va, f.phys(), bits).map_err(|e| match e {
            paging::MapError::NoMemory => SpaceError::NoMemory,
            paging::MapError::AlreadyMapped => SpaceError::Overlap,
        })
    }

    /// Reserves `[start, end)` as demand-zero memory.
    pub fn add_lazy(&self, start: u64, end: u64, perm: Perm) {
        self.inner.lock().lazy.push(Lazy { start, end, perm });
    }

    /// Reserves `len` bytes (page-rounded) in the anonymous area, demand-zero
    /// read-write; returns the address.
    pub fn alloc_anon(&self, len: u64) -> Result<u64, SpaceError> {
        let len = len.checked_add(PAGE_SIZE - 1).ok_or(SpaceError::NoMemory)? & !(PAGE_SIZE - 1);
        if len == 0 {
            return Err(SpaceError::BadAddress);
        }
        let mut inner = self.inner.lock();
        if inner.lazy.len() >= MAX_LAZY_REGIONS {
            return Err(SpaceError::NoMemory);
        }
        let start = inner.anon_next;
        // One unmapped guard page after every area; areas are never reused,
        // so every area (a thread stack in particular) has an unmapped page
        // right below and right above it.
        let end = start.checked_add(len).ok_or(SpaceError::NoMemory)?;
        if end + PAGE_SIZE > abi::layout::ANON_END {
            return Err(SpaceError::NoMemory);
        }
        inner.anon_next = end + PAGE_SIZE;
        inner.lazy.push(Lazy {
            start,
            end,
            perm: Perm::RW,
        });
        Ok(start)
    }

    /// Unmaps an anonymous area `[start, start+len)` that `alloc_anon`
    /// returned (exactly), shooting down the CPUs that use this space.
    pub fn free_anon(&self, start: u64, len: u64) -> Result<(), SpaceError> {
        let len = len
            .checked_add(PAGE_SIZE - 1)
            .ok_or(SpaceError::BadAddress)?
            & !(PAGE_SIZE - 1);
        let end = start.checked_add(len).ok_or(SpaceError::BadAddress)?;
        {
            let mut inner = self.inner.lock();
            let pos = inner
                .lazy
                .iter()
                .position(|l| l.start == start && l.end == end && start >= abi::layout::ANON_BASE)
                .ok_or(SpaceError::BadAddress)?;
            inner.lazy.swap_remove(pos);
        }
        self.unmap_range(start, end);
        Ok(())
    }

    /// Unmaps every page in `[start, end)`, shoots down, then frees owned frames.
    pub fn unmap_range(&self, start: u64, end: u64) {
        let mut removed: Vec<(u64, u64, u64)> = Vec::new();
        {
            let inner = self.inner.lock();
            if inner.dead {
                return;
            }
            paging::unmap_range(self.root, start, end, &mut removed);
        }
        let freed: Vec<(u64, u64)> = removed
            .iter()
            .map(|&(va, phys, f)| {
                (
                    va,
                    if f & flags::OWNED != 0 {
                        phys
                    } else {
                        u64::MAX
                    },
                )
            })
            .collect();
        if freed.is_empty() {
            return;
        }
        let pages: Vec<u64> = freed.iter().map(|(va, _)| *va).collect();
        crate::smp::shootdown(self.active_mask(), &pages);
        for (_, phys) in freed {
            if phys != u64::MAX {
                frame::free(Frame::from_phys(phys));
            }
        }
    }

    /// Resolves a user fault at `va`: maps a zeroed page if `va` lies in a
    /// demand-zero region that allows the access. Returns whether it did.
    pub fn handle_fault(&self, va: u64, write: bool) -> bool {
        let inner = self.inner.lock();
        self.populate_locked(&inner, va, write).is_ok()
    }

    fn populate_locked(&self, inner: &Inner, va: u64, write: bool) -> Result<u64, SpaceError> {
        if inner.dead || va >= USER_END {
            return Err(SpaceError::BadAddress);
        }
        let page = va & !(PAGE_SIZE - 1);
        if let Some((phys, f)) = paging::translate(self.root, page) {
            let ok = f & flags::USER != 0 && (!write || f & flags::WRITABLE != 0);
            return if ok {
                Ok(phys)
            } else {
                Err(SpaceError::BadAddress)
            };
        }
        let region = inner
            .lazy
            .iter()
            .find(|l| page >= l.start && page < l.end)
            .ok_or(SpaceError::BadAddress)?;
        if write && !region.perm.write {
            return Err(SpaceError::BadAddress);
        }
        let f = frame::alloc().ok_or(SpaceError::NoMemory)?;
        crate::arch::zero_page(f.virt());
        if paging::map_4k(self.root, page, f.phys(), region.perm.bits() | flags::OWNED).is_err() {
            frame::free(f);
            return Err(SpaceError::NoMemory);
        }
        Ok(f.phys())
    }

    /// Runs `f` with the physical address of user byte `va`, checked for
    /// user access (and write permission when `write`), with the space
    /// locked so the page cannot be unmapped meanwhile.
    pub fn with_user_page<R>(
        &self,
        va: u64,
        write: bool,
        f: impl FnOnce(u64) -> R,
    ) -> Result<R, SpaceError> {
        let inner = self.inner.lock();
        let page_phys = self.populate_locked(&inner, va, write)?;
        Ok(f((page_phys & !(PAGE_SIZE - 1)) + (va & (PAGE_SIZE - 1))))
    }

    /// Frees the whole user half. No thread of the process may run any
    /// more; CPUs that still have the space loaded are shot down first.
    pub fn teardown(&self) {
        {
            let mut inner = self.inner.lock();
            if inner.dead {
                return;
            }
            inner.dead = true;
            inner.lazy.clear();
        }
        let detached = paging::detach_user_half(self.root);
        crate::smp::shootdown(self.active_mask(), &[]);
        paging::free_detached(&detached);
        // The PML4 itself goes back now if no CPU has it loaded (the usual
        // case: the exiting CPU left it first), else when the last
        // reference drops.
        if self.active_mask() == 0 && !self.root_freed.swap(true, Ordering::SeqCst) {
            frame::free(self.root);
        }
    }
}

impl Drop for AddrSpace {
    fn drop(&mut self) {
        self.teardown();
        if !self.root_freed.swap(true, Ordering::SeqCst) {
            frame::free(self.root);
        }
    }
}

fn check_user_page(va: u64) -> Result<(), SpaceError> {
    if !va.is_multiple_of(PAGE_SIZE) || va >= USER_END || va == 0 {
        return Err(SpaceError::BadAddress);
    }
    Ok(())
}
