//! `harness scale`: the scaling benchmark (CONTRACTS.md section 5).
//!
//! Builds the image once (with the `repeat` override) for the chosen boot
//! method (`auto`: PVH under KVM on PVM, where the GRUB path costs 40 s a
//! boot), then boots it `runs` times per CPU count, interleaved (run 1:
//! every CPU count, run 2: every CPU count, ...) so slow drift on the host
//! hits every CPU count alike. Right before each boot it times one native
//! run of the workload with as many threads as the boot has CPUs, so the
//! guest and native figures of a CPU count come from the same host minutes.
//! Every raw log is kept (its first line, `# qemu: ...`, names the machine
//! and boot method); the summary (median speedups, their 95% bootstrap
//! intervals, the guest-to-native ratio), plot and verdict are written next
//! to them, and the last stdout line is the `RESULT` line.
//!
//! A ring workload (`kind = "ring"`, ring-scale) does a fixed number of
//! operations per worker, so its work grows with the CPU count: its
//! speedups are throughput ratios (operations per second at N CPUs over
//! those at 1), computed as ratios of the time per worker's share
//! (`ms / workers`); `ms` stays the raw wall time. Its native anchor is
//! io_uring NOPs on the host ([`native_ring`]), one ring per thread, timed
//! the same way; if io_uring is unavailable the summary says so. Its
//! `LOCKSTAT` lines are summed per CPU count and judged
//! ([`verdict::check_lockstats`]): a boot's timed-section lines
//! (`section=timed`, summed over its timed runs) when it printed any, else
//! its end-of-scenario lines ([`BootLog::judged_lockstats`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::ScaleOpts;
use crate::manifest::{self, WorkloadInfo};
use crate::mkiso;
use crate::native;
use crate::native_ring;
use crate::parse::BootLog;
use crate::qemu::{self, Accel, AccelRequest, BootMethod, Image, Purpose};
use crate::report::{self, BootRecord, BootstrapInfo, PerCpuCount, RingSummary, Summary};
use crate::runner::{self, BootSpec, STATUS_FAIL, STATUS_PASS};
use crate::stats;
use crate::svg;
use crate::verdict::{self, Expect, Finding, Kind, LockTotal, THRESHOLD};

/// Default per-boot timeout for the benchmark: an ISO boot under PVM takes
/// up to ~45 s, and the timed runs come on top.
pub const DEFAULT_SCALE_TIMEOUT: Duration = Duration::from_secs(600);

/// One boot's results, before aggregation.
struct Boot {
    record: BootRecord,
    log: BootLog,
}

/// `harness scale`. Even when the benchmark cannot run (a bad manifest, no
/// KVM when KVM was requested, a full disk), the last stdout line is a
/// `RESULT ... reason=error FAIL` line.
pub fn scale_command(opts: &ScaleOpts) -> Result<u8> {
    let mut accel = match opts.boot.accel {
        AccelRequest::Tcg => Accel::Tcg,
        _ => Accel::Kvm,
    };
    let fallback_name = opts
        .manifest
        .file_stem()
        .map_or_else(|| "scale".to_string(), |s| s.to_string_lossy().into_owned());
    match run_benchmark(opts, &mut accel) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("harness: error: {e:#}");
            let scenario = manifest::load(&opts.manifest).map_or(fallback_name, |m| m.name);
            println!("FAIL error: {e:#}");
            println!("RESULT {scenario} speedup2=0.00 speedup2_ci=0.00-0.00 threshold={THRESHOLD:.2} accel={} reason=error FAIL", accel.name());
            Ok(1)
        }
    }
}

