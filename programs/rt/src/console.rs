//! Console output, one line per `ConsoleWrite`.
//!
//! The kernel writes each submission as one unit, so formatting a whole
//! line into a stack buffer ([`LineBuf`]) and writing it at once keeps lines
//! of different programs and threads from interleaving. Lines longer than
//! [`LINE_MAX`] are cut (and end in `...`).

use abi::caps::CapKind;
use abi::error::Error;
use core::fmt;

/// Longest line written, newline included.
pub const LINE_MAX: usize = 1024;

/// A fixed buffer that formats text and silently truncates.
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; N],
            len: 0,
            truncated: false,
        }
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text so far as `&str` (a cut may split a character: the
    /// partial character is left out).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Whether text was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Ends the text with a newline, replacing the tail with `...\n` if it
    /// was cut or there is no room.
    pub fn finish_line(&mut self) -> &[u8] {
        if self.truncated || self.len == N {
            let keep = N.saturating_sub(4).min(self.len);
            self.len = keep;
            for b in b"...\n" {
                if self.len < N {
                    self.buf[self.len] = *b;
                    self.len += 1;
                }
            }
        } else {
            self.buf[self.len] = b'\n';
            self.len += 1;
        }
        self.as_bytes()
    }
}

impl<const N: usize> fmt::Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

/// The process's console slot, if it holds one.
pub fn slot() -> Option<u32> {
    crate::args::args()?.find_cap(CapKind::Console)
}

/// Formats one line and writes it with one `ConsoleWrite`.
pub fn write_line(args: fmt::Arguments) -> Result<(), Error> {
    let cap = slot().ok_or(Error::Denied)?;
    let mut line = LineBuf::<LINE_MAX>::new();
    let _ = fmt::write(&mut line, args);
    crate::sys::console_write(cap, line.finish_line()).map(drop)
}

/// Like [`write_line`], ignoring failure (no console, for instance).
pub fn println_fmt(args: fmt::Arguments) {
    let _ = write_line(args);
}

/// Prints one line on the console (if the program holds one).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::println_fmt(format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn formats_a_line() {
        let mut b = LineBuf::<64>::new();
        write!(b, "SCALE run={} ok={}", 1, 0).unwrap();
        assert_eq!(b.finish_line(), b"SCALE run=1 ok=0\n");
    }

    #[test]
    fn truncates_with_marker() {
        let mut b = LineBuf::<8>::new();
        write!(b, "0123456789").unwrap();
        assert!(b.truncated());
        assert_eq!(b.finish_line(), b"0123...\n");
        let mut b = LineBuf::<8>::new();
        write!(b, "01234567").unwrap();
        assert_eq!(b.finish_line(), b"0123...\n");
        let mut b = LineBuf::<8>::new();
        write!(b, "0123456").unwrap();
        assert_eq!(b.finish_line(), b"0123456\n");
    }

    #[test]
    fn as_str_drops_partial_char() {
        let mut b = LineBuf::<3>::new();
        write!(b, "aü").unwrap(); // 'ü' is two bytes: fits
        assert_eq!(b.as_str(), "aü");
        let mut b = LineBuf::<2>::new();
        write!(b, "aü").unwrap();
        assert_eq!(b.as_str(), "a");
    }
}
