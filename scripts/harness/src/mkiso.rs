//! Builds a scenario ISO through the lead's `scripts/mkiso.sh`.
//!
//! Contract: `mkiso.sh MANIFEST OUTDIR [REPEAT]` builds the image (the
//! kernel, programs and mkimage are already built) and prints the ISO path,
//! normally `OUTDIR/os.iso`, on its last stdout line; exit 0 on success.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::runner::absolute;

/// Runs the builder; returns the ISO path.
pub fn build(mkiso: &Path, manifest: &Path, outdir: &Path, repeat: Option<u32>) -> Result<PathBuf> {
    build_with(mkiso, manifest, outdir, repeat, false)
}

/// Like [`build`]; with `corrupt_initrd`, the builder flips one byte of the
/// initrd payload (`MKISO_CORRUPT_INITRD=1`), for the kernel's refusal test.
pub fn build_with(
    mkiso: &Path,
    manifest: &Path,
    outdir: &Path,
    repeat: Option<u32>,
    corrupt_initrd: bool,
) -> Result<PathBuf> {
    let env: &[(&str, &str)] = if corrupt_initrd {
        &[("MKISO_CORRUPT_INITRD", "1")]
    } else {
        &[]
    };
    build_env(mkiso, manifest, outdir, repeat, env)
}

/// Like [`build`], with extra environment variables for the builder (its
/// test hooks, and mkimage's, which it inherits).
pub fn build_env(
    mkiso: &Path,
    manifest: &Path,
    outdir: &Path,
    repeat: Option<u32>,
    env: &[(&str, &str)],
) -> Result<PathBuf> {
    std::fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    let (manifest, outdir) = (absolute(manifest), absolute(outdir));
    let mut cmd = Command::new(mkiso);
    cmd.arg(&manifest).arg(&outdir);
    cmd.envs(env.iter().copied());
    if let Some(r) = repeat {
        cmd.arg(r.to_string());
    }
    let shown = format!(
        "{} {} {}{}",
        mkiso.display(),
        manifest.display(),
        outdir.display(),
        repeat.map_or(String::new(), |r| format!(" {r}"))
    );
    eprintln!("harness: {shown}");
    let out = cmd
        .output()
        .with_context(|| format!("running {}", mkiso.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        for line in tail.iter().rev() {
            eprintln!("mkiso: {line}");
        }
        bail!("{shown} failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(PathBuf::from);
    let iso = match printed {
        Some(p) if p.is_file() => p,
        _ => outdir.join("os.iso"),
    };
    if !iso.is_file() {
        bail!("{shown} succeeded but no ISO at {}", iso.display());
    }
    Ok(iso)
}
