//! Blocks this node read from its own store and checked whole, remembered as their
//! transaction ids and where each transaction lies in the block's bytes (issue 16: costly
//! work cached).
//!
//! A query answered from the node's own blocks costs a read of the block and a full check:
//! every transaction decoded and hashed (its witness too), a megabyte of hashing for the
//! proof of one transaction of a 1 MB block — work a client asking for transactions of one
//! big block again and again could make a node do at its rate limit. Once a block passed its
//! check, its txids and transaction offsets are kept here (36 bytes a transaction; at most
//! [`TXIDS_MAX`] transactions and [`BLOCKS_MAX`] blocks, the least recently used forgotten
//! first). The next answer from that block checks only what it uses: the block's bytes have
//! the length they had, its first 80 bytes hash to the block, the one transaction decodes
//! from its offset to its txid; the proof is built from the kept txids and, as every proof
//! from the node's own store, verified against the header chain before it is used. A read
//! that fails those checks is corrupt, like a block that fails its full check.

use std::collections::HashMap;

use crate::chain::{Block, BlockHash, Header, Transaction, Txid, HEADER_SIZE};

/// Transactions remembered at most, across blocks (9 MiB of txids and offsets).
pub(crate) const TXIDS_MAX: usize = 1 << 18;

/// Blocks remembered at most.
pub(crate) const BLOCKS_MAX: usize = 64;

struct Entry {
    txids: Vec<Txid>,
    /// Where each transaction starts, and the block's length last.
    offsets: Vec<u32>,
    used: u64,
}

/// What a kept block gives a query (see [`Checked::lookup`]).
pub(crate) enum Lookup<'a> {
    /// The block is not kept: check it whole.
    Unknown,
    /// The transaction is not at that position of the block.
    NotThere,
    /// The read does not match what the block was: corrupt.
    Corrupt,
    /// The block's txids, and the transaction's bytes as read.
    Found { txids: &'a [Txid], tx: Vec<u8> },
}

impl Lookup<'_> {
    /// Whether the transaction was found.
    #[cfg(test)]
    pub(crate) fn is_found(&self) -> bool {
        matches!(self, Lookup::Found { .. })
    }
}

/// The kept blocks. See the module docs.
#[derive(Default)]
pub(crate) struct Checked {
    blocks: HashMap<BlockHash, Entry>,
    txids: usize,
    clock: u64,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("blocks", &self.blocks.len())
            .field("txids", &self.txids)
            .finish()
    }
}

impl Checked {
    /// Keeps `block` (`len` bytes, which passed its full check and gave `txids`).
    pub(crate) fn insert(
        &mut self,
        block_hash: BlockHash,
        block: &Block,
        len: usize,
        txids: &[Txid],
    ) {
        let n = txids.len();
        if n == 0
            || n > TXIDS_MAX
            || n != block.txdata.len()
            || self.blocks.contains_key(&block_hash)
        {
            return;
        }
        let Ok(len) = u32::try_from(len) else { return };
        // From the end: the last transaction ends where the block does.
        let mut offsets = vec![0u32; n + 1];
        offsets[n] = len;
        for (i, tx) in block.txdata.iter().enumerate().rev() {
            let Some(start) = offsets[i + 1].checked_sub(tx.total_size() as u32) else {
                return;
            };
            offsets[i] = start;
        }
        if (offsets[0] as usize) <= HEADER_SIZE {
            return;
        }
        while !self.blocks.is_empty()
            && (self.blocks.len() >= BLOCKS_MAX || self.txids + n > TXIDS_MAX)
        {
            let oldest = self
                .blocks
                .iter()
                .min_by_key(|(hash, e)| (e.used, **hash))
                .map(|(hash, _)| *hash)
                .expect("not empty");
            if let Some(gone) = self.blocks.remove(&oldest) {
                self.txids -= gone.txids.len();
            }
        }
        self.clock += 1;
        self.txids += n;
        self.blocks.insert(
            block_hash,
            Entry {
                txids: txids.to_vec(),
                offsets,
                used: self.clock,
            },
        );
    }

