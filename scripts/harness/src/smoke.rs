//! `harness test`: builds each smoke manifest's ISO and boots it under every
//! CPU count, one line per boot, then `N passed, N failed`.
//!
//! A boot passes when the runner says PASS (verdict line and QEMU exit status
//! agree) and no line of its log contains `PANIC`. The number of
//! `CPU <id> online` lines is reported but not required: APs may not be up
//! in every build.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::TestOpts;
use crate::manifest;
use crate::mkiso;
use crate::qemu::Accel;
use crate::qemu::{self, Purpose};
use crate::runner::{self, BootSpec, STATUS_ERROR, STATUS_PASS};
use std::time::Duration;

/// One boot's line in the report.
pub(crate) struct RunLine {
    pub(crate) pass: bool,
    pub(crate) text: String,
}

/// `harness test`.
pub fn test_command(opts: &TestOpts) -> Result<u8> {
    let accel = qemu::choose_and_report(opts.boot.accel, Purpose::KernelTest)?;
    let timeout = opts
        .boot
        .timeout
        .unwrap_or_else(|| runner::default_timeout(accel));
    let (mut passed, mut failed) = (0u32, 0u32);
    for manifest in &opts.manifests {
        let stem = stem(manifest);
        let name = manifest::load(manifest)
            .map(|m| m.name)
            .unwrap_or_else(|_| stem.clone());
        let iso = match mkiso::build(&opts.mkiso, manifest, &iso_dir(&opts.logdir, &stem), None) {
            Ok(iso) => iso,
            Err(e) => {
                for smp in &opts.smp_list {
                    println!("FAIL {name} smp={smp} (0.0 s) build: {e:#}");
                    failed += 1;
                }
                continue;
            }
        };
        let mut smps = opts.smp_list.clone();
        for (extra_stem, list) in &opts.extra {
            if *extra_stem == stem {
                smps.extend(list.iter().copied().filter(|n| !opts.smp_list.contains(n)));
            }
        }
        for &smp in &smps {
            let log = opts.logdir.join(format!("{stem}-smp{smp}.log"));
            let spec = BootSpec {
                iso: &iso,
                smp,
                accel,
                mem: &opts.boot.mem,
                timeout,
                log: Some(&log),
                echo: false,
            };
            let line = match runner::boot(&spec) {
                Ok(outcome) => check_online(describe(&name, smp, &outcome), smp, &outcome),
                Err(e) => RunLine {
                    pass: false,
                    text: format!("FAIL {name} smp={smp} (0.0 s) {e:#}"),
                },
            };
            println!("{}", line.text);
            if line.pass {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    if let Some(manifest) = &opts.corrupt {
        let line = corrupt_initrd(opts, manifest, accel, timeout);
        println!("{}", line.text);
        if line.pass {
            passed += 1;
        } else {
            failed += 1;
        }
        for (pass, text) in crate::forged::boots(&setup(opts, accel, timeout), manifest) {
            println!("{text}");
            if pass {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    if let Some(manifest) = &opts.cpu_hole {
        let (pass, text) = crate::hole::boot(&setup(opts, accel, timeout), manifest);
        println!("{text}");
        if pass {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Where the extra boots (forged initrds, the CPU hole) run.
fn setup(opts: &TestOpts, accel: Accel, timeout: Duration) -> crate::forged::Setup<'_> {
    crate::forged::Setup {
        mkiso: &opts.mkiso,
        logdir: &opts.logdir,
        accel,
        mem: &opts.boot.mem,
        timeout,
    }
}

/// Boots `manifest` with one initrd byte flipped: the kernel must refuse it
/// with a `PANIC bad initrd` line and the panic status, never hang or run.
fn corrupt_initrd(opts: &TestOpts, manifest: &Path, accel: Accel, timeout: Duration) -> RunLine {
    let dir = iso_dir(&opts.logdir, "corrupt-initrd");
    let iso = match mkiso::build_with(&opts.mkiso, manifest, &dir, None, true) {
        Ok(iso) => iso,
        Err(e) => {
            return RunLine {
                pass: false,
                text: format!("FAIL corrupt-initrd smp=1 (0.0 s) build: {e:#}"),
            }
        }
    };
    let log = opts.logdir.join("corrupt-initrd-smp1.log");
    let spec = BootSpec {
        iso: &iso,
        smp: 1,
        accel,
        mem: &opts.boot.mem,
        timeout,
        log: Some(&log),
        echo: false,
    };
    match runner::boot(&spec) {
        Ok(o) => {
            let secs = o.elapsed.as_secs_f64();
            let refused = o.lines.iter().any(|l| l.starts_with("PANIC bad initrd"));
            let ran = o.lines.iter().any(|l| l.starts_with("SCENARIO"));
            if refused && !ran && o.status == STATUS_ERROR {
                RunLine {
                    pass: true,
                    text: format!("PASS corrupt-initrd smp=1 ({secs:.1} s) refused with PANIC"),
                }
            } else {
                RunLine {
                    pass: false,
                    text: format!("FAIL corrupt-initrd smp=1 ({secs:.1} s) status {} refused={refused} ran={ran}", o.status),
                }
            }
        }
        Err(e) => RunLine {
            pass: false,
            text: format!("FAIL corrupt-initrd smp=1 (0.0 s) {e:#}"),
        },
    }
}

/// Every CPU QEMU was given must report `CPU <id> online` exactly once.
pub(crate) fn check_online(line: RunLine, smp: u32, outcome: &runner::BootOutcome) -> RunLine {
    let online = online_count(outcome);
    if !line.pass || online == smp as usize {
        return line;
    }
    RunLine {
        pass: false,
        text: line.text.replacen("PASS", "FAIL", 1) + &format!(" expected {smp} CPU online lines"),
    }
}

fn online_count(outcome: &runner::BootOutcome) -> usize {
    outcome
        .lines
        .iter()
        .filter(|l| {
            matches!(
                crate::parse::parse_line(l),
                Some(crate::parse::Event::CpuOnline(_))
            )
        })
        .count()
}

/// The report line for one boot.
pub(crate) fn describe(name: &str, smp: u32, outcome: &runner::BootOutcome) -> RunLine {
    let secs = outcome.elapsed.as_secs_f64();
    let online = online_count(outcome);
    let panicked = outcome.lines.iter().any(|l| l.contains("PANIC"));
    let pass = outcome.status == STATUS_PASS && !panicked;
    let text = if pass {
        format!("PASS {name} smp={smp} ({secs:.1} s) cpus-online={online}")
    } else {
        let reason = if panicked && outcome.status == STATUS_PASS {
            "log contains PANIC".to_string()
        } else {
            outcome.reason.clone()
        };
        format!("FAIL {name} smp={smp} ({secs:.1} s) cpus-online={online} {reason}")
    };
    RunLine { pass, text }
}

/// The manifest's file stem (`smoke-ring` for `manifests/smoke-ring.toml`).
pub(crate) fn stem(manifest: &Path) -> String {
    manifest.file_stem().map_or_else(
        || "manifest".to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Where a manifest's ISO is built: next to the logs.
fn iso_dir(logdir: &Path, stem: &str) -> PathBuf {
    logdir.join("iso").join(stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(status: u8, lines: &[&str]) -> runner::BootOutcome {
        runner::BootOutcome {
            status,
            reason: "why".into(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
            elapsed: Duration::from_millis(3100),
        }
    }

    #[test]
    fn pass_line() {
        let l = describe(
            "smoke-ring",
            2,
            &outcome(
                0,
                &[
                    "CPU 0 online apic=0",
                    "CPU 1 online apic=1",
                    "SCENARIO smoke-ring PASS",
                ],
            ),
        );
        assert!(l.pass);
        assert_eq!(l.text, "PASS smoke-ring smp=2 (3.1 s) cpus-online=2");
    }

    #[test]
    fn panic_in_a_passing_log_fails() {
        let l = describe(
            "smoke-ring",
            1,
            &outcome(0, &["PANIC somewhere", "SCENARIO smoke-ring PASS"]),
        );
        assert!(!l.pass);
        assert!(l.text.starts_with("FAIL smoke-ring smp=1"));
        assert!(l.text.ends_with("log contains PANIC"));
    }

    #[test]
    fn failure_carries_the_reason() {
        let l = describe("smoke-ring", 4, &outcome(2, &[]));
        assert!(!l.pass);
        assert!(l.text.ends_with("why"));
    }
}
