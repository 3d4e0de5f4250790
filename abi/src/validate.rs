//! The manifest rules: the one implementation mkimage and the kernel share.
//!
//! mkimage calls the per-value functions as it walks the TOML, so that it
//! can report every problem at its `path:line:col`; the kernel calls
//! [`payload`] on the decoded initrd after the checksum matched and before
//! anything runs, and refuses the initrd (`PANIC bad initrd: <rule>`) on
//! the first violation. The limits themselves are in [`crate::limits`].
//!
//! Messages never contain a string taken from the manifest: a rule names
//! the key and the limit, and the caller adds the offending value (mkimage
//! from its source text, escaped; the kernel not at all). Every check is
//! linear in the size of what it checks.

use core::fmt;

use crate::caps::CapKind;
use crate::initrd::Payload;
use crate::limits::{
    ARGS_MAX, ARG_MAX, CAPS_MAX, DESCRIPTION_MAX, HI_MAX, IMAGES_MAX, KERNEL_KIB_MAX,
    KERNEL_KIB_MIN, NAME_MAX, PROGRAMS_MAX, PROGRAM_NAME_MAX, REPEAT_MAX, RING_BATCH_MAX,
    RING_PINGPONGS_MAX, RING_ROUNDS_MAX, SELFTESTS_MAX, TIMEOUT_MS_MAX, WORKERS_MAX,
};
use crate::manifest::{
    Manifest, Mode, ProgramSpec, RingMix, SelfTest, Workers, Workload, WorkloadKind,
};

/// A rule a manifest (or an initrd's image list) broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The scenario name is not 1..=[`NAME_MAX`] characters from `[a-z0-9-]`.
    ScenarioName,
    /// `description` is longer than [`DESCRIPTION_MAX`] bytes.
    DescriptionTooLong,
    /// `timeout_ms` is not in 1..=[`TIMEOUT_MS_MAX`].
    TimeoutMs,
    /// More than [`SELFTESTS_MAX`] self-tests.
    TooManySelfTests,
    /// A self-test listed twice.
    DuplicateSelfTest(SelfTest),
    /// More than [`PROGRAMS_MAX`] programs.
    TooManyPrograms,
    /// A program name is not 1..=[`PROGRAM_NAME_MAX`] characters from
    /// `[A-Za-z0-9._-]`, or is `.` or `..`.
    ProgramName,
    /// More than [`ARGS_MAX`] arguments.
    TooManyArgs,
    /// An argument longer than [`ARG_MAX`] bytes.
    ArgTooLong,
    /// More than [`CAPS_MAX`] capabilities.
    TooManyCaps,
    /// A capability kind a manifest cannot grant.
    CapNotGrantable(CapKind),
    /// A capability listed twice.
    DuplicateCap(CapKind),
    /// `kernel_kib` is not in [`KERNEL_KIB_MIN`]..=[`KERNEL_KIB_MAX`].
    KernelKib,
    /// `hi <= lo`.
    HiNotAboveLo {
        /// The workload's `lo`.
        lo: u64,
    },
    /// `hi > 2^40`.
    HiTooLarge,
    /// `expected > hi - lo`: more primes than numbers.
    ExpectedTooLarge {
        /// `hi - lo`.
        max: u64,
    },
    /// `workers` is not in 1..=[`WORKERS_MAX`] (or `cpus`).
    Workers,
    /// `repeat` is not in 1..=[`REPEAT_MAX`].
    Repeat,
    /// `serialize = true` outside thread mode.
    SerializeNeedsThread,
    /// More than [`IMAGES_MAX`] program images.
    TooManyImages,
    /// A program image's name breaks the program-name rule.
    ImageName,
    /// Two program images with one name.
    DuplicateImage,
    /// A program (or the workload's program) without an image.
    MissingImage,
    /// `rounds` is not in 1..=[`RING_ROUNDS_MAX`].
    RingRounds,
    /// `nops + timers` is more than [`RING_BATCH_MAX`].
    RingBatch,
    /// `pingpongs` is more than [`RING_PINGPONGS_MAX`].
    RingPingpongs,
    /// A round with no operation at all.
    RingEmptyRound,
    /// A ring workload without its mix, or a primes workload with one
    /// (only a hand-made initrd can do this).
    RingMix,
    /// `serialize = true` with `kind = "ring"`.
    RingSerialize,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::ScenarioName => {
                write!(f, "scenario name must be 1..={NAME_MAX} characters from [a-z0-9-]")
            }
            Rule::DescriptionTooLong => {
                write!(f, "description must be at most {DESCRIPTION_MAX} bytes")
            }
            Rule::TimeoutMs => write!(f, "timeout_ms must be an integer 1..={TIMEOUT_MS_MAX}"),
            Rule::TooManySelfTests => write!(f, "selftests must have at most {SELFTESTS_MAX} entries"),
            Rule::DuplicateSelfTest(t) => write!(f, "duplicate self-test \"{}\"", t.name()),
            Rule::TooManyPrograms => {
                write!(f, "a manifest must have at most {PROGRAMS_MAX} [[program]] tables")
            }
            Rule::ProgramName => write!(
                f,
                "program name must be 1..={PROGRAM_NAME_MAX} characters from [A-Za-z0-9._-], not \".\" or \"..\""
            ),
            Rule::TooManyArgs => write!(f, "args must have at most {ARGS_MAX} entries"),
            Rule::ArgTooLong => write!(f, "each of args must be at most {ARG_MAX} bytes"),
            Rule::TooManyCaps => write!(f, "caps must have at most {CAPS_MAX} entries"),
            Rule::CapNotGrantable(k) => {
                write!(f, "capability \"{}\" cannot be granted by a manifest", k.name())
            }
            Rule::DuplicateCap(k) => write!(f, "duplicate capability \"{}\"", k.name()),
            Rule::KernelKib => write!(
                f,
                "kernel_kib must be an integer {KERNEL_KIB_MIN}..={KERNEL_KIB_MAX}"
            ),
            Rule::HiNotAboveLo { lo } => write!(f, "hi must be greater than lo ({lo})"),
            Rule::HiTooLarge => write!(f, "hi must be at most 2^40 ({HI_MAX})"),
            Rule::ExpectedTooLarge { max } => {
                write!(f, "expected must be at most hi - lo ({max})")
            }
            Rule::Workers => {
                write!(f, "workers must be an integer 1..={WORKERS_MAX} or \"cpus\"")
            }
            Rule::Repeat => write!(f, "repeat must be an integer 1..={REPEAT_MAX}"),
            Rule::SerializeNeedsThread => {
                write!(f, "serialize = true needs mode = \"thread\"")
            }
            Rule::TooManyImages => write!(f, "an initrd must hold at most {IMAGES_MAX} images"),
            Rule::ImageName => write!(f, "an image name breaks the program-name rule"),
            Rule::DuplicateImage => write!(f, "two images have the same name"),
            Rule::MissingImage => write!(f, "a program has no image in the initrd"),
            Rule::RingRounds => write!(f, "rounds must be an integer 1..={RING_ROUNDS_MAX}"),
            Rule::RingBatch => write!(
                f,
                "nops + timers must be at most {RING_BATCH_MAX} (one batch fits the submission queue)"
            ),
            Rule::RingPingpongs => {
                write!(f, "pingpongs must be an integer 0..={RING_PINGPONGS_MAX}")
            }
            Rule::RingEmptyRound => {
                write!(f, "a round must hold at least one operation (nops, timers or pingpongs)")
            }
            Rule::RingMix => write!(f, "kind = \"ring\" needs its mix, and only it has one"),
            Rule::RingSerialize => write!(f, "serialize applies only to kind = \"primes\""),
        }
    }
}

