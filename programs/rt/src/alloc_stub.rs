//! The global allocator of user programs: there is none.
//!
//! `abi` links the `alloc` crate (its manifest and initrd types own
//! vectors), so every binary needs a `#[global_allocator]`, but user
//! programs never allocate: memory comes from `MemMap`. This allocator
//! refuses every request, so an accidental allocation ends in the
//! allocation-error path (a `PANIC-USER` line and status 101) instead of
//! corrupting memory.

use core::alloc::{GlobalAlloc, Layout};

/// Refuses every allocation.
pub struct NoAlloc;

// SAFETY: returning null is always a valid answer to `alloc`; `dealloc` is
// never called with a pointer we handed out (we hand out none).
unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoAlloc = NoAlloc;
