//! `harness test --cpu-hole M`: one boot with a hole in the CPU ids (issue
//! 11, defect 5: a CPU that came up late keeps its index, and a loop over
//! `0..cpu_count()` then misses the last online CPU).
//!
//! The image is built with `MKISO_KERNEL_CMDLINE="test_skip_ap=1"` (in the
//! ISO's grub.cfg, or `-append` for the PVH boot, so both loaders' command
//! line paths are exercised), so the kernel's test hook leaves AP 1
//! unstarted with its index reserved, and it is booted at `-smp 4`: CPUs 0, 2 and 3 are online. The boot passes only
//! when the scenario's own verdict is PASS, no line has `PANIC`, exactly
//! those three CPUs print `CPU <id> online` and the `CPUSTAT` lines name
//! exactly those three. `make test` runs it on `smoke-sched-spread`, whose
//! threads must run on every online CPU.

use std::collections::BTreeSet;
use std::path::Path;

use crate::forged::Setup;
use crate::manifest;
use crate::mkiso;
use crate::parse::BootLog;
use crate::runner::{self, BootSpec, STATUS_PASS};

/// The CPU count of the boot.
const SMP: u32 = 4;
/// The AP left out.
const SKIPPED: u32 = 1;
/// The builder's test hook and the kernel's.
const CMDLINE_ENV: &str = "MKISO_KERNEL_CMDLINE";
const CMDLINE: &str = "test_skip_ap=1";
/// The report line's name.
const TAG: &str = "cpu-hole";

/// Builds and boots `manifest` with the hole; (passed, report line).
pub fn boot(setup: &Setup<'_>, manifest: &Path) -> (bool, String) {
    let name = match manifest::load(manifest) {
        Ok(m) => m.name,
        Err(e) => {
            return (
                false,
                format!("FAIL {TAG} smp={SMP} (0.0 s) manifest: {e:#}"),
            )
        }
    };
    let boot = setup.method.name();
    let dir = setup.logdir.join("iso").join(format!("{TAG}-{boot}"));
    let env = [(CMDLINE_ENV, CMDLINE)];
    let image = match mkiso::build_env(setup.mkiso, manifest, &dir, None, &[setup.method], &env)
        .and_then(|b| b.image(setup.method))
    {
        Ok(image) => image,
        Err(e) => {
            return (
                false,
                format!("FAIL {TAG} smp={SMP} boot={boot} (0.0 s) build: {e:#}"),
            )
        }
    };
    let log = setup.logdir.join(format!("{TAG}-smp{SMP}-{boot}.log"));
    let spec = BootSpec {
        image: &image,
        smp: SMP,
        accel: setup.accel,
        mem: setup.mem,
        cpu_model: setup.cpu_model,
        timeout: setup.timeout,
        log: Some(&log),
        echo: false,
    };
    match runner::boot(&spec) {
        Ok(o) => judge(
            &name,
            boot,
            o.elapsed.as_secs_f64(),
            (o.status, &o.reason),
            &o.lines,
        ),
        Err(e) => (
            false,
            format!("FAIL {TAG} smp={SMP} boot={boot} (0.0 s) {e:#}"),
        ),
    }
}

/// The CPUs that must be online: all of `0..SMP` but [`SKIPPED`].
fn want() -> BTreeSet<u32> {
    (0..SMP).filter(|&c| c != SKIPPED).collect()
}