/// Where in the manifest a rule was broken (indices from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// `[scenario] name`.
    ScenarioName,
    /// `[scenario] description`.
    Description,
    /// `[scenario] timeout_ms`.
    TimeoutMs,
    /// `[scenario] selftests` as a whole.
    SelfTests,
    /// Entry `.0` of `selftests`.
    SelfTest(usize),
    /// The `[[program]]` list as a whole.
    Programs,
    /// Program `.0`'s name.
    ProgramName(usize),
    /// Program `.0`'s `args` as a whole.
    Args(usize),
    /// Program `.0`'s argument `.1`.
    Arg(usize, usize),
    /// Program `.0`'s `caps` as a whole.
    Caps(usize),
    /// Program `.0`'s capability `.1`.
    Cap(usize, usize),
    /// Program `.0`'s `kernel_kib`.
    KernelKib(usize),
    /// `[workload] hi`.
    Hi,
    /// `[workload] expected`.
    Expected,
    /// `[workload] workers`.
    Workers,
    /// `[workload] repeat`.
    Repeat,
    /// `[workload] serialize`.
    Serialize,
    /// `[workload] rounds`.
    Rounds,
    /// `[workload] nops` / `timers` (the batch).
    Batch,
    /// `[workload] pingpongs`.
    Pingpongs,
    /// `[workload] kind` (the mix as a whole).
    Kind,
    /// The initrd's image list as a whole.
    Images,
    /// Image `.0`.
    Image(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::ScenarioName => f.write_str("[scenario] name"),
            Place::Description => f.write_str("[scenario] description"),
            Place::TimeoutMs => f.write_str("[scenario] timeout_ms"),
            Place::SelfTests => f.write_str("[scenario] selftests"),
            Place::SelfTest(j) => write!(f, "[scenario] selftests[{j}]"),
            Place::Programs => f.write_str("[[program]]"),
            Place::ProgramName(i) => write!(f, "program[{i}] name"),
            Place::Args(i) => write!(f, "program[{i}] args"),
            Place::Arg(i, j) => write!(f, "program[{i}] args[{j}]"),
            Place::Caps(i) => write!(f, "program[{i}] caps"),
            Place::Cap(i, j) => write!(f, "program[{i}] caps[{j}]"),
            Place::KernelKib(i) => write!(f, "program[{i}] kernel_kib"),
            Place::Hi => f.write_str("[workload] hi"),
            Place::Expected => f.write_str("[workload] expected"),
            Place::Workers => f.write_str("[workload] workers"),
            Place::Repeat => f.write_str("[workload] repeat"),
            Place::Serialize => f.write_str("[workload] serialize"),
            Place::Rounds => f.write_str("[workload] rounds"),
            Place::Batch => f.write_str("[workload] nops + timers"),
            Place::Pingpongs => f.write_str("[workload] pingpongs"),
            Place::Kind => f.write_str("[workload] kind"),
            Place::Images => f.write_str("images"),
            Place::Image(i) => write!(f, "image[{i}]"),
        }
    }
}

