//! Seeded random numbers and hash mixing: the core owns no source of randomness, so anything
//! that needs random-looking choices takes a seed and derives everything from it here, and a
//! run replays bit for bit from its seed. Not for cryptography.
//!
//! - [`Rng`] is the one generator: xoshiro256** (Blackman and Vigna), its state filled from a
//!   `u64` seed by SplitMix64. The regtest chain generator draws every block from one, every
//!   node its nonces and jittered deadlines (its own [`Rng::stream`] of its seed and id), and
//!   the simulator every latency, loss, session and fault (each subsystem from its own stream).
//! - [`splitmix64`] (Steele, Lea and Flood's SplitMix64) advances a 64-bit state and returns the
//!   next output: it seeds [`Rng`]. [`mix64`] is its output function alone, a fast mix of one
//!   word (placement's rendezvous weights, tie-breaking salts), and [`mix`] a stable mix of
//!   several.

/// SplitMix64's increment (the golden ratio's 64-bit fraction).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of SplitMix64: advances `state` and returns the next output.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit mix of `z`: the output SplitMix64 gives from state `z`, without keeping the
/// state. A bijection, so distinct inputs never collide.
pub fn mix64(z: u64) -> u64 {
    splitmix64(&mut { z })
}

/// A stable 64-bit mix of several words: the same inputs always give the same output. For
/// values that must be a pure function of their inputs (a stream's seed, the base latency of
/// a simulated link), not of how many draws happened before.
pub fn mix(words: &[u64]) -> u64 {
    let mut state = 0x5348_4F41_4C53_494D; // "SHOALSIM"
    let mut out = 0;
    for word in words {
        state ^= *word;
        out ^= splitmix64(&mut state);
        state = state.rotate_left(17) ^ out;
    }
    splitmix64(&mut state) ^ out
}

/// The seeded generator (xoshiro256**). See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut state = seed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        // SplitMix64 is a bijection of its counter, so four consecutive outputs are never all
        // zero (the one state xoshiro cannot leave).
        debug_assert!(s.iter().any(|w| *w != 0));
        Rng { s }
    }

    /// The independent stream number `stream` of the run seeded with `seed`: adding a draw to
    /// one stream does not shift the draws of another.
    pub fn stream(seed: u64, stream: u64) -> Rng {
        Rng::new(mix(&[seed, stream]))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform value in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no values");
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A value in `[base/2, base/2 + base]` (`base` ± 50 %): a deadline spread so that nodes
    /// started together do not act together.
    pub fn jitter(&mut self, base: u64) -> u64 {
        base / 2 + self.below(base.saturating_add(1))
    }

    /// A uniform index into a collection of `len > 0` items.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability `percent / 100`.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A uniform float in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        self.unit() < p
    }

    /// A standard normal variate (Box–Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        // 1 - unit() lies in (0, 1]: the logarithm is finite.
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// An exponential variate with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A log-normal variate with the given median and shape `sigma` (σ of the underlying
    /// normal). `sigma == 0` gives exactly the median.
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    #[test]
    fn xoshiro256starstar_reference_values() {
        // From the reference implementation with state [1, 2, 3, 4].
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
        assert_eq!(first, [11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = rng.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::stream(42, 1);
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_ne!(xs, zs);
        let mut d = Rng::new(43);
        assert_ne!(
            xs[..8],
            (0..8).map(|_| d.next_u64()).collect::<Vec<_>>()[..]
        );
    }

    #[test]
    fn log_normal_median_is_the_median() {
        let mut rng = Rng::new(7);
        let mut xs: Vec<f64> = (0..20_001).map(|_| rng.log_normal(30.0, 1.0)).collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[xs.len() / 2];
        assert!((median - 30.0).abs() < 1.5, "median {median}");
    }

    #[test]
    fn exponential_mean_is_the_mean() {
        let mut rng = Rng::new(8);
        let n = 20_000;
        let sum: f64 = (0..n).map(|_| rng.exponential(5.0)).sum();
        let mean = sum / f64::from(n);
        assert!((mean - 5.0).abs() < 0.2, "mean {mean}");
    }

    proptest! {
        #[test]
        fn below_stays_below(seed in any::<u64>(), n in 1u64..1_000_000) {
            let mut rng = Rng::new(seed);
            for _ in 0..50 {
                prop_assert!(rng.below(n) < n);
            }
        }

        #[test]
        fn unit_is_in_range(seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
            for _ in 0..50 {
                let x = rng.unit();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }

        #[test]
        fn shuffle_is_a_permutation(seed in any::<u64>(), n in 0usize..64) {
            let mut rng = Rng::new(seed);
            let mut items: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut items);
            items.sort_unstable();
            prop_assert_eq!(items, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs of SplitMix64 from state 0 (Vigna's splitmix64.c).
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut state), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(&mut state), 0x06c4_5d18_8009_454f);
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
    }
}
