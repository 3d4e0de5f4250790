//! Helpers of the hostile smokes (`hostile-storm`, `hostile-leak`,
//! `hostile-orphan`): programs that push the kernel's resource limits and
//! check that it answers with `NoMemory`, stays responsive and gives every
//! charge back.
//!
//! - [`kmem`] and [`Snapshot`]: the kernel-memory account (`Op::KernelMem`)
//!   and free frames, taken before a round and compared after it.
//! - Raw threads ([`raw_spawn`]): threads without rt's TLS block, on 8 KiB
//!   stacks carved from one demand-zero pool, so that thousands fit in one
//!   process (rt's threads take one mapping each, and a process holds at
//!   most 4,096 mappings). A raw thread must not use [`rt::sys`] (it has
//!   no TLS): it drives its own ring through [`RawRing`].
//! - [`RawRing`]: submissions and completions without rt's stash, for
//!   threads that keep thousands of operations outstanding.
//! - [`Shooter`]: a sibling thread that maps, touches and unmaps memory in
//!   a loop, so every CPU running the process keeps getting TLB shootdowns.

use crate::{fail, Ctx, Fail};
use abi::caps::SELF_SLOT;
use abi::error::Error;
use abi::op::Op;
use abi::ring::{Cqe, Sqe, SQ_ENTRIES};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use rt::ring::Ring;
use rt::sys;

/// Kernel-memory bytes charged to this program's account, or a failure
/// that says the kernel has no accounting (`Op::KernelMem` missing).
pub fn kmem() -> Result<u64, Fail> {
    match sys::kernel_mem() {
        Ok((used, _budget)) => Ok(used),
        Err(e) => Err(Fail::new(format_args!(
            "kernel-mem op unsupported ({}): no kernel-memory accounting",
            e.name()
        ))),
    }
}

/// Free frames and the account's charge at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// Free physical frames.
    pub frames: u64,
    /// Bytes charged to the account (`None`: the kernel lacks the op).
    pub kmem: Option<u64>,
}

impl Snapshot {
    /// Takes one now.
    pub fn take() -> Result<Snapshot, Fail> {
        let (frames, _) = sys::mem_stats().ctx("mem-stats")?;
        Ok(Snapshot {
            frames,
            kmem: sys::kernel_mem().ok().map(|(u, _)| u),
        })
    }

    /// Fails unless frames and the charge are back where `self` saw them.
    /// A missing KernelMem op is a failure too (checked last, so a leak of
    /// frames is reported first).
    pub fn expect_back(&self, what: &str) -> Result<(), Fail> {
        let now = Snapshot::take()?;
        if now.frames != self.frames {
            fail!(
                "{}: free frames {} before, {} after ({} held)",
                what,
                self.frames,
                now.frames,
                self.frames as i64 - now.frames as i64
            );
        }
        let Some(before) = self.kmem else {
            kmem()?;
            fail!("{}: kernel-mem unavailable before the round", what);
        };
        let after = kmem()?;
        if after != before {
            fail!(
                "{}: kernel-mem {} bytes before, {} after",
                what,
                before,
                after
            );
        }
        Ok(())
    }

    /// Fails unless the free frames are back where `self` saw them (for
    /// a check inside a process whose kernel tables may keep capacity
    /// they grew; the charge is checked once the process has ended).
    pub fn expect_frames_back(&self, what: &str) -> Result<(), Fail> {
        let (now, _) = sys::mem_stats().ctx("mem-stats")?;
        if now != self.frames {
            fail!(
                "{}: free frames {} before, {} after ({} held)",
                what,
                self.frames,
                now,
                self.frames as i64 - now as i64
            );
        }
        Ok(())
    }

    /// Polls (napping at most `tries` times 10 ms)
    /// until frames and the charge are back: for teardown that finishes on
    /// another CPU after the waiter was told. Then [`Snapshot::expect_back`].
    pub fn expect_back_soon(&self, what: &str, tries: u32) -> Result<(), Fail> {
        for _ in 0..tries {
            let now = Snapshot::take()?;
            if now.frames == self.frames && (now.kmem.is_none() || now.kmem == self.kmem) {
                break;
            }
            nap(10_000_000);
        }
        self.expect_back(what)
    }
}

