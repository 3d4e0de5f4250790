//! The ring client and a typed wrapper for every operation in [`abi::op`].
//!
//! [`call`] submits one SQE on the calling thread's ring and waits for the
//! completion with its `user_data`; completions for other submissions that
//! arrive meanwhile go to the thread's stash and are found there by a later
//! [`wait_for`]. [`submit`] starts an operation without waiting and returns
//! its token for [`wait_for`]. Kernel results come back as
//! `Result<_, Error>`; nothing here panics on a kernel answer.

use crate::tls::{self, Tls};
use abi::caps::SELF_SLOT;
use abi::error::Error;
use abi::op::{ExitKind, Op, ParkResult, SpawnArgs};
use abi::ring::{Cqe, Sqe, ENTER_SQ_WAKEUP, SQ_ENTRIES};
use abi::TIMEOUT_NEVER;
use core::sync::atomic::AtomicU32;

/// Builds an SQE for `op` on `cap` with the given arguments.
pub fn sqe(op: Op, cap: u32, args: &[u64]) -> Sqe {
    let mut s = Sqe {
        opcode: op as u32,
        cap,
        ..Sqe::default()
    };
    for (dst, a) in s.args.iter_mut().zip(args) {
        *dst = *a;
    }
    s
}

/// `cap_enter(min_complete, timeout_ns)` on the calling thread: the number
/// of completions waiting in its CQ, or the kernel's error.
///
/// On an SQPOLL ring whose poller sleeps (NEED_WAKEUP, read after a full
/// fence) it also wakes the poller ([`abi::ring::ENTER_SQ_WAKEUP`]).
pub fn enter(min_complete: u64, timeout_ns: u64) -> Result<u32, Error> {
    let ring = tls::current().ring();
    let flags = if ring.needs_wakeup() {
        ENTER_SQ_WAKEUP
    } else {
        0
    };
    enter_flags(min_complete, timeout_ns, flags)
}

/// How long an SQPOLL thread spins on its ring before it enters the
/// kernel to wait, in TSC cycles (about 40 us at 2.5 GHz). With a poller
/// on another CPU the completion (or SQ room) usually arrives meanwhile,
/// and no system call is made at all.
const SQPOLL_SPIN_CYCLES: u64 = 100_000;

/// The longest an SQPOLL thread with a full SQ sleeps before it looks
/// again (1 ms): it waits for one more completion, which the poller
/// produces while consuming, but some submissions complete much later.
const SQ_FULL_WAIT_NS: u64 = 1_000_000;

/// The ring client's way into the kernel ([`crate::stash`], waits): on a
/// ring in SQPOLL mode whose poller is awake, spin a little for what the
/// caller waits for (`min_complete` completions, or SQ room when it is 0)
/// before making a system call; when the SQ is full, block until one more
/// completion (at most [`SQ_FULL_WAIT_NS`]) instead of returning at once,
/// so that the poller gets this CPU when it has only one.
fn ring_enter(min_complete: u64, timeout_ns: u64) -> Result<u32, Error> {
    let ring = tls::current().ring();
    if !ring.is_sqpoll() {
        return enter(min_complete, timeout_ns);
    }
    let done = |r: &crate::ring::Ring| {
        let ready = r.cq_ready().unwrap_or(0);
        let ok = if min_complete == 0 {
            r.sq_pending().is_some_and(|n| n < SQ_ENTRIES)
        } else {
            u64::from(ready) >= min_complete
        };
        ok.then_some(ready)
    };
    if !ring.needs_wakeup() {
        let t0 = crate::arch::rdtsc();
        while crate::arch::rdtsc().wrapping_sub(t0) < SQPOLL_SPIN_CYCLES {
            if let Some(ready) = done(&ring) {
                return Ok(ready);
            }
            core::hint::spin_loop();
        }
    }
    if min_complete == 0 && done(&ring).is_none() {
        let held = u64::from(ring.cq_ready().unwrap_or(0));
        return enter(held + 1, SQ_FULL_WAIT_NS);
    }
    enter(min_complete, timeout_ns)
}

/// `cap_enter` with explicit `flags` (rdx).
pub fn enter_flags(min_complete: u64, timeout_ns: u64, flags: u64) -> Result<u32, Error> {
    let r = crate::arch::cap_enter_flags(min_complete, timeout_ns, flags);
    if r < 0 {
        return Err(Error::from_result(r).unwrap_or(Error::Invalid));
    }
    Ok(u32::try_from(r).unwrap_or(u32::MAX))
}

