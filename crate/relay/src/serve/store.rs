//! The relay's chain on disk (redb): headers by height, blocks by hash, and the archive node's
//! key/value records.
//!
//! The relay holds the whole chain and serves it (S14–S16) through its archive node
//! ([`super::archive`]), which reads this store through [`shoal_host::BlockStore`]: header
//! ranges from the node's header view, whole blocks by hash, and transaction queries answered
//! from the node's own transaction index (its records in the `node_kv` table) with a Merkle
//! proof built from the stored block. Every block is checked against its header (Merkle root,
//! coinbase, weight, witness commitment, proof of work) and must extend the stored tip before
//! it is written, in one transaction with its header and height, so a crash or a signal never
//! leaves a block half written. Blocks are re-hashed when read; a stored block that no longer
//! matches its key is reported as corrupt, never served.
//!
//! # The store as the archive node's `BlockStore`
//!
//! The store **is** the chain: only the block source and imports write blocks
//! ([`ChainStore::append`]). To the node it is an archive's store: a `Put` is accepted when the
//! store already holds that block (the source appended it before the node was told), a
//! `Delete` changes nothing (an archive keeps every block), records go to `node_kv`, and the
//! block listing is every stored block.
//!
//! # Reorganisations
//!
//! A relay that follows a Bitcoin network ([`super::follow`]) or imports a file holding a fork
//! ([`super::import`]) switches branches: [`ChainStore::rewind`] takes the blocks above the
//! fork off the chain (headers and heights) in one transaction, and the new branch is appended
//! on it. The losing branch's bytes stay (table `stale`) until they are [`STALE_KEEP_DEPTH`]
//! blocks below the tip; a branch that comes back is re-linked without being written again.
//!
//! # Older databases
//!
//! A database written before the relay answered through its archive node also has a `txids`
//! table (txid → height and position), which the relay's own proof builder read. Nothing reads
//! it now: it is dropped when such a database is opened; every other table is kept as it is.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use shoal_core::chain::{Block, BlockError, BlockHash, Header, PowError, Target};
use shoal_core::node::{KvOp, KvRecord, KV_KEY_MAX, KV_VALUE_MAX};
use shoal_host::{BlockStore, Write};

/// height (big-endian u32) → 80-byte header.
const HEADERS: TableDefinition<'static, u32, &'static [u8]> = TableDefinition::new("headers");
/// block hash → height.
const HEIGHTS: TableDefinition<'static, &'static [u8; 32], u32> = TableDefinition::new("heights");
/// block hash → raw block bytes.
const BLOCKS: TableDefinition<'static, &'static [u8; 32], &'static [u8]> =
    TableDefinition::new("blocks");
/// block hash → the height it had: blocks of branches that left the best chain (a
/// reorganisation, [`ChainStore::rewind`]), their bytes still in [`BLOCKS`] until they are
/// [`STALE_KEEP_DEPTH`] blocks below the tip, so a reorganisation back to them needs no
/// download and a page that asked for one just before the switch still gets it.
const STALE: TableDefinition<'static, &'static [u8; 32], u32> = TableDefinition::new("stale");

/// How far below the tip a block of a losing branch is kept (two days of blocks).
pub const STALE_KEEP_DEPTH: u32 = 288;

/// Of older databases only: txid → (height, position in block). Dropped on open.
const LEGACY_TXIDS: TableDefinition<'static, &'static [u8; 32], (u32, u32)> =
    TableDefinition::new("txids");

/// The archive node's key/value records (its transaction index, see
/// `shoal_core::serve::txindex`): key → value.
const NODE_KV: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("node_kv");

/// Totals kept beside the chain, each updated in the transaction that changes it.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
/// [`META`] key: bytes of every stored block.
const CHAIN_BYTES: &str = "chain_bytes";

/// Most headers returned by one range read.
pub const MAX_HEADERS_PER_READ: u32 = 2000;

