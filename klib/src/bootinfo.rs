//! Boot-information parsing that needs no hardware: the PVH start-info
//! layout (Xen public/arch-x86/hvm/start_info.h), its memory-map and module
//! entries, the ACPI RSDP check used by the BIOS-area scan, and the bounded
//! command-line copy shared by both boot protocols.
//!
//! The kernel hands in byte slices it read from physical memory; every
//! field is read little-endian with explicit offsets, every sum is checked,
//! so a corrupt structure yields `None` or an error, never a panic.

/// `hvm_start_info.magic` (XEN_HVM_START_MAGIC_VALUE).
pub const PVH_START_MAGIC: u32 = 0x336e_c578;
/// Bytes of `hvm_start_info` version 0 (up to and including `rsdp_paddr`).
pub const PVH_START_INFO_V0_BYTES: usize = 40;
/// Bytes of `hvm_start_info` version 1 (adds the memory map).
pub const PVH_START_INFO_V1_BYTES: usize = 56;
/// Bytes of one `hvm_modlist_entry` (paddr, size, cmdline_paddr, reserved).
pub const PVH_MODLIST_ENTRY_BYTES: usize = 32;
/// Bytes of one `hvm_memmap_table_entry` (addr, size, type, reserved).
pub const PVH_MEMMAP_ENTRY_BYTES: usize = 24;
/// `hvm_memmap_table_entry.type` for usable RAM (the E820 numbering).
pub const MEMMAP_TYPE_RAM: u32 = 1;

/// Why a PVH start-info structure was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// Fewer bytes than its version needs.
    Short,
    /// The first word is not [`PVH_START_MAGIC`].
    BadMagic,
}

/// The fields of `hvm_start_info` the kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// Structure version (0 has no memory map).
    pub version: u32,
    /// Entries in the module list.
    pub nr_modules: u32,
    /// Physical address of the `hvm_modlist_entry` array (0 = none).
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line (0 = none).
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP (0 = not given).
    pub rsdp_paddr: u64,
    /// Physical address of the `hvm_memmap_table_entry` array (version
    /// 1 and later; 0 = none).
    pub memmap_paddr: u64,
    /// Entries in the memory map (0 = none given).
    pub memmap_entries: u32,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    let w = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(w);
    Some(u64::from_le_bytes(a))
}

/// How many bytes `hvm_start_info` has, from its first 8 (magic and
/// version): [`PVH_START_INFO_V1_BYTES`] for version 1 and later.
pub fn start_info_len(b: &[u8]) -> Result<usize, StartInfoError> {
    if le32(b, 0).ok_or(StartInfoError::Short)? != PVH_START_MAGIC {
        return Err(StartInfoError::BadMagic);
    }
    match le32(b, 4).ok_or(StartInfoError::Short)? {
        0 => Ok(PVH_START_INFO_V0_BYTES),
        _ => Ok(PVH_START_INFO_V1_BYTES),
    }
}

/// Parses `hvm_start_info` from `b` (at least [`PVH_START_INFO_V0_BYTES`];
/// [`PVH_START_INFO_V1_BYTES`] to see the memory map of version 1+).
pub fn parse_start_info(b: &[u8]) -> Result<StartInfo, StartInfoError> {
    let magic = le32(b, 0).ok_or(StartInfoError::Short)?;
    if magic != PVH_START_MAGIC {
        return Err(StartInfoError::BadMagic);
    }
    let field64 = |at| le64(b, at).ok_or(StartInfoError::Short);
    let version = le32(b, 4).ok_or(StartInfoError::Short)?;
    let mut info = StartInfo {
        version,
        nr_modules: le32(b, 12).ok_or(StartInfoError::Short)?,
        modlist_paddr: field64(16)?,
        cmdline_paddr: field64(24)?,
        rsdp_paddr: field64(32)?,
        memmap_paddr: 0,
        memmap_entries: 0,
    };
    if version >= 1 {
        info.memmap_paddr = field64(40)?;
        info.memmap_entries = le32(b, 48).ok_or(StartInfoError::Short)?;
    }
    Ok(info)
}

/// One `hvm_memmap_table_entry` as `(start, end, type)`, or `None` when
/// the slice is short, the region is empty or its end overflows.
pub fn parse_memmap_entry(b: &[u8]) -> Option<(u64, u64, u32)> {
    let start = le64(b, 0)?;
    let size = le64(b, 8)?;
    let typ = le32(b, 16)?;
    let end = start.checked_add(size)?;
    (size != 0).then_some((start, end, typ))
}

/// One `hvm_modlist_entry` as `[start, end)`, or `None` when the slice is
/// short, the module is empty or its end overflows.
pub fn parse_module_entry(b: &[u8]) -> Option<(u64, u64)> {
    let start = le64(b, 0)?;
    let size = le64(b, 8)?;
    let end = start.checked_add(size)?;
    (size != 0).then_some((start, end))
}

/// What [`copy_cmdline`] copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdlineCopy {
    /// Bytes written to the output (valid UTF-8).
    pub len: usize,
    /// Whether the line was longer than the output, or not UTF-8 (then
    /// only its valid prefix is kept).
    pub cut: bool,
}

