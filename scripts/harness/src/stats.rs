//! Small statistics: medians and speedups.

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
}
