//! Pending timers ordered by deadline: O(log n) insert, cancel and pop.
//!
//! Each CPU keeps one [`TimerHeap`] of its pending timers. Timers sit in a
//! B-tree keyed by (deadline, sequence): the earliest is the first entry,
//! and cancelling by [`TimerKey`] is one tree removal, not a scan. The
//! sequence number is unique for the heap's lifetime, so a stale key (a
//! timer that already fired or was cancelled) never names a later timer.
//!
//! Memory follows the number of pending timers: the tree frees its nodes
//! as timers leave, so a storm of timers leaves no capacity behind that
//! nobody is charged for (an index-based heap keeps its high-water mark).

use alloc::collections::BTreeMap;

/// Names one pending timer of one heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    deadline: u64,
    seq: u64,
}

/// Pending timers ordered by deadline (ties in insertion order).
pub struct TimerHeap<E> {
    timers: BTreeMap<TimerKey, E>,
    next_seq: u64,
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
            timers: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Adds a timer.
    pub fn insert(&mut self, deadline: u64, event: E) -> TimerKey {
        let key = TimerKey {
            deadline,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.timers.insert(key, event);
        key
    }

    /// The earliest deadline.
    pub fn earliest(&self) -> Option<u64> {
        self.timers.first_key_value().map(|(k, _)| k.deadline)
    }

    /// Removes the timer `key` names; `None` if it already fired or was
    /// cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<E> {
        self.timers.remove(&key)
    }

    /// Removes and returns the earliest timer if its deadline is at or
    /// before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, E)> {
        let entry = self.timers.first_entry()?;
        if entry.key().deadline > now {
            return None;
        }
        let (k, e) = entry.remove_entry();
        Some((k.deadline, e))
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
            h.insert(rng(&mut seed) % 10_000, i);
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
        h.insert(10, 'a');
        h.insert(20, 'b');
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
            keys.push((h.insert(rng(&mut seed) % 1000, i), i));
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
    fn stale_key_never_cancels_a_later_timer() {
        let mut h = TimerHeap::new();
        let old = h.insert(5, "old");
        assert_eq!(h.pop_due(5), Some((5, "old")));
        let new = h.insert(7, "new");
        assert_eq!(h.cancel(old), None);
        assert_eq!(h.len(), 1);
        assert_eq!(h.cancel(new), Some("new"));
    }

    #[test]
    fn same_deadline_keys_stay_distinct() {
        let mut h = TimerHeap::new();
        let a = h.insert(9, 1);
        assert_eq!(h.cancel(a), Some(1));
        let b = h.insert(9, 2);
        assert_ne!(a, b);
        assert_eq!(h.cancel(a), None);
        assert_eq!(h.pop_due(9), Some((9, 2)));
        assert_eq!(h.cancel(b), None);
    }

    #[test]
    fn many_rounds_leave_nothing() {
        let mut h = TimerHeap::new();
        for round in 0..100u64 {
            let keys: Vec<_> = (0..64).map(|i| h.insert(round * 64 + i, i)).collect();
            for k in keys {
                assert!(h.cancel(k).is_some());
            }
        }
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
                    let k = h.insert(d, next);
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