/// The benchmark proper; `accel` is updated as soon as it is chosen.
fn run_benchmark(opts: &ScaleOpts, accel_out: &mut Accel) -> Result<u8> {
    let info = manifest::load(&opts.manifest)?;
    let scenario = info.name.clone();
    let Some(work) = info.workload else {
        bail!("{} has no [workload] section", opts.manifest.display());
    };
    let (accel, accel_reason) =
        qemu::choose(opts.boot.accel, Purpose::Benchmark, qemu::HostKvm::probe())?;
    *accel_out = accel;
    eprintln!("harness: accel={} ({accel_reason})", accel.name());
    if accel == Accel::Tcg {
        eprintln!("harness: accel=tcg: timings mean nothing under TCG; judging correctness and concurrency only");
    }
    let (method, boot_reason) = qemu::choose_boot(opts.boot.boot, accel, qemu::HostKvm::probe());
    eprintln!(
        "harness: boot={} machine={} ({boot_reason})",
        method.name(),
        method.machine()
    );
    let scenario_dir = opts.out.join(&scenario);
    let (stamp, dir) = fresh_stamp_dir(&scenario_dir)?;
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).with_context(|| format!("creating {}", raw.display()))?;
    report::point_latest(&scenario_dir, &stamp)?;
    eprintln!("harness: results in {}", dir.display());

    let mut findings = Vec::new();
    let image = match mkiso::build(
        &opts.mkiso,
        &opts.manifest,
        &scenario_dir.join(".iso"),
        Some(opts.repeat),
        &[method],
    )
    .and_then(|b| b.image(method))
    {
        Ok(image) => Some(image),
        Err(e) => {
            findings.push(Finding {
                kind: Kind::Boot,
                text: format!("building the image: {e:#}"),
            });
            None
        }
    };
    let native_ring_status = work.ring.map(|_| match native_ring::probe() {
        Ok(()) => Ok(()),
        Err(why) => {
            eprintln!("harness: native io_uring unavailable ({why}): no native anchor");
            Err(why)
        }
    });
    let (boots, native_ms) = match &image {
        Some(image) => run_boots(opts, image, accel, &raw, &work, &mut findings),
        None => (Vec::new(), BTreeMap::new()),
    };
    let chosen = Chosen {
        accel,
        accel_reason,
        method,
        boot_reason,
    };
    let mut summary = summarize(opts, &scenario, chosen, &work, boots, native_ms, findings);
    if let (Some(ring), Some(Err(why))) = (summary.ring.as_mut(), native_ring_status) {
        ring.native_io_uring = format!("unavailable on this host: {why}");
        summary.notes.push(format!(
            "native io_uring unavailable on this host ({why}): no native anchor"
        ));
    }
    report::write(&dir, &summary)?;
    let plot = svg::speedup_svg(
        &format!(
            "{} speedup (accel={}, boot={})",
            summary.scenario, summary.accel, summary.boot
        ),
        &opts.smp_list,
        &summary.speedup,
        &summary.native_speedup,
    );
    std::fs::write(dir.join("speedup.svg"), plot).context("writing speedup.svg")?;
    print_result(&summary, &dir);
    Ok(if summary.verdict == "PASS" { 0 } else { 1 })
}

/// The accelerator and boot method, with the reasons printed and recorded.
struct Chosen {
    accel: Accel,
    accel_reason: String,
    method: BootMethod,
    boot_reason: String,
}

/// `<scenario_dir>/<UTC stamp>`, made unique with a suffix if needed.
fn fresh_stamp_dir(scenario_dir: &Path) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(scenario_dir)
        .with_context(|| format!("creating {}", scenario_dir.display()))?;
    let base = report::utc_stamp();
    for i in 1..100 {
        let stamp = if i == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let dir = scenario_dir.join(&stamp);
        if std::fs::create_dir(&dir).is_ok() {
            return Ok((stamp, dir));
        }
    }
    bail!(
        "cannot create a fresh results folder under {}",
        scenario_dir.display()
    )
}

/// One native timed run with `threads` threads; its ms, or a finding (only
/// the first failure per thread count is reported).
fn native_once(
    w: &WorkloadInfo,
    threads: u32,
    failed: &mut Vec<u32>,
    findings: &mut Vec<Finding>,
) -> Option<f64> {
    if let Some(r) = w.ring {
        if native_ring::probe().is_err() {
            return None;
        }
        let batch = r.nops.clamp(1, 64);
        let want = native_ring::NATIVE_RING_OPS * u64::from(threads);
        let outcome = native_ring::run_once(threads, native_ring::NATIVE_RING_OPS, batch).and_then(
            |(ms, ops)| {
                if ops == want {
                    Ok(ms)
                } else {
                    Err(anyhow::anyhow!(
                        "native io_uring: {ops} of {want} NOPs completed"
                    ))
                }
            },
        );
        return match outcome {
            Ok(ms) => Some(ms),
            Err(e) => {
                if !failed.contains(&threads) {
                    failed.push(threads);
                    findings.push(Finding {
                        kind: Kind::WrongCount,
                        text: format!("native: {e:#}"),
                    });
                }
                None
            }
        };
    }
    match native::measure(w.lo, w.hi, w.expected, threads, 1) {
        Ok(times) => times.first().copied(),
        Err(e) => {
            if !failed.contains(&threads) {
                failed.push(threads);
                findings.push(Finding {
                    kind: Kind::WrongCount,
                    text: format!("native: {e:#}"),
                });
            }
            None
        }
    }
}

