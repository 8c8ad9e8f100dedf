//! A tiny shared pseudo-random source (SplitMix64) for latency jitter,
//! failure draws and traffic mixes. Not cryptographic, not seeded from the
//! clock: the demo only needs variety, and runs stay comparable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

static STATE: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);

/// A uniform draw in `[0, 1)`.
pub(crate) fn unit() -> f64 {
    let mut z = STATE
        .fetch_add(GOLDEN, Ordering::Relaxed)
        .wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// `mean` scaled by a uniform factor in `[0.5, 1.5)`.
pub(crate) fn jitter(mean: Duration) -> Duration {
    mean.mul_f64(0.5 + unit())
}

/// A uniform draw in `0..n` (0 when `n` is 0).
pub(crate) fn below(n: u32) -> u32 {
    ((unit() * f64::from(n)) as u32).min(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_range() {
        for _ in 0..10_000 {
            let u = unit();
            assert!((0.0..1.0).contains(&u), "{u}");
            assert!(below(7) < 7);
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j < Duration::from_millis(150));
        }
        assert_eq!(below(0), 0);
    }
}
