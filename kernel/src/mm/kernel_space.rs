//! The kernel half: built once at boot, shared by every address space.
//!
//! - PML4[256..]: the direct map of `[0, max(RAM top, 4 GiB))`, writable,
//!   no-execute, with 1 GiB pages where the CPU has them (2 MiB otherwise):
//!   a few dozen entries instead of one per frame.
//! - PML4[510]: the MMIO window, uncached 4 KiB pages handed out by
//!   [`map_mmio`] (the local APIC, the I/O APIC).
//! - PML4[511]: the kernel image with 4 KiB pages: text read-only and
//!   executable, rodata read-only, data and bss writable, both no-execute.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use super::frame::{Frame, PhysRange};
use super::paging::{self, flags};
use super::{KERNEL_BASE, MMIO_BASE, PAGE_SIZE, PHYS_OFFSET};
use crate::arch;

static KERNEL_PML4: Once<Frame> = Once::new();
static MMIO_NEXT: AtomicU64 = AtomicU64::new(MMIO_BASE);

extern "C" {
    static __kernel_text_start: u8;
    static __kernel_rodata_start: u8;
    static __kernel_data_start: u8;
    static __kernel_end: u8;
}

fn sym(s: *const u8) -> u64 {
    s as u64
}

/// The physical extent of the kernel image (from 1 MiB, boot part included).
pub fn image_range() -> PhysRange {
    // Taking the address of a linker symbol reads nothing.
    let end = sym(core::ptr::addr_of!(__kernel_end));
    PhysRange {
        start: 0x10_0000,
        end: super::kernel_image_phys(end),
    }
}

/// Builds the kernel tables and switches this CPU to them. `ram_top` is
/// the end of the highest RAM range.
pub fn init(ram_top: u64) {
    let root = paging::alloc_table().expect("no frame for the kernel PML4");
    let direct_len = (ram_top.max(4 << 30) + (1 << 30) - 1) & !((1 << 30) - 1);
    let shift = if arch::cpu::has_1g_pages() { 30 } else { 21 };
    let rw_nx = flags::WRITABLE | flags::NO_EXECUTE | flags::GLOBAL;
    paging::map_huge_range(root, PHYS_OFFSET, 0, direct_len, shift, rw_nx).expect("direct map");

    // Taking the addresses of linker symbols reads nothing.
    let (text, rodata, data, end) = (
        sym(core::ptr::addr_of!(__kernel_text_start)),
        sym(core::ptr::addr_of!(__kernel_rodata_start)),
        sym(core::ptr::addr_of!(__kernel_data_start)),
        sym(core::ptr::addr_of!(__kernel_end)),
    );
    let sections = [
        (text, rodata, flags::GLOBAL),
        (rodata, data, flags::NO_EXECUTE | flags::GLOBAL),
        (
            data,
            end,
            flags::WRITABLE | flags::NO_EXECUTE | flags::GLOBAL,
        ),
    ];
    for (start, stop, f) in sections {
        let mut va = start;
        while va < stop {
            paging::map_4k(root, va, va - KERNEL_BASE, f).expect("kernel image map");
            va += PAGE_SIZE;
        }
    }
    // Pre-create the MMIO window's PDPT so later MMIO mappings land in a
    // table every address space shares.
    let mmio_pdpt = paging::alloc_table().expect("no frame for the MMIO window");
    paging::set_root_entry(
        root,
        510,
        mmio_pdpt.phys() | flags::PRESENT | flags::WRITABLE,
    );

    KERNEL_PML4.call_once(|| root);
    activate_on_this_cpu();
    super::use_direct_map();
}

/// Loads the kernel tables on this CPU (boot, APs, and idle CPUs that
/// drop a user address space).
pub fn activate_on_this_cpu() {
    let root = kernel_pml4();
    // SAFETY: the kernel PML4 maps the kernel exactly as every address
    // space's kernel half does (they are copies of its entries).
    unsafe { arch::cpu::write_cr3(root.phys()) };
}

/// The kernel's PML4.
pub fn kernel_pml4() -> Frame {
    *KERNEL_PML4.get().expect("kernel tables not built yet")
}

/// Maps `len` bytes of device memory at `phys` uncached; returns the
/// kernel-virtual address of `phys`.
pub fn map_mmio(phys: u64, len: u64) -> u64 {
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (phys + len - first).div_ceil(PAGE_SIZE);
    let va = MMIO_NEXT.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed);
    let f = flags::WRITABLE
        | flags::NO_CACHE
        | flags::WRITE_THROUGH
        | flags::NO_EXECUTE
        | flags::GLOBAL;
    for i in 0..pages {
        paging::map_4k(kernel_pml4(), va + i * PAGE_SIZE, first + i * PAGE_SIZE, f)
            .expect("MMIO map");
    }
    va + (phys - first)
}

/// A reserved physical range (a boot module) as a kernel byte slice.
pub fn phys_bytes(r: PhysRange) -> &'static [u8] {
    // SAFETY: the range is RAM reserved at boot (a module) that the frame
    // allocator never hands out, so nothing writes it; the direct map covers
    // it for the life of the kernel.
    unsafe {
        core::slice::from_raw_parts(
            super::phys_to_virt(r.start) as *const u8,
            (r.end - r.start) as usize,
        )
    }
}
