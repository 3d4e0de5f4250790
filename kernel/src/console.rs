//! The serial console: `kprint!`/`kprintln!` and whole-line writes.
//!
//! One lock serializes all output so lines from different CPUs never mix.
//! Each protocol line (CONTRACTS.md section 4) is written under one lock
//! hold, so it reaches the host whole.

use core::fmt::{self, Write};

use crate::arch;
use crate::sync::IrqMutex;

static CONSOLE: IrqMutex<Serial> = IrqMutex::new(Serial);

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
