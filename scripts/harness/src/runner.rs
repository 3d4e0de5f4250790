//! Boots one image (GRUB ISO or PVH kernel and initrd) in QEMU, streams its
//! serial console and judges the boot.
//!
//! The guest's verdict is its `SCENARIO <name> PASS|FAIL` line, cross-checked
//! with QEMU's exit status: the guest writes v to isa-debug-exit and QEMU
//! exits with `(v << 1) | 1`. A `PANIC` line, a hang past the timeout, a
//! reset or triple fault (QEMU exits with `-no-reboot` and no verdict), or a
//! verdict that disagrees with the exit status all count as "no verdict"
//! (status 2). If the guest gives its verdict but QEMU lingers, we kill it
//! after [`EXIT_GRACE`] and keep the verdict.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::{RunOpts, RunSource};
use crate::mkiso;
use crate::parse::{self, Event, ScenarioVerdict};
use crate::qemu::{self, Accel, BootMethod, Image, Machine, Purpose};

/// QEMU's exit status after the guest wrote `PASS` (0x10) to isa-debug-exit.
pub const QEMU_EXIT_PASS: i32 = (0x10 << 1) | 1;
/// ... `FAIL` (0x11).
pub const QEMU_EXIT_FAIL: i32 = (0x11 << 1) | 1;
/// ... `PANIC` (0x12).
pub const QEMU_EXIT_PANIC: i32 = (0x12 << 1) | 1;

/// How long QEMU may take to exit after the verdict (or a panic) is printed.
pub const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Default boot timeout under TCG (boot takes well under a second).
pub const DEFAULT_TIMEOUT_TCG: Duration = Duration::from_secs(120);
/// Default boot timeout under KVM (an ISO boot alone takes 25-45 s on PVM).
pub const DEFAULT_TIMEOUT_KVM: Duration = Duration::from_secs(300);

/// Exit status: the guest printed `SCENARIO ... PASS`.
pub const STATUS_PASS: u8 = 0;
/// Exit status: the guest printed `SCENARIO ... FAIL`.
pub const STATUS_FAIL: u8 = 1;
/// Exit status: panic, triple fault, hang, mismatch or no verdict.
pub const STATUS_ERROR: u8 = 2;

/// The default timeout for `run` and `test`.
pub fn default_timeout(accel: Accel) -> Duration {
    match accel {
        Accel::Kvm => DEFAULT_TIMEOUT_KVM,
        Accel::Tcg => DEFAULT_TIMEOUT_TCG,
    }
}

/// One boot to make.
pub struct BootSpec<'a> {
    /// What to boot (it also picks the machine).
    pub image: &'a Image,
    /// CPU count.
    pub smp: u32,
    /// Accelerator.
    pub accel: Accel,
    /// `-m` value.
    pub mem: &'a str,
    /// `-cpu` override (`CPU_MODEL=`).
    pub cpu_model: Option<&'a str>,
    /// Give up (and kill QEMU) after this long without a verdict.
    pub timeout: Duration,
    /// Copy every serial line here.
    pub log: Option<&'a Path>,
    /// Print every serial line on stdout.
    pub echo: bool,
}

/// How QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself (`None`: killed by a signal).
    Exited(Option<i32>),
    /// No verdict before the timeout; we killed it.
    Hung,
    /// Verdict or panic seen, but it did not exit within the grace period.
    Lingered,
}

/// The result of one boot.
#[derive(Debug)]
pub struct BootOutcome {
    /// [`STATUS_PASS`], [`STATUS_FAIL`] or [`STATUS_ERROR`].
    pub status: u8,
    /// Why, in a few words.
    pub reason: String,
    /// Every serial line (without line endings).
    pub lines: Vec<String>,
    /// Wall time of the boot.
    pub elapsed: Duration,
    /// Wall time from QEMU's start to the first serial line (the kernel's
    /// first line: neither SeaBIOS nor GRUB writes to COM1 here).
    pub first_line: Option<Duration>,
    /// Wall time from QEMU's start to the `SCENARIO` verdict line.
    pub verdict_at: Option<Duration>,
}

