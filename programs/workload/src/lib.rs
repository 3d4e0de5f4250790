//! The scaling workload: a deterministic segmented prime counter.
//!
//! Counts the primes in a half-open range `[lo, hi)` with a segmented sieve
//! of Eratosthenes. The same code runs in three places, so it is `no_std`,
//! uses no heap and no `unsafe`:
//!
//! - the kernel-side `primes` user program (x86_64-unknown-none), where every
//!   worker thread or process counts its share with its own [`Scratch`];
//! - the host unit tests below (known values of pi(x) and a naive counter);
//! - the scale harness's native comparison (one `std::thread` per worker).
//!
//! # How the range is split
//!
//! The range is cut into fixed segments of [`SEGMENT_SPAN`] numbers. Segment
//! `k` covers `[origin + k * SEGMENT_SPAN, origin + (k + 1) * SEGMENT_SPAN)`
//! clipped to `[lo, hi)`, where `origin` is `lo` rounded down to a multiple of
//! `SEGMENT_SPAN` (so every segment starts on an even number). Worker `w` of
//! `W` sieves segments `w, w + W, w + 2W, ...` (round-robin), which balances
//! the work and means workers share no mutable memory. The sum over all
//! workers equals [`count_range`], for any `W >= 1`.
//!
//! # Representation
//!
//! One bit per odd number: bit `j` of a segment starting at the even number
//! `s` stands for `s + 2j + 1`; a set bit means composite. The buffer is
//! [`SEGMENT_BYTES`] (32 KiB, the L1 data cache of the machines we measure).
//! Multiples of the primes 3..=61 are laid down a 64-bit word at a time from
//! precomputed patterns ("pre-sieving"); larger base primes cross off one bit
//! at a time. The prime 2 is counted separately.
//!
//! # Limits
//!
//! Base primes are kept for every prime below [`BASE_PRIME_LIMIT`] (2^20), so
//! any `hi <= MAX_HI` (2^40, about 1.1 * 10^12) is exact. Larger `hi`, zero
//! workers or a worker index out of range return a [`WorkloadError`]; an empty
//! or inverted range counts 0. Nothing here panics on any input.

#![no_std]
#![deny(unsafe_code)]

/// Bytes in one segment's sieve buffer: fits in a 32 KiB L1 data cache.
pub const SEGMENT_BYTES: usize = 32 * 1024;

/// 64-bit words in one segment's sieve buffer.
const SEGMENT_WORDS: usize = SEGMENT_BYTES / 8;

/// Odd numbers (bits) in one segment.
pub const SEGMENT_BITS: usize = SEGMENT_BYTES * 8;

/// Numbers (odd and even) covered by one segment: 2^19 = 524,288.
pub const SEGMENT_SPAN: u64 = 2 * SEGMENT_BITS as u64;

/// Every prime below this is kept as a base prime (two segments' worth).
pub const BASE_PRIME_LIMIT: u64 = 2 * SEGMENT_SPAN;

/// Largest supported `hi` (exclusive): every composite below it has a prime
/// factor below [`BASE_PRIME_LIMIT`].
pub const MAX_HI: u64 = BASE_PRIME_LIMIT * BASE_PRIME_LIMIT;

/// Odd primes below [`BASE_PRIME_LIMIT`]: pi(2^20) = 82,025, minus the prime 2.
pub const BASE_PRIME_CAPACITY: usize = 82_024;

/// Primes whose multiples are laid down word by word from patterns.
const PRESIEVE_PRIMES: [u64; 17] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61,
];

/// Largest pre-sieved prime; the per-bit loop starts above it.
const PRESIEVE_MAX: u64 = 61;

/// Sum of [`PRESIEVE_PRIMES`]: one 64-bit pattern per prime and residue.
const PRESIEVE_TABLE_LEN: usize = 499;

/// `PRESIEVE_TABLE[PRESIEVE_OFFSET[i] + r]` has bit `t` set iff `t % p == r`,
/// for `p = PRESIEVE_PRIMES[i]` and `t` in `0..64`.
const PRESIEVE_OFFSET: [usize; 17] = presieve_offsets();

