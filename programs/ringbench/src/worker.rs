//! One worker and its partner: the operation loop, on the thread's own ring.
//!
//! A worker's round is one batch (NOPS `Nop`s and TIMERS `TimerSleep(0)`s,
//! submitted together, one `cap_enter` to consume them and wait for all
//! their completions), then PINGPONGS round trips with its partner on one
//! shared word `w`. Round trip `k` (counted from 0, wrapping):
//!
//! - worker: `w = 2k+1`; submits `Unpark(w, 1)` and `Park(w, 2k+1)` in one
//!   batch; until `w == 2k+2` it parks again (a *repark*).
//! - partner: `Park(w, 2k)`, again until `w == 2k+1`; then `w = 2k+2` and
//!   `Unpark(w, 1)`.
//!
//! Park sleeps only while the word still holds the expected value, and each
//! side stores before it unparks, so no wake-up can be lost; only one side
//! is ever parked. Each round trip is exactly four counted operations; a
//! repark (after a park timeout, or a wake-up that came before the store
//! was visible) is verified like any other but counted apart.
//!
//! The ring is driven directly (not through rt's `call`, which stashes
//! unrelated completions): every completion must belong to the batch in
//! flight ([`Batch::complete`]), and at the end the CQ must be empty.

use abi::caps::{CapKind, SELF_SLOT};
use abi::manifest::RingMix;
use abi::op::{Op, ParkResult};
use core::sync::atomic::{AtomicU32, Ordering};
use ringbench::ledger::{Batch, Counts, OpKind, Problem};
use ringbench::status;
use rt::ring::Ring;
use rt::{sys, Args};

/// A park's timeout: long enough never to fire while the partner is
/// merely slow to be scheduled, short enough that a lost wake-up shows.
const PARK_TIMEOUT_NS: u64 = 1_000_000_000;
/// How long one `cap_enter` waits for the rest of a batch. Every operation
/// completes within [`PARK_TIMEOUT_NS`] (parks time out, the rest complete
/// at once or at the next timer event), so a batch still incomplete after
/// [`ENTER_STRIKES`] such waits has lost a completion.
const ENTER_WAIT_NS: u64 = 5_000_000_000;
/// Empty waits in a row before the batch's missing completions are lost.
const ENTER_STRIKES: u32 = 3;
/// Reparks in a row (each up to [`PARK_TIMEOUT_NS`]) before a side
/// decides its partner is gone.
const REPARKS_MAX: u32 = 30;
/// Partner owner ids have this bit set (worker ids do not).
const PARTNER_BIT: u16 = 0x8000;
/// Stack of a partner thread (and of a thread-mode worker).
pub const STACK_BYTES: u64 = 32 * 1024;

/// A worker's operation mix (the manifest's, [`abi::manifest::RingMix`]).
pub type Mix = RingMix;

/// Parses `ROUNDS NOPS TIMERS PINGPONGS` at `args[at..]`, within the
/// manifest limits ([`abi::validate::ring_mix`]).
pub fn parse_mix(a: &Args, at: usize) -> Option<Mix> {
    let n = |i: usize| a.get_u64(at + i).and_then(|v| u32::try_from(v).ok());
    let mix = RingMix {
        rounds: n(0)?,
        nops: n(1)?,
        timers: n(2)?,
        pingpongs: n(3)?,
    };
    let mut ok = true;
    abi::validate::ring_mix(&mix, &mut |_| ok = false);
    ok.then_some(mix)
}

/// Everything one side of a pair needs.
#[derive(Clone, Copy)]
pub struct Job {
    /// Worker index (the ledger owner id).
    pub idx: u16,
    /// The mix.
    pub mix: Mix,
    /// The timer capability's slot (used only if `mix.timers > 0`).
    pub timer: u32,
    /// Address of the pair's shared word (an `AtomicU32` that outlives both).
    pub word: usize,
}

