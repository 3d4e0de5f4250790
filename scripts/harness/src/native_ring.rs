//! The native anchor of ring-scale: io_uring NOPs on the host, one ring per
//! thread, timed like the guest's workers (the `io-uring` crate).
//!
//! Each thread sets up its own ring before the clock starts (they meet at
//! a barrier), then submits `ops` NOPs in batches of `batch`, each batch in
//! one `io_uring_enter` that waits for all of it, and checks that every
//! tag comes back exactly once, like the guest's ledger does. The timed
//! span is from the barrier to the last join. io_uring may be missing or
//! forbidden on the host (ENOSYS on old kernels, EPERM under a seccomp
//! policy or `kernel.io_uring_disabled`, common in containers): [`probe`]
//! says so, and the benchmark reports it instead of failing.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use io_uring::{opcode, IoUring};

/// NOPs per native thread per timed run: enough for a run of about a
/// tenth of a second on our host, so the host's noise does not dominate.
pub const NATIVE_RING_OPS: u64 = 1_000_000;

/// Whether io_uring works here; the reason when it does not.
pub fn probe() -> std::result::Result<(), String> {
    match IoUring::new(8) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("io_uring setup failed: {e}")),
    }
}

/// One timed run: `threads` threads, `ops` NOPs each in batches of `batch`
/// (1..=256). Returns the wall time in ms and the verified completions.
pub fn run_once(threads: u32, ops: u64, batch: u32) -> Result<(f64, u64)> {
    if threads == 0 || !(1..=256).contains(&batch) {
        bail!("native ring run with {threads} threads, batch {batch}");
    }
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let b = Arc::clone(&barrier);
            thread::spawn(move || -> Result<u64> {
                let ring = IoUring::new(batch.next_power_of_two().max(8));
                b.wait();
                one_thread(
                    ring.map_err(|e| anyhow!("io_uring setup: {e}"))?,
                    ops,
                    batch,
                )
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow!("native ring thread panicked"))??;
    }
    Ok((start.elapsed().as_secs_f64() * 1e3, total))
}

/// One thread's NOPs; the number of verified completions.
fn one_thread(mut ring: IoUring, ops: u64, batch: u32) -> Result<u64> {
    let mut done = 0u64;
    let mut seq = 0u64;
    while done < ops {
        let n = (ops - done).min(u64::from(batch)) as u32;
        seq += 1;
        for i in 0..n {
            let nop = opcode::Nop::new()
                .build()
                .user_data(seq << 8 | u64::from(i));
            // SAFETY: a NOP references no buffer or file descriptor.
            unsafe { ring.submission().push(&nop) }
                .map_err(|_| anyhow!("submission queue full"))?;
        }
        ring.submit_and_wait(n as usize)?;
        let mut seen = 0u128;
        let mut got = 0;
        for cqe in ring.completion() {
            let ud = cqe.user_data();
            let bit = 1u128 << (ud & 0xff);
            if ud >> 8 != seq || ud & 0xff >= u64::from(n) || seen & bit != 0 {
                bail!("native ring: stray or double completion {ud:#x}");
            }
            if cqe.result() != 0 {
                bail!("native ring: NOP failed with {}", cqe.result());
            }
            seen |= bit;
            got += 1;
        }
        if got != n {
            bail!("native ring: {got} of {n} completions");
        }
        done += u64::from(n);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nops_all_complete_or_io_uring_is_missing() {
        match probe() {
            Ok(()) => {
                for threads in [1, 2, 3] {
                    let (ms, ops) = run_once(threads, 1000, 16).expect("runs");
                    assert_eq!(ops, u64::from(threads) * 1000);
                    assert!(ms >= 0.0);
                }
                // A batch that does not divide the count.
                assert_eq!(run_once(1, 100, 64).expect("runs").1, 100);
            }
            Err(reason) => assert!(reason.contains("io_uring setup failed"), "{reason}"),
        }
        assert!(run_once(0, 10, 1).is_err());
        assert!(run_once(1, 10, 0).is_err());
        assert!(run_once(1, 10, 257).is_err());
    }
}
