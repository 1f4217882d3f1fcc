//! The per-member transaction index: txid → (block, position) for the blocks this member
//! holds (serves S16: a member answers a query from its own blocks).
//!
//! # Overview
//!
//! The index is kept compact because a simulator runs thousands of nodes: each transaction
//! costs one map entry keyed by the first [`TxIndexConfig::key_bits`] bits of its txid (8 bytes)
//! holding a 4-byte block slot and a 4-byte position. Two txids may share a short key; the
//! index then keeps every location (an overflow list) and [`TxIndex::candidates`] returns all
//! of them. A candidate is a *hint*: the caller confirms it against the block itself
//! ([`TxIndex::confirm`]) before answering, so a collision costs one extra block read, never a
//! wrong answer.
//!
//! The index changes only with the shard: [`TxIndex::add_block`] when a block is stored,
//! [`TxIndex::remove_block`] when it is dropped (reorg, eviction, hand-over). Both return the
//! key/value [`KvOp`] batch that persists the change: one record per block, key
//! `"txi/" ‖ block hash`, value the block's short keys and a checksum over key and value (so a
//! record corrupted on disk is refused, not loaded with wrong keys). [`TxIndex::load_record`] rebuilds the
//! index from those records at start; a block whose record is missing or corrupt is re-indexed
//! from the stored block itself with `add_block`.
//!
//! # Usage
//!
//! ```
//! use shoal_core::serve::txindex::{TxIndex, TxIndexConfig};
//! # use shoal_core::chain::{Block, Header, Transaction, TxIn, TxOut, OutPoint};
//! # let coinbase = Transaction { version: 1, input: vec![TxIn { previous_output: OutPoint::NULL,
//! #     script_sig: vec![0x51], sequence: 0, witness: Default::default() }], output: vec![TxOut { value: 1,
//! #     script_pubkey: vec![] }], lock_time: 0 };
//! # let mut block = Block { header: Header::default(), txdata: vec![coinbase] };
//! # block.header.merkle_root = block.compute_merkle_root().0;
//! let mut index = TxIndex::new(TxIndexConfig::default());
//! let batch = index.add_block(&block); // persist `batch` with the block, in one transaction
//! assert_eq!(batch.len(), 1);
//! let txid = block.txdata[0].txid();
//! let (hash, pos) = index.candidates(&txid).next().unwrap();
//! assert_eq!((hash, pos), (block.block_hash(), 0));
//! assert!(TxIndex::confirm(&block, &txid, pos));
//! ```

use std::collections::HashMap;

use crate::chain::{Block, BlockHash, Txid};

/// The key prefix of the index's records in the node's key/value store.
pub const RECORD_PREFIX: &[u8; 4] = b"txi/";
/// Most transactions a record may list (a 4 MB block holds fewer than 25,000 of 60+ bytes;
/// this leaves room and stops a corrupt record from allocating without limit).
pub const MAX_RECORD_TXS: usize = 100_000;
/// Bytes of a record's checksum.
const CHECK_BYTES: usize = 8;
/// The largest record value: a count, [`MAX_RECORD_TXS`] short keys and the checksum.
pub const MAX_RECORD_BYTES: usize = 4 + 8 * MAX_RECORD_TXS + CHECK_BYTES;

/// Configuration of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxIndexConfig {
    /// Bits of the txid kept as the key (1..=64). Fewer bits save nothing in memory (the key is
    /// a `u64` either way) but force collisions; tests use few bits to exercise the fallback.
    pub key_bits: u32,
}

impl Default for TxIndexConfig {
    fn default() -> Self {
        Self { key_bits: 64 }
    }
}

