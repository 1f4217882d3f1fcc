//! A member relay's store on disk (redb): the verified header chain, the blocks of its shard
//! and its node's key/value records.
//!
//! Unlike the archive's [`super::store::ChainStore`], which *is* the chain and is written only
//! by the block source, this store is written by the member's core node through
//! [`shoal_host::BlockStore`]: it puts the blocks placement gives it (each verified by the node
//! against its header first) and deletes those it no longer must hold, with their
//! transaction-index records, every batch in one redb transaction. A relay killed at any point
//! restarts with exactly the blocks whose batch committed, so it downloads nothing again that
//! it held (issue 12: "killing the member relay and starting it again loses nothing").
//!
//! The header chain is kept beside them (height → 80-byte header) so that a restarted member
//! checks its headers again instead of downloading them; [`ShardStore::headers`] reads them
//! back, and the member truncates what no longer verifies. Blocks are read back as stored: the
//! node checks each one, and a block that fails turns suspect and is fetched again over it
//! (never deleted for failing a read, the core's rule).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};
use shoal_core::chain::{Block, BlockHash, Header};
use shoal_core::node::{KvOp, KvRecord, KV_KEY_MAX, KV_VALUE_MAX};
use shoal_host::{BlockStore, Write};

use super::store::{check_kv_size, write_tx, StoreError};

/// File name of a member relay's database inside the data directory.
pub const SHARD_DB_FILE: &str = "shard.redb";

/// height → 80-byte header of the best chain.
const HEADERS: TableDefinition<'static, u32, &'static [u8]> = TableDefinition::new("headers");
/// block hash → height of a block of the shard.
const HEIGHTS: TableDefinition<'static, &'static [u8; 32], u32> = TableDefinition::new("heights");
/// block hash → raw block bytes.
const BLOCKS: TableDefinition<'static, &'static [u8; 32], &'static [u8]> =
    TableDefinition::new("blocks");
/// The node's key/value records.
const NODE_KV: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("node_kv");

/// Most headers one [`ShardStore::headers`] read returns.
pub const MAX_HEADERS_PER_READ: u32 = 2_000;

fn db<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(error.into())
}

/// A member relay's headers, shard and records on disk. Clones share the one database: the
/// node's thread writes through one, the HTTP status reads the shard through another.
#[derive(Clone)]
pub struct ShardStore {
    db: Arc<Database>,
    /// Bytes of the blocks held: summed once at open, then kept up to date by every batch
    /// that commits (what the node's heartbeats report, `Node::set_stored_bytes`).
    stored_bytes: Arc<AtomicU64>,
}