/// Every boot, interleaved by run, each right after one native run with as
/// many threads as it has CPUs; progress on stderr. Returns the boots and
/// the native runs (worker count -> ms of every run, in order).
fn run_boots(
    opts: &ScaleOpts,
    image: &Image,
    accel: Accel,
    raw: &Path,
    w: &WorkloadInfo,
    findings: &mut Vec<Finding>,
) -> (Vec<Boot>, BTreeMap<u32, Vec<f64>>) {
    let timeout = opts.boot.timeout.unwrap_or(DEFAULT_SCALE_TIMEOUT);
    let total = opts.runs as usize * opts.smp_list.len();
    let started = Instant::now();
    let mut boots = Vec::new();
    let mut native_ms: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut native_failed = Vec::new();
    let boot_name = image.method().name();
    for run in 1..=opts.runs {
        for &smp in &opts.smp_list {
            let done = boots.len();
            eprintln!(
                "harness: boot {} of {total}: run {run} of {}, smp={smp}, boot={boot_name}; {}",
                done + 1,
                opts.runs,
                progress(started.elapsed(), done, total)
            );
            let native = native_once(w, smp, &mut native_failed, findings);
            if let Some(ms) = native {
                eprintln!("harness:   native {smp} thread(s): {ms:.0} ms");
                native_ms.entry(smp).or_default().push(ms);
            }
            let name = format!("smp{smp}-run{run}.log");
            let log_path = raw.join(&name);
            let spec = BootSpec {
                image,
                smp,
                accel,
                mem: &opts.boot.mem,
                cpu_model: opts.boot.cpu_model.as_deref(),
                timeout,
                log: Some(&log_path),
                echo: false,
            };
            let label = format!("smp={smp} boot {run}");
            let boot = match runner::boot(&spec) {
                Ok(o) => {
                    let log = BootLog::parse(o.lines.iter().map(String::as_str));
                    let e = Expect {
                        smp,
                        repeat: opts.repeat,
                        lo: w.lo,
                        hi: w.hi,
                        expected: w.expected_for(smp),
                    };
                    findings.extend(verdict::check_boot(
                        &label,
                        &log,
                        o.status == STATUS_PASS,
                        &o.reason,
                        &e,
                    ));
                    let ms: Vec<String> = log
                        .runs
                        .iter()
                        .map(|r| format!("{:.0}", r.scale.ms))
                        .collect();
                    eprintln!(
                        "harness:   {} in {:.1} s (first line after {}), ms=[{}]",
                        status_word(o.status),
                        o.elapsed.as_secs_f64(),
                        o.first_line
                            .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
                        ms.join(" ")
                    );
                    let record = BootRecord {
                        cpus: smp,
                        run,
                        status: status_word(o.status).into(),
                        reason: o.reason,
                        seconds: o.elapsed.as_secs_f64(),
                        log: format!("raw/{name}"),
                        cpus_online: log.cpus_online.len(),
                        first_line_seconds: o.first_line.map(|d| d.as_secs_f64()),
                        native_ms: native,
                    };
                    Boot { record, log }
                }
                Err(e) => {
                    eprintln!("harness:   ERROR {e:#}");
                    findings.push(Finding {
                        kind: Kind::Boot,
                        text: format!("{label}: {e:#}"),
                    });
                    let record = BootRecord {
                        cpus: smp,
                        run,
                        status: "ERROR".into(),
                        reason: format!("{e:#}"),
                        seconds: 0.0,
                        log: format!("raw/{name}"),
                        cpus_online: 0,
                        first_line_seconds: None,
                        native_ms: native,
                    };
                    Boot {
                        record,
                        log: BootLog::default(),
                    }
                }
            };
            boots.push(boot);
        }
    }
    eprintln!(
        "harness: {total} boots in {}",
        human(started.elapsed().as_secs_f64())
    );
    (boots, native_ms)
}

fn status_word(status: u8) -> &'static str {
    match status {
        STATUS_PASS => "PASS",
        STATUS_FAIL => "FAIL",
        _ => "ERROR",
    }
}

