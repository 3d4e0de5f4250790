//! The user half of every address space.
//!
//! ```text
//! 0x0000_0000_0000_0000  unmapped (null guard, 4 MiB)
//! 0x0000_0000_0040_0000  USER_IMAGE_BASE: program ELF segments (linked here)
//! 0x0000_1000_0000_0000  RING_BASE: per-thread rings, RING_STRIDE apart
//! 0x0000_2000_0000_0000  ANON_BASE: anonymous memory (MEM_MAP), bump-allocated
//! 0x0000_3000_0000_0000  OBJ_BASE: memory-object mappings (MemObjMap)
//! 0x0000_7fff_fffe_0000  STARTUP_ADDR: the start-up block (read-only)
//! 0x0000_7fff_ffef_f000  main stack top, one unmapped guard page below it
//! 0x0000_8000_0000_0000  USER_END (exclusive): the kernel half starts above
//! ```

/// Page size used for every user mapping.
pub const PAGE_SIZE: u64 = 4096;
/// Lowest address a program segment may use.
pub const USER_IMAGE_BASE: u64 = 0x40_0000;
/// One past the highest user address (canonical lower half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Where the kernel maps thread `i`'s ring: `RING_BASE + i * RING_STRIDE`.
pub const RING_BASE: u64 = 0x0000_1000_0000_0000;
/// Distance between two threads' rings (leaves unmapped gaps between them).
pub const RING_STRIDE: u64 = 0x10_0000;
/// Where the start-up block is mapped, read-only.
pub const STARTUP_ADDR: u64 = 0x0000_7fff_fffe_0000;
/// Top of the main thread's stack.
pub const MAIN_STACK_TOP: u64 = 0x0000_7fff_ffef_f000;
/// Size of the main thread's stack.
pub const MAIN_STACK_SIZE: u64 = 256 * 1024;
/// Highest address a program segment may reach (keeps images clear of the
/// kernel-chosen areas above).
pub const USER_IMAGE_END: u64 = RING_BASE;
/// Start of the anonymous-memory area that `MEM_MAP` hands out.
pub const ANON_BASE: u64 = 0x0000_2000_0000_0000;
/// End (exclusive) of the anonymous-memory area.
pub const ANON_END: u64 = 0x0000_3000_0000_0000;
/// Start of the window where memory objects are mapped (MemObjMap): the
/// kernel picks addresses here, and a fixed address must lie here too, so
/// object mappings never meet anonymous, ring or image memory.
pub const OBJ_BASE: u64 = 0x0000_3000_0000_0000;
/// End (exclusive) of the memory-object window.
pub const OBJ_END: u64 = 0x0000_4000_0000_0000;
