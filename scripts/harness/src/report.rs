//! The benchmark's written results: `summary.json`, `summary.md`, the UTC
//! stamp naming the results folder, and the `latest` symlink.
//!
//! summary.json carries at least the fields CONTRACTS.md section 5 names;
//! per-CPU-count results are in the `per_cpu_count` array.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;

/// Everything one `harness scale` invocation measured and decided.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `[scenario] name`.
    pub scenario: String,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Why that accelerator.
    pub accel_reason: String,
    /// `iso` or `pvh`.
    pub boot: String,
    /// The QEMU machine: `pc` (iso) or `microvm` (pvh).
    pub machine: String,
    /// Why that boot method.
    pub boot_reason: String,
    /// Host CPUs (`available_parallelism`).
    pub host_cpus: usize,
    /// Boots per CPU count.
    pub runs: u32,
    /// Timed runs per boot.
    pub repeat: u32,
    /// Median 1-to-2 CPU speedup required under KVM.
    pub threshold: f64,
    /// CPU counts, in the order booted.
    pub smp_list: Vec<u32>,
    /// Workload range start.
    pub lo: u64,
    /// Workload range end.
    pub hi: u64,
    /// Expected count (manifest).
    pub expected: u64,
    /// Guest-reported mode (`process` or `thread`), if any SCALE line came.
    pub mode: Option<String>,
    /// Per CPU count.
    pub per_cpu_count: Vec<PerCpuCount>,
    /// CPU count -> median 1-CPU ms / median N-CPU ms.
    pub speedup: BTreeMap<u32, f64>,
    /// `speedup[2]`, if measured.
    pub speedup2: Option<f64>,
    /// 95% bootstrap interval of `speedup2`, `[lo, hi]` (stats.rs).
    pub speedup2_ci: Option<[f64; 2]>,
    /// Worker count -> median native ms.
    pub native: BTreeMap<u32, f64>,
    /// Worker count -> every native run's ms.
    pub native_ms: BTreeMap<u32, Vec<f64>>,
    /// Worker count -> native 1-thread median / native N-thread median.
    pub native_speedup: BTreeMap<u32, f64>,
    /// `native_speedup[2]`, if measured.
    pub native_speedup2: Option<f64>,
    /// 95% bootstrap interval of `native_speedup2`.
    pub native_speedup2_ci: Option<[f64; 2]>,
    /// Guest over native 1-to-2 speedup: `speedup2 / native_speedup2`.
    pub guest_native_ratio2: Option<f64>,
    /// 95% bootstrap interval of `guest_native_ratio2` (guest and native
    /// runs resampled together).
    pub guest_native_ratio2_ci: Option<[f64; 2]>,
    /// How the intervals were computed.
    pub bootstrap: BootstrapInfo,
    /// A ring workload's figures (ring-scale), absent for primes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring: Option<RingSummary>,
    /// `PASS` or `FAIL`.
    pub verdict: String,
    /// The RESULT line's reason word when failing.
    pub reason: Option<String>,
    /// Every finding, most serious first.
    pub reasons: Vec<String>,
    /// Remarks that are not failures.
    pub notes: Vec<String>,
    /// Every boot, in the order made.
    pub boots: Vec<BootRecord>,
}

/// The bootstrap's parameters, recorded so an interval can be reproduced.
#[derive(Debug, Serialize)]
pub struct BootstrapInfo {
    /// Resamples.
    pub iterations: usize,
    /// SplitMix64 seed.
    pub seed: u64,
    /// Coverage (0.95).
    pub level: f64,
    /// What is resampled.
    pub method: &'static str,
}

impl Default for BootstrapInfo {
    fn default() -> Self {
        Self {
            iterations: crate::stats::BOOTSTRAP_ITERATIONS,
            seed: crate::stats::BOOTSTRAP_SEED,
            level: crate::stats::BOOTSTRAP_LEVEL,
            method: "percentile bootstrap: every timed run of each CPU count (and every native run of each worker count) resampled with replacement, median ratio recomputed",
        }
    }
}

/// A ring workload's figures (ring-scale): its speedups in [`Summary`] are
/// throughput ratios; these are the rates themselves.
#[derive(Debug, Serialize)]
pub struct RingSummary {
    /// Operations per worker per timed run (the manifest's mix).
    pub ops_per_worker: u64,
    /// CPU count -> every timed run's operations per second, by boot.
    pub ops_per_s: BTreeMap<u32, Vec<Vec<f64>>>,
    /// CPU count -> median operations per second.
    pub median_ops_per_s: BTreeMap<u32, f64>,
    /// What the native anchor is, or why there is none.
    pub native_io_uring: String,
    /// Thread count -> median native io_uring NOPs per second.
    pub native_ops_per_s: BTreeMap<u32, f64>,
    /// CPU count -> lock name -> LOCKSTAT totals over its boots: the
    /// timed-section lines (summed over the timed runs) of a boot that
    /// printed them, else its end-of-scenario lines.
    pub lockstat: BTreeMap<u32, BTreeMap<String, crate::verdict::LockTotal>>,
    /// What the LOCKSTAT totals cover: "timed", "whole scenario", or
    /// "timed where printed, else whole scenario".
    pub lockstat_section: String,
}