/// Maps a completion to `Ok(result)` or the error it carries.
pub fn check(c: &Cqe) -> Result<i64, Error> {
    if c.result < 0 {
        Err(Error::from_result(c.result).unwrap_or(Error::Invalid))
    } else {
        Ok(c.result)
    }
}

/// Publishes `s` on the calling thread's ring with a fresh `user_data`
/// (its token), making room first if the SQ is full ([`crate::stash::push`]).
fn push(tls: &Tls, mut s: Sqe) -> Result<u64, Error> {
    let token = tls.fresh_user_data();
    s.user_data = token;
    tls.with_stash(|st| crate::stash::push(&tls.ring(), st, &s, ring_enter))?;
    Ok(token)
}

/// Publishes `s` and lets the kernel consume it, without waiting for its
/// completion. Returns its token for [`wait_for`]. On an SQPOLL ring this
/// makes no system call unless the poller sleeps (NEED_WAKEUP).
pub fn submit(s: Sqe) -> Result<u64, Error> {
    let tls = tls::current();
    let token = push(tls, s)?;
    let ring = tls.ring();
    if !ring.is_sqpoll() || ring.needs_wakeup() {
        enter(0, 0)?;
    }
    Ok(token)
}

/// Waits for the completion of a [`submit`]ted operation
/// ([`crate::stash::wait_for`]: never panics; `Busy` when the stash and
/// the CQ are full of completions nobody collected).
pub fn wait_for(token: u64) -> Cqe {
    let tls = tls::current();
    tls.with_stash(|st| crate::stash::wait_for(&tls.ring(), st, token, ring_enter))
}

/// The next completion of any submission (stashed ones first, oldest
/// first), waiting for one if none is there.
pub fn next_completion() -> Cqe {
    let tls = tls::current();
    loop {
        if let Some(c) = tls.with_stash(|s| s.take_first()) {
            return c;
        }
        if let Some(c) = tls.ring().pop() {
            return c;
        }
        if let Err(e) = ring_enter(1, TIMEOUT_NEVER) {
            return Cqe {
                user_data: 0,
                result: e.as_result(),
                value0: 0,
                value1: 0,
            };
        }
    }
}

/// Submits `s` and waits for its completion (one `cap_enter` when the
/// kernel completes it at once).
pub fn call(s: Sqe) -> Cqe {
    match push(tls::current(), s) {
        Ok(token) => wait_for(token),
        Err(e) => Cqe {
            user_data: 0,
            result: e.as_result(),
            value0: 0,
            value1: 0,
        },
    }
}

fn call_ok(op: Op, cap: u32, args: &[u64]) -> Result<Cqe, Error> {
    let c = call(sqe(op, cap, args));
    check(&c).map(|_| c)
}

/// Op::Nop on `cap`.
pub fn nop(cap: u32) -> Result<(), Error> {
    call_ok(Op::Nop, cap, &[]).map(drop)
}

/// Op::ConsoleWrite: writes `bytes` as one unit; returns bytes written.
pub fn console_write(cap: u32, bytes: &[u8]) -> Result<u64, Error> {
    raw_console_write(cap, bytes.as_ptr() as u64, bytes.len() as u64)
}

/// Op::ConsoleWrite with an arbitrary pointer (for tests of the checks).
pub fn raw_console_write(cap: u32, ptr: u64, len: u64) -> Result<u64, Error> {
    call_ok(Op::ConsoleWrite, cap, &[ptr, len]).map(|c| c.result as u64)
}

/// Op::TimerNow: (nanoseconds since boot, TSC Hz).
pub fn timer_now(cap: u32) -> Result<(u64, u64), Error> {
    call_ok(Op::TimerNow, cap, &[]).map(|c| (c.value0, c.value1))
}

/// Op::TimerSleep for `ns` nanoseconds.
pub fn sleep(cap: u32, ns: u64) -> Result<(), Error> {
    call_ok(Op::TimerSleep, cap, &[ns]).map(drop)
}

/// Op::Spawn: (slot of the process handle, pid).
pub fn spawn(cap: u32, args: &SpawnArgs) -> Result<(u32, u64), Error> {
    let c = call_ok(Op::Spawn, cap, &[args as *const SpawnArgs as u64])?;
    Ok((slot_of(c.result)?, c.value0))
}

