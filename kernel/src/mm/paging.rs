//! x86-64 four-level page tables, edited through the direct map.
//!
//! This module owns the page-table format: entries, flags, walking,
//! mapping and unmapping 4 KiB pages, and tearing down a user half. It does
//! not decide what to map (that is `addr_space` and the boot code) and it
//! does no TLB maintenance (callers flush, or shoot down, after changes).
//! Callers serialize edits of one tree (the address space lock).
#![allow(unsafe_code)]

use super::frame::{self, Frame};
use crate::arch;

/// Page-table entry flags (Intel SDM vol. 3, 4.5).
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible.
    pub const USER: u64 = 1 << 2;
    /// Write-through.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Cache disable.
    pub const NO_CACHE: u64 = 1 << 4;
    /// Large page (in a PDPTE or PDE).
    pub const HUGE: u64 = 1 << 7;
    /// Global (not flushed on CR3 writes).
    pub const GLOBAL: u64 = 1 << 8;
    /// Software: the address space owns the frame and frees it on unmap.
    pub const OWNED: u64 = 1 << 9;
    /// No execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Physical-address bits of an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// The first kernel-half PML4 index.
pub const KERNEL_PML4_START: usize = 256;

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    NoMemory,
    /// Something is already mapped there.
    AlreadyMapped,
}

fn table(frame_phys: u64) -> *mut [u64; 512] {
    super::phys_to_virt(frame_phys) as *mut [u64; 512]
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 511) as usize
}

/// Allocates and zeroes a frame for a page table.
pub fn alloc_table() -> Option<Frame> {
    let f = frame::alloc()?;
    arch::zero_page(f.virt());
    Some(f)
}

/// Maps the 4 KiB page at `va` to `phys` with `leaf_flags` (PRESENT is
/// added). Intermediate tables get PRESENT|WRITABLE, plus USER in the
/// user half. Returns how many tables it created (at most 3: PDPT, PD,
/// PT); [`tables_needed`] tells the count beforehand.
pub fn map_4k(root: Frame, va: u64, phys: u64, leaf_flags: u64) -> Result<u64, MapError> {
    let user = va < 0x0000_8000_0000_0000;
    let inter = flags::PRESENT | flags::WRITABLE | if user { flags::USER } else { 0 };
    let mut t = root.phys();
    let mut created = 0;
    for level in (1..4).rev() {
        // SAFETY: `t` is a page-table frame of this tree (the root or an
        // entry's target); the direct map covers it; the caller serializes
        // edits of this tree.
        let entry = unsafe { &mut (*table(t))[index(va, level)] };
        if *entry & flags::PRESENT == 0 {
            let f = alloc_table().ok_or(MapError::NoMemory)?;
            *entry = f.phys() | inter;
            created += 1;
        } else if *entry & flags::HUGE != 0 {
            return Err(MapError::AlreadyMapped);
        }
        t = *entry & ADDR_MASK;
    }
    // SAFETY: as above; `t` is now the level-1 table.
    let entry = unsafe { &mut (*table(t))[index(va, 0)] };
    if *entry & flags::PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *entry = (phys & ADDR_MASK) | leaf_flags | flags::PRESENT;
    Ok(created)
}

/// How many intermediate tables [`map_4k`] would create to map `va` now
/// (the caller serializes edits of this tree).
pub fn tables_needed(root: Frame, va: u64) -> u64 {
    let mut t = root.phys();
    for level in (1..4).rev() {
        // SAFETY: `t` is a page-table frame of this tree; read only.
        let e = unsafe { (*table(t))[index(va, level)] };
        if e & flags::PRESENT == 0 {
            return u64::from(level);
        }
        if e & flags::HUGE != 0 {
            return 0;
        }
        t = e & ADDR_MASK;
    }
    0
}

/// Removes the 4 KiB mapping at `va`; returns the old entry's physical
/// address and flags. The caller flushes the TLB.
pub fn unmap_4k(root: Frame, va: u64) -> Option<(u64, u64)> {
    let entry = leaf_entry(root, va)?;
    // SAFETY: `leaf_entry` returned a pointer into a level-1 table of this tree.
    let old = unsafe { core::ptr::replace(entry, 0) };
    Some((old & ADDR_MASK, old & !ADDR_MASK))
}

/// Capacity of an [`UnmapBatch`]: pages and detached tables per step.
pub const UNMAP_BATCH: usize = 32;

/// What one [`unmap_step`] took out of a tree: leaf pages and whole
/// detached subtrees, to be freed once the TLBs are shot down.
pub struct UnmapBatch {
    /// (va, old entry) of each removed 4 KiB page.
    pub leaves: [(u64, u64); UNMAP_BATCH],
    /// Number of valid `leaves`.
    pub nleaves: usize,
    /// (table physical address, its level) of each unhooked subtree:
    /// level 0 is a page table, whose owned leaves are freed with it.
    pub tables: [(u64, u32); UNMAP_BATCH],
    /// Number of valid `tables`.
    pub ntables: usize,
}