    /// What the kept block `block_hash` says of `txid` at `pos`, given its `bytes` as read.
    pub(crate) fn lookup(
        &mut self,
        block_hash: &BlockHash,
        bytes: &[u8],
        txid: &Txid,
        pos: u32,
    ) -> Lookup<'_> {
        self.clock += 1;
        let clock = self.clock;
        let Some(entry) = self.blocks.get_mut(block_hash) else {
            return Lookup::Unknown;
        };
        entry.used = clock;
        let pos = pos as usize;
        if entry.txids.get(pos) != Some(txid) {
            return Lookup::NotThere;
        }
        let (start, end) = (entry.offsets[pos] as usize, entry.offsets[pos + 1] as usize);
        let header_ok = bytes.len() == entry.offsets[entry.txids.len()] as usize
            && Header::decode(&bytes[..HEADER_SIZE]).is_ok_and(|h| h.block_hash() == *block_hash);
        let tx = &bytes[start.min(bytes.len())..end.min(bytes.len())];
        let tx_ok = header_ok && Transaction::decode(tx).is_ok_and(|t| t.txid() == *txid);
        if !tx_ok {
            return Lookup::Corrupt;
        }
        Lookup::Found {
            txids: &entry.txids,
            tx: tx.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::generate::{generate_chain, GenerateConfig};

    fn block() -> (BlockHash, Block, Vec<u8>) {
        let chain = generate_chain(&GenerateConfig {
            blocks: 3,
            txs_per_block: 40,
            ..GenerateConfig::default()
        })
        .expect("generated");
        let block = chain.last().expect("a block").clone();
        let bytes = block.encode();
        assert!(block.txdata.len() > 10);
        (block.block_hash(), block, bytes)
    }

    #[test]
    fn a_kept_block_answers_from_the_one_transaction_and_a_damaged_read_is_corrupt() {
        let (hash, block, bytes) = block();
        let (_, txids) = block.check_with_txids().expect("valid");
        let mut checked = Checked::default();
        assert!(matches!(
            checked.lookup(&hash, &bytes, &txids[3], 3),
            Lookup::Unknown
        ));
        checked.insert(hash, &block, bytes.len(), &txids);
        for (pos, txid) in txids.iter().enumerate() {
            match checked.lookup(&hash, &bytes, txid, pos as u32) {
                Lookup::Found { txids: kept, tx } => {
                    assert_eq!(kept, &txids[..]);
                    assert_eq!(tx, block.txdata[pos].encode());
                }
                _ => panic!("position {pos} not found"),
            }
        }
        assert!(matches!(
            checked.lookup(&hash, &bytes, &txids[3], 4),
            Lookup::NotThere
        ));
        // A flipped byte in the transaction, in the header, a truncated read: corrupt.
        let mut inside = bytes.clone();
        let at = checked.blocks[&hash].offsets[5] as usize + 10;
        inside[at] ^= 1;
        assert!(matches!(
            checked.lookup(&hash, &inside, &txids[5], 5),
            Lookup::Corrupt
        ));
        let mut header = bytes.clone();
        header[4] ^= 1;
        assert!(matches!(
            checked.lookup(&hash, &header, &txids[5], 5),
            Lookup::Corrupt
        ));
        assert!(matches!(
            checked.lookup(&hash, &bytes[..bytes.len() - 1], &txids[5], 5),
            Lookup::Corrupt
        ));
        assert!(matches!(
            checked.lookup(&hash, &bytes[..10], &txids[5], 5),
            Lookup::Corrupt
        ));
    }

    #[test]
    fn the_kept_blocks_are_bounded_and_the_least_recently_used_goes_first() {
        let (hash, block, bytes) = block();
        let (_, txids) = block.check_with_txids().expect("valid");
        let mut checked = Checked::default();
        for i in 0..BLOCKS_MAX as u8 + 3 {
            let mut h = hash.to_byte_array();
            h[0] = i;
            checked.insert(BlockHash::from_byte_array(h), &block, bytes.len(), &txids);
            if i == 10 {
                // Touch the first: the second is now the oldest.
                let first = BlockHash::from_byte_array({
                    let mut h = hash.to_byte_array();
                    h[0] = 0;
                    h
                });
                let _ = checked.lookup(&first, &bytes, &txids[0], 0);
            }
        }
        assert_eq!(checked.blocks.len(), BLOCKS_MAX);
        assert_eq!(checked.txids, BLOCKS_MAX * txids.len());
        let kept = |i: u8| {
            let mut h = hash.to_byte_array();
            h[0] = i;
            checked.blocks.contains_key(&BlockHash::from_byte_array(h))
        };
        assert!(kept(0) && !kept(1) && !kept(2) && !kept(3) && kept(4));
    }
}
