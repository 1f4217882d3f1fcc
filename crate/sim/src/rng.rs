//! The simulator's only source of randomness.
//!
//! Every random choice in a run — latencies, losses, partitions, session lengths, storage
//! faults, the seeds handed to the nodes — comes from one `u64` seed through this module, so
//! that `SEED=n` replays a run exactly. Each subsystem draws from its own [`SimRng`] stream,
//! derived from the run seed and a fixed stream number ([`SimRng::stream`]); adding a draw in
//! one subsystem therefore does not shift the draws of another.
//!
//! The generator is xoshiro256** (Blackman and Vigna), seeded through SplitMix64. It is small,
//! fast and has no platform-dependent behaviour; it is not cryptographic and need not be.

/// SplitMix64: used to expand seeds and to derive per-item values from a seed.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit mix of several words: the same inputs always give the same output.
///
/// Used where a value must be a pure function of its inputs (e.g. the base latency of a link),
/// not of how many draws happened before.
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

/// A seeded pseudo-random number generator (xoshiro256**).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRng {
    s: [u64; 4],
}

impl SimRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let s = [
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
            splitmix64(&mut state),
        ];
        // SplitMix64 never yields four zero words in a row, so the state is valid.
        debug_assert!(s.iter().any(|w| *w != 0));
        Self { s }
    }

    /// The independent stream number `stream` of the run seeded with `seed`.
    pub fn stream(seed: u64, stream: u64) -> Self {
        Self::new(mix(&[seed, stream]))
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

    /// A uniform integer in `0..n` (Lemire's method, unbiased). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below needs a positive bound");
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
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

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // Reference values of SplitMix64 from seed 0 (Vigna's splitmix64.c).
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut state), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(splitmix64(&mut state), 0x06C4_5D18_8009_454F);
    }

    /// Golden values: every seeded result of the simulator follows from these draws.
    #[test]
    fn the_streams_are_unchanged() {
        let mut rng = SimRng::stream(1, 5);
        let words: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        let below: Vec<u64> = (0..4).map(|_| rng.below(1_000)).collect();
        let units: Vec<u64> = (0..2).map(|_| rng.unit().to_bits()).collect();
        let normal = rng.normal().to_bits();
        let mut items: Vec<u32> = (0..8).collect();
        rng.shuffle(&mut items);
        assert_eq!(
            words,
            [
                3165058619346126029,
                16199650462702762942,
                16351480783360959216
            ]
        );
        assert_eq!(below, [50, 52, 979, 429]);
        assert_eq!(units, [4604881243920211878, 4595665821523143456]);
        assert_eq!(normal, 4597060229164740265);
        assert_eq!(items, [3, 5, 4, 1, 0, 2, 6, 7]);
        assert_eq!(mix(&[1, 2, 3]), 7242028582026875000);
    }

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = SimRng::stream(42, 1);
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn log_normal_median_is_the_median() {
        let mut rng = SimRng::new(7);
        let mut xs: Vec<f64> = (0..20_001).map(|_| rng.log_normal(30.0, 1.0)).collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[xs.len() / 2];
        assert!((median - 30.0).abs() < 1.5, "median {median}");
    }

    #[test]
    fn exponential_mean_is_the_mean() {
        let mut rng = SimRng::new(8);
        let n = 20_000;
        let sum: f64 = (0..n).map(|_| rng.exponential(5.0)).sum();
        let mean = sum / f64::from(n);
        assert!((mean - 5.0).abs() < 0.2, "mean {mean}");
    }

    proptest! {
        #[test]
        fn below_stays_below(seed in any::<u64>(), n in 1u64..1_000_000) {
            let mut rng = SimRng::new(seed);
            for _ in 0..50 {
                prop_assert!(rng.below(n) < n);
            }
        }

        #[test]
        fn unit_is_in_range(seed in any::<u64>()) {
            let mut rng = SimRng::new(seed);
            for _ in 0..50 {
                let x = rng.unit();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }

        #[test]
        fn shuffle_is_a_permutation(seed in any::<u64>(), n in 0usize..64) {
            let mut rng = SimRng::new(seed);
            let mut items: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut items);
            items.sort_unstable();
            prop_assert_eq!(items, (0..n).collect::<Vec<_>>());
        }
    }
}
