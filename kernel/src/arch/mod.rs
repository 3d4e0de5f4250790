//! The architecture layer. One backend today (x86-64), re-exported so the
//! rest of the kernel writes `arch::` only.

mod x86_64;

pub use self::x86_64::*;
