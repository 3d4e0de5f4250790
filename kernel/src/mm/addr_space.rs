//! Address spaces: one user half per process over the shared kernel half.
//!
//! An [`AddrSpace`] owns its PML4 and every frame mapped `OWNED` in its user
//! half. Pages can be mapped eagerly (program images, rings, the start-up
//! block) or reserved as demand-zero regions (stacks, `MemMap`), which get
//! a zeroed frame on first touch: zeroing is ring-0 work, expensive where
//! guest kernel code is emulated, so only touched pages pay for it.
//!
//! Memory-object mappings live in their own window (`OBJ_BASE..OBJ_END`)
//! and are mapped eagerly, every page at MemObjMap time (the frames are
//! the object's, so there is nothing to fault in). Each one is recorded in
//! `objs`, keyed by start address: the provenance of a user address, which
//! object and offset back it, is one `range(..=va).next_back()` away
//! (O(log n), no scan). The space holds an `Arc` of each mapped object and
//! drops it only after the unmapping was shot down.
//!
//! `active` is the set of CPUs that have this space loaded in CR3; an
//! unmapping shoots down exactly those (and flushes locally) before the
//! frames are freed. Lock order: the space lock is taken after thread and
//! process locks and before the frame allocator's. It is a readers-writer
//! lock: user copies and park-word reads of pages already present share
//! it (sibling threads on other CPUs do not serialize); faults that fill a
//! page, map, unmap and teardown take it exclusively.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use abi::layout::{PAGE_SIZE, USER_END};
use abi::memobj::Provenance;

use super::budget::{self, Account, Kind};
use super::frame::{self, Frame};
use super::memobj::MemObject;
use super::paging::{self, flags};
use crate::sync::IrqRwLock;

/// Most demand-zero regions one address space may hold (each `MemMap` adds
/// one; a demand fault finds its region in O(log n)).
const MAX_LAZY_REGIONS: usize = 4096;

/// Pages of an object mapped between two answers to other CPUs' requests.
const OBJ_MAP_BATCH: u64 = 32;

/// Mapping ids, never reused: a parker records the mapping it parked
/// through, and unmapping wakes exactly those parkers.
static NEXT_MAP_ID: AtomicU64 = AtomicU64::new(1);

/// One memory-object mapping: `[start, end)` shows the whole object.
struct ObjMapping {
    end: u64,
    obj: Arc<MemObject>,
    id: u64,
}

/// The object mappings a teardown took out of a space, after its
/// shootdown: the caller drops them (and so, maybe, the objects' frames).
pub struct DetachedObjects(BTreeMap<u64, ObjMapping>);

impl DetachedObjects {
    /// The objects that were mapped (one entry per mapping).
    pub fn objects(self) -> impl Iterator<Item = Arc<MemObject>> {
        self.0.into_values().map(|m| m.obj)
    }
}

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
    /// Page tables charged in advance for this region (MemMap) and not yet
    /// created: a fault inside the region creates its tables from this
    /// reservation, so touching mapped memory never fails on the budget.
    reserve_left: u64,
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
    /// Demand-zero regions by start address (they never overlap).
    lazy: BTreeMap<u64, Lazy>,
    /// Next free address of the anonymous area (bump allocation).
    anon_next: u64,
    /// Memory-object mappings by start address (they never overlap).
    objs: BTreeMap<u64, ObjMapping>,
    /// Next address the kernel tries for an object mapping.
    obj_next: u64,
    /// Set by teardown; later maps fail.
    dead: bool,
}

/// One process's address space.
pub struct AddrSpace {
    root: Frame,
    inner: IrqRwLock<Inner, crate::sync::class::AddrSpace>,
    active: AtomicU64,
    root_freed: AtomicBool,
    /// Charged for the root, every user-half page table and every region.
    account: Arc<Account>,
    /// User-half page tables allocated now (charged to `account`).
    tables: AtomicU64,
}