/// `elapsed 1m20s, about 2m40s left` (linear estimate).
fn progress(elapsed: Duration, done: usize, total: usize) -> String {
    let left = if done == 0 {
        "remaining unknown".to_string()
    } else {
        let per = elapsed.as_secs_f64() / done as f64;
        format!("about {} left", human(per * (total - done) as f64))
    };
    format!("elapsed {}, {left}", human(elapsed.as_secs_f64()))
}

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Aggregates boots and native runs and applies the verdict rules.
fn summarize(
    opts: &ScaleOpts,
    scenario: &str,
    chosen: Chosen,
    w: &WorkloadInfo,
    boots: Vec<Boot>,
    native_ms: BTreeMap<u32, Vec<f64>>,
    findings: Vec<Finding>,
) -> Summary {
    let accel = chosen.accel;
    let per_cpu_count: Vec<PerCpuCount> = opts
        .smp_list
        .iter()
        .map(|&smp| per_cpu(smp, w.expected_for(smp), &boots))
        .collect();
    // What the speedups are ratios of: the wall time for primes (fixed
    // total work), the time per worker's share for ring (fixed work per
    // worker), so that a speedup is always a throughput ratio.
    let share = |workers: Option<u32>| -> f64 {
        match w.ring {
            Some(_) => f64::from(workers.unwrap_or(1).max(1)),
            None => 1.0,
        }
    };
    let basis: BTreeMap<u32, Vec<f64>> = per_cpu_count
        .iter()
        .map(|p| {
            let d = share(p.workers);
            (p.cpus, p.ms.iter().flatten().map(|ms| ms / d).collect())
        })
        .collect();
    let medians: BTreeMap<u32, f64> = basis
        .iter()
        .filter_map(|(&n, v)| Some((n, stats::median(v)?)))
        .collect();
    let speedup = stats::speedups(&medians);
    let speedup2 = speedup.get(&2).copied();
    let native: BTreeMap<u32, f64> = native_ms
        .iter()
        .filter_map(|(&n, v)| Some((n, stats::median(v)?)))
        .collect();
    let native_basis: BTreeMap<u32, Vec<f64>> = native_ms
        .iter()
        .map(|(&n, v)| (n, v.iter().map(|ms| ms / share(Some(n))).collect()))
        .collect();
    let native_medians: BTreeMap<u32, f64> = native_basis
        .iter()
        .filter_map(|(&n, v)| Some((n, stats::median(v)?)))
        .collect();
    let native_speedup = stats::speedups(&native_medians);
    let native_speedup2 = native_speedup.get(&2).copied();
    let no_runs = Vec::new();
    let g1 = basis.get(&1).unwrap_or(&no_runs);
    let g2 = basis.get(&2).unwrap_or(&no_runs);
    let n1 = native_basis.get(&1).unwrap_or(&no_runs);
    let n2 = native_basis.get(&2).unwrap_or(&no_runs);
    let pair = |ci: Option<(f64, f64)>| ci.map(|(lo, hi)| [lo, hi]);
    let speedup2_ci = pair(stats::speedup_interval(g1, g2));
    let native_speedup2_ci = pair(stats::speedup_interval(n1, n2));
    let guest_native_ratio2 = speedup2
        .zip(native_speedup2)
        .and_then(|(g, n)| stats::ratio(g, n));
    let guest_native_ratio2_ci = pair(stats::speedup_ratio_interval(g1, g2, n1, n2));
    let mut findings = findings;
    let mut ring_notes = Vec::new();
    let ring = w.ring.map(|r| {
        let s = ring_summary(r.ops_per_worker, &per_cpu_count, &native_ms, &boots);
        for (&cpus, locks) in &s.lockstat {
            findings.extend(verdict::check_lockstats(cpus, locks));
        }
        if s.lockstat.is_empty() {
            ring_notes.push("no LOCKSTAT lines: the kernel was built without lock statistics (KERNEL_FEATURES=lockstat)".to_string());
        }
        s
    });
    let mut judgement = verdict::judge(findings, accel, speedup2);
    judgement.notes.extend(ring_notes);
    if cfg!(debug_assertions) {
        judgement
            .notes
            .push("the harness is a debug build: native timings are not representative".into());
    }
    let mode = boots
        .iter()
        .flat_map(|b| b.log.runs.first())
        .map(|r| r.scale.mode.clone())
        .next();
    Summary {
        scenario: scenario.to_string(),
        accel: accel.name().to_string(),
        accel_reason: chosen.accel_reason,
        boot: chosen.method.name().to_string(),
        machine: chosen.method.machine().to_string(),
        boot_reason: chosen.boot_reason,
        host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        runs: opts.runs,
        repeat: opts.repeat,
        threshold: THRESHOLD,
        smp_list: opts.smp_list.clone(),
        lo: w.lo,
        hi: w.hi,
        expected: w.expected,
        mode,
        per_cpu_count,
        speedup,
        speedup2,
        speedup2_ci,
        native,
        native_ms,
        native_speedup,
        native_speedup2,
        native_speedup2_ci,
        guest_native_ratio2,
        guest_native_ratio2_ci,
        bootstrap: BootstrapInfo::default(),
        ring,
        verdict: if judgement.pass { "PASS" } else { "FAIL" }.to_string(),
        reason: judgement.reason.map(str::to_string),
        reasons: judgement.findings.into_iter().map(|f| f.text).collect(),
        notes: judgement.notes,
        boots: boots.into_iter().map(|b| b.record).collect(),
    }
}

