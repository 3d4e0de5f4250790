//! Parser for the guest's serial protocol (CONTRACTS.md section 4).
//!
//! A line is `KEY value` then `key=value` fields. The serial stream is
//! untrusted: lines are cleaned of escape sequences and control characters,
//! and a malformed line of a known kind is recorded, never a panic. Only the
//! lines the harness judges are parsed into types; the rest are ignored.

use std::collections::HashMap;

/// One `SCALE` line: a timed run's result.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleLine {
    /// Timed run number within the boot.
    pub run: u32,
    /// `process` or `thread`.
    pub mode: String,
    /// Workers.
    pub workers: u32,
    /// Online CPUs.
    pub cpus: u32,
    /// Range start.
    pub lo: u64,
    /// Range end (exclusive).
    pub hi: u64,
    /// Primes counted.
    pub count: u64,
    /// The expected count.
    pub expected: u64,
    /// The guest's own check.
    pub ok: bool,
    /// TSC cycles of the timed section.
    pub cycles: u64,
    /// Wall time of the timed section.
    pub ms: f64,
    /// Per-CPU time running user threads during the section.
    pub busy: Vec<f64>,
    /// `kind=ring` on a ring-scale line (absent for primes).
    pub ring: bool,
}

/// One `LOCKSTAT` line: a kernel lock's counters over the whole scenario,
/// or (`section=timed run=<k>`) over timed run k alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockStat {
    /// The lock's name.
    pub name: String,
    /// Acquisitions.
    pub acquires: u64,
    /// Acquisitions that found the lock held.
    pub contended: u64,
    /// Spin iterations while waiting.
    pub spins: u64,
    /// `Some(k)` for a timed-section line (`section=timed run=k`, printed
    /// by the workload through Op::LockStat); `None` for the end-of-scenario
    /// line.
    pub timed_run: Option<u32>,
}

/// One `WORKER` line.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerLine {
    /// Worker index.
    pub idx: u32,
    /// Its count.
    pub count: u64,
    /// TSC at its start.
    pub start: u64,
    /// TSC at its end.
    pub end: u64,
    /// CPUs it ran on.
    pub cpus: Vec<u32>,
    /// Ring thread mode: CPUs its partner thread ran on (empty if absent).
    pub partner_cpus: Vec<u32>,
}

/// One `CPUSTAT` line (kept as raw numbers for the report).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuStat {
    /// CPU id.
    pub cpu: u32,
    /// Every `key=value` on the line, numbers only.
    pub fields: Vec<(String, u64)>,
}

/// The fields of one `CPU <id> online` line (CONTRACTS.md section 4):
/// `apic=`, `mode=` and `timer=` when present (older kernels printed only
/// `apic=`; unknown fields after them are ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuOnline {
    /// The CPU id.
    pub id: u32,
    /// `mode=`: `xapic` or `x2apic`.
    pub mode: Option<String>,
    /// `timer=`: `lapic` or `tsc-deadline`.
    pub timer: Option<String>,
}

/// Reads a `CPU <id> online ...` line with its fields; `None` for any
/// other line.
pub fn cpu_online(raw: &str) -> Option<CpuOnline> {
    let line = clean(raw);
    let rest = line.strip_prefix("CPU ")?;
    let mut words = rest.split_whitespace();
    let id = words.next()?.parse::<u32>().ok()?;
    if words.next()? != "online" {
        return None;
    }
    let f: HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
    Some(CpuOnline {
        id,
        mode: f.get("mode").map(|s| s.to_string()),
        timer: f.get("timer").map(|s| s.to_string()),
    })
}

/// The `SCENARIO` verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioVerdict {
    /// Scenario name.
    pub name: String,
    /// PASS or FAIL.
    pub pass: bool,
    /// The FAIL reason text, if any.
    pub reason: Option<String>,
}

/// A classified line.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `CPU <id> online ...`.
    CpuOnline(u32),
    /// `SCALE ...`.
    Scale(ScaleLine),
    /// `WORKER ...`.
    Worker(WorkerLine),
    /// `CPUSTAT ...`.
    CpuStat(CpuStat),
    /// `LOCKSTAT ...`.
    LockStat(LockStat),
    /// `PANIC <message>`.
    Panic(String),
    /// `SCENARIO <name> PASS|FAIL ...`.
    Scenario(ScenarioVerdict),
    /// A known keyword with fields we could not read.
    Malformed(String),
}

/// A timed run: its `SCALE` line and the `WORKER` lines before it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedRun {
    /// The result line.
    pub scale: ScaleLine,
    /// The workers' lines since the previous `SCALE` line.
    pub workers: Vec<WorkerLine>,
}