/// One CPU count's guest results.
#[derive(Debug, Serialize)]
pub struct PerCpuCount {
    /// CPUs given to QEMU.
    pub cpus: u32,
    /// Workers the guest reported (first SCALE line).
    pub workers: Option<u32>,
    /// Every timed run's ms, grouped by boot.
    pub ms: Vec<Vec<f64>>,
    /// Median over all timed runs.
    pub median_ms: Option<f64>,
    /// Count reported (first SCALE line).
    pub count: Option<u64>,
    /// Expected count.
    pub expected: u64,
    /// Per timed run, each CPU's busy ms.
    pub busy: Vec<Vec<f64>>,
}

/// One boot.
#[derive(Debug, Serialize)]
pub struct BootRecord {
    /// CPUs.
    pub cpus: u32,
    /// Boot number for this CPU count (1-based).
    pub run: u32,
    /// `PASS`, `FAIL` or `ERROR` as the runner judged it.
    pub status: String,
    /// The runner's reason.
    pub reason: String,
    /// Wall seconds.
    pub seconds: f64,
    /// Raw log, relative to the results folder.
    pub log: String,
    /// `CPU <id> online` lines seen.
    pub cpus_online: usize,
    /// Seconds from QEMU's start to the first serial line.
    pub first_line_seconds: Option<f64>,
    /// The native timed run made right before this boot (ms, workers =
    /// CPUs), if it succeeded.
    pub native_ms: Option<f64>,
}