/// One write to the node's key/value store. The node wraps a batch in a storage command with a
/// request id and writes it atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// Why a stored index record was refused (the block is then re-indexed from its bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxIndexError {
    /// The key is not `"txi/"` followed by a 32-byte block hash.
    #[error("index record key is not \"txi/\" and a 32-byte block hash ({0} bytes)")]
    BadKey(usize),
    /// The value is not a count followed by that many 8-byte keys.
    #[error("index record value of {len} bytes does not hold {count} 8-byte keys")]
    BadValue {
        /// Bytes in the value.
        len: usize,
        /// The count it claims.
        count: usize,
    },
    /// The record lists more transactions than any block can hold.
    #[error("index record lists {0} transactions, more than {MAX_RECORD_TXS}")]
    TooManyTransactions(usize),
    /// The checksum does not match the key and value (corrupted on disk).
    #[error("index record checksum does not match")]
    Checksum,
}

/// Where a transaction sits: a block slot and a position in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    slot: u32,
    pos: u32,
}

#[derive(Debug, Clone)]
struct IndexedBlock {
    hash: BlockHash,
    /// The short key of each transaction, in block order.
    keys: Box<[u64]>,
}

/// The transaction index of one member. See the module docs.
#[derive(Debug, Clone)]
pub struct TxIndex {
    config: TxIndexConfig,
    /// Block slots; `None` slots are free and listed in `free`.
    blocks: Vec<Option<IndexedBlock>>,
    free: Vec<u32>,
    by_hash: HashMap<BlockHash, u32>,
    /// Short key → its first location.
    primary: HashMap<u64, Loc>,
    /// Short key → further locations (colliding keys, or one txid in two held blocks).
    overflow: HashMap<u64, Vec<Loc>>,
    entries: usize,
}

impl TxIndex {
    /// An empty index.
    pub fn new(config: TxIndexConfig) -> Self {
        assert!(
            (1..=64).contains(&config.key_bits),
            "key_bits must be 1..=64"
        );
        Self {
            config,
            blocks: Vec::new(),
            free: Vec::new(),
            by_hash: HashMap::new(),
            primary: HashMap::new(),
            overflow: HashMap::new(),
            entries: 0,
        }
    }

