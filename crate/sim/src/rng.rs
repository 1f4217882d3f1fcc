//! The simulator's only source of randomness: the core's seeded generator
//! ([`shoal_core::base::rng`], xoshiro256** seeded through SplitMix64).
//!
//! Every random choice in a run — latencies, losses, partitions, session lengths, storage
//! faults, the seeds handed to the nodes — comes from one `u64` seed through this module, so
//! that `SEED=n` replays a run exactly. Each subsystem draws from its own [`SimRng`] stream,
//! derived from the run seed and a fixed stream number ([`SimRng::stream`]); adding a draw in
//! one subsystem therefore does not shift the draws of another. [`mix`] gives values that must
//! be a pure function of their inputs (e.g. the base latency of a link). Every stream number is
//! in one list, [`Stream`], where no two can be the same.

pub use shoal_core::base::rng::{mix, Rng as SimRng};

/// The random streams of a run, each with its own number: every generator the simulator
/// draws from in a run is [`SimRng::stream`]`(seed, stream.number())` for one of these. Two
/// streams with one number would draw the same numbers: their draws would be correlated, not
/// independent (the key/value faults and serving once both had 5). The compiler refuses two
/// variants with one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The network: loss, jitter, partitions.
    Network = 1,
    /// Churn: session and offline lengths, crashes, returns with or without data.
    Churn = 2,
    /// Storage faults of blocks: lost writes, corrupt reads.
    Storage = 3,
    /// The world's own choices: directory candidates, which blocks the source tampers with.
    World = 4,
    /// Storage faults of the key/value records.
    Kv = 5,
    /// Serving: the adversaries, when queries come and what they ask whom, jobs, block hints,
    /// outsiders' retries, the member each new block is routed to.
    Serving = 6,
    /// The network's table of link latencies, drawn once at the start.
    LinkTable = 0x4C49_4E4B_0000_0000,
    /// The random clusters of `shoal-sim placement` (data moved per leave and join).
    Movement = 0x4D4F_5645,
}

impl Stream {
    /// Every stream.
    pub const ALL: [Stream; 8] = [
        Stream::Network,
        Stream::Churn,
        Stream::Storage,
        Stream::World,
        Stream::Kv,
        Stream::Serving,
        Stream::LinkTable,
        Stream::Movement,
    ];

    /// The stream's number, for [`SimRng::stream`].
    pub const fn number(self) -> u64 {
        self as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No two streams share a number, so none draws what another draws.
    #[test]
    fn every_stream_has_its_own_number_and_its_own_draws() {
        let numbers: std::collections::BTreeSet<u64> =
            Stream::ALL.iter().map(|s| s.number()).collect();
        assert_eq!(numbers.len(), Stream::ALL.len());
        for seed in [0, 1, 42] {
            let draws: std::collections::BTreeSet<Vec<u64>> = Stream::ALL
                .iter()
                .map(|stream| {
                    let mut rng = SimRng::stream(seed, stream.number());
                    (0..4).map(|_| rng.next_u64()).collect()
                })
                .collect();
            assert_eq!(draws.len(), Stream::ALL.len(), "seed {seed}");
        }
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
}
