//! A slot table with generation-checked references: the logic behind the
//! kernel's thread registry (`kernel/src/sched/thread.rs`).
//!
//! A [`SlotRef`] names a slot and the generation it was issued for. When a
//! value is removed, its slot's generation moves on at once, so every
//! reference to it is stale before the slot is ever reused; a stale
//! reference resolves to `None`, never to the slot's next value.
//!
//! Two rules keep that true for the table's whole life:
//! - A generation never wraps. A slot whose generation has no successor is
//!   retired (never reused) instead of starting again at the first
//!   generation. With the kernel's `u64` generations that takes 2^64 reuses
//!   of one slot, so no slot retires in practice; the rule makes the
//!   guarantee unconditional, and the tests exercise it with `u8`.
//! - Freed slots are reused first-in, first-out, so a slot rests as long
//!   as possible before its next value, and the generations advance evenly
//!   over all slots instead of spinning one slot's generation (LIFO reuse
//!   hands the same slot out again and again).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// A generation counter: a first value and a successor that refuses to wrap.
pub trait Generation: Copy + Eq + core::fmt::Debug {
    /// The generation of a fresh slot.
    const FIRST: Self;
    /// The next generation, or `None` if it would wrap.
    fn next(self) -> Option<Self>;
}

macro_rules! generation {
    ($($t:ty),*) => {$(
        impl Generation for $t {
            const FIRST: Self = 0;
            fn next(self) -> Option<Self> {
                self.checked_add(1)
            }
        }
    )*};
}
generation!(u8, u16, u32, u64);

/// A generation-checked reference into a [`Slots`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRef<G> {
    index: u32,
    generation: G,
}

impl<G: Copy> SlotRef<G> {
    /// The slot index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The generation this reference was issued for.
    pub fn generation(&self) -> G {
        self.generation
    }
}

struct Slot<T, G> {
    generation: G,
    value: Option<T>,
}

/// At most `capacity` values, each named by a [`SlotRef`].
pub struct Slots<T, G: Generation = u64> {
    slots: Vec<Slot<T, G>>,
    /// Empty, reusable slots, oldest first.
    free: VecDeque<u32>,
    capacity: usize,
    retired: usize,
}

impl<T, G: Generation> Slots<T, G> {
    /// An empty table for at most `capacity` slots (clamped to `u32` indices).
    pub const fn new(capacity: usize) -> Self {
        let capacity = if capacity > u32::MAX as usize {
            u32::MAX as usize
        } else {
            capacity
        };
        Slots {
            slots: Vec::new(),
            free: VecDeque::new(),
            capacity,
            retired: 0,
        }
    }

    /// The reference the next [`insert`](Self::insert) will return, or
    /// `None` when the table is full.
    pub fn vacant(&self) -> Option<SlotRef<G>> {
        if let Some(&index) = self.free.front() {
            let generation = self.slots[index as usize].generation;
            return Some(SlotRef { index, generation });
        }
        if self.slots.len() < self.capacity {
            let index = u32::try_from(self.slots.len()).ok()?;
            return Some(SlotRef {
                index,
                generation: G::FIRST,
            });
        }
        None
    }

    /// Stores `value` in the oldest free slot (or a new one); gives it back
    /// when the table is full.
    pub fn insert(&mut self, value: T) -> Result<SlotRef<G>, T> {
        let Some(r) = self.vacant() else {
            return Err(value);
        };
        if self.free.front() == Some(&r.index) {
            self.free.pop_front();
        } else {
            self.slots.push(Slot {
                generation: r.generation,
                value: None,
            });
        }
        self.slots[r.index as usize].value = Some(value);
        Ok(r)
    }

