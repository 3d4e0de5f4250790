//! The rules a program ELF must meet, shared by mkimage and the kernel.
//!
//! mkimage refuses a bad ELF when it builds the initrd; the kernel checks
//! again before loading (it never trusts the initrd). Both call
//! [`validate`], which turns the file into a [`LoadPlan`] or an [`ElfError`].
//! Nothing here panics or overflows on any input.

use alloc::vec::Vec;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian as LE;

use crate::layout::{PAGE_SIZE, USER_IMAGE_BASE, USER_IMAGE_END};

/// Largest ELF file accepted.
pub const FILE_MAX: u64 = 16 << 20;
/// Largest total memory size of the loadable segments.
pub const MEM_MAX: u64 = 256 << 20;
/// Most loadable segments.
pub const SEGMENTS_MAX: usize = 16;

/// Segment permission bits (as in ELF `p_flags`).
pub const PF_X: u32 = elf::PF_X;
/// Writable.
pub const PF_W: u32 = elf::PF_W;
/// Readable.
pub const PF_R: u32 = elf::PF_R;

/// One loadable segment, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First virtual address.
    pub vaddr: u64,
    /// Bytes in memory (`>= file_len`); the rest is zero.
    pub mem_len: u64,
    /// Offset of the segment's bytes in the file.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub file_len: u64,
    /// `PF_*` bits.
    pub flags: u32,
}

impl Segment {
    /// Page-aligned start.
    pub fn page_start(&self) -> u64 {
        self.vaddr & !(PAGE_SIZE - 1)
    }
    /// Page-aligned end (exclusive). Cannot overflow: checked by [`validate`].
    pub fn page_end(&self) -> u64 {
        (self.vaddr + self.mem_len + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
    }
}

/// What the loader needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments, sorted by address, not sharing pages.
    pub segments: Vec<Segment>,
}

/// Why an ELF was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file, or its headers are cut short.
    NotElf,
    /// Not ELFCLASS64.
    Not64Bit,
    /// Not little-endian.
    NotLittleEndian,
    /// Not EM_X86_64.
    WrongMachine,
    /// Not ET_EXEC (a static executable linked at a fixed address).
    NotExecutable,
    /// The file is over [`FILE_MAX`].
    FileTooBig,
    /// No PT_LOAD segment, or more than [`SEGMENTS_MAX`].
    BadSegmentCount,
    /// A segment lies (partly) outside the user image area.
    SegmentOutsideUser { vaddr: u64 },
    /// A segment's file bytes lie outside the file, or filesz > memsz.
    SegmentBadFileRange { vaddr: u64 },
    /// `vaddr` and file offset disagree modulo the page size.
    SegmentMisaligned { vaddr: u64 },
    /// Two segments share a page.
    SegmentsOverlap { vaddr: u64 },
    /// Segments are writable and executable at once.
    WritableExecutable { vaddr: u64 },
    /// The total memory size is over [`MEM_MAX`].
    TooMuchMemory,
    /// The entry point is not inside an executable loadable segment.
    EntryNotExecutable { entry: u64 },
    /// A dynamic executable (PT_INTERP or PT_DYNAMIC present).
    Dynamic,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::Not64Bit => write!(f, "not a 64-bit ELF"),
            ElfError::NotLittleEndian => write!(f, "not a little-endian ELF"),
            ElfError::WrongMachine => write!(f, "not an x86-64 ELF"),
            ElfError::NotExecutable => write!(f, "not a static executable (ET_EXEC)"),
            ElfError::FileTooBig => write!(f, "ELF file larger than {FILE_MAX} bytes"),
            ElfError::BadSegmentCount => {
                write!(f, "needs 1..={SEGMENTS_MAX} loadable segments")
            }
            ElfError::SegmentOutsideUser { vaddr } => write!(
                f,
                "segment at {vaddr:#x} outside the user image area {USER_IMAGE_BASE:#x}..{USER_IMAGE_END:#x}"
            ),
            ElfError::SegmentBadFileRange { vaddr } => {
                write!(f, "segment at {vaddr:#x} has a bad file range")
            }
            ElfError::SegmentMisaligned { vaddr } => {
                write!(f, "segment at {vaddr:#x}: address and file offset differ modulo the page size")
            }
            ElfError::SegmentsOverlap { vaddr } => {
                write!(f, "segment at {vaddr:#x} shares a page with another segment")
            }
            ElfError::WritableExecutable { vaddr } => {
                write!(f, "segment at {vaddr:#x} is writable and executable")
            }
            ElfError::TooMuchMemory => write!(f, "segments need more than {MEM_MAX} bytes"),
            ElfError::EntryNotExecutable { entry } => {
                write!(f, "entry {entry:#x} is not inside an executable loadable segment")
            }
            ElfError::Dynamic => write!(f, "dynamic executables are not supported"),
        }
    }
}

