//! Deterministic mutations of seed inputs, for the stable `cargo test` run of every target:
//! the same few thousand inputs on every run, made by the kind of edits libFuzzer makes (bit
//! flips, interesting values, inserted, erased and repeated bytes, cuts and splices).

/// A small deterministic random stream (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Values that sit on the edges of lengths and counts.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xfc,
    0xfd,
    0xff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
];

/// `count` mutants of `seeds`, each made by one to four edits of a seed chosen at random, the
/// same for the same `rng_seed`.
pub fn mutants(seeds: &[Vec<u8>], count: usize, rng_seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(rng_seed);
    (0..count)
        .map(|_| {
            let mut input = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                edit(&mut input, seeds, &mut rng);
            }
            input
        })
        .collect()
}

fn edit(input: &mut Vec<u8>, seeds: &[Vec<u8>], rng: &mut Rng) {
    let len = input.len();
    match rng.below(9) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = INTERESTING[rng.below(INTERESTING.len())] as u8;
        }
        2 if len > 0 => {
            // An interesting value over 1, 2, 4 or 8 bytes, either byte order.
            let width = [1usize, 2, 4, 8][rng.below(4)].min(len);
            let at = rng.below(len - width + 1);
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let bytes = if rng.below(2) == 0 {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            input[at..at + width].copy_from_slice(&bytes[..width]);
        }
        3 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let fill: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, fill);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            input.drain(at..at + n);
        }
        5 if len > 0 => {
            // Repeat a range.
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64));
            let copy = input[at..at + n].to_vec();
            let to = rng.below(len + 1);
            input.splice(to..to, copy);
        }
        6 => input.truncate(rng.below(len + 1)),
        7 => {
            // Splice in part of another seed.
            let other = &seeds[rng.below(seeds.len())];
            if !other.is_empty() {
                let from = rng.below(other.len());
                let n = 1 + rng.below(other.len() - from);
                let at = rng.below(len + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..from + n]);
            }
        }
        _ => {
            if len > 0 {
                let at = rng.below(len);
                input[at] = rng.next_u64() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_are_deterministic_and_differ_from_their_seeds() {
        let seeds = vec![vec![1, 2, 3, 4, 5, 6, 7, 8], vec![9, 9, 9]];
        let a = mutants(&seeds, 200, 7);
        assert_eq!(a, mutants(&seeds, 200, 7));
        assert_ne!(a, mutants(&seeds, 200, 8));
        assert!(a.iter().filter(|m| !seeds.contains(m)).count() > 150);
    }
}
