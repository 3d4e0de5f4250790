//! The `WORKER` and `SCALE` lines of a ring run (CONTRACTS.md section 4),
//! with the ring fields appended (parsers accept further fields): a
//! failed worker's WORKER line ends with `error=<reason>`, its run's SCALE
//! line has `ok=0`.

use core::fmt;

use ringbench::status;
use rt::Error;

/// Cycles to whole milliseconds at `hz`.
pub fn cycles_to_ms(cycles: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    (u128::from(cycles) * 1000 / u128::from(hz)) as u64
}

/// Operations per second for `ops` in `cycles` at `hz`.
pub fn ops_per_s(ops: u64, cycles: u64, hz: u64) -> u64 {
    if cycles == 0 {
        return 0;
    }
    (u128::from(ops) * u128::from(hz) / u128::from(cycles)) as u64
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

/// Why a worker produced no (or a wrong) count.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// Ended with a negative status ([`ringbench::status`]).
    Status(i64),
    /// Ended by a fault (the value the kernel reported).
    Faulted(i64),
    /// Killed.
    Killed,
    /// An end the parent does not know (raw kind).
    UnknownEnd(u64),
    /// Its join failed.
    Join(Error),
    /// It counted a different number of operations than it was given.
    WrongCount(u64),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "exit:{s}:{}", status::describe(*s)),
            Failure::Faulted(v) => write!(f, "fault:{v}"),
            Failure::Killed => f.write_str("killed"),
            Failure::UnknownEnd(k) => write!(f, "end-kind:{k}"),
            Failure::Join(e) => write!(f, "join:{}", e.name()),
            Failure::WrongCount(n) => write!(f, "wrong-count:{n}"),
        }
    }
}

/// One worker's outcome in a timed run.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerResult {
    /// Verified operations of the worker and its partner.
    pub count: u64,
    pub start: u64,
    pub end: u64,
    /// CPUs the worker ran on (process mode: the whole worker process).
    pub cpus: u64,
    /// Thread mode: CPUs the partner ran on.
    pub partner_cpus: Option<u64>,
    /// Thread mode: reparks and park timeouts of both sides.
    pub reparks: Option<(u64, u64)>,
    /// Why it has no count, if it failed.
    pub failure: Option<Failure>,
}

impl WorkerResult {
    /// Records a worker's status against the operations it was given.
    pub fn set_status(&mut self, status: i64, expected: u64) {
        match u64::try_from(status) {
            Ok(n) if n == expected => self.count = n,
            Ok(n) => {
                self.count = n;
                self.failure = Some(Failure::WrongCount(n));
            }
            Err(_) => self.failure = Some(Failure::Status(status)),
        }
    }
}

/// Prints the `WORKER` lines of a run.
pub fn print_workers(results: &[WorkerResult]) {
    for (i, r) in results.iter().enumerate() {
        rt::println!(
            "WORKER idx={} count={} start={} end={} cpus={}{}{}{}",
            i,
            r.count,
            r.start,
            r.end,
            CpuList(r.cpus),
            PartnerField(r.partner_cpus),
            Repark(r.reparks),
            ErrorField(r.failure)
        );
    }
}

struct PartnerField(Option<u64>);

impl fmt::Display for PartnerField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, " partner_cpus={}", CpuList(m)),
            None => Ok(()),
        }
    }
}

struct Repark(Option<(u64, u64)>);

impl fmt::Display for Repark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((r, t)) => write!(f, " reparks={r} timeouts={t}"),
            None => Ok(()),
        }
    }
}

struct ErrorField(Option<Failure>);

impl fmt::Display for ErrorField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(f, " error={e}"),
            None => Ok(()),
        }
    }
}
