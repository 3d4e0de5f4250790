//! Reading the PVH boot information (`struct hvm_start_info`).
//!
//! A PVH loader (QEMU `-kernel` with qboot on `-machine microvm`, QEMU's
//! pvh option ROM on `-machine pc`, Xen) enters `pvh_start` (boot.rs,
//! found through the XEN_ELFNOTE_PHYS32_ENTRY note) in 32-bit protected
//! mode, paging off, with EBX = the physical address of `hvm_start_info`;
//! the stub has checked its magic. From it the kernel takes the memory map
//! (version 1+: `memmap_paddr`/`memmap_entries`, E820 types), the modules
//! (`modlist_paddr`: QEMU's `-initrd` is module 0), the RSDP
//! (`rsdp_paddr`, when the loader filled it in) and the command line
//! (`cmdline_paddr`). The layouts are parsed by `klib::bootinfo`.

use klib::bootinfo::{
    self as layout, MEMMAP_TYPE_RAM, PVH_MEMMAP_ENTRY_BYTES, PVH_MODLIST_ENTRY_BYTES,
};

use super::bootinfo::{phys_bytes, BootFacts, CMDLINE_MAX};
use crate::mm::frame::PhysRange;

/// Most memory-map entries read (a real map has a dozen or so; the bound
/// keeps a corrupt count from walking memory for long).
const MAX_MEMMAP_ENTRIES: usize = 1024;
/// Most module entries read.
const MAX_MODLIST_ENTRIES: usize = 16;

/// Parses `hvm_start_info` at physical address `phys` through the boot
/// stub's identity map.
pub fn read_identity(phys: u64) -> Result<BootFacts, &'static str> {
    // SAFETY: the loader left the start info at `phys` (EBX, whose magic
    // the boot stub checked); `phys_bytes` refuses anything outside the
    // identity map; nothing writes that memory during early boot.
    let head = unsafe { phys_bytes(phys, 8) }.ok_or("PVH start info out of range")?;
    let len = layout::start_info_len(head).map_err(|_| "malformed PVH start info")?;
    // SAFETY: as above; the version says the structure is this long.
    let bytes = unsafe { phys_bytes(phys, len) }.ok_or("PVH start info out of range")?;
    let info = layout::parse_start_info(bytes).map_err(|_| "malformed PVH start info")?;
    let mut f = BootFacts::new(PhysRange {
        start: phys,
        end: phys + len as u64,
    });
    kprintln!(
        "boot: PVH start info v{} at {:#x}: {} memory-map entries, {} module(s), rsdp_paddr {:#x}",
        info.version,
        phys,
        info.memmap_entries,
        info.nr_modules,
        info.rsdp_paddr
    );
    read_memmap(&mut f, &info)?;
    read_modules(&mut f, &info);
    read_cmdline(&mut f, info.cmdline_paddr);
    if info.rsdp_paddr != 0 {
        f.rsdp = rsdp_at(info.rsdp_paddr);
    }
    Ok(f)
}

fn read_memmap(f: &mut BootFacts, info: &layout::StartInfo) -> Result<(), &'static str> {
    if info.memmap_paddr == 0 || info.memmap_entries == 0 {
        return Err("PVH start info has no memory map (version 0 loaders are not supported)");
    }
    let n = usize::try_from(info.memmap_entries)
        .unwrap_or(usize::MAX)
        .min(MAX_MEMMAP_ENTRIES);
    // SAFETY: the loader's memory-map array; `phys_bytes` checks the range,
    // and nothing writes it during early boot.
    let table = unsafe { phys_bytes(info.memmap_paddr, n * PVH_MEMMAP_ENTRY_BYTES) }
        .ok_or("PVH memory map out of range")?;
    for e in table.chunks_exact(PVH_MEMMAP_ENTRY_BYTES) {
        if let Some((start, end, MEMMAP_TYPE_RAM)) = layout::parse_memmap_entry(e) {
            f.push_ram(start, end);
        }
    }
    Ok(())
}

fn read_modules(f: &mut BootFacts, info: &layout::StartInfo) {
    if info.modlist_paddr == 0 {
        return;
    }
    let n = usize::try_from(info.nr_modules)
        .unwrap_or(usize::MAX)
        .min(MAX_MODLIST_ENTRIES);
    // SAFETY: the loader's module array; `phys_bytes` checks the range,
    // and nothing writes it during early boot.
    let Some(list) = (unsafe { phys_bytes(info.modlist_paddr, n * PVH_MODLIST_ENTRY_BYTES) })
    else {
        return;
    };
    for e in list.chunks_exact(PVH_MODLIST_ENTRY_BYTES) {
        if let Some((start, end)) = layout::parse_module_entry(e) {
            f.push_module(start, end);
        }
    }
}

fn read_cmdline(f: &mut BootFacts, phys: u64) {
    if phys == 0 {
        return;
    }
    // One byte past the kept length tells whether the line was longer.
    // Shrink the read near the end of the identity map.
    let mut len = CMDLINE_MAX + 1;
    let bytes = loop {
        // SAFETY: the loader's command line; `phys_bytes` checks the range,
        // and nothing writes it during early boot.
        if let Some(b) = unsafe { phys_bytes(phys, len) } {
            break b;
        }
        if len == 1 {
            return;
        }
        len /= 2;
    };
    let has_nul = bytes.contains(&0);
    f.set_cmdline(bytes, !has_nul);
}

/// The RSDP at `phys` if it checks out, with its revision.
fn rsdp_at(phys: u64) -> Option<(u64, bool)> {
    /// The ACPI 2.0 RSDP's length (its checksum covers that many bytes).
    const RSDP_V2_BYTES: usize = 36;
    // SAFETY: the loader's RSDP (firmware memory); `phys_bytes` checks the
    // range, and nothing writes it during early boot.
    let b = unsafe { phys_bytes(phys, RSDP_V2_BYTES) }?;
    layout::check_rsdp(b).map(|v2| (phys, v2))
}
