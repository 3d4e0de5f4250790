//! The serial console: `kprint!`/`kprintln!` and whole-line writes.
//!
//! One lock serializes all output so lines from different CPUs never mix.
//! Each protocol line (CONTRACTS.md section 4) is written under one lock
//! hold, so it reaches the host whole. Strings that come from the manifest
//! go through [`Escaped`], so they can never end a line or forge one.

use core::fmt::{self, Write};

use crate::arch;
use crate::sync::IrqMutex;

static CONSOLE: IrqMutex<Serial, crate::sync::class::Console> = IrqMutex::new(Serial);

struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        arch::serial::write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints formatted text under the console lock.
pub fn print(args: fmt::Arguments<'_>) {
    let mut c = CONSOLE.lock();
    let _ = c.write_fmt(args);
}

/// Writes raw bytes (from user space) under the console lock.
pub fn write_bytes(bytes: &[u8]) {
    let _c = CONSOLE.lock();
    arch::serial::write_bytes(bytes);
}

/// Prints on the panic path: takes the lock if it can, and writes anyway
/// after a bounded wait (a CPU that panicked while printing holds it).
pub fn print_panic(args: fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(mut c) = CONSOLE.try_lock() {
            let _ = c.write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    let _ = Serial.write_fmt(args);
}

/// Displays a string from an untrusted source (the manifest) as one
/// protocol token: bytes outside `0x21..=0x7e`, and the backslash, are
/// written as `\xNN`. The manifest rules already allow only plain names;
/// this is the second line of defence, for whatever reaches the console.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0.as_bytes();
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if (0x21..=0x7e).contains(&b) && b != b'\\' {
                continue;
            }
            // Plain runs are whole ASCII characters, so these slices fall
            // on character boundaries.
            f.write_str(self.0.get(start..i).unwrap_or(""))?;
            write!(f, "\\x{b:02x}")?;
            start = i + 1;
        }
        f.write_str(self.0.get(start..).unwrap_or(""))
    }
}

/// `print!` for the kernel.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// `println!` for the kernel.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