/// Sleeps about `ns` in a `cap_enter` that waits for a completion that
/// does not come (needs no timer capability, and unlike a park timeout it
/// stays clear of the process's park table, whose lock an Unpark storm
/// holds). Returns early if a completion is waiting in the CQ.
pub fn nap(ns: u64) {
    let _ = sys::enter(1, ns);
}

/// Waits until `c` reaches at least `n` (polling on park timeouts; the
/// scenario watchdog catches a count that never gets there).
pub fn wait_count(c: &AtomicU32, n: u32) {
    loop {
        let v = c.load(Ordering::Acquire);
        if v >= n {
            return;
        }
        let _ = sys::park(c, v, 2_000_000);
    }
}

/// Builds an SQE with a chosen `user_data`.
pub fn sqe(op: Op, cap: u32, user_data: u64, args: &[u64]) -> Sqe {
    let mut s = sys::sqe(op, cap, args);
    s.user_data = user_data;
    s
}

/// Decodes a completion's error, if it carries one.
pub fn cqe_error(c: &Cqe) -> Option<Error> {
    (c.result < 0).then(|| Error::from_result(c.result).unwrap_or(Error::Invalid))
}

/// A thread's ring driven directly (no stash, no rt `user_data`s).
#[derive(Clone, Copy)]
pub struct RawRing(pub Ring);

/// How a [`RawRing::flood`] ended.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodResult {
    /// Submissions the kernel consumed.
    pub consumed: u32,
    /// Completions popped meanwhile.
    pub completed: u32,
    /// Of those, completions with NoMemory.
    pub no_memory: u32,
    /// Of those, completions with another error.
    pub other_errors: u32,
    /// The kernel stopped consuming with submissions left (a stall).
    pub stalled: bool,
}

/// Consecutive `cap_enter(0, 0)` calls that consume nothing and complete
/// nothing before a flood counts as stalled.
const STALL_ENTERS: u32 = 2_000;

impl RawRing {
    /// The calling rt thread's ring.
    pub fn current() -> RawRing {
        RawRing(rt::tls::current().ring())
    }

    /// The kernel's SQ head (submissions consumed so far).
    pub fn sq_head(&self) -> u32 {
        self.0.header().sq_head.load(Ordering::Acquire)
    }

    /// `cap_enter(min, timeout)`; the raw result.
    pub fn enter(&self, min: u64, timeout_ns: u64) -> i64 {
        rt::arch::cap_enter(min, timeout_ns)
    }

    /// Submits `n` SQEs made by `make(i)`, popping completions as they
    /// come (handed to `on_cqe`), until the kernel consumed all `n` or
    /// stopped consuming while nothing completed ([`FloodResult::stalled`]).
    pub fn flood(
        &self,
        n: u32,
        make: impl Fn(u32) -> Sqe,
        mut on_cqe: impl FnMut(&Cqe),
    ) -> FloodResult {
        let mut r = FloodResult::default();
        let start = self.sq_head();
        let mut pushed = 0u32;
        let mut idle = 0u32;
        loop {
            while pushed < n && self.0.push(&make(pushed)) {
                pushed += 1;
            }
            let before = self.sq_head();
            self.enter(0, 0);
            let mut popped = 0;
            while let Some(c) = self.0.pop() {
                popped += 1;
                r.completed += 1;
                match cqe_error(&c) {
                    Some(Error::NoMemory) => r.no_memory += 1,
                    Some(_) => r.other_errors += 1,
                    None => {}
                }
                on_cqe(&c);
            }
            r.consumed = self.sq_head().wrapping_sub(start);
            if r.consumed >= n {
                return r;
            }
            if self.sq_head() == before && popped == 0 {
                idle += 1;
                if idle >= STALL_ENTERS {
                    r.stalled = true;
                    return r;
                }
            } else {
                idle = 0;
            }
        }
    }

    /// Submits one SQE and waits for a completion (any: the caller keeps
    /// nothing else outstanding).
    pub fn call(&self, s: &Sqe) -> Cqe {
        while !self.0.push(s) {
            self.enter(0, 0);
        }
        loop {
            if let Some(c) = self.0.pop() {
                return c;
            }
            self.enter(1, abi::TIMEOUT_NEVER);
        }
    }

