//! Every limit a manifest must respect (CONTRACTS.md section 2,
//! docs/manifest.md), as named constants.
//!
//! mkimage and the kernel apply them through the one implementation in
//! [`crate::validate`]; the decoder in [`crate::initrd`] also uses the
//! vector limits to refuse an over-long vector before it allocates, so that
//! a hostile initrd ends as `bad initrd`, not as an allocation failure.
//! Each number says why it is what it is.

use crate::op::{SPAWN_MAX_ARGS, SPAWN_MAX_CAPS, SPAWN_MAX_STR};

/// Longest scenario name, in bytes (characters from `[a-z0-9-]`).
pub const NAME_MAX: usize = 48;

/// Longest `description`, in bytes. Free text for people; the kernel never
/// prints it, so the bound only keeps the initrd and its decode small.
pub const DESCRIPTION_MAX: usize = 1024;

/// Largest `timeout_ms`: one day. Longer than any scenario we run (the
/// scaling benchmarks allow ten minutes) and far from any overflow when it
/// is turned into TSC ticks.
pub const TIMEOUT_MS_MAX: u64 = 86_400_000;

/// Most `[[program]]` tables. Init starts them one after another, so this
/// bounds a scenario's length and the manifest's decoded size (each entry
/// is about 100 bytes of kernel heap).
pub const PROGRAMS_MAX: usize = 256;

/// Longest program name, in bytes (characters from `[A-Za-z0-9._-]`).
/// Well inside [`SPAWN_MAX_STR`], so a parent can spawn any image by name.
pub const PROGRAM_NAME_MAX: usize = 64;

/// Most arguments one program receives: what a parent may pass through
/// Spawn ([`SPAWN_MAX_ARGS`]), so the start-up block has one layout limit.
pub const ARGS_MAX: usize = SPAWN_MAX_ARGS as usize;

/// Longest argument, in bytes: the Spawn limit ([`SPAWN_MAX_STR`]).
pub const ARG_MAX: usize = SPAWN_MAX_STR as usize;

/// Most capabilities one program is granted: the Spawn limit
/// ([`SPAWN_MAX_CAPS`]). Without duplicates only the grantable kinds fit
/// anyway; this bounds what the decoder accepts.
pub const CAPS_MAX: usize = SPAWN_MAX_CAPS as usize;

/// Most entries the decoder accepts in `selftests` (room for future
/// self-tests); the rules then refuse duplicates.
pub const SELFTESTS_MAX: usize = 16;

/// Most program images in an initrd: every `[[program]]` name plus the
/// workload program.
pub const IMAGES_MAX: usize = PROGRAMS_MAX + 1;

/// Largest integer `workers` value.
pub const WORKERS_MAX: u32 = 256;

/// Largest `repeat` value.
pub const REPEAT_MAX: u32 = 100;

/// Largest workload `hi` (exclusive bound): 2^40. The workload sieves with
/// base primes below 2^20, which covers every composite below 2^40
/// (`workload::MAX_HI`); above it every worker fails.
pub const HI_MAX: u64 = 1 << 40;

/// Default kernel-memory budget of a program, in KiB (32 MiB), when its
/// `kernel_kib` is absent.
pub const KERNEL_KIB_DEFAULT: u32 = 32768;

/// Smallest `kernel_kib`: 128 KiB, enough for a process's first thread,
/// its rings, page tables and capability table.
pub const KERNEL_KIB_MIN: u32 = 128;

/// Largest `kernel_kib`: 1 GiB, more than the kernel heap; a larger value
/// could only mean "unbounded".
pub const KERNEL_KIB_MAX: u32 = 1_048_576;

/// Largest manifest file mkimage reads, in bytes (1 MiB). Checked before
/// reading, so a huge or endless file is refused without being read; our
/// manifests are a few KiB.
pub const MANIFEST_FILE_MAX: u64 = 1 << 20;

/// Largest memory object, in pages (4 MiB). Its frames are zeroed and
/// mapped eagerly, so this bounds one MemObjCreate's and one MemObjMap's
/// work; every page is also charged to the creator's kernel-memory budget
/// (4 KiB each), which bounds how many objects a program can hold.
pub const MEMOBJ_PAGES_MAX: u64 = 1024;

/// Most memory-object mappings one address space holds at once; a lookup
/// from an address to its mapping is O(log n) in this number.
pub const MEMOBJ_MAPPINGS_MAX: usize = 256;

/// Most rounds per worker of a `kind = "ring"` workload (10^7): at about
/// 30 operations a round that is far longer than any benchmark we run, and
/// it keeps `ops_per_worker` far from overflow.
pub const RING_ROUNDS_MAX: u32 = 10_000_000;

/// Most NOPs plus timers per round: one batch must fit the submission
/// queue (`abi::ring::SQ_ENTRIES`), so a round is one `cap_enter`.
pub const RING_BATCH_MAX: u32 = crate::ring::SQ_ENTRIES;

/// Most park/unpark round trips per round.
pub const RING_PINGPONGS_MAX: u32 = 1024;

/// Default SQPOLL idle time (`sq_idle_ns` 0 means this): 1 ms, as
/// io_uring's default. Long enough that a program submitting in bursts
/// keeps its poller, short enough that an idle ring stops costing poll
/// passes (each one runs in ring 0, about 1 us an instruction under PVM).
pub const SQ_IDLE_NS_DEFAULT: u64 = 1_000_000;

/// Largest `sq_idle_ns`: 1 s. A ring keeps every CPU's poll tick armed
/// while awake; a longer idle time would let one program keep them armed
/// indefinitely without submitting. Larger values are `Invalid`.
pub const SQ_IDLE_NS_MAX: u64 = 1_000_000_000;

/// Most rings in SQPOLL mode at once (kernel-wide). The poll set is a
/// fixed table (no heap), and every poll pass walks it; past this limit
/// enabling SQPOLL fails with `Busy` and the ring stays in its mode.
pub const SQPOLL_RINGS_MAX: usize = 256;
