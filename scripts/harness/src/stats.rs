//! Small statistics: medians, speedups and bootstrap intervals.
//!
//! The benchmark's verdict is on medians; its intervals are percentile
//! bootstrap intervals: each group of timed runs (one CPU count's guest
//! runs, or one worker count's native runs) is resampled with replacement
//! to its own size, the statistic is recomputed from the resampled groups'
//! medians, and the 2.5th and 97.5th percentiles of [`BOOTSTRAP_ITERATIONS`]
//! such values bound the 95% interval. The generator is a fixed-seed
//! SplitMix64, so the same runs always give the same interval.

use std::collections::BTreeMap;

/// The median of `values` (mean of the middle two for an even count);
/// `None` when empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Speedup per CPU count: `base / t[n]`, where `base` is the time at 1 CPU.
/// Counts without a positive time, or all of them when the 1-CPU time is
/// missing, are left out.
pub fn speedups(median_ms: &BTreeMap<u32, f64>) -> BTreeMap<u32, f64> {
    let Some(&base) = median_ms.get(&1) else {
        return BTreeMap::new();
    };
    median_ms
        .iter()
        .filter(|(_, &t)| t > 0.0 && t.is_finite() && base.is_finite())
        .map(|(&n, &t)| (n, base / t))
        .collect()
}

/// Resamples per interval.
pub const BOOTSTRAP_ITERATIONS: usize = 10_000;
/// The generator's fixed seed.
pub const BOOTSTRAP_SEED: u64 = 0x5eed_b007_57a7_2026;
/// The interval's coverage.
pub const BOOTSTRAP_LEVEL: f64 = 0.95;

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, good enough to pick
/// resample indices, and identical on every host.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index in `0..n` (`n > 0`); the modulo bias is below 2^-50 for the
    /// group sizes here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The `q` quantile (0..=1) of sorted `v`, linearly interpolated.
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    if lo == hi {
        v[lo]
    } else {
        v[lo] + (v[hi] - v[lo]) * frac
    }
}

/// A percentile bootstrap interval at [`BOOTSTRAP_LEVEL`] for a statistic
/// of the groups' medians: `stat` gets one median per group (in order) and
/// returns the value, or `None` when undefined (a zero time). `None` when a
/// group is empty or no resample gave a finite value.
pub fn bootstrap_interval(
    groups: &[&[f64]],
    iterations: usize,
    seed: u64,
    stat: impl Fn(&[f64]) -> Option<f64>,
) -> Option<(f64, f64)> {
    if groups.is_empty() || groups.iter().any(|g| g.is_empty()) || iterations == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut values = Vec::with_capacity(iterations);
    let mut medians = vec![0.0; groups.len()];
    let mut sample = Vec::new();
    for _ in 0..iterations {
        for (g, m) in groups.iter().zip(medians.iter_mut()) {
            sample.clear();
            sample.extend((0..g.len()).map(|_| g[rng.below(g.len())]));
            *m = median(&sample)?;
        }
        if let Some(v) = stat(&medians).filter(|v| v.is_finite()) {
            values.push(v);
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let tail = (1.0 - BOOTSTRAP_LEVEL) / 2.0;
    Some((
        quantile_sorted(&values, tail),
        quantile_sorted(&values, 1.0 - tail),
    ))
}

/// `a / b` when `b` is a positive finite time.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && b.is_finite() && a.is_finite()).then(|| a / b)
}

/// The interval of the speedup `median(base) / median(other)` (base: the
/// 1-CPU runs, other: the N-CPU runs), with the fixed seed.
pub fn speedup_interval(base: &[f64], other: &[f64]) -> Option<(f64, f64)> {
    bootstrap_interval(&[base, other], BOOTSTRAP_ITERATIONS, BOOTSTRAP_SEED, |m| {
        ratio(m[0], m[1])
    })
}

/// The interval of the guest speedup over the native speedup,
/// `(median(g1) / median(gn)) / (median(n1) / median(nn))`.
pub fn speedup_ratio_interval(
    guest_base: &[f64],
    guest_other: &[f64],
    native_base: &[f64],
    native_other: &[f64],
) -> Option<(f64, f64)> {
    bootstrap_interval(
        &[guest_base, guest_other, native_base, native_other],
        BOOTSTRAP_ITERATIONS,
        BOOTSTRAP_SEED,
        |m| ratio(ratio(m[0], m[1])?, ratio(m[2], m[3])?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, 100.0, 2.0]), Some(2.0));
    }

    #[test]
    fn speedup_math() {
        let m: BTreeMap<u32, f64> = [(1, 1000.0), (2, 500.0), (4, 400.0)].into();
        let s = speedups(&m);
        assert_eq!(s[&1], 1.0);
        assert_eq!(s[&2], 2.0);
        assert_eq!(s[&4], 2.5);
        let no_base: BTreeMap<u32, f64> = [(2, 500.0)].into();
        assert!(speedups(&no_base).is_empty());
        let zero: BTreeMap<u32, f64> = [(1, 10.0), (2, 0.0)].into();
        assert!(!speedups(&zero).contains_key(&2));
    }

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        let mut r = SplitMix64::new(7);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }

    #[test]
    fn bootstrap_contains_the_median_and_is_deterministic() {
        let one = [
            6118.0, 5588.0, 6882.0, 5322.0, 5171.0, 6854.0, 5739.0, 7103.0, 6730.0,
        ];
        let two = [
            2978.0, 2803.0, 3318.0, 3779.0, 3394.0, 3564.0, 2779.0, 2684.0, 2674.0,
        ];
        let point = median(&one).unwrap() / median(&two).unwrap();
        let (lo, hi) = speedup_interval(&one, &two).expect("an interval");
        assert!(lo <= point && point <= hi, "{lo} <= {point} <= {hi}");
        assert!(lo < hi, "spread runs give a real interval");
        assert!(lo > 1.0 && hi < 3.5, "{lo}..{hi}");
        assert_eq!(speedup_interval(&one, &two), Some((lo, hi)));
        let other_seed = bootstrap_interval(&[&one, &two], BOOTSTRAP_ITERATIONS, 99, |m| {
            ratio(m[0], m[1])
        });
        assert!(other_seed.is_some());
    }

    #[test]
    fn identical_runs_give_a_point_interval() {
        let (lo, hi) = speedup_interval(&[1000.0; 6], &[500.0; 6]).expect("an interval");
        assert_eq!(lo, hi);
        assert_eq!(lo, 2.0);
        let (rlo, rhi) =
            speedup_ratio_interval(&[1000.0; 3], &[500.0; 3], &[900.0; 3], &[600.0; 3])
                .expect("an interval");
        assert_eq!(rlo, rhi);
        assert!((rlo - 2.0 / 1.5).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_edge_cases() {
        assert_eq!(speedup_interval(&[], &[1.0]), None);
        assert_eq!(speedup_interval(&[1.0], &[0.0]), None);
        assert_eq!(bootstrap_interval(&[], 10, 1, |_| Some(1.0)), None);
        assert_eq!(quantile_sorted(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile_sorted(&[0.0, 10.0], 0.25), 2.5);
    }
}
