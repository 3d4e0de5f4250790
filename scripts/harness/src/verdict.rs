//! The scaling benchmark's verdict rules (CONTRACTS.md section 5).
//!
//! A benchmark FAILs on anything that makes its timings meaningless (a wrong
//! count, a missing line, a panic, a boot without `SCENARIO ... PASS`), on
//! evidence that the CPUs did not work concurrently, and, under KVM only, on
//! a 1-to-2 CPU speedup below [`THRESHOLD`]. Under TCG the timings mean
//! nothing, so only correctness and the concurrency evidence are judged.
//!
//! Concurrency evidence, per timed run with C >= 2 CPUs and W workers:
//!
//! - every mode, when W >= C: each CPU's `busy` must be at least
//!   [`MIN_CPU_BUSY_FRACTION`] of the section's `ms` (no idle CPU);
//! - thread mode, W >= 2, with k = min(W, C) ("serialization checks"):
//!   - overlap: the time during which at least k workers are inside their
//!     `[start, end]` spans, divided by the length of the union of all spans,
//!     must be at least [`MIN_OVERLAP_FRACTION`];
//!   - the workers together ran on at least k distinct CPUs;
//!   - the sum of `busy` over CPUs divided by `ms` is at least
//!     [`MIN_BUSY_RATIO`] * k.
//!
//! Ring runs (`kind=ring` SCALE lines, ring-scale) spend their time in the
//! kernel, which `busy` (user time) does not count; for them the idle-CPU
//! rule is "every CPU ran a worker or a partner" (the WORKER lines' CPU
//! records) and the serialization checks drop the busy ratio. Their
//! `LOCKSTAT` lines, when the kernel prints them, are judged by
//! [`check_lockstats`]: a lock contended on more than
//! [`MAX_CONTENDED_FRACTION`] of at least [`LOCKSTAT_MIN_ACQUIRES`]
//! acquisitions in the multi-CPU boots is a FAIL (`reason=contended`).

use crate::parse::{BootLog, TimedRun};
use crate::qemu::Accel;

/// Median 1-to-2 CPU speedup a benchmark must reach under KVM.
pub const THRESHOLD: f64 = 1.60;

/// In a multi-CPU timed section, each CPU must be busy (running user
/// threads) for at least this fraction of the section's wall time.
pub const MIN_CPU_BUSY_FRACTION: f64 = 0.5;

/// Thread mode: at least min(W, C) workers must be running together for
/// this fraction of the union of the workers' spans.
pub const MIN_OVERLAP_FRACTION: f64 = 0.5;

/// Thread mode: total busy time over wall time must be at least this times
/// min(W, C).
pub const MIN_BUSY_RATIO: f64 = 0.8;

/// Ring runs: most a kernel lock may be contended, as a fraction of its
/// acquisitions (summed over the boots of one CPU count >= 2).
pub const MAX_CONTENDED_FRACTION: f64 = 0.01;

/// Ring runs: a lock acquired fewer times than this (over the boots of one
/// CPU count) is not judged: a handful of boot-time contentions on a lock
/// taken a few hundred times says nothing about the measured paths.
pub const LOCKSTAT_MIN_ACQUIRES: u64 = 1000;

/// Kinds of findings, most serious first; the first one found names the
/// failure in the `RESULT` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A `PANIC` line.
    Panic,
    /// The boot ended without a matching `SCENARIO ... PASS`.
    Boot,
    /// A wrong count (guest or native).
    WrongCount,
    /// Fewer `SCALE` or `WORKER` lines than expected, or unreadable ones.
    MissingLine,
    /// The guest reported a different CPU count than it was booted with.
    CpuCount,
    /// Thread-mode workers did not run concurrently.
    Serialized,
    /// A CPU did no (or too little) work in a multi-CPU section.
    IdleCpu,
    /// A kernel lock was contended too often (ring runs with LOCKSTAT).
    Contended,
    /// Speedup below the threshold.
    Slow,
}

impl Kind {
    /// The word in `RESULT ... reason=<word> FAIL`.
    pub const fn word(self) -> &'static str {
        match self {
            Kind::Panic => "panic",
            Kind::Boot => "boot",
            Kind::WrongCount => "wrong-count",
            Kind::MissingLine => "missing-line",
            Kind::CpuCount => "cpu-count",
            Kind::Serialized => "serialized",
            Kind::IdleCpu => "idle-cpu",
            Kind::Contended => "contended",
            Kind::Slow => "slow",
        }
    }
}

/// One reason to fail.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// Where and what, for people.
    pub text: String,
}

impl Finding {
    fn new(kind: Kind, text: String) -> Self {
        Self { kind, text }
    }
}

