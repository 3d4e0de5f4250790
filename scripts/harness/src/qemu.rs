//! The QEMU command line and the accelerator choice.
//!
//! Our /dev/kvm may be PVM (`kvm_pvm`), which runs guest ring 3 natively but
//! emulates guest ring 0 one instruction at a time (DESIGN.md, "Known
//! pitfalls"). So `auto` means different things: for `run`/`test`, whose
//! work is kernel code, KVM only when it is not PVM; for `scale`, whose timed
//! section is user code, KVM whenever /dev/kvm opens read-write.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// isa-debug-exit I/O port; the guest writes its verdict here (blog_os style).
pub const DEBUG_EXIT_IOBASE: &str = "0xf4";

/// The KVM device.
const KVM_DEVICE: &str = "/dev/kvm";

/// Present when the loaded KVM is PVM.
const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelRequest {
    /// Let the harness decide (see the module docs).
    Auto,
    /// KVM or an error.
    Kvm,
    /// TCG.
    Tcg,
}

impl AccelRequest {
    /// Parses `auto`, `kvm` or `tcg`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            other => bail!("--accel: {other:?} is not auto, kvm or tcg"),
        }
    }
}

/// The accelerator QEMU runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization (maybe PVM).
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Which rule `auto` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `run` and `test`: the work is kernel code.
    KernelTest,
    /// `scale`: the timed section is user code.
    Benchmark,
}

/// What the host offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostKvm {
    /// /dev/kvm opens read-write.
    pub usable: bool,
    /// The kvm_pvm module is loaded.
    pub pvm: bool,
}

impl HostKvm {
    /// Looks at this machine.
    pub fn probe() -> Self {
        let usable = OpenOptions::new()
            .read(true)
            .write(true)
            .open(KVM_DEVICE)
            .is_ok();
        let pvm = Path::new(KVM_PVM_MODULE).exists();
        Self { usable, pvm }
    }
}

/// Chooses the accelerator; returns it with a one-line reason.
pub fn choose(request: AccelRequest, purpose: Purpose, host: HostKvm) -> Result<(Accel, String)> {
    match request {
        AccelRequest::Tcg => Ok((Accel::Tcg, "requested".to_string())),
        AccelRequest::Kvm if host.usable => Ok((Accel::Kvm, "requested".to_string())),
        AccelRequest::Kvm => {
            bail!("--accel kvm requested but {KVM_DEVICE} cannot be opened read-write (missing, or no permission: add yourself to the kvm group)")
        }
        AccelRequest::Auto if !host.usable => {
            Ok((Accel::Tcg, format!("auto: {KVM_DEVICE} is not usable; using TCG")))
        }
        AccelRequest::Auto => match (purpose, host.pvm) {
            (Purpose::KernelTest, true) => Ok((
                Accel::Tcg,
                format!("auto: {KVM_DEVICE} is PVM (kvm_pvm loaded), guest kernel code would be emulated; using TCG"),
            )),
            (Purpose::KernelTest, false) => Ok((Accel::Kvm, format!("auto: {KVM_DEVICE} is usable; using KVM"))),
            (Purpose::Benchmark, true) => Ok((
                Accel::Kvm,
                format!("auto: {KVM_DEVICE} is usable (PVM: guest user code runs natively, the timed section is user code); using KVM"),
            )),
            (Purpose::Benchmark, false) => Ok((Accel::Kvm, format!("auto: {KVM_DEVICE} is usable; using KVM"))),
        },
    }
}

/// Chooses and announces the accelerator on stderr.
pub fn choose_and_report(request: AccelRequest, purpose: Purpose) -> Result<Accel> {
    let (accel, why) = choose(request, purpose, HostKvm::probe())?;
    eprintln!("harness: accel={} ({why})", accel.name());
    Ok(accel)
}

/// The arguments after the program name, CONTRACTS.md section 1.
pub fn args(iso: &Path, smp: u32, mem: &str, accel: Accel) -> Vec<String> {
    let mut a: Vec<String> = [
        "-machine",
        "pc",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-m".to_string(), mem.to_string()]);
    a.extend(["-smp".to_string(), smp.to_string()]);
    a.extend(["-cdrom".to_string(), iso.display().to_string()]);
    a.extend(["-boot".to_string(), "d".to_string()]);
    a.extend([
        "-device".to_string(),
        format!("isa-debug-exit,iobase={DEBUG_EXIT_IOBASE},iosize=0x04"),
    ]);
    match accel {
        // `-cpu host` alone fails on PVM ("failed to set MSR 0x10a").
        Accel::Kvm => {
            a.extend(["-enable-kvm", "-cpu", "host,-arch-capabilities"].map(String::from))
        }
        Accel::Tcg => a.extend(["-accel", "tcg", "-cpu", "max"].map(String::from)),
    }
    a
}

/// A ready-to-spawn QEMU command, and its printable form.
pub fn command(iso: &Path, smp: u32, mem: &str, accel: Accel) -> (Command, String) {
    let args = args(iso, smp, mem, accel);
    let shown = std::iter::once(QEMU.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(QEMU);
    cmd.args(args);
    (cmd, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVM: HostKvm = HostKvm {
        usable: true,
        pvm: true,
    };
    const VMX: HostKvm = HostKvm {
        usable: true,
        pvm: false,
    };
    const NONE: HostKvm = HostKvm {
        usable: false,
        pvm: false,
    };

    fn pick(r: AccelRequest, p: Purpose, h: HostKvm) -> Accel {
        choose(r, p, h).expect("a choice").0
    }

    #[test]
    fn auto_rules() {
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::KernelTest, PVM),
            Accel::Tcg
        );
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::KernelTest, VMX),
            Accel::Kvm
        );
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::KernelTest, NONE),
            Accel::Tcg
        );
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::Benchmark, PVM),
            Accel::Kvm
        );
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::Benchmark, VMX),
            Accel::Kvm
        );
        assert_eq!(
            pick(AccelRequest::Auto, Purpose::Benchmark, NONE),
            Accel::Tcg
        );
        let (_, why) = choose(AccelRequest::Auto, Purpose::KernelTest, PVM).expect("a choice");
        assert!(why.contains("PVM"), "{why}");
    }

    #[test]
    fn explicit_requests() {
        assert_eq!(pick(AccelRequest::Tcg, Purpose::Benchmark, VMX), Accel::Tcg);
        assert_eq!(
            pick(AccelRequest::Kvm, Purpose::KernelTest, PVM),
            Accel::Kvm
        );
        assert!(choose(AccelRequest::Kvm, Purpose::KernelTest, NONE).is_err());
    }

    #[test]
    fn command_line() {
        let a = args(Path::new("/x/os.iso"), 2, "512M", Accel::Kvm).join(" ");
        assert!(a.starts_with(
            "-machine pc -nodefaults -no-reboot -display none -monitor none -serial stdio"
        ));
        assert!(a.contains("-m 512M -smp 2 -cdrom /x/os.iso -boot d"));
        assert!(a.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.ends_with("-enable-kvm -cpu host,-arch-capabilities"));
        let t = args(Path::new("o.iso"), 1, "1G", Accel::Tcg).join(" ");
        assert!(t.ends_with("-accel tcg -cpu max"));
    }
}
