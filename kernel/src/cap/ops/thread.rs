//! Thread operations: ThreadSpawn, ThreadJoin, ThreadExit, CpuRecord, SetTls.

use alloc::sync::Arc;
use core::sync::atomic::Ordering;

use abi::error::Error;
use abi::layout::USER_END;
use abi::ring::Sqe;

use super::{done, Outcome};
use crate::arch::TrapFrame;
use crate::cap::table::Cap;
use crate::sched::thread::{self, Joiner, Thread, ThreadRef};

fn user_addr(v: u64) -> Result<u64, Error> {
    if v < USER_END {
        Ok(v)
    } else {
        Err(Error::BadAddress)
    }
}

/// ThreadSpawn(entry, stack_top, arg, tls): a sibling with its own ring.
pub fn spawn(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let entry = user_addr(sqe.args[0])?;
    let stack = user_addr(sqe.args[1])?;
    let tls = user_addr(sqe.args[3])?;
    let (ring_flags, sq_idle_ns) = (sqe.args[4], sqe.args[5]);
    crate::cap::sqpoll::check_setup(ring_flags, sq_idle_ns)?;
    let p = &t.process;
    if p.inner.lock().exiting.is_some() {
        return Err(Error::Stale);
    }
    let ring_addr = crate::proc::spawn::next_ring_addr(p)?;
    let mut frame = TrapFrame::new_user(entry, stack);
    frame.rdi = sqe.args[2];
    frame.rsi = ring_addr;
    let child = crate::proc::spawn::new_thread(p, ring_addr, frame, tls)?;
    if ring_flags != 0 {
        let set = {
            let mut ci = child.inner.lock();
            crate::cap::sqpoll::set_mode(&child, &mut ci, ring_flags, sq_idle_ns)
        };
        if let Err(e) = set {
            child.inner.lock().kill = true;
            crate::proc::spawn::start_thread(child);
            return Err(e);
        }
    }
    child.inner.lock().handle_open = true;
    let Ok(slot) = p.insert_cap(Cap::Thread(child.tref)) else {
        child.inner.lock().handle_open = false;
        child.inner.lock().kill = true;
        crate::proc::spawn::start_thread(child);
        return Err(Error::NoMemory);
    };
    let tid = child.tid;
    crate::proc::spawn::start_thread(child);
    Ok(done(sqe, i64::from(slot), tid, 0))
}

/// ThreadJoin: completes with the exit value once the thread ended. A
/// thread cannot join itself (it would wait forever): Invalid.
pub fn join(t: &Arc<Thread>, sqe: &Sqe, r: ThreadRef) -> Result<Outcome, Error> {
    if r == t.tref {
        return Err(Error::Invalid);
    }
    let target = thread::lookup(r).ok_or(Error::Stale)?;
    let mut ti = target.inner.lock();
    if ti.joined {
        return Err(Error::Stale);
    }
    if ti.reaped {
        // Already exited: the handle keeps it registered until closed.
        let v = ti.exit_value.unwrap_or(0);
        ti.joined = true;
        return Ok(done(sqe, 0, 0, v as u64));
    }
    if ti.joiner.is_some() {
        return Err(Error::Busy);
    }
    ti.joiner = Some(Joiner {
        thread: t.tref,
        user_data: sqe.user_data,
    });
    Ok(Outcome::Later)
}

/// ThreadExit(value): ends the calling thread.
pub fn exit(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let mut ti = t.inner.lock();
    ti.exit_value = Some(sqe.args[0] as i64);
    ti.kill = true;
    Ok(Outcome::Gone)
}

/// CpuRecord on a thread: CPUs it ran on, busy cycles.
pub fn cpu_record(sqe: &Sqe, r: ThreadRef) -> Result<Outcome, Error> {
    let target = thread::lookup(r).ok_or(Error::Stale)?;
    Ok(done(
        sqe,
        0,
        target.cpus_ran.load(Ordering::Relaxed),
        target.busy_cycles.load(Ordering::Relaxed),
    ))
}

/// SetTls(base): the caller's FS base, effective at once. From an
/// SQPOLL poller on a CPU where another thread runs, the base goes to the
/// thread's saved context or its own CPU (cap::sqpoll::set_tls_remote).
pub fn set_tls(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let base = user_addr(sqe.args[0])?;
    let here = crate::sched::current().is_some_and(|c| Arc::ptr_eq(&c, t));
    if !here {
        return crate::cap::sqpoll::set_tls_remote(t, base, sqe);
    }
    crate::arch::set_fs_base(base);
    Ok(done(sqe, 0, 0, 0))
}

/// A thread handle was closed: an exited thread nobody can join any more
/// leaves the registry.
pub fn handle_closed(r: ThreadRef) {
    if let Some(target) = thread::lookup(r) {
        let mut ti = target.inner.lock();
        ti.handle_open = false;
        if ti.reaped {
            drop(ti);
            thread::unregister(r);
        }
    }
}
