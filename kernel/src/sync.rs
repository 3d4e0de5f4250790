//! Spin locks that keep interrupts off while held, and their statistics.
//!
//! Every lock in the kernel is an [`IrqMutex`] or an [`IrqRwLock`]: taking
//! it saves the interrupt flag and disables interrupts, and dropping the
//! guard restores it, so a handler can never spin on a lock that the code
//! it interrupted holds (xv6's push_off/pop_off, with the nesting carried
//! in each guard). Locks are short, never held across a wait for another
//! CPU, and taken in the order written in docs/architecture/scheduling.md.
//!
//! Each lock has a class ([`class`]), a zero-sized type parameter that
//! names it for lock statistics: with the `lockstat` feature every
//! acquisition is counted per class and per CPU ([`stat`]) and init prints
//! one `LOCKSTAT` line per class at the end of a scenario. Without the
//! feature the class is only a name in the type: no field, no code.

pub mod class;
pub mod stat;

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

pub use class::LockClass;

use crate::arch;

/// Pads and aligns `T` to a cache line (64 bytes), so that data written
/// often by one CPU does not share a line with data other CPUs read.
#[derive(Default)]
#[repr(C, align(64))]
pub struct CachePadded<T>(pub T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for CachePadded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Saves the interrupt flag and disables interrupts; [`IrqRestore`]
/// puts the flag back when dropped (after the lock it guards).
struct IrqRestore(bool);

impl IrqRestore {
    fn save_and_disable() -> IrqRestore {
        let were_enabled = arch::interrupts_enabled();
        arch::cli();
        IrqRestore(were_enabled)
    }
}

impl Drop for IrqRestore {
    fn drop(&mut self) {
        if self.0 {
            arch::sti();
        }
    }
}

/// Takes a lock through `try_take`, spinning on `busy` (a read-only
/// look) between tries, and counts the acquisition for class `C`.
#[inline(always)]
fn acquire<C: LockClass, G>(try_take: impl Fn() -> Option<G>, busy: impl Fn() -> bool) -> G {
    if let Some(g) = try_take() {
        stat::record::<C>(false, 0);
        return g;
    }
    let mut spins: u64 = 0;
    loop {
        while busy() {
            core::hint::spin_loop();
            spins += 1;
        }
        if let Some(g) = try_take() {
            stat::record::<C>(true, spins);
            return g;
        }
        spins += 1;
    }
}

/// A spin lock that disables interrupts while held; `C` names it for lock
/// statistics.
pub struct IrqMutex<T, C: LockClass = class::Unnamed> {
    inner: spin::Mutex<T>,
    _class: PhantomData<C>,
}

/// Proof that an [`IrqMutex`] is held; restores interrupts on drop.
pub struct IrqMutexGuard<'a, T> {
    // Field order: the lock is released before interrupts come back.
    guard: spin::MutexGuard<'a, T>,
    _irq: IrqRestore,
}

impl<T, C: LockClass> IrqMutex<T, C> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
            _class: PhantomData,
        }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let irq = IrqRestore::save_and_disable();
        let guard = if cfg!(feature = "lockstat") {
            acquire::<C, _>(|| self.inner.try_lock(), || self.inner.is_locked())
        } else {
            self.inner.lock()
        };
        IrqMutexGuard { guard, _irq: irq }
    }

    /// Takes the lock only if it is free (for the panic path).
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let irq = IrqRestore::save_and_disable();
        let guard = self.inner.try_lock()?;
        stat::record::<C>(false, 0);
        Some(IrqMutexGuard { guard, _irq: irq })
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// A readers-writer spin lock that disables interrupts while held: any
/// number of readers at once, or one writer. For tables read on every
/// operation and changed rarely (a process's capability table).
pub struct IrqRwLock<T, C: LockClass = class::Unnamed> {
    inner: spin::RwLock<T>,
    _class: PhantomData<C>,
}

/// Shared access to an [`IrqRwLock`]; restores interrupts on drop.
pub struct IrqReadGuard<'a, T> {
    guard: spin::RwLockReadGuard<'a, T>,
    _irq: IrqRestore,
}

/// Exclusive access to an [`IrqRwLock`]; restores interrupts on drop.
pub struct IrqWriteGuard<'a, T> {
    guard: spin::RwLockWriteGuard<'a, T>,
    _irq: IrqRestore,
}

impl<T, C: LockClass> IrqRwLock<T, C> {
    /// A new unlocked lock.
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::RwLock::new(value),
            _class: PhantomData,
        }
    }

    /// Shared access: waits only while a writer holds the lock.
    pub fn read(&self) -> IrqReadGuard<'_, T> {
        let irq = IrqRestore::save_and_disable();
        let guard = if cfg!(feature = "lockstat") {
            acquire::<C, _>(|| self.inner.try_read(), || self.inner.writer_count() != 0)
        } else {
            self.inner.read()
        };
        IrqReadGuard { guard, _irq: irq }
    }

    /// Exclusive access: waits for every reader and writer to leave.
    /// Writers go first: the writer takes the upgradeable read (spin's
    /// readers back off while it is held, so no new reader gets in) and
    /// then waits only for the readers already inside. Without that, a
    /// stream of overlapping readers (sibling threads' user copies on
    /// other CPUs) could keep a writer spinning, interrupts off, forever.
    pub fn write(&self) -> IrqWriteGuard<'_, T> {
        let irq = IrqRestore::save_and_disable();
        let upgradeable = if cfg!(feature = "lockstat") {
            acquire::<C, _>(
                || self.inner.try_upgradeable_read(),
                || self.inner.writer_count() != 0,
            )
        } else {
            self.inner.upgradeable_read()
        };
        IrqWriteGuard {
            guard: upgradeable.upgrade(),
            _irq: irq,
        }
    }
}

impl<T> Deref for IrqReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> Deref for IrqWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