/// The loosest proof-of-work limit of any Bitcoin network (regtest's); a block whose bits
/// claim an easier target is refused.
const LOOSEST_POW_LIMIT_BITS: u32 = 0x207f_ffff;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] redb::Error),
    #[error("block {hash} does not extend the stored tip {tip} (its parent is {parent})")]
    NotOnTip {
        hash: BlockHash,
        parent: BlockHash,
        tip: BlockHash,
    },
    #[error("first block {hash} is neither a genesis block nor carries a BIP34 height")]
    UnknownStartHeight { hash: BlockHash },
    #[error("block {hash} is invalid: {source}")]
    InvalidBlock { hash: BlockHash, source: BlockError },
    #[error("block {hash} fails proof of work: {source}")]
    BadProofOfWork { hash: BlockHash, source: PowError },
    #[error("stored data for {what} is corrupt")]
    Corrupt { what: String },
    #[error("key/value record of {key} and {value} bytes exceeds {KV_KEY_MAX} and {KV_VALUE_MAX}")]
    KvTooLarge { key: usize, value: usize },
}

fn db<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(error.into())
}

/// A write transaction with redb's quick repair on: each commit saves the allocator state and
/// commits in two phases, so the first open after a crash (a SIGKILL, a power cut) is almost
/// instant instead of walking the whole file (hours for a mainnet archive). Commits are a little
/// slower. Every write of the relay's stores goes through here.
pub(crate) fn write_tx(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    let mut tx = db.begin_write().map_err(self::db)?;
    tx.set_quick_repair(true);
    Ok(tx)
}

/// The tip of the stored chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u32,
    pub hash: BlockHash,
}

/// The chain on disk.
pub struct ChainStore {
    db: Database,
}

