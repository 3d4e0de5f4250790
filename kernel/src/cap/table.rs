//! The per-process capability table.
//!
//! A slot holds what its holder may use and nothing else. Slot 0 is always
//! the process itself; granted capabilities follow in order; handles
//! created later take the lowest free slot. Process handles keep the
//! process record (not its resources) alive so a late wait still gets the
//! status; thread handles hold a generation-checked reference only.
//! Memory-object handles keep the object alive and carry their rights.

use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::caps::{CapKind, MAX_SLOTS};
use abi::error::Error;

use crate::mm::memobj::MemObject;
use crate::proc::Process;
use crate::sched::thread::ThreadRef;

/// One capability.
#[derive(Clone)]
pub enum Cap {
    /// The holder's own process.
    SelfProcess,
    /// Console output.
    Console,
    /// Clock and sleep.
    Timer,
    /// Spawning programs.
    Spawner,
    /// Per-CPU counters.
    Stats,
    /// A spawned process.
    Process(Arc<Process>),
    /// A thread of the holder's process.
    Thread(ThreadRef),
    /// A memory object, with what this handle may do with it.
    MemObject(Arc<MemObject>, abi::memobj::MemRights),
}

impl Cap {
    /// Its kind.
    pub fn kind(&self) -> CapKind {
        match self {
            Cap::SelfProcess => CapKind::SelfProcess,
            Cap::Console => CapKind::Console,
            Cap::Timer => CapKind::Timer,
            Cap::Spawner => CapKind::Spawner,
            Cap::Stats => CapKind::Stats,
            Cap::Process(_) => CapKind::Process,
            Cap::Thread(_) => CapKind::Thread,
            Cap::MemObject(..) => CapKind::MemObject,
        }
    }

    /// What a child receives when this capability is passed at Spawn:
    /// grantable kinds, and memory-object handles with the TRANSFER right
    /// (with the same rights); `Denied` for anything else.
    pub fn transfer(&self) -> Result<Cap, Error> {
        match self {
            Cap::MemObject(_, rights) if rights.contains(abi::memobj::MemRights::TRANSFER) => {
                Ok(self.clone())
            }
            c => Cap::grant(c.kind()).ok_or(Error::Denied),
        }
    }

    /// The capability a manifest grants by kind, if grantable.
    pub fn grant(kind: CapKind) -> Option<Cap> {
        match kind {
            CapKind::Console => Some(Cap::Console),
            CapKind::Timer => Some(Cap::Timer),
            CapKind::Spawner => Some(Cap::Spawner),
            CapKind::Stats => Some(Cap::Stats),
            _ => None,
        }
    }
}

/// A process's slots.
pub struct CapTable {
    slots: Vec<Option<Cap>>,
}

impl CapTable {
    /// An empty table.
    pub fn new() -> CapTable {
        CapTable { slots: Vec::new() }
    }

    /// Puts `cap` in the lowest free slot; `None` if the table is full.
    pub fn insert(&mut self, cap: Cap) -> Option<u32> {
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = Some(cap);
            return Some(i as u32);
        }
        if self.slots.len() >= MAX_SLOTS as usize {
            return None;
        }
        self.slots.push(Some(cap));
        Some((self.slots.len() - 1) as u32)
    }

    /// The capability in `slot`.
    pub fn get(&self, slot: u32) -> Result<&Cap, Error> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .ok_or(Error::BadSlot)
    }

    /// Empties `slot` (never slot 0).
    pub fn remove(&mut self, slot: u32) -> Result<Cap, Error> {
        if slot == abi::caps::SELF_SLOT {
            return Err(Error::Denied);
        }
        let cap = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::take)
            .ok_or(Error::BadSlot)?;
        // Trailing empty slots go, and a table that shrank a lot gives its
        // capacity back: only occupied slots are charged to the budget.
        while self.slots.last().is_some_and(Option::is_none) {
            self.slots.pop();
        }
        if self.slots.capacity() > 2 * self.slots.len() + 16 {
            self.slots.shrink_to_fit();
        }
        Ok(cap)
    }

    /// Empties the table (process end); returns the caps to drop outside the lock.
    pub fn clear(&mut self) -> Vec<Option<Cap>> {
        core::mem::take(&mut self.slots)
    }
}
