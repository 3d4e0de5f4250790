//! The manifest's `[kernel]` table: which local APIC interface and which
//! timer the kernel drives (CONTRACTS.md section 2), and the one rule that
//! turns a request plus what the CPU offers into a mode or a refusal.
//!
//! mkimage parses the words ([`ApicMode::from_name`], [`TimerMode::from_name`]),
//! the initrd carries the enums, and the kernel calls [`resolve_apic`] and
//! [`resolve_timer`] on the boot CPU before any AP starts. Keeping the
//! resolution here lets `cargo test` check it on the host; the kernel only
//! reads CPUID into a [`CpuOffer`].

use serde::{Deserialize, Serialize};

/// `[kernel] apic`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApicMode {
    /// x2APIC when the CPU has it, else xAPIC.
    #[default]
    Auto,
    /// The memory-mapped xAPIC interface.
    XApic,
    /// The MSR-based x2APIC interface.
    X2Apic,
}

impl ApicMode {
    /// Every mode, in the order the manifest documentation lists them.
    pub const ALL: &'static [ApicMode] = &[ApicMode::Auto, ApicMode::XApic, ApicMode::X2Apic];

    /// The manifest word.
    pub const fn name(self) -> &'static str {
        match self {
            ApicMode::Auto => "auto",
            ApicMode::XApic => "xapic",
            ApicMode::X2Apic => "x2apic",
        }
    }

    /// Parses a manifest word.
    pub fn from_name(word: &str) -> Option<ApicMode> {
        Self::ALL.iter().copied().find(|m| m.name() == word)
    }
}

/// `[kernel] timer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerMode {
    /// TSC-deadline when the CPU has it and the TSC is invariant, else the
    /// calibrated local APIC one-shot.
    #[default]
    Auto,
    /// The local APIC timer's one-shot mode, calibrated at boot.
    Lapic,
    /// The local APIC timer in TSC-deadline mode (IA32_TSC_DEADLINE).
    TscDeadline,
}

impl TimerMode {
    /// Every mode, in the order the manifest documentation lists them.
    pub const ALL: &'static [TimerMode] =
        &[TimerMode::Auto, TimerMode::Lapic, TimerMode::TscDeadline];

    /// The manifest word.
    pub const fn name(self) -> &'static str {
        match self {
            TimerMode::Auto => "auto",
            TimerMode::Lapic => "lapic",
            TimerMode::TscDeadline => "tsc-deadline",
        }
    }

    /// Parses a manifest word.
    pub fn from_name(word: &str) -> Option<TimerMode> {
        Self::ALL.iter().copied().find(|m| m.name() == word)
    }
}

/// `[kernel]`; every key optional (default `auto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelConfig {
    /// Local APIC interface.
    pub apic: ApicMode,
    /// Timer device.
    pub timer: TimerMode,
}

/// What the boot CPU offers (read from CPUID by the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuOffer {
    /// CPUID.1:ECX bit 21.
    pub x2apic: bool,
    /// CPUID.1:ECX bit 24.
    pub tsc_deadline: bool,
    /// CPUID.80000007H:EDX bit 8.
    pub invariant_tsc: bool,
}

/// The interface in use (the `mode=` field of `CPU <id> online`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicChoice {
    /// xAPIC (MMIO).
    XApic,
    /// x2APIC (MSRs).
    X2Apic,
}

impl ApicChoice {
    /// The console word.
    pub const fn name(self) -> &'static str {
        match self {
            ApicChoice::XApic => "xapic",
            ApicChoice::X2Apic => "x2apic",
        }
    }
}

/// The timer in use (the `timer=` field of `CPU <id> online`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerChoice {
    /// Calibrated local APIC one-shot (and periodic at bring-up).
    Lapic,
    /// TSC-deadline.
    TscDeadline,
}

impl TimerChoice {
    /// The console word.
    pub const fn name(self) -> &'static str {
        match self {
            TimerChoice::Lapic => "lapic",
            TimerChoice::TscDeadline => "tsc-deadline",
        }
    }
}

/// A pinned mode the CPU lacks: the text after `PANIC ` names the key, the
/// value and the missing CPUID bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// `apic = "x2apic"` without CPUID.1:ECX[21].
    X2Apic,
    /// `timer = "tsc-deadline"` without CPUID.1:ECX[24].
    TscDeadline,
}

impl core::fmt::Display for Missing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Missing::X2Apic => write!(
                f,
                "[kernel] apic = \"x2apic\" but this CPU has no x2APIC (CPUID.1:ECX bit 21)"
            ),
            Missing::TscDeadline => write!(
                f,
                "[kernel] timer = \"tsc-deadline\" but this CPU has no TSC-deadline timer (CPUID.1:ECX bit 24)"
            ),
        }
    }
}

