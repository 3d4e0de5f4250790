//! `harness soak`: every smoke manifest, many times, under several CPU
//! counts (`make soak`, CONTRACTS.md section 1).
//!
//! A soak is `harness test` repeated: each manifest's ISO is built once,
//! then booted `--runs` times under every CPU count, one report line per
//! boot, judged exactly as `test` judges it (verdict and QEMU status agree,
//! no `PANIC` line, every CPU online). Rare races show up as the odd failing
//! run, so every failing run names its raw serial log, and the list of
//! failures is repeated at the end, before the plain `N passed, N failed`.
//!
//! Everything lands in `<out>/<UTC stamp>/` (default `target/soak/`): the
//! logs as `<stem>-smp<N>-run<k>.log` and the ISOs under `iso/`;
//! `<out>/latest` points at the newest folder. Boots run one at a time,
//! like `test`: the machines have two cores, and a TCG guest with several
//! CPUs already uses both.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::SoakOpts;
use crate::manifest;
use crate::mkiso;
use crate::qemu::{self, Purpose};
use crate::report;
use crate::runner::{self, BootSpec};
use crate::smoke::{self, RunLine};

/// `harness soak`.
pub fn soak_command(opts: &SoakOpts) -> Result<u8> {
    let accel = qemu::choose_and_report(opts.boot.accel, Purpose::KernelTest)?;
    let timeout = opts
        .boot
        .timeout
        .unwrap_or_else(|| runner::default_timeout(accel));
    let (stamp, dir) = fresh_dir(&opts.out)?;
    if let Err(e) = report::point_latest(&opts.out, &stamp) {
        eprintln!(
            "harness: cannot update {}/latest: {e:#}",
            opts.out.display()
        );
    }
    println!(
        "soak: {} manifest(s) x {} run(s) x CPU counts {:?}, accel {}, logs in {}",
        opts.manifests.len(),
        opts.runs,
        opts.smp_list,
        accel.name(),
        dir.display()
    );
    let mut failures: Vec<String> = Vec::new();
    let mut passed = 0u32;
    for manifest in &opts.manifests {
        let stem = smoke::stem(manifest);
        let name = manifest::load(manifest)
            .map(|m| m.name)
            .unwrap_or_else(|_| stem.clone());
        let iso = match mkiso::build(&opts.mkiso, manifest, &dir.join("iso").join(&stem), None) {
            Ok(iso) => iso,
            Err(e) => {
                // Every planned boot of this manifest counts as failed; the
                // build error stands in for each one's log.
                for &smp in &opts.smp_list {
                    for run in 1..=opts.runs {
                        let log = dir.join(log_name(&stem, smp, run));
                        let _ = std::fs::write(&log, format!("build: {e:#}\n"));
                        let text = with_run(
                            &format!("FAIL {name} smp={smp} (0.0 s) build: {e:#}"),
                            run,
                            &log,
                            false,
                        );
                        println!("{text}");
                        failures.push(text);
                    }
                }
                continue;
            }
        };
        for &smp in &opts.smp_list {
            for run in 1..=opts.runs {
                let log = dir.join(log_name(&stem, smp, run));
                let line = boot_once(&iso, smp, accel, &opts.boot.mem, timeout, &log, &name);
                let text = with_run(&line.text, run, &log, line.pass);
                println!("{text}");
                if line.pass {
                    passed += 1;
                } else {
                    failures.push(text);
                }
            }
        }
    }
    if !failures.is_empty() {
        println!("failing runs ({}):", failures.len());
        for f in &failures {
            println!("  {f}");
        }
    }
    println!("{passed} passed, {} failed", failures.len());
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// One boot, judged like a `test` boot.
fn boot_once(
    iso: &Path,
    smp: u32,
    accel: qemu::Accel,
    mem: &str,
    timeout: std::time::Duration,
    log: &Path,
    name: &str,
) -> RunLine {
    let spec = BootSpec {
        iso,
        smp,
        accel,
        mem,
        timeout,
        log: Some(log),
        echo: false,
    };
    match runner::boot(&spec) {
        Ok(outcome) => smoke::check_online(smoke::describe(name, smp, &outcome), smp, &outcome),
        Err(e) => RunLine {
            pass: false,
            text: format!("FAIL {name} smp={smp} (0.0 s) {e:#}"),
        },
    }
}

/// The log file of one boot.
pub fn log_name(stem: &str, smp: u32, run: u32) -> String {
    format!("{stem}-smp{smp}-run{run}.log")
}

/// `test`'s report line with the run number after `smp=N`, and the raw log
/// at the end of a failing line.
pub fn with_run(text: &str, run: u32, log: &Path, pass: bool) -> String {
    let mut out = match text.find(" (") {
        Some(i) => format!("{} run={run}{}", &text[..i], &text[i..]),
        None => format!("{text} run={run}"),
    };
    if !pass {
        out.push_str(&format!(" log={}", log.display()));
    }
    out
}

/// `<out>/<UTC stamp>`, made unique with a suffix if needed.
fn fresh_dir(out: &Path) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let base = report::utc_stamp();
    for i in 1..100 {
        let stamp = if i == 1 {
            base.clone()
        } else {
            format!("{base}-{i}")
        };
        let dir = out.join(&stamp);
        if std::fs::create_dir(&dir).is_ok() {
            return Ok((stamp, runner::absolute(&dir)));
        }
    }
    bail!("cannot create a fresh soak folder under {}", out.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_number_and_log_on_failures() {
        let log = Path::new("/t/soak/x/smoke-ring-smp2-run3.log");
        assert_eq!(
            with_run("PASS smoke-ring smp=2 (3.1 s) cpus-online=2", 3, log, true),
            "PASS smoke-ring smp=2 run=3 (3.1 s) cpus-online=2"
        );
        assert_eq!(
            with_run("FAIL smoke-ring smp=2 (3.1 s) cpus-online=2 why", 3, log, false),
            "FAIL smoke-ring smp=2 run=3 (3.1 s) cpus-online=2 why log=/t/soak/x/smoke-ring-smp2-run3.log"
        );
        assert_eq!(log_name("smoke-ring", 8, 20), "smoke-ring-smp8-run20.log");
    }

    #[test]
    fn fresh_dirs_are_unique() {
        let root = std::env::temp_dir().join(format!("harness-soak-{}", std::process::id()));
        let (a, da) = fresh_dir(&root).unwrap();
        let (b, db) = fresh_dir(&root).unwrap();
        assert_ne!(a, b);
        assert!(da.is_dir() && db.is_dir());
        let _ = std::fs::remove_dir_all(&root);
    }
}
