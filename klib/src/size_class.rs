//! The kernel heap's size classes (`kernel/src/mm/heap.rs`): which
//! requests its per-CPU caches serve, and in what block.
//!
//! A request of `size` bytes and alignment `align` is cached when
//! `align <= ALIGN` and `size <= MAX`; it then gets a block of the
//! smallest class that holds it. Every class is a power of two and every
//! block is aligned to [`ALIGN`], so one block satisfies every request
//! mapped to its class, whichever of them allocated or freed it (the
//! allocator sees only the layout on both sides). How many free objects a
//! CPU keeps per class is bounded by count and by bytes ([`limit`]).

/// The class sizes in bytes (powers of two, ascending).
pub const CLASSES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
/// The largest cached request.
pub const MAX: usize = CLASSES[CLASSES.len() - 1];
/// The largest cached alignment; every block is aligned to it.
pub const ALIGN: usize = 16;

/// The class of a request, or `None` when it bypasses the caches.
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    if align > ALIGN || size > MAX {
        return None;
    }
    CLASSES.iter().position(|&c| c >= size)
}

/// Free objects of class `i` one CPU keeps: at most `slots`, and at most
/// `bytes` worth.
pub const fn limit(i: usize, slots: usize, bytes: usize) -> usize {
    let by_bytes = bytes / CLASSES[i];
    if by_bytes < slots {
        by_bytes
    } else {
        slots
    }
}

/// Bytes one CPU's caches hold at most with these limits.
pub const fn max_cached_bytes(slots: usize, bytes: usize) -> usize {
    let mut sum = 0;
    let mut i = 0;
    while i < CLASSES.len() {
        sum += limit(i, slots, bytes) * CLASSES[i];
        i += 1;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_small_request_gets_the_smallest_class_that_holds_it() {
        for size in 1..=MAX {
            for align in [1, 2, 4, 8, 16] {
                let i = class_of(size, align).expect("cached");
                assert!(CLASSES[i] >= size);
                assert!(
                    i == 0 || CLASSES[i - 1] < size,
                    "{size} not in the smallest class"
                );
                // The block (class size, ALIGN alignment) satisfies the request.
                assert_eq!(ALIGN % align, 0);
            }
        }
    }

    #[test]
    fn large_or_over_aligned_requests_bypass_the_caches() {
        assert_eq!(class_of(MAX + 1, 8), None);
        assert_eq!(class_of(64, 32), None);
        assert_eq!(class_of(64, 4096), None);
        assert_eq!(class_of(0, 1), Some(0));
    }

    #[test]
    fn classes_are_ascending_powers_of_two_aligned_to_align() {
        for w in CLASSES.windows(2) {
            assert!(w[0] < w[1]);
        }
        for c in CLASSES {
            assert!(c.is_power_of_two() && c % ALIGN == 0);
        }
    }

    #[test]
    fn limits_bound_count_and_bytes() {
        assert_eq!(limit(0, 32, 8192), 32);
        assert_eq!(limit(7, 32, 8192), 4);
        for (i, class) in CLASSES.iter().enumerate() {
            assert!(limit(i, 32, 8192) * class <= 8192);
        }
        assert_eq!(
            max_cached_bytes(32, 8192),
            16 * 32 + 32 * 32 + 64 * 32 + 128 * 32 + 256 * 32 + 512 * 16 + 1024 * 8 + 2048 * 4
        );
    }
}
