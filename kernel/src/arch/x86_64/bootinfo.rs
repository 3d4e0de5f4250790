//! The boot information, whichever loader brought the kernel.
//!
//! The boot stub (boot.rs) passes Rust a protocol tag and the physical
//! address of the loader's structure: the Multiboot2 information (GRUB)
//! or `hvm_start_info` (PVH: QEMU `-kernel` on microvm). [`read_identity`]
//! hands it to multiboot.rs or pvh.rs, which fill one [`BootFacts`]; when
//! the loader named no RSDP, the BIOS areas are scanned for one. Nothing
//! after this point knows which loader ran.
//!
//! Everything is copied out into plain values while the loader's memory is
//! still intact (through the boot stub's identity map of the low 4 GiB),
//! so the only loader memory the kernel keeps is [`BootFacts::keep`].

use crate::mm::frame::PhysRange;

/// Protocol tag from the boot stub: Multiboot2 (EAX = 0x36d76289).
pub const PROTOCOL_MULTIBOOT2: u32 = 1;
/// Protocol tag from the boot stub: PVH (EBX = `hvm_start_info`).
pub const PROTOCOL_PVH: u32 = 2;

/// Most memory-map entries kept.
pub const MAX_AREAS: usize = 32;
/// Most modules kept.
pub const MAX_MODULES: usize = 4;
/// Most command-line bytes kept (the kernel reads only short test hooks
/// from it; a longer line is cut at a character boundary).
pub const CMDLINE_MAX: usize = 256;

/// Identity-mapped limit of the boot stub's early tables.
pub(super) const EARLY_IDENTITY_END: u64 = 4 << 30;

/// What the boot stub hands to Rust: the protocol tag and the physical
/// address of the loader's structure. Opaque outside arch.
#[derive(Clone, Copy)]
pub struct Handoff {
    protocol: u64,
    info_phys: u64,
}

impl Handoff {
    /// Built by `entry::kernel_entry` from the boot stub's registers.
    pub(super) fn new(protocol: u64, info_phys: u64) -> Self {
        Self {
            protocol,
            info_phys,
        }
    }
}

/// What the kernel takes from the boot information.
pub struct BootFacts {
    /// Available RAM.
    ram: [PhysRange; MAX_AREAS],
    nram: usize,
    /// Available RAM ranges beyond [`MAX_AREAS`] (not used).
    pub ram_dropped: usize,
    /// Modules (the initrd is the first).
    modules: [PhysRange; MAX_MODULES],
    nmodules: usize,
    /// Loader memory that must stay reserved (the Multiboot2 information,
    /// which holds the RSDP copy; the PVH start info).
    pub keep: PhysRange,
    /// Physical address of the RSDP, and whether it is ACPI 2.0+.
    pub rsdp: Option<(u64, bool)>,
    /// The command line's first bytes (UTF-8, cut at a character boundary).
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    /// Whether the command line was longer than [`CMDLINE_MAX`] bytes, or
    /// unreadable (not UTF-8, no terminating NUL) and so kept only in part.
    pub cmdline_cut: bool,
}

impl BootFacts {
    /// Nothing yet; `keep` is the loader structure's range.
    pub(super) fn new(keep: PhysRange) -> Self {
        Self {
            ram: [PhysRange { start: 0, end: 0 }; MAX_AREAS],
            nram: 0,
            ram_dropped: 0,
            modules: [PhysRange { start: 0, end: 0 }; MAX_MODULES],
            nmodules: 0,
            keep,
            rsdp: None,
            cmdline: [0; CMDLINE_MAX],
            cmdline_len: 0,
            cmdline_cut: false,
        }
    }

    /// Records available RAM `[start, end)` (empty ranges are skipped).
    pub(super) fn push_ram(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        match self.ram.get_mut(self.nram) {
            Some(slot) => {
                *slot = PhysRange { start, end };
                self.nram += 1;
            }
            None => self.ram_dropped += 1,
        }
    }

    /// Records a module `[start, end)`; modules beyond [`MAX_MODULES`]
    /// are ignored.
    pub(super) fn push_module(&mut self, start: u64, end: u64) {
        if let Some(slot) = self.modules.get_mut(self.nmodules) {
            *slot = PhysRange { start, end };
            self.nmodules += 1;
        }
    }

    /// Copies the command line from the loader's bytes (up to a NUL).
    pub(super) fn set_cmdline(&mut self, src: &[u8], src_cut: bool) {
        let c = klib::bootinfo::copy_cmdline(src, &mut self.cmdline);
        self.cmdline_len = c.len;
        self.cmdline_cut = c.cut || src_cut;
    }

