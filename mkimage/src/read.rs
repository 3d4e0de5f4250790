//! Reading an input file safely: regular files only, size checked first.
//!
//! mkimage reads manifests, program ELFs and initrds named on its command
//! line or found in a directory. A FIFO would block the read forever, a
//! device such as `/dev/zero` (or a link to it) never ends, and a huge
//! file would be read into memory whole before any check. So the path is
//! checked with `stat` (following links) before it is opened, the open is
//! non-blocking where the platform allows it, the opened file is checked
//! again, and at most `limit + 1` bytes are ever read.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use crate::diag::Problem;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The path does not exist.
    NotFound,
    /// Not a regular file (a directory, FIFO, socket or device).
    NotRegular(&'static str),
    /// Larger than the limit.
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// Any other I/O error.
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => write!(f, "cannot read: no such file"),
            ReadError::NotRegular(what) => {
                write!(f, "cannot read: {what}, not a regular file")
            }
            ReadError::TooLarge { size, limit } => write!(
                f,
                "cannot read: {size} bytes, more than the limit of {limit} bytes"
            ),
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// The error as a whole-file problem of `shown`.
    pub fn problem(&self, shown: &str) -> Problem {
        Problem::file(shown, self.to_string())
    }
}

/// What kind of non-regular file `t` is.
fn kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Checks that `meta` is a regular file of at most `limit` bytes.
fn check(meta: &std::fs::Metadata, limit: u64) -> Result<(), ReadError> {
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    Ok(())
}

/// Opens without blocking on a FIFO swapped in after the `stat` check.
fn open(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        /// `O_NONBLOCK` from Linux's asm-generic/fcntl.h (x86 and arm).
        const O_NONBLOCK: i32 = 0o4000;
        opts.custom_flags(O_NONBLOCK);
    }
    opts.open(path)
}

/// Reads the regular file at `path` (links followed) if it holds at most
/// `limit` bytes.
pub fn regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    };
    check(&std::fs::metadata(path).map_err(io_err)?, limit)?;
    let file = open(path).map_err(io_err)?;
    check(&file.metadata().map_err(io_err)?, limit)?;
    let mut bytes = Vec::new();
    // The file may grow between the check and the read: never read more
    // than one byte past the limit.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_and_directories() {
        assert!(matches!(
            regular_file(Path::new("/dev/zero"), 1 << 20),
            Err(ReadError::NotRegular("a character device"))
        ));
        assert!(matches!(
            regular_file(Path::new("/"), 1 << 20),
            Err(ReadError::NotRegular("a directory"))
        ));
        assert!(matches!(
            regular_file(Path::new("/nonexistent/x"), 1),
            Err(ReadError::NotFound)
        ));
    }

    #[test]
    fn size_limit() {
        let dir = std::env::temp_dir().join(format!("mkimage-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let f = dir.join("f");
        std::fs::write(&f, [7u8; 10]).expect("write");
        assert_eq!(regular_file(&f, 10).expect("at the limit"), [7u8; 10]);
        assert!(matches!(
            regular_file(&f, 9),
            Err(ReadError::TooLarge { size: 10, limit: 9 })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
