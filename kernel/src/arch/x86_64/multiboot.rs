//! Reading the Multiboot2 boot information.
//!
//! GRUB enters `_start` (boot.rs) with EAX = the Multiboot2 magic, checked
//! by the stub, and EBX = the boot information. Read once, early, through
//! the boot stub's identity map: available RAM, the modules (`module2`:
//! the initrd is the first), the RSDP copy GRUB puts in its tags, and the
//! command line, all copied into a [`BootFacts`] (bootinfo.rs). The whole
//! structure stays reserved ([`BootFacts::keep`]) because the RSDP copy
//! lives inside it.

use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

use super::bootinfo::{BootFacts, EARLY_IDENTITY_END};
use crate::mm::frame::PhysRange;

/// Parses the boot information at virtual address `virt` (whose physical
/// address is `phys`).
///
/// # Safety
/// `virt` must map the Multiboot2 information GRUB left at `phys`, and that
/// memory must not have been reused.
unsafe fn read(virt: u64, phys: u64) -> Result<BootFacts, &'static str> {
    // SAFETY: guaranteed by the caller: a valid boot information structure.
    let info = unsafe { BootInformation::load(virt as *const BootInformationHeader) }
        .map_err(|_| "malformed Multiboot2 boot information")?;
    let mut f = BootFacts::new(PhysRange {
        start: phys,
        end: phys + info.total_size() as u64,
    });
    let map = info
        .memory_map_tag()
        .ok_or("boot information has no memory map")?;
    for area in map.memory_areas() {
        if MemoryAreaType::from(area.typ()) == MemoryAreaType::Available {
            f.push_ram(area.start_address(), area.end_address());
        }
    }
    for m in info.module_tags() {
        f.push_module(u64::from(m.start_address()), u64::from(m.end_address()));
    }
    if let Some(t) = info.command_line_tag() {
        match t.cmdline() {
            Ok(line) => f.set_cmdline(line.as_bytes(), false),
            Err(_) => f.set_cmdline(&[], true),
        }
    }
    let base = virt;
    if let Some(t) = info.rsdp_v2_tag() {
        f.rsdp = Some((phys + (t as *const _ as *const u8 as u64 - base) + 8, true));
    } else if let Some(t) = info.rsdp_v1_tag() {
        f.rsdp = Some((phys + (t as *const _ as *const u8 as u64 - base) + 8, false));
    }
    Ok(f)
}

/// Parses the boot information through the boot stub's identity map.
pub fn read_identity(phys: u64) -> Result<BootFacts, &'static str> {
    if phys == 0 || !phys.is_multiple_of(8) || phys >= EARLY_IDENTITY_END - 4096 {
        return Err("boot information address out of range");
    }
    // SAFETY: GRUB left the boot information at `phys` (EBX, checked by the
    // boot stub together with the magic), below 4 GiB, which the early
    // tables identity-map; nothing has reused that memory yet.
    unsafe { read(phys, phys) }
}
