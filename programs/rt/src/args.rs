//! The start-up block: arguments and capability kinds ([`abi::startup`]).
//!
//! [`Args`] checks the block once ([`Args::from_raw`]: magic, every offset
//! and string inside the block) and then hands out `&str` arguments and
//! capability kinds by slot. [`args`] gives any code the process's block.

use abi::caps::CapKind;
use abi::op::UserStr;
use abi::startup::{Startup, STARTUP_BYTES, STARTUP_MAGIC};
use core::sync::atomic::{AtomicUsize, Ordering};

/// The process's arguments and capabilities, as the kernel described them.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    base: usize,
    head: Startup,
}

static STARTUP: AtomicUsize = AtomicUsize::new(0);

/// Remembers the (already checked) block for [`args`].
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn install(base: usize) {
    STARTUP.store(base, Ordering::Release);
}

/// The process's start-up block (`None` before `main` or on the host).
pub fn args() -> Option<Args> {
    let base = STARTUP.load(Ordering::Acquire);
    if base == 0 {
        return None;
    }
    // SAFETY: `install` stored the address of the block `rt_start` checked.
    unsafe { Args::from_raw(base) }
}

impl Args {
    /// Reads and checks the block at `base`; `None` if it is malformed.
    ///
    /// # Safety
    ///
    /// `base` must point at [`STARTUP_BYTES`] readable, 8-byte aligned bytes
    /// that stay unchanged for as long as the result is used.
    pub unsafe fn from_raw(base: usize) -> Option<Args> {
        // SAFETY: the caller guarantees a readable, aligned block.
        let head = unsafe { core::ptr::read(base as *const Startup) };
        let a = Args { base, head };
        a.well_formed().then_some(a)
    }

    fn well_formed(&self) -> bool {
        let h = &self.head;
        let within = |off: u64, count: u64, size: u64| {
            count
                .checked_mul(size)
                .and_then(|n| n.checked_add(off))
                .is_some_and(|end| end <= STARTUP_BYTES)
        };
        h.magic == STARTUP_MAGIC
            && h.caps_offset.is_multiple_of(4)
            && h.argv_offset.is_multiple_of(8)
            && within(h.caps_offset, h.ncaps, 4)
            && within(
                h.argv_offset,
                h.argc,
                core::mem::size_of::<UserStr>() as u64,
            )
            && (0..h.argc).all(|i| self.str_range(i).is_some())
    }

    /// Offset and length of argument `i` inside the block.
    fn str_range(&self, i: u64) -> Option<(usize, usize)> {
        if i >= self.head.argc {
            return None;
        }
        let at = self.base + self.head.argv_offset as usize + i as usize * 16;
        // SAFETY: `well_formed` (or the caller, during it) checked the
        // argv array lies inside the block; `at` is 8-byte aligned.
        let s = unsafe { core::ptr::read(at as *const UserStr) };
        let off = s.ptr.checked_sub(self.base as u64)?;
        let end = off.checked_add(s.len)?;
        (end <= STARTUP_BYTES).then_some((off as usize, s.len as usize))
    }

    /// The fixed part of the block.
    pub fn startup(&self) -> &Startup {
        &self.head
    }

    /// The process id.
    pub fn pid(&self) -> u64 {
        self.head.pid
    }

    /// Online CPUs at start.
    pub fn cpus(&self) -> u64 {
        self.head.cpus
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        self.head.tsc_hz
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.head.argc as usize
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.head.argc == 0
    }

    /// Argument `i` as bytes.
    pub fn get_bytes(&self, i: usize) -> Option<&[u8]> {
        let (off, len) = self.str_range(i as u64)?;
        // SAFETY: the range lies inside the unchanging block (checked).
        Some(unsafe { core::slice::from_raw_parts((self.base + off) as *const u8, len) })
    }

    /// Argument `i`, if present and valid UTF-8.
    pub fn get(&self, i: usize) -> Option<&str> {
        core::str::from_utf8(self.get_bytes(i)?).ok()
    }

    /// Argument `i` parsed as a decimal number.
    pub fn get_u64(&self, i: usize) -> Option<u64> {
        parse_u64(self.get(i)?)
    }

