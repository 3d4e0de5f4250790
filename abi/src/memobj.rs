//! Memory objects and shared park words: the pure rules the kernel
//! applies and user space relies on.
//!
//! - [`MemRights`]: what a memory-object handle allows. Every operation
//!   checks them; [`MemRights::restrict`] only ever removes rights, so a
//!   read-only handle can never become writable again, and
//!   [`MemRights::check_map`] refuses a writable mapping without WRITE.
//! - [`MapFlags`]: the flags of MemObjMap.
//! - [`ParkKey`]: what a park word is keyed by. A word in private memory
//!   keys by (process, address); a word inside a memory-object mapping
//!   keys by (object, offset in the object), so every process that maps
//!   the object, at whatever address, names the same word
//!   ([`ParkKey::derive`]).
//! - [`ParkKey::bucket`]: which lock of the kernel's bucketed park table
//!   guards a key.
//!
//! Kept here (no_std, no unsafe) so the host tests check the very code
//! the kernel runs.

use crate::error::Error;
use crate::layout::PAGE_SIZE;

/// Rights of a memory-object handle (a bit set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRights(u64);

impl MemRights {
    /// Map the object readable (every mapping needs it).
    pub const READ: MemRights = MemRights(1);
    /// Map the object writable (with READ).
    pub const WRITE: MemRights = MemRights(2);
    /// Pass the handle to a child at Spawn.
    pub const TRANSFER: MemRights = MemRights(4);
    /// Every right: what MemObjCreate returns.
    pub const ALL: MemRights = MemRights(7);
    /// Read and transfer, no write: the usual "read-only copy".
    pub const READ_ONLY: MemRights = MemRights(1 | 4);

    /// Decodes user bits; unknown bits are `Invalid`.
    pub fn from_bits(bits: u64) -> Result<MemRights, Error> {
        if bits & !Self::ALL.0 != 0 {
            return Err(Error::Invalid);
        }
        Ok(MemRights(bits))
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every right in `other` is in `self`.
    pub const fn contains(self, other: MemRights) -> bool {
        self.0 & other.0 == other.0
    }

    /// Rights for a derived handle: `bits` must decode and be a subset of
    /// `self` (asking for more is `Denied`).
    pub fn restrict(self, bits: u64) -> Result<MemRights, Error> {
        let want = Self::from_bits(bits)?;
        if !self.contains(want) {
            return Err(Error::Denied);
        }
        Ok(want)
    }

    /// May a holder map with `flags`? READ always, WRITE for a writable
    /// mapping.
    pub fn check_map(self, flags: MapFlags) -> Result<(), Error> {
        if !self.contains(Self::READ) || (flags.write && !self.contains(Self::WRITE)) {
            return Err(Error::Denied);
        }
        Ok(())
    }
}

/// Decoded MemObjMap flags (`args[0]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFlags {
    /// Map writable (else read-only).
    pub write: bool,
    /// Map at `args[1]` (else the kernel picks).
    pub fixed: bool,
}

impl MapFlags {
    /// Bit: writable mapping.
    pub const WRITE: u64 = 1;
    /// Bit: at the given address.
    pub const FIXED: u64 = 2;

    /// Decodes user bits; unknown bits are `Invalid`.
    pub fn from_bits(bits: u64) -> Result<MapFlags, Error> {
        if bits & !(Self::WRITE | Self::FIXED) != 0 {
            return Err(Error::Invalid);
        }
        Ok(MapFlags {
            write: bits & Self::WRITE != 0,
            fixed: bits & Self::FIXED != 0,
        })
    }
}

/// Checks a fixed mapping address for an object of `len_bytes`: page
/// aligned and the whole range inside `OBJ_BASE..OBJ_END`.
pub fn check_fixed(addr: u64, len_bytes: u64) -> Result<(), Error> {
    let end = addr.checked_add(len_bytes).ok_or(Error::BadAddress)?;
    if !addr.is_multiple_of(PAGE_SIZE)
        || addr < crate::layout::OBJ_BASE
        || end > crate::layout::OBJ_END
    {
        return Err(Error::BadAddress);
    }
    Ok(())
}

/// Where one memory-object mapping sits: what a provenance lookup finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// First user address of the mapping.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
    /// The object's id (unique for the kernel's lifetime, never reused).
    pub object: u64,
    /// The object offset mapped at `start`.
    pub offset: u64,
}

/// What a park word is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParkKey {
    /// A word in private memory: (process id, virtual address).
    Private {
        /// The process (pids are never reused).
        pid: u64,
        /// The word's address in that process.
        addr: u64,
    },
    /// A word inside a memory object: (object id, byte offset).
    Shared {
        /// The object (ids are never reused).
        object: u64,
        /// The word's offset in the object.
        offset: u64,
    },
}

impl ParkKey {
    /// The key of the word at `addr` in process `pid`, given the mapping
    /// that covers `addr`, if any (`prov` must contain `addr`; one that
    /// does not is ignored and the word is private).
    pub fn derive(pid: u64, addr: u64, prov: Option<Provenance>) -> ParkKey {
        match prov {
            Some(p) if p.start <= addr && addr < p.end => ParkKey::Shared {
                object: p.object,
                offset: p.offset + (addr - p.start),
            },
            _ => ParkKey::Private { pid, addr },
        }
    }

    /// The smallest and largest keys of object `object`, for a range over
    /// every word of it (keys order by variant, then object, then offset).
    pub const fn object_range(object: u64) -> (ParkKey, ParkKey) {
        (
            ParkKey::Shared { object, offset: 0 },
            ParkKey::Shared {
                object,
                offset: u64::MAX,
            },
        )
    }

