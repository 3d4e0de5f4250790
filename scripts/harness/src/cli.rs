//! Command-line parsing, by hand: five subcommands with a few flags each.
//!
//! Flags take their value as the next argument (`--smp 2`) or after `=`
//! (`--smp=2`). Empty values (`--accel ""`, as `make` passes for unset
//! variables) mean "use the default".

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::qemu::{AccelRequest, BootRequest};

/// Printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage:
  harness run (--manifest M [--image-dir DIR] [--mkiso PATH] | --iso ISO | --kernel ELF --initrd FILE)
              [--smp N] [BOOT FLAGS] [--log FILE]
  harness debug (same image flags as run) [--smp N] [--boot auto|iso|pvh] [--mem 512M] [--cpu MODEL]
  harness test [--smp-list \"1 2 4\"] [--extra STEM=N,N] [--corrupt-initrd M] [--cpu-hole M]
               [--cpu-fallback M] [BOOT FLAGS]
               [--logdir DIR] [--mkiso PATH] MANIFEST...
  harness scale --manifest M [--smp-list \"1 2 4\"] [--runs 5] [--repeat 3] [BOOT FLAGS]
                [--out target/scale] [--mkiso PATH]
  harness soak [--smp-list \"1 2 4 8\"] [--runs 20] [BOOT FLAGS] [--out target/soak] [--mkiso PATH] MANIFEST...
BOOT FLAGS: [--accel auto|kvm|tcg] [--boot auto|iso|pvh] [--cpu MODEL] [--mem 512M] [--timeout SECS]
  (test and soak boot both methods for --boot auto)";

/// Default guest memory.
pub const DEFAULT_MEM: &str = "512M";

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
    /// `--help`.
    Help,
    /// `harness run`.
    Run(RunOpts),
    /// `harness debug`.
    Debug(RunOpts),
    /// `harness test`.
    Test(TestOpts),
    /// `harness scale`.
    Scale(ScaleOpts),
    /// `harness soak`.
    Soak(SoakOpts),
}

/// Options shared by every subcommand that boots QEMU.
#[derive(Debug, Clone)]
pub struct BootOpts {
    /// Accelerator request.
    pub accel: AccelRequest,
    /// Boot-method request.
    pub boot: BootRequest,
    /// `-cpu` override.
    pub cpu_model: Option<String>,
    /// `-m` value.
    pub mem: String,
    /// Per-boot timeout; `None` picks the default for the accelerator.
    pub timeout: Option<Duration>,
}

/// What `harness run` boots.
#[derive(Debug, PartialEq, Eq)]
pub enum RunSource {
    /// A ready ISO (boot method `iso`).
    Iso(PathBuf),
    /// A ready kernel ELF and initrd (boot method `pvh`).
    Pvh {
        /// The kernel ELF.
        kernel: PathBuf,
        /// The initrd.
        initrd: PathBuf,
    },
    /// Build the image for the chosen boot method from a manifest.
    Manifest {
        /// The manifest.
        manifest: PathBuf,
        /// Where mkiso.sh puts the image.
        image_dir: PathBuf,
        /// The image builder script.
        mkiso: PathBuf,
    },
}

/// `harness run` and `harness debug`.
#[derive(Debug)]
pub struct RunOpts {
    /// What to boot.
    pub source: RunSource,
    /// CPU count.
    pub smp: u32,
    /// Accelerator, memory, timeout.
    pub boot: BootOpts,
    /// Copy of the serial console.
    pub log: Option<PathBuf>,
}

/// `harness test`.
#[derive(Debug)]
pub struct TestOpts {
    /// Manifests to build and boot.
    pub manifests: Vec<PathBuf>,
    /// CPU counts to boot each under.
    pub smp_list: Vec<u32>,
    /// Extra CPU counts for one manifest stem (`--extra smoke-smp=8`).
    pub extra: Vec<(String, Vec<u32>)>,
    /// Boot this manifest with a corrupted initrd and expect a clean PANIC.
    pub corrupt: Option<PathBuf>,
    /// Boot this manifest at -smp 4 with AP 1 left out (`hole.rs`).
    pub cpu_hole: Option<PathBuf>,
    /// Boot this x2APIC-pinning manifest on a CPU without x2APIC, and its
    /// `auto` twin (`fallback.rs`).
    pub cpu_fallback: Option<PathBuf>,
    /// Accelerator, memory, timeout.
    pub boot: BootOpts,
    /// Where the serial logs go.
    pub logdir: PathBuf,
    /// The ISO builder script.
    pub mkiso: PathBuf,
}

/// `harness scale`.
#[derive(Debug)]
pub struct ScaleOpts {
    /// The benchmark manifest.
    pub manifest: PathBuf,
    /// CPU counts.
    pub smp_list: Vec<u32>,
    /// Boots per CPU count.
    pub runs: u32,
    /// Timed runs per boot (overrides the manifest's `repeat`).
    pub repeat: u32,
    /// Accelerator, memory, timeout.
    pub boot: BootOpts,
    /// Results root (`<out>/<scenario>/<stamp>/`).
    pub out: PathBuf,
    /// The ISO builder script.
    pub mkiso: PathBuf,
}

/// `harness soak`.
#[derive(Debug)]
pub struct SoakOpts {
    /// Manifests to build once and boot many times.
    pub manifests: Vec<PathBuf>,
    /// CPU counts to boot each under.
    pub smp_list: Vec<u32>,
    /// Boots per manifest and CPU count.
    pub runs: u32,
    /// Accelerator, memory, timeout.
    pub boot: BootOpts,
    /// Results root (`<out>/<stamp>/`).
    pub out: PathBuf,
    /// The ISO builder script.
    pub mkiso: PathBuf,
}

/// Default `--runs` of `scale` (CONTRACTS.md section 1: 5 once direct boot
/// exists).
pub const SCALE_DEFAULT_RUNS: u32 = 5;
/// Default `--runs` of `soak`.
pub const SOAK_DEFAULT_RUNS: u32 = 20;
/// Default `--smp-list` of `soak`.
pub const SOAK_DEFAULT_SMP: [u32; 4] = [1, 2, 4, 8];
/// Largest `--runs` of `soak`.
const SOAK_MAX_RUNS: u32 = 10_000;

/// Largest CPU count we pass to QEMU.
const MAX_SMP: u32 = 256;
/// Largest `--runs`.
const MAX_RUNS: u32 = 100;
/// Largest `--repeat` (the manifest allows 1..=100).
const MAX_REPEAT: u32 = 100;

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command> {
    let Some((sub, rest)) = args.split_first() else {
        bail!("missing subcommand");
    };
    let flags = Flags::split(rest)?;
    match sub.as_str() {
        "-h" | "--help" | "help" => Ok(Command::Help),
        "run" => parse_run(flags).map(Command::Run),
        "debug" => parse_run(flags).map(Command::Debug),
        "test" => parse_test(flags).map(Command::Test),
        "scale" => parse_scale(flags).map(Command::Scale),
        "soak" => parse_soak(flags).map(Command::Soak),
        other => bail!("unknown subcommand {other:?}"),
    }
}

/// Flags (`--name value`) and positional arguments, in order.
struct Flags {
    pairs: Vec<(String, String)>,
    positional: Vec<String>,
}

impl Flags {
    fn split(args: &[String]) -> Result<Self> {
        let mut pairs = Vec::new();
        let mut positional = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if let Some(name) = arg.strip_prefix("--") {
                if name == "help" {
                    pairs.push(("help".to_string(), String::new()));
                } else if let Some((k, v)) = name.split_once('=') {
                    pairs.push((k.to_string(), v.to_string()));
                } else {
                    let value = it
                        .next()
                        .with_context(|| format!("--{name} needs a value"))?;
                    pairs.push((name.to_string(), value.clone()));
                }
            } else {
                positional.push(arg.clone());
            }
        }
        Ok(Self { pairs, positional })
    }

    /// The last non-empty value of `--name`, removed from the set.
    fn take(&mut self, name: &str) -> Option<String> {
        let mut found = None;
        self.pairs.retain(|(k, v)| {
            if k == name {
                if !v.trim().is_empty() {
                    found = Some(v.trim().to_string());
                }
                false
            } else {
                true
            }
        });
        found
    }

    fn take_u32(&mut self, name: &str, default: u32, max: u32) -> Result<u32> {
        match self.take(name) {
            None => Ok(default),
            Some(v) => {
                let n: u32 = v
                    .parse()
                    .with_context(|| format!("--{name}: {v:?} is not a number"))?;
                if n == 0 || n > max {
                    bail!("--{name}: {n} is out of range 1..={max}");
                }
                Ok(n)
            }
        }
    }

    fn take_boot(&mut self) -> Result<BootOpts> {
        let accel = match self.take("accel") {
            None => AccelRequest::Auto,
            Some(v) => AccelRequest::parse(&v)?,
        };
        let boot = match self.take("boot") {
            None => BootRequest::Auto,
            Some(v) => BootRequest::parse(&v)?,
        };
        let cpu_model = self.take("cpu");
        if let Some(m) = &cpu_model {
            if !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ",-_=.+".contains(c))
            {
                bail!("--cpu: {m:?} is not a QEMU CPU model such as max,-x2apic");
            }
        }
        let mem = self.take("mem").unwrap_or_else(|| DEFAULT_MEM.to_string());
        if !mem.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("--mem: {mem:?} is not a size like 512M");
        }
        let timeout = match self.take("timeout") {
            None => None,
            Some(v) => {
                let secs: f64 = v
                    .parse()
                    .with_context(|| format!("--timeout: {v:?} is not a number of seconds"))?;
                if !(secs > 0.0 && secs <= 86_400.0) {
                    bail!("--timeout: {secs} is out of range (0, 86400]");
                }
                Some(Duration::from_secs_f64(secs))
            }
        };
        Ok(BootOpts {
            accel,
            boot,
            cpu_model,
            mem,
            timeout,
        })
    }

    fn take_smp_list(&mut self) -> Result<Vec<u32>> {
        match self.take("smp-list") {
            None => Ok(vec![1, 2, 4]),
            Some(v) => parse_smp_list(&v),
        }
    }

    fn take_mkiso(&mut self) -> PathBuf {
        self.take("mkiso")
            .map(PathBuf::from)
            .unwrap_or_else(default_mkiso)
    }

    /// Fails on any flag nobody took.
    fn finish(self) -> Result<Vec<String>> {
        if let Some((k, _)) = self.pairs.first() {
            if k == "help" {
                bail!("usage requested");
            }
            bail!("unknown flag --{k}");
        }
        Ok(self.positional)
    }
}