impl AddrSpace {
    /// A new, empty user half over the kernel half, charged to `account`.
    pub fn new(account: Arc<Account>) -> Result<Arc<AddrSpace>, SpaceError> {
        account
            .charge(Kind::Frames, budget::FRAME_BYTES)
            .map_err(|_| SpaceError::NoMemory)?;
        let Some(root) = paging::alloc_table() else {
            account.uncharge(Kind::Frames, budget::FRAME_BYTES);
            return Err(SpaceError::NoMemory);
        };
        let kernel = super::kernel_space::kernel_pml4();
        for i in paging::KERNEL_PML4_START..512 {
            paging::set_root_entry(root, i, paging::root_entry(kernel, i));
        }
        Ok(Arc::new(AddrSpace {
            root,
            inner: IrqRwLock::new(Inner {
                lazy: BTreeMap::new(),
                anon_next: abi::layout::ANON_BASE,
                objs: BTreeMap::new(),
                obj_next: abi::layout::OBJ_BASE,
                dead: false,
            }),
            active: AtomicU64::new(0),
            root_freed: AtomicBool::new(false),
            account,
            tables: AtomicU64::new(0),
        }))
    }

    /// The account this space charges.
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// Maps one page, charging the page tables it creates, first from
    /// `reserve` (a region's advance charge, decremented), then from the
    /// account; the space lock is held by the caller.
    fn map_charged(
        &self,
        va: u64,
        phys: u64,
        bits: u64,
        reserve: &mut u64,
    ) -> Result<(), SpaceError> {
        // Exactly the tables this mapping creates are charged: from the
        // reservation first, the rest from the account (under the space
        // lock, so the count cannot change before map_4k).
        let needed = paging::tables_needed(self.root, va);
        let from_reserve = needed.min(*reserve);
        let extra = needed - from_reserve;
        self.account
            .charge(Kind::Frames, extra * budget::FRAME_BYTES)
            .map_err(|_| SpaceError::NoMemory)?;
        let r = paging::map_4k(self.root, va, phys, bits);
        // map_4k may fail part way (out of frames) with some tables made:
        // count what exists now, and give back what was not used, to the
        // account first, then to the reservation.
        let created = needed - paging::tables_needed(self.root, va);
        let refund = needed - created;
        let to_account = refund.min(extra);
        self.account
            .uncharge(Kind::Frames, to_account * budget::FRAME_BYTES);
        *reserve -= from_reserve - (refund - to_account);
        self.tables.fetch_add(created, Ordering::Relaxed);
        r.map(|_| ()).map_err(|e| match e {
            paging::MapError::NoMemory => SpaceError::NoMemory,
            paging::MapError::AlreadyMapped => SpaceError::Overlap,
        })
    }

    /// Gives back the charge of `n` freed page tables.
    fn tables_freed(&self, n: u64) {
        if n > 0 {
            self.tables.fetch_sub(n, Ordering::Relaxed);
            self.account.uncharge(Kind::Frames, n * budget::FRAME_BYTES);
        }
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
        let inner = self.inner.write();
        if inner.dead {
            return Err(SpaceError::BadAddress);
        }
        let bits = perm.bits() | if owned { flags::OWNED } else { 0 };
        self.map_charged(va, f.phys(), bits, &mut 0)
    }

    /// Reserves `[start, end)` as demand-zero memory (the main stack; not
    /// charged: every process has exactly one).
    pub fn add_lazy(&self, start: u64, end: u64, perm: Perm) {
        self.inner.write().lazy.insert(
            start,
            Lazy {
                start,
                end,
                perm,
                reserve_left: 0,
            },
        );
    }

