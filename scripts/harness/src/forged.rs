//! `harness test`'s forged-initrd boots: the kernel must refuse an initrd
//! whose checksum is right but whose manifest breaks a rule.
//!
//! mkimage writes such an initrd only when asked through its test hook
//! (`MKIMAGE_TEST_FORGE`, see mkimage's `forge` module), which `mkiso.sh`
//! passes through to it. Each forgery is booted once at `-smp 1`; it passes
//! when the log has `PANIC bad initrd: <the rule>`, no `SCENARIO` line (a
//! forged name must not print one either) and the status is the panic
//! status. These run with the corrupt-initrd boot (`--corrupt-initrd`).

use std::path::Path;
use std::time::Duration;

use crate::mkiso;
use crate::qemu::{Accel, BootMethod};
use crate::runner::{self, BootSpec, STATUS_ERROR};

/// The environment variable mkimage's test hook reads.
const FORGE_ENV: &str = "MKIMAGE_TEST_FORGE";

/// Each forgery mkimage knows, and the start of the PANIC line it must
/// cause (the rule's own message, from abi::validate).
pub const FORGERIES: [(&str, &str); 2] = [
    (
        "duplicate-selftests",
        "PANIC bad initrd: duplicate self-test \"smp\"",
    ),
    (
        "forged-name",
        "PANIC bad initrd: scenario name must be 1..=48 characters from [a-z0-9-]",
    ),
];

/// Where the boots run.
pub struct Setup<'a> {
    pub mkiso: &'a Path,
    pub logdir: &'a Path,
    pub accel: Accel,
    pub method: BootMethod,
    pub mem: &'a str,
    pub cpu_model: Option<&'a str>,
    pub timeout: Duration,
}

/// Boots `manifest` once per forgery; (passed, report line) for each.
pub fn boots(setup: &Setup<'_>, manifest: &Path) -> Vec<(bool, String)> {
    FORGERIES
        .iter()
        .map(|(how, panic)| boot(setup, manifest, how, panic))
        .collect()
}

fn boot(setup: &Setup<'_>, manifest: &Path, how: &str, panic: &str) -> (bool, String) {
    let boot = setup.method.name();
    let tag = format!("forged-{how}");
    let dir = setup.logdir.join("iso").join(format!("{tag}-{boot}"));
    let env = [(FORGE_ENV, how)];
    let methods = [setup.method];
    let tag = format!("{tag} smp=1 boot={boot}");
    let image = match mkiso::build_env(setup.mkiso, manifest, &dir, None, &methods, &env)
        .and_then(|b| b.image(setup.method))
    {
        Ok(image) => image,
        Err(e) => return (false, format!("FAIL {tag} (0.0 s) build: {e:#}")),
    };
    let log = setup.logdir.join(format!("forged-{how}-smp1-{boot}.log"));
    let spec = BootSpec {
        image: &image,
        smp: 1,
        accel: setup.accel,
        mem: setup.mem,
        cpu_model: setup.cpu_model,
        timeout: setup.timeout,
        log: Some(&log),
        echo: false,
    };
    match runner::boot(&spec) {
        Ok(o) => {
            let secs = o.elapsed.as_secs_f64();
            judge(&tag, secs, o.status, &o.lines, panic)
        }
        Err(e) => (false, format!("FAIL {tag} (0.0 s) {e:#}")),
    }
}

/// The verdict on one forged boot's log.
fn judge(tag: &str, secs: f64, status: u8, lines: &[String], panic: &str) -> (bool, String) {
    let refused = lines.iter().any(|l| l.starts_with(panic));
    let ran = lines.iter().any(|l| l.starts_with("SCENARIO"));
    if refused && !ran && status == STATUS_ERROR {
        (
            true,
            format!("PASS {tag} ({secs:.1} s) refused with PANIC bad initrd"),
        )
    } else {
        (
            false,
            format!(
                "FAIL {tag} ({secs:.1} s) status {status} refused={refused} ran={ran} \
                 (want a line starting {panic:?})"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refused_passes() {
        let (pass, text) = judge(
            "forged-name",
            0.5,
            STATUS_ERROR,
            &lines(&[
                "kernel: booting",
                "PANIC bad initrd: scenario name must be 1..=48 characters from [a-z0-9-] (at [scenario] name) at kernel/src/initrd.rs:1:1 cpu=0",
            ]),
            FORGERIES[1].1,
        );
        assert!(pass, "{text}");
    }

    #[test]
    fn a_forged_verdict_line_fails() {
        let (pass, _) = judge(
            "forged-name",
            0.5,
            STATUS_ERROR,
            &lines(&[
                "PANIC bad initrd: scenario name must be 1..=48 characters from [a-z0-9-]",
                "SCENARIO forged PASS",
            ]),
            FORGERIES[1].1,
        );
        assert!(!pass);
    }

    #[test]
    fn another_panic_or_status_fails() {
        let (pass, _) = judge(
            "forged-duplicate-selftests",
            0.5,
            STATUS_ERROR,
            &lines(&["PANIC memory allocation of 25165824 bytes failed"]),
            FORGERIES[0].1,
        );
        assert!(!pass);
        let (pass, _) = judge(
            "forged-duplicate-selftests",
            0.5,
            1,
            &lines(&["PANIC bad initrd: duplicate self-test \"smp\""]),
            FORGERIES[0].1,
        );
        assert!(!pass);
    }
}