impl Job {
    fn word(&self) -> &AtomicU32 {
        // SAFETY: `word` is the address of an AtomicU32 that the creator of
        // the job keeps mapped (a static, or the parent's slot mapping) until
        // both sides have been joined; atomics may be shared between threads.
        unsafe { &*(self.word as *const AtomicU32) }
    }
}

/// One thread's ring and batch counter.
struct Driver {
    ring: Ring,
    owner: u16,
    seq: u64,
    counts: Counts,
}

impl Driver {
    fn new(owner: u16) -> Driver {
        Driver {
            ring: rt::tls::current().ring(),
            owner,
            seq: 0,
            counts: Counts::default(),
        }
    }

    fn batch(&mut self) -> Batch {
        self.seq += 1;
        Batch::new(self.owner, self.seq)
    }

    /// Publishes `op` on `cap` with `args` as part of `b`.
    fn push(
        &self,
        b: &mut Batch,
        kind: OpKind,
        op: Op,
        cap: u32,
        args: &[u64],
    ) -> Result<(), Problem> {
        let mut s = sys::sqe(op, cap, args);
        s.user_data = b.add(kind).ok_or(Problem::SqFull)?;
        if self.ring.push(&s) {
            Ok(())
        } else {
            Err(Problem::SqFull)
        }
    }

    /// Submits `b` and waits until each of its operations completed exactly
    /// once; `counted` says whether they are benchmark operations or reparks.
    fn run(&mut self, b: &mut Batch, counted: bool) -> Result<(), Problem> {
        let mut strikes = 0;
        loop {
            while let Some(c) = self.ring.pop() {
                let done = b.complete(&c)?;
                if done.park == Some(ParkResult::TimedOut) {
                    self.counts.timeouts += 1;
                }
                if counted {
                    self.counts.ops += 1;
                } else {
                    self.counts.reparks += 1;
                }
            }
            if b.done() {
                return Ok(());
            }
            let before = b.missing();
            sys::enter(u64::from(before), ENTER_WAIT_NS).map_err(|_| Problem::Enter)?;
            if self.ring.cq_ready() == Some(0) {
                strikes += 1;
                if strikes >= ENTER_STRIKES {
                    return Err(Problem::Lost { missing: before });
                }
            } else {
                strikes = 0;
            }
        }
    }

    /// A batch of one park on `word` while it holds `expected`.
    fn park(&mut self, word: &AtomicU32, expected: u32, counted: bool) -> Result<(), Problem> {
        let mut b = self.batch();
        let addr = word as *const AtomicU32 as u64;
        self.push(
            &mut b,
            OpKind::Park,
            Op::Park,
            SELF_SLOT,
            &[addr, u64::from(expected), PARK_TIMEOUT_NS],
        )?;
        self.run(&mut b, counted)
    }

    /// Parks again (reparks) until `word` holds `want`; a partner that
    /// does not answer for [`REPARKS_MAX`] parks in a row lost a wake-up
    /// (or failed), and this side gives up instead of waiting forever.
    fn repark_until(&mut self, word: &AtomicU32, expected: u32, want: u32) -> Result<(), Problem> {
        let mut n = 0;
        while word.load(Ordering::Acquire) != want {
            n += 1;
            if n > REPARKS_MAX {
                return Err(Problem::Lost { missing: 1 });
            }
            self.park(word, expected, false)?;
        }
        Ok(())
    }

    /// The CQ must be empty once every batch is done.
    fn finish(self) -> Result<Counts, Problem> {
        let _ = sys::enter(0, 0);
        if self.ring.cq_ready() != Some(0) {
            return Err(Problem::Extra);
        }
        Ok(self.counts)
    }
}

