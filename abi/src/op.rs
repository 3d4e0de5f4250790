//! Operation codes: what a submission asks of the capability in its slot.
//!
//! Each entry lists the capability kind it needs, its arguments
//! (`args[0..]`) and what its completion carries (`result`, `value0`,
//! `value1`). Any operation may also fail with `BadSlot` (empty slot),
//! `Denied` (slot of another kind), `BadAddress` (a pointer outside mapped
//! user memory) or `Invalid` (an argument out of range).

/// Operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Op {
    /// Any slot, even empty: completes at once with result 0. For tests.
    Nop = 0,
    /// console: write bytes `args[0]` (ptr), `args[1]` (len, at most
    /// [`CONSOLE_WRITE_MAX`]). result = bytes written.
    ConsoleWrite = 1,
    /// timer: result 0, value0 = nanoseconds since boot, value1 = TSC Hz.
    TimerNow = 2,
    /// timer: complete after `args[0]` nanoseconds. result 0.
    TimerSleep = 3,
    /// spawner: start a program. `args[0]` = pointer to a [`SpawnArgs`].
    /// result = slot of the new process handle, value0 = pid.
    Spawn = 4,
    /// process: complete when the process has ended. result 0,
    /// value0 = an [`ExitKind`], value1 = exit status (as u64).
    ProcWait = 5,
    /// process: end the process. result 0.
    ProcKill = 6,
    /// self: end the caller's process with status `args[0]` (as i64).
    /// Never completes.
    Exit = 7,
    /// self: start a thread. `args[0]` entry, `args[1]` stack top,
    /// `args[2]` argument (rdi), `args[3]` TLS base (FS base), `args[4]`
    /// ring setup flags ([`crate::ring::RING_SETUP_SQPOLL`]; 0 = plain;
    /// other bits `Invalid`), `args[5]` SQPOLL idle ns (as in
    /// [`Op::RingMode`]). The thread starts with rdi = argument, rsi = its
    /// ring address.
    /// result = slot of the thread handle, value0 = tid.
    ThreadSpawn = 8,
    /// thread: complete when the thread has exited. result 0,
    /// value1 = its exit value.
    ThreadJoin = 9,
    /// self: end the calling thread with value `args[0]`. Never completes.
    /// The last thread's exit ends the process with that value as status.
    ThreadExit = 10,
    /// self: park on the u32 at `args[0]` if it still holds `args[1]`,
    /// for at most `args[2]` ns ([`crate::TIMEOUT_NEVER`] = forever).
    /// result 0, value0 = a [`ParkResult`].
    Park = 11,
    /// self: wake up to `args[1]` threads parked on the word at `args[0]`.
    /// result = number woken.
    Unpark = 12,
    /// stats: copy each CPU's user-busy TSC cycles (u64 each) to the buffer
    /// `args[0]` of `args[1]` entries. result = number of CPUs,
    /// value0 = TSC Hz.
    StatsBusy = 13,
    /// thread or process: value0 = bit mask of the CPUs the thread (or any
    /// thread of the process) has run on, value1 = its user-busy TSC cycles.
    /// result 0.
    CpuRecord = 14,
    /// any non-self slot: release it. result 0.
    CapClose = 15,
    /// self: result 0, value0 = online CPUs, value1 = TSC Hz.
    SysInfo = 16,
    /// self: map `args[0]` bytes (rounded up to pages) of zeroed, writable
    /// memory. result 0, value0 = its address.
    MemMap = 17,
    /// self: unmap `args[1]` bytes at `args[0]` previously given by MemMap.
    /// result 0.
    MemUnmap = 18,
    /// self: value0 = free physical frames, value1 = the caller's pid. result 0.
    MemStats = 19,
    /// self: set the calling thread's FS base (its TLS pointer) to `args[0]`,
    /// which must be a canonical user address. result 0.
    SetTls = 20,
    /// self: result 0, value0 = kernel-memory bytes currently charged to
    /// the caller's budget account (threads, rings, page tables, timers,
    /// queued completions, waiter and park entries, capability slots),
    /// value1 = the account's budget in bytes. A program and every process
    /// it spawns share one account.
    KernelMem = 21,
    /// self: create a memory object of `args[0]` zero-filled pages (1 ..=
    /// [`crate::limits::MEMOBJ_PAGES_MAX`]), charged to the caller's
    /// budget. result = slot of a handle with every right
    /// ([`crate::memobj::MemRights::ALL`]), value0 = its size in bytes.
    MemObjCreate = 22,
    /// memobj: map the whole object into the caller's space. `args[0]` =
    /// [`crate::memobj::MapFlags`] bits, `args[1]` = the address when
    /// `MapFlags::FIXED` is set (page-aligned, inside `OBJ_BASE..OBJ_END`).
    /// Needs READ, and WRITE for a writable mapping (else `Denied`).
    /// result 0, value0 = the address.
    MemObjMap = 23,
    /// self: unmap the object mapping that starts at `args[0]` (shoots
    /// down the CPUs running the process). Threads of the caller parked on
    /// a word in it complete with [`ParkResult::Unmapped`]. result 0.
    MemObjUnmap = 24,
    /// memobj: a new handle to the same object with rights `args[0]`, which
    /// must be a subset of the handle's own (else `Denied`). result = its slot.
    CapRestrict = 25,
    /// memobj: result 0, value0 = the object's size in bytes, value1 = the
    /// handle's rights bits.
    MemObjInfo = 26,
    /// self: set the calling thread's own ring mode. `args[0]` = ring setup
    /// flags ([`crate::ring::RING_SETUP_SQPOLL`] or 0 for `cap_enter`
    /// consumption; other bits `Invalid`), `args[1]` = SQPOLL idle time in
    /// ns (0 = [`crate::limits::SQ_IDLE_NS_DEFAULT`], at most
    /// [`crate::limits::SQ_IDLE_NS_MAX`]). The submissions after this one
    /// are consumed in the new mode. result 0; `Busy` past
    /// [`crate::limits::SQPOLL_RINGS_MAX`] SQPOLL rings.
    RingMode = 27,
    /// self (the calling thread) or thread: ring counters. result = system
    /// calls made, value0 = SQEs the SQPOLL poller consumed, value1 =
    /// poller wakeups (a sleeping ring woken by `cap_enter`).
    RingStats = 28,
    /// stats: lock statistics. `args[0]` = [`LOCKSTAT_RESET`]: zero every
    /// lock counter of every CPU; [`LOCKSTAT_PRINT`]: print the counters
    /// as `LOCKSTAT ... section=timed run=<args[1]>` lines. result 0;
    /// `BadOpcode` when the kernel was built without lock statistics
    /// (feature `lockstat`); `Invalid` for another `args[0]`.
    LockStat = 30,
}