/// Everything the harness reads from one boot's serial log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BootLog {
    /// CPU ids that printed `CPU <id> online`.
    pub cpus_online: Vec<u32>,
    /// Timed runs in order.
    pub runs: Vec<TimedRun>,
    /// `CPUSTAT` lines.
    pub cpustats: Vec<CpuStat>,
    /// `LOCKSTAT` lines (kernels built with lock statistics).
    pub lockstats: Vec<LockStat>,
    /// The first `SCENARIO` line.
    pub verdict: Option<ScenarioVerdict>,
    /// Messages of `PANIC` lines.
    pub panics: Vec<String>,
    /// Lines of a known kind that did not parse.
    pub malformed: Vec<String>,
}

impl BootLog {
    /// Parses a whole log.
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut log = Self::default();
        let mut pending_workers = Vec::new();
        for raw in lines {
            let Some(event) = parse_line(raw) else {
                continue;
            };
            match event {
                Event::CpuOnline(id) => log.cpus_online.push(id),
                Event::Worker(w) => pending_workers.push(w),
                Event::Scale(scale) => {
                    let workers = std::mem::take(&mut pending_workers);
                    log.runs.push(TimedRun { scale, workers });
                }
                Event::CpuStat(s) => log.cpustats.push(s),
                Event::LockStat(s) => log.lockstats.push(s),
                Event::Panic(m) => log.panics.push(m),
                Event::Scenario(v) => {
                    if log.verdict.is_none() {
                        log.verdict = Some(v);
                    }
                }
                Event::Malformed(line) => log.malformed.push(line),
            }
        }
        log
    }

    /// The LOCKSTAT lines to judge: the timed-section lines when the log
    /// has any (the counters of the timed runs alone), else every line (the
    /// whole scenario, from a workload that could not reset the counters).
    /// The flag says which.
    pub fn judged_lockstats(&self) -> (Vec<&LockStat>, bool) {
        let timed: Vec<&LockStat> = self
            .lockstats
            .iter()
            .filter(|l| l.timed_run.is_some())
            .collect();
        if timed.is_empty() {
            (self.lockstats.iter().collect(), false)
        } else {
            (timed, true)
        }
    }
}

/// Removes ANSI escape sequences and control characters, and trims.
pub fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte(0x40..=0x7e); other escapes: one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Classifies one serial line; `None` for lines the harness does not judge.
pub fn parse_line(raw: &str) -> Option<Event> {
    let line = clean(raw);
    let (key, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
    let bad = || Some(Event::Malformed(line.clone()));
    match key {
        "CPU" => {
            let mut words = rest.split_whitespace();
            match (words.next().map(str::parse::<u32>), words.next()) {
                (Some(Ok(id)), Some("online")) => Some(Event::CpuOnline(id)),
                _ => None,
            }
        }
        "PANIC" => Some(Event::Panic(rest.trim().to_string())),
        "SCENARIO" => parse_scenario(rest).map(Event::Scenario).or_else(bad),
        "SCALE" => parse_scale(rest).map(Event::Scale).or_else(bad),
        "WORKER" => parse_worker(rest).map(Event::Worker).or_else(bad),
        "CPUSTAT" => parse_cpustat(rest).map(Event::CpuStat).or_else(bad),
        "LOCKSTAT" => parse_lockstat(rest).map(Event::LockStat).or_else(bad),
        _ => None,
    }
}

fn parse_scenario(rest: &str) -> Option<ScenarioVerdict> {
    let mut words = rest.split_whitespace();
    let name = words.next()?.to_string();
    let pass = match words.next()? {
        "PASS" => true,
        "FAIL" => false,
        _ => return None,
    };
    let tail: Vec<&str> = words.collect();
    let reason = if tail.is_empty() {
        None
    } else {
        let text = tail.join(" ");
        Some(
            text.strip_prefix("reason=")
                .map(str::to_string)
                .unwrap_or(text),
        )
    };
    Some(ScenarioVerdict { name, pass, reason })
}

/// `key=value` fields of a line (later duplicates win).
fn fields(rest: &str) -> HashMap<&str, &str> {
    rest.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn num<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str) -> Option<T> {
    f.get(key)?.parse().ok()
}

/// A comma-separated list; empty text is an empty list.
fn list<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str) -> Option<Vec<T>> {
    let text = f.get(key)?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|v| v.trim().parse().ok()).collect()
}

fn finite(f: &HashMap<&str, &str>, key: &str) -> Option<f64> {
    num::<f64>(f, key).filter(|v| v.is_finite() && *v >= 0.0)
}

