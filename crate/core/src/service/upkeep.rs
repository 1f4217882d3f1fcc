//! The serving layer as a node holds it (S16): [`Serve`] and the bookkeeping that keeps its
//! transaction index in step with the node's shard.
//!
//! Every `StorageCommand::Put` the node issues is indexed when it is issued (so a query finds
//! the block at once) and unindexed if the write fails; every `Delete` is unindexed
//! ([`Serving::observe`]). At start the node lists the index records and the blocks; what the
//! listings cannot show yet (puts and deletes since start) is remembered here, and the blocks
//! without a valid record are read back a few at a time. The node's `node::serving` seam
//! drives all of it.

use std::collections::{HashMap, HashSet, VecDeque};

use super::Serve;
use crate::chain::{Block, BlockHash};
use crate::chain_seam::Checked;
use crate::io::StorageCommand;

/// The serving layer and the node's bookkeeping around it.
#[derive(Debug)]
pub(crate) struct Serving {
    pub(crate) serve: Serve,
    /// Puts the node issued → the block, to unindex if the write fails.
    pub(crate) puts: HashMap<u64, BlockHash>,
    /// Listed blocks still to read back into the index.
    pub(crate) rebuild: VecDeque<BlockHash>,
    /// Reads of the rebuild in flight: request id → block.
    pub(crate) rebuild_reads: HashMap<u64, BlockHash>,
    /// A held block was dropped (it left the best chain, or was evicted), or a new block ran
    /// out of re-drives: the repair rescan must run.
    pub(crate) rescan: bool,
    /// The start-up `ListKv` in flight.
    pub(crate) kv_list_request: Option<u64>,
    /// Blocks whose stored record loaded at start (checked against the block listing: a
    /// record without its block is deleted).
    pub(crate) loaded: HashSet<BlockHash>,
    /// Until the start-up listings are in: blocks put (`true`) or deleted (`false`) since
    /// start, which the listings may not show yet.
    pub(crate) since_start: Option<HashMap<BlockHash, bool>>,
    /// The start-up block listing, waiting for the records to load.
    pub(crate) listed: Option<Vec<BlockHash>>,
    /// The serving layer may hold index writes not yet drained.
    pub(crate) index_dirty: bool,
    /// The block the node checked last, with its txids: the put that follows the check is
    /// indexed from them instead of decoding and hashing the block again.
    pub(crate) checked: Option<Checked>,
}

impl Serving {
    pub(crate) fn new(serve: Serve) -> Self {
        Self {
            serve,
            puts: HashMap::new(),
            rebuild: VecDeque::new(),
            rebuild_reads: HashMap::new(),
            rescan: false,
            kv_list_request: None,
            loaded: HashSet::new(),
            since_start: None,
            listed: None,
            index_dirty: false,
            checked: None,
        }
    }

    /// A storage command the node issues: the index follows the shard.
    pub(crate) fn observe(&mut self, command: &StorageCommand) {
        match command {
            StorageCommand::Put {
                request_id,
                block_hash,
                bytes,
                ..
            } => {
                // Indexed when issued (so a query can find it at once), unindexed if the write
                // fails. The node only puts blocks it has checked against the header chain.
                let checked = self.checked.take().filter(|c| c.block_hash == *block_hash);
                let indexed = match checked {
                    Some(c) => {
                        self.serve.block_stored_txids(*block_hash, &c.txids);
                        true
                    }
                    None => match Block::decode(bytes) {
                        Ok(block) => {
                            self.serve.block_stored(&block);
                            true
                        }
                        Err(_) => false,
                    },
                };
                if indexed {
                    self.puts.insert(*request_id, *block_hash);
                    self.index_dirty = true;
                    if let Some(since) = &mut self.since_start {
                        since.insert(*block_hash, true);
                    }
                }
            }
            StorageCommand::Delete { block_hash, .. } => {
                self.serve.block_removed(block_hash);
                self.index_dirty = true;
                if let Some(since) = &mut self.since_start {
                    since.insert(*block_hash, false);
                }
            }
            StorageCommand::Get { .. }
            | StorageCommand::List { .. }
            | StorageCommand::WriteKv { .. }
            | StorageCommand::ListKv { .. } => {}
        }
    }
}
