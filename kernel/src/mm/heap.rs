//! The kernel heap: per-CPU object caches for small size classes in front
//! of `linked_list_allocator` (rust-osdev) over one physically contiguous
//! block reached through the direct map.
//!
//! Why that crate underneath: it is small, `no_std`, maintained by the
//! rust-osdev group, and its first-fit list suits the kernel's large and
//! long-lived allocations (tables, rings' bookkeeping, FPU areas). Alone it
//! is one lock for every allocation on every CPU. So small requests (up
//! to 2 KiB, alignment up to 16: `klib::size_class`) are rounded up
//! to a power-of-two size class and served from this CPU's magazine for
//! that class (`klib::magazine`); an empty magazine takes a batch from the
//! list in one visit (one block, cut in pieces), a full one gives a batch
//! back. Everything else goes straight to the list. Why no crate for
//! this: the common `no_std` allocators (talc, buddy_system_allocator,
//! this one) are one heap behind one lock; a per-CPU front end needs the
//! kernel's own CPU identity, interrupt-safe locks and budget rules
//! anyway, and as a magazine layer (bookkeeping in `klib`, host-tested)
//! it stays small and keeps the accounting below exact.
//!
//! Accounting: [`used_bytes`] is what callers hold: the list's used bytes
//! minus the bytes sitting in CPU caches (a cached object counts as free).
//! It is exact whenever no allocation is in flight (boot checks, MEMSTAT).
//! A small object costs its class size. When the list cannot satisfy a
//! request, every CPU's caches go back to it and the request is tried
//! again, so no free memory stays out of reach in another CPU's cache. The budget pool (`mm::budget::HEAP_POOL_BYTES`)
//! leaves room for what the caches hold ([`MAX_CACHED_BYTES_PER_CPU`] per
//! CPU).
//!
//! While some CPU may run without its per-CPU block (boot, AP bring-up)
//! every CPU uses the list directly, with the same class sizes, so an
//! object can be freed later through any path.
//!
//! Lock order: a CPU's heap cache, then the list; one cache at a time.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use klib::magazine::{self, Magazine};
use klib::size_class;
use linked_list_allocator::Heap;

use crate::arch::acpi::MAX_CPUS;
use crate::arch::percpu::cpu_id_checked;
use crate::sync::{class, CachePadded, IrqMutex};

/// Heap size: enough for thousands of threads and their FPU areas.
pub const HEAP_BYTES: u64 = 48 << 20;

/// Objects a magazine holds at most (small classes).
const MAGAZINE_SLOTS: usize = 32;
/// Bytes one class's magazine holds at most (large classes hold fewer).
const CLASS_CACHE_BYTES: usize = 8 << 10;
/// Bytes one CPU's caches hold at most.
pub const MAX_CACHED_BYTES_PER_CPU: usize =
    size_class::max_cached_bytes(MAGAZINE_SLOTS, CLASS_CACHE_BYTES);
const CLASSES: [usize; 8] = size_class::CLASSES;
const CACHE_ALIGN: usize = size_class::ALIGN;

/// Objects class `i`'s magazine holds at most.
const fn limit(i: usize) -> usize {
    size_class::limit(i, MAGAZINE_SLOTS, CLASS_CACHE_BYTES)
}

/// The size class of `layout`, if it is cached.
fn class_of(layout: Layout) -> Option<usize> {
    size_class::class_of(layout.size(), layout.align())
}

/// The block a class-`i` object occupies in the list.
fn block(i: usize) -> Layout {
    // Powers of two from 16, aligned to 16: always a valid layout.
    Layout::from_size_align(CLASSES[i], CACHE_ALIGN).expect("size classes are valid layouts")
}