    /// All arguments in order (invalid UTF-8 shows as "").
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| self.get(i).unwrap_or(""))
    }

    /// Number of capability slots described.
    pub fn cap_count(&self) -> u32 {
        self.head.ncaps as u32
    }

    /// Raw kind value of slot `slot`.
    pub fn cap_kind_raw(&self, slot: u32) -> Option<u32> {
        if u64::from(slot) >= self.head.ncaps {
            return None;
        }
        let at = self.base + self.head.caps_offset as usize + slot as usize * 4;
        // SAFETY: inside the kind array, which `well_formed` checked.
        Some(unsafe { core::ptr::read(at as *const u32) })
    }

    /// Kind of slot `slot`.
    pub fn cap_kind(&self, slot: u32) -> Option<CapKind> {
        CapKind::from_raw(self.cap_kind_raw(slot)?)
    }

    /// The lowest slot holding `kind`.
    pub fn find_cap(&self, kind: CapKind) -> Option<u32> {
        (0..self.cap_count()).find(|s| self.cap_kind(*s) == Some(kind))
    }
}

/// Parses a plain decimal `u64` (no sign, `_` separators allowed).
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with('_') {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?,
            b'_' => {}
            _ => return None,
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a start-up block in an aligned host buffer, the way the
    /// kernel does: fixed part, kinds, argv, then the string bytes.
    fn build(buf: &mut [u64; 512], kinds: &[u32], argv: &[&str]) -> usize {
        let base = buf.as_mut_ptr() as usize;
        let bytes = base as *mut u8;
        let caps_offset = 128u64;
        let argv_offset = caps_offset + 4 * kinds.len() as u64;
        let argv_offset = argv_offset.next_multiple_of(8);
        let mut str_off = argv_offset + 16 * argv.len() as u64;
        let head = Startup {
            magic: STARTUP_MAGIC,
            pid: 7,
            ring: 0x1000_0000_0000,
            cpus: 2,
            tsc_hz: 1_000_000_000,
            ncaps: kinds.len() as u64,
            caps_offset,
            argc: argv.len() as u64,
            argv_offset,
        };
        // SAFETY: all writes stay inside the 4 KiB buffer.
        unsafe {
            core::ptr::write(base as *mut Startup, head);
            for (i, k) in kinds.iter().enumerate() {
                core::ptr::write((base + caps_offset as usize + 4 * i) as *mut u32, *k);
            }
            for (i, a) in argv.iter().enumerate() {
                let us = UserStr {
                    ptr: base as u64 + str_off,
                    len: a.len() as u64,
                };
                core::ptr::write((base + argv_offset as usize + 16 * i) as *mut UserStr, us);
                core::ptr::copy_nonoverlapping(a.as_ptr(), bytes.add(str_off as usize), a.len());
                str_off += a.len() as u64;
            }
        }
        base
    }

    #[test]
    fn parses_args_and_caps() {
        let mut buf = [0u64; 512];
        let base = build(&mut buf, &[5, 1, 2], &["parent", "0", "a b", ""]);
        // SAFETY: a well-formed block in `buf`.
        let a = unsafe { Args::from_raw(base) }.expect("valid");
        assert_eq!(a.len(), 4);
        assert_eq!(a.get(0), Some("parent"));
        assert_eq!(a.get(2), Some("a b"));
        assert_eq!(a.get(3), Some(""));
        assert_eq!(a.get(4), None);
        assert_eq!(a.get_u64(1), Some(0));
        assert_eq!(a.cap_kind(0), Some(CapKind::SelfProcess));
        assert_eq!(a.find_cap(CapKind::Timer), Some(2));
        assert_eq!(a.find_cap(CapKind::Spawner), None);
        assert_eq!(a.cap_kind(3), None);
        assert_eq!(a.iter().collect::<Vec<_>>(), ["parent", "0", "a b", ""]);
    }

    /// Overwrites word `i` of the block at `base`.
    fn poke(base: usize, i: usize, v: u64) {
        // SAFETY: tests only poke inside their 4 KiB buffer.
        unsafe { (base as *mut u64).add(i).write(v) };
    }

    #[test]
    fn rejects_bad_blocks() {
        let mut buf = [0u64; 512];
        let base = build(&mut buf, &[5], &["x"]);
        poke(base, 0, 0); // magic
                          // SAFETY: readable buffer.
        assert!(unsafe { Args::from_raw(base) }.is_none());

        let base = build(&mut buf, &[5], &["x"]);
        poke(base, 7, 1 << 40); // argc
                                // SAFETY: readable buffer.
        assert!(unsafe { Args::from_raw(base) }.is_none());

        let base = build(&mut buf, &[5], &["x"]);
        // SAFETY: readable buffer.
        let argv_offset = unsafe { (base as *const u64).add(8).read() } as usize / 8;
        poke(base, argv_offset, 0x10); // string pointer outside the block
                                       // SAFETY: readable buffer.
        assert!(unsafe { Args::from_raw(base) }.is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("2_000_000"), Some(2_000_000));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("12a"), None);
    }
}
