//! The manifest checker: TOML text to a validated [`ManifestDoc`].
//!
//! Owns every rule of CONTRACTS.md section 2 (schema version 1). The TOML is
//! parsed with `toml`'s span-preserving [`DeTable`], then walked by hand so
//! that every problem is recorded with the byte offset of the offending key
//! or value, and all of them are reported at once rather than only the
//! first. The result owns its strings (TOML escapes may need unescaping)
//! and lends them out as the borrowed [`abi::manifest::Manifest`] that goes
//! into the initrd.
//!
//! This module owns the TOML side (keys, types, words); every rule about a
//! value is [`abi::validate`]'s, the very code the kernel runs on the
//! decoded initrd, called here value by value so that each violation is
//! reported at its key or value.

use std::path::Path;

use abi::caps::CapKind;
use abi::manifest::{self as am, Expect, Mode, RingMix, Workers, Workload, WorkloadKind};
use abi::validate::{self, Rule};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostic, Problems, SourceFile};

/// A TOML value with its byte span.
type Value<'i> = Spanned<DeValue<'i>>;

/// Keys allowed at the top level.
const TOP_KEYS: &[&str] = &["scenario", "program", "workload", "kernel"];
/// Keys allowed in `[scenario]`.
const SCENARIO_KEYS: &[&str] = &["name", "description", "timeout_ms", "selftests"];
/// Keys allowed in each `[[program]]`.
const PROGRAM_KEYS: &[&str] = &["name", "args", "caps", "expect", "kernel_kib"];
/// Keys allowed in `[workload]`.
const WORKLOAD_KEYS: &[&str] = &[
    "kind",
    "lo",
    "hi",
    "expected",
    "workers",
    "mode",
    "repeat",
    "serialize",
    "rounds",
    "nops",
    "timers",
    "pingpongs",
];
/// Keys of `[workload]` that only `kind = "primes"` takes.
const PRIMES_ONLY_KEYS: &[&str] = &["lo", "hi", "expected"];
/// Keys of `[workload]` that only `kind = "ring"` takes.
const RING_ONLY_KEYS: &[&str] = &["rounds", "nops", "timers", "pingpongs"];

/// Keys allowed in `[kernel]`.
const KERNEL_KEYS: &[&str] = &["apic", "timer"];

/// The one `workers` word.
const WORKERS_CPUS: &str = "cpus";
/// The workload kinds.
const KIND_PRIMES: &str = "primes";
const KIND_RING: &str = "ring";

/// `[scenario]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioDef {
    /// `[a-z0-9-]`, 1..=48 chars.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Guest-side watchdog, > 0.
    pub timeout_ms: Option<u64>,
    /// Kernel self-tests, no duplicates.
    pub selftests: Vec<am::SelfTest>,
}

/// One `[[program]]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramDef {
    /// The program image's name (a file in the programs directory).
    pub name: String,
    /// Byte offset of the `name` value, for "not found" errors.
    pub name_offset: usize,
    /// Arguments.
    pub args: Vec<String>,
    /// Capabilities granted, no duplicates.
    pub caps: Vec<CapKind>,
    /// What counts as success (default `exit:0`).
    pub expect: Expect,
    /// Kernel-memory budget in KiB, if given.
    pub kernel_kib: Option<u32>,
}

/// `[workload]`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadDef {
    /// The workload as the kernel sees it.
    pub spec: Workload,
    /// Byte offset of the `[workload]` header, for errors about it.
    pub header_offset: usize,
}

/// A whole manifest that passed every rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDoc {
    /// `[scenario]`.
    pub scenario: ScenarioDef,
    /// `[[program]]`, in order.
    pub programs: Vec<ProgramDef>,
    /// `[workload]`, if any.
    pub workload: Option<WorkloadDef>,
    /// `[kernel]` (all `auto` when absent).
    pub kernel: am::KernelConfig,
}

impl ManifestDoc {
    /// The manifest in the form the initrd carries, borrowing from `self`.
    pub fn to_abi(&self) -> am::Manifest<'_> {
        am::Manifest {
            scenario: am::Scenario {
                name: &self.scenario.name,
                description: self.scenario.description.as_deref(),
                timeout_ms: self.scenario.timeout_ms,
                selftests: self.scenario.selftests.clone(),
            },
            programs: self
                .programs
                .iter()
                .map(|p| am::ProgramSpec {
                    name: &p.name,
                    args: p.args.iter().map(String::as_str).collect(),
                    caps: p.caps.clone(),
                    expect: p.expect,
                    kernel_kib: p.kernel_kib,
                })
                .collect(),
            workload: self.workload.map(|w| w.spec),
            kernel: self.kernel,
        }
    }

    /// Every program image the initrd must hold, each once, in first-use
    /// order, with the byte offset to blame if it is missing: each
    /// `[[program]]` name, then the workload kind's program
    /// ([`WorkloadKind::program`]) when a workload is present (blamed on the `[workload]` header).
    pub fn required_programs(&self) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = Vec::new();
        let workload = self
            .workload
            .map(|w| (w.spec.kind.program(), w.header_offset));
        let all = self
            .programs
            .iter()
            .map(|p| (p.name.as_str(), p.name_offset))
            .chain(workload);
        for (name, offset) in all {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, offset));
            }
        }
        out
    }

    /// Overrides the workload's `repeat` (the harness's `REPEAT=`); does
    /// nothing without a workload. Returns whether a workload was changed.
    pub fn override_repeat(&mut self, repeat: Repeat) -> bool {
        match &mut self.workload {
            Some(w) => {
                w.spec.repeat = repeat.get();
                true
            }
            None => false,
        }
    }
}

/// A `repeat` count, range-checked by [`validate::repeat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repeat(u32);

impl Repeat {
    /// Checks the range.
    pub fn new(n: u32) -> Option<Repeat> {
        validate::repeat(n).ok().map(|()| Repeat(n))
    }

