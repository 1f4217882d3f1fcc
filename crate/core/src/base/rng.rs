//! Seeded random numbers and hash mixing: the core owns no source of randomness, so anything
//! that needs random-looking choices takes a seed and derives everything from it here, and a
//! run replays bit for bit from its seed. Not for cryptography.
//!
//! - [`splitmix64`] (Steele, Lea and Flood's SplitMix64) advances a 64-bit state and returns the
//!   next output; [`mix64`] is its output function alone, a fast mix of one word (placement's
//!   rendezvous weights, tie-breaking salts). [`SplitMix64`] is the generator built on them: a
//!   node draws its nonces and jittered deadlines from one.

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

/// The SplitMix64 generator: the stream a node draws from (its seed mixed with its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The generator whose first output is `mix64(seed + γ)`: a node's stream starts one step
    /// into SplitMix64's sequence from its seed, as it always has (the simulator's seeded
    /// results depend on it).
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: seed.wrapping_add(GOLDEN_GAMMA),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.state)
    }

    /// A value in `[base/2, base*3/2]`: a deadline spread so that nodes started together do
    /// not act together.
    pub fn jitter(&mut self, base: u64) -> u64 {
        base / 2 + self.next_u64() % (base + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