/// What a boot should show.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// CPUs QEMU was given.
    pub smp: u32,
    /// Timed runs per boot.
    pub repeat: u32,
    /// The manifest's range and answer.
    pub lo: u64,
    /// Range end.
    pub hi: u64,
    /// Expected count.
    pub expected: u64,
}

/// Checks one boot's log. `boot_ok` is false when the runner did not judge it
/// PASS, with `boot_reason` saying why. `label` names the boot in texts.
pub fn check_boot(
    label: &str,
    log: &BootLog,
    boot_ok: bool,
    boot_reason: &str,
    e: &Expect,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &log.panics {
        out.push(Finding::new(Kind::Panic, format!("{label}: PANIC {p}")));
    }
    if !boot_ok {
        out.push(Finding::new(Kind::Boot, format!("{label}: {boot_reason}")));
    }
    for m in log
        .malformed
        .iter()
        .filter(|m| m.starts_with("SCALE") || m.starts_with("WORKER"))
    {
        out.push(Finding::new(
            Kind::MissingLine,
            format!("{label}: unreadable line: {m}"),
        ));
    }
    if log.runs.len() < e.repeat as usize {
        out.push(Finding::new(
            Kind::MissingLine,
            format!("{label}: {} of {} SCALE lines", log.runs.len(), e.repeat),
        ));
    }
    for run in &log.runs {
        out.extend(check_run(&format!("{label} run {}", run.scale.run), run, e));
    }
    out
}

/// Checks one timed run.
pub fn check_run(label: &str, run: &TimedRun, e: &Expect) -> Vec<Finding> {
    let s = &run.scale;
    let mut out = Vec::new();
    if !s.ok || s.count != s.expected || s.count != e.expected {
        out.push(Finding::new(
            Kind::WrongCount,
            format!(
                "{label}: count={} expected={} ok={} (manifest expects {})",
                s.count,
                s.expected,
                u8::from(s.ok),
                e.expected
            ),
        ));
    }
    if (s.lo, s.hi) != (e.lo, e.hi) {
        out.push(Finding::new(
            Kind::WrongCount,
            format!(
                "{label}: range [{}, {}) is not the manifest's [{}, {})",
                s.lo, s.hi, e.lo, e.hi
            ),
        ));
    }
    if s.cpus != e.smp {
        out.push(Finding::new(
            Kind::CpuCount,
            format!(
                "{label}: guest reports cpus={} under -smp {}",
                s.cpus, e.smp
            ),
        ));
    }
    if run.workers.len() != s.workers as usize {
        out.push(Finding::new(
            Kind::MissingLine,
            format!(
                "{label}: {} WORKER lines for workers={}",
                run.workers.len(),
                s.workers
            ),
        ));
    } else if run.workers.iter().map(|w| w.count).sum::<u64>() != s.count {
        out.push(Finding::new(
            Kind::WrongCount,
            format!("{label}: WORKER counts do not add up to count={}", s.count),
        ));
    }
    if s.cpus >= 2 && s.workers >= s.cpus {
        if s.ring {
            out.extend(check_worker_cpus(label, run));
        } else {
            out.extend(check_idle(label, run));
        }
    }
    if s.mode == "thread" && s.cpus >= 2 && s.workers >= 2 {
        out.extend(check_serialized(label, run));
    }
    out
}

/// No CPU may be busy for less than [`MIN_CPU_BUSY_FRACTION`] of the section.
fn check_idle(label: &str, run: &TimedRun) -> Vec<Finding> {
    let s = &run.scale;
    let floor = MIN_CPU_BUSY_FRACTION * s.ms;
    (0..s.cpus as usize)
        .filter_map(|cpu| {
            let busy = s.busy.get(cpu).copied().unwrap_or(0.0);
            (busy < floor).then(|| {
                Finding::new(
                    Kind::IdleCpu,
                    format!("{label}: CPU {cpu} busy {busy:.1} ms of {:.1} ms (< {MIN_CPU_BUSY_FRACTION} of the section)", s.ms),
                )
            })
        })
        .collect()
}

/// Ring runs: every CPU ran a worker or a partner (WORKER `cpus` and
/// `partner_cpus`; process mode records the whole worker process).
fn check_worker_cpus(label: &str, run: &TimedRun) -> Vec<Finding> {
    let s = &run.scale;
    (0..s.cpus)
        .filter(|cpu| {
            !run.workers
                .iter()
                .any(|w| w.cpus.contains(cpu) || w.partner_cpus.contains(cpu))
        })
        .map(|cpu| {
            Finding::new(
                Kind::IdleCpu,
                format!("{label}: CPU {cpu} ran no worker or partner"),
            )
        })
        .collect()
}

