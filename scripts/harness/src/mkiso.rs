//! Builds a scenario's boot images through the lead's `scripts/mkiso.sh`.
//!
//! Contract: `mkiso.sh MANIFEST OUTDIR [REPEAT]` builds the image (the
//! kernel, programs and mkimage are already built) and prints the ISO path,
//! normally `OUTDIR/os.iso`, on its last stdout line; exit 0 on success. It
//! leaves the kernel and the initrd in `OUTDIR/iso/boot/` for the PVH boot;
//! with `MKISO_SKIP_ISO=1` it builds only those two (no grub-mkrescue).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::qemu::{BootMethod, Image};
use crate::runner::absolute;

/// The environment variable that makes mkiso.sh skip grub-mkrescue.
const SKIP_ISO_ENV: &str = "MKISO_SKIP_ISO";

/// What one build produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// The ISO, when an ISO boot was asked for.
    pub iso: Option<PathBuf>,
    /// The kernel ELF copied next to the initrd.
    pub kernel: PathBuf,
    /// The initrd.
    pub initrd: PathBuf,
    /// The kernel command line the builder recorded (`iso/boot/cmdline`,
    /// from its `MKISO_KERNEL_CMDLINE` test hook), for a PVH boot.
    pub cmdline: Option<String>,
}

impl Built {
    /// The image for `method`; fails for `iso` when no ISO was built.
    pub fn image(&self, method: BootMethod) -> Result<Image> {
        match method {
            BootMethod::Iso => match &self.iso {
                Some(iso) => Ok(Image::Iso(iso.clone())),
                None => bail!("no ISO was built"),
            },
            BootMethod::Pvh => Ok(Image::Pvh {
                kernel: self.kernel.clone(),
                initrd: self.initrd.clone(),
                cmdline: self.cmdline.clone(),
            }),
        }
    }
}

/// Runs the builder for the boot methods in `methods` (the ISO only when
/// `iso` is among them).
pub fn build(
    mkiso: &Path,
    manifest: &Path,
    outdir: &Path,
    repeat: Option<u32>,
    methods: &[BootMethod],
) -> Result<Built> {
    build_env(mkiso, manifest, outdir, repeat, methods, &[])
}

/// Like [`build`]; with `corrupt_initrd`, the builder flips one byte of the
/// initrd payload (`MKISO_CORRUPT_INITRD=1`), for the kernel's refusal test.
pub fn build_with(
    mkiso: &Path,
    manifest: &Path,
    outdir: &Path,
    methods: &[BootMethod],
    corrupt_initrd: bool,
) -> Result<Built> {
    let env: &[(&str, &str)] = if corrupt_initrd {
        &[("MKISO_CORRUPT_INITRD", "1")]
    } else {
        &[]
    };
    build_env(mkiso, manifest, outdir, None, methods, env)
}

/// Like [`build`], with extra environment variables for the builder (its
/// test hooks, and mkimage's, which it inherits).
pub fn build_env(
    mkiso: &Path,
    manifest: &Path,
    outdir: &Path,
    repeat: Option<u32>,
    methods: &[BootMethod],
    env: &[(&str, &str)],
) -> Result<Built> {
    std::fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    let (manifest, outdir) = (absolute(manifest), absolute(outdir));
    let want_iso = methods.contains(&BootMethod::Iso);
    let mut cmd = Command::new(mkiso);
    cmd.arg(&manifest).arg(&outdir);
    cmd.envs(env.iter().copied());
    if !want_iso {
        cmd.env(SKIP_ISO_ENV, "1");
    }
    if let Some(r) = repeat {
        cmd.arg(r.to_string());
    }
    let shown = format!(
        "{}{} {} {}{}",
        if want_iso {
            String::new()
        } else {
            format!("{SKIP_ISO_ENV}=1 ")
        },
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
    let boot = outdir.join("iso").join("boot");
    let cmdline = std::fs::read_to_string(boot.join("cmdline"))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let built = Built {
        iso: None,
        kernel: boot.join("kernel"),
        initrd: boot.join("initrd"),
        cmdline,
    };
    for f in [&built.kernel, &built.initrd] {
        if !f.is_file() {
            bail!("{shown} succeeded but left no {}", f.display());
        }
    }
    if !want_iso {
        return Ok(built);
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
    Ok(Built {
        iso: Some(iso),
        ..built
    })
}
