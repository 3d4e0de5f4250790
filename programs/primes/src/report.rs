//! The `WORKER` and `SCALE` lines (CONTRACTS.md section 4).

use core::fmt;

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

/// One worker's outcome in a timed run.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerResult {
    pub count: u64,
    pub start: u64,
    pub end: u64,
    pub cpus: u64,
}

/// Prints the `WORKER` lines of a run.
pub fn print_workers(results: &[WorkerResult]) {
    for (i, r) in results.iter().enumerate() {
        rt::println!(
            "WORKER idx={} count={} start={} end={} cpus={}",
            i,
            r.count,
            r.start,
            r.end,
            CpuList(r.cpus)
        );
    }
}
