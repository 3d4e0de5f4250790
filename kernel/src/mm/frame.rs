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

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::sync::IrqMutex;

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

static ALLOCATOR: IrqMutex<Allocator> = IrqMutex::new(Allocator {
    ranges: [PhysRange { start: 0, end: 0 }; MAX_RANGES],
    nranges: 0,
    freed: None,
});
static FREE_FRAMES: AtomicU64 = AtomicU64::new(0);
static TOTAL_FRAMES: AtomicU64 = AtomicU64::new(0);

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
    let mut a = ALLOCATOR.lock();
    let f = match a.freed.as_mut().and_then(|v| v.pop()) {
        Some(f) => Some(f),
        None => carve(&mut a, 1),
    };
    if f.is_some() {
        FREE_FRAMES.fetch_sub(1, Ordering::Relaxed);
    }
    f
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

/// Gives a frame back.
pub fn free(frame: Frame) {
    let mut a = ALLOCATOR.lock();
    let list = a
        .freed
        .as_mut()
        .expect("frame freed before the heap exists");
    list.push(frame);
    FREE_FRAMES.fetch_add(1, Ordering::Relaxed);
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    FREE_FRAMES.load(Ordering::Relaxed)
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