/// Parses a CPU-count list such as `"1 2 4"` or `"1,2,4"`.
pub fn parse_smp_list(s: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for word in s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        let n: u32 = word
            .parse()
            .with_context(|| format!("CPU count {word:?} is not a number"))?;
        if n == 0 || n > MAX_SMP {
            bail!("CPU count {n} is out of range 1..={MAX_SMP}");
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    if out.is_empty() {
        bail!("empty CPU-count list");
    }
    Ok(out)
}

/// `scripts/mkiso.sh` under the current directory (make runs us from the
/// repository root), else in the repository this harness was built from.
fn default_mkiso() -> PathBuf {
    let here = PathBuf::from("scripts/mkiso.sh");
    let path = if here.is_file() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mkiso.sh")
    };
    std::fs::canonicalize(&path).unwrap_or(path)
}

fn parse_run(mut f: Flags) -> Result<RunOpts> {
    let iso = f.take("iso").map(PathBuf::from);
    let kernel = f.take("kernel").map(PathBuf::from);
    let initrd = f.take("initrd").map(PathBuf::from);
    let manifest = f.take("manifest").map(PathBuf::from);
    let image_dir = f.take("image-dir").map(PathBuf::from);
    let mkiso = f.take_mkiso();
    let source = match (iso, kernel, initrd, manifest) {
        (Some(iso), None, None, None) => RunSource::Iso(iso),
        (None, Some(kernel), Some(initrd), None) => RunSource::Pvh { kernel, initrd },
        (None, None, None, Some(manifest)) => {
            let image_dir = image_dir.unwrap_or_else(|| {
                let stem = manifest
                    .file_stem()
                    .map_or_else(|| "manifest".into(), |s| s.to_string_lossy().into_owned());
                PathBuf::from("build/images").join(stem)
            });
            RunSource::Manifest {
                manifest,
                image_dir,
                mkiso,
            }
        }
        _ => bail!("run needs one of --manifest M, --iso ISO, or --kernel ELF with --initrd FILE"),
    };
    let smp = f.take_u32("smp", 2, MAX_SMP)?;
    let boot = f.take_boot()?;
    let log = f.take("log").map(PathBuf::from);
    let positional = f.finish()?;
    if let Some(extra) = positional.first() {
        bail!("unexpected argument {extra:?}");
    }
    Ok(RunOpts {
        source,
        smp,
        boot,
        log,
    })
}

