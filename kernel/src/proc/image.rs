//! The program image cache: each initrd program, checked and copied once
//! at boot into page-aligned frames.
//!
//! Images inside the initrd are not page-aligned (they sit in the postcard
//! payload), so they are copied once, with `rep movsq`, into contiguous
//! frames. Read-only pages of every process running that program are then
//! mapped straight from here, shared and never copied again: spawning a
//! worker costs page-table writes, not page copies. The kernel checks each
//! image again with the same rules as mkimage; a bad one is kept out and
//! spawning it fails with `BadImage`.

use alloc::vec::Vec;

use abi::elf::LoadPlan;
use abi::initrd::Payload;
use spin::Once;

use crate::mm::frame::{self, Frame};

/// One program, ready to map.
pub struct Image {
    /// Its name.
    pub name: &'static str,
    /// The checked plan, or the reason it was refused.
    pub plan: Result<LoadPlan, abi::elf::ElfError>,
    /// First frame of the page-aligned copy of the ELF file.
    pub base: Frame,
    /// File length.
    pub len: u64,
}

static IMAGES: Once<Vec<Image>> = Once::new();

/// Checks and caches every program of the initrd.
pub fn init(payload: &Payload<'static>) {
    IMAGES.call_once(|| {
        let mut v = Vec::new();
        for p in &payload.programs {
            let plan = abi::elf::validate(p.elf);
            if let Err(e) = &plan {
                kprintln!("kernel: program {} refused: {}", p.name, e);
            }
            let len = p.elf.len() as u64;
            let pages = len.div_ceil(4096).max(1);
            let base = frame::alloc_contiguous(pages).expect("no memory for program images");
            crate::mm::copy_into_frames(base, p.elf);
            v.push(Image {
                name: p.name,
                plan,
                base,
                len,
            });
        }
        v
    });
}

/// Finds a program by name.
pub fn find(name: &[u8]) -> Option<&'static Image> {
    IMAGES.get()?.iter().find(|i| i.name.as_bytes() == name)
}
