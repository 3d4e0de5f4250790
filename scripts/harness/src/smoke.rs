//! `harness test`: builds each smoke manifest's image and boots it under
//! every CPU count and every boot method (`--boot auto`: both the GRUB ISO
//! and the PVH entry; `iso` or `pvh`: that one), one line per boot naming
//! both, then `N passed, N failed`. The corrupted and forged initrds are
//! refused under every boot method too: the two loaders hand the kernel the
//! module differently, and these boots are cheap (one CPU each).
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
use crate::qemu::{self, Accel, BootMethod, Purpose};
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
    let methods = runner::test_methods(opts.boot.boot);
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    eprintln!(
        "harness: boot={} ({})",
        names.join(","),
        if methods.len() > 1 {
            "auto: every smoke under both boot methods"
        } else {
            "requested"
        }
    );
    let timeout = opts
        .boot
        .timeout
        .unwrap_or_else(|| runner::default_timeout(accel));
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut count = |pass: bool| {
        if pass {
            passed += 1;
        } else {
            failed += 1;
        }
    };
    for manifest in &opts.manifests {
        let stem = stem(manifest);
        let name = manifest::load(manifest)
            .map(|m| m.name)
            .unwrap_or_else(|_| stem.clone());
        let built = match mkiso::build(
            &opts.mkiso,
            manifest,
            &iso_dir(&opts.logdir, &stem),
            None,
            &methods,
        ) {
            Ok(built) => built,
            Err(e) => {
                for smp in &opts.smp_list {
                    for m in &methods {
                        println!(
                            "FAIL {name} smp={smp} boot={} (0.0 s) build: {e:#}",
                            m.name()
                        );
                        count(false);
                    }
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
            for &method in &methods {
                let log = opts
                    .logdir
                    .join(format!("{stem}-smp{smp}-{}.log", method.name()));
                let line = match built.image(method) {
                    Ok(image) => {
                        let spec = BootSpec {
                            image: &image,
                            smp,
                            accel,
                            mem: &opts.boot.mem,
                            cpu_model: opts.boot.cpu_model.as_deref(),
                            timeout,
                            log: Some(&log),
                            echo: false,
                        };
                        boot_line(&spec, &name, method)
                    }
                    Err(e) => RunLine {
                        pass: false,
                        text: format!("FAIL {name} smp={smp} boot={} (0.0 s) {e:#}", method.name()),
                    },
                };
                println!("{}", line.text);
                count(line.pass);
            }
        }
    }
    if let Some(manifest) = &opts.corrupt {
        for &method in &methods {
            let line = corrupt_initrd(opts, manifest, accel, method, timeout);
            println!("{}", line.text);
            count(line.pass);
            for (pass, text) in crate::forged::boots(&setup(opts, accel, method, timeout), manifest)
            {
                println!("{text}");
                count(pass);
            }
        }
    }
    if let Some(manifest) = &opts.cpu_hole {
        for &method in &methods {
            let (pass, text) = crate::hole::boot(&setup(opts, accel, method, timeout), manifest);
            println!("{text}");
            count(pass);
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Boots `spec` and judges it like every smoke boot.
pub(crate) fn boot_line(spec: &BootSpec<'_>, name: &str, method: BootMethod) -> RunLine {
    match runner::boot(spec) {
        Ok(outcome) => check_online(
            describe(name, spec.smp, method, &outcome),
            spec.smp,
            &outcome,
        ),
        Err(e) => RunLine {
            pass: false,
            text: format!(
                "FAIL {name} smp={} boot={} (0.0 s) {e:#}",
                spec.smp,
                method.name()
            ),
        },
    }
}

/// Where the extra boots (forged initrds, the CPU hole) run.
fn setup(
    opts: &TestOpts,
    accel: Accel,
    method: BootMethod,
    timeout: Duration,
) -> crate::forged::Setup<'_> {
    crate::forged::Setup {
        mkiso: &opts.mkiso,
        logdir: &opts.logdir,
        accel,
        method,
        mem: &opts.boot.mem,
        cpu_model: opts.boot.cpu_model.as_deref(),
        timeout,
    }
}

/// Boots `manifest` with one initrd byte flipped: the kernel must refuse it
/// with a `PANIC bad initrd` line and the panic status, never hang or run.
fn corrupt_initrd(
    opts: &TestOpts,
    manifest: &Path,
    accel: Accel,
    method: BootMethod,
    timeout: Duration,
) -> RunLine {
    let tag = format!("corrupt-initrd smp=1 boot={}", method.name());
    let dir = iso_dir(&opts.logdir, &format!("corrupt-initrd-{}", method.name()));
    let image = match mkiso::build_with(&opts.mkiso, manifest, &dir, &[method], true)
        .and_then(|b| b.image(method))
    {
        Ok(image) => image,
        Err(e) => {
            return RunLine {
                pass: false,
                text: format!("FAIL {tag} (0.0 s) build: {e:#}"),
            }
        }
    };
    let log = opts
        .logdir
        .join(format!("corrupt-initrd-smp1-{}.log", method.name()));
    let spec = BootSpec {
        image: &image,
        smp: 1,
        accel,
        mem: &opts.boot.mem,
        cpu_model: opts.boot.cpu_model.as_deref(),
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
                    text: format!("PASS {tag} ({secs:.1} s) refused with PANIC"),
                }
            } else {
                RunLine {
                    pass: false,
                    text: format!(
                        "FAIL {tag} ({secs:.1} s) status {} refused={refused} ran={ran}",
                        o.status
                    ),
                }
            }
        }
        Err(e) => RunLine {
            pass: false,
            text: format!("FAIL {tag} (0.0 s) {e:#}"),
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
pub(crate) fn describe(
    name: &str,
    smp: u32,
    method: BootMethod,
    outcome: &runner::BootOutcome,
) -> RunLine {
    let boot = method.name();
    let secs = outcome.elapsed.as_secs_f64();
    let online = online_count(outcome);
    let panicked = outcome.lines.iter().any(|l| l.contains("PANIC"));
    let pass = outcome.status == STATUS_PASS && !panicked;
    let text = if pass {
        format!("PASS {name} smp={smp} boot={boot} ({secs:.1} s) cpus-online={online}")
    } else {
        let reason = if panicked && outcome.status == STATUS_PASS {
            "log contains PANIC".to_string()
        } else {
            outcome.reason.clone()
        };
        format!("FAIL {name} smp={smp} boot={boot} ({secs:.1} s) cpus-online={online} {reason}")
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
            first_line: None,
            verdict_at: None,
        }
    }

    #[test]
    fn pass_line() {
        let l = describe(
            "smoke-ring",
            2,
            BootMethod::Pvh,
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
        assert_eq!(
            l.text,
            "PASS smoke-ring smp=2 boot=pvh (3.1 s) cpus-online=2"
        );
    }

    #[test]
    fn panic_in_a_passing_log_fails() {
        let l = describe(
            "smoke-ring",
            1,
            BootMethod::Iso,
            &outcome(0, &["PANIC somewhere", "SCENARIO smoke-ring PASS"]),
        );
        assert!(!l.pass);
        assert!(l.text.starts_with("FAIL smoke-ring smp=1 boot=iso"));
        assert!(l.text.ends_with("log contains PANIC"));
    }

    #[test]
    fn failure_carries_the_reason() {
        let l = describe("smoke-ring", 4, BootMethod::Iso, &outcome(2, &[]));
        assert!(!l.pass);
        assert!(l.text.ends_with("why"));
    }
}
