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

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;

use abi::error::Error;
use abi::op::ParkResult;
use abi::ring::{Cqe, Sqe};

use super::ops::{done, Outcome};
use crate::proc::Process;
use crate::sched::thread::{Thread, ThreadRef};
use crate::sched::timer::{self, TimerEvent};

/// Most parked threads per process.
const MAX_PARKED: usize = 16 * 1024;

#[derive(Clone, Copy)]
struct Parked {
    thread: ThreadRef,
    user_data: u64,
    seq: u64,
    /// CPU whose timer list holds this park's timeout, if any.
    timer_cpu: Option<usize>,
}

impl Parked {
    /// Drops this park's pending timeout (it was woken first).
    fn cancel_timeout(&self, addr: u64) {
        if let Some(cpu) = self.timer_cpu {
            let (thread, seq) = (self.thread, self.seq);
            timer::cancel(cpu, |ev| {
                matches!(ev, TimerEvent::ParkTimeout { addr: a, thread: t, seq: s, .. }
                    if *a == addr && *t == thread && *s == seq)
            });
        }
    }
}

/// Parked threads of one process.
pub struct ParkTable {
    words: BTreeMap<u64, VecDeque<Parked>>,
    count: usize,
    next_seq: u64,
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

    /// Forgets every parked thread (process end).
    pub fn clear(&mut self) {
        self.words.clear();
        self.count = 0;
    }

    fn remove(&mut self, addr: u64, pred: impl Fn(&Parked) -> bool) -> Option<Parked> {
        let q = self.words.get_mut(&addr)?;
        let i = q.iter().position(pred)?;
        let p = q.remove(i);
        if q.is_empty() {
            self.words.remove(&addr);
        }
        self.count -= 1;
        p
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

/// Park(addr, expected, timeout_ns).
pub fn park(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, timeout) = (sqe.args[0], sqe.args[2]);
    let expected = u32::try_from(sqe.args[1]).map_err(|_| Error::Invalid)?;
    let p = &t.process;
    {
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
        let timer_cpu = (timeout != abi::TIMEOUT_NEVER).then(|| {
            let deadline = crate::arch::rdtsc().saturating_add(crate::time::ns_to_tsc(timeout));
            timer::add(
                deadline,
                TimerEvent::ParkTimeout {
                    process: Arc::downgrade(p),
                    addr,
                    thread: t.tref,
                    seq,
                },
            );
            crate::arch::cpu_id()
        });
        table.words.entry(addr).or_default().push_back(Parked {
            thread: t.tref,
            user_data: sqe.user_data,
            seq,
            timer_cpu,
        });
        table.count += 1;
    }
    Ok(Outcome::Later)
}

/// Unpark(addr, count): wakes up to `count` live parkers, oldest first.
pub fn unpark(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, count) = (sqe.args[0], sqe.args[1]);
    let mut woken = 0u64;
    let mut table = t.process.park.lock();
    while woken < count {
        let Some(w) = table.remove(addr, |_| true) else {
            break;
        };
        w.cancel_timeout(addr);
        if crate::cap::ring::post(w.thread, result(w.user_data, ParkResult::Woken)) {
            woken += 1;
        }
    }
    Ok(done(sqe, woken as i64, 0, 0))
}

/// A park timeout fired: complete it if the thread is still parked.
pub fn timeout(p: &Arc<Process>, addr: u64, thread: ThreadRef, seq: u64) {
    let mut table = p.park.lock();
    if let Some(w) = table.remove(addr, |w| w.thread == thread && w.seq == seq) {
        crate::cap::ring::post(w.thread, result(w.user_data, ParkResult::TimedOut));
    }
}
