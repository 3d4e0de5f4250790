//! Spin locks that keep interrupts off while held.
//!
//! Every lock in the kernel is an [`IrqMutex`]: taking it saves the
//! interrupt flag and disables interrupts, and dropping the guard restores
//! it, so a handler can never spin on a lock that the code it interrupted
//! holds (xv6's push_off/pop_off, with the nesting carried in each guard).
//! Locks are short, never held across a wait for another CPU, and taken in
//! the order written in docs/architecture/scheduling.md.

use core::ops::{Deref, DerefMut};

use crate::arch;

/// A spin lock that disables interrupts while held.
pub struct IrqMutex<T> {
    inner: spin::Mutex<T>,
}

/// Proof that an [`IrqMutex`] is held; restores interrupts on drop.
pub struct IrqMutexGuard<'a, T> {
    guard: Option<spin::MutexGuard<'a, T>>,
    were_enabled: bool,
}

impl<T> IrqMutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let were_enabled = arch::interrupts_enabled();
        arch::cli();
        IrqMutexGuard {
            guard: Some(self.inner.lock()),
            were_enabled,
        }
    }

    /// Takes the lock only if it is free (for the panic path).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let were_enabled = arch::interrupts_enabled();
        arch::cli();
        match self.inner.try_lock() {
            Some(g) => Some(IrqMutexGuard {
                guard: Some(g),
                were_enabled,
            }),
            None => {
                if were_enabled {
                    arch::sti();
                }
                None
            }
        }
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("guard present until drop")
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("guard present until drop")
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if self.were_enabled {
            arch::sti();
        }
    }
}
