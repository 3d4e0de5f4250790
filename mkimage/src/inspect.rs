//! `mkimage inspect`: verify an initrd and describe what it holds.
//!
//! Decoding goes through [`abi::initrd::decode`] (header, checksum,
//! payload, every manifest rule), the very code the kernel runs, so names
//! printed here are already known to be plain tokens; each image is re-checked with
//! [`abi::elf::validate`] and its load plan printed. The output is plain
//! `key=value` lines meant for people and for grep.

use std::fmt::Write as _;

use abi::caps::CapKind;
use abi::elf::{PF_R, PF_W, PF_X};
use abi::initrd::{InitrdError, Payload};
use abi::manifest::{Expect, Workers};

/// What an initrd holds, described.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The description, one item per line.
    pub text: String,
    /// Lines about images that fail the ELF rules (empty when all pass).
    pub bad_images: Vec<String>,
}

/// Verifies and describes an initrd.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, InitrdError> {
    let payload = abi::initrd::decode(bytes)?;
    let body_len = abi::initrd::verify(bytes)?.len();
    let mut text = String::new();
    let mut bad_images = Vec::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        text,
        "initrd format={} payload_bytes={body_len} total_bytes={}",
        abi::initrd::FORMAT_VERSION,
        bytes.len()
    );
    describe_manifest(&mut text, &payload);
    for image in &payload.programs {
        let _ = writeln!(text, "image name={} bytes={}", image.name, image.elf.len());
        match crate::image::validate_elf(image.elf) {
            Ok(plan) => {
                let _ = writeln!(text, "  entry={:#x}", plan.entry);
                for s in &plan.segments {
                    let _ = writeln!(
                        text,
                        "  segment vaddr={:#x} mem_bytes={:#x} file_offset={:#x} file_bytes={:#x} flags={}",
                        s.vaddr,
                        s.mem_len,
                        s.file_offset,
                        s.file_len,
                        flags(s.flags)
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(text, "  INVALID {e}");
                bad_images.push(format!("image {:?}: {e}", image.name));
            }
        }
    }
    Ok(Inspection { text, bad_images })
}

fn describe_manifest(text: &mut String, payload: &Payload<'_>) {
    let m = &payload.manifest;
    let _ = writeln!(text, "scenario name={}", m.scenario.name);
    if let Some(d) = m.scenario.description {
        let _ = writeln!(text, "  description={d:?}");
    }
    if let Some(t) = m.scenario.timeout_ms {
        let _ = writeln!(text, "  timeout_ms={t}");
    }
    if !m.scenario.selftests.is_empty() {
        let names: Vec<&str> = m.scenario.selftests.iter().map(|t| t.name()).collect();
        let _ = writeln!(text, "  selftests={}", names.join(","));
    }
    for (i, p) in m.programs.iter().enumerate() {
        let caps: Vec<&str> = p.caps.iter().map(|k: &CapKind| k.name()).collect();
        let _ = writeln!(
            text,
            "program index={i} name={} args={:?} caps=[{}] expect={} kernel_kib={}",
            p.name,
            p.args,
            caps.join(","),
            expect(p.expect),
            p.kernel_kib.unwrap_or(abi::limits::KERNEL_KIB_DEFAULT)
        );
    }
    if let Some(w) = m.workload {
        let kind = w.kind.name();
        let workers = match w.workers {
            Workers::Count(n) => n.to_string(),
            Workers::Cpus => "cpus".to_string(),
        };
        let _ = writeln!(
            text,
            "workload kind={kind} lo={} hi={} expected={} workers={workers} mode={} repeat={} serialize={}",
            w.lo,
            w.hi,
            w.expected,
            w.mode.name(),
            w.repeat,
            w.serialize
        );
        if let Some(r) = w.ring {
            let _ = writeln!(
                text,
                "workload ring rounds={} nops={} timers={} pingpongs={} ops_per_worker={}",
                r.rounds,
                r.nops,
                r.timers,
                r.pingpongs,
                r.ops_per_worker()
            );
        }
    }
    let _ = writeln!(
        text,
        "kernel apic={} timer={}",
        m.kernel.apic.name(),
        m.kernel.timer.name()
    );
}

fn expect(e: Expect) -> String {
    match e {
        Expect::Exit(n) => format!("exit:{n}"),
        Expect::Fault => "fault".to_string(),
    }
}

fn flags(f: u32) -> String {
    let bit = |mask: u32, c: char| if f & mask != 0 { c } else { '-' };
    [bit(PF_R, 'r'), bit(PF_W, 'w'), bit(PF_X, 'x')]
        .iter()
        .collect()
}