    /// The short key of `txid`: its first bytes, little-endian, cut to `key_bits`.
    pub fn short_key(&self, txid: &Txid) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&txid.0[..8]);
        let key = u64::from_le_bytes(first);
        if self.config.key_bits == 64 {
            key
        } else {
            key & ((1u64 << self.config.key_bits) - 1)
        }
    }

    /// Indexes a stored block and returns the batch that persists it. Indexing a block twice
    /// changes nothing and returns an empty batch.
    pub fn add_block(&mut self, block: &Block) -> Vec<KvOp> {
        let hash = block.block_hash();
        if self.by_hash.contains_key(&hash) {
            return Vec::new();
        }
        self.add_txids(hash, &block.txids())
    }

    /// [`TxIndex::add_block`] for a block whose transaction ids (in block order) are already
    /// known, e.g. from [`Block::check_with_txids`].
    pub fn add_txids(&mut self, hash: BlockHash, txids: &[Txid]) -> Vec<KvOp> {
        if self.by_hash.contains_key(&hash) {
            return Vec::new();
        }
        let keys: Box<[u64]> = txids.iter().map(|txid| self.short_key(txid)).collect();
        let record = vec![KvOp::Put {
            key: record_key(&hash),
            value: encode_record(&hash, &keys),
        }];
        self.insert(hash, keys);
        record
    }

    /// Rebuilds one block's entries from its stored record (at start). A record for a block
    /// already indexed is ignored.
    pub fn load_record(&mut self, key: &[u8], value: &[u8]) -> Result<BlockHash, TxIndexError> {
        let hash = parse_record_key(key)?;
        let keys = decode_record(&hash, value)?;
        if !self.by_hash.contains_key(&hash) {
            let mask = if self.config.key_bits == 64 {
                u64::MAX
            } else {
                (1u64 << self.config.key_bits) - 1
            };
            self.insert(hash, keys.into_iter().map(|k| k & mask).collect());
        }
        Ok(hash)
    }

    /// Drops a block's entries and returns the batch that deletes its record. Dropping a block
    /// that is not indexed returns an empty batch.
    pub fn remove_block(&mut self, hash: &BlockHash) -> Vec<KvOp> {
        let Some(slot) = self.by_hash.remove(hash) else {
            return Vec::new();
        };
        let indexed = self.blocks[slot as usize]
            .take()
            .expect("by_hash points at a used slot");
        for (pos, key) in indexed.keys.iter().enumerate() {
            self.remove_loc(
                *key,
                Loc {
                    slot,
                    pos: pos as u32,
                },
            );
        }
        self.free.push(slot);
        vec![KvOp::Delete {
            key: record_key(hash),
        }]
    }

    /// Where `txid` may be: (block hash, position) for every held block whose transaction at
    /// that position has the same short key. Confirm each with [`TxIndex::confirm`].
    pub fn candidates(&self, txid: &Txid) -> impl Iterator<Item = (BlockHash, u32)> + '_ {
        let key = self.short_key(txid);
        self.primary
            .get(&key)
            .into_iter()
            .chain(self.overflow.get(&key).into_iter().flatten())
            .map(|loc| {
                let block = self.blocks[loc.slot as usize]
                    .as_ref()
                    .expect("a location points at a used slot");
                (block.hash, loc.pos)
            })
    }

    /// Whether `block` really has `txid` at `pos` (the fallback for short-key collisions).
    pub fn confirm(block: &Block, txid: &Txid, pos: u32) -> bool {
        block
            .txdata
            .get(pos as usize)
            .is_some_and(|tx| tx.txid() == *txid)
    }

    /// Whether `hash` is indexed.
    pub fn contains_block(&self, hash: &BlockHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The indexed blocks, in no particular order.
    pub fn blocks(&self) -> impl Iterator<Item = BlockHash> + '_ {
        self.by_hash.keys().copied()
    }

    /// Number of indexed blocks.
    pub fn block_count(&self) -> usize {
        self.by_hash.len()
    }

    /// Number of indexed transactions.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn insert(&mut self, hash: BlockHash, keys: Box<[u64]>) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.blocks.push(None);
                u32::try_from(self.blocks.len() - 1).expect("fewer than 2^32 blocks")
            }
        };
        for (pos, key) in keys.iter().enumerate() {
            let loc = Loc {
                slot,
                pos: pos as u32,
            };
            match self.primary.entry(*key) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(loc);
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.overflow.entry(*key).or_default().push(loc);
                }
            }
        }
        self.entries += keys.len();
        debug_assert!(self.blocks[slot as usize].is_none());
        self.blocks[slot as usize] = Some(IndexedBlock { hash, keys });
        self.by_hash.insert(hash, slot);
    }

    fn remove_loc(&mut self, key: u64, loc: Loc) {
        self.entries -= 1;
        if self.primary.get(&key) == Some(&loc) {
            // Promote an overflow location, if any.
            match self.overflow.get_mut(&key).and_then(Vec::pop) {
                Some(next) => {
                    self.primary.insert(key, next);
                }
                None => {
                    self.primary.remove(&key);
                }
            }
        } else if let Some(list) = self.overflow.get_mut(&key) {
            let i = list
                .iter()
                .position(|l| *l == loc)
                .expect("a location not in primary is in overflow");
            list.swap_remove(i);
        } else {
            unreachable!("an indexed location is in primary or overflow");
        }
        if self.overflow.get(&key).is_some_and(Vec::is_empty) {
            self.overflow.remove(&key);
        }
    }
}

/// `"txi/" ‖ block hash`.
pub fn record_key(hash: &BlockHash) -> Vec<u8> {
    let mut key = RECORD_PREFIX.to_vec();
    key.extend_from_slice(&hash.0);
    key
}

fn parse_record_key(key: &[u8]) -> Result<BlockHash, TxIndexError> {
    match key.strip_prefix(RECORD_PREFIX.as_slice()) {
        Some(rest) if rest.len() == 32 => {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(rest);
            Ok(BlockHash(hash))
        }
        _ => Err(TxIndexError::BadKey(key.len())),
    }
}