    /// Reserves `len` bytes (page-rounded) in the anonymous area, demand-zero
    /// read-write; returns the address.
    pub fn alloc_anon(&self, len: u64) -> Result<u64, SpaceError> {
        let len = len.checked_add(PAGE_SIZE - 1).ok_or(SpaceError::NoMemory)? & !(PAGE_SIZE - 1);
        if len == 0 {
            return Err(SpaceError::BadAddress);
        }
        let mut inner = self.inner.write();
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
        let reserve = worst_case_tables(start, end);
        self.account
            .charge(Kind::Frames, reserve * budget::FRAME_BYTES)
            .map_err(|_| SpaceError::NoMemory)?;
        if self
            .account
            .charge(Kind::Heap, budget::REGION_HEAP_BYTES)
            .is_err()
        {
            self.account
                .uncharge(Kind::Frames, reserve * budget::FRAME_BYTES);
            return Err(SpaceError::NoMemory);
        }
        inner.anon_next = end + PAGE_SIZE;
        inner.lazy.insert(
            start,
            Lazy {
                start,
                end,
                perm: Perm::RW,
                reserve_left: reserve,
            },
        );
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
        if start < abi::layout::ANON_BASE || end > abi::layout::ANON_END {
            return Err(SpaceError::BadAddress);
        }
        {
            let mut inner = self.inner.write();
            let found = inner
                .lazy
                .get(&start)
                .is_some_and(|l| l.end == end && l.start == start);
            if !found {
                return Err(SpaceError::BadAddress);
            }
            let region = inner.lazy.remove(&start);
            let left = region.map_or(0, |l| l.reserve_left);
            self.account
                .uncharge(Kind::Frames, left * budget::FRAME_BYTES);
        }
        self.account.uncharge(Kind::Heap, budget::REGION_HEAP_BYTES);
        self.unmap_range(start, end);
        Ok(())
    }

    /// Unmaps every page in `[start, end)`, shoots down, then frees owned
    /// frames and the page tables that became empty. Works in batches of
    /// [`paging::UNMAP_BATCH`], with no heap allocation, answering other
    /// CPUs' requests between batches: a huge range never keeps a CPU in
    /// the kernel without a preemption point.
    pub fn unmap_range(&self, start: u64, end: u64) {
        let mut at = start;
        while at < end {
            let mut batch = paging::UnmapBatch::new();
            {
                let inner = self.inner.write();
                if inner.dead {
                    return;
                }
                at = paging::unmap_step(self.root, at, end, &mut batch);
            }
            if batch.nleaves == 0 && batch.ntables == 0 {
                continue;
            }
            if batch.ntables == 0 && batch.nleaves <= crate::smp::MAX_SHOOTDOWN_PAGES {
                let mut pages = [0u64; paging::UNMAP_BATCH];
                for (p, va) in pages.iter_mut().zip(batch.leaf_vas()) {
                    *p = va;
                }
                crate::smp::shootdown(self.active_mask(), &pages[..batch.nleaves]);
            } else {
                // Unhooked tables may sit in paging-structure caches:
                // flush everything.
                crate::smp::shootdown(self.active_mask(), &[]);
            }
            let tables = batch.free();
            self.tables_freed(tables);
            crate::smp::answer_requests();
        }
    }

    /// Resolves a user fault at `va`: maps a zeroed page if `va` lies in a
    /// demand-zero region that allows the access. Returns whether it did.
    pub fn handle_fault(&self, va: u64, write: bool) -> bool {
        let mut inner = self.inner.write();
        self.populate_locked(&mut inner, va, write).is_ok()
    }

    /// The page frame of `va` if it is mapped already (checked for user
    /// access, and write permission when `write`); `None` when it is not
    /// present yet (a demand-zero page [`Self::populate_locked`] would
    /// fill). Needs the space lock only for reading: the common case of a
    /// user copy or a park on a mapped word, so sibling threads on other
    /// CPUs do not serialize on their shared space.
    fn present_locked(
        &self,
        inner: &Inner,
        va: u64,
        write: bool,
    ) -> Option<Result<u64, SpaceError>> {
        if inner.dead || va >= USER_END {
            return Some(Err(SpaceError::BadAddress));
        }
        let (phys, f) = paging::translate(self.root, va & !(PAGE_SIZE - 1))?;
        let ok = f & flags::USER != 0 && (!write || f & flags::WRITABLE != 0);
        Some(if ok {
            Ok(phys)
        } else {
            Err(SpaceError::BadAddress)
        })
    }

