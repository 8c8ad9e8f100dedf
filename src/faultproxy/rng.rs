//! A small seeded generator (SplitMix64), so one seed reproduces every random
//! choice the proxy makes: toxicity draws, jitter, slice sizes, HTTP
//! probabilities. Toxiproxy's `-seed` flag seeds a generator it never uses,
//! so its runs cannot be replayed; here each toxic on each connection gets
//! its own stream derived from the seed, the proxy's name, the connection's
//! number, the direction and the toxic's name, so adding a toxic or a
//! connection does not shift the draws of the others.
//!
//! The algorithm is written out rather than taken from a crate so the same
//! seed gives the same numbers whatever dependency versions are built.

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        finalize(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal draw (Box–Muller).
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1], so ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// SplitMix64's output function: a good 64-bit mixer.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for a sub-stream: `seed` mixed with each part (FNV-1a, then mixed).
pub fn derive(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = finalize(seed ^ 0xCBF2_9CE4_8422_2325);
    for part in parts {
        for &b in *part {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
        h = finalize(h ^ part.len() as u64);
    }
    h
}

/// A seed for a server started without one (logged, so the run can be replayed).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_parts_separate_streams() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(derive(1, &[b"a"]), derive(1, &[b"b"]));
        assert_ne!(derive(1, &[b"ab"]), derive(1, &[b"a", b"b"]));
        assert_eq!(derive(9, &[b"x", b"y"]), derive(9, &[b"x", b"y"]));
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(42);
        let n = 100_000;
        let u: f64 = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((u - 0.5).abs() < 0.01, "uniform mean {u}");
        let xs: Vec<f64> = (0..n).map(|_| r.standard_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}