fn parse_test(mut f: Flags) -> Result<TestOpts> {
    let smp_list = f.take_smp_list()?;
    let extra = match f.take("extra") {
        None => Vec::new(),
        Some(v) => parse_extra(&v)?,
    };
    let corrupt = f.take("corrupt-initrd").map(PathBuf::from);
    let cpu_hole = f.take("cpu-hole").map(PathBuf::from);
    let cpu_fallback = f.take("cpu-fallback").map(PathBuf::from);
    let boot = f.take_boot()?;
    let logdir = f
        .take("logdir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/test-logs"));
    let mkiso = f.take_mkiso();
    let manifests: Vec<PathBuf> = f.finish()?.into_iter().map(PathBuf::from).collect();
    if manifests.is_empty() {
        bail!("test needs at least one MANIFEST");
    }
    Ok(TestOpts {
        manifests,
        smp_list,
        extra,
        corrupt,
        cpu_hole,
        cpu_fallback,
        boot,
        logdir,
        mkiso,
    })
}

/// Parses `STEM=N[,N...][;STEM=...]`: extra CPU counts for some manifests.
pub fn parse_extra(s: &str) -> Result<Vec<(String, Vec<u32>)>> {
    let mut out = Vec::new();
    for part in s.split(';').filter(|p| !p.trim().is_empty()) {
        let (stem, list) = part
            .split_once('=')
            .with_context(|| format!("--extra wants STEM=N[,N...], got {part:?}"))?;
        let list = parse_smp_list(&list.replace(',', " "))?;
        out.push((stem.trim().to_string(), list));
    }
    Ok(out)
}

