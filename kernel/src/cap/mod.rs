//! Capabilities: the per-process table, the per-thread rings, the one
//! system call and the operations (docs/architecture/capabilities.md).

pub mod enter;
pub mod ops;
pub mod park;
pub mod ring;
pub mod sqpoll;
pub mod table;