impl ShardStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<ShardStore, StoreError> {
        Self::from_database(Database::create(path).map_err(db)?)
    }

    /// The store in a database already open (an in-memory one, in tests and fuzzing): the
    /// tables are created where missing, as by [`ShardStore::open`].
    pub fn from_database(database: Database) -> Result<ShardStore, StoreError> {
        let tx = write_tx(&database)?;
        tx.open_table(HEADERS).map_err(db)?;
        tx.open_table(HEIGHTS).map_err(db)?;
        tx.open_table(BLOCKS).map_err(db)?;
        tx.open_table(NODE_KV).map_err(db)?;
        tx.commit().map_err(db)?;
        let mut stored_bytes = 0;
        {
            let tx = database.begin_read().map_err(db)?;
            let table = tx.open_table(BLOCKS).map_err(db)?;
            for entry in table.iter().map_err(db)? {
                let (_, bytes) = entry.map_err(db)?;
                stored_bytes += bytes.value().len() as u64;
            }
        }
        Ok(ShardStore {
            db: Arc::new(database),
            stored_bytes: Arc::new(AtomicU64::new(stored_bytes)),
        })
    }

    /// Bytes of the blocks of the shard.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes.load(Ordering::Relaxed)
    }

    /// Up to `max_count` (at most [`MAX_HEADERS_PER_READ`]) stored headers from
    /// `start_height` up, stopping at the first gap.
    pub fn headers(&self, start_height: u32, max_count: u32) -> Result<Vec<Header>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(HEADERS).map_err(db)?;
        let mut out = Vec::new();
        let end = start_height.saturating_add(max_count.min(MAX_HEADERS_PER_READ));
        for (expected, entry) in
            (start_height..=u32::MAX).zip(table.range(start_height..end).map_err(db)?)
        {
            let (height, bytes) = entry.map_err(db)?;
            if height.value() != expected {
                break;
            }
            let header = Header::decode(bytes.value()).map_err(|_| StoreError::Corrupt {
                what: format!("header at height {expected}"),
            })?;
            out.push(header);
        }
        Ok(out)
    }

    /// Replaces the stored headers from `first_height` up: those above are removed when
    /// `truncate` (a reorganisation), then `headers` written at consecutive heights; one
    /// transaction.
    pub fn put_headers(
        &self,
        first_height: u32,
        headers: &[Header],
        truncate: bool,
    ) -> Result<(), StoreError> {
        let tx = write_tx(&self.db)?;
        {
            let mut table = tx.open_table(HEADERS).map_err(db)?;
            if truncate {
                table.retain_in(first_height.., |_, _| false).map_err(db)?;
            }
            for (height, header) in (first_height..=u32::MAX).zip(headers) {
                table
                    .insert(height, header.encode().as_slice())
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(())
    }

    /// Removes every stored header from `from_height` up (they failed to verify on load).
    pub fn truncate_headers(&self, from_height: u32) -> Result<(), StoreError> {
        self.put_headers(from_height, &[], true)
    }

    /// The blocks of the shard as (height, hash), in height order.
    pub fn held(&self) -> Result<Vec<(u32, BlockHash)>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(HEIGHTS).map_err(db)?;
        let mut held = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (hash, height) = entry.map_err(db)?;
            held.push((height.value(), BlockHash(*hash.value())));
        }
        held.sort();
        Ok(held)
    }

    /// The bytes stored for block `hash`, as they are: the node checks every block it reads,
    /// and by the core's rule a corrupt one is never served and never deleted — it turns
    /// suspect and a verified copy is fetched over it.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(BLOCKS).map_err(db)?;
        let bytes = table.get(&hash.0).map_err(db)?;
        Ok(bytes.map(|bytes| bytes.value().to_vec()))
    }

    /// Applies a batch of the node's writes in one transaction (all or none).
    fn apply(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        for write in writes {
            if let Write::Kv(op) = write {
                check_kv_size(op)?;
            }
        }
        let tx = write_tx(&self.db)?;
        let (mut added, mut removed) = (0u64, 0u64);
        {
            let mut blocks = tx.open_table(BLOCKS).map_err(db)?;
            let mut heights = tx.open_table(HEIGHTS).map_err(db)?;
            let mut kv = tx.open_table(NODE_KV).map_err(db)?;
            for write in writes {
                match write {
                    Write::PutBlock {
                        hash,
                        height,
                        bytes,
                    } => {
                        if let Some(old) = blocks.insert(&hash.0, *bytes).map_err(db)? {
                            removed += old.value().len() as u64;
                        }
                        added += bytes.len() as u64;
                        heights.insert(&hash.0, *height).map_err(db)?;
                    }
                    Write::DeleteBlock { hash } => {
                        if let Some(old) = blocks.remove(&hash.0).map_err(db)? {
                            removed += old.value().len() as u64;
                        }
                        heights.remove(&hash.0).map_err(db)?;
                    }
                    Write::Kv(KvOp::Put { key, value }) => {
                        kv.insert(key.as_slice(), value.as_slice()).map_err(db)?;
                    }
                    Write::Kv(KvOp::Delete { key }) => {
                        kv.remove(key.as_slice()).map_err(db)?;
                    }
                }
            }
        }
        tx.commit().map_err(db)?;
        // Only batches that committed count; nothing else writes the table.
        let total = self.stored_bytes.load(Ordering::Relaxed);
        (self.stored_bytes).store((total + added).saturating_sub(removed), Ordering::Relaxed);
        Ok(())
    }
}

/// The member node's store: it holds what the node puts and forgets what it deletes.
impl BlockStore for ShardStore {
    type Error = StoreError;

    /// A block is kept only if it decodes and its header hashes to its key.
    fn accepts(&mut self, hash: &BlockHash, bytes: &[u8]) -> bool {
        Block::decode(bytes).is_ok_and(|block| block.block_hash() == *hash)
    }

