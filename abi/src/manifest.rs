//! The validated manifest, as carried in the initrd.
//!
//! mkimage parses and checks the TOML (CONTRACTS.md section 2) and stores
//! this form; the kernel's init service runs it. Strings borrow from the
//! initrd so the kernel copies nothing. The rules live in
//! [`crate::validate`], the limits in [`crate::limits`]; decoding already
//! refuses a vector longer than its limit, before allocating it.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::caps::CapKind;
pub use crate::kernel_modes::{ApicMode, KernelConfig, TimerMode};
use crate::limits::{ARGS_MAX, CAPS_MAX, PROGRAMS_MAX, SELFTESTS_MAX};
pub use crate::limits::{NAME_MAX, REPEAT_MAX, WORKERS_MAX};

/// Schema version of the manifest format.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest<'a> {
    /// `[scenario]`.
    #[serde(borrow)]
    pub scenario: Scenario<'a>,
    /// `[[program]]`, in order.
    #[serde(borrow, deserialize_with = "bounded::vec::<_, _, PROGRAMS_MAX>")]
    pub programs: Vec<ProgramSpec<'a>>,
    /// `[workload]`, if any.
    pub workload: Option<Workload>,
    /// `[kernel]` (all `auto` when absent).
    pub kernel: KernelConfig,
}

/// `[scenario]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario<'a> {
    /// `[a-z0-9-]`, 1..=48 chars.
    pub name: &'a str,
    /// Free text.
    pub description: Option<&'a str>,
    /// Guest-side watchdog; the scenario FAILs when it fires.
    pub timeout_ms: Option<u64>,
    /// Kernel self-tests init runs before the programs (`selftests = [..]`).
    #[serde(deserialize_with = "bounded::vec::<_, _, SELFTESTS_MAX>")]
    pub selftests: Vec<SelfTest>,
}

/// A kernel self-test a manifest can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelfTest {
    /// `smp`: every CPU online, ticks, IPI ping-pong, TLB shootdown, stop/park.
    Smp,
}

impl SelfTest {
    /// Every self-test, in the order init runs them.
    pub const ALL: &'static [SelfTest] = &[SelfTest::Smp];

    /// The manifest word.
    pub const fn name(self) -> &'static str {
        match self {
            SelfTest::Smp => "smp",
        }
    }

    /// Parses a manifest word.
    pub fn from_name(word: &str) -> Option<SelfTest> {
        Self::ALL.iter().copied().find(|t| t.name() == word)
    }
}

/// One `[[program]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramSpec<'a> {
    /// Name of a program image in the initrd.
    pub name: &'a str,
    /// Arguments.
    #[serde(borrow, deserialize_with = "bounded::vec::<_, _, ARGS_MAX>")]
    pub args: Vec<&'a str>,
    /// Capabilities granted, in slot order from slot 1.
    #[serde(deserialize_with = "bounded::vec::<_, _, CAPS_MAX>")]
    pub caps: Vec<CapKind>,
    /// What counts as success.
    pub expect: Expect,
    /// This program's kernel-memory budget in KiB, shared with the
    /// children it spawns; `None` means
    /// [`crate::limits::KERNEL_KIB_DEFAULT`].
    pub kernel_kib: Option<u32>,
}

/// A program's expected end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// `exit:N`.
    Exit(i64),
    /// `fault`.
    Fault,
}

impl Expect {
    /// Parses `exit:N` or `fault`.
    pub fn parse(s: &str) -> Option<Expect> {
        if s == "fault" {
            return Some(Expect::Fault);
        }
        let n = s.strip_prefix("exit:")?;
        if n.is_empty() || n.starts_with('+') {
            return None;
        }
        n.parse().ok().map(Expect::Exit)
    }
}

/// `[workload]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// Primes, or ring (then `ring` holds the mix).
    pub kind: WorkloadKind,
    /// Count primes in `[lo, hi)`.
    pub lo: u64,
    /// Exclusive upper bound, `> lo`.
    pub hi: u64,
    /// The verified answer.
    pub expected: u64,
    /// Worker count.
    pub workers: Workers,
    /// Processes or threads.
    pub mode: Mode,
    /// Timed runs in one boot, 1..=100.
    pub repeat: u32,
    /// Diagnostic: workers hold one shared lock while they count.
    pub serialize: bool,
    /// `kind = "ring"`: the operation mix (then `lo`, `hi` and `expected`
    /// are 0 and unused); `None` for primes.
    pub ring: Option<RingMix>,
}

/// The operation mix of a `kind = "ring"` workload: what each worker does
/// per round (docs/manifest.md). Every operation completes exactly once and
/// is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMix {
    /// Rounds per worker, 1..=[`crate::limits::RING_ROUNDS_MAX`].
    pub rounds: u32,
    /// NOPs per round, submitted together with the timers as one batch.
    pub nops: u32,
    /// Zero-length TimerSleeps per round, in the same batch.
    pub timers: u32,
    /// Park/unpark round trips per round between the worker and its
    /// partner thread (each is 4 operations: an unpark and a park on each side).
    pub pingpongs: u32,
}

