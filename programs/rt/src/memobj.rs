//! Memory objects and cross-process locks on shared park words.
//!
//! [`MemObject`] is a handle (a capability slot): create one, map it
//! ([`Mapping`]), derive a handle with fewer rights
//! ([`MemObject::restrict`]) and pass it to a child in `process::spawn`'s
//! `caps` (it arrives with the same rights; it needs TRANSFER).
//!
//! The kernel keys a park word inside a mapped object by (object, offset),
//! so the same word parks and unparks across every process that maps the
//! object, at whatever address. [`SharedMutex`] and [`SharedCondvar`] are
//! the in-process [`crate::sync`] algorithms on words that live in such a
//! mapping, plus what sharing adds: a park may end with an *error wake*
//! (`Unmapped`: this process unmapped the word; `PeerGone`: another
//! process that mapped it ended). The mutex treats `PeerGone` as a spurious
//! wake and retries; the condvar reports it to the caller, who checks the
//! shared state (its peer may be gone for good).

use crate::sys;
use abi::error::Error;
use abi::memobj::{MapFlags, MemRights};
use abi::op::ParkResult;
use abi::TIMEOUT_NEVER;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A memory-object handle.
#[derive(Debug)]
pub struct MemObject {
    slot: u32,
}

impl MemObject {
    /// A new object of `pages` zero-filled pages (every right).
    pub fn create(pages: u64) -> Result<MemObject, Error> {
        sys::memobj_create(pages).map(|(slot, _)| MemObject { slot })
    }

    /// The handle in `slot` (granted by a parent: see
    /// [`crate::Args::find_cap`] with `CapKind::MemObject`).
    pub const fn from_slot(slot: u32) -> MemObject {
        MemObject { slot }
    }

    /// Its slot (to pass to a child).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// (size in bytes, this handle's rights).
    pub fn info(&self) -> Result<(u64, MemRights), Error> {
        let (len, bits) = sys::memobj_info(self.slot)?;
        Ok((len, MemRights::from_bits(bits)?))
    }

    /// Maps the whole object where the kernel picks; writable needs the
    /// WRITE right (else `Denied`).
    pub fn map(&self, writable: bool) -> Result<Mapping, Error> {
        self.map_flags(if writable { MapFlags::WRITE } else { 0 }, 0)
    }

    /// Maps the whole object at `addr` (page-aligned, in the object window
    /// `abi::layout::OBJ_BASE..OBJ_END`).
    pub fn map_at(&self, addr: u64, writable: bool) -> Result<Mapping, Error> {
        let w = if writable { MapFlags::WRITE } else { 0 };
        self.map_flags(w | MapFlags::FIXED, addr)
    }

    fn map_flags(&self, flags: u64, addr: u64) -> Result<Mapping, Error> {
        let (len, _) = sys::memobj_info(self.slot)?;
        let addr = sys::memobj_map(self.slot, flags, addr)?;
        Ok(Mapping { addr, len })
    }

    /// A new handle to the same object with `rights` (a subset of this
    /// handle's; asking for more is `Denied`).
    pub fn restrict(&self, rights: MemRights) -> Result<MemObject, Error> {
        sys::cap_restrict(self.slot, rights.bits()).map(|slot| MemObject { slot })
    }

    /// Releases the handle (mappings stay valid: they keep the object).
    pub fn close(self) -> Result<(), Error> {
        sys::cap_close(self.slot)
    }
}

/// One mapping of a memory object. Borrowed words and locks cannot
/// outlive it: [`Mapping::unmap`] consumes it.
#[derive(Debug)]
pub struct Mapping {
    addr: u64,
    len: u64,
}

impl Mapping {
    /// Its address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never empty (objects have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The u32 word at byte `offset` (4-aligned, inside the mapping).
    /// Reading is always allowed; writing through a read-only mapping
    /// faults, like any store to a read-only page.
    pub fn u32_at(&self, offset: u64) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        // Shared with other processes, so only atomic access is sound.
        // SAFETY: 4-aligned and inside this mapping, which stays mapped
        // while `self` is borrowed (unmap consumes it).
        Some(unsafe { &*((self.addr + offset) as *const AtomicU32) })
    }

    /// The u64 word at byte `offset` (8-aligned, inside the mapping).
    pub fn u64_at(&self, offset: u64) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(8) || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: as in `u32_at`, for an 8-aligned AtomicU64.
        Some(unsafe { &*((self.addr + offset) as *const AtomicU64) })
    }

    /// Unmaps it; this process's threads parked on its words wake with
    /// `ParkResult::Unmapped`.
    pub fn unmap(self) -> Result<(), Error> {
        sys::memobj_unmap(self.addr)
    }
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutex whose state is a u32 word in shared memory (three states, as
/// [`crate::sync::Mutex`]). Any process that maps the word may lock it.
pub struct SharedMutex<'a> {
    state: &'a AtomicU32,
}

