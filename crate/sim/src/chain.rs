//! The simulated chain: small, valid Bitcoin-format blocks made from the seed.
//!
//! Each block is a real consensus-encoded block: an 80-byte header whose proof of work meets
//! regtest's target (`bits = 0x207fffff`), linked to its parent, with a Merkle root computed
//! over its transactions; a coinbase paying to `OP_TRUE` and `txs_per_block` small
//! transactions, each spending an output of the previous block's coinbase. Blocks stay a few
//! hundred bytes, so ten thousand nodes can hold shards of the chain in memory.
//!
//! [`generate_regtest`] makes the chain of a run with the core's own regtest generator
//! (`shoal_core::chain::generate`): real segwit and legacy transactions on the regtest
//! genesis block. [`generate`] is the simulator's own, smaller and faster chain, kept for the
//! placement measurements and as a cross-check.
//!
//! Also here: [`tamper`], which makes a block that keeps its header (and hash) but whose body
//! no longer matches the header's Merkle root — what a byzantine relay or a flipped bit on
//! disk produces, and what a node must refuse to store.

use shoal_core::chain::generate::{build_chain, Seal};
use shoal_core::chain::{Block, BlockHash, Hash256, Header, OutPoint, Transaction, TxIn, TxOut};

use crate::rng::SimRng;

pub use shoal_core::chain::sha256d;

/// Regtest's compact target.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// One generated block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBlock {
    /// Block hash, internal byte order.
    pub hash: [u8; 32],
    /// The 80-byte header.
    pub header: [u8; 80],
    /// The whole consensus-encoded block (header, transaction count, transactions).
    pub bytes: Vec<u8>,
}

impl From<Block> for SimBlock {
    fn from(block: Block) -> SimBlock {
        SimBlock {
            hash: block.block_hash().to_byte_array(),
            header: block.header.encode(),
            bytes: block.encode(),
        }
    }
}

/// A legacy-format transaction with one input and one `OP_TRUE` output.
fn transaction(prevout: OutPoint, script_sig: &[u8], value: u64) -> Transaction {
    Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: prevout,
            script_sig: script_sig.to_vec(),
            sequence: u32::MAX,
            witness: Default::default(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: vec![0x51], // OP_TRUE
        }],
        lock_time: 0,
    }
}

fn meets_regtest_target(hash: &BlockHash) -> bool {
    // Target 0x7fffff·256^29: the most significant byte (last, internal order) below 0x7f
    // is sufficient (a little stricter than the exact bound).
    hash.0[31] < 0x7f
}

/// Generates `blocks` blocks from `seed`, genesis first, with the core's chain builder.
pub fn generate(blocks: u32, txs_per_block: u32, seed: u64) -> Vec<SimBlock> {
    let mut rng = SimRng::new(seed);
    let mut prev_coinbase = OutPoint::NULL.txid;
    let chain = build_chain(blocks, Seal::Until(meets_regtest_target), |height| {
        let mut script_sig = Vec::with_capacity(13);
        script_sig.push(4);
        script_sig.extend_from_slice(&height.to_le_bytes());
        script_sig.push(8);
        script_sig.extend_from_slice(&rng.next_u64().to_le_bytes());
        let coinbase = transaction(OutPoint::NULL, &script_sig, 50 * 100_000_000);
        let mut txdata = vec![coinbase];
        for i in 0..txs_per_block {
            if height == 0 {
                break;
            }
            let salt = rng.next_u64().to_le_bytes();
            let prevout = OutPoint {
                txid: prev_coinbase,
                vout: i,
            };
            txdata.push(transaction(prevout, &salt, 1_000 + u64::from(i)));
        }
        prev_coinbase = txdata[0].txid();
        Block {
            header: Header {
                version: 0x2000_0000,
                prev_blockhash: BlockHash::default(),
                merkle_root: Hash256::default(),
                time: 1_700_000_000 + height * 600,
                bits: REGTEST_BITS,
                nonce: 0,
            },
            txdata,
        }
    })
    .expect("a nonce below the simulator's target exists for every block");
    chain.into_iter().map(SimBlock::from).collect()
}

