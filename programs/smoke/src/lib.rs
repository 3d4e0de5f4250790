//! Shared helpers of the smoke programs (one binary per smoke in `bin/`).
//!
//! A smoke's body returns `Result<(), Fail>`; [`run`] turns that into the
//! verdict line `SMOKE <name> PASS` or `SMOKE <name> FAIL reason=<text>`
//! and the exit status (0 on pass, 1 on fail). [`fail!`] and [`ensure!`]
//! build failures with a formatted reason; [`Ctx::ctx`] turns a kernel
//! error into one ("spawn: bad-slot").
#![no_std]

use abi::caps::CapKind;
use core::fmt::{self, Write};
use rt::console::LineBuf;
use rt::{println, Args, Error};

pub use rt;

pub mod hostile;

/// Why a smoke failed (a short formatted text).
pub struct Fail(pub LineBuf<100>);

impl Fail {
    /// A failure with the formatted reason.
    pub fn new(args: fmt::Arguments) -> Fail {
        let mut b = LineBuf::new();
        let _ = b.write_fmt(args);
        Fail(b)
    }
}

/// Returns early with a [`Fail`].
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::Fail::new(format_args!($($arg)*)))
    };
}

/// Fails unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

/// Adds context to a kernel error.
pub trait Ctx<T> {
    /// `what: <error name>` on failure.
    fn ctx(self, what: &str) -> Result<T, Fail>;
}

impl<T> Ctx<T> for Result<T, Error> {
    fn ctx(self, what: &str) -> Result<T, Fail> {
        self.map_err(|e| Fail::new(format_args!("{}: {}", what, e.name())))
    }
}

/// Runs a smoke body and prints its verdict; the exit status.
pub fn run(name: &str, args: &Args, body: fn(&Args) -> Result<(), Fail>) -> i64 {
    match body(args) {
        Ok(()) => {
            println!("SMOKE {} PASS", name);
            0
        }
        Err(f) => {
            println!("SMOKE {} FAIL reason={}", name, f.0.as_str());
            1
        }
    }
}

/// The slot of a capability the smoke needs.
pub fn need_cap(args: &Args, kind: CapKind) -> Result<u32, Fail> {
    match args.find_cap(kind) {
        Some(s) => Ok(s),
        None => Err(Fail::new(format_args!(
            "missing {} capability",
            kind.name()
        ))),
    }
}

/// Formats a number into a small buffer (for child arguments).
pub fn num(n: u64) -> LineBuf<24> {
    let mut b = LineBuf::new();
    let _ = write!(b, "{n}");
    b
}

/// Spins for about `ns` nanoseconds on the TSC (no system call).
pub fn spin_ns(ns: u64, tsc_hz: u64) {
    let cycles = (u128::from(ns) * u128::from(tsc_hz) / 1_000_000_000) as u64;
    let t0 = rt::arch::rdtsc();
    while rt::arch::rdtsc().wrapping_sub(t0) < cycles {
        core::hint::spin_loop();
    }
}

/// Number of bits set in a CPU mask.
pub fn cpu_count(mask: u64) -> u32 {
    mask.count_ones()
}

/// Gate word for [`gated_spinners`].
static GATE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Starts `n` (at most 16) threads that park on a gate word until it opens,
/// then spin for `spin_ns` each without system calls. Returns the union of
/// the CPU masks the kernel recorded for them. With two or more CPUs the
/// scheduler must spread them (placement and stealing), which callers check.
pub fn gated_spinners(n: usize, spin_ns_each: u64, tsc_hz: u64) -> Result<u64, Fail> {
    use core::sync::atomic::Ordering;
    const STACK: u64 = 16 * 1024;
    GATE.store(0, Ordering::Release);
    let mut ts: [Option<rt::thread::Thread>; 16] = [const { None }; 16];
    for t in ts.iter_mut().take(n.min(16)) {
        let th = rt::thread::spawn_with_stack(STACK, move || {
            while GATE.load(Ordering::Acquire) == 0 {
                if rt::sys::park(&GATE, 0, abi::TIMEOUT_NEVER).is_err() {
                    return -1;
                }
            }
            spin_ns(spin_ns_each, tsc_hz);
            0
        })
        .ctx("spawn spinner")?;
        *t = Some(th);
    }
    GATE.store(1, Ordering::Release);
    rt::sys::unpark(&GATE, u64::from(u32::MAX)).ctx("open gate")?;
    let mut union = 0;
    for t in ts.iter_mut() {
        if let Some(mut t) = t.take() {
            ensure!(
                t.join().ctx("join spinner")? == 0,
                "a spinner failed to park"
            );
            union |= t.cpu_record().ctx("cpu-record")?.0;
            t.close().ctx("close spinner")?;
        }
    }
    Ok(union)
}

