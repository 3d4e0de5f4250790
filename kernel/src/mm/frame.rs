//! The physical frame allocator.
//!
//! Built once from the Multiboot2 memory map minus everything in use at
//! boot (low memory, the kernel image, the boot information, the modules).
//! Free memory is kept as a list of ranges that are carved from the front,
//! plus a stack of frames given back. Neither needs a pass over the frames
//! at boot (guest kernel code is emulated on our KVM, so a per-frame pass
//! over 512 MiB would take seconds). Frames are handed out as [`Frame`]
//! values; `free_frames` counts what is left so smokes can check that
//! processes give back everything they took.
//!
//! The allocator never reads or writes frame contents: zeroing is the
//! caller's job (only pages that reach user space or become page tables
//! need it).
//!
//! Per-CPU magazines (`klib::magazine`) sit in front of the global
//! allocator: [`alloc`] and [`free`] take only this CPU's cache lock, and
//! go to the global lock once per batch ([`CACHE_BATCH`] frames) when the
//! cache runs empty or full. When the global allocator is empty, an
//! allocation takes a frame from another CPU's cache before it fails, so
//! no frame is out of reach. Cached frames are free frames: [`free_frames`]
//! is the global count plus every cache's count (exact whenever no frame
//! is moving, as at the end of a scenario). While some CPU may run without
//! its per-CPU block (boot, AP bring-up) every CPU uses the global
//! allocator directly.
//!
//! Lock order: a CPU's cache, then the global allocator (then the heap,
//! when the freed list grows); one cache at a time.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use klib::magazine::{self, Magazine};

use crate::arch::acpi::MAX_CPUS;
use crate::arch::percpu::cpu_id_checked;
use crate::sync::{class, CachePadded, IrqMutex};

/// A 4 KiB-aligned physical frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame(u64);

impl Frame {
    /// The frame at `phys`, which must be page-aligned.
    pub fn from_phys(phys: u64) -> Frame {
        assert_eq!(phys % super::PAGE_SIZE, 0, "unaligned frame {phys:#x}");
        Frame(phys)
    }
    /// Its physical address.
    pub fn phys(self) -> u64 {
        self.0
    }
    /// Its direct-map address.
    pub fn virt(self) -> u64 {
        super::phys_to_virt(self.0)
    }
}

/// A half-open physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Most free ranges tracked before the heap exists.
const MAX_RANGES: usize = 64;

struct Allocator {
    ranges: [PhysRange; MAX_RANGES],
    nranges: usize,
    /// Frames given back; `None` until the heap exists (frames freed before
    /// that would be lost, and none are).
    freed: Option<Vec<Frame>>,
}

static ALLOCATOR: IrqMutex<Allocator, class::FrameGlobal> = IrqMutex::new(Allocator {
    ranges: [PhysRange { start: 0, end: 0 }; MAX_RANGES],
    nranges: 0,
    freed: None,
});
/// Frames in the global allocator (changed under its lock, read without).
static FREE_FRAMES: AtomicU64 = AtomicU64::new(0);
static TOTAL_FRAMES: AtomicU64 = AtomicU64::new(0);

/// Frames one CPU's cache holds at most.
pub const CACHE_FRAMES: usize = 64;
/// Frames moved between a cache and the global allocator at once.
pub const CACHE_BATCH: usize = magazine::batch(CACHE_FRAMES);

