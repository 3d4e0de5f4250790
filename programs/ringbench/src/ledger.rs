//! The completion ledger: every operation a worker submits is tagged, and
//! every completion must match exactly one outstanding tag, once.
//!
//! A batch holds at most [`BATCH_MAX`] operations. Each gets the
//! `user_data` `owner << 48 | (seq mod 2^40) << 8 | index`: `owner` names
//! the thread (a worker or its partner), `seq` the batch (a counter that
//! only grows), `index` the operation in the batch. A completion whose tag
//! is not of the current batch is a stray (lost from an earlier batch and
//! delivered late, or never submitted); a tag seen twice is a double; a
//! batch not complete by the deadline has lost completions. Each kind of
//! operation also has its own valid results, checked here.

use abi::op::ParkResult;
use abi::ring::Cqe;

/// Most operations in one batch (one bit each in a `u64`).
pub const BATCH_MAX: usize = 64;

/// What an operation was, for its result check and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `Nop`: result 0.
    Nop,
    /// `TimerSleep(0)`: result 0.
    Timer,
    /// `Park`: result 0, value0 = Woken, TimedOut or ValueChanged.
    Park,
    /// `Unpark(word, 1)`: result = threads woken, 0 or 1.
    Unpark,
}

/// Why a batch went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Operations still without a completion at the deadline.
    Lost {
        /// How many.
        missing: u32,
    },
    /// A completion with a tag outside the current batch.
    Stray {
        /// Its tag.
        user_data: u64,
    },
    /// A second completion for one tag.
    Double {
        /// Its tag.
        user_data: u64,
    },
    /// An error, or a result the operation cannot have.
    Failed {
        /// Its tag.
        user_data: u64,
        /// The completion's result.
        result: i64,
    },
    /// The submission queue was full.
    SqFull,
    /// `cap_enter` failed.
    Enter,
    /// Completions left over after the last batch.
    Extra,
}

/// Counted, verified completions of one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Completions of scheduled operations (the benchmark's operations).
    pub ops: u64,
    /// Extra parks after an early wake-up or a park timeout (not in `ops`).
    pub reparks: u64,
    /// Parks that ended by their timeout (each also caused a repark).
    pub timeouts: u64,
}

/// One batch of tagged operations.
#[derive(Clone, Debug)]
pub struct Batch {
    base: u64,
    kinds: [OpKind; BATCH_MAX],
    len: usize,
    seen: u64,
}

/// The tag of operation `index` of batch `seq` of `owner`.
pub const fn tag(owner: u16, seq: u64, index: usize) -> u64 {
    ((owner as u64) << 48) | ((seq & ((1 << 40) - 1)) << 8) | (index as u64 & 0xff)
}

/// What a verified completion said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The operation's kind.
    pub kind: OpKind,
    /// For a park, how it ended.
    pub park: Option<ParkResult>,
}

impl Batch {
    /// An empty batch `seq` of `owner`.
    pub const fn new(owner: u16, seq: u64) -> Batch {
        Batch {
            base: tag(owner, seq, 0),
            kinds: [OpKind::Nop; BATCH_MAX],
            len: 0,
            seen: 0,
        }
    }