/// The pre-sieve patterns, built at compile time.
const PRESIEVE_TABLE: [u64; PRESIEVE_TABLE_LEN] = presieve_table();

const _: () = assert!(PRESIEVE_OFFSET[16] + PRESIEVE_MAX as usize == PRESIEVE_TABLE_LEN);
const _: () = assert!(PRESIEVE_PRIMES[16] == PRESIEVE_MAX);

/// Why a count could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadError {
    /// `hi` exceeds [`MAX_HI`]; the base-prime table would be too small.
    HiTooLarge,
    /// `workers` was 0.
    NoWorkers,
    /// `worker >= workers`.
    WorkerOutOfRange,
}

/// Per-worker memory: the segment buffer and the base-prime table.
///
/// About 112 KiB. Build it with [`Scratch::new`] (a `const fn`, all zero) in
/// whatever memory the caller owns: a stack, a mapped region, a `Box`. The
/// base primes are computed on first use and kept for later calls.
pub struct Scratch {
    /// The segment sieve: bit `j` set means `s + 2j + 1` is composite.
    buf: [u64; SEGMENT_WORDS],
    /// Odd base primes as half-gaps: prime `i` = prime `i-1` + 2 * gap
    /// (prime "-1" is 1). The largest gap below 2^20 is 114, so a u8 fits.
    half_gaps: [u8; BASE_PRIME_CAPACITY],
    /// Valid entries in `half_gaps`.
    base_len: usize,
    /// Every odd prime below this is in `half_gaps` (0: none computed yet).
    base_limit: u64,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// An empty scratch area (all zero); base primes are filled on demand.
    pub const fn new() -> Self {
        Self {
            buf: [0; SEGMENT_WORDS],
            half_gaps: [0; BASE_PRIME_CAPACITY],
            base_len: 0,
            base_limit: 0,
        }
    }

    /// Makes sure every prime `p` with `p * p < hi` is in the table.
    /// Requires `hi <= MAX_HI`.
    fn ensure_base_primes(&mut self, hi: u64) {
        let need = hi.saturating_sub(1).isqrt();
        if self.base_limit == 0 {
            self.first_base_segment();
        }
        if need >= self.base_limit && self.base_limit < BASE_PRIME_LIMIT {
            self.second_base_segment();
        }
    }

    /// Plain Eratosthenes over `[0, SEGMENT_SPAN)` in the segment buffer;
    /// records every odd prime found.
    fn first_base_segment(&mut self) {
        self.buf = [0; SEGMENT_WORDS];
        set_bit(&mut self.buf, 0); // 1 is not prime
        let mut j = 1;
        while j < SEGMENT_BITS {
            let p = 2 * j + 1;
            if p * p >= SEGMENT_BITS * 2 {
                break;
            }
            if !bit(&self.buf, j) {
                cross_off(&mut self.buf, (p * p - 1) / 2, p, SEGMENT_BITS);
            }
            j += 1;
        }
        self.base_len = 0;
        self.record_primes(0, 1);
        self.base_limit = SEGMENT_SPAN;
    }

    /// Sieves `[SEGMENT_SPAN, 2 * SEGMENT_SPAN)` with the primes of the first
    /// segment and appends the primes found.
    fn second_base_segment(&mut self) {
        let start = SEGMENT_SPAN;
        self.buf = [0; SEGMENT_WORDS];
        let end = start + SEGMENT_SPAN;
        let mut p = 1u64;
        for &g in &self.half_gaps[..self.base_len] {
            p += 2 * u64::from(g);
            if p * p >= end {
                break;
            }
            let first = first_odd_multiple(p, start + 1);
            cross_off(
                &mut self.buf,
                seg_index(first - start - 1) / 2,
                seg_index(p),
                SEGMENT_BITS,
            );
        }
        let last = last_base_prime(&self.half_gaps[..self.base_len]);
        self.record_primes(start, last);
        self.base_limit = BASE_PRIME_LIMIT;
    }

