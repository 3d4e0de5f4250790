//! The QEMU command line, the accelerator choice and the boot-method choice.
//!
//! Our /dev/kvm may be PVM (`kvm_pvm`), which runs guest ring 3 natively but
//! emulates guest ring 0 one instruction at a time (DESIGN.md, "Known
//! pitfalls"). So `auto` means different things: for `run`/`test`, whose
//! work is kernel code, KVM only when it is not PVM; for `scale`, whose timed
//! section is user code, KVM whenever /dev/kvm opens read-write.
//!
//! Two boot methods (CONTRACTS.md section 1, `BOOT=`): `iso`, the GRUB ISO
//! on `-machine pc` (SeaBIOS, then GRUB, then the Multiboot2 entry; the
//! product's reference path), and `pvh`, the kernel ELF loaded by QEMU
//! itself through its PVH note on `-machine microvm` with the initrd as
//! `-initrd` (no BIOS disk boot, no GRUB). Under PVM, where guest ring 0 is
//! emulated, SeaBIOS and GRUB alone take about 40 s, so `auto` picks `pvh`
//! exactly there and `iso` everywhere else.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
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

/// What the user asked for with `BOOT=` / `--boot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootRequest {
    /// `iso`, except `pvh` under KVM on a PVM host (see the module docs).
    Auto,
    /// The GRUB ISO on `-machine pc`.
    Iso,
    /// The kernel ELF's PVH entry on `-machine microvm`.
    Pvh,
}

impl BootRequest {
    /// Parses `auto`, `iso` or `pvh`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "iso" => Ok(Self::Iso),
            "pvh" => Ok(Self::Pvh),
            other => bail!("--boot: {other:?} is not auto, iso or pvh"),
        }
    }
}

/// How QEMU loads the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BootMethod {
    /// SeaBIOS boots the GRUB ISO (Multiboot2 entry) on `-machine pc`.
    Iso,
    /// QEMU loads the kernel ELF through its PVH note on `-machine microvm`.
    Pvh,
}

impl BootMethod {
    /// Both, in the order `harness test` boots them.
    pub const ALL: [Self; 2] = [Self::Iso, Self::Pvh];

    /// `iso` or `pvh`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Iso => "iso",
            Self::Pvh => "pvh",
        }
    }

    /// The QEMU machine type, as recorded in benchmark summaries.
    pub const fn machine(self) -> &'static str {
        match self {
            Self::Iso => "pc",
            Self::Pvh => "microvm",
        }
    }
}

/// Chooses the boot method for `accel`; returns it with a one-line reason.
pub fn choose_boot(request: BootRequest, accel: Accel, host: HostKvm) -> (BootMethod, String) {
    match request {
        BootRequest::Iso => (BootMethod::Iso, "requested".to_string()),
        BootRequest::Pvh => (BootMethod::Pvh, "requested".to_string()),
        BootRequest::Auto if accel == Accel::Kvm && host.pvm => (
            BootMethod::Pvh,
            "auto: KVM on PVM emulates guest ring 0, where SeaBIOS and GRUB take 10 to 40 s; \
             booting the kernel ELF directly (PVH entry, -machine microvm)"
                .to_string(),
        ),
        BootRequest::Auto => (
            BootMethod::Iso,
            format!(
                "auto: the GRUB ISO (reference boot path) is cheap under {}",
                if accel == Accel::Kvm {
                    "non-PVM KVM"
                } else {
                    "TCG"
                }
            ),
        ),
    }
}

/// Chooses and announces the boot method on stderr, like the accelerator.
pub fn choose_boot_and_report(request: BootRequest, accel: Accel) -> BootMethod {
    let (boot, why) = choose_boot(request, accel, HostKvm::probe());
    eprintln!(
        "harness: boot={} machine={} ({why})",
        boot.name(),
        boot.machine()
    );
    boot
}

/// What QEMU boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// A grub-mkrescue ISO.
    Iso(PathBuf),
    /// The kernel ELF and the initrd, for the PVH entry.
    Pvh {
        /// The (stripped) kernel ELF with its PVH note.
        kernel: PathBuf,
        /// The initrd mkimage wrote.
        initrd: PathBuf,
        /// The kernel command line (`-append`), if any; the ISO carries
        /// its own in grub.cfg.
        cmdline: Option<String>,
    },
}

impl Image {
    /// The boot method this image needs.
    pub const fn method(&self) -> BootMethod {
        match self {
            Self::Iso(_) => BootMethod::Iso,
            Self::Pvh { .. } => BootMethod::Pvh,
        }
    }