/// Turns what was seen into an exit status and a reason.
pub fn judge(
    verdict: Option<&ScenarioVerdict>,
    panic: Option<&str>,
    ending: Ending,
) -> (u8, String) {
    if let Some(msg) = panic {
        return (STATUS_ERROR, format!("kernel panic: {msg}"));
    }
    let Some(v) = verdict else {
        let why = match ending {
            Ending::Hung => "hang: no verdict before the timeout".to_string(),
            Ending::Exited(Some(QEMU_EXIT_PANIC)) => {
                "guest exited with the PANIC status but printed no verdict".to_string()
            }
            Ending::Exited(Some(code)) => format!(
                "no verdict: QEMU exited with status {code} (reset, triple fault or early exit)"
            ),
            Ending::Exited(None) => "no verdict: QEMU was killed by a signal".to_string(),
            Ending::Lingered => "no verdict".to_string(),
        };
        return (STATUS_ERROR, why);
    };
    let (status, code, word) = if v.pass {
        (STATUS_PASS, QEMU_EXIT_PASS, "PASS")
    } else {
        (STATUS_FAIL, QEMU_EXIT_FAIL, "FAIL")
    };
    let reason = match &v.reason {
        Some(r) => format!("SCENARIO {} {word} reason={r}", v.name),
        None => format!("SCENARIO {} {word}", v.name),
    };
    match ending {
        Ending::Exited(Some(c)) if c == code => (status, reason),
        Ending::Lingered => (status, format!("{reason} (QEMU did not exit; killed)")),
        Ending::Exited(other) => (
            STATUS_ERROR,
            format!(
                "{reason} but QEMU exit status {} does not match (want {code})",
                other.map_or("none".into(), |c| c.to_string())
            ),
        ),
        Ending::Hung => (STATUS_ERROR, format!("{reason} but then hung")),
    }
}

/// Boots once and judges it.
pub fn boot(spec: &BootSpec) -> Result<BootOutcome> {
    for file in spec.image.files() {
        if !file.is_file() {
            bail!("{} does not exist", file.display());
        }
    }
    let mut log = match spec.log {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            Some(BufWriter::new(
                File::create(path).with_context(|| format!("creating {}", path.display()))?,
            ))
        }
        None => None,
    };
    let (mut cmd, shown) = qemu::command(&Machine {
        image: spec.image,
        smp: spec.smp,
        mem: spec.mem,
        accel: spec.accel,
        cpu_model: spec.cpu_model,
    });
    eprintln!("harness: {shown}");
    if let Some(w) = log.as_mut() {
        // The log's one non-serial line: which machine and boot method.
        writeln!(w, "# qemu: {shown}").context("writing the serial log")?;
    }
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (is qemu-system-x86 installed?)", qemu::QEMU))?;
    let lines_rx = spawn_line_reader(child.stdout.take().context("QEMU stdout")?);
    let stderr_thread = spawn_stderr_forwarder(child.stderr.take().context("QEMU stderr")?);

    let mut lines = Vec::new();
    let mut verdict = None;
    let mut panic: Option<String> = None;
    let mut seen_at: Option<Instant> = None;
    let mut first_line = None;
    let mut verdict_at = None;
    let deadline = start + spec.timeout;
    let ending = loop {
        let limit = seen_at.map_or(deadline, |t| t + EXIT_GRACE);
        match lines_rx.recv_timeout(limit.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                first_line.get_or_insert_with(|| start.elapsed());
                if spec.echo {
                    println!("{line}");
                }
                if let Some(w) = log.as_mut() {
                    writeln!(w, "{line}").context("writing the serial log")?;
                }
                match parse::parse_line(&line) {
                    Some(Event::Scenario(v)) if verdict.is_none() => {
                        verdict = Some(v);
                        verdict_at = Some(start.elapsed());
                        seen_at.get_or_insert_with(Instant::now);
                    }
                    Some(Event::Panic(m)) if panic.is_none() => {
                        panic = Some(m);
                        seen_at.get_or_insert_with(Instant::now);
                    }
                    _ => {}
                }
                lines.push(line);
            }
            Err(RecvTimeoutError::Timeout) => {
                kill(&mut child);
                break if seen_at.is_some() {
                    Ending::Lingered
                } else {
                    Ending::Hung
                };
            }
            Err(RecvTimeoutError::Disconnected) => {
                break wait_exit(&mut child, limit.max(Instant::now() + EXIT_GRACE))
            }
        }
    };
    if let Some(w) = log.as_mut() {
        w.flush().context("writing the serial log")?;
    }
    let stderr_tail = stderr_thread.join().unwrap_or_default();
    let (status, mut reason) = judge(verdict.as_ref(), panic.as_deref(), ending);
    if status == STATUS_ERROR && verdict.is_none() {
        if let Some(last) = stderr_tail {
            reason = format!("{reason}; qemu: {last}");
        }
    }
    Ok(BootOutcome {
        status,
        reason,
        lines,
        elapsed: start.elapsed(),
        first_line,
        verdict_at,
    })
}

