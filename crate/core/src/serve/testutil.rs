//! Test helpers: small valid blocks and an in-memory best chain that can reorganise.

use std::collections::HashMap;

use super::BestChain;
use crate::chain::generate::{build_chain, seal_block, Seal};
use crate::chain::{Block, BlockHash, Header, OutPoint, Transaction, TxIn, TxOut, Txid};

/// A coinbase for `height` (BIP34 push) whose output carries `tag`, so that blocks on
/// different branches differ.
fn coinbase(height: u32, tag: u64) -> Transaction {
    let mut script_sig = vec![0x04];
    script_sig.extend_from_slice(&height.to_le_bytes());
    script_sig[4] &= 0x7f;
    Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
            witness: Default::default(),
        }],
        output: vec![TxOut {
            value: 50,
            script_pubkey: tag.to_le_bytes().to_vec(),
        }],
        lock_time: 0,
    }
}

/// A plain transaction spending a made-up output; `seed` makes it unique.
pub(crate) fn spend(seed: u64) -> Transaction {
    let mut prev = [0u8; 32];
    prev[..8].copy_from_slice(&seed.to_le_bytes());
    prev[31] = 1;
    Transaction {
        version: 2,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid(prev),
                vout: 0,
            },
            script_sig: vec![0x51],
            sequence: u32::MAX,
            witness: Default::default(),
        }],
        output: vec![TxOut {
            value: seed,
            script_pubkey: vec![0x51],
        }],
        lock_time: 0,
    }
}

/// A valid block on top of `prev` at `height` with `txs` extra transactions; `tag` varies the
/// coinbase and the spends so that sibling blocks differ.
pub(crate) fn block(prev: BlockHash, height: u32, txs: usize, tag: u64) -> Block {
    let mut block = unsealed(height, txs, tag);
    block.header.prev_blockhash = prev;
    seal_block(&mut block, height, Seal::Nonce).expect("no proof of work to do");
    assert!(block.check().is_ok());
    block
}

/// The block [`block`] makes, before it is linked and sealed.
fn unsealed(height: u32, txs: usize, tag: u64) -> Block {
    let mut txdata = vec![coinbase(height, tag)];
    for i in 0..txs {
        txdata.push(spend(
            tag.wrapping_mul(1_000_003) ^ ((height as u64) << 20) ^ i as u64,
        ));
    }
    Block {
        header: Header {
            version: 4,
            prev_blockhash: BlockHash::default(),
            merkle_root: Default::default(),
            time: 1_600_000_000 + height,
            bits: 0x207f_ffff,
            nonce: tag as u32,
        },
        txdata,
    }
}

/// A chain of `len` blocks (height 0 first) with `txs` extra transactions each, built by the
/// one chain builder.
pub(crate) fn chain_of(len: u32, txs: usize, tag: u64) -> Vec<Block> {
    build_chain(len, Seal::Nonce, |height| unsealed(height, txs, tag))
        .expect("no proof of work to do")
}

/// An in-memory best chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestChain {
    headers: Vec<Header>,
    index: HashMap<BlockHash, u32>,
}

impl TestChain {
    pub(crate) fn new(blocks: &[Block]) -> Self {
        let mut chain = Self::default();
        for b in blocks {
            chain.push(b.header);
        }
        chain
    }

    pub(crate) fn push(&mut self, header: Header) {
        self.index
            .insert(header.block_hash(), self.headers.len() as u32);
        self.headers.push(header);
    }

    /// Cuts the chain back to `len` headers (a reorg's first half).
    pub(crate) fn truncate(&mut self, len: u32) {
        for header in self.headers.drain(len as usize..) {
            self.index.remove(&header.block_hash());
        }
    }
}

impl BestChain for TestChain {
    fn tip_height(&self) -> Option<u32> {
        (self.headers.len() as u32).checked_sub(1)
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        self.headers.get(height as usize).copied()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.headers.get(height as usize).map(Header::block_hash)
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.index.get(hash).copied()
    }
}

/// Golden values: the hashes of the test chains the serving tests build.
#[test]
fn test_chains_are_unchanged() {
    let digest = |blocks: &[Block]| {
        blocks.iter().fold(0u64, |acc, b| {
            acc.rotate_left(7) ^ u64::from_le_bytes(b.block_hash().0[..8].try_into().unwrap())
        })
    };
    let digests: Vec<u64> = [(6, 5, 1), (8, 3, 2), (5, 0, 1), (3, 3, 5)]
        .into_iter()
        .map(|(len, txs, tag)| digest(&chain_of(len, txs, tag)))
        .collect();
    assert_eq!(
        digests,
        [
            390497767986824421,
            10959991582324134050,
            13571311900251388190,
            11882600873101732377
        ]
    );
}