/// Checks `data` against every rule and returns its load plan.
pub fn validate(data: &[u8]) -> Result<LoadPlan, ElfError> {
    if data.len() < 16 || data[..4] != elf::ELFMAG {
        return Err(ElfError::NotElf);
    }
    if data[4] != elf::ELFCLASS64 {
        return Err(ElfError::Not64Bit);
    }
    if data[5] != elf::ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian);
    }
    if data.len() as u64 > FILE_MAX {
        return Err(ElfError::FileTooBig);
    }
    let header = elf::FileHeader64::<LE>::parse(data).map_err(|_| ElfError::NotElf)?;
    if header.e_machine(LE) != elf::EM_X86_64 {
        return Err(ElfError::WrongMachine);
    }
    if header.e_type(LE) != elf::ET_EXEC {
        return Err(ElfError::NotExecutable);
    }
    let phdrs = header
        .program_headers(LE, data)
        .map_err(|_| ElfError::NotElf)?;
    let mut segments = Vec::new();
    for ph in phdrs {
        match ph.p_type(LE) {
            elf::PT_LOAD => {}
            elf::PT_INTERP | elf::PT_DYNAMIC => return Err(ElfError::Dynamic),
            _ => continue,
        }
        if segments.len() == SEGMENTS_MAX {
            return Err(ElfError::BadSegmentCount);
        }
        segments.push(check_segment(ph, data.len() as u64)?);
    }
    if segments.is_empty() {
        return Err(ElfError::BadSegmentCount);
    }
    segments.sort_by_key(|s| s.vaddr);
    let mut total = 0u64;
    for pair in segments.windows(2) {
        if pair[0].page_end() > pair[1].page_start() {
            return Err(ElfError::SegmentsOverlap {
                vaddr: pair[1].vaddr,
            });
        }
    }
    for s in &segments {
        total = total.saturating_add(s.page_end() - s.page_start());
    }
    if total > MEM_MAX {
        return Err(ElfError::TooMuchMemory);
    }
    let entry = header.e_entry(LE);
    let runs_entry =
        |s: &Segment| s.flags & PF_X != 0 && entry >= s.vaddr && entry - s.vaddr < s.mem_len;
    if !segments.iter().any(runs_entry) {
        return Err(ElfError::EntryNotExecutable { entry });
    }
    Ok(LoadPlan { entry, segments })
}

fn check_segment(ph: &elf::ProgramHeader64<LE>, file_len: u64) -> Result<Segment, ElfError> {
    let s = Segment {
        vaddr: ph.p_vaddr(LE),
        mem_len: ph.p_memsz(LE),
        file_offset: ph.p_offset(LE),
        file_len: ph.p_filesz(LE),
        flags: ph.p_flags(LE),
    };
    let vaddr = s.vaddr;
    let end = vaddr.checked_add(s.mem_len);
    match end {
        Some(end) if vaddr >= USER_IMAGE_BASE && end <= USER_IMAGE_END && s.mem_len > 0 => {}
        _ => return Err(ElfError::SegmentOutsideUser { vaddr }),
    }
    let file_end = s.file_offset.checked_add(s.file_len);
    if s.file_len > s.mem_len || !matches!(file_end, Some(e) if e <= file_len) {
        return Err(ElfError::SegmentBadFileRange { vaddr });
    }
    if s.file_len > 0 && vaddr % PAGE_SIZE != s.file_offset % PAGE_SIZE {
        return Err(ElfError::SegmentMisaligned { vaddr });
    }
    if s.flags & PF_W != 0 && s.flags & PF_X != 0 {
        return Err(ElfError::WritableExecutable { vaddr });
    }
    Ok(s)
}

#[cfg(test)]
pub mod tests {
    //! A tiny ELF writer for tests (also used by mkimage's tests).
    use super::*;
    use alloc::vec;