    /// Appends the unmarked bits of the buffer (segment start `s`) as primes;
    /// `prev` is the last prime already recorded (1 when none).
    fn record_primes(&mut self, s: u64, mut prev: u64) {
        for j in 0..SEGMENT_BITS {
            if bit(&self.buf, j) {
                continue;
            }
            let q = s + 2 * j as u64 + 1;
            if q < 3 {
                continue;
            }
            let Some(slot) = self.half_gaps.get_mut(self.base_len) else {
                return;
            };
            // Gaps between primes below 2^20 are at most 114: fits in u8.
            *slot = u8::try_from((q - prev) / 2).unwrap_or(u8::MAX);
            self.base_len += 1;
            prev = q;
        }
    }

    /// Sieves one segment starting at `s` (even) and counts the primes among
    /// bits `[b0, b1)`. Requires base primes for `s + 2 * b1`.
    fn count_segment(&mut self, s: u64, b0: usize, b1: usize) -> u64 {
        presieve(&mut self.buf, s);
        if s == 0 {
            // The pattern marked the pre-sieved primes themselves, and 1 is
            // not prime.
            for p in PRESIEVE_PRIMES {
                clear_bit(&mut self.buf, seg_index(p / 2));
            }
            set_bit(&mut self.buf, 0);
        }
        let first_number = s + 2 * b0 as u64 + 1;
        let end_number = s + 2 * b1 as u64;
        let mut p = 1u64;
        for &g in &self.half_gaps[..self.base_len] {
            p += 2 * u64::from(g);
            if p * p >= end_number {
                break;
            }
            if p <= PRESIEVE_MAX {
                continue;
            }
            let m = first_odd_multiple(p, first_number.max(p * p));
            let j = seg_index((m - s - 1) / 2);
            cross_off(&mut self.buf, j, seg_index(p), b1);
        }
        count_zero_bits(&self.buf, b0, b1)
    }
}

/// The prime count for `[lo, hi)` by worker `worker` of `workers`: the primes
/// in segments `worker, worker + workers, ...` (see the module docs).
///
/// Returns 0 for an empty or inverted range. Errors: `hi > MAX_HI`,
/// `workers == 0`, `worker >= workers`.
pub fn count_worker(
    lo: u64,
    hi: u64,
    worker: u32,
    workers: u32,
    scratch: &mut Scratch,
) -> Result<u64, WorkloadError> {
    if workers == 0 {
        return Err(WorkloadError::NoWorkers);
    }
    if worker >= workers {
        return Err(WorkloadError::WorkerOutOfRange);
    }
    if hi > MAX_HI {
        return Err(WorkloadError::HiTooLarge);
    }
    if lo >= hi {
        return Ok(0);
    }
    scratch.ensure_base_primes(hi);
    let origin = lo - lo % SEGMENT_SPAN;
    let segments = segment_count(lo, hi);
    let mut total = 0;
    let mut k = u64::from(worker);
    while k < segments {
        let s = origin + k * SEGMENT_SPAN;
        let a = lo.max(s);
        let b = hi.min(s + SEGMENT_SPAN);
        // Odd numbers in [s, a) and [s, b): bit indices of the clipped range.
        let b0 = seg_index((a - s) / 2);
        let b1 = seg_index((b - s) / 2);
        if b0 < b1 {
            total += scratch.count_segment(s, b0, b1);
        }
        if a <= 2 && 2 < b {
            total += 1;
        }
        k += u64::from(workers);
    }
    Ok(total)
}

/// The prime count for `[lo, hi)` on one worker, with a scratch area on the
/// stack (about 112 KiB). Same errors as [`count_worker`].
pub fn count_range(lo: u64, hi: u64) -> Result<u64, WorkloadError> {
    let mut scratch = Scratch::new();
    count_worker(lo, hi, 0, 1, &mut scratch)
}

/// Segments the range `[lo, hi)` is cut into (0 when empty or inverted).
/// Workers beyond this count get no work.
pub fn segment_count(lo: u64, hi: u64) -> u64 {
    if lo >= hi {
        return 0;
    }
    let origin = lo - lo % SEGMENT_SPAN;
    (hi - origin).div_ceil(SEGMENT_SPAN)
}