/// Proof of holding a [`SharedMutex`]; unlocks on drop.
pub struct SharedMutexGuard<'a, 'm> {
    lock: &'m SharedMutex<'a>,
}

impl<'a> SharedMutex<'a> {
    /// The mutex whose state is `word` (0 = unlocked; zero-filled objects
    /// start unlocked).
    pub const fn new(word: &'a AtomicU32) -> SharedMutex<'a> {
        SharedMutex { state: word }
    }

    /// Takes the lock, parking while another thread (of any process)
    /// holds it. Error wakes (a peer ended) are retried; an error from
    /// park itself (the word is not mapped) is returned.
    pub fn lock(&self) -> Result<SharedMutexGuard<'a, '_>, Error> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
                if sys::park(self.state, CONTENDED, TIMEOUT_NEVER)? == ParkResult::Unmapped {
                    return Err(Error::BadAddress);
                }
            }
        }
        Ok(SharedMutexGuard { lock: self })
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SharedMutexGuard<'a, '_>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SharedMutexGuard { lock: self })
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            let _ = sys::unpark(self.state, 1);
        }
    }
}

impl Drop for SharedMutexGuard<'_, '_> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// A condition variable on a shared sequence word, for [`SharedMutex`].
pub struct SharedCondvar<'a> {
    seq: &'a AtomicU32,
}

impl<'a> SharedCondvar<'a> {
    /// The condvar whose sequence is `word`.
    pub const fn new(word: &'a AtomicU32) -> SharedCondvar<'a> {
        SharedCondvar { seq: word }
    }

    /// Releases the lock, sleeps until notified (or spuriously, or an
    /// error wake), takes the lock again and says how the park ended
    /// (`Woken`, `ValueChanged`, `TimedOut`, or an error wake: `PeerGone`,
    /// `Unmapped`). Callers re-check their condition in a loop.
    pub fn wait<'g, 'm>(
        &self,
        guard: SharedMutexGuard<'g, 'm>,
    ) -> Result<(SharedMutexGuard<'g, 'm>, ParkResult), Error> {
        self.wait_timeout(guard, TIMEOUT_NEVER)
    }

    /// [`Self::wait`] for at most `timeout_ns`.
    pub fn wait_timeout<'g, 'm>(
        &self,
        guard: SharedMutexGuard<'g, 'm>,
        timeout_ns: u64,
    ) -> Result<(SharedMutexGuard<'g, 'm>, ParkResult), Error> {
        let seen = self.seq.load(Ordering::Acquire);
        let lock = guard.lock;
        drop(guard);
        let r = sys::park(self.seq, seen, timeout_ns);
        let g = lock.lock()?;
        Ok((g, r?))
    }

    /// Wakes one waiter (of any process).
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        let _ = sys::unpark(self.seq, 1);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        let _ = sys::unpark(self.seq, u64::from(u32::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_stay_inside_the_mapping() {
        let buf = [0u64; 4];
        let m = Mapping {
            addr: buf.as_ptr() as u64,
            len: 32,
        };
        assert!(m.u32_at(0).is_some());
        assert!(m.u32_at(28).is_some());
        assert!(m.u32_at(30).is_none(), "unaligned");
        assert!(m.u32_at(32).is_none(), "past the end");
        assert!(m.u32_at(u64::MAX - 2).is_none(), "wraps");
        assert!(m.u64_at(24).is_some());
        assert!(m.u64_at(28).is_none(), "unaligned");
        assert!(m.u64_at(32).is_none(), "past the end");
        m.u32_at(4).unwrap().store(9, Ordering::Relaxed);
        assert_eq!(m.u64_at(0).unwrap().load(Ordering::Relaxed), 9 << 32);
    }
}
