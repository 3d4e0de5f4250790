//! The kernel heap: `linked_list_allocator` (rust-osdev) over one
//! physically contiguous block reached through the direct map.
//!
//! Why that crate: it is small, `no_std`, maintained by the rust-osdev
//! group, and its first-fit list suits a kernel whose allocations are few
//! and mostly long-lived (threads, processes, tables). We wrap it so the
//! lock is taken with interrupts off, like every kernel lock.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::Heap;

use crate::sync::IrqMutex;

/// Heap size: enough for thousands of threads and their FPU areas.
pub const HEAP_BYTES: u64 = 48 << 20;

struct KernelHeap(IrqMutex<Heap>);

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

/// Bytes in use, for the boot checks.
pub fn used_bytes() -> usize {
    HEAP.0.lock().used()
}

// SAFETY: every call goes through the IrqMutex, so the allocator's state is
// never touched concurrently, and linked_list_allocator returns blocks that
// satisfy the layout or null.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = core::ptr::NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.0.lock().deallocate(p, layout) };
        }
    }
}