    fn populate_locked(&self, inner: &mut Inner, va: u64, write: bool) -> Result<u64, SpaceError> {
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
            .range_mut(..=page)
            .next_back()
            .map(|(_, l)| l)
            .filter(|l| page < l.end)
            .ok_or(SpaceError::BadAddress)?;
        if write && !region.perm.write {
            return Err(SpaceError::BadAddress);
        }
        let f = frame::alloc().ok_or(SpaceError::NoMemory)?;
        crate::arch::zero_page(f.virt());
        let bits = region.perm.bits() | flags::OWNED;
        if self
            .map_charged(page, f.phys(), bits, &mut region.reserve_left)
            .is_err()
        {
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
        {
            let inner = self.inner.read();
            if let Some(page_phys) = self.present_locked(&inner, va, write) {
                return Ok(f((page_phys? & !(PAGE_SIZE - 1)) + (va & (PAGE_SIZE - 1))));
            }
        }
        let mut inner = self.inner.write();
        let page_phys = self.populate_locked(&mut inner, va, write)?;
        Ok(f((page_phys & !(PAGE_SIZE - 1)) + (va & (PAGE_SIZE - 1))))
    }

    /// Maps all of `obj` (read-only, or read-write with `write`) at
    /// `fixed`, or at an address the kernel picks in the object window;
    /// returns (address, mapping id). Every page is mapped now, in batches
    /// with other CPUs' requests answered in between; the mapping is
    /// recorded first, so a sibling's MemObjUnmap of it meanwhile ends
    /// this map with `BadAddress` and leaves nothing behind.
    pub fn map_object(
        &self,
        obj: &Arc<MemObject>,
        write: bool,
        fixed: Option<u64>,
    ) -> Result<(u64, u64), SpaceError> {
        let len = obj.len_bytes();
        self.account
            .charge(Kind::Heap, budget::REGION_HEAP_BYTES)
            .map_err(|_| SpaceError::NoMemory)?;
        let id = NEXT_MAP_ID.fetch_add(1, Ordering::Relaxed);
        let placed = {
            let mut inner = self.inner.write();
            let r = if inner.dead {
                Err(SpaceError::BadAddress)
            } else if inner.objs.len() >= abi::limits::MEMOBJ_MAPPINGS_MAX {
                Err(SpaceError::NoMemory)
            } else {
                place_object(&mut inner, len, fixed)
            };
            if let Ok(start) = r {
                let m = ObjMapping {
                    end: start + len,
                    obj: obj.clone(),
                    id,
                };
                inner.objs.insert(start, m);
            }
            r
        };
        let start = match placed {
            Ok(s) => s,
            Err(e) => {
                self.account.uncharge(Kind::Heap, budget::REGION_HEAP_BYTES);
                return Err(e);
            }
        };
        let perm = if write { Perm::RW } else { Perm::RO };
        match self.populate_object(obj, start, id, perm.bits()) {
            Ok(()) => Ok((start, id)),
            Err(e) => {
                let removed = {
                    let mut inner = self.inner.write();
                    let ours = inner.objs.get(&start).is_some_and(|m| m.id == id);
                    if ours {
                        inner.objs.remove(&start)
                    } else {
                        None
                    }
                };
                // Not ours any more: a sibling's unmap took it (and its charge).
                if let Some(m) = removed {
                    self.unmap_range(start, m.end);
                    self.account.uncharge(Kind::Heap, budget::REGION_HEAP_BYTES);
                    drop(m);
                }
                Err(e)
            }
        }
    }

    /// Maps every page of `obj` at `start` while mapping `id` is still
    /// recorded there.
    fn populate_object(
        &self,
        obj: &MemObject,
        start: u64,
        id: u64,
        bits: u64,
    ) -> Result<(), SpaceError> {
        let mut page = 0;
        while page < obj.pages() {
            {
                let inner = self.inner.write();
                if inner.dead || inner.objs.get(&start).is_none_or(|m| m.id != id) {
                    return Err(SpaceError::BadAddress);
                }
                let stop = (page + OBJ_MAP_BATCH).min(obj.pages());
                while page < stop {
                    let f = obj.frame(page).ok_or(SpaceError::BadAddress)?;
                    self.map_charged(start + page * PAGE_SIZE, f.phys(), bits, &mut 0)?;
                    page += 1;
                }
            }
            crate::smp::answer_requests();
        }
        Ok(())
    }

    /// Unmaps the object mapping that starts exactly at `start`, shooting
    /// down the CPUs that use this space; returns the object and the
    /// mapping's id (the caller drops the object after waking parkers).
    pub fn unmap_object(&self, start: u64) -> Result<(Arc<MemObject>, u64), SpaceError> {
        let m = {
            let mut inner = self.inner.write();
            if inner.dead {
                return Err(SpaceError::BadAddress);
            }
            inner.objs.remove(&start).ok_or(SpaceError::BadAddress)?
        };
        self.unmap_range(start, m.end);
        self.account.uncharge(Kind::Heap, budget::REGION_HEAP_BYTES);
        Ok((m.obj, m.id))
    }

    /// Which object mapping backs `va`, if any: its provenance and id.
    pub fn provenance(&self, va: u64) -> Option<(Provenance, u64)> {
        provenance_locked(&self.inner.read(), va)
    }

    /// Runs `f` with the physical address of the user byte `va` (checked
    /// readable, as [`Self::with_user_page`]) and the provenance of `va`,
    /// both read under one hold of the space lock.
    pub fn with_user_word<R>(
        &self,
        va: u64,
        f: impl FnOnce(u64, Option<(Provenance, u64)>) -> R,
    ) -> Result<R, SpaceError> {
        {
            let inner = self.inner.read();
            if let Some(page_phys) = self.present_locked(&inner, va, false) {
                let prov = provenance_locked(&inner, va);
                return Ok(f(
                    (page_phys? & !(PAGE_SIZE - 1)) + (va & (PAGE_SIZE - 1)),
                    prov,
                ));
            }
        }
        let mut inner = self.inner.write();
        let page_phys = self.populate_locked(&mut inner, va, false)?;
        let prov = provenance_locked(&inner, va);
        Ok(f(
            (page_phys & !(PAGE_SIZE - 1)) + (va & (PAGE_SIZE - 1)),
            prov,
        ))
    }

    /// Frees the whole user half. No thread of the process may run any
    /// more; CPUs that still have the space loaded are shot down first.
    pub fn teardown(&self) -> DetachedObjects {
        self.teardown_with(true)
    }

    /// [`Self::teardown`]; with `poll`, answers other CPUs' requests while
    /// freeing (only when the caller holds no lock: not from `drop`, which
    /// may run wherever the last reference goes).
    fn teardown_with(&self, poll: bool) -> DetachedObjects {
        let objs = {
            let mut inner = self.inner.write();
            if inner.dead {
                return DetachedObjects(BTreeMap::new());
            }
            inner.dead = true;
            // The main stack region is not charged; every MemMap region is,
            // with its unused page-table reservation.
            let charged = inner
                .lazy
                .values()
                .filter(|l| l.start < abi::layout::ANON_END)
                .count() as u64;
            let reserved: u64 = inner.lazy.values().map(|l| l.reserve_left).sum();
            inner.lazy.clear();
            self.account
                .uncharge(Kind::Heap, charged * budget::REGION_HEAP_BYTES);
            self.account
                .uncharge(Kind::Frames, reserved * budget::FRAME_BYTES);
            let objs = core::mem::take(&mut inner.objs);
            self.account
                .uncharge(Kind::Heap, objs.len() as u64 * budget::REGION_HEAP_BYTES);
            objs
        };
        let detached = paging::detach_user_half(self.root);
        crate::smp::shootdown(self.active_mask(), &[]);
        let tables = paging::free_detached(&detached, poll);
        self.tables_freed(tables);
        // The PML4 itself goes back now if no CPU has it loaded (the usual
        // case: the exiting CPU left it first), else when the last
        // reference drops.
        if self.active_mask() == 0 && !self.root_freed.swap(true, Ordering::SeqCst) {
            self.free_root();
        }
        // Only now, after the shootdown, may the objects' frames go.
        DetachedObjects(objs)
    }

    fn free_root(&self) {
        frame::free(self.root);
        self.account.uncharge(Kind::Frames, budget::FRAME_BYTES);
    }
}

impl Drop for AddrSpace {
    fn drop(&mut self) {
        drop(self.teardown_with(false));
        if !self.root_freed.swap(true, Ordering::SeqCst) {
            self.free_root();
        }
    }
}

/// The mapping that covers `va`, as provenance and mapping id.
fn provenance_locked(inner: &Inner, va: u64) -> Option<(Provenance, u64)> {
    let (&start, m) = inner.objs.range(..=va).next_back()?;
    (va < m.end).then(|| {
        (
            Provenance {
                start,
                end: m.end,
                object: m.obj.id(),
                offset: 0,
            },
            m.id,
        )
    })
}

/// The end of a mapping that meets `[start, end)`, if one does.
fn blocking_mapping(inner: &Inner, start: u64, end: u64) -> Option<u64> {
    if let Some((_, m)) = inner.objs.range(..start).next_back() {
        if m.end > start {
            return Some(m.end);
        }
    }
    inner.objs.range(start..end).next().map(|(_, m)| m.end)
}

/// Chooses where an object mapping of `len` bytes goes: `fixed` (checked,
/// `Overlap` if taken) or the next free address of the window, skipping
/// past fixed mappings in the way (at most one step per mapping), with an
/// unmapped guard page after each kernel-picked mapping.
fn place_object(inner: &mut Inner, len: u64, fixed: Option<u64>) -> Result<u64, SpaceError> {
    if let Some(addr) = fixed {
        abi::memobj::check_fixed(addr, len).map_err(|_| SpaceError::BadAddress)?;
        return match blocking_mapping(inner, addr, addr + len) {
            Some(_) => Err(SpaceError::Overlap),
            None => Ok(addr),
        };
    }
    let mut start = inner.obj_next;
    for _ in 0..=abi::limits::MEMOBJ_MAPPINGS_MAX {
        let end = start
            .checked_add(len)
            .filter(|&e| e + PAGE_SIZE <= abi::layout::OBJ_END)
            .ok_or(SpaceError::NoMemory)?;
        match blocking_mapping(inner, start, end) {
            Some(past) => start = past + PAGE_SIZE,
            None => {
                inner.obj_next = end + PAGE_SIZE;
                return Ok(start);
            }
        }
    }
    Err(SpaceError::NoMemory)
}

/// The most page tables (PT, PD, PDPT) that mapping every page of
/// `[start, end)` can create: every table whose span meets the range.
fn worst_case_tables(start: u64, end: u64) -> u64 {
    [21u32, 30, 39]
        .iter()
        .map(|&shift| ((end - 1) >> shift) - (start >> shift) + 1)
        .sum()
}

fn check_user_page(va: u64) -> Result<(), SpaceError> {
    if !va.is_multiple_of(PAGE_SIZE) || va >= USER_END || va == 0 {
        return Err(SpaceError::BadAddress);
    }
    Ok(())
}