/// Waits for QEMU to exit by itself until `limit`, then kills it.
fn wait_exit(child: &mut Child, limit: Instant) -> Ending {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ending::Exited(status.code()),
            Ok(None) if Instant::now() < limit => thread::sleep(Duration::from_millis(20)),
            _ => {
                kill(child);
                return Ending::Lingered;
            }
        }
    }
}

/// Kills our QEMU child and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads lines (lossy UTF-8, without `\r\n`) on a thread; the channel closes
/// at end of file.
fn spawn_line_reader(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']).to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Copies QEMU's stderr to ours (prefixed) and returns its last line.
fn spawn_stderr_forwarder(err: impl Read + Send + 'static) -> JoinHandle<Option<String>> {
    thread::spawn(move || {
        let mut last = None;
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            eprintln!("qemu: {line}");
            if !line.trim().is_empty() {
                last = Some(line);
            }
        }
        last
    })
}

/// `harness run`.
pub fn run_command(opts: &RunOpts) -> Result<u8> {
    let accel = qemu::choose_and_report(opts.boot.accel, Purpose::KernelTest)?;
    let timeout = opts.boot.timeout.unwrap_or_else(|| default_timeout(accel));
    let image = resolve_image(opts, accel)?;
    let spec = BootSpec {
        image: &image,
        smp: opts.smp,
        accel,
        mem: &opts.boot.mem,
        cpu_model: opts.boot.cpu_model.as_deref(),
        timeout,
        log: opts.log.as_deref(),
        echo: true,
    };
    let outcome = boot(&spec)?;
    let word = match outcome.status {
        STATUS_PASS => "PASS",
        STATUS_FAIL => "FAIL",
        _ => "ERROR",
    };
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()));
    eprintln!(
        "harness: {word} ({}) in {:.1} s (first serial line after {}, verdict after {}), boot={}, exit status {}",
        outcome.reason,
        outcome.elapsed.as_secs_f64(),
        secs(outcome.first_line),
        secs(outcome.verdict_at),
        image.method().name(),
        outcome.status
    );
    Ok(outcome.status)
}

/// The image `run` or `debug` boots: the one given, or the one built from
/// the manifest for the chosen boot method.
fn resolve_image(opts: &RunOpts, accel: Accel) -> Result<Image> {
    Ok(match &opts.source {
        RunSource::Iso(iso) => Image::Iso(absolute(iso)),
        RunSource::Pvh { kernel, initrd } => Image::Pvh {
            kernel: absolute(kernel),
            initrd: absolute(initrd),
            cmdline: None,
        },
        RunSource::Manifest {
            manifest,
            image_dir,
            mkiso: script,
        } => {
            let method = qemu::choose_boot_and_report(opts.boot.boot, accel);
            mkiso::build(script, manifest, image_dir, None, &[method])?.image(method)?
        }
    })
}