    /// Parses a decimal count (as given to `--repeat`).
    pub fn parse(s: &str) -> Option<Repeat> {
        s.parse().ok().and_then(Repeat::new)
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Reads and checks the manifest at `path`; `shown` is the path as the user
/// gave it, used verbatim in messages. On success also returns the source,
/// for locating later errors (a missing program) in it.
pub fn load(path: &Path, shown: &str) -> Result<(SourceFile, ManifestDoc), Problems> {
    let bytes = crate::read::regular_file(path, abi::limits::MANIFEST_FILE_MAX)
        .map_err(|e| Problems(vec![e.problem(shown)]))?;
    let (src, result) = check_bytes(shown, &bytes);
    match result {
        Ok(doc) => Ok((src, doc)),
        Err(diags) => Err(src.problems(&diags)),
    }
}

/// Checks manifest bytes; the returned [`SourceFile`] locates the
/// diagnostics (its text is the lossy UTF-8 form of `bytes`).
pub fn check_bytes(
    shown: &str,
    bytes: &[u8],
) -> (SourceFile, Result<ManifestDoc, Vec<Diagnostic>>) {
    let src = SourceFile {
        path: shown.to_string(),
        text: String::from_utf8_lossy(bytes).into_owned(),
    };
    let result = match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        // The valid prefix is the same in the lossy text, so the offset
        // points at the first bad byte there too.
        Err(e) => Err(vec![Diagnostic::new(
            e.valid_up_to(),
            "file is not valid UTF-8",
        )]),
    };
    (src, result)
}

/// Checks manifest text against every rule; all problems on failure.
pub fn parse(text: &str) -> Result<ManifestDoc, Vec<Diagnostic>> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut diags: Vec<Diagnostic> = errors
            .iter()
            .map(|e| {
                let offset = e.span().map_or(0, |s| s.start);
                Diagnostic::new(offset, format!("TOML syntax error: {}", e.message()))
            })
            .collect();
        diags.sort_by_key(|d| d.offset);
        diags.dedup();
        return Err(diags);
    }
    let mut checker = Checker {
        text,
        diags: Vec::new(),
    };
    let doc = checker.document(doc.get_ref());
    match doc {
        Some(doc) if checker.diags.is_empty() => match validate::manifest(&doc.to_abi()) {
            Ok(()) => Ok(doc),
            // Every rule was applied at its value above; this is the net
            // that keeps mkimage from ever writing what the kernel refuses.
            Err(v) => Err(vec![Diagnostic::new(0, v.to_string())]),
        },
        _ => Err(checker.diags),
    }
}

/// Looks a key up in a table.
fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}

