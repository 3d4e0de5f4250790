//! The few manifest fields the harness needs (CONTRACTS.md section 2).
//!
//! mkimage is the validator; this reads only `[scenario] name`, the
//! `[workload]` range and the `[kernel]` modes, ignoring everything else,
//! so a manifest mkimage accepts always loads here.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// What the harness uses from a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `[scenario] name`.
    pub name: String,
    /// `[workload]`, if present.
    pub workload: Option<WorkloadInfo>,
    /// `[kernel]` (both `auto` when absent).
    pub kernel: KernelInfo,
}

/// The `[kernel]` table: the APIC and timer modes a manifest pins.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KernelInfo {
    /// `apic`: `auto`, `xapic` or `x2apic`.
    #[serde(default = "auto")]
    pub apic: String,
    /// `timer`: `auto`, `lapic` or `tsc-deadline`.
    #[serde(default = "auto")]
    pub timer: String,
}

fn auto() -> String {
    "auto".to_string()
}

impl Default for KernelInfo {
    fn default() -> Self {
        Self {
            apic: auto(),
            timer: auto(),
        }
    }
}

impl KernelInfo {
    /// The `mode=` every `CPU <id> online` line must show: the pinned
    /// mode, or `None` for `auto` (either, but the same on every CPU).
    pub fn pinned_mode(&self) -> Option<&str> {
        (self.apic != "auto").then_some(self.apic.as_str())
    }

    /// The `timer=` every line must show, as [`Self::pinned_mode`].
    pub fn pinned_timer(&self) -> Option<&str> {
        (self.timer != "auto").then_some(self.timer.as_str())
    }

    /// Whether anything is pinned.
    pub fn pins_anything(&self) -> bool {
        self.pinned_mode().is_some() || self.pinned_timer().is_some()
    }

    /// Whether it pins a mode QEMU 7.2's TCG does not offer: x2APIC or
    /// the TSC-deadline timer.
    pub fn needs_more_than_tcg(&self) -> bool {
        self.apic == "x2apic" || self.timer == "tsc-deadline"
    }
}

/// The workload's range and answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct WorkloadInfo {
    /// Range start.
    pub lo: u64,
    /// Range end (exclusive).
    pub hi: u64,
    /// Expected prime count.
    pub expected: u64,
}

#[derive(Deserialize)]
struct Raw {
    scenario: RawScenario,
    workload: Option<WorkloadInfo>,
    #[serde(default)]
    kernel: KernelInfo,
}

#[derive(Deserialize)]
struct RawScenario {
    name: String,
}

/// Longest scenario name (CONTRACTS.md section 2).
const MAX_NAME_LEN: usize = 48;

/// Reads a manifest file.
pub fn load(path: &Path) -> Result<ManifestInfo> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses manifest text.
pub fn parse(text: &str) -> Result<ManifestInfo> {
    let raw: Raw = toml::from_str(text).context("not a valid manifest")?;
    let name = raw.scenario.name;
    let valid = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !valid {
        bail!("[scenario] name {name:?} is not [a-z0-9-], 1..={MAX_NAME_LEN} chars");
    }
    if let Some(w) = raw.workload {
        if w.hi <= w.lo {
            bail!("[workload] hi must be > lo");
        }
    }
    Ok(ManifestInfo {
        name,
        workload: raw.workload,
        kernel: raw.kernel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_workload() {
        let m = parse(
            "[scenario]\nname = \"smp-process-scale\"\n[[program]]\nname = \"primes\"\n[workload]\nkind = \"primes\"\nlo = 0\nhi = 1_000_000_000\nexpected = 50_847_534\nworkers = \"cpus\"\nmode = \"process\"\n",
        )
        .expect("valid");
        assert_eq!(m.name, "smp-process-scale");
        assert_eq!(
            m.workload,
            Some(WorkloadInfo {
                lo: 0,
                hi: 1_000_000_000,
                expected: 50_847_534
            })
        );
    }

    #[test]
    fn reads_kernel_modes() {
        let m = parse("[scenario]\nname = \"a\"\n").expect("valid");
        assert_eq!(m.kernel, KernelInfo::default());
        assert!(!m.kernel.pins_anything());
        let m = parse("[scenario]\nname = \"a\"\n[kernel]\napic = \"x2apic\"\n").expect("valid");
        assert_eq!(m.kernel.pinned_mode(), Some("x2apic"));
        assert_eq!(m.kernel.pinned_timer(), None);
        let m =
            parse("[scenario]\nname = \"a\"\n[kernel]\ntimer = \"tsc-deadline\"\n").expect("valid");
        assert_eq!(m.kernel.pinned_mode(), None);
        assert_eq!(m.kernel.pinned_timer(), Some("tsc-deadline"));
        assert!(m.kernel.pins_anything());
        assert!(m.kernel.needs_more_than_tcg());
        let m = parse("[scenario]\nname = \"a\"\n[kernel]\napic = \"xapic\"\ntimer = \"lapic\"\n")
            .expect("valid");
        assert!(m.kernel.pins_anything());
        assert!(!m.kernel.needs_more_than_tcg());
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(parse("").is_err());
        assert!(parse("[scenario]\nname = \"Bad Name\"\n").is_err());
        assert!(
            parse("[scenario]\nname = \"x\"\n[workload]\nlo = 5\nhi = 5\nexpected = 0\n").is_err()
        );
        assert!(parse("[scenario]\nname = \"ok\"\n").is_ok());
    }
}
