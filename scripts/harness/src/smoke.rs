//! `harness test`: builds each smoke manifest's image and boots it under
//! every CPU count and every boot method (`--boot auto`: both the GRUB ISO
//! and the PVH entry; `iso` or `pvh`: that one), one line per boot naming
//! both, then `N passed, N failed`. The corrupted and forged initrds are
//! refused under every boot method too: the two loaders hand the kernel the
//! module differently, and these boots are cheap (one CPU each).
//!
//! A boot passes when the runner says PASS (verdict line and QEMU exit status
//! agree), no line of its log contains `PANIC`, every CPU QEMU was given
//! printed `CPU <id> online`, and those lines name one APIC mode and one
//! timer (`mode=`, `timer=`), the ones the manifest's `[kernel]` table
//! pins, if it pins any (see [`check_modes`]).
//!
//! A manifest that pins x2APIC or TSC-deadline runs under KVM (PVH boot only, at
//! `-smp` [`PINNED_KVM_SMP`] only: guest ring 0 is emulated under our PVM
//! KVM, so the scheduler smoke takes about 90 s there) when the
//! accelerator was `auto`, TCG was chosen and /dev/kvm is usable: QEMU 7.2's
//! TCG offers neither x2APIC nor the TSC-deadline timer. Where a pinned
//! mode is still missing, the kernel refuses with `PANIC [kernel] ... but
//! this CPU has no ...`: that boot is a SKIP (printed and counted apart),
//! not a pass. `--cpu-fallback M` checks that refusal on purpose
//! (`crate::fallback`).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::parse;

use crate::cli::TestOpts;
use crate::manifest;
use crate::mkiso;
use crate::qemu::{self, Accel, AccelRequest, BootMethod, HostKvm, Purpose};
use crate::runner::{self, BootSpec, STATUS_ERROR, STATUS_PASS};
use std::time::Duration;

