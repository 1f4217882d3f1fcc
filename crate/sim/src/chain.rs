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

use sha2::{Digest, Sha256};

use crate::rng::SimRng;

/// Regtest's compact target.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// Double SHA-256.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

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

fn push_varint(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A legacy-format transaction with one input and one `OP_TRUE` output.
fn transaction(prevout: [u8; 32], vout: u32, script_sig: &[u8], value: u64) -> Vec<u8> {
    let mut tx = Vec::with_capacity(64 + script_sig.len());
    tx.extend_from_slice(&1i32.to_le_bytes());
    push_varint(&mut tx, 1);
    tx.extend_from_slice(&prevout);
    tx.extend_from_slice(&vout.to_le_bytes());
    push_varint(&mut tx, script_sig.len() as u64);
    tx.extend_from_slice(script_sig);
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    push_varint(&mut tx, 1);
    tx.extend_from_slice(&value.to_le_bytes());
    push_varint(&mut tx, 1);
    tx.push(0x51); // OP_TRUE
    tx.extend_from_slice(&0u32.to_le_bytes());
    tx
}

/// Bitcoin's Merkle root over transaction ids (the last one duplicated on odd levels).
pub fn merkle_root(txids: &[[u8; 32]]) -> [u8; 32] {
    assert!(!txids.is_empty(), "a block has at least a coinbase");
    let mut level = txids.to_vec();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().expect("non-empty"));
        }
        level = level
            .chunks(2)
            .map(|pair| {
                let mut both = [0u8; 64];
                both[..32].copy_from_slice(&pair[0]);
                both[32..].copy_from_slice(&pair[1]);
                sha256d(&both)
            })
            .collect();
    }
    level[0]
}

fn meets_regtest_target(hash: &[u8; 32]) -> bool {
    // Target 0x7fffff·256^29: the most significant byte (last, internal order) below 0x7f
    // is sufficient (a little stricter than the exact bound).
    hash[31] < 0x7f
}

/// Generates `blocks` blocks from `seed`, genesis first.
pub fn generate(blocks: u32, txs_per_block: u32, seed: u64) -> Vec<SimBlock> {
    let mut rng = SimRng::new(seed);
    let mut chain: Vec<SimBlock> = Vec::with_capacity(blocks as usize);
    let mut prev_hash = [0u8; 32];
    let mut prev_coinbase = [0u8; 32];
    for height in 0..blocks {
        let mut script_sig = Vec::with_capacity(13);
        script_sig.push(4);
        script_sig.extend_from_slice(&height.to_le_bytes());
        script_sig.push(8);
        script_sig.extend_from_slice(&rng.next_u64().to_le_bytes());
        let coinbase = transaction([0; 32], u32::MAX, &script_sig, 50 * 100_000_000);
        let mut txs = vec![coinbase];
        for i in 0..txs_per_block {
            if height == 0 {
                break;
            }
            let salt = rng.next_u64().to_le_bytes();
            txs.push(transaction(prev_coinbase, i, &salt, 1_000 + u64::from(i)));
        }
        let txids: Vec<[u8; 32]> = txs.iter().map(|tx| sha256d(tx)).collect();
        prev_coinbase = txids[0];
        let root = merkle_root(&txids);

        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&0x2000_0000i32.to_le_bytes());
        header[4..36].copy_from_slice(&prev_hash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&(1_700_000_000 + height * 600).to_le_bytes());
        header[72..76].copy_from_slice(&REGTEST_BITS.to_le_bytes());
        let mut nonce = 0u32;
        let hash = loop {
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            let hash = sha256d(&header);
            if meets_regtest_target(&hash) {
                break hash;
            }
            nonce += 1;
        };

        let mut bytes = header.to_vec();
        push_varint(&mut bytes, txs.len() as u64);
        for tx in &txs {
            bytes.extend_from_slice(tx);
        }
        chain.push(SimBlock {
            hash,
            header,
            bytes,
        });
        prev_hash = hash;
    }
    chain
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
        .map(|block| SimBlock {
            hash: block.block_hash().to_byte_array(),
            header: block.header.encode(),
            bytes: block.encode(),
        })
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
            assert!(meets_regtest_target(&block.hash));
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
