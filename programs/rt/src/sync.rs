//! Blocking locks on park/unpark (futex style), for threads of one process.
//!
//! [`Mutex`] is the classic three-state lock (0 unlocked, 1 locked, 2
//! locked with waiters): the uncontended paths are one atomic each and make
//! no system call. [`Condvar`] is a sequence word: a waiter reads it, drops
//! the lock and parks while it is unchanged; a notifier bumps it and
//! unparks. Park sleeps only if the word still holds the value the caller
//! saw, so no wakeup is lost between the check and the sleep.

use crate::sys;
use abi::TIMEOUT_NEVER;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock around a `T`.
pub struct Mutex<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time, so
// sharing the Mutex is sound whenever sending the T is.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above; the Mutex owns its T.
unsafe impl<T: Send> Send for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks on drop.
pub struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, parking while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { lock: self }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { lock: self })
    }

    fn lock_contended(&self) {
        // Mark the lock contended; whoever unlocks then wakes one waiter.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // A failed park (it should not fail) just retries: correctness
            // rests on the swap, park only saves the spinning.
            let _ = sys::park(&self.state, CONTENDED, TIMEOUT_NEVER);
        }
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            let _ = sys::unpark(&self.state, 1);
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock, exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// A condition variable for use with [`Mutex`].
pub struct Condvar {
    seq: AtomicU32,
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Condvar {
        Condvar {
            seq: AtomicU32::new(0),
        }
    }

    /// Releases the lock, sleeps until notified (or spuriously), and takes
    /// the lock again. Callers re-check their condition in a loop.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let seen = self.seq.load(Ordering::Acquire);
        let lock = guard.lock;
        drop(guard);
        let _ = sys::park(&self.seq, seen, TIMEOUT_NEVER);
        lock.lock()
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        let _ = sys::unpark(&self.seq, 1);
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Ordering::Release);
        let _ = sys::unpark(&self.seq, u64::from(u32::MAX));
    }
}
