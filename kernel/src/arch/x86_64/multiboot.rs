//! Reading the Multiboot2 boot information.
//!
//! Called twice: once very early through the boot stub's identity map (to
//! find RAM before the kernel's own tables exist) and once later through
//! the direct map (for the ACPI RSDP and the modules). Everything the
//! kernel needs is copied out into plain values, the command line too (a
//! bounded copy: its first [`CMDLINE_MAX`] bytes).

use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};

use crate::mm::frame::PhysRange;

/// Most memory-map entries kept.
pub const MAX_AREAS: usize = 32;
/// Most modules kept.
pub const MAX_MODULES: usize = 4;
/// Most command-line bytes kept (the kernel reads only short test hooks
/// from it; a longer line is cut at a character boundary).
pub const CMDLINE_MAX: usize = 256;

/// What the kernel takes from the boot information.
pub struct BootFacts {
    /// Available RAM.
    pub ram: [PhysRange; MAX_AREAS],
    /// Entries used in `ram`.
    pub nram: usize,
    /// Modules (the initrd is the first).
    pub modules: [PhysRange; MAX_MODULES],
    /// Entries used in `modules`.
    pub nmodules: usize,
    /// The boot information itself.
    pub info: PhysRange,
    /// Physical address of the RSDP copy inside the boot information, if
    /// GRUB passed one (the v2 tag preferred), and whether it is v2.
    pub rsdp: Option<(u64, bool)>,
    /// The command line's first bytes (UTF-8, cut at a character boundary).
    pub cmdline: [u8; CMDLINE_MAX],
    /// Bytes used in `cmdline`.
    pub cmdline_len: usize,
    /// Whether the command line was longer than [`CMDLINE_MAX`] bytes, or
    /// unreadable (not UTF-8, no terminating NUL) and so left empty.
    pub cmdline_cut: bool,
}

impl BootFacts {
    /// The command line copied from the boot information ("" without one).
    pub fn cmdline(&self) -> &str {
        // Copied from a `&str` and cut at a character boundary, so this
        // never fails; "" covers the impossible case.
        core::str::from_utf8(self.cmdline.get(..self.cmdline_len).unwrap_or(&[])).unwrap_or("")
    }
}

/// Parses the boot information at virtual address `virt` (whose physical
/// address is `phys`).
///
/// # Safety
/// `virt` must map the Multiboot2 information GRUB left at `phys`, and that
/// memory must not have been reused.
pub unsafe fn read(virt: u64, phys: u64) -> Result<BootFacts, &'static str> {
    // SAFETY: guaranteed by the caller: a valid boot information structure.
    let info = unsafe { BootInformation::load(virt as *const BootInformationHeader) }
        .map_err(|_| "malformed Multiboot2 boot information")?;
    let mut f = BootFacts {
        ram: [PhysRange { start: 0, end: 0 }; MAX_AREAS],
        nram: 0,
        modules: [PhysRange { start: 0, end: 0 }; MAX_MODULES],
        nmodules: 0,
        info: PhysRange {
            start: phys,
            end: phys + info.total_size() as u64,
        },
        rsdp: None,
        cmdline: [0; CMDLINE_MAX],
        cmdline_len: 0,
        cmdline_cut: false,
    };
    let map = info
        .memory_map_tag()
        .ok_or("boot information has no memory map")?;
    for area in map.memory_areas() {
        if MemoryAreaType::from(area.typ()) == MemoryAreaType::Available && f.nram < MAX_AREAS {
            f.ram[f.nram] = PhysRange {
                start: area.start_address(),
                end: area.end_address(),
            };
            f.nram += 1;
        }
    }
    for m in info.module_tags() {
        if f.nmodules < MAX_MODULES {
            f.modules[f.nmodules] = PhysRange {
                start: u64::from(m.start_address()),
                end: u64::from(m.end_address()),
            };
            f.nmodules += 1;
        }
    }
    if let Some(t) = info.command_line_tag() {
        match t.cmdline() {
            Ok(line) => {
                let mut n = line.len().min(CMDLINE_MAX);
                while !line.is_char_boundary(n) {
                    n -= 1;
                }
                f.cmdline[..n].copy_from_slice(&line.as_bytes()[..n]);
                f.cmdline_len = n;
                f.cmdline_cut = n < line.len();
            }
            Err(_) => f.cmdline_cut = true,
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

/// Identity-mapped limit of the boot stub's early tables.
const EARLY_IDENTITY_END: u64 = 4 << 30;

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
