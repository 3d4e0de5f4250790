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