/// Copies the command line `src` (the bytes the loader gave: up to its NUL
/// if one was found, else as many as were read) into `out`, keeping whole
/// UTF-8 characters only. `src` longer than `out`, or not UTF-8 past some
/// point, sets `cut`: the kernel reads test hooks from the start only.
pub fn copy_cmdline(src: &[u8], out: &mut [u8]) -> CmdlineCopy {
    let line = match src.iter().position(|&b| b == 0) {
        Some(n) => &src[..n],
        None => src,
    };
    let take = line.len().min(out.len());
    let mut cut = take < line.len();
    let valid = match core::str::from_utf8(&line[..take]) {
        Ok(_) => take,
        Err(e) => {
            // An error with no `error_len` is a character the cut split:
            // only that character is lost. Any other error is bad input.
            if e.error_len().is_some() {
                cut = true;
            }
            e.valid_up_to()
        }
    };
    out[..valid].copy_from_slice(&line[..valid]);
    CmdlineCopy {
        len: valid,
        cut: cut || valid < take,
    }
}

/// Bytes of an ACPI 1.0 RSDP (checksummed) and of the 2.0 extension.
const RSDP_V1_BYTES: usize = 20;
const RSDP_V2_MIN_BYTES: usize = 36;
/// The RSDP signature (ACPI 6.5, 5.2.5.3).
pub const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Where the BIOS-area scan looks for the RSDP: on 16-byte boundaries
/// (ACPI 6.5, 5.2.5.1).
pub const RSDP_ALIGN: usize = 16;

fn sums_to_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
}

/// Whether `b` starts with a valid RSDP: `Some(true)` for ACPI 2.0+ (the
/// extended checksum holds too), `Some(false)` for 1.0, `None` otherwise.
pub fn check_rsdp(b: &[u8]) -> Option<bool> {
    let head = b.get(..RSDP_V1_BYTES)?;
    if &head[..8] != RSDP_SIGNATURE || !sums_to_zero(head) {
        return None;
    }
    let revision = head[15];
    if revision < 2 {
        return Some(false);
    }
    let len = usize::try_from(le32(b, 20)?).ok()?;
    if len < RSDP_V2_MIN_BYTES {
        return None;
    }
    sums_to_zero(b.get(..len)?).then_some(true)
}