/// The one CPU count a pinned-mode manifest boots at when it is moved
/// from TCG to KVM (see the module doc).
pub const PINNED_KVM_SMP: u32 = 2;

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
    let (mut passed, mut failed, mut skipped) = (0u32, 0u32, 0u32);
    let mut count = |pass: bool| {
        if pass {
            passed += 1;
        } else {
            failed += 1;
        }
    };
    for manifest in &opts.manifests {
        let stem = stem(manifest);
        let info = manifest::load(manifest).ok();
        let name = info
            .as_ref()
            .map_or_else(|| stem.clone(), |m| m.name.clone());
        let kernel = info.map(|m| m.kernel).unwrap_or_default();
        let redirect = pinned_under_kvm(opts, accel, &kernel);
        let (accel, methods, timeout) = match redirect {
            Some(kvm_timeout) => {
                eprintln!(
                    "harness: {name} pins [kernel] apic={} timer={}: booting it under KVM (pvh, -smp {PINNED_KVM_SMP}), since this QEMU's TCG lacks the pinned mode (no TCG has TSC-deadline; x2APIC needs QEMU 8.1)",
                    kernel.apic, kernel.timer
                );
                (Accel::Kvm, vec![BootMethod::Pvh], kvm_timeout)
            }
            None => (accel, methods.clone(), timeout),
        };
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
        if redirect.is_some() {
            smps = vec![PINNED_KVM_SMP];
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
                        smoke_boot(&spec, &name, method, &kernel)
                    }
                    Err(e) => Judged::Run(RunLine {
                        pass: false,
                        text: format!("FAIL {name} smp={smp} boot={} (0.0 s) {e:#}", method.name()),
                    }),
                };
                match line {
                    Judged::Run(line) => {
                        println!("{}", line.text);
                        count(line.pass);
                    }
                    Judged::Skip(text) => {
                        println!("{text}");
                        skipped += 1;
                    }
                }
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
    if let Some(manifest) = &opts.cpu_fallback {
        for &method in &methods {
            for (pass, text) in
                crate::fallback::boots(&setup(opts, accel, method, timeout), manifest)
            {
                println!("{text}");
                count(pass);
            }
        }
    }
    if skipped > 0 {
        println!("{skipped} skipped (a pinned [kernel] mode this CPU model lacks)");
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// When a manifest pinning a mode should run under KVM instead of TCG
/// (see the module doc): its timeout then.
fn pinned_under_kvm(
    opts: &TestOpts,
    accel: Accel,
    kernel: &manifest::KernelInfo,
) -> Option<Duration> {
    let redirect = kernel.needs_more_than_tcg(crate::qemu::tcg_has_x2apic())
        && accel == Accel::Tcg
        && opts.boot.accel == AccelRequest::Auto
        && opts.boot.cpu_model.is_none()
        && HostKvm::probe().usable;
    redirect.then(|| {
        opts.boot
            .timeout
            .unwrap_or_else(|| runner::default_timeout(Accel::Kvm))
    })
}

/// A smoke boot's judgement.
pub(crate) enum Judged {
    /// Passed or failed.
    Run(RunLine),
    /// The CPU model lacks a mode the manifest pins (the report line).
    Skip(String),
}

/// Boots `spec` and judges it like every smoke boot ([`describe`],
/// [`check_online`]), then checks the modes
/// the `CPU <id> online` lines name against `kernel`; a refusal of a
/// pinned mode the CPU lacks is a skip.
pub(crate) fn smoke_boot(
    spec: &BootSpec<'_>,
    name: &str,
    method: BootMethod,
    kernel: &manifest::KernelInfo,
) -> Judged {
    let outcome = match runner::boot(spec) {
        Ok(o) => o,
        Err(e) => {
            return Judged::Run(RunLine {
                pass: false,
                text: format!(
                    "FAIL {name} smp={} boot={} (0.0 s) {e:#}",
                    spec.smp,
                    method.name()
                ),
            })
        }
    };
    if kernel.pins_anything() {
        if let Some(why) = outcome.lines.iter().find_map(|l| lacks_pinned_mode(l)) {
            return Judged::Skip(format!(
                "SKIP {name} smp={} boot={} ({:.1} s) {why}",
                spec.smp,
                method.name(),
                outcome.elapsed.as_secs_f64()
            ));
        }
    }
    let line = check_online(
        describe(name, spec.smp, method, &outcome),
        spec.smp,
        &outcome,
    );
    Judged::Run(check_modes(line, kernel, &outcome.lines))
}

/// The kernel's refusal of a pinned mode: `PANIC [kernel] ... but this CPU
/// has no ...` (the text after `PANIC `).
pub(crate) fn lacks_pinned_mode(line: &str) -> Option<&str> {
    let msg = line.trim().strip_prefix("PANIC ")?;
    (msg.starts_with("[kernel] ") && msg.contains(" but this CPU has no ")).then_some(msg)
}

/// Every `CPU <id> online` line names a mode and a timer, all lines the
/// same ones, and those the manifest pins. Appends `mode=.. timer=..` to a
/// passing line; turns it into a FAIL with the reason otherwise.
pub(crate) fn check_modes(
    line: RunLine,
    kernel: &manifest::KernelInfo,
    lines: &[String],
) -> RunLine {
    if !line.pass {
        return line;
    }
    match modes_seen(kernel, lines) {
        Ok((mode, timer)) => RunLine {
            pass: true,
            text: format!("{} mode={mode} timer={timer}", line.text),
        },
        Err(why) => RunLine {
            pass: false,
            text: line.text.replacen("PASS", "FAIL", 1) + " " + &why,
        },
    }
}

/// The one (mode, timer) the online lines show, or why not.
fn modes_seen(kernel: &manifest::KernelInfo, lines: &[String]) -> Result<(String, String), String> {
    let online: Vec<parse::CpuOnline> = lines.iter().filter_map(|l| parse::cpu_online(l)).collect();
    let mut seen: Option<(String, String)> = None;
    for c in &online {
        let (Some(mode), Some(timer)) = (&c.mode, &c.timer) else {
            return Err(format!("CPU {} online line has no mode= or timer=", c.id));
        };
        match &seen {
            None => seen = Some((mode.clone(), timer.clone())),
            Some((m, t)) if m == mode && t == timer => {}
            Some((m, t)) => {
                return Err(format!(
                    "CPUs disagree: mode={m} timer={t} and CPU {} mode={mode} timer={timer}",
                    c.id
                ))
            }
        }
    }
    let Some((mode, timer)) = seen else {
        return Err("no CPU online lines".to_string());
    };
    if let Some(want) = kernel.pinned_mode().filter(|w| *w != mode) {
        return Err(format!(
            "manifest pins apic={want} but CPUs run mode={mode}"
        ));
    }
    if let Some(want) = kernel.pinned_timer().filter(|w| *w != timer) {
        return Err(format!(
            "manifest pins timer={want} but CPUs run timer={timer}"
        ));
    }
    Ok((mode, timer))
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

    fn kernel(apic: &str, timer: &str) -> manifest::KernelInfo {
        manifest::KernelInfo {
            apic: apic.into(),
            timer: timer.into(),
        }
    }

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn passing() -> RunLine {
        RunLine {
            pass: true,
            text: "PASS x smp=2 boot=pvh (1.0 s) cpus-online=2".into(),
        }
    }

    #[test]
    fn modes_must_match_the_pins() {
        let x2 = lines(&[
            "CPU 0 online apic=0 mode=x2apic timer=tsc-deadline",
            "CPU 1 online apic=1 mode=x2apic timer=tsc-deadline",
        ]);
        let l = check_modes(passing(), &kernel("x2apic", "tsc-deadline"), &x2);
        assert!(l.pass, "{}", l.text);
        assert!(l.text.ends_with("mode=x2apic timer=tsc-deadline"));
        assert!(check_modes(passing(), &kernel("auto", "auto"), &x2).pass);
        let l = check_modes(passing(), &kernel("xapic", "auto"), &x2);
        assert!(!l.pass);
        assert!(l.text.starts_with("FAIL x smp=2"), "{}", l.text);
        assert!(l
            .text
            .ends_with("manifest pins apic=xapic but CPUs run mode=x2apic"));
        assert!(!check_modes(passing(), &kernel("auto", "lapic"), &x2).pass);
    }

    #[test]
    fn modes_must_agree_and_be_named() {
        let mixed = lines(&[
            "CPU 0 online apic=0 mode=x2apic timer=lapic",
            "CPU 1 online apic=1 mode=xapic timer=lapic",
        ]);
        assert!(!check_modes(passing(), &kernel("auto", "auto"), &mixed).pass);
        let old = lines(&["CPU 0 online apic=0"]);
        assert!(!check_modes(passing(), &kernel("auto", "auto"), &old).pass);
        assert!(!check_modes(passing(), &kernel("auto", "auto"), &[]).pass);
        // A failing boot stays as it was.
        let fail = RunLine {
            pass: false,
            text: "FAIL x".into(),
        };
        assert_eq!(
            check_modes(fail, &kernel("auto", "auto"), &old).text,
            "FAIL x"
        );
    }

    #[test]
    fn refusal_of_a_pinned_mode_is_recognized() {
        let l = "PANIC [kernel] apic = \"x2apic\" but this CPU has no x2APIC (CPUID.1:ECX bit 21) at kernel/src/smp.rs:1 cpu=0";
        assert!(lacks_pinned_mode(l).is_some_and(|m| m.starts_with("[kernel] apic")));
        assert_eq!(lacks_pinned_mode("PANIC bad initrd: x"), None);
        assert_eq!(lacks_pinned_mode("smp: [kernel] but this CPU has no"), None);
    }

    #[test]
    fn failure_carries_the_reason() {
        let l = describe("smoke-ring", 4, BootMethod::Iso, &outcome(2, &[]));
        assert!(!l.pass);
        assert!(l.text.ends_with("why"));
    }
}