/// A 4-byte little-endian count, then each short key as 8 little-endian bytes, then the
/// first 8 bytes of `sha256d(record key ‖ count ‖ keys)`.
fn encode_record(hash: &BlockHash, keys: &[u64]) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + 8 * keys.len() + CHECK_BYTES);
    value.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for key in keys {
        value.extend_from_slice(&key.to_le_bytes());
    }
    let check = record_check(hash, &value);
    value.extend_from_slice(&check);
    value
}

fn record_check(hash: &BlockHash, body: &[u8]) -> [u8; CHECK_BYTES] {
    let mut data = record_key(hash);
    data.extend_from_slice(body);
    let digest = crate::chain::sha256d(&data);
    let mut check = [0u8; CHECK_BYTES];
    check.copy_from_slice(&digest[..CHECK_BYTES]);
    check
}

fn decode_record(hash: &BlockHash, value: &[u8]) -> Result<Vec<u64>, TxIndexError> {
    let Some((count, rest)) = value.split_first_chunk::<4>() else {
        return Err(TxIndexError::BadValue {
            len: value.len(),
            count: 0,
        });
    };
    let count = u32::from_le_bytes(*count) as usize;
    if count > MAX_RECORD_TXS {
        return Err(TxIndexError::TooManyTransactions(count));
    }
    if count == 0 || rest.len() != 8 * count + CHECK_BYTES {
        return Err(TxIndexError::BadValue {
            len: value.len(),
            count,
        });
    }
    let (body, check) = value.split_at(value.len() - CHECK_BYTES);
    if record_check(hash, body) != check {
        return Err(TxIndexError::Checksum);
    }
    Ok(body[4..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::serve::testutil::{block, chain_of};

    #[test]
    fn add_lookup_confirm_remove() {
        let blocks = chain_of(3, 4, 1);
        let mut index = TxIndex::new(TxIndexConfig::default());
        for b in &blocks {
            assert_eq!(index.add_block(b).len(), 1);
        }
        assert!(index.add_block(&blocks[0]).is_empty(), "idempotent");
        assert_eq!(index.len(), 15);
        let txid = blocks[1].txdata[3].txid();
        let found: Vec<_> = index.candidates(&txid).collect();
        assert_eq!(found, vec![(blocks[1].block_hash(), 3)]);
        assert!(TxIndex::confirm(&blocks[1], &txid, 3));
        assert!(!TxIndex::confirm(&blocks[1], &txid, 2));
        assert!(!TxIndex::confirm(&blocks[1], &txid, 99));
        let batch = index.remove_block(&blocks[1].block_hash());
        assert_eq!(
            batch,
            vec![KvOp::Delete {
                key: record_key(&blocks[1].block_hash())
            }]
        );
        assert_eq!(index.candidates(&txid).count(), 0);
        assert_eq!(index.len(), 10);
        assert!(index.remove_block(&blocks[1].block_hash()).is_empty());
    }

    #[test]
    fn records_rebuild_the_same_index() {
        let blocks = chain_of(4, 3, 2);
        let mut index = TxIndex::new(TxIndexConfig::default());
        let mut store = HashMap::new();
        for b in &blocks {
            for op in index.add_block(b) {
                if let KvOp::Put { key, value } = op {
                    store.insert(key, value);
                }
            }
        }
        let mut rebuilt = TxIndex::new(TxIndexConfig::default());
        for (key, value) in &store {
            rebuilt.load_record(key, value).unwrap();
        }
        for b in &blocks {
            for tx in &b.txdata {
                let a: Vec<_> = index.candidates(&tx.txid()).collect();
                let r: Vec<_> = rebuilt.candidates(&tx.txid()).collect();
                assert_eq!(a, r);
            }
        }
    }

    #[test]
    fn hostile_records_are_refused_without_change() {
        let mut index = TxIndex::new(TxIndexConfig::default());
        let key = record_key(&BlockHash([7; 32]));
        assert!(matches!(
            index.load_record(b"txi/short", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(TxIndexError::BadKey(9))
        ));
        assert!(matches!(
            index.load_record(&key, &[]),
            Err(TxIndexError::BadValue { .. })
        ));
        assert!(matches!(
            index.load_record(&key, &[2, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(TxIndexError::BadValue { count: 2, .. })
        ));
        assert!(matches!(
            index.load_record(&key, &u32::MAX.to_le_bytes()),
            Err(TxIndexError::TooManyTransactions(_))
        ));
        // A good record with any one bit flipped, or under another block's key.
        let good = encode_record(&BlockHash([7; 32]), &[1, 2, 3]);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(index.load_record(&key, &bad).is_err(), "bit {bit}");
        }
        assert_eq!(
            index.load_record(&record_key(&BlockHash([8; 32])), &good),
            Err(TxIndexError::Checksum)
        );
        assert!(index.is_empty());
        assert_eq!(index.block_count(), 0);
    }

    #[test]
    fn colliding_short_keys_return_every_candidate() {
        // Two bits of key: with 40 transactions, collisions are certain.
        let mut index = TxIndex::new(TxIndexConfig { key_bits: 2 });
        let b = block(BlockHash::ZERO, 0, 39, 9);
        index.add_block(&b);
        for (pos, tx) in b.txdata.iter().enumerate() {
            let txid = tx.txid();
            let hits: Vec<_> = index
                .candidates(&txid)
                .filter(|(_, p)| TxIndex::confirm(&b, &txid, *p))
                .collect();
            assert_eq!(hits, vec![(b.block_hash(), pos as u32)]);
            assert!(index.candidates(&txid).count() > 1);
        }
    }

    /// The model: the exact set of (txid, block, pos) for the blocks held.
    fn model(held: &[&Block]) -> BTreeSet<(Txid, BlockHash, u32)> {
        held.iter()
            .flat_map(|b| {
                b.txdata
                    .iter()
                    .enumerate()
                    .map(move |(p, tx)| (tx.txid(), b.block_hash(), p as u32))
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Under any sequence of adds and drops (and with collisions forced by short keys),
        /// confirmed candidates are exactly the held blocks' transactions, and reloading the
        /// persisted records gives the same answers.
        #[test]
        fn index_matches_model(
            key_bits in prop_oneof![Just(3u32), Just(64u32)],
            ops in prop::collection::vec((any::<bool>(), 0usize..6), 1..40),
        ) {
            let pool: Vec<Block> = (0..6u64)
                .map(|i| block(BlockHash([i as u8; 32]), i as u32, (i % 4) as usize, i))
                .collect();
            let config = TxIndexConfig { key_bits };
            let mut index = TxIndex::new(config);
            let mut held: Vec<usize> = Vec::new();
            let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for (add, which) in ops {
                let batch = if add {
                    if !held.contains(&which) { held.push(which); }
                    index.add_block(&pool[which])
                } else {
                    held.retain(|h| *h != which);
                    index.remove_block(&pool[which].block_hash())
                };
                for op in batch {
                    match op {
                        KvOp::Put { key, value } => { store.insert(key, value); }
                        KvOp::Delete { key } => { store.remove(&key); }
                    }
                }
                let held_blocks: Vec<&Block> = held.iter().map(|i| &pool[*i]).collect();
                let expected = model(&held_blocks);
                prop_assert_eq!(index.len(), expected.len());
                prop_assert_eq!(index.block_count(), held.len());
                prop_assert_eq!(store.len(), held.len());
                let mut reloaded = TxIndex::new(config);
                for (k, v) in &store { reloaded.load_record(k, v).unwrap(); }
                for b in &pool {
                    for tx in &b.txdata {
                        let txid = tx.txid();
                        for idx in [&index, &reloaded] {
                            let got: BTreeSet<_> = idx
                                .candidates(&txid)
                                .filter(|(h, p)| {
                                    let blk = pool.iter().find(|b| b.block_hash() == *h).unwrap();
                                    TxIndex::confirm(blk, &txid, *p)
                                })
                                .map(|(h, p)| (txid, h, p))
                                .collect();
                            let want: BTreeSet<_> =
                                expected.iter().filter(|e| e.0 == txid).copied().collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                }
            }
        }
    }
}