    /// Parks on `word` while it holds `expected`; the completion.
    pub fn park(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> Cqe {
        let addr = word as *const AtomicU32 as u64;
        self.call(&sqe(
            Op::Park,
            SELF_SLOT,
            1,
            &[addr, u64::from(expected), timeout_ns],
        ))
    }

    /// Ends the calling thread with `value` (needs a free SQ entry).
    pub fn thread_exit(&self, value: i64) -> ! {
        let s = sqe(Op::ThreadExit, SELF_SLOT, 0, &[value as u64]);
        while !self.0.push(&s) {
            self.enter(0, 0);
            while self.0.pop().is_some() {}
        }
        loop {
            self.enter(0, 0);
        }
    }

    /// Ends the process with `status` (needs a free SQ entry).
    pub fn exit(&self, status: i64) -> ! {
        let s = sqe(Op::Exit, SELF_SLOT, 0, &[status as u64]);
        while !self.0.push(&s) {
            self.enter(0, 0);
        }
        loop {
            self.enter(0, 0);
        }
    }
}

/// A raw thread's body: its parameter and its ring; returns its exit value.
pub type RawFn = fn(param: u64, ring: RawRing) -> i64;

/// What a raw thread finds at the top of its stack.
#[repr(C)]
struct RawStart {
    f: RawFn,
    param: u64,
}

/// Bytes of stack per raw thread (only the touched top page costs a frame).
const RAW_STACK_BYTES: u64 = 8 * 1024;
/// The stack pool: one demand-zero mapping of this size, carved up.
const POOL_BYTES: u64 = 1 << 30;

static POOL_BASE: AtomicU64 = AtomicU64::new(0);
static POOL_NEXT: AtomicU64 = AtomicU64::new(0);

fn raw_stack() -> Result<u64, Error> {
    if POOL_BASE.load(Ordering::Acquire) == 0 {
        let base = sys::mem_map(POOL_BYTES)?;
        POOL_BASE.store(base, Ordering::Release);
        POOL_NEXT.store(base, Ordering::Release);
    }
    let lo = POOL_NEXT.fetch_add(RAW_STACK_BYTES, Ordering::AcqRel);
    if lo + RAW_STACK_BYTES > POOL_BASE.load(Ordering::Acquire) + POOL_BYTES {
        return Err(Error::NoMemory);
    }
    Ok(lo + RAW_STACK_BYTES)
}

/// First code of a raw thread: rdi = its [`RawStart`], rsi = its ring.
extern "C" fn raw_entry(start: u64, ring: u64) -> ! {
    // SAFETY: `raw_spawn` wrote a RawStart at `start` (inside this thread's
    // own stack page) before the thread existed; nobody writes it later.
    let s = unsafe { core::ptr::read(start as *const RawStart) };
    // SAFETY: the kernel passes this thread's own ring region, mapped
    // read-write for the thread's life and used by this thread only.
    let r = RawRing(unsafe { Ring::from_raw(ring as usize) });
    let v = (s.f)(s.param, r);
    r.thread_exit(v)
}

/// Starts a raw thread running `f(param, ring)`; (handle slot, tid).
/// Stacks are never reused: the pool holds 131,072 of them.
pub fn raw_spawn(f: RawFn, param: u64) -> Result<(u32, u64), Error> {
    let top = raw_stack()?;
    let start = top - 16;
    // SAFETY: `start` is 16 bytes below the top of a stack slot of our own
    // demand-zero pool that no thread uses yet; RawStart is 16 bytes, 8-aligned.
    unsafe { core::ptr::write(start as *mut RawStart, RawStart { f, param }) };
    // rsp = start - 8: at a function's entry rsp + 8 is 16-aligned (SysV),
    // as if `call` had pushed a return address.
    sys::thread_spawn(raw_entry as *const () as usize as u64, start - 8, start, 0)
}

/// The kernel's answer to a storm: how many got through, how it stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Storm {
    /// Objects created before the first refusal.
    pub made: u32,
    /// The refusal (None: the cap was reached first).
    pub stop: Option<Error>,
}

