//! Process operations: Spawn, ProcWait, ProcKill, CpuRecord, Exit.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use abi::error::Error;
use abi::op::{ExitKind, SpawnArgs, UserStr, SPAWN_MAX_ARGS, SPAWN_MAX_CAPS, SPAWN_MAX_STR};
use abi::ring::Sqe;

use super::{done, Outcome};
use crate::cap::table::Cap;
use crate::mm::user::{copy_from_user, read_pod};
use crate::proc::exit::{add_waiter, exit_process};
use crate::proc::{ExitStatus, Process, Waiter};
use crate::sched::thread::Thread;

fn read_str(t: &Thread, s: UserStr) -> Result<Vec<u8>, Error> {
    if s.len > SPAWN_MAX_STR {
        return Err(Error::Invalid);
    }
    let mut v = alloc::vec![0u8; s.len as usize];
    copy_from_user(&t.process.space, s.ptr, &mut v)?;
    Ok(v)
}

/// Spawn(&SpawnArgs): a new process with a subset of the caller's caps.
pub fn spawn(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let space = &t.process.space;
    let a: SpawnArgs = read_pod(space, sqe.args[0])?;
    if a.argc > SPAWN_MAX_ARGS || a.ncaps > SPAWN_MAX_CAPS {
        return Err(Error::Invalid);
    }
    let name = read_str(t, a.name)?;
    let mut args = Vec::with_capacity(a.argc as usize);
    for i in 0..a.argc {
        let s: UserStr = read_pod(space, a.argv.wrapping_add(i * 16))?;
        args.push(read_str(t, s)?);
    }
    let mut caps = Vec::with_capacity(a.ncaps as usize);
    {
        for i in 0..a.ncaps {
            let slot: u32 = read_pod(space, a.caps.wrapping_add(i * 4))?;
            let table = t.process.caps.read();
            let c = table.get(slot)?;
            // Only grantable kinds and transferable memory objects travel.
            caps.push(c.transfer()?);
        }
    }
    let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    // The child shares its parent's account and dies with it.
    let account = t.process.account().clone();
    let child = crate::proc::spawn::spawn(&name, &argv, caps, account, Some(&t.process))?;
    let pid = child.pid;
    let keep = Arc::clone(&child);
    match t.process.insert_cap(Cap::Process(child)) {
        Ok(s) => Ok(done(sqe, i64::from(s), pid, 0)),
        Err(_) => {
            // Nobody could wait for or kill it: end it rather than orphan it.
            exit_process(
                &keep,
                ExitStatus {
                    kind: ExitKind::Killed,
                    status: 0,
                },
            );
            Err(Error::NoMemory)
        }
    }
}

/// Names each ProcWait (0 is init's).
static NEXT_WAIT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// ProcWait: completes when the process has ended and is reclaimed.
pub fn wait(t: &Arc<Thread>, sqe: &Sqe, p: &Arc<Process>) -> Result<Outcome, Error> {
    add_waiter(
        p,
        Waiter::Thread {
            thread: t.tref,
            user_data: sqe.user_data,
            token: NEXT_WAIT_TOKEN.fetch_add(1, Ordering::Relaxed),
        },
    );
    Ok(Outcome::Later)
}

/// ProcKill: ends the process.
pub fn kill(sqe: &Sqe, p: &Arc<Process>) -> Result<Outcome, Error> {
    exit_process(
        p,
        ExitStatus {
            kind: ExitKind::Killed,
            status: 0,
        },
    );
    Ok(done(sqe, 0, 0, 0))
}

/// CpuRecord on a process: CPUs its threads ran on, and their busy cycles.
pub fn cpu_record(sqe: &Sqe, p: &Arc<Process>) -> Result<Outcome, Error> {
    Ok(done(
        sqe,
        0,
        p.cpus_ran.load(Ordering::Relaxed),
        p.busy_cycles.load(Ordering::Relaxed),
    ))
}

/// Exit(status): ends the caller's process.
pub fn exit(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    exit_process(
        &t.process,
        ExitStatus {
            kind: ExitKind::Exited,
            status: sqe.args[0] as i64,
        },
    );
    Ok(Outcome::Gone)
}