impl UnmapBatch {
    /// An empty batch.
    pub const fn new() -> UnmapBatch {
        UnmapBatch {
            leaves: [(0, 0); UNMAP_BATCH],
            nleaves: 0,
            tables: [(0, 0); UNMAP_BATCH],
            ntables: 0,
        }
    }

    /// Virtual addresses of the removed leaves (for a targeted shootdown).
    pub fn leaf_vas(&self) -> impl Iterator<Item = u64> + '_ {
        self.leaves[..self.nleaves].iter().map(|l| l.0)
    }

    /// Frees what the batch holds: owned leaf frames and detached subtrees.
    /// Only after every CPU that used the tree flushed its TLB, and with no
    /// lock held (it answers other CPUs' requests between page tables).
    /// Returns the number of page-table frames freed.
    pub fn free(&mut self) -> u64 {
        for &(_, e) in &self.leaves[..self.nleaves] {
            if e & flags::OWNED != 0 {
                frame::free(Frame::from_phys(e & ADDR_MASK));
            }
        }
        let mut tables = 0;
        for &(t, level) in &self.tables[..self.ntables] {
            tables += free_subtree(t, level, true);
        }
        self.nleaves = 0;
        self.ntables = 0;
        tables
    }
}

impl Default for UnmapBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes 4 KiB mappings in `[start, end)` of the user half until the
/// batch is full: subtrees that lie wholly inside the range are unhooked
/// at once (their pages are freed with them), tables that become empty are
/// unhooked too, and absent subtrees are skipped. Returns the address to
/// resume from (`>= end` when the range is done). The caller serializes
/// edits of the tree, shoots down, then frees the batch.
pub fn unmap_step(root: Frame, start: u64, end: u64, b: &mut UnmapBatch) -> u64 {
    if start >= end {
        return end;
    }
    match unmap_walk(root.phys(), 3, 0, start, end, b) {
        Ok(()) => end,
        Err(resume) => resume,
    }
}

fn table_empty(t: u64) -> bool {
    // SAFETY: `t` is a table of this tree; read only.
    unsafe { (*table(t)).iter().all(|e| e & flags::PRESENT == 0) }
}

fn unmap_walk(
    t: u64,
    level: u32,
    base: u64,
    start: u64,
    end: u64,
    b: &mut UnmapBatch,
) -> Result<(), u64> {
    let span = 1u64 << (12 + 9 * level);
    let lo = start.max(base);
    let hi = end.min(base.saturating_add(512 * span));
    if lo >= hi {
        return Ok(());
    }
    let first = ((lo - base) / span) as usize;
    let last = ((hi - 1 - base) / span) as usize;
    for i in first..=last {
        // SAFETY: `t` is a table of this tree (the root or a present
        // entry's target); the caller serializes edits of the tree.
        let entry = unsafe { &mut (*table(t))[i] };
        if *entry & flags::PRESENT == 0 || (level > 0 && *entry & flags::HUGE != 0) {
            continue;
        }
        let va = base + i as u64 * span;
        if level == 0 {
            if b.nleaves == UNMAP_BATCH {
                return Err(va);
            }
            let old = core::mem::replace(entry, 0);
            b.leaves[b.nleaves] = (va, old);
            b.nleaves += 1;
            continue;
        }
        let child = *entry & ADDR_MASK;
        let whole = va >= start && va.checked_add(span).is_some_and(|e| e <= end);
        if whole {
            if b.ntables == UNMAP_BATCH {
                return Err(va);
            }
            *entry = 0;
            b.tables[b.ntables] = (child, level - 1);
            b.ntables += 1;
            continue;
        }
        unmap_walk(child, level - 1, va, start, end, b)?;
        if b.ntables < UNMAP_BATCH && table_empty(child) {
            *entry = 0;
            b.tables[b.ntables] = (child, level - 1);
            b.ntables += 1;
        }
    }
    Ok(())
}

/// The physical address and flags `va` maps to, if any (4 KiB, 2 MiB and
/// 1 GiB pages).
pub fn translate(root: Frame, va: u64) -> Option<(u64, u64)> {
    let mut t = root.phys();
    for level in (0..4).rev() {
        // SAFETY: `t` is a page-table frame of this tree, read only.
        let e = unsafe { (*table(t))[index(va, level)] };
        if e & flags::PRESENT == 0 {
            return None;
        }
        if level == 0 || e & flags::HUGE != 0 {
            let page = 1u64 << (12 + 9 * level);
            let base = e & ADDR_MASK & !(page - 1);
            return Some((base + (va & (page - 1)), e & !ADDR_MASK));
        }
        t = e & ADDR_MASK;
    }
    None
}

