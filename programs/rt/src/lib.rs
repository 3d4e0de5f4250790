//! The user runtime: everything a program needs between the kernel ABI
//! (`abi`) and its `main`.
//!
//! - [`arch`]: all of rt's assembly (process entry, thread trampoline, the
//!   `cap_enter` system call, `rdtsc`, the TLS self-pointer load).
//! - [`ring`] and [`stash`]: the capability ring client. [`sys::call`]
//!   submits one operation and waits for the completion with its
//!   `user_data`, parking unrelated completions in a per-thread stash.
//! - [`sys`]: a typed wrapper for every operation in [`abi::op::Op`].
//! - [`args`]: the start-up block (arguments, capability kinds).
//! - [`console`]: `println!`, one `ConsoleWrite` per line.
//! - [`tls`], [`thread`], [`process`]: per-thread state reached through FS,
//!   thread spawn/join, process spawn/wait.
//! - [`sync`]: a futex-style `Mutex` and a `Condvar` on park/unpark.
//! - [`memobj`]: memory objects (create, map, restrict, pass to a child)
//!   and [`memobj::SharedMutex`] / [`memobj::SharedCondvar`], the same
//!   locks on words inside shared memory, across processes.
//!
//! A program links rt, names its main with [`entry!`] and returns its exit
//! status. A panic prints `PANIC-USER <message>` on the console (when the
//! program holds one) and ends the process with status 101. A panic while
//! another is being handled (in any thread of the process: printing or
//! exiting failed again) prints nothing more and ends the process with
//! [`NESTED_PANIC_STATUS`] through a bare `Exit` submission, so a broken
//! ring client can never recurse until the stack overflows.
//!
//! The crate also builds for the host (`cargo test -p rt`): the assembly is
//! only compiled for `target_os = "none"`, and the ring, stash, argument and
//! line-buffer logic is tested against in-memory fakes.
#![cfg_attr(not(test), no_std)]

#[cfg(all(target_os = "none", not(test)))]
mod alloc_stub;
pub mod arch;
pub mod args;
pub mod console;
pub mod memobj;
pub mod process;
pub mod ring;
pub mod stash;
pub mod sync;
pub mod sys;
pub mod thread;
pub mod tls;

pub use abi::error::Error;
pub use args::Args;

/// Exit status after a panic.
pub const PANIC_STATUS: i64 = 101;
/// Exit status when the start-up block is malformed.
pub const BAD_STARTUP_STATUS: i64 = 102;
/// Exit status after a panic during panic handling.
pub const NESTED_PANIC_STATUS: i64 = 103;

/// Panics seen so far in this process (the re-entrancy guard).
#[cfg(all(target_os = "none", not(test)))]
static PANICS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Names the program's main function: `fn main(args: &rt::Args) -> i64`.
/// The process exits with its return value.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by rt's `_start` once TLS and the arguments are set up.
        #[no_mangle]
        pub fn rt_user_main(args: &$crate::Args) -> i64 {
            $main(args)
        }
    };
}

/// Process start, called by `_start` in [`arch`] with the start-up block
/// and the main thread's ring.
#[cfg(target_os = "none")]
extern "C" fn rt_start(startup: usize, ring: usize) -> ! {
    extern "Rust" {
        fn rt_user_main(args: &Args) -> i64;
    }
    tls::init_main(ring);
    // SAFETY: the kernel passes the address of the read-only start-up block,
    // mapped for the life of the process.
    let parsed = unsafe { Args::from_raw(startup) };
    let Some(a) = parsed else {
        sys::exit(BAD_STARTUP_STATUS);
    };
    args::install(startup);
    // SAFETY: `entry!` defines `rt_user_main` with exactly this signature.
    let status = unsafe { rt_user_main(&a) };
    sys::exit(status)
}

/// Reports a panic on the console (if any) and ends the process. Only the
/// first panic prints; any later one exits at once ([`exit_bare`]).
#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICS.fetch_add(1, core::sync::atomic::Ordering::SeqCst) > 0 {
        exit_bare(NESTED_PANIC_STATUS);
    }
    match info.location() {
        Some(l) => console::println_fmt(format_args!(
            "PANIC-USER {} at {}:{}",
            info.message(),
            l.file(),
            l.line()
        )),
        None => console::println_fmt(format_args!("PANIC-USER {}", info.message())),
    };
    exit_bare(PANIC_STATUS)
}

/// Ends the process with `status` using nothing but the ring: no stash, no
/// formatting, nothing that can panic. Completions in the way are thrown
/// away (the process is ending) so the kernel takes submissions again. If
/// the SQ still has no room or the kernel does not end the process, the
/// thread faults (`ud2`), which ends it too.
pub(crate) fn exit_bare(status: i64) -> ! {
    /// Rounds of "empty the CQ, let the kernel consume" before giving up.
    const TRIES: u32 = 4;
    let ring = tls::current().ring();
    let mut sqe = abi::ring::Sqe {
        opcode: abi::op::Op::Exit as u32,
        cap: abi::caps::SELF_SLOT,
        ..abi::ring::Sqe::default()
    };
    sqe.args[0] = status as u64;
    for _ in 0..TRIES {
        if ring.push(&sqe) {
            arch::cap_enter_flags(0, 0, abi::ring::ENTER_SQ_WAKEUP);
            break;
        }
        for _ in 0..abi::ring::CQ_ENTRIES {
            if ring.pop().is_none() {
                break;
            }
        }
        arch::cap_enter_flags(0, 0, abi::ring::ENTER_SQ_WAKEUP);
    }
    arch::die()
}
