//! `ringbench`: the kernel-path scaling workload (`[workload] kind =
//! "ring"`, docs/manifest.md; CONTRACTS.md sections 4 and 5).
//!
//! As the parent (`ringbench parent ROUNDS NOPS TIMERS PINGPONGS WORKERS
//! MODE REPEAT`, started by the init service with the console, timer,
//! spawner and stats capabilities) it runs REPEAT timed runs. In each, W
//! workers each run ROUNDS rounds of: one batch of NOPS `Nop`s and TIMERS
//! zero-length `TimerSleep`s (one `cap_enter`), then PINGPONGS park/unpark
//! round trips with the worker's own partner thread. Every operation is
//! tagged and checked off exactly once ([`ringbench::ledger`]); a worker
//! ends with its verified operation count (its partner's included) or a
//! negative [`ringbench::status`] code. The parent prints one `WORKER`
//! line per worker and one `SCALE` line (with `kind=ring ops=<n>
//! ops_per_s=<n>`), and exits 0 iff every worker completed exactly
//! `ROUNDS * (NOPS + TIMERS + 4 * PINGPONGS)` operations.
//!
//! - process mode: each worker is a process `ringbench worker IDX ROUNDS
//!   NOPS TIMERS PINGPONGS` holding only a timer capability; it starts its
//!   partner thread, runs, joins the partner and exits with the sum.
//! - thread mode: every worker and partner is a thread of the parent,
//!   created before the timed section and held at a start gate.
//!
//! Nothing is printed while the workers run.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod parent;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod worker;

#[cfg(target_os = "none")]
rt::entry!(main);

#[cfg(target_os = "none")]
fn main(args: &rt::Args) -> i64 {
    match args.get(0) {
        Some("worker") => worker::process_main(args),
        Some("parent") => parent::run(args),
        _ => {
            rt::println!(
                "ringbench: usage: ringbench parent ROUNDS NOPS TIMERS PINGPONGS WORKERS MODE REPEAT"
            );
            2
        }
    }
}

/// The host build (for `cargo test` at the workspace level) has no main
/// program: the library carries the tests.
#[cfg(not(target_os = "none"))]
fn main() {}
