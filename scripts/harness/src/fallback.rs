//! `harness test --cpu-fallback M`: the x2APIC fallback (issue 13).
//!
//! `M` pins `[kernel] apic = "x2apic"`. Two boots at `-smp 2` on a CPU
//! model without x2APIC (`max,-x2apic` under TCG, `host,-arch-capabilities,-x2apic`
//! under KVM; a `--cpu` given to the harness is used as it is):
//!
//! 1. `M` itself must end in the kernel's refusal: a line starting
//!    [`REFUSAL`], no `SCENARIO` line, and the panic status: never a hang,
//!    never a run in the wrong mode.
//! 2. `M` with `apic = "auto"` (a copy written next to the logs) must PASS
//!    with every `CPU <id> online` line saying `mode=xapic`.

use std::path::{Path, PathBuf};

use crate::forged::Setup;
use crate::manifest::{self, KernelInfo};
use crate::mkiso;
use crate::qemu::Accel;
use crate::runner::{self, BootSpec, STATUS_ERROR};
use crate::smoke;

/// The start of the kernel's refusal line.
pub const REFUSAL: &str =
    "PANIC [kernel] apic = \"x2apic\" but this CPU has no x2APIC (CPUID.1:ECX bit 21)";
/// The CPU count of both boots.
const SMP: u32 = 2;
/// The report lines' name.
const TAG: &str = "cpu-fallback";

/// The CPU model without x2APIC for `accel`, unless one was given.
fn cpu_model(setup: &Setup<'_>) -> String {
    match (setup.cpu_model, setup.accel) {
        (Some(m), _) => m.to_string(),
        (None, Accel::Tcg) => "max,-x2apic".to_string(),
        (None, Accel::Kvm) => "host,-arch-capabilities,-x2apic".to_string(),
    }
}

/// `text` with its `[kernel] apic = "x2apic"` made `"auto"`, or `None`
/// when it has no such line.
pub fn auto_twin(text: &str) -> Option<String> {
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let key = l.trim_start();
            if key.starts_with("apic") && key.contains("\"x2apic\"") {
                found = true;
                l.replace("\"x2apic\"", "\"auto\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    found.then(|| out.join("\n") + "\n")
}

/// Both boots; (passed, report line) for each.
pub fn boots(setup: &Setup<'_>, manifest: &Path) -> Vec<(bool, String)> {
    let boot = setup.method.name();
    let model = cpu_model(setup);
    let head = |what: &str| format!("{TAG}-{what} smp={SMP} boot={boot} cpu={model}");
    let text = match std::fs::read_to_string(manifest) {
        Ok(t) => t,
        Err(e) => return vec![(false, format!("FAIL {} (0.0 s) {e}", head("x2apic")))],
    };
    let Some(twin) = auto_twin(&text) else {
        return vec![(
            false,
            format!(
                "FAIL {} (0.0 s) manifest does not pin apic = \"x2apic\"",
                head("x2apic")
            ),
        )];
    };
    let twin_path = setup.logdir.join(format!("{TAG}-auto.toml"));
    let mut out = vec![refused(setup, manifest, &model, &head("x2apic"))];
    let twin_ok = std::fs::create_dir_all(setup.logdir)
        .and_then(|()| std::fs::write(&twin_path, twin))
        .map_err(|e| e.to_string());
    out.push(match twin_ok {
        Ok(()) => falls_back(setup, &twin_path, &model, &head("auto")),
        Err(e) => (false, format!("FAIL {} (0.0 s) {e}", head("auto"))),
    });
    out
}

/// Builds `manifest` into its own folder and boots it once.
fn boot_once(
    setup: &Setup<'_>,
    manifest: &Path,
    model: &str,
    what: &str,
) -> Result<runner::BootOutcome, String> {
    let boot = setup.method.name();
    let dir: PathBuf = setup
        .logdir
        .join("iso")
        .join(format!("{TAG}-{what}-{boot}"));
    let image = mkiso::build(setup.mkiso, manifest, &dir, None, &[setup.method])
        .and_then(|b| b.image(setup.method))
        .map_err(|e| format!("build: {e:#}"))?;
    let log = setup
        .logdir
        .join(format!("{TAG}-{what}-smp{SMP}-{boot}.log"));
    let spec = BootSpec {
        image: &image,
        smp: SMP,
        accel: setup.accel,
        mem: setup.mem,
        cpu_model: Some(model),
        timeout: setup.timeout,
        log: Some(&log),
        echo: false,
    };
    runner::boot(&spec).map_err(|e| format!("{e:#}"))
}

fn refused(setup: &Setup<'_>, manifest: &Path, model: &str, head: &str) -> (bool, String) {
    let o = match boot_once(setup, manifest, model, "x2apic") {
        Ok(o) => o,
        Err(e) => return (false, format!("FAIL {head} (0.0 s) {e}")),
    };
    judge_refusal(head, o.elapsed.as_secs_f64(), o.status, &o.lines)
}

/// Boot 1's verdict.
fn judge_refusal(head: &str, secs: f64, status: u8, lines: &[String]) -> (bool, String) {
    let refused = lines.iter().any(|l| l.starts_with(REFUSAL));
    let ran = lines.iter().any(|l| l.starts_with("SCENARIO"));
    if refused && !ran && status == STATUS_ERROR {
        (
            true,
            format!("PASS {head} ({secs:.1} s) refused with PANIC"),
        )
    } else {
        (
            false,
            format!("FAIL {head} ({secs:.1} s) status {status} refused={refused} ran={ran}"),
        )
    }
}

fn falls_back(setup: &Setup<'_>, twin: &Path, model: &str, head: &str) -> (bool, String) {
    let name = match manifest::load(twin) {
        Ok(m) => m.name,
        Err(e) => return (false, format!("FAIL {head} (0.0 s) {e:#}")),
    };
    let o = match boot_once(setup, twin, model, "auto") {
        Ok(o) => o,
        Err(e) => return (false, format!("FAIL {head} (0.0 s) {e}")),
    };
    // auto on a CPU without x2APIC must pick xAPIC.
    let want = KernelInfo {
        apic: "xapic".to_string(),
        timer: "auto".to_string(),
    };
    let line = smoke::check_online(smoke::describe(&name, SMP, setup.method, &o), SMP, &o);
    let line = smoke::check_modes(line, &want, &o.lines);
    let text = line.text.replacen(
        &format!("{name} smp={SMP} boot={}", setup.method.name()),
        &format!("{head} {name}"),
        1,
    );
    (line.pass, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_turns_x2apic_into_auto() {
        let m = "[scenario]\nname = \"a\"\n[kernel]\napic = \"x2apic\"\ntimer = \"lapic\"\n";
        assert_eq!(
            auto_twin(m).as_deref(),
            Some("[scenario]\nname = \"a\"\n[kernel]\napic = \"auto\"\ntimer = \"lapic\"\n")
        );
        assert_eq!(auto_twin("[scenario]\nname = \"a\"\n"), None);
    }

    #[test]
    fn refusal_judgement() {
        let ok = vec![format!("{REFUSAL} at kernel/src/smp.rs:1 cpu=0")];
        assert!(judge_refusal("h", 0.1, STATUS_ERROR, &ok).0);
        // A hang (no PANIC line) or a run fails.
        assert!(!judge_refusal("h", 0.1, STATUS_ERROR, &[]).0);
        let mut ran = ok.clone();
        ran.push("SCENARIO a PASS".into());
        assert!(!judge_refusal("h", 0.1, STATUS_ERROR, &ran).0);
        assert!(!judge_refusal("h", 0.1, 0, &ok).0);
    }
}
