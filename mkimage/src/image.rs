//! Building an initrd: load and check every program ELF a manifest needs,
//! then encode manifest and images with [`abi::initrd::encode`].
//!
//! The ELF rules themselves live in [`abi::elf::validate`] (the kernel
//! applies the same ones at load time); this module only finds the files,
//! reports missing or bad ones (all of them, not just the first) and writes
//! the container.

use std::fmt;
use std::path::{Path, PathBuf};

use abi::elf::{ElfError, LoadPlan};
use abi::initrd::{Payload, ProgramImage};

use crate::diag::{Diagnostic, Problem, Problems, SourceFile};
use crate::manifest::{self, ManifestDoc, Repeat};
use crate::read::ReadError;

/// Largest program file read: a bigger one could not fit in the initrd's
/// payload ([`abi::initrd::PAYLOAD_MAX`]) anyway.
pub const PROGRAM_FILE_MAX: u64 = abi::initrd::PAYLOAD_MAX;

/// What `mkimage build` was asked to do.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Directory holding one ELF per program name.
    pub programs_dir: PathBuf,
    /// Overrides the workload's `repeat`, if given.
    pub repeat: Option<Repeat>,
}

/// Why no initrd was built.
#[derive(Debug)]
pub enum BuildError {
    /// The manifest or a program is wrong; one problem per line.
    Invalid(Problems),
    /// postcard could not encode the payload.
    Encode(postcard::Error),
    /// The payload would be larger than the kernel accepts.
    TooLarge(usize),
    /// The payload breaks a rule of [`abi::validate`] (a bug in mkimage's
    /// own checks: it must never write an initrd the kernel refuses).
    Refused(abi::validate::Violation),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid(p) => write!(f, "{p}"),
            BuildError::Encode(e) => write!(f, "cannot encode the initrd payload: {e}"),
            BuildError::TooLarge(n) => write!(
                f,
                "the initrd payload would be {n} bytes, more than the limit of {} bytes",
                abi::initrd::PAYLOAD_MAX
            ),
            BuildError::Refused(v) => write!(f, "the initrd would be refused: {v}"),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<Problems> for BuildError {
    fn from(p: Problems) -> Self {
        BuildError::Invalid(p)
    }
}

/// One program file, read and checked.
#[derive(Clone, Debug)]
pub struct LoadedProgram {
    /// Its manifest name.
    pub name: String,
    /// The ELF file, unchanged.
    pub elf: Vec<u8>,
}

/// Reads and validates the manifest at `path` (`shown` as typed), then
/// builds the initrd bytes.
pub fn build_file(path: &Path, shown: &str, opts: &BuildOptions) -> Result<Vec<u8>, BuildError> {
    let (src, mut doc) = manifest::load(path, shown)?;
    if let Some(r) = opts.repeat {
        doc.override_repeat(r);
    }
    let programs = load_programs(&src, &doc, &opts.programs_dir)?;
    encode(&doc, &programs)
}

/// Loads every program `doc` needs from `dir` and checks each ELF. A
/// missing file is blamed on the manifest line that names it.
pub fn load_programs(
    src: &SourceFile,
    doc: &ManifestDoc,
    dir: &Path,
) -> Result<Vec<LoadedProgram>, Problems> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for (name, offset) in doc.required_programs() {
        let path = dir.join(name);
        let shown = path.display().to_string();
        match crate::read::regular_file(&path, PROGRAM_FILE_MAX) {
            Err(ReadError::NotFound) => {
                let msg = format!("program {name:?} not found in {}", dir.display());
                problems.push(src.problem(&Diagnostic::new(offset, msg)));
            }
            Err(e) => problems.push(e.problem(&shown)),
            Ok(elf) => match validate_elf(&elf) {
                Err(e) => problems.push(Problem::file(shown, format!("bad program ELF: {e}"))),
                Ok(_) => loaded.push(LoadedProgram {
                    name: name.to_string(),
                    elf,
                }),
            },
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(Problems(problems))
    }
}

/// [`abi::elf::validate`] on an 8-byte-aligned copy of `data`.
///
/// `validate` reads the headers in place through `object`, which (built
/// without its `unaligned` feature) refuses a buffer not aligned for `u64`
/// and reports "not an ELF file". Images decoded from an initrd sit at
/// arbitrary payload offsets, and even a fresh `Vec<u8>` promises no
/// alignment, so always check an aligned copy.
pub fn validate_elf(data: &[u8]) -> Result<LoadPlan, ElfError> {
    const ALIGN: usize = 8;
    let mut buf = vec![0u8; data.len() + ALIGN];
    let pad = buf.as_ptr().align_offset(ALIGN);
    match buf.get_mut(pad..pad + data.len()) {
        Some(copy) => {
            copy.copy_from_slice(data);
            abi::elf::validate(copy)
        }
        // `align_offset` may decline to answer; fall back to the original.
        None => abi::elf::validate(data),
    }
}

/// Encodes the initrd: header plus postcard payload.
pub fn encode(doc: &ManifestDoc, programs: &[LoadedProgram]) -> Result<Vec<u8>, BuildError> {
    let payload = Payload {
        manifest: doc.to_abi(),
        programs: programs
            .iter()
            .map(|p| ProgramImage {
                name: &p.name,
                elf: &p.elf,
            })
            .collect(),
    };
    abi::validate::payload(&payload).map_err(BuildError::Refused)?;
    let bytes = abi::initrd::encode(&payload).map_err(BuildError::Encode)?;
    let body = bytes.len().saturating_sub(abi::initrd::HEADER_LEN);
    if u64::try_from(body).map_or(true, |b| b > abi::initrd::PAYLOAD_MAX) {
        return Err(BuildError::TooLarge(body));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid program: one r-x page at 0x401000.
    fn tiny_elf() -> Vec<u8> {
        let mut e = vec![0u8; 0x1001];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[6] = 1;
        e[16] = 2; // ET_EXEC
        e[18] = 62; // EM_X86_64
        e[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes());
        e[32] = 64; // e_phoff
        e[52] = 64;
        e[54] = 56;
        e[56] = 1;
        let ph = 64;
        e[ph] = 1; // PT_LOAD
        e[ph + 4] = 5; // R|X
        let fields: [u64; 6] = [0x1000, 0x40_1000, 0x40_1000, 1, 1, 0x1000];
        for (i, f) in fields.iter().enumerate() {
            e[ph + 8 + 8 * i..ph + 16 + 8 * i].copy_from_slice(&f.to_le_bytes());
        }
        e
    }

    #[test]
    fn validates_at_any_alignment() {
        let elf = tiny_elf();
        for shift in 0..8 {
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(&elf);
            let plan = validate_elf(&buf[shift..]).expect("valid at every offset");
            assert_eq!(plan.entry, 0x40_1000);
        }
    }
}
