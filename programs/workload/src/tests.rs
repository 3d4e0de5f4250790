//! Host tests of the prime counter: known values of pi(x), a naive counter
//! on many small ranges, and the round-robin split over workers.

extern crate std;

use super::*;
use std::boxed::Box;

/// Primes in `[lo, hi)` by trial division; for small ranges only.
fn naive(lo: u64, hi: u64) -> u64 {
    (lo..hi).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// A small deterministic generator (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 16
    }
}

fn scratch() -> Box<Scratch> {
    Box::new(Scratch::new())
}

fn sum_workers(lo: u64, hi: u64, workers: u32, s: &mut Scratch) -> u64 {
    (0..workers)
        .map(|w| count_worker(lo, hi, w, workers, s).expect("valid worker"))
        .sum()
}

#[test]
fn tiny_ranges() {
    assert_eq!(count_range(0, 10), Ok(4));
    assert_eq!(count_range(2, 3), Ok(1));
    assert_eq!(count_range(0, 2), Ok(0));
    assert_eq!(count_range(0, 3), Ok(1));
    assert_eq!(count_range(3, 4), Ok(1));
    assert_eq!(count_range(1, 2), Ok(0));
    assert_eq!(count_range(0, 100), Ok(25));
    assert_eq!(count_range(61, 62), Ok(1));
    assert_eq!(count_range(0, 62), Ok(18));
}

#[test]
fn empty_and_inverted_ranges_count_zero() {
    assert_eq!(count_range(0, 0), Ok(0));
    assert_eq!(count_range(7, 7), Ok(0));
    assert_eq!(count_range(10, 3), Ok(0));
    assert_eq!(count_range(u64::MAX, 0), Ok(0));
    assert_eq!(segment_count(5, 5), 0);
    assert_eq!(segment_count(9, 5), 0);
}

#[test]
fn errors_instead_of_panics() {
    let mut s = scratch();
    assert_eq!(count_range(0, MAX_HI + 1), Err(WorkloadError::HiTooLarge));
    assert_eq!(count_range(0, u64::MAX), Err(WorkloadError::HiTooLarge));
    assert_eq!(
        count_worker(0, 10, 0, 0, &mut s),
        Err(WorkloadError::NoWorkers)
    );
    assert_eq!(
        count_worker(0, 10, 3, 3, &mut s),
        Err(WorkloadError::WorkerOutOfRange)
    );
    assert_eq!(
        count_worker(0, 10, u32::MAX, u32::MAX, &mut s),
        Err(WorkloadError::WorkerOutOfRange)
    );
    // The largest supported hi works (a small range just below it).
    let lo = MAX_HI - 1_000;
    assert_eq!(count_range(lo, MAX_HI), Ok(naive(lo, MAX_HI)));
}

#[test]
fn base_prime_table_is_full_at_the_limit() {
    let mut s = scratch();
    count_worker(MAX_HI - 10, MAX_HI, 0, 1, &mut s).expect("in range");
    assert_eq!(s.base_len, BASE_PRIME_CAPACITY);
    assert_eq!(last_base_prime(&s.half_gaps), 1_048_573);
    let mut t = scratch();
    count_worker(0, 1_000, 0, 1, &mut t).expect("in range");
    assert_eq!(t.base_len, 43_389, "pi(2^19) - 1 odd primes");
}

#[test]
fn pi_of_powers_of_ten() {
    let known = [
        (10, 4),
        (100, 25),
        (1_000, 168),
        (10_000, 1_229),
        (100_000, 9_592),
    ];
    for (x, pi) in known {
        assert_eq!(count_range(0, x), Ok(pi), "pi({x})");
    }
    assert_eq!(count_range(0, 1_000_000), Ok(78_498));
    assert_eq!(count_range(0, 10_000_000), Ok(664_579));
}

#[test]
fn pi_1e8() {
    assert_eq!(count_range(0, 100_000_000), Ok(5_761_455));
}

#[test]
#[ignore = "heavier: about 0.5 s in release"]
fn pi_1e9() {
    assert_eq!(count_range(0, 1_000_000_000), Ok(50_847_534));
}