/// Writes summary.json and summary.md into `dir`.
pub fn write(dir: &Path, summary: &Summary) -> Result<()> {
    let json = serde_json::to_string_pretty(summary).context("encoding summary.json")?;
    std::fs::write(dir.join("summary.json"), json + "\n").context("writing summary.json")?;
    std::fs::write(dir.join("summary.md"), markdown(summary)).context("writing summary.md")?;
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

/// `lo-hi` with two decimals, `-` when missing.
pub fn fmt_ci(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(|| "-".to_string(), |[lo, hi]| format!("{lo:.2}-{hi:.2}"))
}

/// The human-readable summary.
pub fn markdown(s: &Summary) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# {} scaling benchmark\n", s.scenario);
    let _ = writeln!(
        m,
        "**Verdict: {}**{} (median speedup2 {}, 95% interval {}, against threshold {:.2}; accel={}, boot={}, machine={}, {} host CPUs)\n",
        s.verdict,
        s.reason
            .as_ref()
            .map_or(String::new(), |r| format!(" ({r})")),
        fmt_opt(s.speedup2, 2),
        fmt_ci(s.speedup2_ci),
        s.threshold,
        s.accel,
        s.boot,
        s.machine,
        s.host_cpus
    );
    let _ = writeln!(
        m,
        "1-to-2 CPU speedup: guest {} (95% interval {}), native {} (95% interval {}), guest/native {} (95% interval {}). \
         The intervals are {}-resample percentile bootstraps over the timed runs (seed {:#x}); the verdict is on the median. \
         Each boot follows one native run with as many threads as the boot has CPUs.\n",
        fmt_opt(s.speedup2, 2),
        fmt_ci(s.speedup2_ci),
        fmt_opt(s.native_speedup2, 2),
        fmt_ci(s.native_speedup2_ci),
        fmt_opt(s.guest_native_ratio2, 2),
        fmt_ci(s.guest_native_ratio2_ci),
        s.bootstrap.iterations,
        s.bootstrap.seed
    );
    match &s.ring {
        Some(r) => {
            let _ = writeln!(
                m,
                "Workload: ring, {} operations per worker per timed run, mode {}; {} boots per CPU count, {} timed runs per boot. \
                 Speedups are throughput ratios (operations per second against 1 CPU).\n",
                r.ops_per_worker,
                s.mode.as_deref().unwrap_or("?"),
                s.runs,
                s.repeat
            );
            ring_markdown(&mut m, s, r);
        }
        None => {
            let _ = writeln!(
                m,
                "Workload: primes in [{}, {}), expected {}, mode {}; {} boots per CPU count, {} timed runs per boot.\n",
                s.lo,
                s.hi,
                s.expected,
                s.mode.as_deref().unwrap_or("?"),
                s.runs,
                s.repeat
            );
        }
    }
    m.push_str("| CPUs | workers | median ms | speedup | native median ms | native speedup | count | every run (ms, by boot) |\n");
    m.push_str("|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for p in &s.per_cpu_count {
        let runs: Vec<String> =
            p.ms.iter()
                .map(|boot| {
                    boot.iter()
                        .map(|v| format!("{v:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            p.cpus,
            p.workers.map_or("-".into(), |w| w.to_string()),
            fmt_opt(p.median_ms, 1),
            fmt_opt(s.speedup.get(&p.cpus).copied(), 2),
            fmt_opt(s.native.get(&p.cpus).copied(), 1),
            fmt_opt(s.native_speedup.get(&p.cpus).copied(), 2),
            p.count.map_or("-".into(), |c| c.to_string()),
            runs.join(" / ")
        );
    }
    if !s.reasons.is_empty() {
        m.push_str("\n## Why it failed\n\n");
        for r in &s.reasons {
            let _ = writeln!(m, "- {r}");
        }
    }
    if !s.notes.is_empty() {
        m.push_str("\n## Notes\n\n");
        for n in &s.notes {
            let _ = writeln!(m, "- {n}");
        }
    }
    let _ = writeln!(
        m,
        "\n## Boots ({} on -machine {})\n\n| CPUs | run | status | seconds | first line s | CPUs online | native ms before | log | reason |\n|---:|---:|---|---:|---:|---:|---:|---|---|",
        s.boot, s.machine
    );
    for b in &s.boots {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
            b.cpus,
            b.run,
            b.status,
            b.seconds,
            fmt_opt(b.first_line_seconds, 2),
            b.cpus_online,
            fmt_opt(b.native_ms, 0),
            b.log,
            b.reason.replace('|', "\\|")
        );
    }
    m.push_str("\nPlot: [speedup.svg](speedup.svg). Raw serial logs: `raw/`.\n");
    m
}

/// How the LOCKSTAT table names what its totals cover.
fn lockstat_scope(section: &str) -> String {
    if section == "timed" {
        "timed sections only, summed over the timed runs".to_string()
    } else {
        section.to_string()
    }
}

/// The ring tables: operations per second beside native io_uring, and
/// the LOCKSTAT totals.
fn ring_markdown(m: &mut String, s: &Summary, r: &RingSummary) {
    let _ = writeln!(m, "Native io_uring: {}.\n", r.native_io_uring);
    m.push_str("| CPUs | median ops/s | speedup | native io_uring ops/s | native speedup | every run (ops/s, by boot) |\n");
    m.push_str("|---:|---:|---:|---:|---:|---|\n");
    for (cpus, runs) in &r.ops_per_s {
        let runs: Vec<String> = runs
            .iter()
            .map(|b| {
                b.iter()
                    .map(|v| format!("{v:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let _ = writeln!(
            m,
            "| {cpus} | {} | {} | {} | {} | {} |",
            fmt_opt(r.median_ops_per_s.get(cpus).copied(), 0),
            fmt_opt(s.speedup.get(cpus).copied(), 2),
            fmt_opt(r.native_ops_per_s.get(cpus).copied(), 0),
            fmt_opt(s.native_speedup.get(cpus).copied(), 2),
            runs.join(" / ")
        );
    }
    if r.lockstat.is_empty() {
        m.push_str("\nLOCKSTAT: none printed (kernel built without lock statistics).\n\n");
        return;
    }
    let _ = writeln!(
        m,
        "\nLOCKSTAT, summed over the boots of each CPU count ({}; more than {:.0}% contended of at least {} acquisitions fails at 2+ CPUs):\n",
        lockstat_scope(&r.lockstat_section),
        crate::verdict::MAX_CONTENDED_FRACTION * 100.0,
        crate::verdict::LOCKSTAT_MIN_ACQUIRES
    );
    m.push_str("| CPUs | lock | acquires | contended | contended % | spins |\n|---:|---|---:|---:|---:|---:|\n");
    for (cpus, locks) in &r.lockstat {
        for (name, t) in locks {
            let _ = writeln!(
                m,
                "| {cpus} | {name} | {} | {} | {:.3} | {} |",
                t.acquires,
                t.contended,
                t.fraction() * 100.0,
                t.spins
            );
        }
    }
    m.push('\n');
}

/// The current UTC time as `YYYYMMDDTHHMMSSZ`.
pub fn utc_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    stamp_from_unix(secs)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the Unix epoch.
pub fn stamp_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Points `<parent>/latest` at `stamp` (a relative symlink), replacing it.
pub fn point_latest(parent: &Path, stamp: &str) -> Result<()> {
    let latest = parent.join("latest");
    let tmp = parent.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(stamp, &tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, &latest).with_context(|| format!("replacing {}", latest.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(stamp_from_unix(0), "19700101T000000Z");
        assert_eq!(stamp_from_unix(951_782_400), "20000229T000000Z");
        assert_eq!(stamp_from_unix(1_764_090_000), "20251125T170000Z");
    }

    #[test]
    fn latest_symlink_is_replaced() {
        let dir = std::env::temp_dir().join(format!("harness-latest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a")).expect("mkdir");
        std::fs::create_dir_all(dir.join("b")).expect("mkdir");
        point_latest(&dir, "a").expect("link a");
        point_latest(&dir, "b").expect("link b");
        assert_eq!(
            std::fs::read_link(dir.join("latest")).expect("link"),
            Path::new("b")
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