    async fn write(&mut self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        self.apply(writes)
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        self.block_bytes(hash)
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, StoreError> {
        Ok(self.held()?.into_iter().map(|(_, hash)| hash).collect())
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let table = tx.open_table(NODE_KV).map_err(db)?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            let (key, value) = (key.value(), value.value());
            // Larger than the node ever writes: left out, the node re-indexes the block.
            if key.len() <= KV_KEY_MAX && value.len() <= KV_VALUE_MAX {
                records.push((key.to_vec(), value.to_vec()));
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::generate::{generate_chain, GenerateConfig};
    use shoal_core::node::{StorageCommand, StorageResult};

    use super::*;

    fn chain(blocks: u32) -> Vec<Block> {
        generate_chain(&GenerateConfig {
            blocks,
            txs_per_block: 3,
            ..Default::default()
        })
        .unwrap()
    }

    /// Through the host's executor: blocks put are kept with their records, a delete forgets
    /// one, a block under the wrong hash is refused, and all of it survives a reopen.
    #[test]
    fn the_shard_keeps_what_the_node_puts_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SHARD_DB_FILE);
        let blocks = chain(4);
        let put = |request_id, i: usize, hash: BlockHash| StorageCommand::Put {
            request_id,
            block_hash: hash,
            height: i as u32 + 1,
            bytes: blocks[i].encode(),
        };
        {
            let mut store = ShardStore::open(&path).unwrap();
            let commands = [
                put(1, 0, blocks[0].block_hash()),
                put(2, 2, blocks[2].block_hash()),
                put(3, 3, blocks[3].block_hash()),
                // Block 1's bytes under a hash that is not theirs: refused.
                put(4, 1, BlockHash([9; 32])),
                StorageCommand::Delete {
                    request_id: 5,
                    block_hash: blocks[3].block_hash(),
                },
                StorageCommand::WriteKv {
                    request_id: 6,
                    ops: vec![KvOp::Put {
                        key: b"txi/a".to_vec(),
                        value: vec![1, 2],
                    }],
                },
            ];
            let (results, error) =
                futures::executor::block_on(shoal_host::execute(&mut store, &commands));
            assert!(error.is_none());
            let oks: Vec<bool> = results
                .iter()
                .map(|r| match r {
                    StorageResult::Put { ok, .. } | StorageResult::KvWritten { ok, .. } => *ok,
                    _ => true,
                })
                .collect();
            assert_eq!(oks, [true, true, true, false, true, true]);
            let kept = (blocks[0].encode().len() + blocks[2].encode().len()) as u64;
            assert_eq!(store.stored_bytes(), kept, "puts add, the delete subtracts");
            // Putting a held block again counts it once.
            let again = [put(7, 0, blocks[0].block_hash())];
            futures::executor::block_on(shoal_host::execute(&mut store, &again));
            assert_eq!(store.stored_bytes(), kept);
        }
        let mut store = ShardStore::open(&path).unwrap();
        assert_eq!(
            store.stored_bytes(),
            (blocks[0].encode().len() + blocks[2].encode().len()) as u64,
            "summed again at open"
        );
        assert_eq!(
            store.held().unwrap(),
            vec![(1, blocks[0].block_hash()), (3, blocks[2].block_hash())]
        );
        let read = futures::executor::block_on(store.block(&blocks[2].block_hash())).unwrap();
        assert_eq!(read, Some(blocks[2].encode()));
        let records = futures::executor::block_on(store.kv_records()).unwrap();
        assert_eq!(records, vec![(b"txi/a".to_vec(), vec![1, 2])]);
    }

    #[test]
    fn headers_are_written_truncated_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(&dir.path().join(SHARD_DB_FILE)).unwrap();
        let headers: Vec<Header> = chain(6).iter().map(|b| b.header).collect();
        store.put_headers(1, &headers, false).unwrap();
        assert_eq!(store.headers(1, 100).unwrap(), headers);
        assert_eq!(store.headers(3, 2).unwrap(), headers[2..4]);
        // A reorganisation from height 4: the old 4..=6 go, two new ones come.
        let other: Vec<Header> = chain(2).iter().map(|b| b.header).collect();
        store.put_headers(4, &other, true).unwrap();
        let mut expected = headers[..3].to_vec();
        expected.extend(&other);
        assert_eq!(store.headers(1, 100).unwrap(), expected);
        store.truncate_headers(2).unwrap();
        assert_eq!(store.headers(1, 100).unwrap(), headers[..1]);
    }

    /// A block whose stored bytes no longer hash to its key (a damaged disk) is read back as
    /// it is, for the node to check, and not deleted (the node fetches a verified copy over
    /// it); the other blocks are untouched.
    #[test]
    fn a_corrupt_block_is_read_as_it_is_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(&dir.path().join(SHARD_DB_FILE)).unwrap();
        let blocks = chain(2);
        let mut damaged = blocks[0].encode();
        damaged[4] ^= 0xff; // in the header: the hash changes
        store
            .apply(&[
                Write::PutBlock {
                    hash: blocks[0].block_hash(),
                    height: 1,
                    bytes: &damaged,
                },
                Write::PutBlock {
                    hash: blocks[1].block_hash(),
                    height: 2,
                    bytes: &blocks[1].encode(),
                },
            ])
            .unwrap();
        assert_eq!(
            store.block_bytes(&blocks[0].block_hash()).unwrap(),
            Some(damaged.clone())
        );
        assert_eq!(
            store.held().unwrap(),
            vec![(1, blocks[0].block_hash()), (2, blocks[1].block_hash())]
        );
        assert!(store
            .block_bytes(&blocks[1].block_hash())
            .unwrap()
            .is_some());
    }
}