/// The APIC interface for `req` on a CPU offering `cpu`.
pub fn resolve_apic(req: ApicMode, cpu: CpuOffer) -> Result<ApicChoice, Missing> {
    match (req, cpu.x2apic) {
        (ApicMode::XApic, _) | (ApicMode::Auto, false) => Ok(ApicChoice::XApic),
        (ApicMode::X2Apic | ApicMode::Auto, true) => Ok(ApicChoice::X2Apic),
        (ApicMode::X2Apic, false) => Err(Missing::X2Apic),
    }
}

/// The timer for `req` on a CPU offering `cpu`. `auto` takes TSC-deadline
/// only with an invariant TSC as well (a deadline on a TSC that changes
/// rate or stops in deep C-states fires late or never). A pinned
/// `tsc-deadline` needs only the feature: hypervisors commonly hide the
/// invariant-TSC bit (QEMU does unless `invtsc` is asked for, since it
/// blocks migration) while their TSC runs at a constant rate, and the
/// manifest's author asked for it; the kernel logs the missing bit.
pub fn resolve_timer(req: TimerMode, cpu: CpuOffer) -> Result<TimerChoice, Missing> {
    let usable = cpu.tsc_deadline && cpu.invariant_tsc;
    match req {
        TimerMode::Lapic => Ok(TimerChoice::Lapic),
        TimerMode::Auto if usable => Ok(TimerChoice::TscDeadline),
        TimerMode::Auto => Ok(TimerChoice::Lapic),
        TimerMode::TscDeadline if !cpu.tsc_deadline => Err(Missing::TscDeadline),
        TimerMode::TscDeadline => Ok(TimerChoice::TscDeadline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_OFFERS: [CpuOffer; 8] = {
        let mut out = [CpuOffer {
            x2apic: false,
            tsc_deadline: false,
            invariant_tsc: false,
        }; 8];
        let mut i = 0;
        while i < 8 {
            out[i] = CpuOffer {
                x2apic: i & 1 != 0,
                tsc_deadline: i & 2 != 0,
                invariant_tsc: i & 4 != 0,
            };
            i += 1;
        }
        out
    };

    #[test]
    fn words_round_trip() {
        for m in ApicMode::ALL {
            assert_eq!(ApicMode::from_name(m.name()), Some(*m));
        }
        for m in TimerMode::ALL {
            assert_eq!(TimerMode::from_name(m.name()), Some(*m));
        }
        assert_eq!(ApicMode::from_name("X2APIC"), None);
        assert_eq!(ApicMode::from_name("x2"), None);
        assert_eq!(TimerMode::from_name("tsc_deadline"), None);
        assert_eq!(TimerMode::from_name(""), None);
        assert_eq!(KernelConfig::default().apic, ApicMode::Auto);
        assert_eq!(KernelConfig::default().timer, TimerMode::Auto);
    }

    #[test]
    fn apic_resolution() {
        for cpu in ALL_OFFERS {
            assert_eq!(resolve_apic(ApicMode::XApic, cpu), Ok(ApicChoice::XApic));
            let auto = resolve_apic(ApicMode::Auto, cpu);
            let pinned = resolve_apic(ApicMode::X2Apic, cpu);
            if cpu.x2apic {
                assert_eq!(auto, Ok(ApicChoice::X2Apic));
                assert_eq!(pinned, Ok(ApicChoice::X2Apic));
            } else {
                assert_eq!(auto, Ok(ApicChoice::XApic));
                assert_eq!(pinned, Err(Missing::X2Apic));
            }
        }
    }

    #[test]
    fn timer_resolution() {
        for cpu in ALL_OFFERS {
            assert_eq!(resolve_timer(TimerMode::Lapic, cpu), Ok(TimerChoice::Lapic));
            let both = cpu.tsc_deadline && cpu.invariant_tsc;
            let auto = resolve_timer(TimerMode::Auto, cpu);
            assert_eq!(
                auto,
                Ok(if both {
                    TimerChoice::TscDeadline
                } else {
                    TimerChoice::Lapic
                })
            );
            let pinned = resolve_timer(TimerMode::TscDeadline, cpu);
            if cpu.tsc_deadline {
                assert_eq!(pinned, Ok(TimerChoice::TscDeadline));
            } else {
                assert_eq!(pinned, Err(Missing::TscDeadline));
            }
        }
    }

    #[test]
    fn refusals_name_what_is_missing() {
        assert_eq!(
            Missing::X2Apic.to_string(),
            "[kernel] apic = \"x2apic\" but this CPU has no x2APIC (CPUID.1:ECX bit 21)"
        );
        assert_eq!(
            Missing::TscDeadline.to_string(),
            "[kernel] timer = \"tsc-deadline\" but this CPU has no TSC-deadline timer (CPUID.1:ECX bit 24)"
        );
    }
}
