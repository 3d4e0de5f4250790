//! Worker exit statuses and what they mean.
//!
//! A worker (process or thread) ends with its count, which is never
//! negative, or with one of the negative codes below. The parent turns a
//! negative status into a named failure, never into a count.

use workload::WorkloadError;

/// The worker's own arguments did not parse.
pub const BAD_ARGUMENTS: i64 = -1;
/// `hi` above what the workload counts (2^40).
pub const HI_TOO_LARGE: i64 = -2;
/// Zero workers.
pub const NO_WORKERS: i64 = -3;
/// A worker index not below the worker count.
pub const WORKER_OUT_OF_RANGE: i64 = -4;
/// A count that does not fit a status (cannot happen below 2^40).
pub const COUNT_TOO_LARGE: i64 = -5;

/// The parent's exit status when a worker failed (a wrong total is 1).
pub const PARENT_WORKER_FAILED: i64 = 3;

// The manifest rule `hi <= 2^40` (abi) is exactly what the workload counts.
const _: () = assert!(abi::limits::HI_MAX == workload::MAX_HI);

/// A worker's status for its counting result.
pub fn of_count(r: Result<u64, WorkloadError>) -> i64 {
    match r {
        Ok(n) => i64::try_from(n).unwrap_or(COUNT_TOO_LARGE),
        Err(WorkloadError::HiTooLarge) => HI_TOO_LARGE,
        Err(WorkloadError::NoWorkers) => NO_WORKERS,
        Err(WorkloadError::WorkerOutOfRange) => WORKER_OUT_OF_RANGE,
    }
}

/// What a negative status means, as one token for a console line.
pub fn describe(status: i64) -> &'static str {
    match status {
        BAD_ARGUMENTS => "bad-arguments",
        HI_TOO_LARGE => "hi-too-large",
        NO_WORKERS => "no-workers",
        WORKER_OUT_OF_RANGE => "worker-out-of-range",
        COUNT_TOO_LARGE => "count-too-large",
        _ => "unknown-status",
    }
}