/// The chain of a run from the core's own regtest generator: the regtest genesis block and
/// `blocks - 1` blocks on top, each with `txs_per_block` transactions besides the coinbase.
pub fn generate_regtest(blocks: u32, txs_per_block: u32, seed: u64) -> Vec<SimBlock> {
    use shoal_core::chain::generate::{generate_chain, regtest_genesis_block, GenerateConfig};
    let config = GenerateConfig {
        blocks: blocks.saturating_sub(1),
        txs_per_block,
        seed,
        ..GenerateConfig::default()
    };
    let generated = generate_chain(&config).expect("regtest chains of u32 heights generate");
    std::iter::once(regtest_genesis_block())
        .chain(generated)
        .take(blocks as usize)
        .map(SimBlock::from)
        .collect()
}

/// A copy of `block` with one bit of its body (not its header) flipped: same hash, wrong
/// contents. `bit_seed` picks the bit.
pub fn tamper(block: &[u8], bit_seed: u64) -> Vec<u8> {
    let mut bytes = block.to_vec();
    if bytes.len() > 80 {
        crate::storage::flip_bit(&mut bytes[80..], bit_seed);
    } else {
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_link_and_meet_the_target() {
        let chain = generate(20, 3, 5);
        assert_eq!(chain.len(), 20);
        let mut prev = [0u8; 32];
        for block in &chain {
            assert_eq!(&block.header[4..36], &prev);
            assert_eq!(sha256d(&block.header), block.hash);
            assert!(meets_regtest_target(&BlockHash(block.hash)));
            assert_eq!(&block.bytes[..80], &block.header);
            prev = block.hash;
        }
        assert_eq!(generate(20, 3, 5), chain, "same seed, same chain");
        assert_ne!(generate(20, 3, 6), chain);
    }

    #[test]
    fn merkle_root_of_one_is_the_txid_and_odd_levels_duplicate() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let c = [3u8; 32];
        let merkle_root = |leaves: &[[u8; 32]]| shoal_core::chain::merkle::merkle_root(leaves).0 .0;
        assert_eq!(merkle_root(&[a]), a);
        assert_eq!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
    }

    #[test]
    fn tampering_keeps_the_header_and_changes_the_body() {
        let chain = generate(3, 2, 1);
        let original = &chain[2].bytes;
        let tampered = tamper(original, 77);
        assert_eq!(&tampered[..80], &original[..80]);
        assert_ne!(&tampered, original);
        assert_eq!(tampered.len(), original.len());
    }

    #[test]
    fn regtest_chain_from_the_core_links_and_checks() {
        let chain = generate_regtest(6, 2, 3);
        assert_eq!(chain.len(), 6);
        for pair in chain.windows(2) {
            assert_eq!(&pair[1].header[4..36], &pair[0].hash);
        }
        for block in &chain {
            let decoded = shoal_core::chain::Block::decode(&block.bytes).unwrap();
            assert!(decoded.check_merkle_root());
            let tampered = tamper(&block.bytes, 12_345);
            let broken = shoal_core::chain::Block::decode(&tampered);
            assert!(broken.map_or(true, |b| !b.check_merkle_root()
                || b.encode() != block.bytes));
        }
    }

    /// Golden values: the hashes of both chains the simulator builds, for fixed seeds.
    #[test]
    fn chains_are_unchanged() {
        let digest = |chain: &[SimBlock]| {
            chain.iter().fold(0u64, |acc, b| {
                acc.rotate_left(7) ^ u64::from_le_bytes(b.hash[..8].try_into().unwrap())
            })
        };
        assert_eq!(digest(&generate(20, 3, 5)), 18249281092072392587);
        assert_eq!(digest(&generate(64, 2, 1)), 4319031838352214396);
        assert_eq!(digest(&generate_regtest(12, 4, 3)), 11583087352839710259);
    }

    #[test]
    fn blocks_are_tiny() {
        let chain = generate(5, 2, 9);
        assert!(chain.iter().all(|block| block.bytes.len() < 400));
    }
}