    /// Every file the image is made of.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Self::Iso(iso) => vec![iso.as_path()],
            Self::Pvh { kernel, initrd, .. } => vec![kernel.as_path(), initrd.as_path()],
        }
    }
}

/// The microvm machine for the PVH boot, and why each option:
///
/// - `acpi=on`: QEMU builds ACPI tables (RSDP in the BIOS area, MADT); the
///   kernel finds the CPUs and the I/O APIC through the MADT only.
/// - `pit=on`: the i8254's channel 0, the kernel's calibration fallback
///   when CPUID has no TSC frequency (microvm has no port 0x61, so no
///   channel 2 gate; under KVM `-cpu host` gives neither leaf 0x15 nor
///   0x40000010).
/// - `pic=on`: the 8259 pair the kernel remaps and masks at boot, as on
///   `pc`, so nothing differs after the loader.
/// - `rtc=off`: the kernel never reads the CMOS clock.
/// - `isa-serial=on`: COM1 at 0x3f8, the console (`-serial stdio`); it is
///   microvm's default, spelled out because the kernel needs it.
///
/// `-nodefaults` drops the virtio-mmio transports nobody uses. ISA devices
/// (isa-debug-exit) work on microvm: it has an ISA bus.
pub const MICROVM_MACHINE: &str = "microvm,acpi=on,pit=on,pic=on,rtc=off,isa-serial=on";

/// QEMU's version as (major, minor), from `--version` ("QEMU emulator
/// version 10.0.2 ...").
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split("version ").nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether this host's QEMU emulates x2APIC under TCG (QEMU 8.1 and
/// later; Debian 12's 7.2 does not, scripts/install-deps.sh upgrades it).
/// Asked once per harness run.
pub fn tcg_has_x2apic() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| parse_version(&String::from_utf8_lossy(&o.stdout)))
            .is_some_and(|v| v >= (8, 1))
    })
}

/// The `-cpu` value: `cpu_model` if given, else `host,-arch-capabilities`
/// under KVM and `max` under TCG.
pub fn cpu_arg(accel: Accel, cpu_model: Option<&str>) -> String {
    match (cpu_model, accel) {
        (Some(m), _) => m.to_string(),
        // `-cpu host` alone fails on PVM ("failed to set MSR 0x10a").
        (None, Accel::Kvm) => "host,-arch-capabilities".to_string(),
        (None, Accel::Tcg) => "max".to_string(),
    }
}

/// One QEMU invocation's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'a> {
    /// What to boot.
    pub image: &'a Image,
    /// CPU count.
    pub smp: u32,
    /// `-m` value.
    pub mem: &'a str,
    /// Accelerator.
    pub accel: Accel,
    /// `-cpu` override (`CPU_MODEL=`).
    pub cpu_model: Option<&'a str>,
}

/// The arguments after the program name, CONTRACTS.md section 1.
pub fn args(m: &Machine<'_>) -> Vec<String> {
    let machine = match m.image.method() {
        BootMethod::Iso => "pc",
        BootMethod::Pvh => MICROVM_MACHINE,
    };
    let mut a: Vec<String> = vec!["-machine".to_string(), machine.to_string()];
    a.extend(
        [
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ]
        .map(String::from),
    );
    a.extend(["-m".to_string(), m.mem.to_string()]);
    a.extend(["-smp".to_string(), m.smp.to_string()]);
    match m.image {
        Image::Iso(iso) => {
            a.extend(["-cdrom".to_string(), iso.display().to_string()]);
            a.extend(["-boot".to_string(), "d".to_string()]);
        }
        Image::Pvh {
            kernel,
            initrd,
            cmdline,
        } => {
            a.extend(["-kernel".to_string(), kernel.display().to_string()]);
            a.extend(["-initrd".to_string(), initrd.display().to_string()]);
            if let Some(c) = cmdline {
                a.extend(["-append".to_string(), c.clone()]);
            }
        }
    }
    a.extend([
        "-device".to_string(),
        format!("isa-debug-exit,iobase={DEBUG_EXIT_IOBASE},iosize=0x04"),
    ]);
    match m.accel {
        Accel::Kvm => a.push("-enable-kvm".to_string()),
        Accel::Tcg => a.extend(["-accel", "tcg"].map(String::from)),
    }
    a.extend(["-cpu".to_string(), cpu_arg(m.accel, m.cpu_model)]);
    a
}

