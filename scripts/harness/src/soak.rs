//! `harness soak`: every smoke manifest, many times, under several CPU
//! counts (`make soak`, CONTRACTS.md section 1).
//!
//! A soak is `harness test` repeated: each manifest's image is built once,
//! then booted `--runs` times under every CPU count and boot method (both
//! for `--boot auto`, like `test`), one report line per boot, judged exactly as `test` judges it (verdict and QEMU status agree,
//! no `PANIC` line, every CPU online). Rare races show up as the odd failing
//! run, so every failing run names its raw serial log, and the list of
//! failures is repeated at the end, before the plain `N passed, N failed`.
//!
//! Everything lands in `<out>/<UTC stamp>/` (default `target/soak/`): the
//! logs as `<stem>-smp<N>-<boot>-run<k>.log` and the images under `iso/`;
//! `<out>/latest` points at the newest folder. Boots run one at a time,
//! like `test`: the machines have two cores, and a TCG guest with several
//! CPUs already uses both.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::SoakOpts;
use crate::manifest;
use crate::mkiso;
use crate::qemu::{self, BootMethod, Image, Purpose};
use crate::report;
use crate::runner::{self, BootSpec};
use crate::smoke;

/// `harness soak`.
pub fn soak_command(opts: &SoakOpts) -> Result<u8> {
    let accel = qemu::choose_and_report(opts.boot.accel, Purpose::KernelTest)?;
    let methods = runner::test_methods(opts.boot.boot);
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
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    println!(
        "soak: {} manifest(s) x {} run(s) x CPU counts {:?} x boot {}, accel {}, logs in {}",
        opts.manifests.len(),
        opts.runs,
        opts.smp_list,
        names.join(","),
        accel.name(),
        dir.display()
    );
    let mut failures: Vec<String> = Vec::new();
    let mut passed = 0u32;
    for manifest in &opts.manifests {
        let stem = smoke::stem(manifest);
        let info = manifest::load(manifest).ok();
        let name = info
            .as_ref()
            .map_or_else(|| stem.clone(), |m| m.name.clone());
        let kernel = info.map(|m| m.kernel).unwrap_or_default();
        let built = mkiso::build(
            &opts.mkiso,
            manifest,
            &dir.join("iso").join(&stem),
            None,
            &methods,
        );
        let images: Vec<(BootMethod, anyhow::Result<Image>)> = methods
            .iter()
            .map(|&m| {
                let image = match &built {
                    Ok(b) => b.image(m),
                    Err(e) => Err(anyhow::anyhow!("build: {e:#}")),
                };
                (m, image)
            })
            .collect();
        for &smp in &opts.smp_list {
            for (method, image) in &images {
                for run in 1..=opts.runs {
                    let log = dir.join(log_name(&stem, smp, *method, run));
                    let line = match image {
                        Ok(image) => {
                            let spec = BootSpec {
                                image,
                                smp,
                                accel,
                                mem: &opts.boot.mem,
                                cpu_model: opts.boot.cpu_model.as_deref(),
                                timeout,
                                log: Some(&log),
                                echo: false,
                            };
                            match smoke::smoke_boot(&spec, &name, *method, &kernel) {
                                smoke::Judged::Run(line) => line,
                                // A pinned mode this CPU model lacks.
                                smoke::Judged::Skip(text) => {
                                    println!("{text}");
                                    continue;
                                }
                            }
                        }
                        Err(e) => {
                            // The build error stands in for the boot's log.
                            let _ = std::fs::write(&log, format!("{e:#}\n"));
                            smoke::RunLine {
                                pass: false,
                                text: format!(
                                    "FAIL {name} smp={smp} boot={} (0.0 s) {e:#}",
                                    method.name()
                                ),
                            }
                        }
                    };
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

/// The log file of one boot.
pub fn log_name(stem: &str, smp: u32, method: BootMethod, run: u32) -> String {
    format!("{stem}-smp{smp}-{}-run{run}.log", method.name())
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
        let log = Path::new("/t/soak/x/smoke-ring-smp2-pvh-run3.log");
        assert_eq!(
            with_run(
                "PASS smoke-ring smp=2 boot=pvh (3.1 s) cpus-online=2",
                3,
                log,
                true
            ),
            "PASS smoke-ring smp=2 boot=pvh run=3 (3.1 s) cpus-online=2"
        );
        assert_eq!(
            with_run(
                "FAIL smoke-ring smp=2 boot=pvh (3.1 s) cpus-online=2 why",
                3,
                log,
                false
            ),
            "FAIL smoke-ring smp=2 boot=pvh run=3 (3.1 s) cpus-online=2 why log=/t/soak/x/smoke-ring-smp2-pvh-run3.log"
        );
        assert_eq!(
            log_name("smoke-ring", 8, BootMethod::Iso, 20),
            "smoke-ring-smp8-iso-run20.log"
        );
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