    /// One segment to emit: (vaddr, flags, file bytes, mem_len).
    pub type Seg<'a> = (u64, u32, &'a [u8], u64);

    /// Builds an ELF64 x86-64 ET_EXEC with the given segments.
    pub fn make_elf(entry: u64, segs: &[Seg<'_>]) -> Vec<u8> {
        let phoff = 64u64;
        let mut data_off = 0x1000u64;
        let mut out = vec![0u8; 64 + 56 * segs.len()];
        out[..4].copy_from_slice(&elf::ELFMAG);
        out[4] = elf::ELFCLASS64;
        out[5] = elf::ELFDATA2LSB;
        out[6] = 1;
        out[16..18].copy_from_slice(&elf::ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&elf::EM_X86_64.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        let mut blobs = Vec::new();
        for (i, (vaddr, flags, bytes, mem)) in segs.iter().enumerate() {
            let off = data_off + (vaddr % 0x1000);
            let p = 64 + 56 * i;
            out[p..p + 4].copy_from_slice(&elf::PT_LOAD.to_le_bytes());
            out[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            out[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            out[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            out[p + 24..p + 32].copy_from_slice(&vaddr.to_le_bytes());
            out[p + 32..p + 40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            out[p + 40..p + 48].copy_from_slice(&mem.to_le_bytes());
            out[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
            blobs.push((off, *bytes));
            data_off = (off + bytes.len() as u64 + 0xfff) & !0xfff;
        }
        for (off, bytes) in blobs {
            let end = off as usize + bytes.len();
            if out.len() < end {
                out.resize(end, 0);
            }
            out[off as usize..end].copy_from_slice(bytes);
        }
        out
    }

    #[test]
    fn accepts_good() {
        let code = [0xc3u8; 16];
        let e = make_elf(
            0x40_1000,
            &[
                (0x40_1000, PF_R | PF_X, &code, 16),
                (0x40_2000, PF_R | PF_W, &[1, 2], 0x3000),
            ],
        );
        let plan = validate(&e).unwrap();
        assert_eq!(plan.entry, 0x40_1000);
        assert_eq!(plan.segments.len(), 2);
        assert_eq!(plan.segments[1].mem_len, 0x3000);
    }

    #[test]
    fn refuses_bad() {
        let code = [0xc3u8; 16];
        assert_eq!(validate(b"hello world, not an elf"), Err(ElfError::NotElf));
        let mut e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        e[4] = elf::ELFCLASS32;
        assert_eq!(validate(&e), Err(ElfError::Not64Bit));
        let e = make_elf(
            0x40_1000,
            &[(0xffff_8000_0000_0000, PF_R | PF_X, &code, 16)],
        );
        assert!(matches!(
            validate(&e),
            Err(ElfError::SegmentOutsideUser { .. })
        ));
        let e = make_elf(0x40_2000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        assert!(matches!(
            validate(&e),
            Err(ElfError::EntryNotExecutable { .. })
        ));
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R, &code, 16)]);
        assert!(matches!(
            validate(&e),
            Err(ElfError::EntryNotExecutable { .. })
        ));
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_W | PF_X, &code, 16)]);
        assert!(matches!(
            validate(&e),
            Err(ElfError::WritableExecutable { .. })
        ));
        let e = make_elf(
            0x40_1000,
            &[
                (0x40_1000, PF_R | PF_X, &code, 16),
                (0x40_1800, PF_R, &code, 16),
            ],
        );
        assert!(matches!(
            validate(&e),
            Err(ElfError::SegmentsOverlap { .. })
        ));
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 8)]);
        assert!(matches!(
            validate(&e),
            Err(ElfError::SegmentBadFileRange { .. })
        ));
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, u64::MAX)]);
        assert!(matches!(
            validate(&e),
            Err(ElfError::SegmentOutsideUser { .. })
        ));
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        assert_eq!(validate(&e[..100]), Err(ElfError::NotElf));
        let mut e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        e[16] = elf::ET_DYN as u8;
        assert_eq!(validate(&e), Err(ElfError::NotExecutable));
        let mut e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        e[18] = 3;
        assert_eq!(validate(&e), Err(ElfError::WrongMachine));
    }

    #[test]
    fn never_panics_on_truncation() {
        let code = [0xc3u8; 16];
        let e = make_elf(0x40_1000, &[(0x40_1000, PF_R | PF_X, &code, 16)]);
        for n in 0..e.len() {
            let _ = validate(&e[..n]);
        }
    }
}