    /// The value `r` names, unless it was removed (stale reference).
    pub fn get(&self, r: SlotRef<G>) -> Option<&T> {
        let slot = self.slots.get(r.index as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// Removes the value `r` names: every reference to it goes stale now.
    /// The slot is reused later, or retired if its generation would wrap.
    pub fn remove(&mut self, r: SlotRef<G>) -> Option<T> {
        let slot = self.slots.get_mut(r.index as usize)?;
        if slot.generation != r.generation {
            return None;
        }
        let value = slot.value.take()?;
        match slot.generation.next() {
            Some(g) => {
                slot.generation = g;
                self.free.push_back(r.index);
            }
            None => self.retired += 1,
        }
        Some(value)
    }

    /// Values stored now.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len() - self.retired
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots retired because their generation ran out.
    pub fn retired(&self) -> usize {
        self.retired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_value_is_stale_at_once() {
        let mut s: Slots<&str> = Slots::new(4);
        let a = s.insert("a").unwrap();
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None, "a second remove is a no-op");
        let b = s.insert("b").unwrap();
        assert_eq!(b.index(), a.index(), "the slot is reused");
        assert_ne!(b.generation(), a.generation());
        assert_eq!(s.get(a), None, "the stale reference does not reach b");
        assert_eq!(s.get(b), Some(&"b"));
    }

    /// The defect this module fixes: with wrapping generations and LIFO
    /// reuse, 2^bits reuses of one slot hand out a generation equal to an
    /// old reference's, and the old reference reaches the new value.
    #[test]
    fn a_stale_reference_never_resolves_even_after_the_generation_runs_out() {
        let mut s: Slots<u32, u8> = Slots::new(1);
        let first = s.insert(0).unwrap();
        s.remove(first);
        let mut stale = vec![first];
        let mut reuses = 1u32;
        while let Ok(r) = s.insert(reuses) {
            for &old in &stale {
                assert_eq!(s.get(old), None, "{old:?} aliases {r:?}");
            }
            assert_eq!(s.get(r), Some(&reuses));
            s.remove(r);
            stale.push(r);
            reuses += 1;
        }
        // u8 has 256 generations: the slot served each once, then retired.
        assert_eq!(reuses, 256);
        assert_eq!(s.retired(), 1);
        assert!(s.vacant().is_none());
        for &old in &stale {
            assert_eq!(s.get(old), None);
        }
    }

    #[test]
    fn retiring_a_slot_leaves_the_others_usable() {
        let mut s: Slots<u32, u8> = Slots::new(2);
        let keep = s.insert(7).unwrap();
        for i in 0..1000 {
            match s.insert(i) {
                Ok(r) => {
                    assert_ne!(r.index(), keep.index());
                    s.remove(r);
                }
                Err(_) => break,
            }
        }
        assert_eq!(s.retired(), 1);
        assert_eq!(s.get(keep), Some(&7));
        assert_eq!(s.len(), 1);
        s.remove(keep);
        let again = s.insert(8).unwrap();
        assert_eq!(again.index(), keep.index());
        assert_eq!(s.get(keep), None);
    }

    #[test]
    fn freed_slots_are_reused_oldest_first() {
        let mut s: Slots<u32> = Slots::new(8);
        let refs: Vec<_> = (0..4).map(|i| s.insert(i).unwrap()).collect();
        s.remove(refs[2]);
        s.remove(refs[0]);
        s.remove(refs[3]);
        let order: Vec<u32> = (10..13).map(|i| s.insert(i).unwrap().index()).collect();
        assert_eq!(order, vec![2, 0, 3]);
    }

    #[test]
    fn vacant_predicts_insert_and_capacity_is_kept() {
        let mut s: Slots<u32> = Slots::new(3);
        for i in 0..3 {
            let v = s.vacant().unwrap();
            assert_eq!(s.insert(i), Ok(v));
        }
        assert!(s.vacant().is_none());
        assert_eq!(s.insert(9), Err(9));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn an_index_without_a_value_resolves_to_nothing() {
        let mut s: Slots<u32> = Slots::new(2);
        let r = s.insert(1).unwrap();
        assert_eq!(s.get(SlotRef { index: 1, ..r }), None, "never used");
        assert_eq!(s.get(SlotRef { index: 99, ..r }), None, "out of range");
        assert_eq!(s.remove(SlotRef { index: 99, ..r }), None);
        assert_eq!(s.get(r), Some(&1));
    }
}
