//! Checked access to user memory (xv6's copyin/copyout).
//!
//! User pointers never reach a dereference directly: every access goes
//! page by page through [`AddrSpace::with_user_page`], which checks that
//! the page is a user page (writable, for writes) of the caller's space,
//! faults in demand-zero pages, and holds the space lock during the copy
//! so a sibling thread cannot unmap the page underneath. A bad pointer is
//! an `Err`, never a kernel fault.
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

use abi::layout::{PAGE_SIZE, USER_END};

use super::addr_space::{AddrSpace, SpaceError};
use super::phys_to_virt;

/// Checks that `[va, va+len)` lies in the user half.
fn check_range(va: u64, len: u64) -> Result<(), SpaceError> {
    match va.checked_add(len) {
        Some(end) if end <= USER_END => Ok(()),
        _ => Err(SpaceError::BadAddress),
    }
}

/// Copies `dst.len()` bytes from user address `va`.
pub fn copy_from_user(space: &AddrSpace, va: u64, dst: &mut [u8]) -> Result<(), SpaceError> {
    check_range(va, dst.len() as u64)?;
    let mut done = 0usize;
    while done < dst.len() {
        let cur = va + done as u64;
        let chunk = ((PAGE_SIZE - cur % PAGE_SIZE) as usize).min(dst.len() - done);
        let out = &mut dst[done..done + chunk];
        space.with_user_page(cur, false, |phys| {
            // User threads may write this page concurrently: we copy bytes
            // and never form references to them.
            // SAFETY: `phys..phys+chunk` lies in one user page of `space`,
            // checked and kept mapped (space lock held) by with_user_page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    phys_to_virt(phys) as *const u8,
                    out.as_mut_ptr(),
                    chunk,
                )
            };
        })?;
        done += chunk;
    }
    Ok(())
}

/// Copies `src` to user address `va`.
pub fn copy_to_user(space: &AddrSpace, va: u64, src: &[u8]) -> Result<(), SpaceError> {
    check_range(va, src.len() as u64)?;
    let mut done = 0usize;
    while done < src.len() {
        let cur = va + done as u64;
        let chunk = ((PAGE_SIZE - cur % PAGE_SIZE) as usize).min(src.len() - done);
        let inp = &src[done..done + chunk];
        space.with_user_page(cur, true, |phys| {
            // SAFETY: as in copy_from_user, for a writable user page.
            unsafe {
                core::ptr::copy_nonoverlapping(inp.as_ptr(), phys_to_virt(phys) as *mut u8, chunk)
            };
        })?;
        done += chunk;
    }
    Ok(())
}

/// Reads a plain-old-data value from user memory.
pub fn read_pod<T: Pod>(space: &AddrSpace, va: u64) -> Result<T, SpaceError> {
    let mut v = T::zeroed();
    copy_from_user(space, va, v.as_bytes_mut())?;
    Ok(v)
}

/// Atomically loads the aligned u32 at user address `va` (park words),
/// and tells which memory-object mapping (if any) holds it, both under one
/// hold of the space lock: a park keys the word by what backed it at the
/// moment it read the value.
pub fn load_u32_with_provenance(
    space: &AddrSpace,
    va: u64,
) -> Result<(u32, Option<(abi::memobj::Provenance, u64)>), SpaceError> {
    if !va.is_multiple_of(4) {
        return Err(SpaceError::BadAddress);
    }
    check_range(va, 4)?;
    space.with_user_word(va, |phys, prov| {
        // An aligned u32 in a user page; user space touches it atomically
        // or racily as plain memory, never as anything but a u32.
        // SAFETY: with_user_word checked the page and keeps it mapped (the
        // space lock is held); AtomicU32 has u32's layout.
        let a = unsafe { &*(phys_to_virt(phys) as *const AtomicU32) };
        (a.load(Ordering::SeqCst), prov)
    })
}

/// Types that any byte pattern inhabits (the ABI's `#[repr(C)]` structs of integers).
pub trait Pod: Sized {
    /// All zero.
    fn zeroed() -> Self;
    /// Its bytes, for filling.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `Pod` is implemented only for repr(C) integer structs
        // without padding-dependent invariants, so any byte pattern is valid.
        unsafe {
            core::slice::from_raw_parts_mut(
                self as *mut Self as *mut u8,
                core::mem::size_of::<Self>(),
            )
        }
    }
}

impl Pod for abi::op::SpawnArgs {
    fn zeroed() -> Self {
        Self::default()
    }
}

impl Pod for abi::op::UserStr {
    fn zeroed() -> Self {
        Self::default()
    }
}

impl Pod for u32 {
    fn zeroed() -> Self {
        0
    }
}

/// Copies `src` to physical memory at `dst_phys` (kernel-owned frames).
pub fn copy_to_kernel_frames(dst_phys: u64, src: &[u8]) {
    let words = src.len() / 8 * 8;
    // SAFETY: the caller owns the frames at `dst_phys` (large enough for
    // `src`), the direct map covers them, and `src` is kernel memory that
    // does not overlap them.
    unsafe {
        crate::arch::cpu::copy_words(phys_to_virt(dst_phys), src.as_ptr() as u64, words as u64);
        core::ptr::copy_nonoverlapping(
            src.as_ptr().add(words),
            (phys_to_virt(dst_phys) + words as u64) as *mut u8,
            src.len() - words,
        );
    }
}