/// The first valid RSDP in `area` on a 16-byte boundary: its offset and
/// whether it is ACPI 2.0+.
pub fn scan_rsdp(area: &[u8]) -> Option<(usize, bool)> {
    (0..area.len())
        .step_by(RSDP_ALIGN)
        .find_map(|at| check_rsdp(&area[at..]).map(|v2| (at, v2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_info(version: u32, magic: u32) -> [u8; PVH_START_INFO_V1_BYTES] {
        let mut b = [0u8; PVH_START_INFO_V1_BYTES];
        b[0..4].copy_from_slice(&magic.to_le_bytes());
        b[4..8].copy_from_slice(&version.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[16..24].copy_from_slice(&0x9000u64.to_le_bytes());
        b[24..32].copy_from_slice(&0xa000u64.to_le_bytes());
        b[32..40].copy_from_slice(&0xf_0000u64.to_le_bytes());
        b[40..48].copy_from_slice(&0xb000u64.to_le_bytes());
        b[48..52].copy_from_slice(&5u32.to_le_bytes());
        b
    }

    #[test]
    fn start_info_v1_has_a_memory_map() {
        let s = parse_start_info(&start_info(1, PVH_START_MAGIC)).unwrap();
        assert_eq!(s.version, 1);
        assert_eq!(s.nr_modules, 1);
        assert_eq!(s.modlist_paddr, 0x9000);
        assert_eq!(s.cmdline_paddr, 0xa000);
        assert_eq!(s.rsdp_paddr, 0xf_0000);
        assert_eq!(s.memmap_paddr, 0xb000);
        assert_eq!(s.memmap_entries, 5);
    }

    #[test]
    fn start_info_length_follows_the_version() {
        assert_eq!(
            start_info_len(&start_info(1, PVH_START_MAGIC)[..8]),
            Ok(PVH_START_INFO_V1_BYTES)
        );
        assert_eq!(
            start_info_len(&start_info(0, PVH_START_MAGIC)),
            Ok(PVH_START_INFO_V0_BYTES)
        );
        assert_eq!(
            start_info_len(&start_info(1, 0)),
            Err(StartInfoError::BadMagic)
        );
        assert_eq!(start_info_len(&[0x78, 0xc5]), Err(StartInfoError::Short));
    }

    #[test]
    fn start_info_v0_ignores_the_memory_map_fields() {
        let b = start_info(0, PVH_START_MAGIC);
        let s = parse_start_info(&b[..PVH_START_INFO_V0_BYTES]).unwrap();
        assert_eq!((s.memmap_paddr, s.memmap_entries), (0, 0));
        assert_eq!(s.rsdp_paddr, 0xf_0000);
    }

    #[test]
    fn start_info_refuses_a_bad_magic_or_a_short_buffer() {
        let b = start_info(1, 0x1bad_b002);
        assert_eq!(parse_start_info(&b), Err(StartInfoError::BadMagic));
        let b = start_info(1, PVH_START_MAGIC);
        assert_eq!(parse_start_info(&b[..48]), Err(StartInfoError::Short));
        assert_eq!(parse_start_info(&b[..39]), Err(StartInfoError::Short));
        assert_eq!(parse_start_info(&[]), Err(StartInfoError::Short));
    }

    fn entry(a: u64, s: u64, t: u32) -> [u8; PVH_MEMMAP_ENTRY_BYTES] {
        let mut b = [0u8; PVH_MEMMAP_ENTRY_BYTES];
        b[0..8].copy_from_slice(&a.to_le_bytes());
        b[8..16].copy_from_slice(&s.to_le_bytes());
        b[16..20].copy_from_slice(&t.to_le_bytes());
        b
    }

    #[test]
    fn memmap_entries_are_checked() {
        assert_eq!(
            parse_memmap_entry(&entry(0x10_0000, 0x1000, MEMMAP_TYPE_RAM)),
            Some((0x10_0000, 0x10_1000, 1))
        );
        assert_eq!(
            parse_memmap_entry(&entry(0xf_0000, 0x1_0000, 2)).unwrap().2,
            2
        );
        assert_eq!(parse_memmap_entry(&entry(u64::MAX, 2, 1)), None);
        assert_eq!(parse_memmap_entry(&entry(0x1000, 0, 1)), None);
        assert_eq!(parse_memmap_entry(&entry(0, 1, 1)[..19]), None);
    }

    #[test]
    fn module_entries_are_checked() {
        let mut b = [0u8; PVH_MODLIST_ENTRY_BYTES];
        b[0..8].copy_from_slice(&0x1f00_0000u64.to_le_bytes());
        b[8..16].copy_from_slice(&0x2345u64.to_le_bytes());
        assert_eq!(parse_module_entry(&b), Some((0x1f00_0000, 0x1f00_2345)));
        b[0..8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
        assert_eq!(parse_module_entry(&b), None);
        b[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(parse_module_entry(&b), None);
        assert_eq!(parse_module_entry(&b[..15]), None);
    }

    #[test]
    fn cmdline_copy_stops_at_nul_and_bounds() {
        let mut out = [0u8; 8];
        let c = copy_cmdline(b"a=1 b\0junk", &mut out);
        assert_eq!(c, CmdlineCopy { len: 5, cut: false });
        assert_eq!(&out[..5], b"a=1 b");
        let c = copy_cmdline(b"0123456789", &mut out);
        assert_eq!(c, CmdlineCopy { len: 8, cut: true });
        let c = copy_cmdline(b"", &mut out);
        assert_eq!(c, CmdlineCopy { len: 0, cut: false });
    }

    #[test]
    fn cmdline_copy_keeps_whole_characters() {
        let mut out = [0u8; 8];
        // "abcdefg" then a 2-byte character split by the 8-byte bound.
        let c = copy_cmdline("abcdefgé".as_bytes(), &mut out);
        assert_eq!(c, CmdlineCopy { len: 7, cut: true });
        // Invalid UTF-8 inside the line: the valid prefix, marked cut.
        let c = copy_cmdline(b"ab\xffcd", &mut out);
        assert_eq!(c, CmdlineCopy { len: 2, cut: true });
        assert_eq!(&out[..2], b"ab");
    }

    fn rsdp(revision: u8) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..8].copy_from_slice(RSDP_SIGNATURE);
        b[9..15].copy_from_slice(b"BOCHS ");
        b[15] = revision;
        b[16..20].copy_from_slice(&0x7fe_0000u32.to_le_bytes());
        b[20..24].copy_from_slice(&36u32.to_le_bytes());
        let s = b[..20].iter().fold(0u8, |s, &x| s.wrapping_add(x));
        b[8] = 0u8.wrapping_sub(s);
        let s = b.iter().fold(0u8, |s, &x| s.wrapping_add(x));
        b[32] = 0u8.wrapping_sub(s);
        b
    }

    #[test]
    fn rsdp_checksums_are_checked() {
        assert_eq!(check_rsdp(&rsdp(0)), Some(false));
        assert_eq!(check_rsdp(&rsdp(2)), Some(true));
        let mut bad = rsdp(0);
        bad[10] ^= 1;
        assert_eq!(check_rsdp(&bad), None);
        let mut bad2 = rsdp(2);
        bad2[33] ^= 1;
        assert_eq!(check_rsdp(&bad2), None);
        assert_eq!(check_rsdp(&rsdp(2)[..30]), None);
        assert_eq!(check_rsdp(b"RSD PTR"), None);
    }

    #[test]
    fn rsdp_scan_finds_aligned_tables_only() {
        let mut area = [0u8; 256];
        area[0x45..0x45 + 36].copy_from_slice(&rsdp(2));
        assert_eq!(scan_rsdp(&area), None);
        area[0x80..0x80 + 36].copy_from_slice(&rsdp(2));
        assert_eq!(scan_rsdp(&area), Some((0x80, true)));
        assert_eq!(scan_rsdp(&[]), None);
    }
}
