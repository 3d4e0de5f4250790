//! The few manifest fields the harness needs (CONTRACTS.md section 2).
//!
//! mkimage is the validator; this reads only `[scenario] name`, the
//! `[workload]` range (or, for `kind = "ring"`, its mix and worker
//! count) and the `[kernel]` modes, ignoring everything else, so a
//! manifest mkimage accepts always loads here.

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

    /// Whether it pins a mode this QEMU's TCG does not offer: the
    /// TSC-deadline timer (no TCG has it), or x2APIC when `tcg_x2apic` is
    /// false (TCG emulates x2APIC from QEMU 8.1 on: [`crate::qemu::tcg_has_x2apic`]).
    pub fn needs_more_than_tcg(&self, tcg_x2apic: bool) -> bool {
        (self.apic == "x2apic" && !tcg_x2apic) || self.timer == "tsc-deadline"
    }
}

/// The workload's range and answer (primes), or its mix (ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Range start (0 for ring).
    pub lo: u64,
    /// Range end, exclusive (0 for ring).
    pub hi: u64,
    /// Expected prime count (ring: see [`WorkloadInfo::expected_for`]).
    pub expected: u64,
    /// `kind = "ring"`: what the operation count depends on.
    pub ring: Option<RingInfo>,
}

/// A ring workload's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingInfo {
    /// Operations per worker: `rounds * (nops + timers + 4 * pingpongs)`.
    pub ops_per_worker: u64,
    /// NOPs per batch (the native anchor uses the same batch size).
    pub nops: u32,
    /// A fixed worker count, or `None` for one per CPU.
    pub workers: Option<u32>,
}

impl WorkloadInfo {
    /// The count a boot with `cpus` CPUs must report: the prime count, or
    /// the operations of all ring workers.
    pub fn expected_for(&self, cpus: u32) -> u64 {
        match self.ring {
            None => self.expected,
            Some(r) => r
                .ops_per_worker
                .saturating_mul(u64::from(r.workers.unwrap_or(cpus.max(1)))),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    scenario: RawScenario,
    workload: Option<RawWorkload>,
    #[serde(default)]
    kernel: KernelInfo,
}

#[derive(Deserialize)]
struct RawWorkload {
    kind: Option<String>,
    lo: Option<u64>,
    hi: Option<u64>,
    expected: Option<u64>,
    workers: Option<toml::Value>,
    rounds: Option<u32>,
    nops: Option<u32>,
    timers: Option<u32>,
    pingpongs: Option<u32>,
}

impl RawWorkload {
    fn info(self) -> Result<WorkloadInfo> {
        if self.kind.as_deref() == Some("ring") {
            let Some(rounds) = self.rounds else {
                bail!("[workload] kind = \"ring\" needs rounds");
            };
            let (nops, timers, pingpongs) = (
                self.nops.unwrap_or(0),
                self.timers.unwrap_or(0),
                self.pingpongs.unwrap_or(0),
            );
            let per_round = u64::from(nops) + u64::from(timers) + 4 * u64::from(pingpongs);
            let workers = match &self.workers {
                Some(toml::Value::Integer(n)) => Some(u32::try_from(*n)?),
                _ => None,
            };
            return Ok(WorkloadInfo {
                lo: 0,
                hi: 0,
                expected: 0,
                ring: Some(RingInfo {
                    ops_per_worker: u64::from(rounds).saturating_mul(per_round),
                    nops,
                    workers,
                }),
            });
        }
        let (Some(lo), Some(hi), Some(expected)) = (self.lo, self.hi, self.expected) else {
            bail!("[workload] needs lo, hi and expected");
        };
        if hi <= lo {
            bail!("[workload] hi must be > lo");
        }
        Ok(WorkloadInfo {
            lo,
            hi,
            expected,
            ring: None,
        })
    }
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
    let workload = raw.workload.map(RawWorkload::info).transpose()?;
    Ok(ManifestInfo {
        name,
        workload,
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
                expected: 50_847_534,
                ring: None,
            })
        );
    }

    #[test]
    fn reads_a_ring_workload() {
        let m = parse(
            "[scenario]\nname = \"ring-scale\"\n[workload]\nkind = \"ring\"\nrounds = 10\nnops = 16\ntimers = 2\npingpongs = 1\nworkers = \"cpus\"\nmode = \"thread\"\n",
        )
        .expect("valid");
        let w = m.workload.expect("workload");
        let r = w.ring.expect("ring");
        assert_eq!((r.ops_per_worker, r.nops, r.workers), (220, 16, None));
        assert_eq!(w.expected_for(1), 220);
        assert_eq!(w.expected_for(2), 440);
        let fixed = parse(
            "[scenario]\nname = \"r\"\n[workload]\nkind = \"ring\"\nrounds = 2\nnops = 1\nworkers = 3\nmode = \"thread\"\n",
        )
        .expect("valid")
        .workload
        .expect("workload");
        assert_eq!(fixed.expected_for(1), 6);
        assert!(parse("[scenario]\nname = \"r\"\n[workload]\nkind = \"ring\"\n").is_err());
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
        assert!(m.kernel.needs_more_than_tcg(true));
        let m = parse("[scenario]\nname = \"a\"\n[kernel]\napic = \"xapic\"\ntimer = \"lapic\"\n")
            .expect("valid");
        assert!(m.kernel.pins_anything());
        assert!(!m.kernel.needs_more_than_tcg(false));
        let m = parse("[scenario]\nname = \"a\"\n[kernel]\napic = \"x2apic\"\n").expect("valid");
        assert!(m.kernel.needs_more_than_tcg(false));
        assert!(!m.kernel.needs_more_than_tcg(true));
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
