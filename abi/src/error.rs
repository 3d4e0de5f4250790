//! Error codes returned to user space in a completion's `result` (negated).

/// Why an operation failed. A completion carries `-(code as i64)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// The capability slot is empty or out of range.
    BadSlot = 1,
    /// The opcode is unknown.
    BadOpcode = 2,
    /// The slot holds a capability of another kind: permission denied.
    Denied = 3,
    /// A user pointer or length does not lie in mapped user memory.
    BadAddress = 4,
    /// An argument is out of range.
    Invalid = 5,
    /// The kernel ran out of memory or table space.
    NoMemory = 6,
    /// No program of that name in the initrd.
    NotFound = 7,
    /// The deadline passed first.
    TimedOut = 8,
    /// The referenced thread or process is gone (stale reference).
    Stale = 9,
    /// Someone else already waits on that object.
    Busy = 10,
    /// The program image is not a valid ELF for this kernel.
    BadImage = 11,
}

impl Error {
    /// All codes, for round-trip checks.
    pub const ALL: [Error; 11] = [
        Error::BadSlot,
        Error::BadOpcode,
        Error::Denied,
        Error::BadAddress,
        Error::Invalid,
        Error::NoMemory,
        Error::NotFound,
        Error::TimedOut,
        Error::Stale,
        Error::Busy,
        Error::BadImage,
    ];

    /// The value placed in a completion's `result`.
    pub const fn as_result(self) -> i64 {
        -(self as i64)
    }

    /// Decodes a negative `result`; `None` for success values and unknown codes.
    pub fn from_result(result: i64) -> Option<Error> {
        let code = result.checked_neg()?;
        Self::ALL.iter().copied().find(|e| *e as i64 == code)
    }

    /// A short lowercase name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Error::BadSlot => "bad-slot",
            Error::BadOpcode => "bad-opcode",
            Error::Denied => "denied",
            Error::BadAddress => "bad-address",
            Error::Invalid => "invalid",
            Error::NoMemory => "no-memory",
            Error::NotFound => "not-found",
            Error::TimedOut => "timed-out",
            Error::Stale => "stale",
            Error::Busy => "busy",
            Error::BadImage => "bad-image",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for e in Error::ALL {
            assert_eq!(Error::from_result(e.as_result()), Some(e));
        }
        assert_eq!(Error::from_result(0), None);
        assert_eq!(Error::from_result(5), None);
        assert_eq!(Error::from_result(i64::MIN), None);
    }
}