impl ChainStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::from_database(Database::create(path).map_err(db)?)
    }

    /// The store in a database already open (an in-memory one, in tests and fuzzing): the
    /// tables are created where missing and an older database is brought up to date, as by
    /// [`ChainStore::open`].
    pub fn from_database(database: Database) -> Result<Self, StoreError> {
        let tx = write_tx(&database)?;
        tx.open_table(HEADERS).map_err(db)?;
        tx.open_table(HEIGHTS).map_err(db)?;
        tx.open_table(BLOCKS).map_err(db)?;
        // Added later: created in an older database on first open, the rest kept.
        tx.open_table(NODE_KV).map_err(db)?;
        tx.open_table(STALE).map_err(db)?;
        if tx.delete_table(LEGACY_TXIDS).map_err(db)? {
            tracing::info!("dropped the txid table of an older database (the archive node indexes transactions itself)");
        }
        {
            // Added later: an older database's total is summed once, here.
            let mut meta = tx.open_table(META).map_err(db)?;
            if meta.get(CHAIN_BYTES).map_err(db)?.is_none() {
                let blocks = tx.open_table(BLOCKS).map_err(db)?;
                let mut total = 0u64;
                for entry in blocks.iter().map_err(db)? {
                    total += entry.map_err(db)?.1.value().len() as u64;
                }
                meta.insert(CHAIN_BYTES, total).map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(Self { db: database })
    }

    /// The highest stored block, if any.
    pub fn tip(&self) -> Result<Option<Tip>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let headers = tx.open_table(HEADERS).map_err(db)?;
        let Some((height, header)) = headers.last().map_err(db)? else {
            return Ok(None);
        };
        let header = decode_header(header.value(), height.value())?;
        Ok(Some(Tip {
            height: height.value(),
            hash: header.block_hash(),
        }))
    }

    /// The lowest stored height (0 for a chain from genesis; an import may start later).
    pub fn base_height(&self) -> Result<Option<u32>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let headers = tx.open_table(HEADERS).map_err(db)?;
        let base = headers
            .first()
            .map_err(db)?
            .map(|(height, _)| height.value());
        Ok(base)
    }

    /// Bytes of every stored block (their consensus encodings).
    pub fn chain_bytes(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = tx.open_table(META).map_err(db)?;
        let total = meta.get(CHAIN_BYTES).map_err(db)?.map(|v| v.value());
        Ok(total.unwrap_or(0))
    }

    /// Number of stored blocks.
    pub fn len(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(HEADERS).map_err(db)?.len().map_err(db)
    }

    /// Whether no block is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Checks `block` and appends it on the tip; returns its height. The first block of an
    /// empty store is a genesis block (height 0) or carries its height (BIP34).
    /// A refused block changes nothing on disk.
    pub fn append(&self, block: &Block) -> Result<u32, StoreError> {
        Ok(self.append_all(std::slice::from_ref(block))?[0])
    }

    /// Checks `blocks`, each on the one before it and the first on the tip, and appends them in
    /// one transaction (a catch-up writes many blocks with one durable commit, not one each);
    /// returns their heights. If one is refused, none is written.
    pub fn append_all(&self, blocks: &[Block]) -> Result<Vec<u32>, StoreError> {
        let pow_limit = Target::from_compact(LOOSEST_POW_LIMIT_BITS).expect("a valid compact");
        let mut tip = self.tip()?;
        let mut placed = Vec::with_capacity(blocks.len());
        for block in blocks {
            let hash = block.block_hash();
            block
                .check()
                .map_err(|source| StoreError::InvalidBlock { hash, source })?;
            block
                .header
                .check_proof_of_work(pow_limit)
                .map_err(|source| StoreError::BadProofOfWork { hash, source })?;
            let parent = block.header.prev_blockhash;
            let height = match tip {
                // A tip at the largest height is one no chain reaches: a damaged or hostile file.
                Some(tip) if tip.hash == parent => {
                    tip.height
                        .checked_add(1)
                        .ok_or_else(|| StoreError::Corrupt {
                            what: format!("the tip's height {}", tip.height),
                        })?
                }
                Some(tip) => {
                    return Err(StoreError::NotOnTip {
                        hash,
                        parent,
                        tip: tip.hash,
                    })
                }
                None if parent == BlockHash::default() => 0,
                None => block
                    .bip34_height()
                    .ok_or(StoreError::UnknownStartHeight { hash })?,
            };
            tip = Some(Tip { height, hash });
            placed.push(height);
        }
        let Some(top) = tip.filter(|_| !blocks.is_empty()) else {
            return Ok(placed);
        };
        let tx = write_tx(&self.db)?;
        {
            let mut headers = tx.open_table(HEADERS).map_err(db)?;
            let mut heights = tx.open_table(HEIGHTS).map_err(db)?;
            let mut stored = tx.open_table(BLOCKS).map_err(db)?;
            let mut stale = tx.open_table(STALE).map_err(db)?;
            // Saturating: a total read back from a damaged file may be anything.
            let mut meta = tx.open_table(META).map_err(db)?;
            let mut total = meta.get(CHAIN_BYTES).map_err(db)?.map_or(0, |v| v.value());
            for (block, &height) in blocks.iter().zip(&placed) {
                let hash = block.block_hash();
                headers
                    .insert(height, &block.header.encode()[..])
                    .map_err(db)?;
                heights.insert(&hash.0, height).map_err(db)?;
                // A block of a branch that comes back is already there.
                if stale.remove(&hash.0).map_err(db)?.is_none() {
                    let bytes = block.encode();
                    stored.insert(&hash.0, &bytes[..]).map_err(db)?;
                    total = total.saturating_add(bytes.len() as u64);
                }
            }
            // Blocks of losing branches deep enough below the new tip go.
            let mut deep = Vec::new();
            for entry in stale.iter().map_err(db)? {
                let (key, height) = entry.map_err(db)?;
                if height.value().saturating_add(STALE_KEEP_DEPTH) < top.height {
                    deep.push(*key.value());
                }
            }
            for key in deep {
                stale.remove(&key).map_err(db)?;
                if let Some(bytes) = stored.remove(&key).map_err(db)? {
                    total = total.saturating_sub(bytes.value().len() as u64);
                }
            }
            meta.insert(CHAIN_BYTES, total).map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(placed)
    }

    /// Takes the blocks above `to_height` off the chain, in one transaction (a
    /// reorganisation: the best chain forks at `to_height`); returns their hashes, highest
    /// first. Their bytes stay until they are [`STALE_KEEP_DEPTH`] below the tip. Nothing
    /// changes when `to_height` is at or above the tip.
    pub fn rewind(&self, to_height: u32) -> Result<Vec<BlockHash>, StoreError> {
        let Some(tip) = self.tip()? else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        let tx = write_tx(&self.db)?;
        {
            let mut headers = tx.open_table(HEADERS).map_err(db)?;
            let mut heights = tx.open_table(HEIGHTS).map_err(db)?;
            let mut stale = tx.open_table(STALE).map_err(db)?;
            let mut height = tip.height;
            while height > to_height {
                let Some(bytes) = headers.remove(height).map_err(db)? else {
                    break; // Below the store's base.
                };
                let hash = decode_header(bytes.value(), height)?.block_hash();
                drop(bytes);
                heights.remove(&hash.0).map_err(db)?;
                stale.insert(&hash.0, height).map_err(db)?;
                removed.push(hash);
                height -= 1;
            }
        }
        tx.commit().map_err(db)?;
        Ok(removed)
    }

    /// Blocks of losing branches still kept.
    pub fn stale_len(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        tx.open_table(STALE).map_err(db)?.len().map_err(db)
    }

    /// Up to `max_count` (at most [`MAX_HEADERS_PER_READ`]) consecutive headers from
    /// `start_height`; fewer at the tip, none above it.
    pub fn headers(&self, start_height: u32, max_count: u32) -> Result<Vec<Header>, StoreError> {
        let count = max_count.min(MAX_HEADERS_PER_READ);
        let end = start_height.saturating_add(count);
        let tx = self.db.begin_read().map_err(db)?;
        let headers = tx.open_table(HEADERS).map_err(db)?;
        let mut out = Vec::with_capacity(count as usize);
        for entry in headers.range(start_height..end).map_err(db)? {
            let (height, bytes) = entry.map_err(db)?;
            out.push(decode_header(bytes.value(), height.value())?);
        }
        Ok(out)
    }

    /// Applies a batch of the node's key/value writes in one transaction (all or none). A
    /// record larger than the node ever writes is refused.
    pub fn write_kv<'a>(&self, ops: impl IntoIterator<Item = &'a KvOp>) -> Result<(), StoreError> {
        let ops: Vec<&KvOp> = ops.into_iter().collect();
        for op in &ops {
            check_kv_size(op)?;
        }
        let tx = write_tx(&self.db)?;
        {
            let mut table = tx.open_table(NODE_KV).map_err(db)?;
            for op in &ops {
                match op {
                    KvOp::Put { key, value } => {
                        table.insert(key.as_slice(), value.as_slice()).map_err(db)?;
                    }
                    KvOp::Delete { key } => {
                        table.remove(key.as_slice()).map_err(db)?;
                    }
                }
            }
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    /// Every key/value record of the node. A record larger than the node ever writes (a
    /// corrupt or hostile file) is left out and deleted; the node re-indexes its block.
    pub fn kv_records(&self) -> Result<Vec<KvRecord>, StoreError> {
        let mut records = Vec::new();
        let mut oversized = Vec::new();
        {
            let tx = self.db.begin_read().map_err(db)?;
            let table = tx.open_table(NODE_KV).map_err(db)?;
            for entry in table.iter().map_err(db)? {
                let (key, value) = entry.map_err(db)?;
                let (key, value) = (key.value(), value.value());
                if key.len() > KV_KEY_MAX || value.len() > KV_VALUE_MAX {
                    tracing::warn!(
                        key = key.len(),
                        value = value.len(),
                        "oversized key/value record dropped"
                    );
                    oversized.push(key.to_vec());
                } else {
                    records.push((key.to_vec(), value.to_vec()));
                }
            }
        }
        if !oversized.is_empty() {
            let tx = write_tx(&self.db)?;
            {
                let mut table = tx.open_table(NODE_KV).map_err(db)?;
                for key in &oversized {
                    table.remove(key.as_slice()).map_err(db)?;
                }
            }
            tx.commit().map_err(db)?;
        }
        Ok(records)
    }

    /// The height of the block `hash`, if stored.
    pub fn height_of(&self, hash: &BlockHash) -> Result<Option<u32>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let heights = tx.open_table(HEIGHTS).map_err(db)?;
        Ok(heights.get(&hash.0).map_err(db)?.map(|h| h.value()))
    }

    /// The raw bytes of block `hash`, re-hashed against the key before they are returned.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let blocks = tx.open_table(BLOCKS).map_err(db)?;
        let Some(bytes) = blocks.get(&hash.0).map_err(db)? else {
            return Ok(None);
        };
        let bytes = bytes.value().to_vec();
        let stored_hash = bytes
            .get(..80)
            .and_then(|header| Header::decode(header).ok())
            .map(|header| header.block_hash());
        if stored_hash != Some(*hash) {
            return Err(StoreError::Corrupt {
                what: format!("block {hash}"),
            });
        }
        Ok(Some(bytes))
    }

    /// The block `hash`, decoded and checked against its header.
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let Some(bytes) = self.block_bytes(hash)? else {
            return Ok(None);
        };
        let block = Block::decode(&bytes).map_err(|_| StoreError::Corrupt {
            what: format!("block {hash}"),
        })?;
        if block.check().is_err() {
            return Err(StoreError::Corrupt {
                what: format!("block {hash}"),
            });
        }
        Ok(Some(block))
    }

    /// The hash of every stored block (in hash order).
    pub fn block_hashes(&self) -> Result<Vec<BlockHash>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let heights = tx.open_table(HEIGHTS).map_err(db)?;
        let mut hashes = Vec::with_capacity(heights.len().map_err(db)? as usize);
        for entry in heights.iter().map_err(db)? {
            let (hash, _) = entry.map_err(db)?;
            hashes.push(BlockHash(*hash.value()));
        }
        Ok(hashes)
    }
}