/// `harness debug`: builds the image for the chosen boot method and runs
/// QEMU under TCG with its gdb stub waiting (`-s -S`), the serial console
/// on this terminal, no timeout. Returns QEMU's exit status, clamped.
pub fn debug_command(opts: &RunOpts) -> Result<u8> {
    let accel = Accel::Tcg;
    eprintln!("harness: accel=tcg (debug: the gdb stub wants TCG)");
    let image = resolve_image(opts, accel)?;
    let mut args = qemu::args(&Machine {
        image: &image,
        smp: opts.smp,
        mem: &opts.boot.mem,
        accel,
        cpu_model: opts.boot.cpu_model.as_deref(),
    });
    args.extend(["-s".to_string(), "-S".to_string()]);
    eprintln!("harness: {}", qemu::shown(&args));
    let status = std::process::Command::new(qemu::QEMU)
        .args(&args)
        .status()
        .with_context(|| format!("starting {}", qemu::QEMU))?;
    Ok(status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(STATUS_ERROR))
}

/// The boot methods `test` and `soak` use: both for `auto`, else the one
/// requested.
pub fn test_methods(request: qemu::BootRequest) -> Vec<BootMethod> {
    match request {
        qemu::BootRequest::Auto => BootMethod::ALL.to_vec(),
        qemu::BootRequest::Iso => vec![BootMethod::Iso],
        qemu::BootRequest::Pvh => vec![BootMethod::Pvh],
    }
}

/// `path` made absolute against the current directory (best effort).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pass: bool) -> ScenarioVerdict {
        ScenarioVerdict {
            name: "s".into(),
            pass,
            reason: if pass { None } else { Some("x".into()) },
        }
    }

    #[test]
    fn exit_codes_follow_isa_debug_exit() {
        assert_eq!(
            (QEMU_EXIT_PASS, QEMU_EXIT_FAIL, QEMU_EXIT_PANIC),
            (33, 35, 37)
        );
    }

    #[test]
    fn matching_verdicts() {
        assert_eq!(
            judge(Some(&v(true)), None, Ending::Exited(Some(33))).0,
            STATUS_PASS
        );
        assert_eq!(
            judge(Some(&v(false)), None, Ending::Exited(Some(35))).0,
            STATUS_FAIL
        );
        assert_eq!(judge(Some(&v(true)), None, Ending::Lingered).0, STATUS_PASS);
        assert_eq!(
            judge(Some(&v(false)), None, Ending::Lingered).0,
            STATUS_FAIL
        );
    }

    #[test]
    fn everything_else_is_an_error() {
        assert_eq!(
            judge(Some(&v(true)), None, Ending::Exited(Some(35))).0,
            STATUS_ERROR
        );
        assert_eq!(
            judge(Some(&v(false)), None, Ending::Exited(Some(33))).0,
            STATUS_ERROR
        );
        assert_eq!(
            judge(Some(&v(true)), None, Ending::Exited(Some(0))).0,
            STATUS_ERROR
        );
        assert_eq!(
            judge(Some(&v(true)), Some("oops"), Ending::Exited(Some(33))).0,
            STATUS_ERROR
        );
        assert_eq!(
            judge(None, Some("oops"), Ending::Exited(Some(37))).0,
            STATUS_ERROR
        );
        assert_eq!(judge(None, None, Ending::Exited(Some(0))).0, STATUS_ERROR);
        assert_eq!(judge(None, None, Ending::Hung).0, STATUS_ERROR);
        assert_eq!(judge(None, None, Ending::Exited(None)).0, STATUS_ERROR);
        let (_, why) = judge(None, None, Ending::Hung);
        assert!(why.contains("hang"), "{why}");
    }
}
