//! Memory-object operations: MemObjCreate, MemObjMap, MemObjUnmap,
//! CapRestrict, MemObjInfo (abi::op, docs/architecture/capabilities.md).
//!
//! Rights are checked here, on every operation, by the pure rules in
//! abi::memobj; the object itself (mm/memobj.rs) and the mappings
//! (mm/addr_space.rs) know nothing of rights.

use alloc::sync::Arc;

use abi::error::Error;
use abi::memobj::{MapFlags, MemRights};
use abi::ring::Sqe;

use super::{done, Outcome};
use crate::cap::table::Cap;
use crate::mm::addr_space::SpaceError;
use crate::mm::memobj::MemObject;
use crate::sched::thread::Thread;

/// MemObjCreate(pages): a new object and a handle with every right.
pub fn create(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let obj = MemObject::new(sqe.args[0], t.process.account())?;
    let len = obj.len_bytes();
    let slot = t.process.insert_cap(Cap::MemObject(obj, MemRights::ALL))?;
    Ok(done(sqe, i64::from(slot), len, 0))
}

/// MemObjMap(flags, fixed address): maps the whole object.
pub fn map(
    t: &Arc<Thread>,
    sqe: &Sqe,
    obj: &Arc<MemObject>,
    rights: MemRights,
) -> Result<Outcome, Error> {
    let flags = MapFlags::from_bits(sqe.args[0])?;
    rights.check_map(flags)?;
    let fixed = flags.fixed.then_some(sqe.args[1]);
    let (addr, _) = t
        .process
        .space
        .map_object(obj, flags.write, fixed)
        .map_err(|e| match e {
            SpaceError::Overlap => Error::Invalid,
            e => Error::from(e),
        })?;
    Ok(done(sqe, 0, addr, 0))
}

/// MemObjUnmap(address): unmaps the mapping that starts there, then wakes
/// the caller's threads parked through it with `Unmapped`.
pub fn unmap(t: &Arc<Thread>, sqe: &Sqe) -> Result<Outcome, Error> {
    let (obj, map_id) = t.process.space.unmap_object(sqe.args[0])?;
    crate::cap::park::mapping_gone(obj.id(), map_id);
    drop(obj);
    Ok(done(sqe, 0, 0, 0))
}

/// CapRestrict(rights): a new handle to the same object with fewer rights.
pub fn restrict(
    t: &Arc<Thread>,
    sqe: &Sqe,
    obj: &Arc<MemObject>,
    rights: MemRights,
) -> Result<Outcome, Error> {
    let new = rights.restrict(sqe.args[0])?;
    let slot = t.process.insert_cap(Cap::MemObject(obj.clone(), new))?;
    Ok(done(sqe, i64::from(slot), 0, 0))
}

/// MemObjInfo: size in bytes and the handle's rights.
pub fn info(sqe: &Sqe, obj: &Arc<MemObject>, rights: MemRights) -> Result<Outcome, Error> {
    Ok(done(sqe, 0, obj.len_bytes(), rights.bits()))
}
