//! Lock statistics (feature `lockstat`): acquisitions, contended
//! acquisitions and spins, per lock class and per CPU.
//!
//! Each CPU counts into its own row (a cache-line-aligned array of every
//! class's counters), so counting never makes a line bounce between CPUs;
//! the row is chosen by `arch::percpu::cpu_id_checked`, and the few
//! acquisitions made while a CPU may run without its per-CPU block (boot,
//! AP bring-up) count in row 0 with the same relaxed atomics. A `LOCKSTAT`
//! line sums the rows. Without the feature, [`record`] is empty and
//! [`print`] prints nothing. `Op::LockStat` (cap::ops::io) lets a program
//! holding the stats capability zero the counters ([`reset`]) and print
//! them ([`print_timed`]) around its timed section.

#[cfg(feature = "lockstat")]
mod on {
    use core::sync::atomic::{AtomicU64, Ordering};

    use super::super::class::{LockClass, COUNT, NAMES};
    use crate::smp::MAX_CPUS;

    struct Counters {
        acquires: AtomicU64,
        contended: AtomicU64,
        spins: AtomicU64,
    }

    #[repr(C, align(64))]
    struct Row([Counters; COUNT]);

    #[allow(clippy::declare_interior_mutable_const)]
    const ZERO: Counters = Counters {
        acquires: AtomicU64::new(0),
        contended: AtomicU64::new(0),
        spins: AtomicU64::new(0),
    };
    #[allow(clippy::declare_interior_mutable_const)]
    const ROW: Row = Row([ZERO; COUNT]);
    static ROWS: [Row; MAX_CPUS] = [ROW; MAX_CPUS];

    #[inline(always)]
    pub fn record<C: LockClass>(contended: bool, spins: u64) {
        let cpu = crate::arch::percpu::cpu_id_checked().unwrap_or(0);
        let c = &ROWS[cpu].0[C::INDEX];
        c.acquires.fetch_add(1, Ordering::Relaxed);
        if contended {
            c.contended.fetch_add(1, Ordering::Relaxed);
            c.spins.fetch_add(spins, Ordering::Relaxed);
        }
    }

    /// (acquires, contended, spins) of class `index`, summed over CPUs.
    pub fn totals(index: usize) -> (u64, u64, u64) {
        ROWS.iter().fold((0, 0, 0), |(a, c, s), row| {
            let k = &row.0[index];
            (
                a + k.acquires.load(Ordering::Relaxed),
                c + k.contended.load(Ordering::Relaxed),
                s + k.spins.load(Ordering::Relaxed),
            )
        })
    }

    pub fn reset() {
        for row in &ROWS {
            for k in &row.0 {
                k.acquires.store(0, Ordering::Relaxed);
                k.contended.store(0, Ordering::Relaxed);
                k.spins.store(0, Ordering::Relaxed);
            }
        }
    }

    pub fn print(timed_run: Option<u64>) {
        for (i, name) in NAMES.iter().enumerate() {
            let (a, c, s) = totals(i);
            match timed_run {
                None => kprintln!("LOCKSTAT name={name} acquires={a} contended={c} spins={s}"),
                Some(run) => kprintln!(
                    "LOCKSTAT name={name} acquires={a} contended={c} spins={s} section=timed run={run}"
                ),
            }
        }
    }
}

/// Counts one acquisition of a lock of class `C` (contended: the first
/// try failed; `spins`: how often it looked again before it got it).
#[inline(always)]
pub fn record<C: super::LockClass>(contended: bool, spins: u64) {
    #[cfg(feature = "lockstat")]
    on::record::<C>(contended, spins);
    #[cfg(not(feature = "lockstat"))]
    let _ = (contended, spins);
}

/// Whether lock statistics are built in (feature `lockstat`).
pub const ENABLED: bool = cfg!(feature = "lockstat");

/// Zeroes every counter (for a caller that wants one section's figures,
/// e.g. a benchmark's timed section, through `Op::LockStat`). Racy against
/// concurrent counting by design: counts made during the reset may survive
/// it.
pub fn reset() {
    #[cfg(feature = "lockstat")]
    on::reset();
}

/// Prints one `LOCKSTAT name=<class> acquires=<n> contended=<n> spins=<n>`
/// line per class (CONTRACTS.md section 4); nothing without the feature.
pub fn print() {
    #[cfg(feature = "lockstat")]
    on::print(None);
}

/// The same lines for a program's timed section (`Op::LockStat`), with the
/// trailing fields ` section=timed run=<run>`; nothing without the
/// feature. Bounded: one line per lock class.
pub fn print_timed(run: u64) {
    #[cfg(feature = "lockstat")]
    on::print(Some(run));
    #[cfg(not(feature = "lockstat"))]
    let _ = run;
}