/// One CPU's frame cache (physical addresses) and its size, readable
/// without the lock for [`free_frames`]; on its own cache line.
struct Cache {
    frames: IrqMutex<Magazine<u64, CACHE_FRAMES>, class::FrameCache>,
    count: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_CACHE: CachePadded<Cache> = CachePadded(Cache {
    frames: IrqMutex::new(Magazine::new(0)),
    count: AtomicU64::new(0),
});
static CACHES: [CachePadded<Cache>; MAX_CPUS] = [EMPTY_CACHE; MAX_CPUS];

/// Sets up the allocator with `available` RAM minus `reserved` ranges.
/// Returns the highest physical address of available RAM.
pub fn init(available: &[PhysRange], reserved: &[PhysRange]) -> u64 {
    let mut a = ALLOCATOR.lock();
    let mut top = 0;
    for r in available {
        top = top.max(r.end);
        let mut pieces = Ranges::one(PhysRange {
            start: page_up(r.start),
            end: page_down(r.end),
        });
        for res in reserved {
            pieces = subtract(&pieces, res);
        }
        for p in pieces.iter().filter(|p| p.end > p.start) {
            if a.nranges < MAX_RANGES {
                let n = a.nranges;
                a.ranges[n] = *p;
                a.nranges += 1;
                FREE_FRAMES.fetch_add((p.end - p.start) / super::PAGE_SIZE, Ordering::Relaxed);
            }
        }
    }
    TOTAL_FRAMES.store(FREE_FRAMES.load(Ordering::Relaxed), Ordering::Relaxed);
    top
}

/// Enables giving frames back (called once the heap works).
pub fn enable_free_list() {
    ALLOCATOR.lock().freed = Some(Vec::with_capacity(1024));
}

/// Takes one frame, or `None` when memory is exhausted.
pub fn alloc() -> Option<Frame> {
    let Some(cpu) = cpu_id_checked() else {
        return alloc_global();
    };
    alloc_cached(cpu).or_else(|| alloc_from_other_caches(cpu))
}

/// From this CPU's cache, refilling it with a batch when it is empty;
/// `None` only when the global allocator is empty too.
fn alloc_cached(cpu: usize) -> Option<Frame> {
    let c = &CACHES[cpu];
    let mut m = c.frames.lock();
    if m.is_empty() {
        let mut a = ALLOCATOR.lock();
        let n = m.refill(CACHE_BATCH, || take_one(&mut a)) as u64;
        FREE_FRAMES.fetch_sub(n, Ordering::Relaxed);
        c.count.fetch_add(n, Ordering::Relaxed);
    }
    let f = m.pop()?;
    c.count.fetch_sub(1, Ordering::Relaxed);
    Some(Frame(f))
}

/// The global allocator is empty: take a frame another CPU has cached.
fn alloc_from_other_caches(me: usize) -> Option<Frame> {
    (0..MAX_CPUS).filter(|&cpu| cpu != me).find_map(|cpu| {
        let c = &CACHES[cpu];
        let f = c.frames.lock().pop()?;
        c.count.fetch_sub(1, Ordering::Relaxed);
        Some(Frame(f))
    })
}

fn alloc_global() -> Option<Frame> {
    let f = take_one(&mut ALLOCATOR.lock())?;
    FREE_FRAMES.fetch_sub(1, Ordering::Relaxed);
    Some(Frame(f))
}

/// One frame from the freed list or the ranges (caller holds the lock).
fn take_one(a: &mut Allocator) -> Option<u64> {
    match a.freed.as_mut().and_then(|v| v.pop()) {
        Some(f) => Some(f.0),
        None => carve(a, 1).map(Frame::phys),
    }
}

/// Takes `count` physically contiguous frames (boot-time use: the heap, stacks).
pub fn alloc_contiguous(count: u64) -> Option<Frame> {
    let mut a = ALLOCATOR.lock();
    let f = carve(&mut a, count);
    if f.is_some() {
        FREE_FRAMES.fetch_sub(count, Ordering::Relaxed);
    }
    f
}

/// Gives a frame back (to this CPU's cache; a full cache first gives a
/// batch to the global allocator).
pub fn free(frame: Frame) {
    let Some(cpu) = cpu_id_checked() else {
        let mut a = ALLOCATOR.lock();
        give_back(&mut a, frame.0);
        FREE_FRAMES.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let c = &CACHES[cpu];
    let mut m = c.frames.lock();
    if m.is_full(CACHE_FRAMES) {
        let mut a = ALLOCATOR.lock();
        let n = m.drain(CACHE_FRAMES - CACHE_BATCH, |f| give_back(&mut a, f)) as u64;
        FREE_FRAMES.fetch_add(n, Ordering::Relaxed);
        c.count.fetch_sub(n, Ordering::Relaxed);
    }
    let pushed = m.push(frame.0, CACHE_FRAMES);
    assert!(pushed.is_ok(), "frame cache full after a drain");
    c.count.fetch_add(1, Ordering::Relaxed);
}

fn give_back(a: &mut Allocator, phys: u64) {
    a.freed
        .as_mut()
        .expect("frame freed before the heap exists")
        .push(Frame(phys));
}

/// Frames currently free: in the global allocator or in a CPU's cache.
pub fn free_frames() -> u64 {
    let cached: u64 = CACHES.iter().map(|c| c.count.load(Ordering::Relaxed)).sum();
    FREE_FRAMES.load(Ordering::Relaxed) + cached
}

/// Frames managed in total.
pub fn total_frames() -> u64 {
    TOTAL_FRAMES.load(Ordering::Relaxed)
}

fn carve(a: &mut Allocator, count: u64) -> Option<Frame> {
    let bytes = count * super::PAGE_SIZE;
    let n = a.nranges;
    let r = a.ranges[..n]
        .iter_mut()
        .find(|r| r.end - r.start >= bytes)?;
    let f = Frame(r.start);
    r.start += bytes;
    Some(f)
}

fn page_up(x: u64) -> u64 {
    x.saturating_add(super::PAGE_SIZE - 1) & !(super::PAGE_SIZE - 1)
}

fn page_down(x: u64) -> u64 {
    x & !(super::PAGE_SIZE - 1)
}

/// A small fixed-capacity list of ranges (no heap at boot).
#[derive(Clone, Copy)]
struct Ranges {
    items: [PhysRange; 8],
    len: usize,
}

impl Ranges {
    fn one(r: PhysRange) -> Ranges {
        let mut out = Ranges {
            items: [PhysRange { start: 0, end: 0 }; 8],
            len: 0,
        };
        out.push(r);
        out
    }
    fn iter(&self) -> impl Iterator<Item = &PhysRange> {
        self.items[..self.len].iter()
    }
    fn push(&mut self, r: PhysRange) {
        if self.len < self.items.len() {
            self.items[self.len] = r;
            self.len += 1;
        }
    }
}

/// `pieces` minus `cut` (each piece splits into at most two).
fn subtract(pieces: &Ranges, cut: &PhysRange) -> Ranges {
    let mut out = Ranges {
        items: [PhysRange { start: 0, end: 0 }; 8],
        len: 0,
    };
    let (cs, ce) = (page_down(cut.start), page_up(cut.end));
    for p in pieces.iter() {
        if ce <= p.start || cs >= p.end {
            out.push(*p);
            continue;
        }
        if cs > p.start {
            out.push(PhysRange {
                start: p.start,
                end: cs,
            });
        }
        if ce < p.end {
            out.push(PhysRange {
                start: ce,
                end: p.end,
            });
        }
    }
    out
}