/// The smallest odd multiple of the odd number `p` that is `>= from`.
fn first_odd_multiple(p: u64, from: u64) -> u64 {
    let m = from.div_ceil(p) * p;
    if m.is_multiple_of(2) {
        m + p
    } else {
        m
    }
}

/// The last prime in a half-gap table (1 for an empty table).
fn last_base_prime(half_gaps: &[u8]) -> u64 {
    half_gaps.iter().fold(1, |p, &g| p + 2 * u64::from(g))
}

/// Converts an in-segment offset to an index. Callers pass values below
/// `2 * SEGMENT_SPAN`, which fit any `usize` of 32 bits or more.
fn seg_index(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Sets bits `start, start + step, ...` below `end`.
fn cross_off(buf: &mut [u64; SEGMENT_WORDS], start: usize, step: usize, end: usize) {
    let end = end.min(SEGMENT_BITS);
    let mut j = start;
    while j < end {
        buf[j >> 6] |= 1 << (j & 63);
        j += step;
    }
}

/// Fills the buffer with the multiples of [`PRESIEVE_PRIMES`] for the segment
/// starting at the even number `s` (this also clears the previous contents).
fn presieve(buf: &mut [u64; SEGMENT_WORDS], s: u64) {
    buf.fill(0);
    for (i, &p) in PRESIEVE_PRIMES.iter().enumerate() {
        let table = &PRESIEVE_TABLE[PRESIEVE_OFFSET[i]..PRESIEVE_OFFSET[i] + p as usize];
        // Bit j stands for s + 2j + 1, a multiple of p iff
        // j == -(s + 1) / 2 (mod p); 2's inverse mod p is (p + 1) / 2.
        let minus = (p - (s + 1) % p) % p;
        let mut r = (minus * p.div_ceil(2) % p) as usize;
        // Moving to the next word shifts the residue down by 64 mod p.
        let shift = (64 % p) as usize;
        let p = p as usize;
        for word in buf.iter_mut() {
            *word |= table[r];
            r = if r >= shift { r - shift } else { r + p - shift };
        }
    }
}

/// Zero (prime) bits in `[b0, b1)`.
fn count_zero_bits(buf: &[u64; SEGMENT_WORDS], b0: usize, b1: usize) -> u64 {
    let b1 = b1.min(SEGMENT_BITS);
    if b0 >= b1 {
        return 0;
    }
    let (w0, w1) = (b0 >> 6, (b1 - 1) >> 6);
    let head_mask = !0u64 << (b0 & 63);
    let tail_mask = !0u64 >> (63 - ((b1 - 1) & 63));
    if w0 == w1 {
        return u64::from((!buf[w0] & head_mask & tail_mask).count_ones());
    }
    let mut n = u64::from((!buf[w0] & head_mask).count_ones());
    for &w in &buf[w0 + 1..w1] {
        n += u64::from((!w).count_ones());
    }
    n + u64::from((!buf[w1] & tail_mask).count_ones())
}

fn bit(buf: &[u64; SEGMENT_WORDS], j: usize) -> bool {
    buf[j >> 6] & (1 << (j & 63)) != 0
}

fn set_bit(buf: &mut [u64; SEGMENT_WORDS], j: usize) {
    buf[j >> 6] |= 1 << (j & 63);
}

fn clear_bit(buf: &mut [u64; SEGMENT_WORDS], j: usize) {
    buf[j >> 6] &= !(1 << (j & 63));
}

const fn presieve_offsets() -> [usize; 17] {
    let mut out = [0; 17];
    let mut i = 1;
    while i < 17 {
        out[i] = out[i - 1] + PRESIEVE_PRIMES[i - 1] as usize;
        i += 1;
    }
    out
}

const fn presieve_table() -> [u64; PRESIEVE_TABLE_LEN] {
    let mut out = [0u64; PRESIEVE_TABLE_LEN];
    let mut i = 0;
    while i < 17 {
        let p = PRESIEVE_PRIMES[i] as usize;
        let mut t = 0;
        while t < 64 {
            out[PRESIEVE_OFFSET[i] + t % p] |= 1 << t;
            t += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
