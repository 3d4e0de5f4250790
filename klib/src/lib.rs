//! Kernel data structures that need no hardware.
//!
//! The kernel (x86_64-unknown-none) uses these through `klib::`; `cargo
//! test` runs their unit tests on the host. Nothing here touches a device,
//! a page table or a CPU register, and nothing here allocates except
//! through `alloc`, so a structure's memory use is the caller's to bound.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bootinfo;
pub mod cmdline;
pub mod cpuset;
pub mod magazine;
pub mod size_class;
pub mod slots;
pub mod timer_heap;