/// Op::ProcWait: how the process ended and its status (or vector).
pub fn proc_wait(cap: u32) -> Result<(ExitKind, i64), Error> {
    let c = call_ok(Op::ProcWait, cap, &[])?;
    let kind = ExitKind::from_raw(c.value0).ok_or(Error::Invalid)?;
    Ok((kind, c.value1 as i64))
}

/// Op::ProcKill.
pub fn proc_kill(cap: u32) -> Result<(), Error> {
    call_ok(Op::ProcKill, cap, &[]).map(drop)
}

/// Op::Exit: ends the whole process with `status`.
pub fn exit(status: i64) -> ! {
    let _ = call(sqe(Op::Exit, SELF_SLOT, &[status as u64]));
    // Only if the Exit could not even be submitted (a full SQ and a CQ
    // full of uncollected completions): make room by discarding them.
    crate::exit_bare(status)
}

/// Op::ThreadSpawn: (slot of the thread handle, tid).
pub fn thread_spawn(entry: u64, stack_top: u64, arg: u64, tls: u64) -> Result<(u32, u64), Error> {
    let c = call_ok(Op::ThreadSpawn, SELF_SLOT, &[entry, stack_top, arg, tls])?;
    Ok((slot_of(c.result)?, c.value0))
}

/// Op::ThreadSpawn with ring setup flags (`abi::ring::RING_SETUP_SQPOLL`)
/// and the SQPOLL idle time in ns (0 = default).
pub fn thread_spawn_ring(
    entry: u64,
    stack_top: u64,
    arg: u64,
    tls: u64,
    ring_flags: u64,
    sq_idle_ns: u64,
) -> Result<(u32, u64), Error> {
    let c = call_ok(
        Op::ThreadSpawn,
        SELF_SLOT,
        &[entry, stack_top, arg, tls, ring_flags, sq_idle_ns],
    )?;
    Ok((slot_of(c.result)?, c.value0))
}

/// Op::RingMode: the calling thread's ring becomes SQPOLL (`flags` =
/// `abi::ring::RING_SETUP_SQPOLL`, idle time `sq_idle_ns`, 0 = default) or
/// goes back to `cap_enter` consumption (`flags` = 0).
pub fn ring_mode(flags: u64, sq_idle_ns: u64) -> Result<(), Error> {
    call_ok(Op::RingMode, SELF_SLOT, &[flags, sq_idle_ns]).map(drop)
}

/// Ring counters of a thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// System calls it made.
    pub syscalls: u64,
    /// Its submissions the SQPOLL poller consumed.
    pub polled: u64,
    /// Times its sleeping poller was woken.
    pub wakeups: u64,
}

/// Op::RingStats on `cap` (`SELF_SLOT` for the calling thread, or a
/// thread handle).
pub fn ring_stats(cap: u32) -> Result<RingStats, Error> {
    let c = call_ok(Op::RingStats, cap, &[])?;
    Ok(RingStats {
        syscalls: c.result as u64,
        polled: c.value0,
        wakeups: c.value1,
    })
}

/// Op::ThreadJoin: the thread's exit value.
pub fn thread_join(cap: u32) -> Result<i64, Error> {
    call_ok(Op::ThreadJoin, cap, &[]).map(|c| c.value1 as i64)
}

/// Op::ThreadExit: ends the calling thread with `value`.
pub fn thread_exit(value: i64) -> ! {
    let _ = call(sqe(Op::ThreadExit, SELF_SLOT, &[value as u64]));
    crate::arch::die()
}

/// Op::Park: sleeps while `word` holds `expected`, at most `timeout_ns`.
pub fn park(word: &AtomicU32, expected: u32, timeout_ns: u64) -> Result<ParkResult, Error> {
    let addr = word as *const AtomicU32 as u64;
    let c = call_ok(
        Op::Park,
        SELF_SLOT,
        &[addr, u64::from(expected), timeout_ns],
    )?;
    ParkResult::from_raw(c.value0).ok_or(Error::Invalid)
}

/// Op::Unpark: wakes up to `count` threads parked on `word`; returns how
/// many were woken.
pub fn unpark(word: &AtomicU32, count: u64) -> Result<u64, Error> {
    let addr = word as *const AtomicU32 as u64;
    call_ok(Op::Unpark, SELF_SLOT, &[addr, count]).map(|c| c.result as u64)
}