/// The archive node's view of the store (see the module docs): the chain is written only by
/// the block source and imports.
impl BlockStore for ChainStore {
    type Error = StoreError;

    /// A block is "stored" when the chain already holds it; anything else is refused.
    fn accepts(&mut self, hash: &BlockHash, _bytes: &[u8]) -> bool {
        match self.height_of(hash) {
            Ok(height) => height.is_some(),
            Err(error) => {
                tracing::warn!(%error, %hash, "cannot tell whether a block is stored");
                false
            }
        }
    }

    /// Only the records are written, in one transaction: an accepted put is a block the chain
    /// holds already, and an archive deletes nothing.
    async fn write(&mut self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        let records: Vec<&KvOp> = writes
            .iter()
            .filter_map(|write| match write {
                Write::Kv(op) => Some(*op),
                Write::PutBlock { .. } | Write::DeleteBlock { .. } => None,
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.write_kv(records)
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        self.block_bytes(hash)
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, StoreError> {
        ChainStore::block_hashes(self)
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, StoreError> {
        ChainStore::kv_records(self)
    }
}

fn decode_header(bytes: &[u8], height: u32) -> Result<Header, StoreError> {
    Header::decode(bytes).map_err(|_| StoreError::Corrupt {
        what: format!("header at height {height}"),
    })
}

/// Refuses a key/value record larger than the node ever writes.
pub(crate) fn check_kv_size(op: &KvOp) -> Result<(), StoreError> {
    let (key, value) = match op {
        KvOp::Put { key, value } => (key.len(), value.len()),
        KvOp::Delete { key } => (key.len(), 0),
    };
    if key > KV_KEY_MAX || value > KV_VALUE_MAX {
        return Err(StoreError::KvTooLarge { key, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mainnet_702861() -> Block {
        Block::decode(bitcoin_test_data::blocks::mainnet_702861()).expect("test block decodes")
    }

    #[test]
    fn real_block_is_stored_and_read_back_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let block = mainnet_702861();
        let hash = block.block_hash();
        {
            let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
            assert_eq!(store.chain_bytes().unwrap(), 0);
            assert_eq!(store.append(&block).unwrap(), 702_861, "height from BIP34");
            // A refused block adds nothing.
            assert!(store.append(&block).is_err());
        }
        // Reopened: everything is still there.
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        assert_eq!(
            store.tip().unwrap(),
            Some(Tip {
                height: 702_861,
                hash
            })
        );
        assert_eq!(store.headers(702_861, 10).unwrap(), vec![block.header]);
        assert!(store.headers(702_862, 10).unwrap().is_empty());
        assert_eq!(
            store.block_bytes(&hash).unwrap().unwrap(),
            bitcoin_test_data::blocks::mainnet_702861()
        );
        assert_eq!(store.block_hashes().unwrap(), vec![hash]);
        assert_eq!(store.height_of(&hash).unwrap(), Some(702_861));
        let size = bitcoin_test_data::blocks::mainnet_702861().len() as u64;
        assert_eq!(store.chain_bytes().unwrap(), size, "kept across the reopen");
    }

    /// The store as the archive node's `BlockStore`, through the one executor: a put is
    /// accepted only for a block the chain holds, a delete removes nothing, records are
    /// written with the batch, and a block is read back re-hashed.
    #[test]
    fn as_an_archive_store_it_keeps_the_chain_and_writes_only_records() {
        use shoal_core::node::{StorageCommand, StorageResult};
        let dir = tempfile::tempdir().unwrap();
        let mut store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let block = mainnet_702861();
        let hash = block.block_hash();
        store.append(&block).unwrap();
        let bytes = block.encode();
        let other = BlockHash([7; 32]);
        let commands = [
            StorageCommand::Put {
                request_id: 1,
                block_hash: hash,
                height: 702_861,
                bytes: bytes.clone(),
            },
            StorageCommand::Put {
                request_id: 2,
                block_hash: other,
                height: 5,
                bytes: bytes.clone(),
            },
            StorageCommand::Delete {
                request_id: 3,
                block_hash: hash,
            },
            StorageCommand::WriteKv {
                request_id: 4,
                ops: vec![KvOp::Put {
                    key: b"txi/x".to_vec(),
                    value: vec![1],
                }],
            },
            StorageCommand::Get {
                request_id: 5,
                block_hash: hash,
            },
            StorageCommand::List { request_id: 6 },
        ];
        let (results, error) =
            futures::executor::block_on(shoal_host::execute(&mut store, &commands));
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            results,
            vec![
                StorageResult::Put {
                    request_id: 1,
                    ok: true
                },
                StorageResult::Put {
                    request_id: 2,
                    ok: false
                },
                StorageResult::Deleted { request_id: 3 },
                StorageResult::KvWritten {
                    request_id: 4,
                    ok: true
                },
                StorageResult::Got {
                    request_id: 5,
                    bytes: Some(bytes)
                },
                StorageResult::Listed {
                    request_id: 6,
                    blocks: vec![hash]
                },
            ]
        );
        assert_eq!(store.block_hashes().unwrap(), vec![hash], "nothing deleted");
        assert_eq!(store.height_of(&other).unwrap(), None, "nothing put");
        assert_eq!(
            store.kv_records().unwrap(),
            vec![(b"txi/x".to_vec(), vec![1])]
        );
    }

    #[test]
    fn node_records_survive_a_reopen_and_oversized_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        {
            let store = ChainStore::open(&path).unwrap();
            assert!(store.kv_records().unwrap().is_empty());
            store
                .write_kv(&[
                    KvOp::Put {
                        key: b"txi/a".to_vec(),
                        value: vec![1, 2],
                    },
                    KvOp::Put {
                        key: b"txi/b".to_vec(),
                        value: vec![3],
                    },
                ])
                .unwrap();
            store
                .write_kv(&[KvOp::Delete {
                    key: b"txi/a".to_vec(),
                }])
                .unwrap();
            // The node never writes such a record: refused whole, nothing written.
            let too_big = [
                KvOp::Put {
                    key: b"txi/c".to_vec(),
                    value: vec![0],
                },
                KvOp::Put {
                    key: b"txi/d".to_vec(),
                    value: vec![0; KV_VALUE_MAX + 1],
                },
            ];
            assert!(matches!(
                store.write_kv(&too_big),
                Err(StoreError::KvTooLarge { .. })
            ));
            // A hostile file: an oversized record written behind the store's back.
            let tx = store.db.begin_write().unwrap();
            tx.open_table(NODE_KV)
                .unwrap()
                .insert(b"txi/e".as_slice(), vec![7u8; KV_VALUE_MAX + 1].as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let store = ChainStore::open(&path).unwrap();
        assert_eq!(
            store.kv_records().unwrap(),
            vec![(b"txi/b".to_vec(), vec![3])],
            "kept across the reopen; the oversized record left out"
        );
        let tx = store.db.begin_read().unwrap();
        let table = tx.open_table(NODE_KV).unwrap();
        assert_eq!(table.len().unwrap(), 1, "and deleted");
    }

    /// An older database's `txids` table is dropped on open; the chain and the records stay.
    #[test]
    fn an_older_databases_txid_table_is_dropped_and_the_rest_kept() {
        use redb::TableHandle;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let block = mainnet_702861();
        {
            let store = ChainStore::open(&path).unwrap();
            store.append(&block).unwrap();
            store
                .write_kv(&[KvOp::Put {
                    key: b"txi/a".to_vec(),
                    value: vec![1],
                }])
                .unwrap();
            // What the older relay wrote beside every block.
            let tx = store.db.begin_write().unwrap();
            tx.open_table(LEGACY_TXIDS)
                .unwrap()
                .insert(&block.txdata[0].txid().0, (702_861, 0))
                .unwrap();
            tx.commit().unwrap();
        }
        let store = ChainStore::open(&path).unwrap();
        let tables: Vec<String> = {
            let tx = store.db.begin_read().unwrap();
            tx.list_tables()
                .unwrap()
                .map(|t| t.name().to_string())
                .collect()
        };
        assert!(!tables.contains(&"txids".to_string()), "{tables:?}");
        assert_eq!(store.block_hashes().unwrap(), vec![block.block_hash()]);
        assert_eq!(store.headers(702_861, 1).unwrap(), vec![block.header]);
        assert_eq!(store.kv_records().unwrap().len(), 1);
    }

    /// Found by fuzzing (FUZZING.md, `relay_store`): a damaged or hostile file whose byte
    /// total is near `u64::MAX`, or whose tip sits at height `u32::MAX`, made the next append
    /// overflow (a panic in a debug build, a wrong total in a release one). The total now
    /// saturates, and a tip no chain can reach is reported as corrupt.
    #[test]
    fn a_damaged_total_or_tip_height_does_not_overflow_an_append() {
        use shoal_core::chain::generate::{generate_chain, GenerateConfig};
        let blocks = generate_chain(&GenerateConfig {
            blocks: 2,
            txs_per_block: 1,
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("total.redb")).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert(CHAIN_BYTES, u64::MAX - 1)
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(store.append(&blocks[0]).unwrap(), 1);
        assert_eq!(store.chain_bytes().unwrap(), u64::MAX);

        let store = ChainStore::open(&dir.path().join("tip.redb")).unwrap();
        let tx = store.db.begin_write().unwrap();
        tx.open_table(HEADERS)
            .unwrap()
            .insert(u32::MAX, &blocks[0].header.encode()[..])
            .unwrap();
        tx.commit().unwrap();
        assert!(matches!(
            store.append(&blocks[1]),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(store.len().unwrap(), 1, "nothing written");
    }

    #[test]
    fn bad_blocks_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let mut tampered = mainnet_702861();
        tampered.txdata[5].lock_time ^= 1;
        assert!(matches!(
            store.append(&tampered),
            Err(StoreError::InvalidBlock { .. })
        ));
        let mut weak = mainnet_702861();
        weak.header.nonce ^= 1;
        assert!(matches!(
            store.append(&weak),
            Err(StoreError::InvalidBlock { .. } | StoreError::BadProofOfWork { .. })
        ));
        assert!(store.is_empty().unwrap());
        store.append(&mainnet_702861()).unwrap();
        assert!(matches!(
            store.append(&mainnet_702861()),
            Err(StoreError::NotOnTip { .. })
        ));
        assert_eq!(store.len().unwrap(), 1);
    }

    use crate::serve::test_chains::{branch, chain};

    #[test]
    fn a_rewound_branch_is_kept_until_deep_and_comes_back_without_a_second_write() {
        let a = chain(6);
        let b = branch(&a, 3, 5, 1);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        for block in &a {
            store.append(block).unwrap();
        }
        let bytes_a = store.chain_bytes().unwrap();

        // A reorganisation to b: a's blocks above 3 leave the chain, not the disk.
        let removed = store.rewind(3).unwrap();
        let expected: Vec<BlockHash> = a[4..].iter().rev().map(Block::block_hash).collect();
        assert_eq!(removed, expected);
        assert_eq!(store.tip().unwrap().unwrap().hash, a[3].block_hash());
        assert_eq!(store.stale_len().unwrap(), 3);
        assert_eq!(store.height_of(&a[5].block_hash()).unwrap(), None);
        assert!(!store.block_hashes().unwrap().contains(&a[5].block_hash()));
        assert!(
            store.block_bytes(&a[5].block_hash()).unwrap().is_some(),
            "kept"
        );
        assert!(matches!(
            store.append(&a[5]),
            Err(StoreError::NotOnTip { .. })
        ));
        for block in &b[4..] {
            store.append(block).unwrap();
        }
        assert_eq!(store.tip().unwrap().unwrap().height, 8);
        assert_eq!(
            store.headers(4, 10).unwrap(),
            b[4..].iter().map(|b| b.header).collect::<Vec<_>>()
        );

        // And back to a (made longer): its blocks are linked again, not written again.
        let a2 = branch(&a, 6, 3, 0);
        store.rewind(3).unwrap();
        for block in &a2[4..] {
            store.append(block).unwrap();
        }
        assert_eq!(store.tip().unwrap().unwrap().hash, a2[9].block_hash());
        assert_eq!(store.stale_len().unwrap(), 5, "b's five blocks");
        let b_bytes: u64 = b[4..].iter().map(|b| b.encode().len() as u64).sum();
        let a_new: u64 = a2[7..].iter().map(|b| b.encode().len() as u64).sum();
        assert_eq!(store.chain_bytes().unwrap(), bytes_a + b_bytes + a_new);

        // Kept across a reopen; dropped once STALE_KEEP_DEPTH below the tip.
        drop(store);
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        assert_eq!(store.stale_len().unwrap(), 5);
        let deep = branch(&a2, 9, STALE_KEEP_DEPTH, 0);
        for block in &deep[10..] {
            store.append(block).unwrap();
        }
        assert_eq!(store.stale_len().unwrap(), 0);
        assert!(store.block_bytes(&b[4].block_hash()).unwrap().is_none());
        let total: u64 = deep.iter().map(|b| b.encode().len() as u64).sum();
        assert_eq!(store.chain_bytes().unwrap(), total);
    }

    #[test]
    fn rewinding_at_or_above_the_tip_or_an_empty_store_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        assert!(store.rewind(0).unwrap().is_empty());
        for block in chain(2) {
            store.append(&block).unwrap();
        }
        assert!(store.rewind(2).unwrap().is_empty());
        assert!(store.rewind(7).unwrap().is_empty());
        assert_eq!(store.tip().unwrap().unwrap().height, 2);
        assert_eq!(store.stale_len().unwrap(), 0);
    }

    #[test]
    fn blocks_appended_together_are_all_written_or_none() {
        let chain = chain(6);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        assert_eq!(store.append_all(&chain[..3]).unwrap(), [0, 1, 2]);
        // One block of the batch is damaged, or out of order: nothing of it is written.
        let mut damaged = chain[3..].to_vec();
        damaged[2].txdata[0].output[0].value -= 1;
        assert!(matches!(
            store.append_all(&damaged),
            Err(StoreError::InvalidBlock { .. })
        ));
        let mut shuffled = chain[3..].to_vec();
        shuffled.swap(0, 1);
        assert!(matches!(
            store.append_all(&shuffled),
            Err(StoreError::NotOnTip { .. })
        ));
        assert_eq!(store.tip().unwrap().unwrap().height, 2);
        assert_eq!(store.append_all(&chain[3..]).unwrap(), [3, 4, 5, 6]);
        assert!(store.append_all(&[]).unwrap().is_empty());
        let total: u64 = chain.iter().map(|b| b.encode().len() as u64).sum();
        assert_eq!(store.chain_bytes().unwrap(), total);
    }
}
