//! The one test-chain builder: links blocks into a chain, computes their Merkle roots and seals
//! their nonces. Every chain the project makes for tests and simulations goes through here —
//! the regtest generator ([`super::Generator`]), the node's small synthetic chains
//! (`chain_seam::synthetic_chain`), the serving tests' chains and the simulator's own — each
//! saying only what its blocks hold.

use super::GenerateError;
use crate::chain::block::Block;
use crate::chain::hash::BlockHash;
use crate::chain::pow::Target;

/// How [`seal_block`] sets a block's nonce once its Merkle root is computed.
#[derive(Clone, Copy, Debug)]
pub enum Seal {
    /// Keep the nonce the block has: no proof of work (chains whose readers do not check it).
    Nonce,
    /// Grind the nonce up from 0 until the header's hash meets the target its `nBits` encode
    /// (about two tries at regtest's).
    Target,
    /// Grind the nonce up from 0 until the hash passes this test.
    Until(fn(&BlockHash) -> bool),
}

/// Finishes `block` (at `height`): computes its Merkle root, then sets its nonce as `seal`
/// says. Fails only if no nonce passes.
pub fn seal_block(block: &mut Block, height: u32, seal: Seal) -> Result<(), GenerateError> {
    block.header.merkle_root = block.compute_merkle_root().0;
    match seal {
        Seal::Nonce => Ok(()),
        Seal::Target => {
            let target = Target::from_compact(block.header.bits)
                .expect("a block sealed to its target has a valid nBits");
            grind(block, height, |hash| target.is_met_by(*hash))
        }
        Seal::Until(passes) => grind(block, height, passes),
    }
}

/// Tries nonces from 0 up until the block's hash passes.
fn grind(
    block: &mut Block,
    height: u32,
    passes: impl Fn(&BlockHash) -> bool,
) -> Result<(), GenerateError> {
    for nonce in 0..=u32::MAX {
        block.header.nonce = nonce;
        if passes(&block.header.block_hash()) {
            return Ok(());
        }
    }
    Err(GenerateError::NonceSpaceExhausted { height })
}

/// A chain of `len` blocks, height 0 first: block `h` is `block_at(h)` linked to block
/// `h − 1` (its `prev_blockhash` set to that block's hash; zero for the first) and finished by
/// [`seal_block`].
pub fn build_chain(
    len: u32,
    seal: Seal,
    mut block_at: impl FnMut(u32) -> Block,
) -> Result<Vec<Block>, GenerateError> {
    let mut blocks: Vec<Block> = Vec::with_capacity(len as usize);
    let mut prev = BlockHash::default();
    for height in 0..len {
        let mut block = block_at(height);
        block.header.prev_blockhash = prev;
        seal_block(&mut block, height, seal)?;
        prev = block.block_hash();
        blocks.push(block);
    }
    Ok(blocks)
}