/// Op::StatsBusy: fills `busy` with per-CPU user-busy cycles; returns
/// (number of CPUs, TSC Hz).
pub fn stats_busy(cap: u32, busy: &mut [u64]) -> Result<(usize, u64), Error> {
    let c = call_ok(
        Op::StatsBusy,
        cap,
        &[busy.as_mut_ptr() as u64, busy.len() as u64],
    )?;
    Ok((c.result as usize, c.value0))
}

/// Op::LockStat on the stats capability: `cmd` = [`abi::op::LOCKSTAT_RESET`]
/// zeroes the kernel's lock counters, [`abi::op::LOCKSTAT_PRINT`] prints
/// them as `LOCKSTAT ... section=timed run=<run>` lines. `BadOpcode` from
/// a kernel built without lock statistics.
pub fn lockstat(cap: u32, cmd: u64, run: u64) -> Result<(), Error> {
    call_ok(Op::LockStat, cap, &[cmd, run]).map(drop)
}

/// Op::CpuRecord: (mask of CPUs run on, user-busy cycles).
pub fn cpu_record(cap: u32) -> Result<(u64, u64), Error> {
    call_ok(Op::CpuRecord, cap, &[]).map(|c| (c.value0, c.value1))
}

/// Op::CapClose.
pub fn cap_close(cap: u32) -> Result<(), Error> {
    call_ok(Op::CapClose, cap, &[]).map(drop)
}

/// Op::SysInfo: (online CPUs, TSC Hz).
pub fn sys_info() -> Result<(u64, u64), Error> {
    call_ok(Op::SysInfo, SELF_SLOT, &[]).map(|c| (c.value0, c.value1))
}

/// Op::MemMap: `bytes` (rounded up to pages) of zeroed memory; its address.
pub fn mem_map(bytes: u64) -> Result<u64, Error> {
    call_ok(Op::MemMap, SELF_SLOT, &[bytes]).map(|c| c.value0)
}

/// Op::MemUnmap.
pub fn mem_unmap(addr: u64, bytes: u64) -> Result<(), Error> {
    call_ok(Op::MemUnmap, SELF_SLOT, &[addr, bytes]).map(drop)
}

/// Op::MemStats: (free physical frames, own pid).
pub fn mem_stats() -> Result<(u64, u64), Error> {
    call_ok(Op::MemStats, SELF_SLOT, &[]).map(|c| (c.value0, c.value1))
}

/// Op::KernelMem: (kernel-memory bytes charged to the caller's account,
/// the account's budget in bytes).
pub fn kernel_mem() -> Result<(u64, u64), Error> {
    call_ok(Op::KernelMem, SELF_SLOT, &[]).map(|c| (c.value0, c.value1))
}

/// Op::SetTls: sets the calling thread's FS base. rt relies on FS pointing
/// at its TLS block; only use this with a block laid out as [`Tls`].
pub fn set_tls(addr: u64) -> Result<(), Error> {
    call_ok(Op::SetTls, SELF_SLOT, &[addr]).map(drop)
}

/// Op::MemObjCreate: (slot of a handle with every right, size in bytes).
pub fn memobj_create(pages: u64) -> Result<(u32, u64), Error> {
    let c = call_ok(Op::MemObjCreate, SELF_SLOT, &[pages])?;
    Ok((slot_of(c.result)?, c.value0))
}

/// Op::MemObjMap with raw [`abi::memobj::MapFlags`] bits and a fixed
/// address (used with `MapFlags::FIXED`): the mapping's address.
pub fn memobj_map(cap: u32, flags: u64, addr: u64) -> Result<u64, Error> {
    call_ok(Op::MemObjMap, cap, &[flags, addr]).map(|c| c.value0)
}

/// Op::MemObjUnmap of the mapping that starts at `addr`.
pub fn memobj_unmap(addr: u64) -> Result<(), Error> {
    call_ok(Op::MemObjUnmap, SELF_SLOT, &[addr]).map(drop)
}

/// Op::CapRestrict: a new handle with `rights` (a subset); its slot.
pub fn cap_restrict(cap: u32, rights: u64) -> Result<u32, Error> {
    slot_of(call_ok(Op::CapRestrict, cap, &[rights])?.result)
}

/// Op::MemObjInfo: (size in bytes, rights bits).
pub fn memobj_info(cap: u32) -> Result<(u64, u64), Error> {
    call_ok(Op::MemObjInfo, cap, &[]).map(|c| (c.value0, c.value1))
}

fn slot_of(result: i64) -> Result<u32, Error> {
    u32::try_from(result).map_err(|_| Error::Invalid)
}
