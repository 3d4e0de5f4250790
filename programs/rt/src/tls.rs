//! Per-thread state, reached through FS.
//!
//! Every thread's FS base points at its [`Tls`] block, whose first word
//! holds the block's own address, so `mov reg, fs:0` ([`crate::arch::tls_self`])
//! finds it. The block holds the thread's ring, its rt index (0 for the
//! main thread, then 1, 2, ... in spawn order), a free user-data word, the
//! `user_data` counter for [`crate::sys::call`] and the completion stash.
//!
//! The main thread's block is a static, installed with `Op::SetTls` by
//! [`init_main`] before `main` runs; spawned threads get theirs inside their
//! stack mapping ([`crate::thread`]). Apart from `user_word` (atomic) the
//! fields are touched only by the owning thread, after a creator
//! initialized them before the thread started.

use crate::ring::Ring;
use crate::stash::{Stash, STASH_ENTRIES};
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU64, Ordering};

/// `user_data` values of [`crate::sys::call`] have this bit set, so raw
/// ring users can pick small values without colliding.
pub const CALL_USER_DATA_BIT: u64 = 1 << 63;

/// A thread's start routine: called with the closure's address.
pub(crate) type StartFn = unsafe fn(*mut u8) -> i64;

/// One thread's TLS block.
#[repr(C)]
pub struct Tls {
    /// This block's own address (read through `fs:0`).
    self_ptr: Cell<usize>,
    /// The thread's ring region.
    ring: Cell<usize>,
    /// rt's thread index (0 = main thread).
    index: u64,
    /// A word for the program's own use (e.g. a per-thread value).
    pub user_word: AtomicU64,
    /// Next `user_data` for `call`.
    next_user_data: Cell<u64>,
    /// Completions popped while waiting for another.
    stash: UnsafeCell<Stash<STASH_ENTRIES>>,
    /// Start routine and its closure (spawned threads only).
    pub(crate) start: Cell<Option<(StartFn, usize)>>,
}

impl Tls {
    /// A block for thread `index`; its ring and self-pointer are set later.
    pub const fn new(index: u64) -> Tls {
        Tls {
            self_ptr: Cell::new(0),
            ring: Cell::new(0),
            index,
            user_word: AtomicU64::new(0),
            next_user_data: Cell::new(CALL_USER_DATA_BIT),
            stash: UnsafeCell::new(Stash::new()),
            start: Cell::new(None),
        }
    }

    /// Records the block's final address as its self-pointer.
    pub(crate) fn set_self(&self) {
        self.self_ptr.set(self as *const Tls as usize);
    }

    /// The block's self-pointer (equal to its address once installed).
    pub fn self_ptr(&self) -> usize {
        self.self_ptr.get()
    }

    /// rt's index of this thread (0 = main).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The thread's ring.
    pub fn ring(&self) -> Ring {
        // SAFETY: `ring` is set (by `init_main` or `rt_thread_start`) to the
        // address the kernel gave this thread before any use.
        unsafe { Ring::from_raw(self.ring.get()) }
    }

    #[cfg_attr(not(target_os = "none"), allow(dead_code))]
    pub(crate) fn set_ring(&self, ring: usize) {
        self.ring.set(ring);
    }

    /// A `user_data` value not used before by this thread's `call`s.
    pub(crate) fn fresh_user_data(&self) -> u64 {
        let v = self.next_user_data.get();
        self.next_user_data
            .set(CALL_USER_DATA_BIT | v.wrapping_add(1));
        v
    }

    /// Runs `f` on the stash. Not re-entrant (no caller nests it).
    pub(crate) fn with_stash<R>(&self, f: impl FnOnce(&mut Stash<STASH_ENTRIES>) -> R) -> R {
        // SAFETY: only the owning thread reaches its stash, and `f` (rt code
        // that never calls back into `with_stash`) holds the reference only
        // for its duration.
        f(unsafe { &mut *self.stash.get() })
    }
}

/// The calling thread's TLS block.
pub fn current() -> &'static Tls {
    let p = crate::arch::tls_self();
    // SAFETY: fs:0 holds the address of this thread's block, which lives as
    // long as the thread (a static for main, the thread's mapping otherwise).
    unsafe { &*(p as *const Tls) }
}

/// The calling thread's rt index (0 = main thread).
pub fn thread_index() -> u64 {
    current().index()
}

/// Sets the calling thread's user word.
pub fn set_user_word(v: u64) {
    current().user_word.store(v, Ordering::Relaxed);
}

/// Reads the calling thread's user word (through FS every time).
pub fn user_word() -> u64 {
    current().user_word.load(Ordering::Relaxed)
}

/// The main thread's block.
#[cfg(target_os = "none")]
struct MainTls(Tls);

// SAFETY: only the main thread touches the non-atomic fields (see the module
// docs); other threads never get a reference to it.
#[cfg(target_os = "none")]
unsafe impl Sync for MainTls {}

#[cfg(target_os = "none")]
static MAIN_TLS: MainTls = MainTls(Tls::new(0));

/// Installs the main thread's TLS block (FS base) with a raw `SetTls` on
/// `ring`; ends the process if the kernel refuses.
#[cfg(target_os = "none")]
pub(crate) fn init_main(ring: usize) {
    use abi::op::Op;
    use abi::ring::Sqe;
    let tls = &MAIN_TLS.0;
    tls.set_self();
    tls.set_ring(ring);
    let r = tls.ring();
    let mut sqe = Sqe {
        opcode: Op::SetTls as u32,
        cap: abi::caps::SELF_SLOT,
        ..Sqe::default()
    };
    sqe.args[0] = tls as *const Tls as u64;
    let ok = r.push(&sqe)
        && crate::arch::cap_enter_flags(1, abi::TIMEOUT_NEVER, abi::ring::ENTER_SQ_WAKEUP) >= 1;
    match r.pop() {
        Some(c) if ok && c.result == 0 => {}
        _ => {
            let mut exit = Sqe {
                opcode: Op::Exit as u32,
                cap: abi::caps::SELF_SLOT,
                ..Sqe::default()
            };
            exit.args[0] = crate::BAD_STARTUP_STATUS as u64;
            r.push(&exit);
            crate::arch::cap_enter_flags(1, abi::TIMEOUT_NEVER, abi::ring::ENTER_SQ_WAKEUP);
            crate::arch::die();
        }
    }
}
