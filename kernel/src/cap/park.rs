//! Park and unpark: sleeping on a user word.
//!
//! A process's park table maps a word's virtual address to the threads
//! parked on it, in arrival order. `park(addr, expected, timeout)` reads the
//! word and enqueues the caller *under the table lock*; `unpark(addr, n)`
//! dequeues under the same lock. A user that changes the word and then
//! unparks therefore either makes the parker see the new value (it never
//! sleeps: ValueChanged) or finds it queued and wakes it: no lost wakeup.
//!
//! Words are keyed by (address space, virtual address): the table is per
//! process. Shared park words across processes would key by (memory object,
//! offset) instead; that needs memory objects with mapping provenance, and
//! this table is the seam where that key would go.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use abi::error::Error;
use abi::op::ParkResult;
use abi::ring::{Cqe, Sqe};

use super::ops::{done, Outcome};
use crate::proc::Process;
use crate::sched::thread::{Thread, ThreadRef};
use crate::sched::timer::{self, TimerEvent, TimerHandle};

/// Most parked threads per process.
const MAX_PARKED: usize = 16 * 1024;

/// Parkers woken (or removed) per step before the table lock is dropped
/// and other CPUs' requests are answered: an Unpark of thousands of
/// waiters never keeps a shootdown waiting.
const WAKE_BATCH: usize = 64;

#[derive(Clone, Copy)]
struct Parked {
    thread: ThreadRef,
    user_data: u64,
    /// This park's timeout, if it has one.
    timer: Option<TimerHandle>,
}

/// Parked threads of one process: word address -> parkers by arrival
/// sequence (oldest first). Each parker is also recorded, as (address,
/// seq), in its thread's `parks`, so its thread's death removes it.
pub struct ParkTable {
    words: BTreeMap<u64, BTreeMap<u64, Parked>>,
    count: usize,
    next_seq: u64,
}

impl Default for ParkTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ParkTable {
    /// An empty table.
    pub fn new() -> ParkTable {
        ParkTable {
            words: BTreeMap::new(),
            count: 0,
            next_seq: 1,
        }
    }

    /// Forgets every parked thread (process end), cancelling their timeouts.
    pub fn clear(&mut self) {
        for q in core::mem::take(&mut self.words).into_values() {
            for w in q.into_values() {
                if let Some(h) = w.timer {
                    timer::cancel(h);
                }
            }
        }
        self.count = 0;
    }

    fn remove(&mut self, addr: u64, seq: u64) -> Option<Parked> {
        let q = self.words.get_mut(&addr)?;
        let p = q.remove(&seq)?;
        if q.is_empty() {
            self.words.remove(&addr);
        }
        self.count -= 1;
        Some(p)
    }

    fn pop_oldest(&mut self, addr: u64) -> Option<(u64, Parked)> {
        let q = self.words.get_mut(&addr)?;
        let (seq, p) = q.pop_first()?;
        if q.is_empty() {
            self.words.remove(&addr);
        }
        self.count -= 1;
        Some((seq, p))
    }
}

fn result(user_data: u64, r: ParkResult) -> Cqe {
    Cqe {
        user_data,
        result: 0,
        value0: r as u64,
        value1: 0,
    }
}

/// Completes a park taken out of the table, if its thread still owns it.
fn complete(w: &Parked, addr: u64, seq: u64, r: ParkResult) -> bool {
    if let Some(h) = w.timer {
        timer::cancel(h);
    }
    crate::cap::ring::post_if(w.thread, result(w.user_data, r), |ti| {
        ti.parks.remove(&(addr, seq))
    })
}

/// Park(addr, expected, timeout_ns).
pub fn park(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, timeout) = (sqe.args[0], sqe.args[2]);
    let expected = u32::try_from(sqe.args[1]).map_err(|_| Error::Invalid)?;
    let p = &t.process;
    let mut table = p.park.lock();
    let now = crate::mm::user::load_u32(&p.space, addr)?;
    if now != expected {
        return Ok(done(sqe, 0, ParkResult::ValueChanged as u64, 0));
    }
    if timeout == 0 {
        return Ok(done(sqe, 0, ParkResult::TimedOut as u64, 0));
    }
    if table.count >= MAX_PARKED {
        return Err(Error::NoMemory);
    }
    let seq = table.next_seq;
    table.next_seq += 1;
    // The timeout is armed under the table lock, so an unpark that
    // removes this entry always finds (and cancels) it.
    let timer = (timeout != abi::TIMEOUT_NEVER).then(|| {
        let deadline = crate::arch::rdtsc().saturating_add(crate::time::ns_to_tsc(timeout));
        timer::add(
            deadline,
            TimerEvent::ParkTimeout {
                process: Arc::downgrade(p),
                addr,
                thread: t.tref,
                seq,
            },
        )
    });
    table.words.entry(addr).or_default().insert(
        seq,
        Parked {
            thread: t.tref,
            user_data: sqe.user_data,
            timer,
        },
    );
    table.count += 1;
    t.inner.lock().parks.insert((addr, seq));
    Ok(Outcome::Later)
}

/// Unpark(addr, count): wakes up to `count` live parkers, oldest first, in
/// batches of [`WAKE_BATCH`] with the table lock dropped in between.
pub fn unpark(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, count) = (sqe.args[0], sqe.args[1]);
    let mut woken = 0u64;
    'outer: while woken < count {
        {
            let mut table = t.process.park.lock();
            for _ in 0..WAKE_BATCH {
                if woken >= count {
                    break 'outer;
                }
                let Some((seq, w)) = table.pop_oldest(addr) else {
                    break 'outer;
                };
                if complete(&w, addr, seq, ParkResult::Woken) {
                    woken += 1;
                }
            }
        }
        crate::smp::answer_requests();
    }
    Ok(done(sqe, woken as i64, 0, 0))
}

/// A park timeout fired: complete it if the thread is still parked.
pub fn timeout(p: &Arc<Process>, addr: u64, thread: ThreadRef, seq: u64) {
    let mut table = p.park.lock();
    if let Some(w) = table.remove(addr, seq) {
        if w.thread == thread {
            complete(&w, addr, seq, ParkResult::TimedOut);
        }
    }
}

/// Removes a dead thread's parks (its `parks` set, taken under its lock),
/// cancelling their timeouts, in batches.
pub fn thread_gone(p: &Process, parks: impl IntoIterator<Item = (u64, u64)>) {
    let mut it = parks.into_iter().peekable();
    while it.peek().is_some() {
        {
            let mut table = p.park.lock();
            for (addr, seq) in it.by_ref().take(WAKE_BATCH) {
                if let Some(w) = table.remove(addr, seq) {
                    if let Some(h) = w.timer {
                        timer::cancel(h);
                    }
                }
            }
        }
        crate::smp::answer_requests();
    }
}