fn parse_scale(rest: &str) -> Option<ScaleLine> {
    let f = fields(rest);
    let busy: Vec<f64> = list(&f, "busy")?;
    if busy.iter().any(|b| !b.is_finite() || *b < 0.0) {
        return None;
    }
    Some(ScaleLine {
        run: num(&f, "run")?,
        mode: f.get("mode")?.to_string(),
        workers: num(&f, "workers")?,
        cpus: num(&f, "cpus")?,
        lo: num(&f, "lo")?,
        hi: num(&f, "hi")?,
        count: num(&f, "count")?,
        expected: num(&f, "expected")?,
        ok: match *f.get("ok")? {
            "1" => true,
            "0" => false,
            _ => return None,
        },
        cycles: num(&f, "cycles")?,
        ms: finite(&f, "ms")?,
        busy,
        ring: f.get("kind") == Some(&"ring"),
    })
}

fn parse_lockstat(rest: &str) -> Option<LockStat> {
    let f = fields(rest);
    let s = LockStat {
        name: f.get("name")?.to_string(),
        acquires: num(&f, "acquires")?,
        contended: num(&f, "contended")?,
        spins: num(&f, "spins")?,
        timed_run: match f.get("section") {
            None => None,
            Some(&"timed") => Some(num(&f, "run")?),
            Some(_) => return None,
        },
    };
    (s.contended <= s.acquires).then_some(s)
}

fn parse_worker(rest: &str) -> Option<WorkerLine> {
    let f = fields(rest);
    Some(WorkerLine {
        idx: num(&f, "idx")?,
        count: num(&f, "count")?,
        start: num(&f, "start")?,
        end: num(&f, "end")?,
        cpus: list(&f, "cpus")?,
        partner_cpus: match f.get("partner_cpus") {
            Some(_) => list(&f, "partner_cpus")?,
            None => Vec::new(),
        },
    })
}

