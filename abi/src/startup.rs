//! The start-up block: what a new process finds at [`crate::layout::STARTUP_ADDR`].
//!
//! The main thread starts at the ELF entry with `rdi` = the block's address,
//! `rsi` = its ring address and `rsp` = the top of its stack (16-byte
//! aligned). The block is read-only. Its fixed part is followed by the
//! capability kinds of slots `0..ncaps` (u32 each) and by the argument
//! strings, each a [`crate::op::UserStr`] pointing inside the block.

/// Magic value in [`Startup::magic`].
pub const STARTUP_MAGIC: u64 = 0x5452_4154_5350_4143; // "CAPSTART" little-endian-ish

/// Fixed part of the start-up block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Startup {
    /// [`STARTUP_MAGIC`].
    pub magic: u64,
    /// The process id.
    pub pid: u64,
    /// Address of the main thread's ring.
    pub ring: u64,
    /// Online CPUs.
    pub cpus: u64,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Number of capability slots described (kinds at `caps_offset`).
    pub ncaps: u64,
    /// Offset from the block start of `ncaps` u32 [`crate::caps::CapKind`] values.
    pub caps_offset: u64,
    /// Number of arguments.
    pub argc: u64,
    /// Offset of `argc` [`crate::op::UserStr`]s (absolute pointers).
    pub argv_offset: u64,
}

/// Largest start-up block (one page).
pub const STARTUP_BYTES: u64 = 4096;
