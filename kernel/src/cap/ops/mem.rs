//! Anonymous memory: MemMap and MemUnmap.

use alloc::sync::Arc;

use abi::error::Error;
use abi::ring::Sqe;

use super::{done, Outcome};
use crate::sched::thread::Thread;

/// Largest single MemMap.
const MEM_MAP_MAX: u64 = 1 << 30;

/// MemMap(len): demand-zero read-write pages.
pub fn map(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let len = sqe.args[0];
    if len == 0 || len > MEM_MAP_MAX {
        return Err(Error::Invalid);
    }
    let addr = t.process.space.alloc_anon(len)?;
    Ok(done(sqe, 0, addr, 0))
}

/// MemUnmap(addr, len): gives a MemMap area back (shoots down the CPUs
/// running this process).
pub fn unmap(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    t.process.space.free_anon(sqe.args[0], sqe.args[1])?;
    Ok(done(sqe, 0, 0, 0))
}
