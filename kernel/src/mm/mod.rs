//! Memory: physical frames, page tables, the kernel heap, address spaces
//! and checked access to user memory.
//!
//! ```text
//! virtual                          what
//! 0x0000_0000_0000_0000 ..         user half (per address space, abi::layout)
//! 0xffff_8000_0000_0000 ..         direct map of all physical memory (PHYS_OFFSET)
//! 0xffff_ff00_0000_0000 ..         MMIO window (uncached 4 KiB mappings)
//! 0xffff_ffff_8000_0000 ..         the kernel image (linked at KERNEL_BASE + 1 MiB)
//! ```
//! The kernel half is built once at boot and shared by every address space
//! (their PML4s copy entries 256..512), so kernel mappings never need
//! synchronizing between address spaces.

use core::sync::atomic::{AtomicU64, Ordering};

pub mod addr_space;
pub mod budget;
pub mod frame;
pub mod heap;
pub mod kernel_space;
pub mod memobj;
pub mod paging;
pub mod ring_mem;
pub mod user;

/// Where physical memory is mapped.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Where the kernel image is linked (minus its 1 MiB load offset).
pub const KERNEL_BASE: u64 = 0xffff_ffff_8000_0000;
/// Base of the MMIO window.
pub const MMIO_BASE: u64 = 0xffff_ff00_0000_0000;
/// Size of a page.
pub const PAGE_SIZE: u64 = 4096;

/// How physical memory is reached right now: 0 (the boot stub's identity
/// map) until the kernel tables are live, then [`PHYS_OFFSET`].
static PHYS_MAP_OFFSET: AtomicU64 = AtomicU64::new(0);

/// The kernel-virtual address of physical address `phys`.
#[inline(always)]
pub fn phys_to_virt(phys: u64) -> u64 {
    phys + PHYS_MAP_OFFSET.load(Ordering::Relaxed)
}

/// Switches [`phys_to_virt`] to the direct map (once the kernel tables are loaded).
pub(super) fn use_direct_map() {
    PHYS_MAP_OFFSET.store(PHYS_OFFSET, Ordering::Relaxed);
}

/// The physical address of a kernel-image address.
pub fn kernel_image_phys(virt: u64) -> u64 {
    virt - KERNEL_BASE
}

/// Copies `src` into the contiguous frames starting at `base` (which the
/// caller owns and which are large enough), zero-padding the last page.
pub fn copy_into_frames(base: frame::Frame, src: &[u8]) {
    let pages = (src.len() as u64).div_ceil(PAGE_SIZE).max(1);
    crate::arch::zero_page(phys_to_virt(base.phys() + (pages - 1) * PAGE_SIZE));
    user::copy_to_kernel_frames(base.phys(), src);
}