/// The worker side: every round's batch and its half of the round trips.
pub fn run_worker(job: &Job) -> Result<Counts, Problem> {
    let mut d = Driver::new(job.idx);
    let word = job.word();
    let addr = word as *const AtomicU32 as u64;
    let mut k: u32 = 0;
    for _ in 0..job.mix.rounds {
        let mut b = d.batch();
        for _ in 0..job.mix.nops {
            d.push(&mut b, OpKind::Nop, Op::Nop, SELF_SLOT, &[])?;
        }
        for _ in 0..job.mix.timers {
            d.push(&mut b, OpKind::Timer, Op::TimerSleep, job.timer, &[0])?;
        }
        if !b.is_empty() {
            d.run(&mut b, true)?;
        }
        for _ in 0..job.mix.pingpongs {
            let go = k.wrapping_mul(2).wrapping_add(1);
            let back = go.wrapping_add(1);
            word.store(go, Ordering::Release);
            let mut b = d.batch();
            d.push(&mut b, OpKind::Unpark, Op::Unpark, SELF_SLOT, &[addr, 1])?;
            d.push(
                &mut b,
                OpKind::Park,
                Op::Park,
                SELF_SLOT,
                &[addr, u64::from(go), PARK_TIMEOUT_NS],
            )?;
            d.run(&mut b, true)?;
            d.repark_until(word, go, back)?;
            k = k.wrapping_add(1);
        }
    }
    d.finish()
}

/// The partner side: answers every round trip.
pub fn run_partner(job: &Job) -> Result<Counts, Problem> {
    let mut d = Driver::new(job.idx | PARTNER_BIT);
    let word = job.word();
    let addr = word as *const AtomicU32 as u64;
    let total = u64::from(job.mix.rounds) * u64::from(job.mix.pingpongs);
    let mut k: u32 = 0;
    for _ in 0..total {
        let wait = k.wrapping_mul(2);
        let go = wait.wrapping_add(1);
        d.park(word, wait, true)?;
        d.repark_until(word, wait, go)?;
        word.store(go.wrapping_add(1), Ordering::Release);
        let mut b = d.batch();
        d.push(&mut b, OpKind::Unpark, Op::Unpark, SELF_SLOT, &[addr, 1])?;
        d.run(&mut b, true)?;
        k = k.wrapping_add(1);
    }
    d.finish()
}

/// A side's result as a thread exit value: its count, or a negative status.
pub fn status_of(r: Result<Counts, Problem>) -> i64 {
    match r {
        Ok(c) => i64::try_from(c.ops).unwrap_or(status::OP_FAILED),
        Err(p) => status::of_problem(p),
    }
}

/// The pair's shared word in process mode (one pair per process).
static PROCESS_WORD: AtomicU32 = AtomicU32::new(0);

/// A worker process: `worker IDX ROUNDS NOPS TIMERS PINGPONGS`; exits with
/// the pair's operation count or a negative [`status`].
pub fn process_main(a: &Args) -> i64 {
    let (Some(idx), Some(mix)) = (
        a.get_u64(1).and_then(|i| u16::try_from(i).ok()),
        parse_mix(a, 2),
    ) else {
        return status::BAD_ARGUMENTS;
    };
    if idx >= PARTNER_BIT {
        return status::BAD_ARGUMENTS;
    }
    let timer = a.find_cap(CapKind::Timer);
    if mix.timers > 0 && timer.is_none() {
        return status::NO_TIMER;
    }
    let job = Job {
        idx,
        mix,
        timer: timer.unwrap_or(0),
        word: &PROCESS_WORD as *const AtomicU32 as usize,
    };
    let mut partner = if mix.pingpongs > 0 {
        match rt::thread::spawn_with_stack(STACK_BYTES, move || status_of(run_partner(&job))) {
            Ok(t) => Some(t),
            Err(_) => return status::PARTNER_SPAWN,
        }
    } else {
        None
    };
    let mine = status_of(run_worker(&job));
    if mine < 0 {
        // The partner may be parked for good: ending the process ends it.
        return mine;
    }
    let theirs = match partner.as_mut().map(|t| t.join()) {
        None => 0,
        Some(Ok(v)) if v >= 0 => v,
        Some(_) => status::PARTNER_FAILED,
    };
    if let Some(t) = partner {
        let _ = t.close();
    }
    if theirs < 0 {
        theirs
    } else {
        mine + theirs
    }
}
