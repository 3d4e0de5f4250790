//! A min-heap of deadlines with O(log n) insert, cancel and pop.
//!
//! Each CPU keeps one [`TimerHeap`] of its pending timers. A timer lives in
//! a slot of a slab; the heap orders slot indices by deadline, and every
//! slot remembers where its index sits in the heap, so cancelling a timer
//! by its [`TimerKey`] is a sift from that position, not a scan. A slot's
//! generation changes whenever it is freed, so a stale key (a timer that
//! already fired or was cancelled) cancels nothing, even after the slot
//! was reused.
//!
//! Memory: the slab and the heap grow to the largest number of timers ever
//! pending at once and are reused afterwards; callers bound that number
//! (the kernel charges every timer to a budget).

use alloc::vec::Vec;

/// Names one pending timer of one heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    slot: u32,
    generation: u64,
}

struct Slot<E> {
    generation: u64,
    /// Position of this slot's index in `heap`, while it holds a timer.
    pos: u32,
    deadline: u64,
    event: Option<E>,
}

/// Pending timers ordered by deadline.
pub struct TimerHeap<E> {
    slots: Vec<Slot<E>>,
    free: Vec<u32>,
    /// Slot indices; `heap[0]` has the earliest deadline.
    heap: Vec<u32>,
}

impl<E> Default for TimerHeap<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> TimerHeap<E> {
    /// An empty heap (allocates nothing).
    pub const fn new() -> TimerHeap<E> {
        TimerHeap {
            slots: Vec::new(),
            free: Vec::new(),
            heap: Vec::new(),
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Slots allocated (the high-water mark of pending timers).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Adds a timer; `None` when the slab is full (`u32::MAX` slots).
    pub fn insert(&mut self, deadline: u64, event: E) -> Option<TimerKey> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&s| s < u32::MAX)?;
                self.slots.push(Slot {
                    generation: 0,
                    pos: 0,
                    deadline: 0,
                    event: None,
                });
                s
            }
        };
        let pos = self.heap.len() as u32;
        let s = &mut self.slots[slot as usize];
        s.deadline = deadline;
        s.event = Some(event);
        s.pos = pos;
        let key = TimerKey {
            slot,
            generation: s.generation,
        };
        self.heap.push(slot);
        self.sift_up(pos as usize);
        Some(key)
    }

    /// The earliest deadline.
    pub fn earliest(&self) -> Option<u64> {
        self.heap.first().map(|&s| self.slots[s as usize].deadline)
    }

    /// Removes the timer `key` names; `None` if it already fired or was
    /// cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<E> {
        let s = self.slots.get(key.slot as usize)?;
        if s.generation != key.generation || s.event.is_none() {
            return None;
        }
        let pos = s.pos as usize;
        Some(self.remove_at(pos))
    }

    /// Removes and returns the earliest timer if its deadline is at or
    /// before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, E)> {
        let &first = self.heap.first()?;
        let deadline = self.slots[first as usize].deadline;
        if deadline > now {
            return None;
        }
        Some((deadline, self.remove_at(0)))
    }

    fn remove_at(&mut self, pos: usize) -> E {
        let slot = self.heap[pos];
        let last = self.heap.len() - 1;
        self.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            self.sift_down(pos);
            self.sift_up(pos);
        }
        let s = &mut self.slots[slot as usize];
        s.generation = s.generation.wrapping_add(1);
        let ev = s.event.take().expect("heap entry without an event");
        self.free.push(slot);
        ev
    }

    fn deadline_at(&self, pos: usize) -> u64 {
        self.slots[self.heap[pos] as usize].deadline
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (sa, sb) = (self.heap[a], self.heap[b]);
        self.slots[sa as usize].pos = a as u32;
        self.slots[sb as usize].pos = b as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.deadline_at(parent) <= self.deadline_at(pos) {
                break;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if l < n && self.deadline_at(l) < self.deadline_at(least) {
                least = l;
            }
            if r < n && self.deadline_at(r) < self.deadline_at(least) {
                least = r;
            }
            if least == pos {
                break;
            }
            self.swap(pos, least);
            pos = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift64).
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn pops_in_deadline_order() {
        let mut h = TimerHeap::new();
        let mut seed = 0x1234_5678_9abc_def1;
        for i in 0..1000u64 {
            h.insert(rng(&mut seed) % 10_000, i).unwrap();
        }
        let mut last = 0;
        let mut n = 0;
        while let Some((d, _)) = h.pop_due(u64::MAX) {
            assert!(d >= last);
            last = d;
            n += 1;
        }
        assert_eq!(n, 1000);
        assert!(h.is_empty());
    }

    #[test]
    fn pop_due_respects_now() {
        let mut h = TimerHeap::new();
        h.insert(10, 'a').unwrap();
        h.insert(20, 'b').unwrap();
        assert_eq!(h.pop_due(9), None);
        assert_eq!(h.pop_due(10), Some((10, 'a')));
        assert_eq!(h.pop_due(15), None);
        assert_eq!(h.earliest(), Some(20));
    }

    #[test]
    fn cancel_removes_exactly_that_timer() {
        let mut h = TimerHeap::new();
        let mut seed = 42;
        let mut keys = Vec::new();
        for i in 0..500u64 {
            keys.push((h.insert(rng(&mut seed) % 1000, i).unwrap(), i));
        }
        // Cancel every third timer.
        for (k, i) in keys.iter().filter(|(_, i)| i % 3 == 0) {
            assert_eq!(h.cancel(*k), Some(*i));
            assert_eq!(h.cancel(*k), None, "cancelled twice");
        }
        let mut seen = Vec::new();
        let mut last = 0;
        while let Some((d, i)) = h.pop_due(u64::MAX) {
            assert!(d >= last);
            last = d;
            seen.push(i);
        }
        seen.sort_unstable();
        let want: Vec<u64> = (0..500).filter(|i| i % 3 != 0).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn stale_key_never_cancels_a_reused_slot() {
        let mut h = TimerHeap::new();
        let old = h.insert(5, "old").unwrap();
        assert_eq!(h.pop_due(5), Some((5, "old")));
        let new = h.insert(7, "new").unwrap();
        assert_eq!(h.capacity(), 1, "slot reused");
        assert_eq!(h.cancel(old), None);
        assert_eq!(h.len(), 1);
        assert_eq!(h.cancel(new), Some("new"));
    }

    #[test]
    fn memory_is_reused_not_grown() {
        let mut h = TimerHeap::new();
        for round in 0..100u64 {
            let keys: Vec<_> = (0..64)
                .map(|i| h.insert(round * 64 + i, i).unwrap())
                .collect();
            for k in keys {
                assert!(h.cancel(k).is_some());
            }
        }
        assert_eq!(h.capacity(), 64);
        assert!(h.is_empty());
    }

    #[test]
    fn random_mix_matches_a_model() {
        let mut h = TimerHeap::new();
        let mut model: Vec<(u64, u64, TimerKey)> = Vec::new();
        let mut seed = 7;
        let mut next = 0u64;
        for _ in 0..20_000 {
            match rng(&mut seed) % 3 {
                0 | 1 => {
                    let d = rng(&mut seed) % 5000;
                    let k = h.insert(d, next).unwrap();
                    model.push((d, next, k));
                    next += 1;
                }
                _ if !model.is_empty() => {
                    let i = (rng(&mut seed) as usize) % model.len();
                    let (_, v, k) = model.swap_remove(i);
                    assert_eq!(h.cancel(k), Some(v));
                }
                _ => {}
            }
            assert_eq!(h.len(), model.len());
            assert_eq!(h.earliest(), model.iter().map(|m| m.0).min());
        }
    }
}
