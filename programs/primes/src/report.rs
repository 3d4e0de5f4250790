//! The `WORKER` and `SCALE` lines (CONTRACTS.md section 4), and how a
//! failed worker shows in them: an `error=<reason>` field at the end of its
//! WORKER line (parsers accept further fields) and `ok=0` on the SCALE line.

use core::fmt;

use rt::Error;

/// Cycles to whole milliseconds at `hz`.
pub fn cycles_to_ms(cycles: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(cycles) * 1000 / u128::from(hz)) as u64
}

/// Formats a CPU mask as `0,1,3`.
pub struct CpuList(pub u64);

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for cpu in 0..64 {
            if self.0 & (1 << cpu) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{cpu}")?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Formats per-CPU busy deltas in ms as `b0,b1,...`.
pub struct BusyList<'a> {
    pub before: &'a [u64],
    pub after: &'a [u64],
    pub hz: u64,
}

impl fmt::Display for BusyList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (b, a)) in self.before.iter().zip(self.after).enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", cycles_to_ms(a.saturating_sub(*b), self.hz))?;
        }
        Ok(())
    }
}

/// Why a worker produced no count.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// Ended with a negative status (see [`crate::status`]).
    Status(i64),
    /// Ended by a fault (the value the kernel reported).
    Faulted(i64),
    /// Killed.
    Killed,
    /// An end the parent does not know (raw kind).
    UnknownEnd(u64),
    /// Its join failed.
    Join(Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "exit:{s}:{}", crate::status::describe(*s)),
            Failure::Faulted(v) => write!(f, "fault:{v}"),
            Failure::Killed => f.write_str("killed"),
            Failure::UnknownEnd(k) => write!(f, "end-kind:{k}"),
            Failure::Join(e) => write!(f, "join:{}", e.name()),
        }
    }
}

/// One worker's outcome in a timed run.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerResult {
    /// Its count; meaningful only without `failure`.
    pub count: u64,
    pub start: u64,
    pub end: u64,
    pub cpus: u64,
    /// Why it has no count, if it failed.
    pub failure: Option<Failure>,
}

impl WorkerResult {
    /// Records a worker's status: a count, or a failure if negative.
    pub fn set_status(&mut self, status: i64) {
        match u64::try_from(status) {
            Ok(n) => self.count = n,
            Err(_) => self.failure = Some(Failure::Status(status)),
        }
    }
}

/// ` error=<reason>` for a failed worker, nothing otherwise.
struct ErrorField(Option<Failure>);

impl fmt::Display for ErrorField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(f, " error={e}"),
            None => Ok(()),
        }
    }
}

/// Prints the `WORKER` lines of a run.
pub fn print_workers(results: &[WorkerResult]) {
    for (i, r) in results.iter().enumerate() {
        rt::println!(
            "WORKER idx={} count={} start={} end={} cpus={}{}",
            i,
            r.count,
            r.start,
            r.end,
            CpuList(r.cpus),
            ErrorField(r.failure)
        );
    }
}
