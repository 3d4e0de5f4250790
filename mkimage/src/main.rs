//! The `mkimage` command line (CONTRACTS.md section 3): argument parsing
//! and error printing only; the work is in the library.
//!
//! Errors about inputs print as `path:line:col: message` (or `path:
//! message`), one per line on stderr, and exit 1. Usage errors print a
//! short usage text and exit 2.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use mkimage::diag::{Problem, Problems};
use mkimage::forge;
use mkimage::image::{self, BuildOptions};
use mkimage::manifest::{self, Repeat};

const USAGE: &str = "usage:
  mkimage check MANIFEST
  mkimage build MANIFEST --programs DIR -o INITRD [--repeat N]
  mkimage inspect INITRD";

/// A mistake in the command line itself.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Usage>() => {
            eprintln!("mkimage: {e}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let mut args = args.into_iter();
    let command = args.next().ok_or_else(|| usage("missing command"))?;
    let rest: Vec<OsString> = args.collect();
    match command.to_str() {
        Some("check") => check(&rest),
        Some("build") => build(&rest),
        Some("inspect") => inspect(&rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(usage(format!("unknown command {command:?}"))),
    }
}

/// The one positional argument of `check` and `inspect`.
fn single_path(args: &[OsString], what: &str) -> anyhow::Result<PathBuf> {
    match args {
        [one] if !one.to_string_lossy().starts_with('-') => Ok(PathBuf::from(one)),
        _ => Err(usage(format!("expected exactly one {what}"))),
    }
}

fn check(args: &[OsString]) -> anyhow::Result<()> {
    let path = single_path(args, "MANIFEST")?;
    let shown = path.display().to_string();
    let (_, doc) = manifest::load(&path, &shown)?;
    eprintln!(
        "{shown}: ok (scenario {}, {} program(s){})",
        doc.scenario.name,
        doc.programs.len(),
        if doc.workload.is_some() {
            ", workload"
        } else {
            ""
        }
    );
    Ok(())
}

/// Parsed `build` arguments.
struct BuildArgs {
    manifest: PathBuf,
    output: PathBuf,
    options: BuildOptions,
}

fn parse_build(args: &[OsString]) -> anyhow::Result<BuildArgs> {
    let mut manifest = None;
    let mut programs = None;
    let mut output = None;
    let mut repeat = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy();
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (text.to_string(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match flag.as_str() {
            "--programs" => programs = Some(PathBuf::from(value("--programs")?)),
            "-o" | "--output" => output = Some(PathBuf::from(value("-o")?)),
            "--repeat" => {
                let v = value("--repeat")?;
                let r = v.to_str().and_then(Repeat::parse).ok_or_else(|| {
                    usage(format!("--repeat must be an integer 1..=100, found {v:?}"))
                })?;
                repeat = Some(r);
            }
            f if f.starts_with('-') => return Err(usage(format!("unknown option {f:?}"))),
            _ if manifest.is_none() => manifest = Some(PathBuf::from(arg)),
            _ => return Err(usage(format!("unexpected argument {text:?}"))),
        }
    }
    let (Some(manifest), Some(programs_dir), Some(output)) = (manifest, programs, output) else {
        return Err(usage("build needs MANIFEST, --programs DIR and -o INITRD"));
    };
    Ok(BuildArgs {
        manifest,
        output,
        options: BuildOptions {
            programs_dir,
            repeat,
        },
    })
}

fn build(args: &[OsString]) -> anyhow::Result<()> {
    let args = parse_build(args)?;
    let shown = args.manifest.display().to_string();
    let mut bytes = image::build_file(&args.manifest, &shown, &args.options)?;
    if let Some(how) = std::env::var_os(forge::FORGE_ENV) {
        // Test hook (see mkimage::forge): break a rule on purpose.
        let how = how
            .to_str()
            .and_then(forge::Forgery::from_name)
            .ok_or_else(|| anyhow::anyhow!("{}: unknown forgery {how:?}", forge::FORGE_ENV))?;
        bytes = forge::forge(&bytes, how).map_err(anyhow::Error::msg)?;
    }
    // Write beside the target, then rename, so that a failed run never
    // leaves a half-written initrd for make to pick up.
    let mut tmp = args.output.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = args.output.display();
    std::fs::write(&tmp, &bytes).with_context(|| format!("{out}: cannot write"))?;
    std::fs::rename(&tmp, &args.output).with_context(|| format!("{out}: cannot write"))?;
    eprintln!("{out}: wrote {} bytes", bytes.len());
    Ok(())
}

fn inspect(args: &[OsString]) -> anyhow::Result<()> {
    let path = single_path(args, "INITRD")?;
    let shown = path.display().to_string();
    let limit = abi::initrd::PAYLOAD_MAX + abi::initrd::HEADER_LEN as u64;
    let bytes =
        mkimage::read::regular_file(&path, limit).map_err(|e| Problems(vec![e.problem(&shown)]))?;
    let found = mkimage::inspect::inspect(&bytes)
        .map_err(|e| Problem::file(&shown, e.to_string()))
        .map_err(|p| Problems(vec![p]))?;
    print!("{}", found.text);
    if let Some(first) = found.bad_images.first() {
        bail!("{shown}: {first}");
    }
    Ok(())
}