/// One CPU's caches: free objects (addresses) per class.
struct CpuCache {
    classes: [Magazine<usize, MAGAZINE_SLOTS>; CLASSES.len()],
    /// Bytes held in `classes`.
    bytes: usize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_CACHE: CachePadded<IrqMutex<CpuCache, class::HeapCache>> =
    CachePadded(IrqMutex::new(CpuCache {
        classes: [const { Magazine::new(0) }; CLASSES.len()],
        bytes: 0,
    }));
static CACHES: [CachePadded<IrqMutex<CpuCache, class::HeapCache>>; MAX_CPUS] =
    [EMPTY_CACHE; MAX_CPUS];

struct KernelHeap(IrqMutex<Heap, class::HeapGlobal>);

#[global_allocator]
static HEAP: KernelHeap = KernelHeap(IrqMutex::new(Heap::empty()));

/// Gives the heap its memory (`HEAP_BYTES` contiguous frames).
pub fn init() {
    let frames = HEAP_BYTES / super::PAGE_SIZE;
    let base = super::frame::alloc_contiguous(frames).expect("no memory for the kernel heap");
    let mut heap = HEAP.0.lock();
    // SAFETY: the frames were just taken from the allocator, so nothing else
    // uses them; the direct map covers them; this runs once.
    unsafe { heap.init(base.virt() as *mut u8, HEAP_BYTES as usize) };
}

/// Bytes in use by callers (cached objects count as free).
pub fn used_bytes() -> usize {
    let cached: usize = CACHES.iter().map(|c| c.lock().bytes).sum();
    HEAP.0.lock().used().saturating_sub(cached)
}

impl KernelHeap {
    fn alloc_list(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    /// # Safety
    /// `ptr` is a block of `layout` from this heap that nobody uses.
    unsafe fn dealloc_list(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller's contract.
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }

    /// A class-`i` object from this CPU's cache, refilling it with a batch
    /// cut from one block of the list; null when the list has no room.
    fn alloc_cached(&self, cpu: usize, i: usize) -> *mut u8 {
        let mut c = CACHES[cpu].lock();
        let size = CLASSES[i];
        if c.classes[i].is_empty() {
            let n = magazine::batch(limit(i));
            let mut list = self.0.lock();
            let start = Layout::from_size_align(size * n, CACHE_ALIGN)
                .ok()
                .and_then(|l| list.allocate_first_fit(l).ok())
                .map(|p| (p.as_ptr() as usize, n))
                .or_else(|| {
                    let p = list.allocate_first_fit(block(i)).ok()?;
                    Some((p.as_ptr() as usize, 1))
                });
            drop(list);
            let Some((base, got)) = start else {
                return core::ptr::null_mut();
            };
            // Each piece is freed to the list on its own later, which the
            // list allows (it keeps no per-block header).
            let mut k = 0;
            c.classes[i].refill(got, || {
                k += 1;
                Some(base + (k - 1) * size)
            });
            c.bytes += got * size;
        }
        match c.classes[i].pop() {
            Some(p) => {
                c.bytes -= size;
                p as *mut u8
            }
            None => core::ptr::null_mut(),
        }
    }

    /// Frees a class-`i` object into this CPU's cache, giving a batch back
    /// to the list first when the cache is full.
    ///
    /// # Safety
    /// `ptr` is a class-`i` object of this heap that nobody uses.
    unsafe fn free_cached(&self, cpu: usize, i: usize, ptr: *mut u8) {
        let mut c = CACHES[cpu].lock();
        let lim = limit(i);
        if c.classes[i].is_full(lim) {
            let mut list = self.0.lock();
            let n = c.classes[i].drain(lim - magazine::batch(lim), |p| {
                // SAFETY: every cached address is a free class-`i` block of
                // this heap (pushed only here and by `alloc_cached`).
                unsafe { list.deallocate(NonNull::new_unchecked(p as *mut u8), block(i)) }
            });
            c.bytes -= n * CLASSES[i];
        }
        let pushed = c.classes[i].push(ptr as usize, lim);
        assert!(pushed.is_ok(), "heap cache full after a drain");
        c.bytes += CLASSES[i];
    }

    /// Gives every CPU's cached objects back to the list (it ran out).
    fn flush_all(&self) {
        for cache in &CACHES {
            let mut c = cache.lock();
            let mut list = self.0.lock();
            for (i, m) in c.classes.iter_mut().enumerate() {
                m.drain(0, |p| {
                    // SAFETY: as in `free_cached`: a free class-`i` block.
                    unsafe { list.deallocate(NonNull::new_unchecked(p as *mut u8), block(i)) }
                });
            }
            c.bytes = 0;
        }
    }
}

// SAFETY: the list is only touched under its IrqMutex, and each CPU's
// caches under theirs; linked_list_allocator returns blocks that satisfy
// the layout or null. A cached object is a whole class block (size and
// CACHE_ALIGN alignment cover every layout mapped to that class), taken
// from the list and given back to it only as that block, and it sits in
// at most one cache while free, so no block is handed out twice.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(i) = class_of(layout) else {
            return self.alloc_list(layout);
        };
        let Some(cpu) = cpu_id_checked() else {
            return self.alloc_list(block(i));
        };
        let p = self.alloc_cached(cpu, i);
        if !p.is_null() {
            return p;
        }
        self.flush_all();
        self.alloc_cached(cpu, i)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(i) = class_of(layout) else {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc
            // contract), which took it from the list as this layout.
            return unsafe { self.dealloc_list(ptr, layout) };
        };
        match cpu_id_checked() {
            // SAFETY: `ptr` came from `alloc` with a layout of class `i`,
            // so it is a class-`i` block, whichever path allocated it.
            Some(cpu) => unsafe { self.free_cached(cpu, i, ptr) },
            // SAFETY: as above; the list takes it back as that block.
            None => unsafe { self.dealloc_list(ptr, block(i)) },
        }
    }
}