/// One lock's counters summed over the boots of one CPU count.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LockTotal {
    /// Acquisitions.
    pub acquires: u64,
    /// Contended acquisitions.
    pub contended: u64,
    /// Spin iterations.
    pub spins: u64,
}

impl LockTotal {
    /// Contended over acquired (0 when never acquired).
    pub fn fraction(&self) -> f64 {
        if self.acquires == 0 {
            0.0
        } else {
            self.contended as f64 / self.acquires as f64
        }
    }
}

/// Ring runs: each lock of a multi-CPU count must stay at or below
/// [`MAX_CONTENDED_FRACTION`] once it has [`LOCKSTAT_MIN_ACQUIRES`].
pub fn check_lockstats<'a>(
    cpus: u32,
    locks: impl IntoIterator<Item = (&'a String, &'a LockTotal)>,
) -> Vec<Finding> {
    if cpus < 2 {
        return Vec::new();
    }
    locks
        .into_iter()
        .filter(|(_, t)| t.acquires >= LOCKSTAT_MIN_ACQUIRES && t.fraction() > MAX_CONTENDED_FRACTION)
        .map(|(name, t)| {
            Finding::new(
                Kind::Contended,
                format!(
                    "cpus={cpus}: lock {name} contended on {:.2}% of {} acquisitions (> {:.0}%), {} spins",
                    t.fraction() * 100.0,
                    t.acquires,
                    MAX_CONTENDED_FRACTION * 100.0,
                    t.spins
                ),
            )
        })
        .collect()
}

/// The three serialization checks of thread mode (module docs).
fn check_serialized(label: &str, run: &TimedRun) -> Vec<Finding> {
    let s = &run.scale;
    let k = s.workers.min(s.cpus);
    let mut out = Vec::new();
    let spans: Vec<(u64, u64)> = run.workers.iter().map(|w| (w.start, w.end)).collect();
    let overlap = overlap_fraction(&spans, k as usize);
    if overlap < MIN_OVERLAP_FRACTION {
        out.push(Finding::new(
            Kind::Serialized,
            format!("{label}: serialized: {k} workers ran together for {:.0}% of their spans (< {:.0}%)", overlap * 100.0, MIN_OVERLAP_FRACTION * 100.0),
        ));
    }
    let mut cpus: Vec<u32> = run
        .workers
        .iter()
        .flat_map(|w| w.cpus.iter().copied())
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.len() < k as usize {
        out.push(Finding::new(
            Kind::Serialized,
            format!(
                "{label}: serialized: workers ran on {} distinct CPU(s), want {k}",
                cpus.len()
            ),
        ));
    }
    let ratio = if s.ms > 0.0 {
        s.busy.iter().sum::<f64>() / s.ms
    } else {
        0.0
    };
    if !s.ring && ratio < MIN_BUSY_RATIO * f64::from(k) {
        out.push(Finding::new(
            Kind::Serialized,
            format!(
                "{label}: serialized: busy/wall = {ratio:.2}, want >= {:.2}",
                MIN_BUSY_RATIO * f64::from(k)
            ),
        ));
    }
    out
}

/// The time during which at least `k` of the spans `[start, end]` are open,
/// divided by the length of their union. 0 when the union is empty.
pub fn overlap_fraction(spans: &[(u64, u64)], k: usize) -> f64 {
    let mut edges: Vec<(u64, i64)> = Vec::with_capacity(spans.len() * 2);
    for &(start, end) in spans {
        if end > start {
            edges.push((start, 1));
            edges.push((end, -1));
        }
    }
    // Ends sort before starts at the same instant: touching spans do not overlap.
    edges.sort_unstable();
    let (mut open, mut union, mut together) = (0i64, 0u64, 0u64);
    let mut prev = 0u64;
    for (t, delta) in edges {
        let dt = t - prev;
        if open > 0 {
            union += dt;
        }
        if open >= k as i64 {
            together += dt;
        }
        open += delta;
        prev = t;
    }
    if union == 0 {
        0.0
    } else {
        together as f64 / union as f64
    }
}

/// The overall result.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    /// PASS or FAIL.
    pub pass: bool,
    /// The first (most serious) finding's word, when failing.
    pub reason: Option<&'static str>,
    /// Every finding, most serious first.
    pub findings: Vec<Finding>,
    /// Notes that are not failures (e.g. "timings mean nothing under TCG").
    pub notes: Vec<String>,
}

