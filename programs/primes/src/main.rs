//! `primes`: the scaling workload (CONTRACTS.md sections 4 and 5).
//!
//! As the parent (`primes parent LO HI EXPECTED WORKERS MODE REPEAT
//! SERIALIZE`, started by the init service with the console, timer,
//! spawner and stats capabilities) it runs REPEAT timed runs. Each run
//! splits `[LO, HI)` among WORKERS workers with `workload::count_worker`,
//! sums their counts, prints one `WORKER` line per worker and one `SCALE`
//! line, and the process exits 0 iff every run's sum equals EXPECTED.
//!
//! - process mode: each worker is a process `primes worker IDX W LO HI`
//!   (no capabilities) that exits with its count as status.
//! - thread mode: each worker is a sibling thread with its own stack, TLS
//!   and scratch, all mapped before the timed section; the threads wait on
//!   a start gate (a park word) so that the timed section holds only the
//!   counting. With SERIALIZE = 1 every worker holds one shared
//!   [`rt::sync::Mutex`] while it counts (a diagnostic the harness must
//!   reject).
//!
//! Workers make no system call and print nothing while they count.
//!
//! A worker that fails (bad arguments, a range the workload cannot count,
//! a fault, a kill) never counts as 0: its status is a negative code from
//! [`status`], the parent prints a line naming the worker and the reason,
//! its run's SCALE line shows `ok=0`, and the parent exits
//! [`status::PARENT_WORKER_FAILED`], so the scenario FAILs.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod parent;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod status;

#[cfg(target_os = "none")]
rt::entry!(main);

#[cfg(target_os = "none")]
fn main(args: &rt::Args) -> i64 {
    match args.get(0) {
        Some("worker") => worker_process(args),
        Some("parent") => parent::run(args),
        _ => {
            rt::println!(
                "primes: usage: primes parent LO HI EXPECTED WORKERS MODE REPEAT SERIALIZE"
            );
            2
        }
    }
}

/// A worker process: `worker IDX W LO HI`; exits with its count, or with
/// a negative [`status`] code that the parent reports as a failure.
#[cfg(target_os = "none")]
fn worker_process(args: &rt::Args) -> i64 {
    let (Some(idx), Some(w), Some(lo), Some(hi)) = (
        args.get_u64(1),
        args.get_u64(2),
        args.get_u64(3),
        args.get_u64(4),
    ) else {
        return status::BAD_ARGUMENTS;
    };
    let (Ok(idx), Ok(w)) = (u32::try_from(idx), u32::try_from(w)) else {
        return status::BAD_ARGUMENTS;
    };
    // About 114 KiB on the 256 KiB main stack: no mapping needed.
    let mut scratch = workload::Scratch::new();
    status::of_count(workload::count_worker(lo, hi, idx, w, &mut scratch))
}

/// The host build (for `cargo test` at the workspace level) has no main
/// program: the workload's own crate carries the tests.
#[cfg(not(target_os = "none"))]
fn main() {}