fn parse_scale(mut f: Flags) -> Result<ScaleOpts> {
    let manifest = f
        .take("manifest")
        .map(PathBuf::from)
        .context("scale needs --manifest M")?;
    let smp_list = f.take_smp_list()?;
    let runs = f.take_u32("runs", SCALE_DEFAULT_RUNS, MAX_RUNS)?;
    let repeat = f.take_u32("repeat", 3, MAX_REPEAT)?;
    let boot = f.take_boot()?;
    let out = f
        .take("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/scale"));
    let mkiso = f.take_mkiso();
    let positional = f.finish()?;
    if let Some(extra) = positional.first() {
        bail!("unexpected argument {extra:?}");
    }
    Ok(ScaleOpts {
        manifest,
        smp_list,
        runs,
        repeat,
        boot,
        out,
        mkiso,
    })
}

fn parse_soak(mut f: Flags) -> Result<SoakOpts> {
    let smp_list = match f.take("smp-list") {
        None => SOAK_DEFAULT_SMP.to_vec(),
        Some(v) => parse_smp_list(&v)?,
    };
    let runs = f.take_u32("runs", SOAK_DEFAULT_RUNS, SOAK_MAX_RUNS)?;
    let boot = f.take_boot()?;
    let out = f
        .take("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/soak"));
    let mkiso = f.take_mkiso();
    let manifests: Vec<PathBuf> = f.finish()?.into_iter().map(PathBuf::from).collect();
    if manifests.is_empty() {
        bail!("soak needs at least one MANIFEST");
    }
    Ok(SoakOpts {
        manifests,
        smp_list,
        runs,
        boot,
        out,
        mkiso,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn run_flags() {
        let Ok(Command::Run(o)) = parse(&args(&[
            "run",
            "--iso",
            "a.iso",
            "--smp=4",
            "--accel",
            "tcg",
            "--timeout",
            "5",
        ])) else {
            panic!("expected run");
        };
        assert_eq!(o.source, RunSource::Iso(PathBuf::from("a.iso")));
        assert_eq!(o.smp, 4);
        assert_eq!(o.boot.accel, AccelRequest::Tcg);
        assert_eq!(o.boot.timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.boot.mem, "512M");
    }

    #[test]
    fn empty_values_mean_default() {
        let Ok(Command::Scale(o)) = parse(&args(&[
            "scale",
            "--manifest",
            "m.toml",
            "--accel",
            "",
            "--runs",
            "",
            "--smp-list",
            "1,2",
        ])) else {
            panic!("expected scale");
        };
        assert_eq!(o.boot.accel, AccelRequest::Auto);
        assert_eq!(o.runs, 5);
        assert_eq!(o.repeat, 3);
        assert_eq!(o.boot.boot, BootRequest::Auto);
        assert_eq!(o.boot.cpu_model, None);
        assert_eq!(o.smp_list, vec![1, 2]);
    }

    #[test]
    fn run_sources_and_boot_flags() {
        let Ok(Command::Run(o)) = parse(&args(&[
            "run",
            "--manifest",
            "m/smoke-smp.toml",
            "--boot",
            "pvh",
            "--cpu",
            "max,-x2apic",
        ])) else {
            panic!("expected run");
        };
        assert_eq!(o.boot.boot, BootRequest::Pvh);
        assert_eq!(o.boot.cpu_model.as_deref(), Some("max,-x2apic"));
        let RunSource::Manifest { image_dir, .. } = o.source else {
            panic!("expected a manifest source");
        };
        assert_eq!(image_dir, PathBuf::from("build/images/smoke-smp"));
        let Ok(Command::Debug(o)) = parse(&args(&[
            "debug", "--kernel", "k", "--initrd", "i", "--boot", "",
        ])) else {
            panic!("expected debug");
        };
        assert_eq!(
            o.source,
            RunSource::Pvh {
                kernel: "k".into(),
                initrd: "i".into()
            }
        );
        assert_eq!(o.boot.boot, BootRequest::Auto);
        assert!(parse(&args(&["run", "--kernel", "k"])).is_err());
        assert!(parse(&args(&["run", "--iso", "a", "--manifest", "m"])).is_err());
        assert!(parse(&args(&["run", "--iso", "a", "--boot", "grub"])).is_err());
        assert!(parse(&args(&["run", "--iso", "a", "--cpu", "max;rm"])).is_err());
    }

    #[test]
    fn test_positional_manifests() {
        let Ok(Command::Test(o)) =
            parse(&args(&["test", "--smp-list", "1 2 4", "a.toml", "b.toml"]))
        else {
            panic!("expected test");
        };
        assert_eq!(o.manifests.len(), 2);
        assert_eq!(o.smp_list, vec![1, 2, 4]);
        assert_eq!(o.logdir, PathBuf::from("target/test-logs"));
        assert_eq!(o.cpu_hole, None);
        let Ok(Command::Test(o)) = parse(&args(&["test", "--cpu-hole", "h.toml", "a.toml"])) else {
            panic!("expected test");
        };
        assert_eq!(o.cpu_hole, Some(PathBuf::from("h.toml")));
        assert_eq!(o.cpu_fallback, None);
        let Ok(Command::Test(o)) = parse(&args(&["test", "--cpu-fallback", "f.toml", "a.toml"]))
        else {
            panic!("expected test");
        };
        assert_eq!(o.cpu_fallback, Some(PathBuf::from("f.toml")));
        assert_eq!(o.manifests, vec![PathBuf::from("a.toml")]);
    }

    #[test]
    fn soak_defaults_and_flags() {
        let Ok(Command::Soak(o)) = parse(&args(&["soak", "--runs", "", "a.toml"])) else {
            panic!("expected soak");
        };
        assert_eq!(o.runs, 20);
        assert_eq!(o.smp_list, vec![1, 2, 4, 8]);
        assert_eq!(o.out, PathBuf::from("target/soak"));
        let Ok(Command::Soak(o)) = parse(&args(&[
            "soak",
            "--runs=3",
            "--smp-list",
            "1",
            "--accel",
            "tcg",
            "a.toml",
            "b.toml",
        ])) else {
            panic!("expected soak");
        };
        assert_eq!((o.runs, o.smp_list, o.manifests.len()), (3, vec![1], 2));
        assert_eq!(o.boot.accel, AccelRequest::Tcg);
        assert!(parse(&args(&["soak"])).is_err());
        assert!(parse(&args(&["soak", "--runs", "0", "a.toml"])).is_err());
    }

    #[test]
    fn errors() {
        assert!(parse(&args(&[])).is_err());
        assert!(parse(&args(&["bogus"])).is_err());
        assert!(parse(&args(&["run"])).is_err());
        assert!(parse(&args(&["run", "--iso", "x", "--smp", "0"])).is_err());
        assert!(parse(&args(&["run", "--iso", "x", "--frob", "1"])).is_err());
        assert!(parse(&args(&["run", "--iso"])).is_err());
        assert!(parse(&args(&["run", "--iso", "x", "--accel", "xen"])).is_err());
        assert!(parse(&args(&["run", "--iso", "x", "--timeout", "-1"])).is_err());
        assert!(parse(&args(&["test"])).is_err());
        assert!(parse_smp_list("1 x").is_err());
        assert_eq!(
            parse_extra("smoke-smp=8,16").unwrap(),
            vec![("smoke-smp".to_string(), vec![8, 16])]
        );
        assert!(parse_extra("smoke-smp").is_err());
        assert!(parse_extra("smoke-smp=x").is_err());
        assert!(parse_smp_list(" ").is_err());
    }
}
