//! The simulator's only source of randomness: the core's seeded generator
//! ([`shoal_core::base::rng`], xoshiro256** seeded through SplitMix64).
//!
//! Every random choice in a run — latencies, losses, partitions, session lengths, storage
//! faults, the seeds handed to the nodes — comes from one `u64` seed through this module, so
//! that `SEED=n` replays a run exactly. Each subsystem draws from its own [`SimRng`] stream,
//! derived from the run seed and a fixed stream number ([`SimRng::stream`]); adding a draw in
//! one subsystem therefore does not shift the draws of another. [`mix`] gives values that must
//! be a pure function of their inputs (e.g. the base latency of a link).

pub use shoal_core::base::rng::{mix, Rng as SimRng};

#[cfg(test)]
mod tests {
    use super::*;

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
}
