//! Child processes: spawn a program from the initrd, wait, kill.

use crate::sys;
use abi::error::Error;
use abi::op::{ExitKind, SpawnArgs, UserStr, SPAWN_MAX_ARGS};

/// A spawned process's handle (a capability slot).
#[derive(Debug)]
pub struct Child {
    slot: u32,
    pid: u64,
}

fn user_str(s: &str) -> UserStr {
    UserStr {
        ptr: s.as_ptr() as u64,
        len: s.len() as u64,
    }
}

/// Starts program `name` with `args`, passing the caller's capability
/// slots `caps` (they become the child's slots 1, 2, ... in order), using
/// the spawner capability in slot `spawner`.
pub fn spawn(spawner: u32, name: &str, args: &[&str], caps: &[u32]) -> Result<Child, Error> {
    if args.len() > SPAWN_MAX_ARGS as usize {
        return Err(Error::Invalid);
    }
    let mut argv = [UserStr::default(); SPAWN_MAX_ARGS as usize];
    for (dst, a) in argv.iter_mut().zip(args) {
        *dst = user_str(a);
    }
    let block = SpawnArgs {
        name: user_str(name),
        argv: argv.as_ptr() as u64,
        argc: args.len() as u64,
        caps: caps.as_ptr() as u64,
        ncaps: caps.len() as u64,
    };
    let (slot, pid) = sys::spawn(spawner, &block)?;
    Ok(Child { slot, pid })
}

impl Child {
    /// The handle's slot.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The child's pid.
    pub fn pid(&self) -> u64 {
        self.pid
    }

    /// Waits for the child to end: how, and its status (or fault vector).
    pub fn wait(&self) -> Result<(ExitKind, i64), Error> {
        sys::proc_wait(self.slot)
    }

    /// Ends the child.
    pub fn kill(&self) -> Result<(), Error> {
        sys::proc_kill(self.slot)
    }

    /// (mask of CPUs its threads ran on, their user-busy cycles).
    pub fn cpu_record(&self) -> Result<(u64, u64), Error> {
        sys::cpu_record(self.slot)
    }

    /// Releases the handle.
    pub fn close(self) -> Result<(), Error> {
        sys::cap_close(self.slot)
    }
}