/// `QEMU arg arg ...`, for the log.
pub fn shown(args: &[String]) -> String {
    std::iter::once(QEMU.to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A ready-to-spawn QEMU command, and its printable form.
pub fn command(m: &Machine<'_>) -> (Command, String) {
    let args = args(m);
    let shown = shown(&args);
    let mut cmd = Command::new(QEMU);
    cmd.args(args);
    (cmd, shown)
}

#[cfg(test)]
mod tests {
    #[test]
    fn qemu_versions() {
        use super::parse_version;
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            Some((10, 0))
        );
        assert_eq!(parse_version("QEMU emulator version 7.2.0"), Some((7, 2)));
        assert_eq!(parse_version("garbage"), None);
    }

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

    fn iso() -> Image {
        Image::Iso(PathBuf::from("/x/os.iso"))
    }

    fn pvh() -> Image {
        Image::Pvh {
            kernel: PathBuf::from("/x/kernel"),
            initrd: PathBuf::from("/x/initrd"),
            cmdline: None,
        }
    }

    fn line(image: &Image, smp: u32, mem: &str, accel: Accel, cpu: Option<&str>) -> String {
        args(&Machine {
            image,
            smp,
            mem,
            accel,
            cpu_model: cpu,
        })
        .join(" ")
    }

    #[test]
    fn command_line() {
        let a = line(&iso(), 2, "512M", Accel::Kvm, None);
        assert!(a.starts_with(
            "-machine pc -nodefaults -no-reboot -display none -monitor none -serial stdio"
        ));
        assert!(a.contains("-m 512M -smp 2 -cdrom /x/os.iso -boot d"));
        assert!(a.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.ends_with("-enable-kvm -cpu host,-arch-capabilities"));
        let t = line(&iso(), 1, "1G", Accel::Tcg, None);
        assert!(t.ends_with("-accel tcg -cpu max"));
    }

    #[test]
    fn pvh_command_line() {
        let a = line(&pvh(), 4, "512M", Accel::Tcg, None);
        assert!(a.starts_with(&format!("-machine {MICROVM_MACHINE} -nodefaults")));
        assert!(MICROVM_MACHINE.contains("acpi=on"));
        assert!(a.contains("-m 512M -smp 4 -kernel /x/kernel -initrd /x/initrd -device"));
        assert!(!a.contains("-cdrom"));
        assert!(a.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.ends_with("-accel tcg -cpu max"));
        let with_cmdline = Image::Pvh {
            kernel: PathBuf::from("k"),
            initrd: PathBuf::from("i"),
            cmdline: Some("test_skip_ap=1".into()),
        };
        let c = line(&with_cmdline, 4, "512M", Accel::Tcg, None);
        assert!(
            c.contains("-kernel k -initrd i -append test_skip_ap=1 -device"),
            "{c}"
        );
    }

    #[test]
    fn cpu_model_overrides() {
        let a = line(&iso(), 2, "512M", Accel::Tcg, Some("max,-x2apic"));
        assert!(a.ends_with("-accel tcg -cpu max,-x2apic"), "{a}");
        let k = line(&pvh(), 2, "512M", Accel::Kvm, Some("host"));
        assert!(k.ends_with("-enable-kvm -cpu host"), "{k}");
    }

    #[test]
    fn boot_rules() {
        let pick = |r, a, h| choose_boot(r, a, h).0;
        assert_eq!(pick(BootRequest::Auto, Accel::Kvm, PVM), BootMethod::Pvh);
        assert_eq!(pick(BootRequest::Auto, Accel::Tcg, PVM), BootMethod::Iso);
        assert_eq!(pick(BootRequest::Auto, Accel::Kvm, VMX), BootMethod::Iso);
        assert_eq!(pick(BootRequest::Auto, Accel::Tcg, NONE), BootMethod::Iso);
        assert_eq!(pick(BootRequest::Iso, Accel::Kvm, PVM), BootMethod::Iso);
        assert_eq!(pick(BootRequest::Pvh, Accel::Tcg, NONE), BootMethod::Pvh);
        let (_, why) = choose_boot(BootRequest::Auto, Accel::Kvm, PVM);
        assert!(why.contains("PVM"), "{why}");
        assert_eq!(BootMethod::Pvh.machine(), "microvm");
        assert_eq!(BootMethod::Iso.machine(), "pc");
        assert_eq!(pvh().method(), BootMethod::Pvh);
        assert!(BootRequest::parse("grub").is_err());
        assert_eq!(BootRequest::parse("pvh").ok(), Some(BootRequest::Pvh));
    }
}