/// The verdict on the boot's log; `status` is the runner's status and
/// its reason.
fn judge(
    scenario: &str,
    boot: &str,
    secs: f64,
    status: (u8, &str),
    lines: &[String],
) -> (bool, String) {
    let (status, reason) = status;
    let log = BootLog::parse(lines.iter().map(String::as_str));
    let want = want();
    let verdict_ok = log
        .verdict
        .as_ref()
        .is_some_and(|v| v.pass && v.name == scenario);
    let mut online = log.cpus_online.clone();
    online.sort_unstable();
    let online_ok = online.iter().copied().eq(want.iter().copied());
    let stats: BTreeSet<u32> = log.cpustats.iter().map(|s| s.cpu).collect();
    let stats_ok = stats == want;
    let pass =
        status == STATUS_PASS && verdict_ok && log.panics.is_empty() && online_ok && stats_ok;
    let head = format!(
        "{} {TAG} smp={SMP} boot={boot} ({secs:.1} s) {scenario} skip_ap={SKIPPED} online={online:?} cpustat={stats:?}",
        if pass { "PASS" } else { "FAIL" }
    );
    if pass {
        return (true, head);
    }
    let mut why = Vec::new();
    if status != STATUS_PASS {
        why.push(format!("status {status} ({reason})"));
    }
    if !verdict_ok {
        why.push(format!("want SCENARIO {scenario} PASS"));
    }
    if !log.panics.is_empty() {
        why.push("log contains PANIC".to_string());
    }
    if !online_ok || !stats_ok {
        why.push(format!("want CPUs {want:?} online and in CPUSTAT"));
    }
    (false, format!("{head}: {}", why.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(online: &[u32], stats: &[u32], verdict: &str) -> Vec<String> {
        let mut l: Vec<String> = online
            .iter()
            .map(|c| format!("CPU {c} online apic={c}"))
            .collect();
        l.extend(stats.iter().map(|c| {
            format!("CPUSTAT cpu={c} busy_ms=1 idle_ms=1 switches=1 steals=0 ipi_sent=0 ipi_recv=0 shootdowns=0 ticks=1")
        }));
        l.push(verdict.to_string());
        l
    }

    const OK: &str = "SCENARIO smoke-sched-spread PASS";

    #[test]
    fn the_hole_passes() {
        let (pass, text) = judge(
            "smoke-sched-spread",
            "iso",
            7.5,
            (0, "why"),
            &log(&[0, 2, 3], &[0, 2, 3], OK),
        );
        assert!(pass, "{text}");
        assert!(
            text.starts_with("PASS cpu-hole smp=4 boot=iso (7.5 s)"),
            "{text}"
        );
    }

    #[test]
    fn no_hole_or_a_wrong_hole_fails() {
        // The hook was ignored: every CPU came up.
        let all = log(&[0, 1, 2, 3], &[0, 1, 2, 3], OK);
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (0, "why"), &all).0);
        // A dense count: CPUs 0..3.
        let dense = log(&[0, 1, 2], &[0, 1, 2], OK);
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (0, "why"), &dense).0);
        // One CPU printed twice.
        let twice = log(&[0, 2, 2, 3], &[0, 2, 3], OK);
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (0, "why"), &twice).0);
    }

    #[test]
    fn cpustat_must_name_exactly_the_online_cpus() {
        // The defect: a loop over 0..cpu_count() reports the hole and misses CPU 3.
        let (pass, text) = judge(
            "smoke-sched-spread",
            "iso",
            1.0,
            (0, "why"),
            &log(&[0, 2, 3], &[0, 1, 2], OK),
        );
        assert!(!pass);
        assert!(text.contains("want CPUs {0, 2, 3}"), "{text}");
        assert!(
            !judge(
                "smoke-sched-spread",
                "iso",
                1.0,
                (0, "why"),
                &log(&[0, 2, 3], &[0, 2], OK)
            )
            .0
        );
    }

    #[test]
    fn the_verdict_must_be_this_scenarios_pass() {
        let fail = log(
            &[0, 2, 3],
            &[0, 2, 3],
            "SCENARIO smoke-sched-spread FAIL reason=x",
        );
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (1, "why"), &fail).0);
        let other = log(&[0, 2, 3], &[0, 2, 3], "SCENARIO smoke-ring PASS");
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (0, "why"), &other).0);
        let none = log(&[0, 2, 3], &[0, 2, 3], "");
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (2, "why"), &none).0);
        let mut panicked = log(&[0, 2, 3], &[0, 2, 3], OK);
        panicked.insert(0, "PANIC x".to_string());
        assert!(!judge("smoke-sched-spread", "iso", 1.0, (0, "why"), &panicked).0);
        // Status and verdict must agree.
        assert!(
            !judge(
                "smoke-sched-spread",
                "iso",
                1.0,
                (1, "why"),
                &log(&[0, 2, 3], &[0, 2, 3], OK)
            )
            .0
        );
    }
}