fn parse_cpustat(rest: &str) -> Option<CpuStat> {
    let f = fields(rest);
    let cpu = num(&f, "cpu")?;
    let mut fields: Vec<(String, u64)> = rest
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| *k != "cpu")
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    fields.dedup_by(|a, b| a.0 == b.0);
    Some(CpuStat { cpu, fields })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A well-formed two-CPU thread-mode boot with `repeat` timed runs.
    pub fn good_log(cpus: u32, repeat: u32, mode: &str, ms: f64) -> String {
        let mut s = String::from("\u{1b}[2Jboot\n");
        for c in 0..cpus {
            s += &format!("CPU {c} online apic={c}\n");
        }
        for run in 1..=repeat {
            let span = (ms * 1e6) as u64;
            let mut total = 0;
            for w in 0..cpus {
                let count = if w == 0 {
                    5_761_455 - (cpus as u64 - 1) * 1000
                } else {
                    1000
                };
                total += count;
                s += &format!(
                    "WORKER idx={w} count={count} start={} end={} cpus={w}\n",
                    1000 + w,
                    1000 + span - 10 * w as u64
                );
            }
            let busy: Vec<String> = (0..cpus).map(|_| format!("{}", ms * 0.98)).collect();
            s += &format!(
                "SCALE run={run} mode={mode} workers={cpus} cpus={cpus} lo=0 hi=100000000 count={total} expected=5761455 ok=1 cycles={span} ms={ms} busy={}\r\n",
                busy.join(",")
            );
        }
        for c in 0..cpus {
            s += &format!("CPUSTAT cpu={c} busy_ms=10 idle_ms=2 switches=3 steals=0 ipi_sent=1 ipi_recv=1 shootdowns=0 ticks=50\n");
        }
        s += "SCENARIO thread-scale PASS\n";
        s
    }

    #[test]
    fn parses_a_good_log() {
        let text = good_log(2, 3, "thread", 400.0);
        let log = BootLog::parse(text.lines());
        assert_eq!(log.cpus_online, vec![0, 1]);
        assert_eq!(log.runs.len(), 3);
        assert!(log.runs.iter().all(|r| r.workers.len() == 2));
        let s = &log.runs[2].scale;
        assert_eq!(
            (s.run, s.workers, s.cpus, s.count, s.expected, s.ok),
            (3, 2, 2, 5_761_455, 5_761_455, true)
        );
        assert_eq!(s.mode, "thread");
        assert_eq!(s.busy, vec![392.0, 392.0]);
        assert_eq!(log.cpustats.len(), 2);
        assert_eq!(log.cpustats[1].fields.len(), 8);
        let v = log.verdict.expect("verdict");
        assert!(v.pass);
        assert_eq!(v.name, "thread-scale");
        assert!(log.panics.is_empty() && log.malformed.is_empty());
    }

    #[test]
    fn cpu_online_fields() {
        assert_eq!(
            cpu_online("CPU 3 online apic=6 mode=x2apic timer=tsc-deadline extra=1"),
            Some(CpuOnline {
                id: 3,
                mode: Some("x2apic".into()),
                timer: Some("tsc-deadline".into()),
            })
        );
        // Today's parsers: the id is all they read, and still is.
        assert_eq!(
            parse_line("CPU 1 online apic=1 mode=xapic timer=lapic"),
            Some(Event::CpuOnline(1))
        );
        let old = cpu_online("CPU 0 online apic=0").expect("old line");
        assert_eq!((old.id, old.mode, old.timer), (0, None, None));
        assert_eq!(cpu_online("CPU x online"), None);
        assert_eq!(cpu_online("CPU 1 offline mode=xapic"), None);
        assert_eq!(cpu_online("SMP online cpus=2"), None);
    }

    #[test]
    fn scenario_fail_reason() {
        let Some(Event::Scenario(v)) = parse_line("SCENARIO x FAIL reason=ring broke here") else {
            panic!("expected a verdict");
        };
        assert!(!v.pass);
        assert_eq!(v.reason.as_deref(), Some("ring broke here"));
    }

    #[test]
    fn malformed_and_foreign_lines() {
        assert_eq!(parse_line("hello"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("CPU x online"), None);
        assert!(matches!(
            parse_line("SCALE run=1 ms=abc"),
            Some(Event::Malformed(_))
        ));
        assert!(matches!(
            parse_line("WORKER idx=1"),
            Some(Event::Malformed(_))
        ));
        assert!(matches!(
            parse_line("SCENARIO x MAYBE"),
            Some(Event::Malformed(_))
        ));
        assert!(matches!(parse_line("SCALE run=1 mode=thread workers=1 cpus=1 lo=0 hi=1 count=0 expected=0 ok=2 cycles=1 ms=1 busy=1"), Some(Event::Malformed(_))));
        assert_eq!(
            parse_line("\u{1b}[0mPANIC at foo.rs:3"),
            Some(Event::Panic("at foo.rs:3".into()))
        );
    }

    #[test]
    fn lockstat_and_ring_lines() {
        let text = "SCALE run=1 mode=thread workers=2 cpus=2 lo=0 hi=0 count=40 expected=40 ok=1 cycles=9 ms=12 busy=1,1 kind=ring ops=40 ops_per_s=3333\n\
                    LOCKSTAT name=registry acquires=1000 contended=3 spins=40\n\
                    LOCKSTAT name=heap acquires=5 contended=6 spins=0\n\
                    LOCKSTAT name=x acquires=1\n";
        let log = BootLog::parse(text.lines());
        assert!(log.runs[0].scale.ring);
        assert_eq!(
            log.lockstats,
            vec![LockStat {
                name: "registry".into(),
                acquires: 1000,
                contended: 3,
                spins: 40,
                timed_run: None,
            }]
        );
        assert_eq!(log.malformed.len(), 2, "{:?}", log.malformed);
        let (judged, timed) = log.judged_lockstats();
        assert!(!timed);
        assert_eq!(judged.len(), 1);
        let primes = good_log(1, 1, "thread", 5.0);
        assert!(!BootLog::parse(primes.lines()).runs[0].scale.ring);
    }

    #[test]
    fn timed_lockstat_lines_win_over_the_whole_scenario() {
        let text = "LOCKSTAT name=registry acquires=50 contended=1 spins=2 section=timed run=1\n\
                    LOCKSTAT name=registry acquires=60 contended=0 spins=0 section=timed run=2\n\
                    LOCKSTAT name=registry acquires=9000 contended=500 spins=900\n\
                    LOCKSTAT name=heap acquires=5 contended=0 spins=0 section=timed\n\
                    LOCKSTAT name=heap acquires=5 contended=0 spins=0 section=boot run=1\n";
        let log = BootLog::parse(text.lines());
        assert_eq!(log.malformed.len(), 2, "{:?}", log.malformed);
        assert_eq!(log.lockstats.len(), 3);
        assert_eq!(log.lockstats[1].timed_run, Some(2));
        assert_eq!(log.lockstats[2].timed_run, None);
        let (judged, timed) = log.judged_lockstats();
        assert!(timed);
        assert_eq!(
            judged.iter().map(|l| l.acquires).collect::<Vec<_>>(),
            vec![50, 60]
        );
    }

    #[test]
    fn workers_attach_to_the_next_scale_line() {
        let text = "WORKER idx=0 count=1 start=1 end=2 cpus=0,1\nSCALE run=1 mode=process workers=1 cpus=1 lo=0 hi=10 count=4 expected=4 ok=1 cycles=5 ms=1.5 busy=1.2\nSCALE run=2 mode=process workers=1 cpus=1 lo=0 hi=10 count=4 expected=4 ok=1 cycles=5 ms=1 busy=\n";
        let log = BootLog::parse(text.lines());
        assert_eq!(log.runs[0].workers[0].cpus, vec![0, 1]);
        assert!(log.runs[1].workers.is_empty());
        assert!(log.runs[1].scale.busy.is_empty());
        assert_eq!(log.runs[0].scale.ms, 1.5);
    }
}
