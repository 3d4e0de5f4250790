//! Park and unpark: sleeping on a user word, within a process or across
//! processes that share a memory object.
//!
//! **Keys.** A word is keyed by [`ParkKey`] (abi::memobj): a word in
//! private memory by (process id, address), a word inside a memory-object
//! mapping by (object id, offset), found through the address space's
//! provenance map. Every process that maps the object, at any address,
//! names the same word; ids are never reused, so a key never names a newer
//! process or object.
//!
//! **Table.** One global table of [`BUCKETS`] buckets, each with its own
//! lock; a key hashes to one bucket ([`ParkKey::bucket`]). Parks and
//! unparks of different words take different locks, whatever process they
//! come from, so the table scales with CPUs. No operation holds two
//! bucket locks.
//!
//! **No lost wakeup.** `park(addr, expected, timeout)` takes the word's
//! bucket lock, then reads the word *and its provenance* under one hold of
//! the space lock, and enqueues the caller before dropping the bucket
//! lock; `unpark(addr, n)` dequeues under the same bucket lock. A user that
//! changes the word and then unparks either makes the parker see the new
//! value (ValueChanged) or finds it queued and wakes it. If the word's key
//! changed between choosing the bucket and reading (a sibling remapped the
//! address), the park retries with the new key.
//!
//! **Error wakes.** MemObjUnmap wakes the caller's threads parked through
//! that mapping with [`ParkResult::Unmapped`]; a process that ends wakes
//! every other process's parkers on the objects it had mapped with
//! [`ParkResult::PeerGone`]. A parker whose thread died is removed by its
//! death (`thread_gone`) or skipped (generation-checked post), never woken.
//!
//! Lock order: bucket lock, then a thread lock (posting), then the space
//! lock (reading the word), then the timer heap (docs/architecture/
//! scheduling.md).

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::error::Error;
use abi::memobj::ParkKey;
use abi::op::ParkResult;
use abi::ring::{Cqe, Sqe};

use super::ops::{done, Outcome};
use crate::sched::thread::{Thread, ThreadRef};
use crate::sched::timer::{self, TimerEvent, TimerHandle};
use crate::sync::{class, CachePadded, IrqMutex};

/// Buckets of the park table (a power of two, several per CPU).
pub const BUCKETS: usize = 256;

/// Parkers woken (or removed) per step before the bucket lock is dropped
/// and other CPUs' requests are answered: an Unpark of thousands of
/// waiters never keeps a shootdown waiting.
const WAKE_BATCH: usize = 64;

/// Times a park re-reads a word whose key changed under it before it gives
/// up with `Busy` (only a sibling remapping the address in a loop does that).
const KEY_TRIES: usize = 4;

#[derive(Clone, Copy)]
struct Parked {
    thread: ThreadRef,
    user_data: u64,
    /// This park's timeout, if it has one.
    timer: Option<TimerHandle>,
    /// The parker's process.
    pid: u64,
    /// The object mapping it parked through (0: private memory).
    map_id: u64,
}

/// The parked threads of the words that hash here: key -> parkers by
/// arrival sequence (oldest first). Each parker is also recorded, as
/// (key, seq), in its thread's `parks`, so its thread's death removes it.
struct Bucket {
    words: BTreeMap<ParkKey, BTreeMap<u64, Parked>>,
}

impl Bucket {
    const fn new() -> Bucket {
        Bucket {
            words: BTreeMap::new(),
        }
    }

    fn remove(&mut self, key: ParkKey, seq: u64) -> Option<Parked> {
        let q = self.words.get_mut(&key)?;
        let p = q.remove(&seq)?;
        if q.is_empty() {
            self.words.remove(&key);
        }
        removed(key);
        Some(p)
    }

    fn pop_oldest(&mut self, key: ParkKey) -> Option<(u64, Parked)> {
        let q = self.words.get_mut(&key)?;
        let (seq, p) = q.pop_first()?;
        if q.is_empty() {
            self.words.remove(&key);
        }
        removed(key);
        Some((seq, p))
    }
}

/// Parkers queued on shared keys, plus parks of object-window words in
/// progress. A park counts itself *before* it reads the word's provenance,
/// and an unmap or teardown reads the count only *after* removing its
/// mappings from the provenance map: a park that saw the old mapping is
/// therefore counted, and a count of 0 means no sweep can find anything
/// (unmapping and exits skip the 256-bucket sweep in the common case).
static SHARED_PARKED: AtomicU64 = AtomicU64::new(0);