fn leaf_entry(root: Frame, va: u64) -> Option<*mut u64> {
    let mut t = root.phys();
    for level in (1..4).rev() {
        // SAFETY: as in `translate`.
        let e = unsafe { (*table(t))[index(va, level)] };
        if e & flags::PRESENT == 0 || e & flags::HUGE != 0 {
            return None;
        }
        t = e & ADDR_MASK;
    }
    // SAFETY: `t` is a level-1 table of this tree; the pointer stays in it.
    let e = unsafe { &mut (*table(t))[index(va, 0)] };
    if *e & flags::PRESENT == 0 {
        return None;
    }
    Some(e as *mut u64)
}

/// Writes entry `i` of the root table directly (boot: kernel half).
pub fn set_root_entry(root: Frame, i: usize, value: u64) {
    // SAFETY: `root` is a PML4 frame the caller owns; i < 512 is checked by indexing.
    unsafe { (*table(root.phys()))[i] = value };
}

/// Reads entry `i` of the root table.
pub fn root_entry(root: Frame, i: usize) -> u64 {
    // SAFETY: as above, read only.
    unsafe { (*table(root.phys()))[i] }
}

/// Maps `[phys, phys + len)` at `va` with huge pages of `1 << shift` bytes
/// (shift 21 or 30) under `root`, for the kernel's direct map.
pub fn map_huge_range(
    root: Frame,
    va: u64,
    phys: u64,
    len: u64,
    shift: u32,
    leaf_flags: u64,
) -> Result<(), MapError> {
    let page = 1u64 << shift;
    let stop_level = if shift == 30 { 2 } else { 1 };
    let mut off = 0;
    while off < len {
        let v = va + off;
        let mut t = root.phys();
        for level in ((stop_level + 1)..4).rev() {
            // SAFETY: `t` is a table of the kernel tree being built at boot,
            // before any other CPU runs.
            let entry = unsafe { &mut (*table(t))[index(v, level)] };
            if *entry & flags::PRESENT == 0 {
                let f = alloc_table().ok_or(MapError::NoMemory)?;
                *entry = f.phys() | flags::PRESENT | flags::WRITABLE;
            }
            t = *entry & ADDR_MASK;
        }
        // SAFETY: as above.
        let entry = unsafe { &mut (*table(t))[index(v, stop_level)] };
        *entry = (phys + off) | leaf_flags | flags::PRESENT | flags::HUGE;
        off += page;
    }
    Ok(())
}

/// Unhooks the user half of `root` (PML4 entries 0..256): clears the
/// entries and returns the detached PDPTs. After a TLB flush of every CPU
/// that used `root`, [`free_detached`] frees them.
pub fn detach_user_half(root: Frame) -> alloc::vec::Vec<u64> {
    let mut detached = alloc::vec::Vec::new();
    for i in 0..KERNEL_PML4_START {
        let e = root_entry(root, i);
        if e & flags::PRESENT != 0 {
            set_root_entry(root, i, 0);
            detached.push(e & ADDR_MASK);
        }
    }
    detached
}

/// Frees detached user subtrees: every owned leaf frame and every table.
/// Returns the number of page-table frames freed. With `poll`, answers
/// other CPUs' requests as it goes (the caller holds no lock).
pub fn free_detached(pdpts: &[u64], poll: bool) -> u64 {
    pdpts.iter().map(|t| free_subtree(*t, 2, poll)).sum()
}

/// Frees the subtree rooted at table `t` of `level` (0 = a page table):
/// its owned leaf frames and its tables. With `poll`, answers other CPUs'
/// requests after each page table, so freeing a huge tree never keeps a
/// shootdown waiting (issue 11: bounded work with interrupts off); only a
/// caller that holds no lock may poll. Returns the number of tables freed.
fn free_subtree(t: u64, level: u32, poll: bool) -> u64 {
    let mut tables = 1;
    for i in 0..512 {
        // SAFETY: `t` is a user-half table of a tree no CPU uses any more.
        let e = unsafe { (*table(t))[i] };
        if e & flags::PRESENT == 0 {
            continue;
        }
        if level == 0 {
            if e & flags::OWNED != 0 {
                frame::free(Frame::from_phys(e & ADDR_MASK));
            }
        } else if e & flags::HUGE == 0 {
            tables += free_subtree(e & ADDR_MASK, level - 1, poll);
        }
    }
    frame::free(Frame::from_phys(t));
    if poll && level == 0 {
        crate::smp::answer_requests();
    }
    tables
}