/// Pause between two shooter rounds.
const SHOOT_NAP_NS: u64 = 1_000_000;
/// Set by the main thread when a [`Shooter`] should stop.
static SHOOT_STOP: AtomicBool = AtomicBool::new(false);
/// Rounds the shooter completed.
static SHOOT_ROUNDS: AtomicU64 = AtomicU64::new(0);
/// First error the shooter met (error code, 0 = none).
static SHOOT_ERR: AtomicU64 = AtomicU64::new(0);

/// A sibling thread that maps 16 pages, touches them and unmaps them in a
/// loop, 1 ms apart (each unmap shoots down every CPU that runs the
/// process, and one that does not answer within the kernel's deadline
/// panics it).
pub struct Shooter(rt::thread::Thread);

impl Shooter {
    /// Starts one. A napping shooter leaves the CPU between rounds, so the
    /// threads under test spread over the other CPUs; a busy one never
    /// sleeps (a sleeper's wake-up could wait on the very CPU under test).
    pub fn start(napping: bool) -> Result<Shooter, Fail> {
        SHOOT_STOP.store(false, Ordering::Release);
        SHOOT_ROUNDS.store(0, Ordering::Release);
        SHOOT_ERR.store(0, Ordering::Release);
        let t = rt::thread::spawn_with_stack(16 * 1024, move || {
            while !SHOOT_STOP.load(Ordering::Acquire) {
                if let Err(e) = shoot_once() {
                    SHOOT_ERR.store(e as u64, Ordering::Release);
                    return 1;
                }
                SHOOT_ROUNDS.fetch_add(1, Ordering::AcqRel);
                if napping {
                    nap(SHOOT_NAP_NS);
                }
            }
            0
        })
        .ctx("spawn shooter")?;
        Ok(Shooter(t))
    }

    /// Spins until the shooter's round count moves while the caller spins
    /// (so it runs on another CPU right now); false if that was not seen
    /// within `tries` attempts (one CPU, say).
    pub fn wait_beside_me(tries: u32) -> bool {
        for _ in 0..tries {
            let r0 = Self::rounds();
            for _ in 0..100_000 {
                core::hint::spin_loop();
            }
            if Self::rounds() != r0 {
                return true;
            }
        }
        false
    }

    /// Rounds done so far.
    pub fn rounds() -> u64 {
        SHOOT_ROUNDS.load(Ordering::Acquire)
    }

    /// Stops and joins it; the rounds it completed. (The join is retried
    /// while the budget refuses its waiter entry.)
    pub fn stop(mut self) -> Result<u64, Fail> {
        SHOOT_STOP.store(true, Ordering::Release);
        let mut joined = self.0.join();
        for _ in 0..1000 {
            if joined != Err(Error::NoMemory) {
                break;
            }
            nap(1_000_000);
            joined = self.0.join();
        }
        let v = joined.ctx("join shooter")?;
        self.0.close().ctx("close shooter")?;
        let e = SHOOT_ERR.load(Ordering::Acquire);
        if v != 0 || e != 0 {
            fail!("shooter failed: error code {}", e);
        }
        Ok(Self::rounds())
    }
}

/// One round; running out of budget is no failure (the storms under test
/// use it up on purpose), any other error is.
fn shoot_once() -> Result<(), Error> {
    const PAGES: u64 = 16;
    let bytes = PAGES * abi::layout::PAGE_SIZE;
    let a = match sys::mem_map(bytes) {
        Ok(a) => a,
        Err(Error::NoMemory) => return Ok(()),
        Err(e) => return Err(e),
    };
    for i in 0..PAGES {
        // SAFETY: a fresh read-write mapping of ours, `PAGES` pages long.
        unsafe { core::ptr::write_volatile((a + i * abi::layout::PAGE_SIZE) as *mut u64, i) };
    }
    sys::mem_unmap(a, bytes)
}

/// Writes to one byte of each page in `[addr, addr + bytes)` at `stride`.
pub fn touch(addr: u64, bytes: u64, stride: u64) {
    let mut o = 0;
    while o < bytes {
        // SAFETY: callers pass a read-write mapping of their own.
        unsafe { core::ptr::write_volatile((addr + o) as *mut u8, 1) };
        o += stride;
    }
}

/// Whether the SQ has room for one more entry.
pub fn sq_has_room(r: &RawRing) -> bool {
    r.0.sq_pending().is_some_and(|p| p < SQ_ENTRIES)
}
