//! The contract between the kernel, user programs and the host tools.
//!
//! Everything that crosses a privilege or a machine boundary is defined here
//! exactly once: the one system call and the capability ring layout
//! ([`ring`]), the operation codes ([`op`]) and error codes ([`error`]), the
//! user address-space layout ([`layout`]), the start-up block a program
//! receives ([`startup`]), the manifest types ([`manifest`]), the initrd
//! container ([`initrd`]) and the ELF rules shared by mkimage and the kernel
//! ([`elf`]). The crate is `no_std` (with `alloc`) so that the kernel and
//! user space use the very same definitions as the host, and host `cargo
//! test` checks them. The manifest's limits ([`limits`]) and rules
//! ([`validate`]) are here too, so mkimage and the kernel enforce the very
//! same ones.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod caps;
pub mod elf;
pub mod error;
pub mod initrd;
pub mod kernel_modes;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod memobj;
pub mod op;
pub mod ring;
pub mod sqpoll;
pub mod startup;
pub mod validate;

/// The one system call number (in `rax`): `cap_enter(min_complete, timeout_ns)`.
///
/// Arguments in `rdi` (min_complete), `rsi` (timeout_ns) and `rdx` (flags:
/// [`ring::ENTER_SQ_WAKEUP`]; other bits ignored). Returns in `rax`
/// the number of completions waiting in the caller's CQ, or a negative
/// [`error::Error`] code.
pub const SYS_CAP_ENTER: u64 = 0;

/// `timeout_ns` value meaning "wait without a deadline".
pub const TIMEOUT_NEVER: u64 = u64::MAX;

/// isa-debug-exit status written for a PASS verdict. QEMU exits with
/// `(value << 1) | 1`, so 0x10 gives host status 33.
pub const QEMU_EXIT_PASS: u32 = 0x10;
/// isa-debug-exit status for a FAIL verdict (host status 35).
pub const QEMU_EXIT_FAIL: u32 = 0x11;
/// isa-debug-exit status after a kernel panic (host status 37).
pub const QEMU_EXIT_PANIC: u32 = 0x12;
