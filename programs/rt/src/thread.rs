//! Threads: spawn with a closure, join, CPU record.
//!
//! Each thread gets one `MemMap` region: its stack at the bottom, then its
//! [`Tls`] block and the closure, copied in by the spawner:
//!
//! ```text
//! region                       region + stack_bytes
//! | stack (grows down) ...... | Tls | closure | (rest of the page)
//! ```
//!
//! The kernel starts the thread at `rt_thread_trampoline` (rdi = its Tls,
//! rsi = its ring, FS base = its Tls); [`rt_thread_start`] records the
//! ring, runs the closure and ends the thread with its value. There is no
//! guard page below a thread stack: keep stacks generous (default
//! [`DEFAULT_STACK_BYTES`]) and deep recursion out of threads.
//!
//! The region is unmapped by [`Thread::close`] once the thread was joined.

use crate::sys;
use crate::tls::Tls;
use abi::caps::SELF_SLOT;
use abi::error::Error;
use abi::layout::PAGE_SIZE;
use core::sync::atomic::{AtomicU64, Ordering};

/// Default thread stack size.
pub const DEFAULT_STACK_BYTES: u64 = 64 * 1024;

static NEXT_INDEX: AtomicU64 = AtomicU64::new(1);

/// A spawned thread's handle (a capability slot) and its memory.
#[derive(Debug)]
pub struct Thread {
    slot: u32,
    tid: u64,
    region: u64,
    region_bytes: u64,
    joined: bool,
}

/// Spawns a thread running `f` on a default-sized stack.
pub fn spawn<F>(f: F) -> Result<Thread, Error>
where
    F: FnOnce() -> i64 + Send + 'static,
{
    spawn_with_stack(DEFAULT_STACK_BYTES, f)
}

/// Spawns a thread running `f` with a stack of `stack_bytes` (rounded up to
/// pages). The thread ends with `f`'s return value.
pub fn spawn_with_stack<F>(stack_bytes: u64, f: F) -> Result<Thread, Error>
where
    F: FnOnce() -> i64 + Send + 'static,
{
    spawn_with_ring(stack_bytes, 0, 0, f)
}

/// Like [`spawn_with_stack`], with ring setup flags for the new thread's
/// ring (`abi::ring::RING_SETUP_SQPOLL`) and its SQPOLL idle time in ns
/// (0 = the default): an SQPOLL thread's first submission is already
/// consumed by the kernel's poller.
pub fn spawn_with_ring<F>(
    stack_bytes: u64,
    ring_flags: u64,
    sq_idle_ns: u64,
    f: F,
) -> Result<Thread, Error>
where
    F: FnOnce() -> i64 + Send + 'static,
{
    let stack_bytes = stack_bytes.max(PAGE_SIZE).next_multiple_of(PAGE_SIZE);
    let closure_off =
        core::mem::size_of::<Tls>().next_multiple_of(core::mem::align_of::<F>().max(16));
    let top_bytes = (closure_off + core::mem::size_of::<F>()) as u64;
    if core::mem::align_of::<F>() > PAGE_SIZE as usize {
        return Err(Error::Invalid);
    }
    let region_bytes = stack_bytes + top_bytes.next_multiple_of(PAGE_SIZE);
    let region = sys::mem_map(region_bytes)?;
    let tls_addr = region + stack_bytes;
    let closure_addr = tls_addr + closure_off as u64;
    let index = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the fresh mapping is ours, writable and large enough for the
    // Tls block at `tls_addr` (page aligned) and the closure at
    // `closure_addr` (aligned for F); nobody else knows the addresses yet.
    let tls = unsafe {
        core::ptr::write(tls_addr as *mut Tls, Tls::new(index));
        core::ptr::write(closure_addr as *mut F, f);
        &*(tls_addr as *const Tls)
    };
    tls.set_self();
    tls.start
        .set(Some((run_closure::<F>, closure_addr as usize)));
    let entry = crate::arch::thread_trampoline();
    match sys::thread_spawn_ring(entry, tls_addr, tls_addr, tls_addr, ring_flags, sq_idle_ns) {
        Ok((slot, tid)) => Ok(Thread {
            slot,
            tid,
            region,
            region_bytes,
            joined: false,
        }),
        Err(e) => {
            // The thread never ran: drop the closure, free the memory.
            // SAFETY: the closure was written above and not moved since.
            unsafe { core::ptr::drop_in_place(closure_addr as *mut F) };
            let _ = sys::mem_unmap(region, region_bytes);
            Err(e)
        }
    }
}

/// Runs the closure stored at `data` (moved out; runs once).
///
/// # Safety
///
/// `data` must hold a valid `F` written by [`spawn_with_stack`] and not
/// read before.
unsafe fn run_closure<F: FnOnce() -> i64>(data: *mut u8) -> i64 {
    // SAFETY: the caller's contract.
    let f = unsafe { core::ptr::read(data as *mut F) };
    f()
}

/// First Rust code of a spawned thread (called by the trampoline in
/// [`crate::arch`]).
#[cfg(target_os = "none")]
pub(crate) extern "C" fn rt_thread_start(tls: usize, ring: usize) -> ! {
    // SAFETY: `tls` is the block the spawner built for this thread (passed
    // as the thread argument) and lives in the thread's own region.
    let tls = unsafe { &*(tls as *const Tls) };
    tls.set_ring(ring);
    let value = match tls.start.take() {
        // SAFETY: the spawner stored this pair for exactly one run.
        Some((start, data)) => unsafe { start(data as *mut u8) },
        None => crate::PANIC_STATUS,
    };
    sys::thread_exit(value)
}

impl Thread {
    /// The handle's capability slot.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The kernel's thread id.
    pub fn tid(&self) -> u64 {
        self.tid
    }

    /// Waits for the thread to end; its exit value.
    pub fn join(&mut self) -> Result<i64, Error> {
        let v = sys::thread_join(self.slot)?;
        self.joined = true;
        Ok(v)
    }

    /// (mask of CPUs the thread ran on, its user-busy cycles).
    pub fn cpu_record(&self) -> Result<(u64, u64), Error> {
        sys::cpu_record(self.slot)
    }

    /// Releases the handle and, if the thread was joined, its memory. An
    /// unjoined thread's memory is left mapped (it may still run on it).
    pub fn close(self) -> Result<(), Error> {
        let closed = sys::cap_close(self.slot);
        if self.joined {
            sys::mem_unmap(self.region, self.region_bytes)?;
        }
        closed
    }
}

/// Ends the calling thread with `value` (the process ends with it if this
/// was the last thread).
pub fn exit(value: i64) -> ! {
    sys::thread_exit(value)
}

/// The slot of the calling process itself.
pub const fn self_slot() -> u32 {
    SELF_SLOT
}