/// Combines the findings with the speedup rule.
pub fn judge(mut findings: Vec<Finding>, accel: Accel, speedup2: Option<f64>) -> Judgement {
    let mut notes = Vec::new();
    match (accel, speedup2) {
        (Accel::Tcg, _) => notes.push(
            "accel=tcg: timings mean nothing under TCG; judging correctness and concurrency only"
                .into(),
        ),
        (Accel::Kvm, None) => findings.push(Finding::new(
            Kind::Slow,
            "no 1-CPU and 2-CPU medians to compute speedup2 (SMP_LIST must include 1 and 2)".into(),
        )),
        (Accel::Kvm, Some(s)) if s < THRESHOLD => findings.push(Finding::new(
            Kind::Slow,
            format!("speedup2 {s:.2} is below the threshold {THRESHOLD:.2}"),
        )),
        (Accel::Kvm, Some(_)) => {}
    }
    findings.sort_by_key(|f| f.kind);
    let reason = findings.first().map(|f| f.kind.word());
    Judgement {
        pass: findings.is_empty(),
        reason,
        findings,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::tests::good_log;

    fn expect(smp: u32, repeat: u32) -> Expect {
        Expect {
            smp,
            repeat,
            lo: 0,
            hi: 100_000_000,
            expected: 5_761_455,
        }
    }

    fn check(text: &str, smp: u32, repeat: u32) -> Vec<Finding> {
        let log = BootLog::parse(text.lines());
        check_boot("smp2 boot1", &log, true, "", &expect(smp, repeat))
    }

    fn kinds(f: &[Finding]) -> Vec<Kind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn good_logs_pass() {
        for mode in ["thread", "process"] {
            for cpus in [1, 2, 4] {
                assert_eq!(
                    check(&good_log(cpus, 3, mode, 500.0), cpus, 3),
                    vec![],
                    "{mode} {cpus}"
                );
            }
        }
    }

    #[test]
    fn wrong_count_fails() {
        let text = good_log(2, 1, "process", 500.0).replace(
            "count=5761455 expected=5761455 ok=1",
            "count=5761454 expected=5761455 ok=0",
        );
        assert!(kinds(&check(&text, 2, 1)).contains(&Kind::WrongCount));
        let ok_but_wrong =
            good_log(1, 1, "process", 500.0).replace("expected=5761455", "expected=1");
        assert!(kinds(&check(&ok_but_wrong, 1, 1)).contains(&Kind::WrongCount));
    }

    #[test]
    fn missing_scale_line_fails() {
        let text = good_log(2, 2, "process", 500.0);
        assert!(kinds(&check(&text, 2, 3)).contains(&Kind::MissingLine));
        let garbled = text.replacen("ms=500", "ms=fast", 1);
        assert!(kinds(&check(&garbled, 2, 2)).contains(&Kind::MissingLine));
        let no_workers: String = text
            .lines()
            .filter(|l| !l.starts_with("WORKER idx=1"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(kinds(&check(&no_workers, 2, 2)).contains(&Kind::MissingLine));
    }

    #[test]
    fn failed_boot_and_panic_fail() {
        let log = BootLog::parse(good_log(2, 1, "process", 5.0).lines().chain(["PANIC boom"]));
        let f = check_boot("b", &log, false, "no verdict", &expect(2, 1));
        assert_eq!(kinds(&f), vec![Kind::Panic, Kind::Boot]);
        let j = judge(f, Accel::Tcg, None);
        assert_eq!(j.reason, Some("panic"));
    }

    #[test]
    fn idle_cpu_fails_process_mode() {
        let text = good_log(2, 1, "process", 500.0).replace("busy=490,490", "busy=490,100");
        let f = check(&text, 2, 1);
        assert_eq!(kinds(&f), vec![Kind::IdleCpu]);
        let missing = good_log(2, 1, "process", 500.0).replace("busy=490,490", "busy=490");
        assert_eq!(kinds(&check(&missing, 2, 1)), vec![Kind::IdleCpu]);
    }

    #[test]
    fn wrong_cpu_count_fails() {
        let text = good_log(1, 1, "process", 500.0);
        assert!(kinds(&check(&text, 2, 1)).contains(&Kind::CpuCount));
    }

    #[test]
    fn serialized_spans_fail() {
        // Worker 1 starts when worker 0 ends: no overlap at all.
        let text = good_log(2, 1, "thread", 500.0).replace(
            "idx=1 count=1000 start=1001 end=500000990",
            "idx=1 count=1000 start=500001000 end=1000001000",
        );
        let f = check(&text, 2, 1);
        assert_eq!(kinds(&f), vec![Kind::Serialized], "{f:?}");
        assert_eq!(judge(f, Accel::Kvm, Some(2.0)).reason, Some("serialized"));
    }

    #[test]
    fn serialized_on_one_cpu_fails() {
        let text =
            good_log(2, 1, "thread", 500.0).replace("end=500000990 cpus=1", "end=500000990 cpus=0");
        let f = check(&text, 2, 1);
        assert_eq!(kinds(&f), vec![Kind::Serialized]);
        assert!(f[0].text.contains("1 distinct CPU"));
    }

    #[test]
    fn low_busy_ratio_fails() {
        // Each CPU busy 60% of the section: no idle CPU, but 1.2 < 0.8 * 2.
        let text = good_log(2, 1, "thread", 500.0).replace("busy=490,490", "busy=300,300");
        let f = check(&text, 2, 1);
        assert_eq!(kinds(&f), vec![Kind::Serialized]);
        assert!(f[0].text.contains("busy/wall"));
    }

    /// A two-CPU ring boot: little user time, every CPU ran a worker.
    fn ring_log(cpus0: &str, cpus1: &str) -> String {
        format!(
            "WORKER idx=0 count=20 start=0 end=100 cpus={cpus0} partner_cpus={cpus1}\n\
             WORKER idx=1 count=20 start=0 end=100 cpus={cpus1} partner_cpus={cpus0}\n\
             SCALE run=1 mode=thread workers=2 cpus=2 lo=0 hi=0 count=40 expected=40 ok=1 cycles=100 ms=500 busy=3,4 kind=ring ops=40 ops_per_s=80\n"
        )
    }

    fn ring_expect() -> Expect {
        Expect {
            smp: 2,
            repeat: 1,
            lo: 0,
            hi: 0,
            expected: 40,
        }
    }

    #[test]
    fn ring_runs_are_judged_by_worker_cpus() {
        let ok = BootLog::parse(ring_log("0", "1").lines());
        assert_eq!(check_boot("b", &ok, true, "", &ring_expect()), vec![]);
        let one_cpu = BootLog::parse(ring_log("0", "0").lines());
        let f = check_boot("b", &one_cpu, true, "", &ring_expect());
        assert!(kinds(&f).contains(&Kind::IdleCpu), "{f:?}");
        let wrong =
            ring_log("0", "1").replace("count=40 expected=40 ok=1", "count=39 expected=40 ok=0");
        let f = check_boot(
            "b",
            &BootLog::parse(wrong.lines()),
            true,
            "",
            &ring_expect(),
        );
        assert!(kinds(&f).contains(&Kind::WrongCount));
    }

    #[test]
    fn contended_locks_fail() {
        let t = |acquires, contended| LockTotal {
            acquires,
            contended,
            spins: 0,
        };
        let locks = [
            ("quiet".to_string(), t(100_000, 1000)),
            ("busy".to_string(), t(100_000, 1001)),
            ("rare".to_string(), t(999, 999)),
        ];
        let f = check_lockstats(2, locks.iter().map(|(n, t)| (n, t)));
        assert_eq!(kinds(&f), vec![Kind::Contended]);
        assert!(f[0].text.contains("lock busy"), "{}", f[0].text);
        assert!(check_lockstats(1, locks.iter().map(|(n, t)| (n, t))).is_empty());
        assert_eq!(judge(f, Accel::Kvm, Some(1.9)).reason, Some("contended"));
    }

    #[test]
    fn overlap_definition() {
        assert_eq!(overlap_fraction(&[(0, 100), (0, 100)], 2), 1.0);
        assert_eq!(overlap_fraction(&[(0, 100), (100, 200)], 2), 0.0);
        assert_eq!(overlap_fraction(&[(0, 100), (50, 150)], 2), 50.0 / 150.0);
        assert_eq!(overlap_fraction(&[(0, 100), (10, 100), (20, 90)], 3), 0.7);
        assert_eq!(overlap_fraction(&[(0, 100), (10, 100), (20, 90)], 2), 0.9);
        assert_eq!(overlap_fraction(&[], 2), 0.0);
        assert_eq!(overlap_fraction(&[(5, 5), (9, 3)], 1), 0.0);
    }

    #[test]
    fn speedup_rule_only_under_kvm() {
        assert!(judge(vec![], Accel::Kvm, Some(1.9)).pass);
        let slow = judge(vec![], Accel::Kvm, Some(1.2));
        assert!(!slow.pass);
        assert_eq!(slow.reason, Some("slow"));
        assert!(!judge(vec![], Accel::Kvm, None).pass);
        let tcg = judge(vec![], Accel::Tcg, Some(0.5));
        assert!(tcg.pass);
        assert_eq!(tcg.notes.len(), 1);
    }
}