/// Submits `op` on `cap` with raw arguments and waits for it: the result,
/// or the error its completion carries. For hostile tests that pass
/// arguments no typed wrapper would.
pub fn raw_call(op: abi::op::Op, cap: u32, args: &[u64]) -> Result<i64, Error> {
    rt::sys::check(&rt::sys::call(rt::sys::sqe(op, cap, args)))
}

/// Counts the checks of a hostile smoke and builds failures that name the
/// case (`<what> <case>: got <answer>`).
#[derive(Default)]
pub struct Checks {
    /// Checks made so far.
    pub count: u32,
}

impl Checks {
    /// `got` must be exactly `Err(want)`.
    pub fn err(
        &mut self,
        what: &str,
        case: &str,
        got: Result<i64, Error>,
        want: Error,
    ) -> Result<(), Fail> {
        self.one_of(what, case, got, &[want], false)
    }

    /// `got` must be `Err(e)` for one of `wants`, or (with `ok_too`) any
    /// success. For cases the ABI leaves open (a zero-length access, an
    /// unpark of an unmapped word).
    pub fn one_of(
        &mut self,
        what: &str,
        case: &str,
        got: Result<i64, Error>,
        wants: &[Error],
        ok_too: bool,
    ) -> Result<(), Fail> {
        self.count += 1;
        let fine = match got {
            Ok(_) => ok_too,
            Err(e) => wants.contains(&e),
        };
        if !fine {
            fail!("{} {}: got {:?}", what, case, got);
        }
        Ok(())
    }

    /// `got` must succeed.
    pub fn ok(&mut self, what: &str, case: &str, got: Result<i64, Error>) -> Result<i64, Fail> {
        self.count += 1;
        match got {
            Ok(v) => Ok(v),
            Err(e) => fail!("{} {}: got {}", what, case, e.name()),
        }
    }
}

/// Waits for child `c` to end and checks how: `want` exactly.
pub fn expect_end(
    c: &rt::process::Child,
    what: &str,
    want: (abi::op::ExitKind, i64),
) -> Result<(), Fail> {
    let got = c.wait().ctx("wait child")?;
    ensure!(
        got == want,
        "{}: child ended {:?}, want {:?}",
        what,
        got,
        want
    );
    Ok(())
}

/// One named step of a smoke that goes on after a failed step.
pub type Step = (&'static str, fn(&Args) -> Result<(), Fail>);

/// Runs every step, even after one failed (so one known defect does not
/// hide the others): each failing step prints
/// `<name>: step <step> FAIL <reason>`, and the verdict line carries the
/// first failure. The exit status as in [`run`].
pub fn run_steps(name: &str, args: &Args, steps: &[Step]) -> i64 {
    let mut first: Option<(&str, Fail)> = None;
    for (step, body) in steps {
        if let Err(f) = body(args) {
            println!("{}: step {} FAIL {}", name, step, f.0.as_str());
            if first.is_none() {
                first = Some((step, f));
            }
        }
    }
    match first {
        None => {
            println!("SMOKE {} PASS", name);
            0
        }
        Some((step, f)) => {
            println!("SMOKE {} FAIL reason={}: {}", name, step, f.0.as_str());
            1
        }
    }
}
