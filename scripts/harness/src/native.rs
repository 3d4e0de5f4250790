//! The native comparison: the same workload crate on the host, one
//! `std::thread` per worker, with the same round-robin split as the guest.
//!
//! The timed span is from before the threads are spawned to after the last
//! one is joined, like the guest's timed section; each worker builds its own
//! [`workload::Scratch`] (base primes included) inside the span, as the
//! guest's workers do.

use std::thread;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use workload::{count_worker, Scratch};

/// One native timed run: the total count and its wall time.
pub fn run_once(lo: u64, hi: u64, workers: u32) -> Result<(u64, f64)> {
    if workers == 0 {
        bail!("native run with zero workers");
    }
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            thread::spawn(move || {
                let mut scratch = Box::new(Scratch::new());
                count_worker(lo, hi, w, workers, &mut scratch)
            })
        })
        .collect();
    let mut total = 0u64;
    for h in handles {
        let count = h
            .join()
            .map_err(|_| anyhow!("native worker panicked"))?
            .map_err(|e| anyhow!("native worker: {e:?}"))?;
        total += count;
    }
    Ok((total, start.elapsed().as_secs_f64() * 1e3))
}

/// `runs` native timed runs with `workers` threads: their times in ms.
/// Fails if any total differs from `expected`.
pub fn measure(lo: u64, hi: u64, expected: u64, workers: u32, runs: u32) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let (count, ms) = run_once(lo, hi, workers)?;
        if count != expected {
            bail!("native count {count} != expected {expected} for [{lo}, {hi}) with {workers} threads");
        }
        times.push(ms);
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_counts_match() {
        for w in [1, 2, 3, 8] {
            let (count, ms) = run_once(0, 10_000_000, w).expect("runs");
            assert_eq!(count, 664_579);
            assert!(ms >= 0.0);
        }
        assert!(measure(0, 1_000, 168, 2, 2).is_ok());
        assert!(measure(0, 1_000, 167, 2, 1).is_err());
        assert!(run_once(0, 10, 0).is_err());
    }
}