impl RingMix {
    /// Operations one worker (with its partner) completes in a timed run
    /// (saturating: within the limits it is far below `u64::MAX`).
    pub const fn ops_per_worker(&self) -> u64 {
        let per_round = self.nops as u64 + self.timers as u64 + 4 * self.pingpongs as u64;
        (self.rounds as u64).saturating_mul(per_round)
    }
}

/// Workload kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// Prime counting.
    Primes,
    /// Kernel-path operations: NOP batches, zero-length timers, park/unpark
    /// ping-pong ([`RingMix`]).
    Ring,
}

impl WorkloadKind {
    /// The manifest word.
    pub const fn name(self) -> &'static str {
        match self {
            WorkloadKind::Primes => "primes",
            WorkloadKind::Ring => "ring",
        }
    }

    /// The program the init service runs for this kind.
    pub const fn program(self) -> &'static str {
        match self {
            WorkloadKind::Primes => WORKLOAD_PROGRAM,
            WorkloadKind::Ring => RING_PROGRAM,
        }
    }
}

/// `workers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workers {
    /// A fixed count, 1..=256.
    Count(u32),
    /// One per online CPU.
    Cpus,
}

impl Workers {
    /// Resolves against the number of online CPUs.
    pub fn resolve(self, cpus: u32) -> u32 {
        match self {
            Workers::Count(n) => n,
            Workers::Cpus => cpus.max(1),
        }
    }
}

/// `mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Independent worker processes.
    Process,
    /// Sibling threads of one process.
    Thread,
}

impl Mode {
    /// The manifest word.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Process => "process",
            Mode::Thread => "thread",
        }
    }
}

/// Whether `name` is a valid scenario name ([`crate::validate::scenario_name`]).
pub fn valid_scenario_name(name: &str) -> bool {
    crate::validate::scenario_name(name).is_ok()
}

pub(crate) mod bounded {
    //! Decoding a vector with a length limit: a declared length above the
    //! limit is refused before anything is allocated (postcard declares
    //! every length up front), and a sequence that does not declare one is
    //! cut off at the limit.
    use alloc::vec::Vec;
    use core::fmt;
    use core::marker::PhantomData;
    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    struct Bounded<T, const N: usize>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Bounded<T, N> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a sequence of at most {N} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let declared = seq.size_hint().unwrap_or(0);
            if declared > N {
                return Err(A::Error::invalid_length(declared, &self));
            }
            let mut out = Vec::with_capacity(declared);
            while let Some(item) = seq.next_element()? {
                if out.len() == N {
                    return Err(A::Error::invalid_length(N + 1, &self));
                }
                out.push(item);
            }
            Ok(out)
        }
    }

    /// A `Vec<T>` of at most `N` elements.
    pub fn vec<'de, D, T, const N: usize>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        d.deserialize_seq(Bounded::<T, N>(PhantomData))
    }
}

/// The program the init service runs for a `[workload]` of kind primes.
pub const WORKLOAD_PROGRAM: &str = "primes";

/// The program the init service runs for a `[workload]` of kind ring.
pub const RING_PROGRAM: &str = "ringbench";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expect_parse() {
        assert_eq!(Expect::parse("exit:0"), Some(Expect::Exit(0)));
        assert_eq!(Expect::parse("exit:-3"), Some(Expect::Exit(-3)));
        assert_eq!(Expect::parse("fault"), Some(Expect::Fault));
        assert_eq!(Expect::parse("exit:"), None);
        assert_eq!(Expect::parse("exit:+1"), None);
        assert_eq!(Expect::parse("exit"), None);
        assert_eq!(Expect::parse("crash"), None);
    }

    #[test]
    fn selftest_names() {
        assert_eq!(SelfTest::from_name("smp"), Some(SelfTest::Smp));
        assert_eq!(SelfTest::from_name("SMP"), None);
        for t in SelfTest::ALL {
            assert_eq!(SelfTest::from_name(t.name()), Some(*t));
        }
    }

    #[test]
    fn ring_ops_per_worker() {
        let m = RingMix {
            rounds: 10,
            nops: 16,
            timers: 4,
            pingpongs: 2,
        };
        assert_eq!(m.ops_per_worker(), 10 * (16 + 4 + 8));
        let big = RingMix {
            rounds: u32::MAX,
            nops: u32::MAX,
            timers: u32::MAX,
            pingpongs: u32::MAX,
        };
        assert!(big.ops_per_worker() > u64::from(u32::MAX));
        assert_eq!(WorkloadKind::Ring.program(), "ringbench");
        assert_eq!(WorkloadKind::Primes.program(), WORKLOAD_PROGRAM);
    }

    #[test]
    fn names() {
        assert!(valid_scenario_name("smp-process-scale"));
        assert!(!valid_scenario_name(""));
        assert!(!valid_scenario_name("Upper"));
        assert!(!valid_scenario_name("a_b"));
        assert!(!valid_scenario_name(&"a".repeat(49)));
    }
}