    /// Available RAM.
    pub fn ram(&self) -> &[PhysRange] {
        &self.ram[..self.nram]
    }

    /// The modules, the initrd first.
    pub fn modules(&self) -> &[PhysRange] {
        &self.modules[..self.nmodules]
    }

    /// The command line ("" without one).
    pub fn cmdline(&self) -> &str {
        // copy_cmdline keeps valid UTF-8 only, so this never fails; ""
        // covers the impossible case.
        core::str::from_utf8(self.cmdline.get(..self.cmdline_len).unwrap_or(&[])).unwrap_or("")
    }
}

/// Reads the boot information through the boot stub's identity map, and
/// logs where it came from.
pub fn read_identity(h: Handoff) -> Result<BootFacts, &'static str> {
    if h.info_phys == 0 || h.info_phys >= EARLY_IDENTITY_END - 4096 {
        return Err("boot information address out of range");
    }
    let (mut f, loader) = match u32::try_from(h.protocol) {
        Ok(PROTOCOL_MULTIBOOT2) => (super::multiboot::read_identity(h.info_phys)?, "Multiboot2"),
        Ok(PROTOCOL_PVH) => (super::pvh::read_identity(h.info_phys)?, "PVH"),
        _ => return Err("unknown boot protocol tag from the boot stub"),
    };
    let rsdp_from = if f.rsdp.is_some() {
        "loader"
    } else {
        f.rsdp = scan_bios_areas();
        if f.rsdp.is_some() {
            "BIOS-area scan"
        } else {
            "none"
        }
    };
    kprintln!(
        "boot: {} loader: {} RAM range(s), {} module(s), RSDP {:#x} ({})",
        loader,
        f.nram,
        f.nmodules,
        f.rsdp.map_or(0, |r| r.0),
        rsdp_from
    );
    if f.ram_dropped > 0 {
        kprintln!(
            "boot: {} RAM range(s) beyond {} ignored",
            f.ram_dropped,
            MAX_AREAS
        );
    }
    Ok(f)
}

/// Bytes of physical memory at `phys`, read through the identity map.
///
/// # Safety
/// The boot stub's tables must be loaded (they identity-map everything
/// below [`EARLY_IDENTITY_END`], which this checks), and the bytes must not
/// be written while the slice is used. The `'static` lifetime is a lie
/// beyond early boot: callers copy what they need out at once (true during
/// early boot: one CPU, nothing allocated yet).
pub(super) unsafe fn phys_bytes(phys: u64, len: usize) -> Option<&'static [u8]> {
    let end = phys.checked_add(u64::try_from(len).ok()?)?;
    if phys == 0 || end > EARLY_IDENTITY_END {
        return None;
    }
    // SAFETY: the caller guarantees the range is identity-mapped and not
    // written meanwhile; it was just checked to be non-null and in range.
    Some(unsafe { core::slice::from_raw_parts(phys as *const u8, len) })
}

/// BIOS data area word holding the EBDA's real-mode segment (ACPI 6.5,
/// 5.2.5.1), and the EBDA range where that segment is believable.
const BDA_EBDA_SEGMENT: u64 = 0x40e;
const EBDA_PLAUSIBLE: core::ops::Range<u64> = 0x8_0000..0xa_0000;
/// The EBDA's first KiB is searched.
const EBDA_SEARCH_BYTES: usize = 1024;
/// The BIOS read-only area searched next.
const BIOS_AREA_START: u64 = 0xe_0000;
const BIOS_AREA_BYTES: usize = 0x2_0000;

/// Finds the RSDP the way ACPI 6.5, 5.2.5.1 describes for legacy BIOS
/// systems: the first KiB of the EBDA, then 0xE0000..0xFFFFF.
fn scan_bios_areas() -> Option<(u64, bool)> {
    // SAFETY: the BIOS data area is identity-mapped low memory nobody
    // writes during early boot.
    let seg = unsafe { phys_bytes(BDA_EBDA_SEGMENT, 2) }?;
    let ebda = u64::from(u16::from_le_bytes([seg[0], seg[1]])) << 4;
    let areas = [
        (ebda, EBDA_SEARCH_BYTES),
        (BIOS_AREA_START, BIOS_AREA_BYTES),
    ];
    for (start, len) in areas {
        if start == ebda && !EBDA_PLAUSIBLE.contains(&ebda) {
            continue;
        }
        // SAFETY: low memory below 1 MiB, identity-mapped, not written
        // during early boot.
        let Some(area) = (unsafe { phys_bytes(start, len) }) else {
            continue;
        };
        if let Some((at, v2)) = klib::bootinfo::scan_rsdp(area) {
            return Some((start + at as u64, v2));
        }
    }
    None
}
