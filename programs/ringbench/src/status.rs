//! Worker exit statuses: an operation count (never negative), or one of the
//! negative codes below, which the parent reports by name and never counts.

use crate::ledger::Problem;

/// The worker's own arguments did not parse.
pub const BAD_ARGUMENTS: i64 = -1;
/// Timers in the mix but no timer capability.
pub const NO_TIMER: i64 = -2;
/// A submitted operation never completed.
pub const LOST: i64 = -3;
/// A completion nobody submitted (or from an earlier batch).
pub const STRAY: i64 = -4;
/// An operation completed twice.
pub const DOUBLE: i64 = -5;
/// An operation completed with an error or an impossible result.
pub const OP_FAILED: i64 = -6;
/// The submission queue had no room for a batch.
pub const SQ_FULL: i64 = -7;
/// `cap_enter` itself failed.
pub const ENTER: i64 = -8;
/// The partner thread could not be started.
pub const PARTNER_SPAWN: i64 = -9;
/// The partner thread failed or could not be joined.
pub const PARTNER_FAILED: i64 = -10;
/// Completions were left in the ring after the last operation.
pub const EXTRA: i64 = -11;

/// The parent's exit status when a worker failed (a wrong total is 1).
pub const PARENT_WORKER_FAILED: i64 = 3;

/// A worker's status for a ledger problem.
pub const fn of_problem(p: Problem) -> i64 {
    match p {
        Problem::Lost { .. } => LOST,
        Problem::Stray { .. } => STRAY,
        Problem::Double { .. } => DOUBLE,
        Problem::Failed { .. } => OP_FAILED,
        Problem::SqFull => SQ_FULL,
        Problem::Enter => ENTER,
        Problem::Extra => EXTRA,
    }
}

/// What a negative status means, as one token for a console line.
pub fn describe(status: i64) -> &'static str {
    match status {
        BAD_ARGUMENTS => "bad-arguments",
        NO_TIMER => "no-timer-capability",
        LOST => "lost-completion",
        STRAY => "stray-completion",
        DOUBLE => "double-completion",
        OP_FAILED => "operation-failed",
        SQ_FULL => "sq-full",
        ENTER => "enter-failed",
        PARTNER_SPAWN => "partner-spawn",
        PARTNER_FAILED => "partner-failed",
        EXTRA => "extra-completion",
        _ => "unknown-status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_has_a_named_negative_status() {
        for p in [
            Problem::Lost { missing: 1 },
            Problem::Stray { user_data: 1 },
            Problem::Double { user_data: 1 },
            Problem::Failed {
                user_data: 1,
                result: -1,
            },
            Problem::SqFull,
            Problem::Enter,
            Problem::Extra,
        ] {
            let s = of_problem(p);
            assert!(s < 0);
            assert_ne!(describe(s), "unknown-status");
        }
        assert_eq!(describe(0), "unknown-status");
    }
}
