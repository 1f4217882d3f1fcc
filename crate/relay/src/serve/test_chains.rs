//! Regtest chains and branches of them for the relay's tests: the core's generator, blocks ten
//! minutes apart from [`T0`], each branch's times offset by its seed (so its hashes differ).

use shoal_core::chain::generate::{regtest_genesis_block, GenerateConfig, Generator};
use shoal_core::chain::Block;

/// The time of genesis's first child, less ten minutes.
pub const T0: u32 = 1_700_000_000;

/// Genesis and `n` blocks (branch 0).
pub fn chain(n: u32) -> Vec<Block> {
    branch(&[regtest_genesis_block()], 0, n, 0)
}

/// `base[..=at]`, then `n` blocks of branch `seed` on it.
pub fn branch(base: &[Block], at: usize, n: u32, seed: u64) -> Vec<Block> {
    let config = GenerateConfig {
        txs_per_block: 2,
        seed,
        ..GenerateConfig::default()
    };
    let mut blocks = base[..=at].to_vec();
    let mut generator = Generator::resume(&config, &blocks[1..]).expect("a generated chain");
    for i in 1..=n {
        let time = T0 + (at as u32 + i) * 600 + seed as u32;
        blocks.push(generator.next_block(time).expect("a block"));
    }
    blocks
}