#[test]
fn known_windows_far_out() {
    // pi(10^10) - pi(10^10 - 10^5) and pi(2^32) - pi(2^32 - 2^16) by naive
    // trial division, checked here against the sieve.
    for (lo, hi) in [
        (10_000_000_000 - 20_000, 10_000_000_000),
        ((1 << 32) - 20_000, 1 << 32),
    ] {
        assert_eq!(count_range(lo, hi), Ok(naive(lo, hi)), "[{lo}, {hi})");
    }
}

#[test]
fn ranges_inside_one_segment() {
    let s0 = SEGMENT_SPAN;
    for (lo, hi) in [
        (1, 60),
        (100, 101),
        (s0 + 1, s0 + 2),
        (s0 + 17, s0 + 4_000),
        (3 * s0 - 500, 3 * s0),
    ] {
        assert_eq!(count_range(lo, hi), Ok(naive(lo, hi)), "[{lo}, {hi})");
    }
}

#[test]
fn random_ranges_across_segment_boundaries_match_naive() {
    let mut rng = Lcg(42);
    let mut s = scratch();
    for _ in 0..200 {
        // A boundary near the middle, the range within +-3000 around it.
        let boundary = (1 + rng.next() % 40) * SEGMENT_SPAN;
        let lo = boundary - rng.next() % 3_000;
        let hi = boundary + rng.next() % 3_000;
        let got = count_worker(lo, hi, 0, 1, &mut s).expect("in range");
        assert_eq!(got, naive(lo, hi), "[{lo}, {hi})");
    }
    for _ in 0..200 {
        let lo = rng.next() % 2_000_000;
        let hi = lo + rng.next() % 2_000;
        let got = count_worker(lo, hi, 0, 1, &mut s).expect("in range");
        assert_eq!(got, naive(lo, hi), "[{lo}, {hi})");
    }
}

#[test]
fn word_edges_match_naive() {
    // Ranges ending and starting on every bit position of a few words.
    let mut s = scratch();
    for lo in 0..140 {
        for hi in [lo, lo + 1, lo + 63, lo + 64, lo + 127, lo + 128, lo + 129] {
            let got = count_worker(lo, hi, 0, 1, &mut s).expect("in range");
            assert_eq!(got, naive(lo, hi), "[{lo}, {hi})");
        }
    }
}

#[test]
fn workers_sum_to_the_total() {
    let mut s = scratch();
    let ranges = [
        (0, 10_000_000),
        (1, 3 * SEGMENT_SPAN + 5),
        (SEGMENT_SPAN - 7, 9 * SEGMENT_SPAN + 11),
        (123_456_789, 133_456_789),
    ];
    for (lo, hi) in ranges {
        let total = count_range(lo, hi).expect("in range");
        for w in 1..=8 {
            assert_eq!(sum_workers(lo, hi, w, &mut s), total, "[{lo}, {hi}) W={w}");
        }
    }
}

#[test]
fn more_workers_than_segments() {
    let mut s = scratch();
    let (lo, hi) = (0, 2 * SEGMENT_SPAN + 1);
    assert_eq!(segment_count(lo, hi), 3);
    let total = count_range(lo, hi).expect("in range");
    assert_eq!(sum_workers(lo, hi, 7, &mut s), total);
    assert_eq!(count_worker(lo, hi, 6, 7, &mut s), Ok(0));
    assert_eq!(sum_workers(0, 10, 256, &mut s), 4);
}

#[test]
fn segment_count_rounds_to_the_grid() {
    assert_eq!(segment_count(0, 1), 1);
    assert_eq!(segment_count(0, SEGMENT_SPAN), 1);
    assert_eq!(segment_count(0, SEGMENT_SPAN + 1), 2);
    assert_eq!(segment_count(SEGMENT_SPAN - 1, SEGMENT_SPAN + 1), 2);
    assert_eq!(segment_count(0, 1_000_000_000), 1_908);
}

#[test]
fn scratch_is_reusable_across_ranges() {
    let mut s = scratch();
    assert_eq!(count_worker(0, 1_000, 0, 1, &mut s), Ok(168));
    let big = (1u64 << 39) + 1_000;
    assert_eq!(
        count_worker(big - 1_000, big, 0, 1, &mut s),
        Ok(naive(big - 1_000, big))
    );
    assert_eq!(count_worker(0, 1_000, 0, 1, &mut s), Ok(168));
}

#[test]
fn scratch_stays_small() {
    assert!(core::mem::size_of::<Scratch>() < 200 * 1024);
}