    /// Which of `buckets` (a power of two) guards this key: a multiplicative
    /// hash of both words, so neighbouring words of one object and the same
    /// address in different processes spread over the buckets.
    pub fn bucket(self, buckets: usize) -> usize {
        debug_assert!(buckets.is_power_of_two());
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let (tag, a, b) = match self {
            ParkKey::Private { pid, addr } => (1u64, pid, addr),
            ParkKey::Shared { object, offset } => (2u64, object, offset),
        };
        // Words are 4-byte aligned: drop the low bits before mixing.
        let h = (a.wrapping_mul(K) ^ (b >> 2) ^ tag.rotate_left(61)).wrapping_mul(K);
        (h >> 32) as usize & (buckets - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_never_maps_writable() {
        let ro = MemRights::ALL
            .restrict(MemRights::READ_ONLY.bits())
            .unwrap();
        assert_eq!(
            ro.check_map(MapFlags::from_bits(MapFlags::WRITE).unwrap()),
            Err(Error::Denied)
        );
        assert_eq!(ro.check_map(MapFlags::from_bits(0).unwrap()), Ok(()));
        // Restricting never adds a right back.
        assert_eq!(ro.restrict(MemRights::ALL.bits()), Err(Error::Denied));
        assert_eq!(ro.restrict(MemRights::WRITE.bits()), Err(Error::Denied));
        assert_eq!(ro.restrict(MemRights::READ.bits()), Ok(MemRights::READ));
        // No READ: no mapping at all.
        let none = MemRights::ALL.restrict(MemRights::TRANSFER.bits()).unwrap();
        assert_eq!(
            none.check_map(MapFlags::from_bits(0).unwrap()),
            Err(Error::Denied)
        );
        assert_eq!(
            MemRights::ALL.check_map(MapFlags::from_bits(3).unwrap()),
            Ok(())
        );
    }

    #[test]
    fn unknown_bits_are_invalid() {
        assert_eq!(MemRights::from_bits(8), Err(Error::Invalid));
        assert_eq!(MemRights::ALL.restrict(1 << 40), Err(Error::Invalid));
        assert_eq!(MapFlags::from_bits(4), Err(Error::Invalid));
        assert_eq!(
            MapFlags::from_bits(MapFlags::FIXED),
            Ok(MapFlags {
                write: false,
                fixed: true
            })
        );
    }

    #[test]
    fn fixed_addresses_stay_in_the_window() {
        use crate::layout::{OBJ_BASE, OBJ_END};
        assert_eq!(check_fixed(OBJ_BASE, PAGE_SIZE), Ok(()));
        assert_eq!(check_fixed(OBJ_END - PAGE_SIZE, PAGE_SIZE), Ok(()));
        assert_eq!(check_fixed(OBJ_END, PAGE_SIZE), Err(Error::BadAddress));
        assert_eq!(
            check_fixed(OBJ_END - PAGE_SIZE, 2 * PAGE_SIZE),
            Err(Error::BadAddress)
        );
        assert_eq!(check_fixed(OBJ_BASE + 8, PAGE_SIZE), Err(Error::BadAddress));
        assert_eq!(check_fixed(0, PAGE_SIZE), Err(Error::BadAddress));
        assert_eq!(
            check_fixed(u64::MAX - 10, PAGE_SIZE),
            Err(Error::BadAddress)
        );
    }

    #[test]
    fn shared_key_is_the_same_at_any_address() {
        let a = Provenance {
            start: 0x3000_0000_0000,
            end: 0x3000_0000_2000,
            object: 7,
            offset: 0,
        };
        let b = Provenance {
            start: 0x3100_0000_0000,
            end: 0x3100_0000_2000,
            object: 7,
            offset: 0,
        };
        let ka = ParkKey::derive(1, a.start + 0x1004, Some(a));
        let kb = ParkKey::derive(2, b.start + 0x1004, Some(b));
        assert_eq!(ka, kb);
        assert_eq!(
            ka,
            ParkKey::Shared {
                object: 7,
                offset: 0x1004
            }
        );
        assert_eq!(ka.bucket(64), kb.bucket(64));
        // Another word of the object is another key.
        assert_ne!(ka, ParkKey::derive(1, a.start + 0x1008, Some(a)));
        // Private words key by process: the same address differs.
        let p1 = ParkKey::derive(1, 0x5000, None);
        let p2 = ParkKey::derive(2, 0x5000, None);
        assert_ne!(p1, p2);
        // An address outside the mapping is private.
        assert_eq!(
            ParkKey::derive(1, a.end, Some(a)),
            ParkKey::Private {
                pid: 1,
                addr: a.end
            }
        );
    }

    #[test]
    fn object_range_covers_exactly_its_words() {
        let (lo, hi) = ParkKey::object_range(7);
        let inside = ParkKey::Shared {
            object: 7,
            offset: 4096,
        };
        assert!(lo <= inside && inside <= hi);
        for other in [
            ParkKey::Shared {
                object: 6,
                offset: u64::MAX,
            },
            ParkKey::Shared {
                object: 8,
                offset: 0,
            },
            ParkKey::Private { pid: 7, addr: 4096 },
        ] {
            assert!(!(lo <= other && other <= hi));
        }
    }

    #[test]
    fn buckets_spread_words() {
        let mut seen = [0u32; 64];
        for i in 0..4096u64 {
            let k = ParkKey::Shared {
                object: 3,
                offset: i * 4,
            };
            seen[k.bucket(64)] += 1;
        }
        // 4096 consecutive words over 64 buckets: every bucket used, none
        // holding more than four times its share.
        assert!(seen.iter().all(|&n| n > 0 && n <= 256), "{seen:?}");
        let mut seen = [0u32; 64];
        for pid in 0..1024u64 {
            seen[ParkKey::Private { pid, addr: 0x1000 }.bucket(64)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0 && n <= 64), "{seen:?}");
    }
}
