//! The one storage trait and the one executor of the node's storage commands.
//!
//! A shell's store implements [`BlockStore`]: IndexedDB in the page (`shoal-web`), redb in the
//! relay (`shoal-relay`), the simulator's memory with its lost writes and corrupt reads
//! (`shoal-sim`), and [`MemoryStore`] here for tests. [`execute`] turns a batch of
//! [`StorageCommand`]s into [`StorageResult`]s, in order, with every write of the batch —
//! blocks put and deleted, the transaction index's records — in **one** atomic write: a
//! stored block and its index record land together or not at all.

use std::collections::BTreeMap;
use std::future::Future;

use shoal_core::chain::{Block, BlockHash};
use shoal_core::node::{KvOp, KvRecord, StorageCommand, StorageResult, KV_KEY_MAX, KV_VALUE_MAX};

/// Most commands [`execute`] takes in one call; the core drains a bounded output queue.
pub const MAX_COMMANDS_PER_BATCH: usize = 1024;

/// One write of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Store `bytes` (a block the node verified) under `hash`.
    PutBlock {
        hash: BlockHash,
        height: u32,
        bytes: &'a [u8],
    },
    /// Forget the block `hash`.
    DeleteBlock { hash: BlockHash },
    /// Put or delete one key/value record.
    Kv(&'a KvOp),
}

/// A node's store: its blocks and its key/value records.
///
/// Reads may come back corrupt (the node checks every block again and drops what fails);
/// a store that can tell should drop a corrupt entry and read it as absent.
pub trait BlockStore {
    /// Why an operation failed.
    type Error: std::fmt::Display;

    /// Whether `bytes` may be stored under `hash`, asked of each `Put` before the batch is
    /// written; a refused put is left out of the batch and reports `ok: false`. The default
    /// keeps what decodes as a block (the node verified it against its headers before asking).
    fn accepts(&mut self, hash: &BlockHash, bytes: &[u8]) -> bool {
        let _ = hash;
        Block::decode(bytes).is_ok()
    }