/// One broken rule and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which value.
    pub place: Place,
    /// Which rule.
    pub rule: Rule,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.rule, self.place)
    }
}

fn at(place: Place) -> impl FnOnce(Rule) -> Violation {
    move |rule| Violation { place, rule }
}

/// `[a-z0-9-]`, 1..=[`NAME_MAX`] bytes.
pub fn scenario_name(name: &str) -> Result<(), Rule> {
    let ok = (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then_some(()).ok_or(Rule::ScenarioName)
}

/// At most [`DESCRIPTION_MAX`] bytes.
pub fn description(text: &str) -> Result<(), Rule> {
    (text.len() <= DESCRIPTION_MAX)
        .then_some(())
        .ok_or(Rule::DescriptionTooLong)
}

/// 1..=[`TIMEOUT_MS_MAX`].
pub fn timeout_ms(ms: u64) -> Result<(), Rule> {
    (1..=TIMEOUT_MS_MAX)
        .contains(&ms)
        .then_some(())
        .ok_or(Rule::TimeoutMs)
}

/// At most [`SELFTESTS_MAX`] entries (reported at `None`), none twice
/// (each repeat reported at its index).
pub fn selftests(tests: &[SelfTest], mut report: impl FnMut(Option<usize>, Rule)) {
    if tests.len() > SELFTESTS_MAX {
        report(None, Rule::TooManySelfTests);
    }
    let mut seen = 0u64;
    for (j, t) in tests.iter().enumerate() {
        let bit = 1u64 << (SelfTest::ALL.iter().position(|x| x == t).unwrap_or(0) % 64);
        if seen & bit != 0 {
            report(Some(j), Rule::DuplicateSelfTest(*t));
        }
        seen |= bit;
    }
}

/// At most [`PROGRAMS_MAX`] programs.
pub fn program_count(n: usize) -> Result<(), Rule> {
    (n <= PROGRAMS_MAX)
        .then_some(())
        .ok_or(Rule::TooManyPrograms)
}

/// Whether `name` may name a program image: 1..=[`PROGRAM_NAME_MAX`]
/// characters from `[A-Za-z0-9._-]`, not `.` or `..`. Such a name is a
/// plain file name, and prints as one token.
pub fn valid_program_name(name: &str) -> bool {
    (1..=PROGRAM_NAME_MAX).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// [`valid_program_name`] as a rule.
pub fn program_name(name: &str) -> Result<(), Rule> {
    valid_program_name(name)
        .then_some(())
        .ok_or(Rule::ProgramName)
}

/// At most [`ARGS_MAX`] arguments.
pub fn arg_count(n: usize) -> Result<(), Rule> {
    (n <= ARGS_MAX).then_some(()).ok_or(Rule::TooManyArgs)
}

/// At most [`ARG_MAX`] bytes.
pub fn arg(a: &str) -> Result<(), Rule> {
    (a.len() <= ARG_MAX).then_some(()).ok_or(Rule::ArgTooLong)
}

/// At most [`CAPS_MAX`] entries (reported at `None`), each grantable and
/// none twice (reported at its index).
pub fn caps(caps: &[CapKind], mut report: impl FnMut(Option<usize>, Rule)) {
    if caps.len() > CAPS_MAX {
        report(None, Rule::TooManyCaps);
    }
    let mut seen = 0u64;
    for (j, k) in caps.iter().enumerate() {
        if !CapKind::GRANTABLE.contains(k) {
            report(Some(j), Rule::CapNotGrantable(*k));
            continue;
        }
        let bit = 1u64 << (*k as u32 % 64);
        if seen & bit != 0 {
            report(Some(j), Rule::DuplicateCap(*k));
        }
        seen |= bit;
    }
}

/// [`KERNEL_KIB_MIN`]..=[`KERNEL_KIB_MAX`].
pub fn kernel_kib(kib: u32) -> Result<(), Rule> {
    (KERNEL_KIB_MIN..=KERNEL_KIB_MAX)
        .contains(&kib)
        .then_some(())
        .ok_or(Rule::KernelKib)
}

/// `lo < hi <= 2^40`.
pub fn hi(lo: u64, hi: u64) -> Result<(), Rule> {
    if hi <= lo {
        Err(Rule::HiNotAboveLo { lo })
    } else if hi > HI_MAX {
        Err(Rule::HiTooLarge)
    } else {
        Ok(())
    }
}

/// `expected <= hi - lo` (for `hi > lo`; otherwise [`hi`] already fails).
pub fn expected(lo: u64, hi: u64, expected: u64) -> Result<(), Rule> {
    let max = hi.saturating_sub(lo);
    (expected <= max)
        .then_some(())
        .ok_or(Rule::ExpectedTooLarge { max })
}

/// 1..=[`WORKERS_MAX`], or one per CPU.
pub fn workers(w: Workers) -> Result<(), Rule> {
    match w {
        Workers::Cpus => Ok(()),
        Workers::Count(n) if (1..=WORKERS_MAX).contains(&n) => Ok(()),
        Workers::Count(_) => Err(Rule::Workers),
    }
}

/// 1..=[`REPEAT_MAX`].
pub fn repeat(r: u32) -> Result<(), Rule> {
    (1..=REPEAT_MAX)
        .contains(&r)
        .then_some(())
        .ok_or(Rule::Repeat)
}

/// `serialize = true` only in thread mode.
pub fn serialize(mode: Mode, serialize: bool) -> Result<(), Rule> {
    if serialize && mode != Mode::Thread {
        Err(Rule::SerializeNeedsThread)
    } else {
        Ok(())
    }
}

/// `rounds` in 1..=[`RING_ROUNDS_MAX`].
pub fn ring_rounds(rounds: u32) -> Result<(), Rule> {
    (1..=RING_ROUNDS_MAX)
        .contains(&rounds)
        .then_some(())
        .ok_or(Rule::RingRounds)
}

/// `nops + timers` at most [`RING_BATCH_MAX`].
pub fn ring_batch(nops: u32, timers: u32) -> Result<(), Rule> {
    (u64::from(nops) + u64::from(timers) <= u64::from(RING_BATCH_MAX))
        .then_some(())
        .ok_or(Rule::RingBatch)
}

/// `pingpongs` at most [`RING_PINGPONGS_MAX`].
pub fn ring_pingpongs(pingpongs: u32) -> Result<(), Rule> {
    (pingpongs <= RING_PINGPONGS_MAX)
        .then_some(())
        .ok_or(Rule::RingPingpongs)
}

/// At least one operation per round.
pub fn ring_nonempty(m: &RingMix) -> Result<(), Rule> {
    (m.nops > 0 || m.timers > 0 || m.pingpongs > 0)
        .then_some(())
        .ok_or(Rule::RingEmptyRound)
}

/// Every rule of a ring mix, each violation reported.
pub fn ring_mix(m: &RingMix, report: &mut impl FnMut(Violation)) {
    if let Err(e) = ring_rounds(m.rounds) {
        report(at(Place::Rounds)(e));
    }
    if let Err(e) = ring_batch(m.nops, m.timers) {
        report(at(Place::Batch)(e));
    }
    if let Err(e) = ring_pingpongs(m.pingpongs) {
        report(at(Place::Pingpongs)(e));
    }
    if let Err(e) = ring_nonempty(m) {
        report(at(Place::Kind)(e));
    }
}

/// Every rule of one `[[program]]` (index `i`), each violation reported.
pub fn program(i: usize, p: &ProgramSpec<'_>, report: &mut impl FnMut(Violation)) {
    if let Err(e) = program_name(p.name) {
        report(at(Place::ProgramName(i))(e));
    }
    if let Err(e) = arg_count(p.args.len()) {
        report(at(Place::Args(i))(e));
    }
    for (j, a) in p.args.iter().enumerate() {
        if let Err(e) = arg(a) {
            report(at(Place::Arg(i, j))(e));
        }
    }
    caps(&p.caps, |j, rule| {
        let place = j.map_or(Place::Caps(i), |j| Place::Cap(i, j));
        report(Violation { place, rule });
    });
    if let Some(k) = p.kernel_kib {
        if let Err(e) = kernel_kib(k) {
            report(at(Place::KernelKib(i))(e));
        }
    }
}

/// Every rule of `[workload]`, each violation reported.
pub fn workload(w: &Workload, report: &mut impl FnMut(Violation)) {
    match (w.kind, &w.ring) {
        (WorkloadKind::Primes, None) => {
            if let Err(e) = hi(w.lo, w.hi) {
                report(at(Place::Hi)(e));
            } else if let Err(e) = expected(w.lo, w.hi, w.expected) {
                report(at(Place::Expected)(e));
            }
        }
        (WorkloadKind::Ring, Some(m)) => {
            ring_mix(m, report);
            if w.serialize {
                report(at(Place::Serialize)(Rule::RingSerialize));
            }
        }
        _ => report(at(Place::Kind)(Rule::RingMix)),
    }
    if let Err(e) = workers(w.workers) {
        report(at(Place::Workers)(e));
    }
    if let Err(e) = repeat(w.repeat) {
        report(at(Place::Repeat)(e));
    }
    if let Err(e) = serialize(w.mode, w.serialize) {
        report(at(Place::Serialize)(e));
    }
}

/// Every rule of a whole manifest, each violation reported in document
/// order.
pub fn check_manifest(m: &Manifest<'_>, report: &mut impl FnMut(Violation)) {
    let s = &m.scenario;
    if let Err(e) = scenario_name(s.name) {
        report(at(Place::ScenarioName)(e));
    }
    if let Some(Err(e)) = s.description.map(description) {
        report(at(Place::Description)(e));
    }
    if let Some(Err(e)) = s.timeout_ms.map(timeout_ms) {
        report(at(Place::TimeoutMs)(e));
    }
    selftests(&s.selftests, |j, rule| {
        let place = j.map_or(Place::SelfTests, Place::SelfTest);
        report(Violation { place, rule });
    });
    if let Err(e) = program_count(m.programs.len()) {
        report(at(Place::Programs)(e));
    }
    for (i, p) in m.programs.iter().enumerate() {
        program(i, p, report);
    }
    if let Some(w) = &m.workload {
        workload(w, report);
    }
}

/// The first violation in document order, if any.
fn first(check: impl FnOnce(&mut dyn FnMut(Violation))) -> Result<(), Violation> {
    let mut found = None;
    check(&mut |v| {
        found.get_or_insert(v);
    });
    found.map_or(Ok(()), Err)
}

/// Checks a whole manifest; the first violation on failure.
pub fn manifest(m: &Manifest<'_>) -> Result<(), Violation> {
    first(|r| check_manifest(m, &mut |v| r(v)))
}

/// Every rule of a decoded initrd: its manifest, then its images (a
/// bounded count, valid and distinct names, one for every program the
/// manifest starts). What the kernel runs before it trusts an initrd.
pub fn check_payload(p: &Payload<'_>, report: &mut impl FnMut(Violation)) {
    check_manifest(&p.manifest, report);
    if p.programs.len() > IMAGES_MAX {
        // Pairwise checks below would be quadratic in a hostile count.
        report(at(Place::Images)(Rule::TooManyImages));
        return;
    }
    for (i, image) in p.programs.iter().enumerate() {
        if !valid_program_name(image.name) {
            report(at(Place::Image(i))(Rule::ImageName));
        } else if p.programs[..i].iter().any(|o| o.name == image.name) {
            report(at(Place::Image(i))(Rule::DuplicateImage));
        }
    }
    if p.manifest.programs.len() > PROGRAMS_MAX {
        return;
    }
    for (i, spec) in p.manifest.programs.iter().enumerate() {
        if p.program(spec.name).is_none() {
            report(at(Place::ProgramName(i))(Rule::MissingImage));
        }
    }
    if let Some(w) = &p.manifest.workload {
        if p.program(w.kind.program()).is_none() {
            report(at(Place::Images)(Rule::MissingImage));
        }
    }
}

/// Checks a decoded initrd; the first violation on failure.
pub fn payload(p: &Payload<'_>) -> Result<(), Violation> {
    first(|r| check_payload(p, &mut |v| r(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::initrd::ProgramImage;
    use crate::manifest::{Expect, Scenario, WORKLOAD_PROGRAM};
    use alloc::string::{String, ToString};
    use alloc::vec;
    use alloc::vec::Vec;

    fn spec(name: &str) -> ProgramSpec<'_> {
        ProgramSpec {
            name,
            args: Vec::new(),
            caps: Vec::new(),
            expect: Expect::Exit(0),
            kernel_kib: None,
        }
    }

    fn workload() -> Workload {
        Workload {
            kind: WorkloadKind::Primes,
            lo: 0,
            hi: 100,
            expected: 25,
            workers: Workers::Count(2),
            mode: Mode::Thread,
            repeat: 1,
            serialize: false,
            ring: None,
        }
    }

    fn ring_workload() -> Workload {
        Workload {
            kind: WorkloadKind::Ring,
            lo: 0,
            hi: 0,
            expected: 0,
            workers: Workers::Cpus,
            mode: Mode::Process,
            repeat: 1,
            serialize: false,
            ring: Some(RingMix {
                rounds: 100,
                nops: 16,
                timers: 4,
                pingpongs: 2,
            }),
        }
    }

    #[test]
    fn ring_rules() {
        let mut m = base();
        m.workload = Some(ring_workload());
        assert!(all(&m).is_empty(), "{:?}", all(&m));
        let places = |w: Workload| -> Vec<(Place, Rule)> {
            let mut m = base();
            m.workload = Some(w);
            all(&m).into_iter().map(|v| (v.place, v.rule)).collect()
        };
        let with = |f: &dyn Fn(&mut RingMix)| {
            let mut w = ring_workload();
            if let Some(r) = w.ring.as_mut() {
                f(r);
            }
            places(w)
        };
        assert_eq!(
            with(&|r| r.rounds = 0),
            vec![(Place::Rounds, Rule::RingRounds)]
        );
        assert_eq!(
            with(&|r| r.rounds = RING_ROUNDS_MAX + 1),
            vec![(Place::Rounds, Rule::RingRounds)]
        );
        assert!(with(&|r| r.rounds = RING_ROUNDS_MAX).is_empty());
        assert!(with(&|r| {
            r.nops = RING_BATCH_MAX - 1;
            r.timers = 1;
        })
        .is_empty());
        assert_eq!(
            with(&|r| {
                r.nops = RING_BATCH_MAX;
                r.timers = 1;
            }),
            vec![(Place::Batch, Rule::RingBatch)]
        );
        assert_eq!(
            with(&|r| {
                r.nops = u32::MAX;
                r.timers = u32::MAX;
            }),
            vec![(Place::Batch, Rule::RingBatch)]
        );
        assert_eq!(
            with(&|r| r.pingpongs = RING_PINGPONGS_MAX + 1),
            vec![(Place::Pingpongs, Rule::RingPingpongs)]
        );
        assert_eq!(
            with(&|r| {
                r.nops = 0;
                r.timers = 0;
                r.pingpongs = 0;
            }),
            vec![(Place::Kind, Rule::RingEmptyRound)]
        );
        let mut w = ring_workload();
        w.serialize = true;
        w.mode = Mode::Thread;
        assert_eq!(places(w), vec![(Place::Serialize, Rule::RingSerialize)]);
        let mut w = ring_workload();
        w.ring = None;
        assert_eq!(places(w), vec![(Place::Kind, Rule::RingMix)]);
        let mut w = workload();
        w.ring = ring_workload().ring;
        assert_eq!(places(w), vec![(Place::Kind, Rule::RingMix)]);
    }

    fn all(m: &Manifest<'_>) -> Vec<Violation> {
        let mut out = Vec::new();
        check_manifest(m, &mut |v| out.push(v));
        out
    }

    fn base<'a>() -> Manifest<'a> {
        Manifest {
            scenario: Scenario {
                name: "t",
                description: None,
                timeout_ms: None,
                selftests: Vec::new(),
            },
            programs: Vec::new(),
            workload: None,
            kernel: Default::default(),
        }
    }

    #[test]
    fn scenario_name_limits() {
        assert_eq!(scenario_name(&"a".repeat(NAME_MAX)), Ok(()));
        assert_eq!(
            scenario_name(&"a".repeat(NAME_MAX + 1)),
            Err(Rule::ScenarioName)
        );
        assert_eq!(scenario_name(""), Err(Rule::ScenarioName));
        assert_eq!(scenario_name("smoke-1"), Ok(()));
        for bad in ["A", "a_b", "a b", "a\nSCENARIO x PASS", "é"] {
            assert_eq!(scenario_name(bad), Err(Rule::ScenarioName), "{bad:?}");
        }
    }

    #[test]
    fn description_limit() {
        assert_eq!(description(&"d".repeat(DESCRIPTION_MAX)), Ok(()));
        assert_eq!(
            description(&"d".repeat(DESCRIPTION_MAX + 1)),
            Err(Rule::DescriptionTooLong)
        );
    }

    #[test]
    fn timeout_limits() {
        assert_eq!(timeout_ms(1), Ok(()));
        assert_eq!(timeout_ms(TIMEOUT_MS_MAX), Ok(()));
        assert_eq!(timeout_ms(0), Err(Rule::TimeoutMs));
        assert_eq!(timeout_ms(TIMEOUT_MS_MAX + 1), Err(Rule::TimeoutMs));
    }

    #[test]
    fn selftests_no_duplicates_and_bounded() {
        let mut m = base();
        m.scenario.selftests = vec![SelfTest::Smp];
        assert_eq!(manifest(&m), Ok(()));
        m.scenario.selftests = vec![SelfTest::Smp; 3];
        let v = all(&m);
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            Violation {
                place: Place::SelfTest(1),
                rule: Rule::DuplicateSelfTest(SelfTest::Smp)
            }
        );
        m.scenario.selftests = vec![SelfTest::Smp; SELFTESTS_MAX + 1];
        assert_eq!(
            manifest(&m).map_err(|v| v.rule),
            Err(Rule::TooManySelfTests)
        );
    }

    #[test]
    fn program_count_limit() {
        assert_eq!(program_count(PROGRAMS_MAX), Ok(()));
        assert_eq!(program_count(PROGRAMS_MAX + 1), Err(Rule::TooManyPrograms));
        let mut m = base();
        m.programs = vec![spec("p"); PROGRAMS_MAX + 1];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Programs,
                rule: Rule::TooManyPrograms
            })
        );
    }

    #[test]
    fn program_names() {
        assert_eq!(program_name(&"p".repeat(PROGRAM_NAME_MAX)), Ok(()));
        assert_eq!(
            program_name(&"p".repeat(PROGRAM_NAME_MAX + 1)),
            Err(Rule::ProgramName)
        );
        for good in ["ring-smoke", "a_b.c", "X9"] {
            assert_eq!(program_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "", ".", "..", "../p", "a/b", "a\\b", "a b", "a\n", "a\0", "é",
        ] {
            assert_eq!(program_name(bad), Err(Rule::ProgramName), "{bad:?}");
        }
    }

    #[test]
    fn args_limits() {
        let long = "a".repeat(ARG_MAX);
        let too_long = "a".repeat(ARG_MAX + 1);
        let mut p = spec("p");
        p.args = vec![long.as_str(); ARGS_MAX];
        let mut m = base();
        m.programs = vec![p.clone()];
        assert_eq!(manifest(&m), Ok(()));
        p.args.push("x");
        m.programs = vec![spec("q"), p.clone()];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Args(1),
                rule: Rule::TooManyArgs
            })
        );
        p.args = vec!["ok", too_long.as_str()];
        m.programs = vec![p];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Arg(0, 1),
                rule: Rule::ArgTooLong
            })
        );
    }

    #[test]
    fn caps_rules() {
        let mut p = spec("p");
        p.caps = CapKind::GRANTABLE.to_vec();
        let mut m = base();
        m.programs = vec![p.clone()];
        assert_eq!(manifest(&m), Ok(()));
        p.caps = vec![CapKind::Timer, CapKind::Console, CapKind::Timer];
        m.programs = vec![p.clone()];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Cap(0, 2),
                rule: Rule::DuplicateCap(CapKind::Timer)
            })
        );
        p.caps = vec![CapKind::SelfProcess];
        m.programs = vec![p.clone()];
        assert_eq!(
            manifest(&m).map_err(|v| v.rule),
            Err(Rule::CapNotGrantable(CapKind::SelfProcess))
        );
        p.caps = vec![CapKind::Console; CAPS_MAX + 1];
        m.programs = vec![p];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Caps(0),
                rule: Rule::TooManyCaps
            })
        );
    }

    #[test]
    fn kernel_kib_limits() {
        assert_eq!(kernel_kib(KERNEL_KIB_MIN), Ok(()));
        assert_eq!(kernel_kib(KERNEL_KIB_MAX), Ok(()));
        assert_eq!(kernel_kib(KERNEL_KIB_MIN - 1), Err(Rule::KernelKib));
        assert_eq!(kernel_kib(KERNEL_KIB_MAX + 1), Err(Rule::KernelKib));
        assert!((KERNEL_KIB_MIN..=KERNEL_KIB_MAX).contains(&crate::limits::KERNEL_KIB_DEFAULT));
        let mut p = spec("p");
        p.kernel_kib = Some(KERNEL_KIB_MAX + 1);
        let mut m = base();
        m.programs = vec![p];
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::KernelKib(0),
                rule: Rule::KernelKib
            })
        );
    }

    #[test]
    fn range_rules() {
        assert_eq!(hi(0, HI_MAX), Ok(()));
        assert_eq!(hi(0, HI_MAX + 1), Err(Rule::HiTooLarge));
        assert_eq!(hi(5, 5), Err(Rule::HiNotAboveLo { lo: 5 }));
        assert_eq!(hi(5, 6), Ok(()));
        assert_eq!(expected(10, 20, 10), Ok(()));
        assert_eq!(
            expected(10, 20, 11),
            Err(Rule::ExpectedTooLarge { max: 10 })
        );
        // The fuzzed case from issue 11: above 2^40 is refused, whatever
        // `expected` says.
        let mut m = base();
        let mut w = workload();
        (w.lo, w.hi, w.expected) = (1 << 41, (1 << 41) + 100, 0);
        m.workload = Some(w);
        assert_eq!(
            manifest(&m),
            Err(Violation {
                place: Place::Hi,
                rule: Rule::HiTooLarge
            })
        );
    }

    #[test]
    fn workers_repeat_serialize() {
        assert_eq!(workers(Workers::Count(1)), Ok(()));
        assert_eq!(workers(Workers::Count(WORKERS_MAX)), Ok(()));
        assert_eq!(workers(Workers::Count(0)), Err(Rule::Workers));
        assert_eq!(workers(Workers::Count(WORKERS_MAX + 1)), Err(Rule::Workers));
        assert_eq!(workers(Workers::Cpus), Ok(()));
        assert_eq!(repeat(1), Ok(()));
        assert_eq!(repeat(REPEAT_MAX), Ok(()));
        assert_eq!(repeat(0), Err(Rule::Repeat));
        assert_eq!(repeat(REPEAT_MAX + 1), Err(Rule::Repeat));
        assert_eq!(repeat(u32::MAX), Err(Rule::Repeat));
        assert_eq!(serialize(Mode::Thread, true), Ok(()));
        assert_eq!(serialize(Mode::Process, false), Ok(()));
        assert_eq!(
            serialize(Mode::Process, true),
            Err(Rule::SerializeNeedsThread)
        );
        let mut m = base();
        let mut w = workload();
        (w.mode, w.serialize, w.repeat) = (Mode::Process, true, 0);
        m.workload = Some(w);
        let places: Vec<Place> = all(&m).iter().map(|v| v.place).collect();
        assert_eq!(places, [Place::Repeat, Place::Serialize]);
    }

    #[test]
    fn messages_never_carry_manifest_text() {
        let name = "x\nSCENARIO x PASS";
        let mut m = base();
        m.scenario.name = name;
        let v = manifest(&m).expect_err("bad name");
        let text = v.to_string();
        assert!(
            !text.contains('\n') && !text.contains("SCENARIO x"),
            "{text}"
        );
        assert_eq!(
            text,
            "scenario name must be 1..=48 characters from [a-z0-9-] (at [scenario] name)"
        );
    }

    #[test]
    fn payload_images() {
        let elf = [0u8; 4];
        let img = |name| ProgramImage { name, elf: &elf };
        let mut m = base();
        m.programs = vec![spec("a")];
        m.workload = Some(workload());
        let mut p = Payload {
            manifest: m,
            programs: vec![img("a"), img(WORKLOAD_PROGRAM)],
        };
        assert_eq!(payload(&p), Ok(()));
        p.programs = vec![img("a")];
        assert_eq!(
            payload(&p),
            Err(Violation {
                place: Place::Images,
                rule: Rule::MissingImage
            })
        );
        p.programs = vec![img("a"), img(WORKLOAD_PROGRAM), img("a")];
        assert_eq!(payload(&p).map_err(|v| v.rule), Err(Rule::DuplicateImage));
        p.programs = vec![img("a"), img(WORKLOAD_PROGRAM), img("b\n")];
        assert_eq!(payload(&p).map_err(|v| v.rule), Err(Rule::ImageName));
        let names: Vec<String> = (0..=IMAGES_MAX).map(|i| i.to_string()).collect();
        p.programs = names.iter().map(|n| img(n)).collect();
        assert_eq!(payload(&p).map_err(|v| v.rule), Err(Rule::TooManyImages));
        // A ring workload needs the ring program's image, not primes'.
        p.manifest.workload = Some(ring_workload());
        p.programs = vec![img("a"), img(WORKLOAD_PROGRAM)];
        assert_eq!(payload(&p).map_err(|v| v.rule), Err(Rule::MissingImage));
        p.programs = vec![img("a"), img(crate::manifest::RING_PROGRAM)];
        assert_eq!(payload(&p), Ok(()));
    }
}
