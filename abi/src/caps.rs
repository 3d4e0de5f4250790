//! Capability kinds.
//!
//! Every process starts with its own process capability ("self") in slot
//! [`SELF_SLOT`], then the capabilities the manifest (or its parent) granted,
//! in the order given, from slot 1 on. Handles created later (spawned
//! processes, threads) take the lowest free slot.

use serde::{Deserialize, Serialize};

/// The slot that always holds the caller's own process capability.
pub const SELF_SLOT: u32 = 0;

/// Most slots one process table holds.
pub const MAX_SLOTS: u32 = 1024;

/// What a capability slot refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u32)]
pub enum CapKind {
    /// Write to the serial console.
    Console = 1,
    /// Read the clock, sleep.
    Timer = 2,
    /// Spawn programs from the initrd.
    Spawner = 3,
    /// Read per-CPU scheduler counters (busy time).
    Stats = 4,
    /// The holder's own process: exit, threads, park.
    SelfProcess = 5,
    /// A spawned process: wait, kill.
    Process = 6,
    /// A thread of the holder's process: join, CPU record.
    Thread = 7,
    /// A memory object: map, restrict, pass to a child (its rights are
    /// [`crate::memobj::MemRights`]).
    MemObject = 8,
}

impl CapKind {
    /// Kinds that a manifest or a parent may grant by name.
    pub const GRANTABLE: [CapKind; 4] = [
        CapKind::Console,
        CapKind::Timer,
        CapKind::Spawner,
        CapKind::Stats,
    ];

    /// The manifest name of a grantable kind.
    pub const fn name(self) -> &'static str {
        match self {
            CapKind::Console => "console",
            CapKind::Timer => "timer",
            CapKind::Spawner => "spawner",
            CapKind::Stats => "stats",
            CapKind::SelfProcess => "self",
            CapKind::Process => "process",
            CapKind::Thread => "thread",
            CapKind::MemObject => "memobj",
        }
    }

    /// Parses a manifest name; only grantable kinds are accepted.
    pub fn from_name(name: &str) -> Option<CapKind> {
        Self::GRANTABLE.iter().copied().find(|k| k.name() == name)
    }

    /// Decodes the raw value found in the start-up block.
    pub fn from_raw(raw: u32) -> Option<CapKind> {
        [
            CapKind::Console,
            CapKind::Timer,
            CapKind::Spawner,
            CapKind::Stats,
            CapKind::SelfProcess,
            CapKind::Process,
            CapKind::Thread,
            CapKind::MemObject,
        ]
        .into_iter()
        .find(|k| *k as u32 == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in CapKind::GRANTABLE {
            assert_eq!(CapKind::from_name(k.name()), Some(k));
            assert_eq!(CapKind::from_raw(k as u32), Some(k));
        }
        assert_eq!(CapKind::from_name("self"), None);
        assert_eq!(CapKind::from_name("root"), None);
        assert_eq!(CapKind::from_raw(0), None);
        // Memory objects travel only through Spawn, never by manifest name.
        assert_eq!(CapKind::from_raw(8), Some(CapKind::MemObject));
        assert_eq!(CapKind::from_name("memobj"), None);
    }
}