    /// Adds an operation; its tag, or `None` when the batch is full.
    pub fn add(&mut self, kind: OpKind) -> Option<u64> {
        if self.len == BATCH_MAX {
            return None;
        }
        self.kinds[self.len] = kind;
        self.len += 1;
        Some(self.base | (self.len - 1) as u64)
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Operations still without a completion.
    pub fn missing(&self) -> u32 {
        self.len as u32 - self.seen.count_ones()
    }

    /// Whether every operation completed.
    pub fn done(&self) -> bool {
        self.missing() == 0
    }

    /// Checks one completion against the batch and records it.
    pub fn complete(&mut self, c: &Cqe) -> Result<Done, Problem> {
        let index = (c.user_data & 0xff) as usize;
        if c.user_data & !0xff != self.base || index >= self.len {
            return Err(Problem::Stray {
                user_data: c.user_data,
            });
        }
        let bit = 1u64 << index;
        if self.seen & bit != 0 {
            return Err(Problem::Double {
                user_data: c.user_data,
            });
        }
        self.seen |= bit;
        let kind = self.kinds[index];
        let failed = Problem::Failed {
            user_data: c.user_data,
            result: c.result,
        };
        let park = match kind {
            OpKind::Nop | OpKind::Timer if c.result == 0 => None,
            OpKind::Unpark if (0..=1).contains(&c.result) => None,
            OpKind::Park if c.result == 0 => Some(ParkResult::from_raw(c.value0).ok_or(failed)?),
            _ => return Err(failed),
        };
        Ok(Done { kind, park })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cqe(user_data: u64, result: i64, value0: u64) -> Cqe {
        Cqe {
            user_data,
            result,
            value0,
            value1: 0,
        }
    }

    #[test]
    fn every_op_once() {
        let mut b = Batch::new(3, 7);
        let t: Vec<u64> = [OpKind::Nop, OpKind::Timer, OpKind::Unpark, OpKind::Park]
            .into_iter()
            .map(|k| b.add(k).expect("room"))
            .collect();
        assert_eq!(b.missing(), 4);
        // Completions may come in any order.
        assert_eq!(
            b.complete(&cqe(t[3], 0, ParkResult::ValueChanged as u64)),
            Ok(Done {
                kind: OpKind::Park,
                park: Some(ParkResult::ValueChanged)
            })
        );
        assert!(b.complete(&cqe(t[0], 0, 0)).is_ok());
        assert!(b.complete(&cqe(t[2], 1, 0)).is_ok());
        assert!(!b.done());
        assert!(b.complete(&cqe(t[1], 0, 0)).is_ok());
        assert!(b.done());
        assert_eq!(
            b.complete(&cqe(t[1], 0, 0)),
            Err(Problem::Double { user_data: t[1] })
        );
    }

    #[test]
    fn strays_are_caught() {
        let mut old = Batch::new(1, 5);
        let late = old.add(OpKind::Nop).expect("room");
        let mut b = Batch::new(1, 6);
        let t = b.add(OpKind::Nop).expect("room");
        // From an earlier batch, another owner, or past the batch's end.
        for ud in [late, tag(2, 6, 0), t + 1, 0, u64::MAX] {
            assert_eq!(
                b.complete(&cqe(ud, 0, 0)),
                Err(Problem::Stray { user_data: ud }),
                "{ud:#x}"
            );
        }
        assert_eq!(b.missing(), 1);
    }

    #[test]
    fn results_are_checked() {
        let mut b = Batch::new(1, 1);
        let nop = b.add(OpKind::Nop).expect("room");
        let un = b.add(OpKind::Unpark).expect("room");
        let park = b.add(OpKind::Park).expect("room");
        let timer = b.add(OpKind::Timer).expect("room");
        assert!(matches!(
            b.complete(&cqe(nop, -3, 0)),
            Err(Problem::Failed { result: -3, .. })
        ));
        assert!(matches!(
            b.complete(&cqe(un, 2, 0)),
            Err(Problem::Failed { .. })
        ));
        assert!(matches!(
            b.complete(&cqe(park, 0, 99)),
            Err(Problem::Failed { .. })
        ));
        assert!(matches!(
            b.complete(&cqe(timer, -1, 0)),
            Err(Problem::Failed { .. })
        ));
    }

    #[test]
    fn batch_bounds_and_tags() {
        let mut b = Batch::new(u16::MAX, u64::MAX);
        for i in 0..BATCH_MAX {
            let t = b.add(OpKind::Nop).expect("room");
            assert_eq!(t & 0xff, i as u64);
            assert_eq!(t >> 48, u64::from(u16::MAX));
        }
        assert_eq!(b.add(OpKind::Nop), None);
        assert_eq!(b.len(), BATCH_MAX);
        // Sequence numbers wrap at 2^40 without touching owner or index.
        assert_eq!(tag(1, 1 << 40, 3), tag(1, 0, 3));
        assert_ne!(tag(1, 1, 0), tag(1, 0, 0));
        assert!(Batch::new(0, 0).is_empty() && Batch::new(0, 0).done());
    }
}
