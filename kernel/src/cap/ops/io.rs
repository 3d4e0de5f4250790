//! Console, timer, stats and system information operations.

use alloc::sync::Arc;
use alloc::vec::Vec;

use abi::error::Error;
use abi::op::CONSOLE_WRITE_MAX;
use abi::ring::{Cqe, Sqe};

use super::{done, Outcome};
use crate::mm::user;
use crate::sched::thread::{Thread, ThreadRef};
use crate::sched::timer::{self, TimerEvent};

/// ConsoleWrite(ptr, len): copies the bytes in and writes them as one unit.
pub fn console_write(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (ptr, len) = (sqe.args[0], sqe.args[1]);
    if len > CONSOLE_WRITE_MAX {
        return Err(Error::Invalid);
    }
    let mut buf = alloc::vec![0u8; len as usize];
    user::copy_from_user(&t.process.space, ptr, &mut buf)?;
    crate::console::write_bytes(&buf);
    Ok(done(sqe, len as i64, 0, 0))
}

/// TimerNow: ns since boot and the TSC rate.
pub fn timer_now(sqe: &Sqe) -> Result<Outcome, Error> {
    Ok(done(sqe, 0, crate::time::now_ns(), crate::time::tsc_hz()))
}

/// TimerSleep(ns): completes after the delay. The sleep's timer is
/// recorded in the thread's sleep set (under its lock), so the thread's
/// death cancels it; a sleep of `u64::MAX` ns holds nothing after that.
pub fn timer_sleep(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let deadline = crate::arch::rdtsc().saturating_add(crate::time::ns_to_tsc(sqe.args[0]));
    let mut ti = t.inner.lock();
    let id = ti.next_sleep_id;
    ti.next_sleep_id += 1;
    let h = timer::add(
        deadline,
        TimerEvent::Sleep {
            thread: t.tref,
            id,
            user_data: sqe.user_data,
        },
    );
    ti.sleeps.insert(id, h);
    Ok(Outcome::Later)
}

/// A sleep's timer fired: complete it if the thread still waits for it.
pub fn sleep_fired(thread: ThreadRef, id: u64, user_data: u64) {
    crate::cap::ring::post_if(
        thread,
        Cqe {
            user_data,
            ..Default::default()
        },
        |ti| ti.sleeps.remove(&id).is_some(),
    );
}

/// StatsBusy(buf, n): each online CPU's user-busy cycles, in CPU order
/// (entry i is the i-th online CPU: ids may have a hole, the list has none).
pub fn stats_busy(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let online = crate::smp::online();
    let cpus = online.len();
    let n = usize::try_from(sqe.args[1]).unwrap_or(usize::MAX).min(cpus);
    let mut bytes = Vec::with_capacity(n * 8);
    for cpu in online.iter().take(n) {
        let c = crate::percpu::stats(cpu)
            .busy_cycles
            .load(core::sync::atomic::Ordering::Relaxed);
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    user::copy_to_user(&t.process.space, sqe.args[0], &bytes)?;
    Ok(done(sqe, cpus as i64, crate::time::tsc_hz(), 0))
}

/// LockStat(cmd, run): zero the lock counters, or print them as
/// timed-section LOCKSTAT lines tagged with `run` (one line per lock
/// class: bounded). `BadOpcode` without lock statistics built in.
pub fn lock_stat(sqe: &Sqe) -> Result<Outcome, Error> {
    let cmd = sqe.args[0];
    if cmd != abi::op::LOCKSTAT_RESET && cmd != abi::op::LOCKSTAT_PRINT {
        return Err(Error::Invalid);
    }
    if !crate::sync::stat::ENABLED {
        return Err(Error::BadOpcode);
    }
    if cmd == abi::op::LOCKSTAT_RESET {
        crate::sync::stat::reset();
    } else {
        crate::sync::stat::print_timed(sqe.args[1]);
    }
    Ok(done(sqe, 0, 0, 0))
}

/// SysInfo: online CPUs and the TSC rate.
pub fn sys_info(sqe: &Sqe) -> Result<Outcome, Error> {
    Ok(done(
        sqe,
        0,
        crate::smp::cpu_count() as u64,
        crate::time::tsc_hz(),
    ))
}

/// MemStats: free frames and the caller's pid.
pub fn mem_stats(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    Ok(done(sqe, 0, crate::mm::frame::free_frames(), t.process.pid))
}

/// KernelMem: bytes charged to the caller's budget account now, and its
/// limit (the account is shared by the caller's whole job).
pub fn kernel_mem(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let a = t.process.account();
    Ok(done(sqe, 0, a.used(), a.limit()))
}