/// [`Op::LockStat`] `args[0]`: zero every lock counter.
pub const LOCKSTAT_RESET: u64 = 0;
/// [`Op::LockStat`] `args[0]`: print the counters as timed-section lines.
pub const LOCKSTAT_PRINT: u64 = 1;

/// Largest single console write.
pub const CONSOLE_WRITE_MAX: u64 = 4096;
/// Most arguments a spawned program may receive.
pub const SPAWN_MAX_ARGS: u64 = 32;
/// Most capabilities a parent may pass to a child.
pub const SPAWN_MAX_CAPS: u64 = 16;
/// Longest program name or argument.
pub const SPAWN_MAX_STR: u64 = 256;

impl Op {
    /// Decodes a raw opcode.
    pub fn from_raw(raw: u32) -> Option<Op> {
        use Op::*;
        const ALL: [Op; 30] = [
            Nop,
            ConsoleWrite,
            TimerNow,
            TimerSleep,
            Spawn,
            ProcWait,
            ProcKill,
            Exit,
            ThreadSpawn,
            ThreadJoin,
            ThreadExit,
            Park,
            Unpark,
            StatsBusy,
            CpuRecord,
            CapClose,
            SysInfo,
            MemMap,
            MemUnmap,
            MemStats,
            SetTls,
            KernelMem,
            MemObjCreate,
            MemObjMap,
            MemObjUnmap,
            CapRestrict,
            MemObjInfo,
            RingMode,
            RingStats,
            LockStat,
        ];
        ALL.into_iter().find(|o| *o as u32 == raw)
    }
}

/// A `(ptr, len)` pair naming a byte string in user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UserStr {
    /// Address of the first byte.
    pub ptr: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The argument block of [`Op::Spawn`], in user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SpawnArgs {
    /// Program name (as in the initrd).
    pub name: UserStr,
    /// Pointer to `argc` [`UserStr`]s.
    pub argv: u64,
    /// Number of arguments.
    pub argc: u64,
    /// Pointer to `ncaps` u32 slots of the caller's table to pass on, in
    /// order. Grantable kinds and memory-object handles with the TRANSFER
    /// right travel; a memory-object handle keeps its rights.
    pub caps: u64,
    /// Number of capabilities.
    pub ncaps: u64,
}

/// How a process ended (value0 of a ProcWait completion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ExitKind {
    /// It called Exit, or its last thread exited; value1 = status.
    Exited = 0,
    /// A thread faulted; value1 = the vector.
    Faulted = 1,
    /// It was killed; value1 = 0.
    Killed = 2,
}

impl ExitKind {
    /// Decodes value0.
    pub fn from_raw(raw: u64) -> Option<ExitKind> {
        [ExitKind::Exited, ExitKind::Faulted, ExitKind::Killed]
            .into_iter()
            .find(|k| *k as u64 == raw)
    }
}

/// How a park ended (value0 of a Park completion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ParkResult {
    /// An unpark woke it.
    Woken = 0,
    /// The deadline passed.
    TimedOut = 1,
    /// The word no longer held the expected value; it never slept.
    ValueChanged = 2,
    /// An error wake: the caller's own mapping of the memory object that
    /// holds the word was unmapped (MemObjUnmap) while it was parked.
    Unmapped = 3,
    /// An error wake: another process that had the word's memory object
    /// mapped ended while the caller was parked (a peer died: check the
    /// shared state before waiting again).
    PeerGone = 4,
}

impl ParkResult {
    /// Decodes value0.
    pub fn from_raw(raw: u64) -> Option<ParkResult> {
        [
            ParkResult::Woken,
            ParkResult::TimedOut,
            ParkResult::ValueChanged,
            ParkResult::Unmapped,
            ParkResult::PeerGone,
        ]
        .into_iter()
        .find(|k| *k as u64 == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip() {
        for raw in 0..=28 {
            assert_eq!(Op::from_raw(raw).map(|o| o as u32), Some(raw));
        }
        assert_eq!(Op::from_raw(27), Some(Op::RingMode));
        assert_eq!(Op::from_raw(28), Some(Op::RingStats));
        assert_eq!(Op::from_raw(29), None);
        assert_eq!(Op::from_raw(30), Some(Op::LockStat));
        assert_eq!(Op::from_raw(31), None);
        assert_eq!(Op::from_raw(u32::MAX), None);
    }

    #[test]
    fn park_results_round_trip() {
        for raw in 0..=4 {
            assert_eq!(ParkResult::from_raw(raw).map(|r| r as u64), Some(raw));
        }
        assert_eq!(ParkResult::from_raw(5), None);
    }
}