/// Walks the parsed document, collecting diagnostics. Each method returns
/// `None` when its part was invalid (having recorded why).
struct Checker<'s> {
    text: &'s str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, offset: usize, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(offset, message));
    }

    /// How a value reads in a message: its source text for scalars.
    fn found(&self, v: &Value<'_>) -> String {
        match v.get_ref() {
            DeValue::Array(_) => "an array".to_string(),
            DeValue::Table(_) => "a table".to_string(),
            _ => {
                let raw = self.text.get(v.span()).unwrap_or("").trim();
                if raw.is_empty() || raw.chars().count() > 40 {
                    format!("a {}", v.get_ref().type_str())
                } else {
                    raw.to_string()
                }
            }
        }
    }

    /// Records `expected, found X` at the value.
    fn wrong(&mut self, v: &Value<'_>, expected: &str) {
        let found = self.found(v);
        self.err(v.span().start, format!("{expected}, found {found}"));
    }

    /// Flags every key of `table` not in `allowed`, at the key.
    fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], label: &str) {
        for (k, _) in table.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                self.err(
                    k.span().start,
                    format!(
                        "unknown key {:?} {label} (allowed: {})",
                        k.get_ref(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// A required key, or a diagnostic at the table header.
    fn required<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        key: &str,
        header: usize,
        label: &str,
    ) -> Option<&'t Value<'i>> {
        let v = get(table, key);
        if v.is_none() {
            self.err(header, format!("missing required key `{key}` in {label}"));
        }
        v
    }

    fn string<'v>(&mut self, v: &'v Value<'_>, expected: &str) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong(v, expected);
                None
            }
        }
    }

    fn bool(&mut self, v: &Value<'_>, expected: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong(v, expected);
                None
            }
        }
    }

    /// An integer in `range` (TOML integers are i64).
    fn int_in(
        &mut self,
        v: &Value<'_>,
        range: std::ops::RangeInclusive<i64>,
        expected: &str,
    ) -> Option<i64> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.wrong(v, expected);
                None
            }
        }
    }

    /// A non-negative integer as u64.
    fn unsigned(&mut self, v: &Value<'_>, key: &str) -> Option<u64> {
        let expected = format!("{key} must be a non-negative integer");
        let n = self.int_in(v, 0..=i64::MAX, &expected)?;
        u64::try_from(n).ok()
    }

    /// A table value, or a diagnostic at it.
    fn table<'t, 'i>(&mut self, v: &'t Value<'i>, expected: &str) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong(v, expected);
                None
            }
        }
    }

    fn document(&mut self, root: &DeTable<'_>) -> Option<ManifestDoc> {
        self.unknown_keys(root, TOP_KEYS, "at top level");
        let scenario = match get(root, "scenario") {
            None => {
                self.err(0, "missing [scenario] table");
                None
            }
            Some(v) => self
                .table(v, "scenario must be a table ([scenario])")
                .and_then(|t| self.scenario(t, v.span().start)),
        };
        let programs = match get(root, "program") {
            None => Some(Vec::new()),
            Some(v) => self.programs(v),
        };
        let workload = match get(root, "workload") {
            None => Some(None),
            Some(v) => self
                .table(v, "workload must be a table ([workload])")
                .and_then(|t| self.workload(t, v.span().start))
                .map(Some),
        };
        let kernel = match get(root, "kernel") {
            None => Some(am::KernelConfig::default()),
            Some(v) => self
                .table(v, "kernel must be a table ([kernel])")
                .and_then(|t| self.kernel(t)),
        };
        Some(ManifestDoc {
            scenario: scenario?,
            programs: programs?,
            workload: workload?,
            kernel: kernel?,
        })
    }

    /// Applies one of [`abi::validate`]'s rules to the value `v`: on a
    /// violation, records the rule's message at the value, followed by
    /// `found X` (X as [`Self::found`] shows it) or by `extra`.
    fn rule(&mut self, v: &Value<'_>, result: Result<(), Rule>, extra: Option<String>) -> bool {
        match result {
            Ok(()) => true,
            Err(rule) => {
                let shown = extra.unwrap_or_else(|| self.found(v));
                self.err(v.span().start, format!("{rule}, found {shown}"));
                false
            }
        }
    }

    /// An integer that fits `T`; otherwise `rule`'s message at the value.
    fn int_as<T: TryFrom<i64>>(&mut self, v: &Value<'_>, rule: Rule) -> Option<T> {
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        let t = n.and_then(|n| T::try_from(n).ok());
        if t.is_none() {
            self.wrong(v, &rule.to_string());
        }
        t
    }

    fn scenario(&mut self, t: &DeTable<'_>, header: usize) -> Option<ScenarioDef> {
        const LABEL: &str = "[scenario]";
        self.unknown_keys(t, SCENARIO_KEYS, &format!("in {LABEL}"));
        let name = self
            .required(t, "name", header, LABEL)
            .and_then(|v| self.scenario_name(v));
        let description = match get(t, "description") {
            None => Some(None),
            Some(v) => self
                .string(v, "description must be a string")
                .map(str::to_string)
                .filter(|s| {
                    let bytes = format!("{} bytes", s.len());
                    self.rule(v, validate::description(s), Some(bytes))
                })
                .map(Some),
        };
        let timeout_ms = match get(t, "timeout_ms") {
            None => Some(None),
            Some(v) => self
                .int_as::<u64>(v, Rule::TimeoutMs)
                .filter(|ms| self.rule(v, validate::timeout_ms(*ms), None))
                .map(Some),
        };
        let selftests = match get(t, "selftests") {
            None => Some(Vec::new()),
            Some(v) => self.selftests(v),
        };
        Some(ScenarioDef {
            name: name?,
            description: description?,
            timeout_ms: timeout_ms?,
            selftests: selftests?,
        })
    }

    fn selftests(&mut self, v: &Value<'_>) -> Option<Vec<am::SelfTest>> {
        let names: Vec<&str> = am::SelfTest::ALL.iter().map(|t| t.name()).collect();
        let expected = format!(
            "selftests must be an array of self-test names ({})",
            names.join(", ")
        );
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(v, &expected);
            return None;
        };
        let mut ok = true;
        let mut found = Vec::new();
        for item in items.iter() {
            let Some(word) = self.string(item, &expected) else {
                ok = false;
                continue;
            };
            match am::SelfTest::from_name(word) {
                Some(test) => found.push((test, item.span().start)),
                None => {
                    self.err(
                        item.span().start,
                        format!(
                            "unknown self-test {word:?} (expected one of {})",
                            names.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        let tests: Vec<am::SelfTest> = found.iter().map(|(t, _)| *t).collect();
        validate::selftests(&tests, |j, rule| {
            let at = j.and_then(|j| found.get(j)).map_or(v.span().start, |f| f.1);
            self.err(at, rule.to_string());
            ok = false;
        });
        ok.then_some(tests)
    }

    fn scenario_name(&mut self, v: &Value<'_>) -> Option<String> {
        let name = self.string(v, &Rule::ScenarioName.to_string())?;
        let name = name.to_string();
        self.rule(v, validate::scenario_name(&name), None)
            .then_some(name)
    }

    fn programs(&mut self, v: &Value<'_>) -> Option<Vec<ProgramDef>> {
        const EXPECTED: &str = "program must be an array of tables ([[program]])";
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(v, EXPECTED);
            return None;
        };
        let mut out = Some(Vec::new());
        if let Err(rule) = validate::program_count(items.len()) {
            let at = items
                .get(abi::limits::PROGRAMS_MAX)
                .map_or(v.span().start, |i| i.span().start);
            self.err(at, format!("{rule}, found {}", items.len()));
            out = None;
        }
        for item in items.iter() {
            let def = self
                .table(item, EXPECTED)
                .and_then(|t| self.program(t, item.span().start));
            out = match (out, def) {
                (Some(mut list), Some(def)) => {
                    list.push(def);
                    Some(list)
                }
                _ => None,
            };
        }
        out
    }

    fn program(&mut self, t: &DeTable<'_>, header: usize) -> Option<ProgramDef> {
        const LABEL: &str = "[[program]]";
        self.unknown_keys(t, PROGRAM_KEYS, &format!("in {LABEL}"));
        let name = self.required(t, "name", header, LABEL).and_then(|v| {
            let name = self.program_name(v)?;
            Some((name, v.span().start))
        });
        let args = match get(t, "args") {
            None => Some(Vec::new()),
            Some(v) => self.args(v),
        };
        let caps = match get(t, "caps") {
            None => Some(Vec::new()),
            Some(v) => self.caps(v),
        };
        let expect = match get(t, "expect") {
            None => Some(Expect::Exit(0)),
            Some(v) => self.expect(v),
        };
        let kernel_kib = match get(t, "kernel_kib") {
            None => Some(None),
            Some(v) => self
                .int_as::<u32>(v, Rule::KernelKib)
                .filter(|k| self.rule(v, validate::kernel_kib(*k), None))
                .map(Some),
        };
        let (name, name_offset) = name?;
        Some(ProgramDef {
            name,
            name_offset,
            args: args?,
            caps: caps?,
            expect: expect?,
            kernel_kib: kernel_kib?,
        })
    }

    /// A program name is a plain file name in the programs directory
    /// ([`validate::program_name`]).
    fn program_name(&mut self, v: &Value<'_>) -> Option<String> {
        let name = self.string(v, &Rule::ProgramName.to_string())?;
        let name = name.to_string();
        self.rule(v, validate::program_name(&name), None)
            .then_some(name)
    }

    fn args(&mut self, v: &Value<'_>) -> Option<Vec<String>> {
        const EXPECTED: &str = "args must be an array of strings";
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(v, EXPECTED);
            return None;
        };
        let mut out = Some(Vec::new());
        if let Err(rule) = validate::arg_count(items.len()) {
            let at = items
                .get(abi::limits::ARGS_MAX)
                .map_or(v.span().start, |i| i.span().start);
            self.err(at, format!("{rule}, found {}", items.len()));
            out = None;
        }
        for item in items.iter() {
            let arg = self.string(item, EXPECTED).map(str::to_string).filter(|a| {
                let bytes = format!("{} bytes", a.len());
                self.rule(item, validate::arg(a), Some(bytes))
            });
            out = out.zip(arg).map(|(mut list, a)| {
                list.push(a);
                list
            });
        }
        out
    }

    fn caps(&mut self, v: &Value<'_>) -> Option<Vec<CapKind>> {
        let names: Vec<&str> = CapKind::GRANTABLE.iter().map(|k| k.name()).collect();
        let expected = format!(
            "caps must be an array of capability names ({})",
            names.join(", ")
        );
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong(v, &expected);
            return None;
        };
        let mut ok = true;
        let mut found = Vec::new();
        for item in items.iter() {
            let Some(word) = self.string(item, &expected) else {
                ok = false;
                continue;
            };
            match CapKind::from_name(word) {
                Some(kind) => found.push((kind, item.span().start)),
                None => {
                    self.err(
                        item.span().start,
                        format!(
                            "unknown capability {word:?} (expected one of {})",
                            names.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        let kinds: Vec<CapKind> = found.iter().map(|(k, _)| *k).collect();
        validate::caps(&kinds, |j, rule| {
            let at = j.and_then(|j| found.get(j)).map_or(v.span().start, |f| f.1);
            self.err(at, rule.to_string());
            ok = false;
        });
        ok.then_some(kinds)
    }

    fn expect(&mut self, v: &Value<'_>) -> Option<Expect> {
        const EXPECTED: &str = "expect must be \"exit:N\" or \"fault\"";
        let s = self.string(v, EXPECTED)?;
        let e = Expect::parse(s);
        if e.is_none() {
            self.wrong(v, EXPECTED);
        }
        e
    }

    fn workload(&mut self, t: &DeTable<'_>, header: usize) -> Option<WorkloadDef> {
        const LABEL: &str = "[workload]";
        self.unknown_keys(t, WORKLOAD_KEYS, &format!("in {LABEL}"));
        let kind = self
            .required(t, "kind", header, LABEL)
            .and_then(|v| self.kind(v));
        match kind {
            Some(WorkloadKind::Ring) => return self.ring_workload(t, header),
            Some(WorkloadKind::Primes) => self.keys_of_other_kind(t, RING_ONLY_KEYS, KIND_PRIMES),
            None => {}
        }
        let lo = self
            .required(t, "lo", header, LABEL)
            .and_then(|v| self.unsigned(v, "lo"));
        let hi_value = self.required(t, "hi", header, LABEL);
        let hi = hi_value.and_then(|v| self.unsigned(v, "hi"));
        let mut range_ok = false;
        if let (Some(lo), Some(h), Some(v)) = (lo, hi, hi_value) {
            range_ok = self.rule(v, validate::hi(lo, h), None);
        }
        let expected_value = self.required(t, "expected", header, LABEL);
        let mut expected = expected_value.and_then(|v| self.unsigned(v, "expected"));
        if let (true, Some(lo), Some(h), Some(e), Some(v)) =
            (range_ok, lo, hi, expected, expected_value)
        {
            if !self.rule(v, validate::expected(lo, h, e), None) {
                expected = None;
            }
        }
        let workers = self
            .required(t, "workers", header, LABEL)
            .and_then(|v| self.workers(v));
        let mode = self
            .required(t, "mode", header, LABEL)
            .and_then(|v| self.mode(v));
        let repeat = match get(t, "repeat") {
            None => Some(1),
            Some(v) => self
                .int_as::<u32>(v, Rule::Repeat)
                .filter(|r| self.rule(v, validate::repeat(*r), None)),
        };
        let serialize = match get(t, "serialize") {
            None => Some(false),
            Some(v) => self
                .bool(v, "serialize must be true or false")
                .filter(|s| match mode {
                    Some(m) => self.rule(v, validate::serialize(m, *s), None),
                    None => true,
                }),
        };
        if !range_ok {
            return None;
        }
        let spec = Workload {
            kind: kind?,
            lo: lo?,
            hi: hi?,
            expected: expected?,
            workers: workers?,
            mode: mode?,
            repeat: repeat?,
            serialize: serialize?,
            ring: None,
        };
        Some(WorkloadDef {
            spec,
            header_offset: header,
        })
    }

    /// Flags each key in `keys` present in `t`, at the key: it belongs to
    /// another workload kind than `kind`.
    fn keys_of_other_kind(&mut self, t: &DeTable<'_>, keys: &[&str], kind: &str) {
        for (k, _) in t.iter() {
            let name: &str = k.get_ref().as_ref();
            if keys.contains(&name) {
                self.err(
                    k.span().start,
                    format!("key {name:?} does not apply to kind = {kind:?}"),
                );
            }
        }
    }

    /// `[workload]` with `kind = "ring"`: the mix instead of a range.
    fn ring_workload(&mut self, t: &DeTable<'_>, header: usize) -> Option<WorkloadDef> {
        const LABEL: &str = "[workload]";
        self.keys_of_other_kind(t, PRIMES_ONLY_KEYS, KIND_RING);
        let rounds = self.required(t, "rounds", header, LABEL).and_then(|v| {
            self.int_as::<u32>(v, Rule::RingRounds)
                .filter(|r| self.rule(v, validate::ring_rounds(*r), None))
        });
        let mut count = |key: &str, rule: Rule| -> Option<(u32, Option<usize>)> {
            match get(t, key) {
                None => Some((0, None)),
                Some(v) => Some((self.int_as::<u32>(v, rule)?, Some(v.span().start))),
            }
        };
        let nops = count("nops", Rule::RingBatch);
        let timers = count("timers", Rule::RingBatch);
        let pingpongs = count("pingpongs", Rule::RingPingpongs);
        if let Some(v) = get(t, "pingpongs") {
            if let Some((p, _)) = pingpongs {
                self.rule(v, validate::ring_pingpongs(p), None);
            }
        }
        let workers = self
            .required(t, "workers", header, LABEL)
            .and_then(|v| self.workers(v));
        let mode = self
            .required(t, "mode", header, LABEL)
            .and_then(|v| self.mode(v));
        let repeat = match get(t, "repeat") {
            None => Some(1),
            Some(v) => self
                .int_as::<u32>(v, Rule::Repeat)
                .filter(|r| self.rule(v, validate::repeat(*r), None)),
        };
        let serialize = match get(t, "serialize") {
            None => Some(false),
            Some(v) => self
                .bool(v, "serialize must be true or false")
                .filter(|s| self.rule(v, if *s { Err(Rule::RingSerialize) } else { Ok(()) }, None)),
        };
        // Every rule on the mix is checked (and reported) before any part
        // that failed makes this return.
        let mut mix_ok = true;
        if let (Some((n, n_at)), Some((t, t_at))) = (nops, timers) {
            if let Err(rule) = validate::ring_batch(n, t) {
                let at = t_at.or(n_at).unwrap_or(header);
                self.err(at, format!("{rule}, found {n} + {t}"));
                mix_ok = false;
            }
        }
        if let (Some((n, _)), Some((t, _)), Some((p, _))) = (nops, timers, pingpongs) {
            let probe = RingMix {
                rounds: 1,
                nops: n,
                timers: t,
                pingpongs: p,
            };
            if let Err(rule) = validate::ring_nonempty(&probe) {
                self.err(header, rule.to_string());
                mix_ok = false;
            }
        }
        if matches!(pingpongs, Some((p, _)) if validate::ring_pingpongs(p).is_err()) {
            mix_ok = false;
        }
        let mix = RingMix {
            rounds: rounds?,
            nops: nops?.0,
            timers: timers?.0,
            pingpongs: pingpongs?.0,
        };
        if !mix_ok {
            return None;
        }
        let spec = Workload {
            kind: WorkloadKind::Ring,
            lo: 0,
            hi: 0,
            expected: 0,
            workers: workers?,
            mode: mode?,
            repeat: repeat?,
            serialize: serialize?,
            ring: Some(mix),
        };
        Some(WorkloadDef {
            spec,
            header_offset: header,
        })
    }

    fn kernel(&mut self, t: &DeTable<'_>) -> Option<am::KernelConfig> {
        self.unknown_keys(t, KERNEL_KEYS, "in [kernel]");
        let apic = match get(t, "apic") {
            None => Some(am::ApicMode::Auto),
            Some(v) => {
                let words: Vec<&str> = am::ApicMode::ALL.iter().map(|m| m.name()).collect();
                self.word(v, "apic", &words, am::ApicMode::from_name)
            }
        };
        let timer = match get(t, "timer") {
            None => Some(am::TimerMode::Auto),
            Some(v) => {
                let words: Vec<&str> = am::TimerMode::ALL.iter().map(|m| m.name()).collect();
                self.word(v, "timer", &words, am::TimerMode::from_name)
            }
        };
        Some(am::KernelConfig {
            apic: apic?,
            timer: timer?,
        })
    }

    /// A string value that `parse` accepts, one of `words`; otherwise
    /// `KEY must be one of ...` at the value.
    fn word<T>(
        &mut self,
        v: &Value<'_>,
        key: &str,
        words: &[&str],
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
        let expected = format!("{key} must be one of {}", quoted.join(", "));
        let found = match v.get_ref() {
            DeValue::String(s) => parse(s),
            _ => None,
        };
        if found.is_none() {
            self.wrong(v, &expected);
        }
        found
    }

    fn kind(&mut self, v: &Value<'_>) -> Option<WorkloadKind> {
        let expected = format!("kind must be {KIND_PRIMES:?} or {KIND_RING:?}");
        match v.get_ref() {
            DeValue::String(s) if s == KIND_PRIMES => Some(WorkloadKind::Primes),
            DeValue::String(s) if s == KIND_RING => Some(WorkloadKind::Ring),
            _ => {
                self.wrong(v, &expected);
                None
            }
        }
    }

    fn workers(&mut self, v: &Value<'_>) -> Option<Workers> {
        let workers = match v.get_ref() {
            DeValue::String(s) if s == WORKERS_CPUS => Workers::Cpus,
            _ => Workers::Count(self.int_as::<u32>(v, Rule::Workers)?),
        };
        self.rule(v, validate::workers(workers), None)
            .then_some(workers)
    }

    fn mode(&mut self, v: &Value<'_>) -> Option<Mode> {
        let (p, t) = (Mode::Process.name(), Mode::Thread.name());
        match v.get_ref() {
            DeValue::String(s) if s == p => Some(Mode::Process),
            DeValue::String(s) if s == t => Some(Mode::Thread),
            _ => {
                self.wrong(v, &format!("mode must be {p:?} or {t:?}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every problem in `text`, rendered against the path `m.toml`.
    fn errors(text: &str) -> Vec<String> {
        let (src, result) = check_bytes("m.toml", text.as_bytes());
        match result {
            Ok(_) => Vec::new(),
            Err(diags) => src.problems(&diags).lines(),
        }
    }

    /// The one problem in `text`.
    fn one(text: &str) -> String {
        let e = errors(text);
        assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
        e[0].clone()
    }

    const SCENARIO: &str = "[scenario]\nname = \"t\"\n";

    /// `[scenario]` plus a `[workload]` whose lines are `lines`; the
    /// workload keys start on line 4.
    fn workload(lines: &str) -> String {
        format!("{SCENARIO}[workload]\n{lines}")
    }

    const WORKLOAD_OK: &str = "kind = \"primes\"\nlo = 0\nhi = 100\nexpected = 25\n\
                               workers = 2\nmode = \"thread\"\n";

    #[test]
    fn selftests_parse() {
        let doc = parse("[scenario]\nname = \"t\"\nselftests = [\"smp\"]\n").expect("valid");
        assert_eq!(doc.scenario.selftests, vec![am::SelfTest::Smp]);
        assert_eq!(doc.to_abi().scenario.selftests, vec![am::SelfTest::Smp]);
        let doc = parse(SCENARIO).expect("valid");
        assert!(doc.scenario.selftests.is_empty());
    }

    #[test]
    fn selftests_errors() {
        assert_eq!(
            one("[scenario]\nname = \"t\"\nselftests = [\"smp\", \"fpu\"]\n"),
            "m.toml:3:21: unknown self-test \"fpu\" (expected one of smp)"
        );
        assert_eq!(
            one("[scenario]\nname = \"t\"\nselftests = \"smp\"\n"),
            "m.toml:3:13: selftests must be an array of self-test names (smp), found \"smp\""
        );
        assert_eq!(
            one("[scenario]\nname = \"t\"\nselftests = [\"smp\", \"smp\"]\n"),
            "m.toml:3:21: duplicate self-test \"smp\""
        );
    }

    #[test]
    fn minimal_is_valid() {
        let doc = parse(SCENARIO).expect("valid");
        assert_eq!(doc.scenario.name, "t");
        assert!(doc.programs.is_empty());
        assert!(doc.workload.is_none());
    }

    #[test]
    fn every_optional_field() {
        let text = include_str!("../tests/full.toml");
        let doc = parse(text).expect("valid");
        assert_eq!(
            doc.scenario.description.as_deref(),
            Some("every optional field")
        );
        assert_eq!(doc.scenario.timeout_ms, Some(120_000));
        assert_eq!(doc.programs.len(), 2);
        let p = &doc.programs[0];
        assert_eq!(p.args, ["--rounds", "1000"]);
        assert_eq!(
            p.caps,
            [
                CapKind::Console,
                CapKind::Timer,
                CapKind::Spawner,
                CapKind::Stats
            ]
        );
        assert_eq!(p.expect, Expect::Exit(-3));
        assert_eq!(p.kernel_kib, Some(16384));
        assert_eq!(doc.programs[1].expect, Expect::Fault);
        assert_eq!(doc.programs[1].kernel_kib, None);
        let w = doc.workload.expect("workload").spec;
        assert_eq!((w.lo, w.hi, w.expected), (0, 1_000_000, 78_498));
        assert_eq!(w.workers, Workers::Cpus);
        assert_eq!(w.mode, Mode::Thread);
        assert_eq!((w.repeat, w.serialize), (3, true));
        let m = doc.to_abi();
        assert_eq!(m.programs[0].args, ["--rounds", "1000"]);
        assert_eq!(m.workload, Some(w));
        assert_eq!(m.kernel.apic, am::ApicMode::X2Apic);
        assert_eq!(m.kernel.timer, am::TimerMode::TscDeadline);
    }

    #[test]
    fn defaults() {
        let doc = parse(&format!(
            "{SCENARIO}[[program]]\nname = \"p\"\n[workload]\n{WORKLOAD_OK}"
        ))
        .expect("valid");
        assert_eq!(doc.programs[0].expect, Expect::Exit(0));
        assert!(doc.programs[0].args.is_empty() && doc.programs[0].caps.is_empty());
        let w = doc.workload.expect("workload").spec;
        assert_eq!(
            (w.repeat, w.serialize, w.workers),
            (1, false, Workers::Count(2))
        );
    }

    #[test]
    fn required_programs_once_each() {
        let text = format!(
            "{SCENARIO}[[program]]\nname = \"a\"\n[[program]]\nname = \"primes\"\n\
             [[program]]\nname = \"a\"\n[workload]\n{WORKLOAD_OK}"
        );
        let doc = parse(&text).expect("valid");
        let names: Vec<&str> = doc.required_programs().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "primes"]);
        let doc = parse(&workload(WORKLOAD_OK)).expect("valid");
        // The workload program is blamed on the [workload] header (3:1).
        assert_eq!(doc.required_programs(), [("primes", SCENARIO.len())]);
    }

    #[test]
    fn repeat_override() {
        let mut doc = parse(&workload(WORKLOAD_OK)).expect("valid");
        assert!(doc.override_repeat(Repeat::new(7).expect("in range")));
        assert_eq!(doc.workload.map(|w| w.spec.repeat), Some(7));
        let mut doc = parse(SCENARIO).expect("valid");
        assert!(!doc.override_repeat(Repeat::new(7).expect("in range")));
        assert_eq!(Repeat::parse("0"), None);
        assert_eq!(Repeat::parse("101"), None);
        assert_eq!(Repeat::parse("x"), None);
        assert_eq!(Repeat::parse("100").map(Repeat::get), Some(100));
    }

    #[test]
    fn underscored_and_hex_integers() {
        let doc = parse(&workload(
            "kind = \"primes\"\nlo = 0x10\nhi = 1_000_000_000\nexpected = 50_847_534\n\
             workers = 256\nmode = \"process\"\n",
        ))
        .expect("valid");
        let w = doc.workload.expect("workload").spec;
        assert_eq!((w.lo, w.hi, w.expected), (16, 1_000_000_000, 50_847_534));
    }

    #[test]
    fn unknown_top_level_key() {
        assert_eq!(
            one(&format!("\n  colour = 1\n{SCENARIO}")),
            "m.toml:2:3: unknown key \"colour\" at top level (allowed: scenario, program, workload, kernel)"
        );
    }

    #[test]
    fn kernel_table_parses() {
        let doc = parse(SCENARIO).expect("valid");
        assert_eq!(doc.kernel, am::KernelConfig::default());
        let doc = parse(&format!(
            "{SCENARIO}[kernel]\napic = \"x2apic\"\ntimer = \"tsc-deadline\"\n"
        ))
        .expect("valid");
        assert_eq!(doc.kernel.apic, am::ApicMode::X2Apic);
        assert_eq!(doc.kernel.timer, am::TimerMode::TscDeadline);
        assert_eq!(doc.to_abi().kernel, doc.kernel);
        let doc = parse(&format!("{SCENARIO}[kernel]\ntimer = \"lapic\"\n")).expect("valid");
        assert_eq!(
            doc.kernel,
            am::KernelConfig {
                apic: am::ApicMode::Auto,
                timer: am::TimerMode::Lapic
            }
        );
        let doc = parse(&format!("{SCENARIO}[kernel]\napic = \"xapic\"\n")).expect("valid");
        assert_eq!(doc.kernel.apic, am::ApicMode::XApic);
        assert_eq!(doc.kernel.timer, am::TimerMode::Auto);
    }

    #[test]
    fn kernel_table_errors() {
        assert_eq!(
            one(&format!("{SCENARIO}[kernel]\napic = \"x2APIC\"\n")),
            "m.toml:4:8: apic must be one of \"auto\", \"xapic\", \"x2apic\", found \"x2APIC\""
        );
        assert_eq!(
            one(&format!("{SCENARIO}[kernel]\ntimer = 1\n")),
            "m.toml:4:9: timer must be one of \"auto\", \"lapic\", \"tsc-deadline\", found 1"
        );
        assert_eq!(
            one(&format!("{SCENARIO}[kernel]\n  tick = \"auto\"\n")),
            "m.toml:4:3: unknown key \"tick\" in [kernel] (allowed: apic, timer)"
        );
        assert_eq!(
            one(&format!("kernel = \"x2apic\"\n{SCENARIO}")),
            "m.toml:1:10: kernel must be a table ([kernel]), found \"x2apic\""
        );
        // Both bad values are reported, each at its value.
        let e = errors(&format!(
            "{SCENARIO}[kernel]\napic = \"none\"\ntimer = \"hpet\"\n"
        ));
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("m.toml:4:8: apic must be one of"));
        assert!(e[1].starts_with("m.toml:5:9: timer must be one of"));
    }

    #[test]
    fn unknown_nested_keys() {
        assert_eq!(
            one("[scenario]\nname = \"t\"\ntimeout = 5\n"),
            "m.toml:3:1: unknown key \"timeout\" in [scenario] (allowed: name, description, timeout_ms, selftests)"
        );
        assert_eq!(
            one(&format!(
                "{SCENARIO}[[program]]\nname = \"p\"\n  cap = []\n"
            )),
            "m.toml:5:3: unknown key \"cap\" in [[program]] (allowed: name, args, caps, expect, kernel_kib)"
        );
        assert!(one(&workload(&format!("{WORKLOAD_OK}threads = 2\n")))
            .starts_with("m.toml:10:1: unknown key \"threads\" in [workload]"));
        // A sub-table is an unknown key of its parent.
        assert!(one(&format!("{SCENARIO}[scenario.more]\nx = 1\n"))
            .starts_with("m.toml:3:11: unknown key \"more\" in [scenario]"));
    }

    #[test]
    fn wrong_types_point_at_value() {
        assert_eq!(
            one("[scenario]\nname = 7\n"),
            "m.toml:2:8: scenario name must be 1..=48 characters from [a-z0-9-], found 7"
        );
        assert_eq!(
            one("[scenario]\nname = \"t\"\ndescription = [\"a\"]\n"),
            "m.toml:3:15: description must be a string, found an array"
        );
        assert_eq!(
            one("[scenario]\nname = \"t\"\ntimeout_ms = \"10\"\n"),
            "m.toml:3:14: timeout_ms must be an integer 1..=86400000, found \"10\""
        );
        assert_eq!(
            one(&format!(
                "{SCENARIO}[[program]]\nname = \"p\"\nargs = [\"a\", 3]\n"
            )),
            "m.toml:5:14: args must be an array of strings, found 3"
        );
        assert_eq!(
            one(&workload("kind = \"primes\"\nlo = 0\nhi = 1.5e3\nexpected = 1\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:6:6: hi must be a non-negative integer, found 1.5e3"
        );
        assert_eq!(
            one(&workload(&format!("{WORKLOAD_OK}serialize = 1\n"))),
            "m.toml:10:13: serialize must be true or false, found 1"
        );
        assert_eq!(
            one("scenario = \"x\"\n"),
            "m.toml:1:12: scenario must be a table ([scenario]), found \"x\""
        );
        assert_eq!(
            one(&format!("{SCENARIO}[program]\nname = \"p\"\n")),
            "m.toml:3:1: program must be an array of tables ([[program]]), found a table"
        );
    }

    #[test]
    fn negative_lo() {
        assert_eq!(
            one(&workload("kind = \"primes\"\nlo = -5\nhi = 10\nexpected = 4\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:5:6: lo must be a non-negative integer, found -5"
        );
    }

    #[test]
    fn integer_too_big_for_toml() {
        assert_eq!(
            one(&workload("kind = \"primes\"\nlo = 0\nhi = 99999999999999999999\nexpected = 4\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:6:6: hi must be a non-negative integer, found 99999999999999999999"
        );
    }

    #[test]
    fn hi_not_above_lo() {
        assert_eq!(
            one(&workload("kind = \"primes\"\nlo = 10\nhi = 10\nexpected = 0\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:6:6: hi must be greater than lo (10), found 10"
        );
        assert_eq!(
            one(&workload("kind = \"primes\"\nhi   =   3\nlo = 10\nexpected = 0\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:5:10: hi must be greater than lo (10), found 3"
        );
    }

    fn workers(value: &str) -> String {
        one(&workload(&format!(
            "kind = \"primes\"\nlo = 0\nhi = 10\nexpected = 4\nworkers = {value}\nmode = \"thread\"\n"
        )))
    }

    #[test]
    fn workers_zero() {
        assert_eq!(
            workers("0"),
            "m.toml:8:11: workers must be an integer 1..=256 or \"cpus\", found 0"
        );
    }

    #[test]
    fn workers_257() {
        assert_eq!(
            workers("257"),
            "m.toml:8:11: workers must be an integer 1..=256 or \"cpus\", found 257"
        );
    }

    #[test]
    fn workers_other_word() {
        assert_eq!(
            workers("\"all\""),
            "m.toml:8:11: workers must be an integer 1..=256 or \"cpus\", found \"all\""
        );
        assert_eq!(
            workers("true"),
            "m.toml:8:11: workers must be an integer 1..=256 or \"cpus\", found true"
        );
    }

    #[test]
    fn bad_scenario_name() {
        assert_eq!(
            one("[scenario]\nname = \"Smoke_1\"\n"),
            "m.toml:2:8: scenario name must be 1..=48 characters from [a-z0-9-], found \"Smoke_1\""
        );
        assert!(one(&format!("[scenario]\nname = \"{}\"\n", "a".repeat(49)))
            .starts_with("m.toml:2:8: "));
        assert!(one("[scenario]\nname = \"\"\n").starts_with("m.toml:2:8: "));
    }

    #[test]
    fn bad_mode() {
        assert_eq!(
            one(&workload("kind = \"primes\"\nlo = 0\nhi = 10\nexpected = 4\nworkers = 1\nmode = \"processes\"\n")),
            "m.toml:9:8: mode must be \"process\" or \"thread\", found \"processes\""
        );
    }

    #[test]
    fn bad_kind() {
        assert_eq!(
            one(&workload("kind = \"fibonacci\"\nlo = 0\nhi = 10\nexpected = 4\nworkers = 1\nmode = \"thread\"\n")),
            "m.toml:4:8: kind must be \"primes\" or \"ring\", found \"fibonacci\""
        );
    }

    #[test]
    fn bad_expect() {
        let text = format!("{SCENARIO}[[program]]\nname = \"p\"\nexpect = \"exit:+1\"\n");
        assert_eq!(
            one(&text),
            "m.toml:5:10: expect must be \"exit:N\" or \"fault\", found \"exit:+1\""
        );
        let text = format!("{SCENARIO}[[program]]\nname = \"p\"\nexpect = 0\n");
        assert_eq!(
            one(&text),
            "m.toml:5:10: expect must be \"exit:N\" or \"fault\", found 0"
        );
    }

    #[test]
    fn bad_cap() {
        let text = format!("{SCENARIO}[[program]]\nname = \"p\"\ncaps = [\"console\", \"root\"]\n");
        assert_eq!(
            one(&text),
            "m.toml:5:20: unknown capability \"root\" (expected one of console, timer, spawner, stats)"
        );
        // Kinds that exist but are not grantable by name.
        let text = format!("{SCENARIO}[[program]]\nname = \"p\"\ncaps = [\"self\"]\n");
        assert!(one(&text).starts_with("m.toml:5:9: unknown capability \"self\""));
    }

    #[test]
    fn duplicate_cap() {
        let text = format!(
            "{SCENARIO}[[program]]\nname = \"p\"\ncaps = [\"timer\", \"console\", \"timer\"]\n"
        );
        assert_eq!(one(&text), "m.toml:5:29: duplicate capability \"timer\"");
    }

    #[test]
    fn toml_syntax_error() {
        assert_eq!(
            one("[scenario]\nname = \n"),
            "m.toml:2:8: TOML syntax error: string values must be quoted, expected literal string"
        );
        let e = one("[scenario]\nname = \"a\"\nname = \"b\"\n");
        assert!(
            e.starts_with("m.toml:3:1: TOML syntax error: duplicate key"),
            "{e}"
        );
    }

    #[test]
    fn missing_scenario_name() {
        assert_eq!(
            one("# header comment\n[scenario]\ndescription = \"x\"\n"),
            "m.toml:2:1: missing required key `name` in [scenario]"
        );
    }

    #[test]
    fn missing_scenario_table() {
        assert_eq!(
            one("\n[[program]]\nname = \"p\"\n"),
            "m.toml:1:1: missing [scenario] table"
        );
        assert_eq!(one(""), "m.toml:1:1: missing [scenario] table");
    }

    #[test]
    fn missing_program_name() {
        assert_eq!(
            one(&format!(
                "{SCENARIO}[[program]]\nname = \"p\"\n\n[[program]]\nargs = []\n"
            )),
            "m.toml:6:1: missing required key `name` in [[program]]"
        );
    }

    #[test]
    fn bad_program_name() {
        let e = one(&format!("{SCENARIO}[[program]]\nname = \"../p\"\n"));
        assert_eq!(
            e,
            "m.toml:4:8: program name must be 1..=64 characters from [A-Za-z0-9._-], not \".\" or \"..\", found \"../p\""
        );
        assert!(one(&format!("{SCENARIO}[[program]]\nname = \"\"\n")).starts_with("m.toml:4:8: "));
    }

    #[test]
    fn missing_workload_keys_point_at_header() {
        let e = errors(&workload("kind = \"primes\"\n"));
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e
            .iter()
            .all(|l| l.starts_with("m.toml:3:1: missing required key `")));
    }

    #[test]
    fn repeat_out_of_range() {
        for (value, col) in [("0", 10), ("101", 10), ("-1", 10)] {
            assert_eq!(
                one(&workload(&format!("{WORKLOAD_OK}repeat = {value}\n"))),
                format!("m.toml:10:{col}: repeat must be an integer 1..=100, found {value}")
            );
        }
    }

    #[test]
    fn timeout_must_be_positive() {
        assert_eq!(
            one("[scenario]\nname = \"t\"\ntimeout_ms = 0\n"),
            "m.toml:3:14: timeout_ms must be an integer 1..=86400000, found 0"
        );
    }

    #[test]
    fn all_errors_reported_in_order() {
        let text =
            "zzz = 1\n[scenario]\nname = \"BAD\"\n[workload]\nkind = \"x\"\nlo = 5\nhi = 1\n\
                    expected = -1\nworkers = 0\nmode = \"m\"\n";
        let e = errors(text);
        let at: Vec<&str> = e
            .iter()
            .map(|l| l.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            at,
            [
                "m.toml:1:1",
                "m.toml:3:8",
                "m.toml:5:8",
                "m.toml:7:6",
                "m.toml:8:12",
                "m.toml:9:11",
                "m.toml:10:8"
            ]
        );
    }

    const RING_OK: &str = "kind = \"ring\"\nrounds = 100\nnops = 16\ntimers = 4\n\
                           pingpongs = 2\nworkers = \"cpus\"\nmode = \"thread\"\n";

    #[test]
    fn ring_workload_parses() {
        let doc = parse(&workload(RING_OK)).expect("valid");
        let w = doc.workload.expect("workload").spec;
        assert_eq!(w.kind, WorkloadKind::Ring);
        assert_eq!(
            w.ring,
            Some(RingMix {
                rounds: 100,
                nops: 16,
                timers: 4,
                pingpongs: 2
            })
        );
        assert_eq!((w.lo, w.hi, w.expected, w.serialize), (0, 0, 0, false));
        assert_eq!(doc.required_programs(), vec![("ringbench", 22)]);
        // nops, timers and pingpongs default to 0.
        let doc = parse(&workload(
            "kind = \"ring\"\nrounds = 1\nnops = 1\nworkers = 1\nmode = \"process\"\n",
        ))
        .expect("valid");
        let r = doc.workload.and_then(|w| w.spec.ring).expect("mix");
        assert_eq!((r.nops, r.timers, r.pingpongs), (1, 0, 0));
    }

    #[test]
    fn ring_workload_errors() {
        assert_eq!(
            one(&workload(&RING_OK.replace("rounds = 100", "rounds = 0"))),
            "m.toml:5:10: rounds must be an integer 1..=10000000, found 0"
        );
        assert_eq!(
            one(&workload(&RING_OK.replace("nops = 16", "nops = 61"))),
            "m.toml:7:10: nops + timers must be at most 64 (one batch fits the submission queue), found 61 + 4"
        );
        assert_eq!(
            one(&workload(
                &RING_OK.replace("pingpongs = 2", "pingpongs = 1025")
            )),
            "m.toml:8:13: pingpongs must be an integer 0..=1024, found 1025"
        );
        assert_eq!(
            one(&workload(&RING_OK.replace("nops = 16", "nops = -1"))),
            "m.toml:6:8: nops + timers must be at most 64 (one batch fits the submission queue), found -1"
        );
        assert_eq!(
            one(&workload(
                "kind = \"ring\"\nrounds = 5\nworkers = 1\nmode = \"thread\"\n"
            )),
            "m.toml:3:1: a round must hold at least one operation (nops, timers or pingpongs)"
        );
        // Every problem at once, each at its key or value.
        let e = errors(&workload(
            "kind = \"ring\"\nrounds = 0\nnops = 70\nlo = 3\nworkers = \"cpus\"\nmode = \"thread\"\n",
        ));
        assert_eq!(
            e,
            [
                "m.toml:5:10: rounds must be an integer 1..=10000000, found 0",
                "m.toml:6:8: nops + timers must be at most 64 (one batch fits the submission queue), found 70 + 0",
                "m.toml:7:1: key \"lo\" does not apply to kind = \"ring\"",
            ]
        );
        assert_eq!(
            one(&workload(&format!("{RING_OK}lo = 0\n"))),
            "m.toml:11:1: key \"lo\" does not apply to kind = \"ring\""
        );
        assert_eq!(
            one(&workload(&format!("{WORKLOAD_OK}rounds = 3\n"))),
            "m.toml:10:1: key \"rounds\" does not apply to kind = \"primes\""
        );
        assert_eq!(
            one(&workload(&format!("{RING_OK}serialize = true\n"))),
            "m.toml:11:13: serialize applies only to kind = \"primes\", found true"
        );
        // rounds, workers and mode missing, and a round with no operation.
        let e = errors(&workload("kind = \"ring\"\n"));
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e.iter().all(|l| l.starts_with("m.toml:3:1: ")));
        assert_eq!(
            e.iter()
                .filter(|l| l.contains("missing required key `"))
                .count(),
            3
        );
    }

    #[test]
    fn not_utf8() {
        let (src, r) = check_bytes("m.toml", b"[scenario]\nname = \"\xc3\xa9\xff\"\n");
        let lines = src.problems(&r.expect_err("invalid")).lines();
        assert_eq!(lines, ["m.toml:2:10: file is not valid UTF-8"]);
    }

    #[test]
    fn column_counts_characters() {
        // "é" is two bytes, one column.
        assert_eq!(
            one("[scenario]\nname = \"t\"\ndescription = \"é\"  ; x = 1\n")
                .split(": ")
                .next(),
            Some("m.toml:3:20")
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let text = include_str!("../tests/full.toml");
        for n in 0..text.len() {
            if let Some(prefix) = text.get(..n) {
                let _ = errors(prefix);
            }
        }
        for bytes in [
            &b"\x00\x01\x02"[..],
            b"[[scenario]]\n",
            b"[scenario]\nname=\"a\"\n[[workload]]\n",
            b"program = [1, {name=\"x\"}]\n",
        ] {
            let _ = check_bytes("m.toml", bytes);
        }
    }
}