    /// Applies `writes` atomically: all of them or none.
    fn write(&mut self, writes: &[Write<'_>]) -> impl Future<Output = Result<(), Self::Error>>;

    /// The stored bytes of block `hash`; `None` if it is not stored (or was corrupt and
    /// dropped).
    fn block(
        &mut self,
        hash: &BlockHash,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>>;

    /// The hash of every stored block.
    fn block_hashes(&mut self) -> impl Future<Output = Result<Vec<BlockHash>, Self::Error>>;

    /// Every key/value record. A record that cannot be read, or whose key or value is longer
    /// than [`KV_KEY_MAX`] / [`KV_VALUE_MAX`], is left out: the node re-indexes its block.
    fn kv_records(&mut self) -> impl Future<Output = Result<Vec<KvRecord>, Self::Error>>;
}

/// Carries out `commands` (at most [`MAX_COMMANDS_PER_BATCH`]) on `store`: first every write
/// of the batch in one atomic [`BlockStore::write`], then the reads, each result in the order
/// of its command.
///
/// A failed write fails every `Put` and `WriteKv` of the batch (`ok: false`); a failed read
/// reads as "nothing stored" (the node then fetches or re-indexes). The last error is returned
/// beside the results, for the shell to surface.
pub async fn execute<S: BlockStore>(
    store: &mut S,
    commands: &[StorageCommand],
) -> (Vec<StorageResult>, Option<S::Error>) {
    assert!(
        commands.len() <= MAX_COMMANDS_PER_BATCH,
        "the core's output queue is bounded: {} commands in one batch",
        commands.len()
    );
    let mut accepted = Vec::with_capacity(commands.len());
    let mut writes = Vec::new();
    for command in commands {
        let mut keep = true;
        match command {
            StorageCommand::Put {
                block_hash,
                height,
                bytes,
                ..
            } => {
                keep = store.accepts(block_hash, bytes);
                if keep {
                    writes.push(Write::PutBlock {
                        hash: *block_hash,
                        height: *height,
                        bytes,
                    });
                }
            }
            StorageCommand::Delete { block_hash, .. } => {
                writes.push(Write::DeleteBlock { hash: *block_hash });
            }
            StorageCommand::WriteKv { ops, .. } => {
                keep = ops.iter().all(kv_op_fits);
                if keep {
                    writes.extend(ops.iter().map(Write::Kv));
                }
            }
            StorageCommand::Get { .. }
            | StorageCommand::List { .. }
            | StorageCommand::ListKv { .. } => {}
        }
        accepted.push(keep);
    }
    let mut last_error = None;
    let written = if writes.is_empty() {
        true
    } else {
        match store.write(&writes).await {
            Ok(()) => true,
            Err(error) => {
                last_error = Some(error);
                false
            }
        }
    };
    let mut results = Vec::with_capacity(commands.len());
    for (command, accepted) in commands.iter().zip(accepted) {
        results.push(match command {
            StorageCommand::Put { request_id, .. } => StorageResult::Put {
                request_id: *request_id,
                ok: written && accepted,
            },
            StorageCommand::Delete { request_id, .. } => StorageResult::Deleted {
                request_id: *request_id,
            },
            StorageCommand::WriteKv { request_id, .. } => StorageResult::KvWritten {
                request_id: *request_id,
                ok: written && accepted,
            },
            StorageCommand::Get {
                request_id,
                block_hash,
            } => StorageResult::Got {
                request_id: *request_id,
                bytes: read_or_none(store.block(block_hash).await, &mut last_error).flatten(),
            },
            StorageCommand::List { request_id } => {
                match read_or_none(store.block_hashes().await, &mut last_error) {
                    Some(blocks) => StorageResult::Listed {
                        request_id: *request_id,
                        blocks,
                    },
                    // Not "nothing stored": the node must not take it so.
                    None => StorageResult::ListFailed {
                        request_id: *request_id,
                    },
                }
            }
            StorageCommand::ListKv { request_id } => StorageResult::KvListed {
                request_id: *request_id,
                records: read_or_none(store.kv_records().await, &mut last_error)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(key, value)| key.len() <= KV_KEY_MAX && value.len() <= KV_VALUE_MAX)
                    .collect(),
            },
        });
    }
    (results, last_error)
}

/// Whether a record write stays within the limits the node's records keep.
fn kv_op_fits(op: &KvOp) -> bool {
    match op {
        KvOp::Put { key, value } => key.len() <= KV_KEY_MAX && value.len() <= KV_VALUE_MAX,
        KvOp::Delete { key } => key.len() <= KV_KEY_MAX,
    }
}

fn read_or_none<T, E>(read: Result<T, E>, last_error: &mut Option<E>) -> Option<T> {
    match read {
        Ok(value) => Some(value),
        Err(error) => {
            *last_error = Some(error);
            None
        }
    }
}

/// A store in memory, for tests and examples: never fails, never corrupts.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    /// Stored blocks by hash: (height, bytes).
    pub blocks: BTreeMap<BlockHash, (u32, Vec<u8>)>,
    /// Key/value records.
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Atomic writes carried out.
    pub writes: u64,
}

impl BlockStore for MemoryStore {
    type Error = std::convert::Infallible;

    async fn write(&mut self, writes: &[Write<'_>]) -> Result<(), Self::Error> {
        self.writes += 1;
        for write in writes {
            match write {
                Write::PutBlock {
                    hash,
                    height,
                    bytes,
                } => {
                    self.blocks.insert(*hash, (*height, bytes.to_vec()));
                }
                Write::DeleteBlock { hash } => {
                    self.blocks.remove(hash);
                }
                Write::Kv(KvOp::Put { key, value }) => {
                    self.kv.insert(key.clone(), value.clone());
                }
                Write::Kv(KvOp::Delete { key }) => {
                    self.kv.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.blocks.get(hash).map(|(_, bytes)| bytes.clone()))
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, Self::Error> {
        Ok(self.blocks.keys().copied().collect())
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, Self::Error> {
        Ok(self
            .kv
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}