/// A ring workload's figures: operations per second of every timed run
/// (count / ms), their medians, the native io_uring rate and the LOCKSTAT
/// totals per CPU count.
fn ring_summary(
    ops_per_worker: u64,
    per_cpu_count: &[PerCpuCount],
    native_ms: &BTreeMap<u32, Vec<f64>>,
    boots: &[Boot],
) -> RingSummary {
    let mut ops_per_s = BTreeMap::new();
    let mut median_ops_per_s = BTreeMap::new();
    for p in per_cpu_count {
        let runs: Vec<Vec<f64>> = boots
            .iter()
            .filter(|b| b.record.cpus == p.cpus)
            .map(|b| {
                b.log
                    .runs
                    .iter()
                    .filter(|r| r.scale.ms > 0.0)
                    .map(|r| r.scale.count as f64 * 1000.0 / r.scale.ms)
                    .collect()
            })
            .collect();
        let flat: Vec<f64> = runs.iter().flatten().copied().collect();
        if let Some(m) = stats::median(&flat) {
            median_ops_per_s.insert(p.cpus, m);
        }
        ops_per_s.insert(p.cpus, runs);
    }
    let native_ops_per_s = native_ms
        .iter()
        .filter_map(|(&n, v)| {
            let ms = stats::median(v)?;
            (ms > 0.0).then(|| {
                (
                    n,
                    (native_ring::NATIVE_RING_OPS * u64::from(n)) as f64 * 1000.0 / ms,
                )
            })
        })
        .collect();
    let mut lockstat: BTreeMap<u32, BTreeMap<String, LockTotal>> = BTreeMap::new();
    let (mut timed_boots, mut whole_boots) = (0, 0);
    for b in boots {
        let (lines, timed) = b.log.judged_lockstats();
        if !lines.is_empty() {
            if timed {
                timed_boots += 1;
            } else {
                whole_boots += 1;
            }
        }
        for l in lines {
            let t = lockstat
                .entry(b.record.cpus)
                .or_default()
                .entry(l.name.clone())
                .or_default();
            t.acquires += l.acquires;
            t.contended += l.contended;
            t.spins += l.spins;
        }
    }
    RingSummary {
        ops_per_worker,
        ops_per_s,
        median_ops_per_s,
        native_io_uring: format!(
            "io_uring NOPs on the host, {} per thread in batches of the manifest's nops (io-uring crate)",
            native_ring::NATIVE_RING_OPS
        ),
        native_ops_per_s,
        lockstat,
        lockstat_section: match (timed_boots, whole_boots) {
            (_, 0) => "timed",
            (0, _) => "whole scenario",
            _ => "timed where printed, else whole scenario",
        }
        .to_string(),
    }
}

/// One CPU count's results across its boots.
fn per_cpu(smp: u32, expected: u64, boots: &[Boot]) -> PerCpuCount {
    let mine: Vec<&Boot> = boots.iter().filter(|b| b.record.cpus == smp).collect();
    let ms: Vec<Vec<f64>> = mine
        .iter()
        .map(|b| b.log.runs.iter().map(|r| r.scale.ms).collect())
        .collect();
    let flat: Vec<f64> = ms.iter().flatten().copied().collect();
    let first = mine.iter().flat_map(|b| b.log.runs.first()).next();
    PerCpuCount {
        cpus: smp,
        workers: first.map(|r| r.scale.workers),
        median_ms: stats::median(&flat),
        ms,
        count: first.map(|r| r.scale.count),
        expected,
        busy: mine
            .iter()
            .flat_map(|b| b.log.runs.iter().map(|r| r.scale.busy.clone()))
            .collect(),
    }
}