fn removed(key: ParkKey) {
    if matches!(key, ParkKey::Shared { .. }) {
        SHARED_PARKED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A park's provisional place in [`SHARED_PARKED`]: given back on drop
/// unless the park queued itself on a shared key (then the entry holds it).
struct SharedCount(bool);

impl SharedCount {
    fn take(addr: u64) -> SharedCount {
        let counted = in_object_window(addr);
        if counted {
            SHARED_PARKED.fetch_add(1, Ordering::SeqCst);
        }
        SharedCount(counted)
    }

    /// The park queued on `key`: a shared entry keeps the count.
    fn queued(mut self, key: ParkKey) {
        if matches!(key, ParkKey::Shared { .. }) {
            debug_assert!(self.0, "shared key outside the object window");
            self.0 = false;
        }
    }
}

impl Drop for SharedCount {
    fn drop(&mut self) {
        if self.0 {
            SHARED_PARKED.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: CachePadded<IrqMutex<Bucket, class::Park>> = CachePadded(IrqMutex::new(Bucket::new()));
/// Each bucket on its own cache line: CPUs parking on different words
/// never share a line.
static TABLE: [CachePadded<IrqMutex<Bucket, class::Park>>; BUCKETS] = [EMPTY; BUCKETS];

/// Arrival sequence of parks (global, so a (key, seq) pair is unique).
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

fn bucket(key: ParkKey) -> &'static IrqMutex<Bucket, class::Park> {
    &TABLE[key.bucket(BUCKETS)].0
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
fn complete(w: &Parked, key: ParkKey, seq: u64, r: ParkResult) -> bool {
    if let Some(h) = w.timer {
        timer::cancel(h);
    }
    crate::cap::ring::post_if(w.thread, result(w.user_data, r), |ti| {
        ti.parks.remove(&(key, seq))
    })
}

/// The key of the word at `addr` for thread `t`'s process, as its
/// mapping says now. Object mappings live only in the object window, so a
/// word outside it is private without a look at the address space (an
/// unpark of a private word takes no space lock at all).
fn key_of(t: &Thread, addr: u64) -> ParkKey {
    let prov = if in_object_window(addr) {
        t.process.space.provenance(addr).map(|(p, _)| p)
    } else {
        None
    };
    ParkKey::derive(t.process.pid, addr, prov)
}

fn in_object_window(addr: u64) -> bool {
    (abi::layout::OBJ_BASE..abi::layout::OBJ_END).contains(&addr)
}

/// Park(addr, expected, timeout_ns).
pub fn park(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, timeout) = (sqe.args[0], sqe.args[2]);
    let expected = u32::try_from(sqe.args[1]).map_err(|_| Error::Invalid)?;
    let p = &t.process;
    let count = SharedCount::take(addr);
    let mut key = key_of(t, addr);
    for _ in 0..KEY_TRIES {
        let mut b = bucket(key).lock();
        let (now, prov) = crate::mm::user::load_u32_with_provenance(&p.space, addr)?;
        let actual = ParkKey::derive(p.pid, addr, prov.map(|(pr, _)| pr));
        if actual != key {
            drop(b);
            key = actual;
            continue;
        }
        if now != expected {
            return Ok(done(sqe, 0, ParkResult::ValueChanged as u64, 0));
        }
        if timeout == 0 {
            return Ok(done(sqe, 0, ParkResult::TimedOut as u64, 0));
        }
        let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
        // The timeout is armed under the bucket lock, so an unpark that
        // removes this entry always finds (and cancels) it.
        let timer = (timeout != abi::TIMEOUT_NEVER).then(|| {
            let deadline = crate::arch::rdtsc().saturating_add(crate::time::ns_to_tsc(timeout));
            timer::add(
                deadline,
                TimerEvent::ParkTimeout {
                    key,
                    thread: t.tref,
                    seq,
                },
            )
        });
        b.words.entry(key).or_default().insert(
            seq,
            Parked {
                thread: t.tref,
                user_data: sqe.user_data,
                timer,
                pid: p.pid,
                map_id: prov.map_or(0, |(_, id)| id),
            },
        );
        t.inner.lock().parks.insert((key, seq));
        count.queued(key);
        return Ok(Outcome::Later);
    }
    Err(Error::Busy)
}

/// Unpark(addr, count): wakes up to `count` live parkers of the word's key,
/// oldest first, in batches of [`WAKE_BATCH`] with the bucket lock dropped
/// in between.
pub fn unpark(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (addr, count) = (sqe.args[0], sqe.args[1]);
    let key = key_of(t, addr);
    let mut woken = 0u64;
    'outer: while woken < count {
        {
            let mut b = bucket(key).lock();
            for _ in 0..WAKE_BATCH {
                if woken >= count {
                    break 'outer;
                }
                let Some((seq, w)) = b.pop_oldest(key) else {
                    break 'outer;
                };
                if complete(&w, key, seq, ParkResult::Woken) {
                    woken += 1;
                }
            }
        }
        crate::smp::answer_requests();
    }
    Ok(done(sqe, woken as i64, 0, 0))
}

/// A park timeout fired: complete it if the thread is still parked.
pub fn timeout(key: ParkKey, thread: ThreadRef, seq: u64) {
    let mut b = bucket(key).lock();
    if let Some(w) = b.remove(key, seq) {
        if w.thread == thread {
            complete(&w, key, seq, ParkResult::TimedOut);
        }
    }
}

/// Removes a dead thread's parks (its `parks` set, taken under its lock),
/// cancelling their timeouts, answering requests every [`WAKE_BATCH`].
pub fn thread_gone(parks: impl IntoIterator<Item = (ParkKey, u64)>) {
    for (i, (key, seq)) in parks.into_iter().enumerate() {
        if let Some(w) = bucket(key).lock().remove(key, seq) {
            if let Some(h) = w.timer {
                timer::cancel(h);
            }
        }
        if i % WAKE_BATCH == WAKE_BATCH - 1 {
            crate::smp::answer_requests();
        }
    }
}

/// A mapping of object `object` (id `map_id`) was unmapped: its process's
/// threads parked through it wake with [`ParkResult::Unmapped`]. The
/// mapping is already gone from the provenance map, so no park can join
/// it after this sweep passes its bucket.
pub fn mapping_gone(object: u64, map_id: u64) -> u64 {
    sweep(object, ParkResult::Unmapped, |w| w.map_id == map_id)
}

/// Process `pid`, which had object `object` mapped, ended: every other
/// process's thread parked on a word of the object wakes with
/// [`ParkResult::PeerGone`] (the ending process's own parkers were
/// removed by their threads' deaths).
pub fn peer_gone(object: u64, pid: u64) -> u64 {
    sweep(object, ParkResult::PeerGone, |w| w.pid != pid)
}

/// Completes with `r` every parker on a word of `object` that `pick`
/// selects: every bucket, a range query over the object's keys, at most
/// [`WAKE_BATCH`] per lock hold, resuming after the last entry looked at.
fn sweep(object: u64, r: ParkResult, pick: impl Fn(&Parked) -> bool) -> u64 {
    if SHARED_PARKED.load(Ordering::SeqCst) == 0 {
        return 0;
    }
    let (lo, hi) = ParkKey::object_range(object);
    let mut woken = 0;
    for b in TABLE.iter() {
        let mut cursor: Option<(ParkKey, u64)> = None;
        loop {
            let mut batch = [(lo, 0u64); WAKE_BATCH];
            let mut n = 0;
            {
                let mut bucket = b.lock();
                'scan: for (k, q) in bucket.words.range(cursor.map_or(lo, |c| c.0)..=hi) {
                    let after = match cursor {
                        Some((ck, cs)) if ck == *k => cs.saturating_add(1),
                        _ => 0,
                    };
                    for (&seq, w) in q.range(after..) {
                        cursor = Some((*k, seq));
                        if pick(w) {
                            batch[n] = (*k, seq);
                            n += 1;
                            if n == WAKE_BATCH {
                                break 'scan;
                            }
                        }
                    }
                }
                for &(k, seq) in &batch[..n] {
                    if let Some(w) = bucket.remove(k, seq) {
                        if complete(&w, k, seq, r) {
                            woken += 1;
                        }
                    }
                }
            }
            crate::smp::answer_requests();
            if n < WAKE_BATCH {
                break;
            }
        }
    }
    woken
}
