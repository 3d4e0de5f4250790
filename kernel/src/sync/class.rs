//! The kernel's lock classes: one name per kind of lock.
//!
//! A lock's class is a zero-sized type parameter (`IrqMutex<T, RunQueue>`),
//! so naming a lock costs nothing at run time. Lock statistics
//! (`super::stat`, feature `lockstat`) count per class: every run queue
//! counts as `runqueue`, every thread lock as `thread`. The list below is
//! also the list LOCKSTAT prints, in this order; a lock declared without
//! a class counts as `unnamed`. The lock order between them is in
//! docs/architecture/scheduling.md.

/// A kind of kernel lock.
// `NAME` documents the class at its declaration; LOCKSTAT prints `NAMES`.
#[allow(dead_code)]
pub trait LockClass {
    /// Its row in the statistics (position in [`NAMES`]).
    const INDEX: usize;
    /// Its name in `LOCKSTAT name=<name>`.
    const NAME: &'static str;
}

macro_rules! lock_classes {
    ($($(#[$doc:meta])* $ty:ident = $name:literal,)*) => {
        #[allow(dead_code)]
        enum Index { $($ty,)* }
        $(
            $(#[$doc])*
            #[allow(dead_code)]
            pub struct $ty;
            impl LockClass for $ty {
                const INDEX: usize = Index::$ty as usize;
                const NAME: &'static str = $name;
            }
        )*
        /// Every class name, by index.
        #[cfg_attr(not(feature = "lockstat"), allow(dead_code))]
        pub const NAMES: &[&str] = &[$($name,)*];
    };
}

lock_classes! {
    /// A lock declared without a class.
    Unnamed = "unnamed",
    /// The serial console.
    Console = "console",
    /// The init service's state.
    InitState = "init-state",
    /// The global frame allocator (ranges and the freed list).
    FrameGlobal = "frame-global",
    /// A CPU's frame magazine.
    FrameCache = "frame-cache",
    /// The global kernel heap.
    HeapGlobal = "heap-global",
    /// A CPU's heap object caches.
    HeapCache = "heap-cache",
    /// The thread registry's slot allocator (thread create and reap only).
    RegistryAlloc = "registry-alloc",
    /// One thread registry slot (every lookup by ThreadRef).
    RegistrySlot = "registry-slot",
    /// A thread's state.
    Thread = "thread",
    /// A process's threads, exit state and waiters.
    Process = "process",
    /// A process's capability table (readers-writer).
    CapTable = "cap-table",
    /// A park-table bucket (cap/park.rs).
    Park = "park",
    /// A CPU's run queue.
    RunQueue = "runqueue",
    /// A CPU's resident thread.
    CpuCurrent = "cpu-current",
    /// A CPU's loaded address space.
    CpuSpace = "cpu-space",
    /// A CPU's timer heap.
    TimerHeap = "timer-heap",
    /// A CPU's inbox of timers other CPUs cancelled.
    TimerInbox = "timer-inbox",
    /// An address space (page tables, regions).
    AddrSpace = "addr-space",
    /// A CPU's cross-CPU request slot.
    SmpWork = "smp-work",
    /// The SQPOLL poll set (cap/sqpoll.rs).
    SqpollSet = "sqpoll-set",
    /// The RINGSTAT table of processes that used SQPOLL.
    RingStat = "ringstat",
}

/// How many classes there are.
#[cfg_attr(not(feature = "lockstat"), allow(dead_code))]
pub const COUNT: usize = NAMES.len();
