//! Operation dispatch: decode the opcode, check the slot's kind, call one
//! function. Each function gets the caller and the copied SQE and returns
//! an [`Outcome`]; no function trusts an argument it has not checked.

mod io;
mod mem;
mod memobj;
mod process;
mod thread;

use alloc::sync::Arc;

use abi::caps::CapKind;
use abi::error::Error;
use abi::op::Op;
use abi::ring::{Cqe, Sqe};

use super::table::Cap;
use crate::sched::thread::Thread;

/// What became of a submission.
pub enum Outcome {
    /// Completed now.
    Now(Cqe),
    /// Will complete later (posted to the thread by reference).
    Later,
    /// The calling thread ends; it never returns to user mode.
    Gone,
    /// Completes without being counted in flight: the thread's own CPU
    /// posts the completion (a SetTls the poller handed over, cap::sqpoll).
    Deferred,
}

/// A completion for `sqe` with `result` and two values.
pub fn done(sqe: &Sqe, result: i64, value0: u64, value1: u64) -> Outcome {
    Outcome::Now(Cqe {
        user_data: sqe.user_data,
        result,
        value0,
        value1,
    })
}

/// A failed completion.
pub fn fail(sqe: &Sqe, e: Error) -> Outcome {
    done(sqe, e.as_result(), 0, 0)
}

/// Runs one submission of thread `t`.
pub fn dispatch(t: &Arc<Thread>, sqe: &Sqe) -> Outcome {
    let Some(op) = Op::from_raw(sqe.opcode) else {
        return fail(sqe, Error::BadOpcode);
    };
    if op == Op::Nop {
        return done(sqe, 0, 0, 0);
    }
    let cap = match t.process.caps.read().get(sqe.cap) {
        Ok(c) => c.clone(),
        Err(e) => return fail(sqe, e),
    };
    let r = match (op, &cap) {
        (Op::ConsoleWrite, Cap::Console) => io::console_write(t, sqe),
        (Op::TimerNow, Cap::Timer) => io::timer_now(sqe),
        (Op::TimerSleep, Cap::Timer) => io::timer_sleep(t, sqe),
        (Op::StatsBusy, Cap::Stats) => io::stats_busy(t, sqe),
        (Op::LockStat, Cap::Stats) => io::lock_stat(sqe),
        (Op::SysInfo, Cap::SelfProcess) => io::sys_info(sqe),
        (Op::MemStats, Cap::SelfProcess) => io::mem_stats(t, sqe),
        (Op::KernelMem, Cap::SelfProcess) => io::kernel_mem(t, sqe),
        (Op::Spawn, Cap::Spawner) => process::spawn(t, sqe),
        (Op::ProcWait, Cap::Process(p)) => process::wait(t, sqe, p),
        (Op::ProcKill, Cap::Process(p)) => process::kill(sqe, p),
        (Op::CpuRecord, Cap::Process(p)) => process::cpu_record(sqe, p),
        (Op::Exit, Cap::SelfProcess) => process::exit(t, sqe),
        (Op::ThreadSpawn, Cap::SelfProcess) => thread::spawn(t, sqe),
        (Op::ThreadJoin, Cap::Thread(r)) => thread::join(t, sqe, *r),
        (Op::ThreadExit, Cap::SelfProcess) => thread::exit(t, sqe),
        (Op::CpuRecord, Cap::Thread(r)) => thread::cpu_record(sqe, *r),
        (Op::SetTls, Cap::SelfProcess) => thread::set_tls(t, sqe),
        (Op::RingMode, Cap::SelfProcess) => super::sqpoll::ring_mode(t, sqe),
        (Op::RingStats, Cap::SelfProcess) => super::sqpoll::stats(sqe, t),
        (Op::RingStats, Cap::Thread(r)) => super::sqpoll::stats_of(sqe, *r),
        (Op::Park, Cap::SelfProcess) => super::park::park(t, sqe),
        (Op::Unpark, Cap::SelfProcess) => super::park::unpark(t, sqe),
        (Op::MemMap, Cap::SelfProcess) => mem::map(t, sqe),
        (Op::MemUnmap, Cap::SelfProcess) => mem::unmap(t, sqe),
        (Op::MemObjCreate, Cap::SelfProcess) => memobj::create(t, sqe),
        (Op::MemObjMap, Cap::MemObject(o, r)) => memobj::map(t, sqe, o, *r),
        (Op::MemObjUnmap, Cap::SelfProcess) => memobj::unmap(t, sqe),
        (Op::CapRestrict, Cap::MemObject(o, r)) => memobj::restrict(t, sqe, o, *r),
        (Op::MemObjInfo, Cap::MemObject(o, r)) => memobj::info(sqe, o, *r),
        (Op::CapClose, c) if c.kind() != CapKind::SelfProcess => close(t, sqe),
        _ => Err(Error::Denied),
    };
    r.unwrap_or_else(|e| fail(sqe, e))
}

/// A TimerSleep's timer fired.
pub fn sleep_fired(thread: crate::sched::thread::ThreadRef, id: u64, user_data: u64) {
    io::sleep_fired(thread, id, user_data);
}

/// A thread handle went away (CapClose or its process ended).
pub fn thread_handle_closed(r: crate::sched::thread::ThreadRef) {
    thread::handle_closed(r);
}

fn close(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let cap = t.process.remove_cap(sqe.cap)?;
    if let Cap::Thread(r) = cap {
        thread::handle_closed(r);
    }
    Ok(done(sqe, 0, 0, 0))
}