/// The stdout report: a short table, the reasons, then the RESULT line last.
fn print_result(s: &Summary, dir: &Path) {
    for p in &s.per_cpu_count {
        println!(
            "cpus={} median_ms={} speedup={} native_ms={} native_speedup={}",
            p.cpus,
            p.median_ms.map_or("-".into(), |v| format!("{v:.1}")),
            s.speedup
                .get(&p.cpus)
                .map_or("-".into(), |v| format!("{v:.2}")),
            s.native
                .get(&p.cpus)
                .map_or("-".into(), |v| format!("{v:.1}")),
            s.native_speedup
                .get(&p.cpus)
                .map_or("-".into(), |v| format!("{v:.2}")),
        );
    }
    if let Some(r) = &s.ring {
        for (cpus, ops) in &r.median_ops_per_s {
            println!(
                "cpus={cpus} median_ops_per_s={ops:.0} native_io_uring_ops_per_s={}",
                r.native_ops_per_s
                    .get(cpus)
                    .map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
        println!("native io_uring: {}", r.native_io_uring);
        if !r.lockstat.is_empty() {
            println!("LOCKSTAT totals cover: {}", r.lockstat_section);
        }
        for (cpus, locks) in &r.lockstat {
            for (name, t) in locks {
                println!(
                    "LOCKSTAT cpus={cpus} name={name} acquires={} contended={} ({:.3}%) spins={}",
                    t.acquires,
                    t.contended,
                    t.fraction() * 100.0,
                    t.spins
                );
            }
        }
    }
    println!(
        "speedup2={} ci95={} native_speedup2={} ci95={} guest/native={} ci95={} boot={} machine={}",
        s.speedup2.map_or("-".into(), |v| format!("{v:.2}")),
        report::fmt_ci(s.speedup2_ci),
        s.native_speedup2.map_or("-".into(), |v| format!("{v:.2}")),
        report::fmt_ci(s.native_speedup2_ci),
        s.guest_native_ratio2
            .map_or("-".into(), |v| format!("{v:.2}")),
        report::fmt_ci(s.guest_native_ratio2_ci),
        s.boot,
        s.machine
    );
    for note in &s.notes {
        println!("NOTE {note}");
    }
    for r in &s.reasons {
        println!("FAIL {r}");
    }
    println!("summary: {}", dir.join("summary.md").display());
    println!("{}", result_line(s));
}

/// `RESULT <scenario> speedup2=<x.xx> speedup2_ci=<lo>-<hi> threshold=<t.tt> accel=<a> [reason=<w>] PASS|FAIL`
/// (CONTRACTS.md section 5; `0.00-0.00` when no interval could be made).
pub fn result_line(s: &Summary) -> String {
    let reason = match (&s.reason, s.verdict.as_str()) {
        (Some(r), "FAIL") => format!(" reason={r}"),
        _ => String::new(),
    };
    let [lo, hi] = s.speedup2_ci.unwrap_or([0.0, 0.0]);
    format!(
        "RESULT {} speedup2={:.2} speedup2_ci={lo:.2}-{hi:.2} threshold={:.2} accel={}{reason} {}",
        s.scenario,
        s.speedup2.unwrap_or(0.0),
        s.threshold,
        s.accel,
        s.verdict
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::BootOpts;
    use crate::parse::tests::good_log;

    fn opts() -> ScaleOpts {
        ScaleOpts {
            manifest: "m.toml".into(),
            smp_list: vec![1, 2],
            runs: 2,
            repeat: 3,
            boot: BootOpts {
                accel: AccelRequest::Auto,
                boot: qemu::BootRequest::Auto,
                cpu_model: None,
                mem: "512M".into(),
                timeout: None,
            },
            out: "target/scale".into(),
            mkiso: "mkiso.sh".into(),
        }
    }

    fn boot(smp: u32, run: u32, ms: f64, mode: &str) -> Boot {
        let text = good_log(smp, 3, mode, ms);
        let log = BootLog::parse(text.lines());
        let record = BootRecord {
            cpus: smp,
            run,
            status: "PASS".into(),
            reason: String::new(),
            seconds: 1.0,
            log: String::new(),
            cpus_online: smp as usize,
            first_line_seconds: Some(0.1),
            native_ms: None,
        };
        Boot { record, log }
    }

    const WORK: WorkloadInfo = WorkloadInfo {
        lo: 0,
        hi: 100_000_000,
        expected: 5_761_455,
        ring: None,
    };

    const RING: WorkloadInfo = WorkloadInfo {
        lo: 0,
        hi: 0,
        expected: 0,
        ring: Some(crate::manifest::RingInfo {
            ops_per_worker: 100,
            nops: 16,
            workers: None,
        }),
    };

    /// A ring boot: `smp` workers of 100 operations each, every timed run
    /// `ms` long, with LOCKSTAT lines.
    fn ring_boot(smp: u32, run: u32, ms: f64, contended: u64) -> Boot {
        let lockstat =
            format!("LOCKSTAT name=registry acquires=10000 contended={contended} spins=7\n");
        ring_boot_with(smp, run, ms, &lockstat)
    }

    /// A ring boot as [`ring_boot`], with the given LOCKSTAT text.
    fn ring_boot_with(smp: u32, run: u32, ms: f64, lockstat: &str) -> Boot {
        let mut text = String::new();
        for r in 1..=3 {
            for i in 0..smp {
                text += &format!(
                    "WORKER idx={i} count=100 start=0 end=1000 cpus={i} partner_cpus={}\n",
                    (i + 1) % smp
                );
            }
            let n = 100 * smp;
            text += &format!("SCALE run={r} mode=thread workers={smp} cpus={smp} lo=0 hi=0 count={n} expected={n} ok=1 cycles=1 ms={ms} busy=1 kind=ring ops={n} ops_per_s=1\n");
        }
        text += lockstat;
        text += "SCENARIO ring-scale PASS\n";
        let log = BootLog::parse(text.lines());
        let record = BootRecord {
            cpus: smp,
            run,
            status: "PASS".into(),
            reason: String::new(),
            seconds: 1.0,
            log: String::new(),
            cpus_online: smp as usize,
            first_line_seconds: Some(0.1),
            native_ms: None,
        };
        Boot { record, log }
    }

    fn ring_findings(boots: &[Boot]) -> Vec<Finding> {
        boots
            .iter()
            .flat_map(|b| {
                let e = Expect {
                    smp: b.record.cpus,
                    repeat: 3,
                    lo: 0,
                    hi: 0,
                    expected: RING.expected_for(b.record.cpus),
                };
                verdict::check_boot("t", &b.log, true, "", &e)
            })
            .collect()
    }

    #[test]
    fn ring_speedup_is_a_throughput_ratio() {
        // 2 CPUs do twice the operations in 1.25 times the time: 1.60x.
        let boots = vec![ring_boot(1, 1, 1000.0, 0), ring_boot(2, 1, 1250.0, 10)];
        let f = ring_findings(&boots);
        assert!(f.is_empty(), "{f:?}");
        let native = BTreeMap::from([(1, vec![100.0]), (2, vec![100.0])]);
        let s = summarize(
            &opts(),
            "ring-scale",
            chosen(Accel::Kvm),
            &RING,
            boots,
            native,
            f,
        );
        assert_eq!(s.verdict, "PASS", "{:?}", s.reasons);
        assert!((s.speedup2.expect("speedup2") - 1.6).abs() < 1e-9);
        assert!((s.native_speedup2.expect("native") - 2.0).abs() < 1e-9);
        assert_eq!(s.per_cpu_count[1].ms[0], vec![1250.0; 3]);
        assert_eq!(s.per_cpu_count[1].expected, 200);
        let r = s.ring.as_ref().expect("ring summary");
        assert!((r.median_ops_per_s[&1] - 100.0).abs() < 1e-9);
        assert!((r.median_ops_per_s[&2] - 160.0).abs() < 1e-9);
        assert!((r.native_ops_per_s[&2] - 2.0e7).abs() < 1.0);
        assert_eq!(r.lockstat[&2]["registry"].contended, 10);
        let md = report::markdown(&s);
        assert!(md.contains("Native io_uring: io_uring NOPs"), "{md}");
        assert!(
            md.contains("| 2 | registry | 10000 | 10 | 0.100 | 7 |"),
            "{md}"
        );
        let json = serde_json::to_value(&s).expect("json");
        assert!(json["ring"]["median_ops_per_s"].get("2").is_some());
        assert!(json.get("ring").is_some());
    }

    #[test]
    fn ring_contended_lock_fails() {
        let boots = vec![ring_boot(1, 1, 1000.0, 5000), ring_boot(2, 1, 600.0, 200)];
        let f = ring_findings(&boots);
        let s = summarize(
            &opts(),
            "ring-scale",
            chosen(Accel::Kvm),
            &RING,
            boots,
            BTreeMap::new(),
            f,
        );
        assert!(
            result_line(&s).ends_with("reason=contended FAIL"),
            "{}",
            result_line(&s)
        );
        // Only the 2-CPU boots are judged: the 1-CPU figure cannot be contention.
        assert_eq!(s.reasons.len(), 1, "{:?}", s.reasons);
        assert!(s.reasons[0].contains("cpus=2"));
    }

    #[test]
    fn ring_lockstat_judges_the_timed_sections_only() {
        // The whole scenario is contended 5% (setup), each of the three
        // timed runs 0.5%: the timed lines, summed, decide and pass.
        let mut timed = String::new();
        for r in 1..=3 {
            timed += &format!(
                "LOCKSTAT name=registry acquires=2000 contended=10 spins=3 section=timed run={r}\n"
            );
        }
        let both = format!("{timed}LOCKSTAT name=registry acquires=10000 contended=500 spins=9\n");
        let boots = vec![
            ring_boot_with(1, 1, 1000.0, &both),
            ring_boot_with(2, 1, 1250.0, &both),
        ];
        let f = ring_findings(&boots);
        let s = summarize(
            &opts(),
            "ring-scale",
            chosen(Accel::Kvm),
            &RING,
            boots,
            BTreeMap::new(),
            f,
        );
        assert_eq!(s.verdict, "PASS", "{:?}", s.reasons);
        let r = s.ring.as_ref().expect("ring summary");
        assert_eq!(r.lockstat_section, "timed");
        assert_eq!(r.lockstat[&2]["registry"].acquires, 6000);
        assert_eq!(r.lockstat[&2]["registry"].contended, 30);
        assert_eq!(r.lockstat[&2]["registry"].spins, 9);
        let md = report::markdown(&s);
        assert!(md.contains("timed sections only"), "{md}");
        assert!(
            md.contains("| 2 | registry | 6000 | 30 | 0.500 | 9 |"),
            "{md}"
        );

        // The same boots without timed lines fall back to the whole
        // scenario, and its 5% fails.
        let whole = "LOCKSTAT name=registry acquires=10000 contended=500 spins=9\n";
        let boots = vec![
            ring_boot_with(1, 1, 1000.0, whole),
            ring_boot_with(2, 1, 1250.0, whole),
        ];
        let f = ring_findings(&boots);
        let s = summarize(
            &opts(),
            "ring-scale",
            chosen(Accel::Kvm),
            &RING,
            boots,
            BTreeMap::new(),
            f,
        );
        assert!(
            result_line(&s).ends_with("reason=contended FAIL"),
            "{}",
            result_line(&s)
        );
        assert_eq!(
            s.ring.as_ref().expect("ring").lockstat_section,
            "whole scenario"
        );
    }

    fn chosen(accel: Accel) -> Chosen {
        Chosen {
            accel,
            accel_reason: "x".into(),
            method: BootMethod::Pvh,
            boot_reason: "y".into(),
        }
    }

    fn findings_for(boots: &[Boot]) -> Vec<Finding> {
        boots
            .iter()
            .flat_map(|b| {
                let e = Expect {
                    smp: b.record.cpus,
                    repeat: 3,
                    lo: WORK.lo,
                    hi: WORK.hi,
                    expected: WORK.expected,
                };
                verdict::check_boot("t", &b.log, true, "", &e)
            })
            .collect()
    }

    #[test]
    fn summary_of_a_good_kvm_run() {
        let boots = vec![
            boot(1, 1, 1000.0, "process"),
            boot(2, 1, 520.0, "process"),
            boot(1, 2, 1010.0, "process"),
            boot(2, 2, 510.0, "process"),
        ];
        let f = findings_for(&boots);
        let native = BTreeMap::from([(1, vec![900.0, 910.0]), (2, vec![460.0, 470.0])]);
        let s = summarize(
            &opts(),
            "smp-process-scale",
            chosen(Accel::Kvm),
            &WORK,
            boots,
            native,
            f,
        );
        assert_eq!(s.verdict, "PASS", "{:?}", s.reasons);
        assert_eq!(
            s.per_cpu_count[0].ms,
            vec![vec![1000.0; 3], vec![1010.0; 3]]
        );
        assert_eq!(s.per_cpu_count[1].median_ms, Some(515.0));
        assert_eq!(s.per_cpu_count[1].busy.len(), 6);
        let sp2 = s.speedup2.expect("speedup2");
        assert!((sp2 - 1005.0 / 515.0).abs() < 1e-9);
        assert!((s.native_speedup[&2] - 905.0 / 465.0).abs() < 1e-9);
        assert_eq!(s.mode.as_deref(), Some("process"));
        let line = result_line(&s);
        let [lo, hi] = s.speedup2_ci.expect("an interval");
        assert!(lo <= sp2 && sp2 <= hi, "{lo} {sp2} {hi}");
        assert_eq!(
            line,
            format!(
                "RESULT smp-process-scale speedup2=1.95 speedup2_ci={lo:.2}-{hi:.2} threshold=1.60 accel=kvm PASS"
            )
        );
        assert_eq!(s.boot, "pvh");
        assert_eq!(s.machine, "microvm");
        let ratio = s.guest_native_ratio2.expect("a ratio");
        assert!((ratio - sp2 / (905.0 / 465.0)).abs() < 1e-9);
        let [rlo, rhi] = s.guest_native_ratio2_ci.expect("a ratio interval");
        assert!(rlo <= ratio && ratio <= rhi);
        let json = serde_json::to_value(&s).expect("json");
        for key in [
            "scenario",
            "accel",
            "boot",
            "machine",
            "speedup2_ci",
            "guest_native_ratio2",
            "guest_native_ratio2_ci",
            "host_cpus",
            "runs",
            "threshold",
            "speedup",
            "native",
            "verdict",
            "per_cpu_count",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        for key in [
            "cpus",
            "workers",
            "ms",
            "median_ms",
            "count",
            "expected",
            "busy",
        ] {
            assert!(json["per_cpu_count"][0].get(key).is_some(), "{key}");
        }
        assert!(report::markdown(&s).contains("| 2 | 2 | 515.0 | 1.95 |"));
    }

    #[test]
    fn slow_run_fails_under_kvm_but_not_tcg() {
        let make = || vec![boot(1, 1, 1000.0, "process"), boot(2, 1, 800.0, "process")];
        let s = summarize(
            &opts(),
            "x",
            chosen(Accel::Kvm),
            &WORK,
            make(),
            BTreeMap::new(),
            findings_for(&make()),
        );
        assert_eq!(
            result_line(&s),
            "RESULT x speedup2=1.25 speedup2_ci=1.25-1.25 threshold=1.60 accel=kvm reason=slow FAIL"
        );
        let t = summarize(
            &opts(),
            "x",
            chosen(Accel::Tcg),
            &WORK,
            make(),
            BTreeMap::new(),
            findings_for(&make()),
        );
        assert_eq!(t.verdict, "PASS");
    }

    #[test]
    fn serialized_thread_run_names_it() {
        let mut b2 = boot(2, 1, 1000.0, "thread");
        for r in &mut b2.log.runs {
            r.workers[1].start = r.workers[0].end;
            r.workers[1].end = r.workers[0].end + 1_000;
        }
        let boots = vec![boot(1, 1, 1000.0, "thread"), b2];
        let f = findings_for(&boots);
        let s = summarize(
            &opts(),
            "thread-scale",
            chosen(Accel::Kvm),
            &WORK,
            boots,
            BTreeMap::new(),
            f,
        );
        assert!(
            result_line(&s).ends_with("accel=kvm reason=serialized FAIL"),
            "{}",
            result_line(&s)
        );
        assert!(s.reasons.iter().any(|r| r.contains("serialized")));
    }

    #[test]
    fn progress_text() {
        assert_eq!(
            progress(Duration::from_secs(0), 0, 9),
            "elapsed 0s, remaining unknown"
        );
        assert_eq!(
            progress(Duration::from_secs(90), 3, 9),
            "elapsed 1m30s, about 3m00s left"
        );
    }
}
