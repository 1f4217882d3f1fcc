//! The serving layer as one piece the node drives (S14–S17): [`Serve`] bundles the transaction
//! index, queries, new-block storage and the block cache, keeps them in step with each other
//! (a stored block is indexed; a dropped block leaves index and cache; a reorg drops what left
//! the best chain) and speaks in three kinds of output: messages to peers, storage intents and
//! events.
//!
//! # Usage
//!
//! The node owns one `Serve<NodeId>` and, with `now_ms` and an [`Env`] (its header view, the
//! cluster's members, placement), calls:
//!
//! - [`Serve::query`] for a front-end query, [`Serve::handle_message`] for every
//!   [`ServeMessage`] from a peer, [`Serve::handle_new_block`] for a block from the block
//!   source, [`Serve::handle_chain_change`] when the header chain moved, [`Serve::run_job`]
//!   to run code on any block (S17);
//! - [`Serve::handle_put_result`] / [`Serve::handle_get_result`] when a storage intent it
//!   issued finished;
//! - [`Serve::block_stored`] / [`Serve::block_removed`] when the node itself (repair, start-up)
//!   stored or deleted a block, so that the index follows the shard;
//! - [`Serve::handle_timeout`] when [`Serve::poll_timeout`] is due;
//!
//! and after each call drains [`Serve::poll_output`]. Request ids of blocks fetched by the
//! cache have the top bit set ([`Serve::owns_request_id`]) so the node can route `BlockData`
//! answers between its repair and the cache.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use super::cache::{BlockCache, CacheConfig, CacheError, CacheOutput, JobId};
use super::newblock::{self, NewBlockConfig, NewBlockError, NewBlockOutput, NewBlocks, Source};
use super::query::{
    self, Origin, Queries, QueryConfig, QueryError, QueryId, QueryOutput, QueryResult, Scope,
    TxAnswer,
};
use super::reorg::ChainChange;
use super::txindex::{KvOp, TxIndex, TxIndexConfig};
use super::BestChain;
use crate::chain::{Block, BlockHash, Txid};

/// The top bit marks request ids of blocks the cache fetches.
pub const CACHE_REQUEST_BIT: u64 = 1 << 63;

/// Configuration of the serving layer: one section per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeConfig {
    /// The transaction index.
    pub index: TxIndexConfig,
    /// Transaction queries (S16).
    pub query: QueryConfig,
    /// New-block storage (S14, S15).
    pub new_blocks: NewBlockConfig,
    /// The block cache (S17).
    pub cache: CacheConfig,
}

/// What the serving layer needs of the node at each call.
pub struct Env<'a, P> {
    /// The node's best header chain.
    pub chain: &'a dyn BestChain,
    /// The cluster's members, this node included (empty for an ordinary node).
    pub members: &'a [P],
    /// Connected archives (asked last by this node's own queries when
    /// [`QueryConfig::ask_archives`] is set; may be empty otherwise).
    pub archives: &'a [P],
    /// Placement: the members that must hold a block (hash, height).
    pub holders: &'a dyn Fn(&BlockHash, u32) -> Vec<P>,
}

/// Serving messages between nodes (the node maps them to its wire messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeMessage {
    /// Where is this transaction? (S16)
    TxQuery {
        /// Echoed in the answer.
        request_id: u64,
        /// The transaction.
        txid: Txid,
        /// The block it is believed to be in.
        block_hint: Option<BlockHash>,
    },
    /// The answer to a `TxQuery`.
    TxAnswer {
        /// The query's request id.
        request_id: u64,
        /// The answer.
        answer: TxAnswer,
    },
    /// "I stored this block" (S14, S15).
    Stored {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A new block pushed to a holder (S14).
    NewBlock {
        /// Raw consensus bytes.
        bytes: Arc<[u8]>,
    },
    /// Ask for a block (S17 fetch).
    GetBlock {
        /// Echoed in the answer.
        request_id: u64,
        /// The block.
        block_hash: BlockHash,
    },
    /// A block's bytes.
    BlockData {
        /// The request's id.
        request_id: u64,
        /// Raw consensus bytes.
        bytes: Arc<[u8]>,
    },
    /// The asked node does not have the block.
    BlockNotFound {
        /// The request's id.
        request_id: u64,
    },
}

/// A storage intent: the node carries it out with its own request id scheme and reports back
/// with the `request_id` given here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageIntent {
    /// Store a verified block; report with [`Serve::handle_put_result`].
    PutBlock {
        /// Comes back with the result.
        request_id: u64,
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its bytes.
        bytes: Arc<[u8]>,
    },
    /// Read a block; report with [`Serve::handle_get_result`].
    GetBlock {
        /// Comes back with the result.
        request_id: u64,
        /// The block.
        block_hash: BlockHash,
    },
    /// Delete a block (no report needed).
    DeleteBlock {
        /// The block.
        block_hash: BlockHash,
    },
    /// Write the transaction index's records (no report needed; a lost write is rebuilt from
    /// the stored block at start).
    WriteIndex {
        /// The batch, to apply atomically.
        ops: Vec<KvOp>,
    },
}

/// What the serving layer tells the node and its front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEvent<P> {
    /// A local query finished.
    QueryDone {
        /// The query.
        query: QueryId,
        /// Its transaction.
        txid: Txid,
        /// The result.
        result: QueryResult,
        /// The node whose proof confirmed it (`None`: this node's own blocks, or no
        /// confirmation).
        answered_by: Option<P>,
    },
    /// A block is stored here (and indexed).
    BlockStored {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A held block was dropped (it left the best chain).
    BlockDropped {
        /// The block.
        block_hash: BlockHash,
    },
    /// A stored block read back corrupt. It is not deleted: the node keeps it as suspect,
    /// serves none of it, and refetches a verified copy to put over it.
    BlockCorrupt {
        /// The block.
        block_hash: BlockHash,
    },
    /// A block reached P announcements.
    SafelyStored {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block's re-drives ran out: repair must restore its replicas.
    Underreplicated {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A block this member must hold joined the best chain: fetch it (repair's job).
    MustFetch {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// A new block was refused.
    BlockRejected {
        /// Who sent it (`None`: the block source).
        from: Option<P>,
        /// Why.
        error: NewBlockError,
    },
    /// A job's block is ready: run it with [`Serve::with_block`].
    JobReady {
        /// The job.
        job: JobId,
        /// Its block.
        block_hash: BlockHash,
    },
    /// A job cannot run.
    JobFailed {
        /// The job.
        job: JobId,
        /// Its block.
        block_hash: BlockHash,
        /// Why.
        error: CacheError,
    },
    /// A peer misbehaved (forged proof, invalid block); `score` is its total here.
    Misbehaved {
        /// The peer.
        peer: P,
        /// Its score.
        score: u32,
    },
}

/// Everything the serving layer asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeOutput<P> {
    /// Send a message to a peer.
    Send {
        /// The peer.
        to: P,
        /// The message.
        message: ServeMessage,
    },
    /// Carry out a storage intent.
    Storage(StorageIntent),
    /// Tell the node / front end.
    Event(ServeEvent<P>),
}

/// Counters of what serving did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Queries answered for peers.
    pub queries_answered: u64,
    /// Local queries finished.
    pub queries_done: u64,
    /// Blocks stored through new-block storage.
    pub new_blocks_stored: u64,
    /// Blocks served to peers' `GetBlock`.
    pub blocks_served: u64,
    /// Blocks dropped because they left the best chain.
    pub blocks_dropped: u64,
}

#[derive(Debug, Clone)]
enum Pending<P> {
    /// A query reads a candidate block.
    QueryRead {
        query: QueryId,
        block_hash: BlockHash,
    },
    /// A peer asked for a block.
    ServeBlock { to: P, request_id: u64 },
    /// A job needs a held block in the cache.
    JobRead { job: JobId, block_hash: BlockHash },
    /// A new block is being written.
    Put {
        block_hash: BlockHash,
        height: u32,
        bytes: Arc<[u8]>,
    },
}

/// The serving layer of one node. See the module docs.
#[derive(Debug)]
pub struct Serve<P> {
    me: P,
    index: TxIndex,
    queries: Queries<P>,
    new_blocks: NewBlocks<P>,
    cache: BlockCache<P>,
    pending: HashMap<u64, Pending<P>>,
    next_request_id: u64,
    outputs: VecDeque<ServeOutput<P>>,
    /// The members as of the last call with an [`Env`] (announcement targets).
    members: Vec<P>,
    stats: ServeStats,
}

impl<P: Copy + Eq + Hash + Ord> Serve<P> {
    /// The serving layer of node `me`.
    pub fn new(config: ServeConfig, me: P) -> Self {
        Self {
            me,
            index: TxIndex::new(config.index),
            queries: Queries::new(config.query),
            new_blocks: NewBlocks::new(config.new_blocks),
            cache: BlockCache::new(config.cache),
            pending: HashMap::new(),
            next_request_id: 1,
            outputs: VecDeque::new(),
            members: Vec::new(),
            stats: ServeStats::default(),
        }
    }

    /// The transaction index.
    pub fn index(&self) -> &TxIndex {
        &self.index
    }

    /// Counters.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }

    /// Whether `request_id` belongs to a fetch of the cache.
    pub fn owns_request_id(request_id: u64) -> bool {
        request_id & CACHE_REQUEST_BIT != 0
    }

    /// A query from this node's front end.
    pub fn query(
        &mut self,
        now_ms: u64,
        txid: Txid,
        block_hint: Option<BlockHash>,
        env: &Env<'_, P>,
    ) -> Result<QueryId, QueryError> {
        self.sync_members(env);
        let holders = |h: &BlockHash| holders_of(env, h);
        let cx = query_cx(env, &self.index, self.me, &holders);
        let id = self
            .queries
            .start(now_ms, Origin::Local, Scope::Cluster, txid, block_hint, &cx);
        self.pump();
        id
    }

    /// A serving message from `from`.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: P,
        message: ServeMessage,
        env: &Env<'_, P>,
    ) {
        self.sync_members(env);
        let holders = |h: &BlockHash| holders_of(env, h);
        match message {
            ServeMessage::TxQuery {
                request_id,
                txid,
                block_hint,
            } => {
                // A member forwarding a query gets our own answer only: no cascades.
                let scope = if env.members.contains(&from) {
                    Scope::LocalOnly
                } else {
                    Scope::Cluster
                };
                let cx = query_cx(env, &self.index, self.me, &holders);
                let origin = Origin::Peer {
                    peer: from,
                    request_id,
                };
                match self
                    .queries
                    .start(now_ms, origin, scope, txid, block_hint, &cx)
                {
                    Ok(_) => {}
                    // An outsider over its rate is not worth a message; a member is told at
                    // once so that it asks elsewhere instead of waiting.
                    Err(QueryError::RateLimited) if scope == Scope::Cluster => {}
                    Err(_) => self.send(
                        from,
                        ServeMessage::TxAnswer {
                            request_id,
                            answer: TxAnswer::Unavailable,
                        },
                    ),
                }
            }
            ServeMessage::TxAnswer { request_id, answer } => {
                let cx = query_cx(env, &self.index, self.me, &holders);
                self.queries
                    .handle_answer(now_ms, from, request_id, answer, &cx);
            }
            ServeMessage::Stored { block_hash, .. } => {
                self.new_blocks.handle_announcement(from, &block_hash);
            }
            ServeMessage::NewBlock { bytes } => {
                let cx = new_block_cx(env, self.me);
                if let Err(error) =
                    self.new_blocks
                        .handle_block(now_ms, Source::Member(from), &bytes, &cx)
                {
                    self.event(ServeEvent::BlockRejected {
                        from: Some(from),
                        error,
                    });
                }
            }
            ServeMessage::GetBlock {
                request_id,
                block_hash,
            } => {
                if self.index.contains_block(&block_hash) {
                    let id = self.next_request_id();
                    self.pending.insert(
                        id,
                        Pending::ServeBlock {
                            to: from,
                            request_id,
                        },
                    );
                    self.storage(StorageIntent::GetBlock {
                        request_id: id,
                        block_hash,
                    });
                } else {
                    self.send(from, ServeMessage::BlockNotFound { request_id });
                }
            }
            ServeMessage::BlockData { request_id, bytes } => {
                self.cache.handle_block_data(
                    now_ms,
                    from,
                    request_id & !CACHE_REQUEST_BIT,
                    &bytes,
                    env.chain,
                );
            }
            ServeMessage::BlockNotFound { request_id } => {
                self.cache
                    .handle_not_found(now_ms, from, request_id & !CACHE_REQUEST_BIT);
            }
        }
        self.pump();
    }

    /// A block from the block source.
    pub fn handle_new_block(
        &mut self,
        now_ms: u64,
        bytes: &[u8],
        env: &Env<'_, P>,
    ) -> Result<BlockHash, NewBlockError> {
        self.sync_members(env);
        let cx = new_block_cx(env, self.me);
        let result = self
            .new_blocks
            .handle_block(now_ms, Source::BlockSource, bytes, &cx);
        if let Err(error) = &result {
            self.event(ServeEvent::BlockRejected {
                from: None,
                error: error.clone(),
            });
        }
        self.pump();
        result
    }

    /// The best chain changed: drop what left it (shard, index, cache), ask for what joined.
    pub fn handle_chain_change(&mut self, change: &ChainChange, env: &Env<'_, P>) {
        self.sync_members(env);
        let index = &self.index;
        let held = |h: &BlockHash| index.contains_block(h);
        let cx = new_block_cx(env, self.me);
        self.new_blocks.handle_chain_change(change, &held, &cx);
        for (_, block_hash) in &change.disconnected {
            self.cache.remove(block_hash);
        }
        self.pump();
    }

    /// Runs a job on block `block_hash` (S17): from the cache, from this node's own store, or
    /// fetched from a holder. [`ServeEvent::JobReady`] says when to call [`Serve::with_block`].
    pub fn run_job(
        &mut self,
        now_ms: u64,
        job: JobId,
        block_hash: BlockHash,
        env: &Env<'_, P>,
    ) -> Result<(), CacheError> {
        if !self.cache.contains(&block_hash) && self.index.contains_block(&block_hash) {
            let id = self.next_request_id();
            self.pending
                .insert(id, Pending::JobRead { job, block_hash });
            self.storage(StorageIntent::GetBlock {
                request_id: id,
                block_hash,
            });
            return Ok(());
        }
        let holders: Vec<P> = holders_of(env, &block_hash)
            .into_iter()
            .filter(|p| *p != self.me)
            .collect();
        let result = self
            .cache
            .request(now_ms, job, block_hash, &holders, env.chain);
        self.pump();
        result
    }

    /// Runs `f` on a block made ready by [`Serve::run_job`].
    pub fn with_block<R>(
        &mut self,
        block_hash: &BlockHash,
        f: impl FnOnce(&Block) -> R,
    ) -> Option<R> {
        self.cache.with_block(block_hash, f)
    }

    /// A [`StorageIntent::PutBlock`] finished.
    pub fn handle_put_result(&mut self, request_id: u64, ok: bool) {
        let Some(Pending::Put {
            block_hash,
            height,
            bytes,
        }) = self.pending.remove(&request_id)
        else {
            return;
        };
        if ok {
            if let Ok(block) = Block::decode(&bytes) {
                self.index_block(&block, height);
                self.stats.new_blocks_stored += 1;
            }
        }
        self.new_blocks.handle_stored(&block_hash, ok, self.me);
        self.pump();
    }

    /// A [`StorageIntent::GetBlock`] finished (`None`: not stored).
    pub fn handle_get_result(
        &mut self,
        now_ms: u64,
        request_id: u64,
        bytes: Option<&[u8]>,
        env: &Env<'_, P>,
    ) {
        match self.pending.remove(&request_id) {
            Some(Pending::QueryRead { query, block_hash }) => {
                let holders = |h: &BlockHash| holders_of(env, h);
                let cx = query_cx(env, &self.index, self.me, &holders);
                self.queries
                    .handle_block_read(now_ms, query, block_hash, bytes, &cx);
            }
            Some(Pending::ServeBlock { to, request_id }) => match bytes {
                Some(bytes) => {
                    self.stats.blocks_served += 1;
                    self.send(
                        to,
                        ServeMessage::BlockData {
                            request_id,
                            bytes: Arc::from(bytes),
                        },
                    );
                }
                None => self.send(to, ServeMessage::BlockNotFound { request_id }),
            },
            Some(Pending::JobRead { job, block_hash }) => {
                let inserted = bytes
                    .ok_or(CacheError::Unavailable)
                    .and_then(|b| self.cache.insert_verified(b, true, env.chain));
                match inserted {
                    Ok(_) => self.event(ServeEvent::JobReady { job, block_hash }),
                    Err(error) => self.event(ServeEvent::JobFailed {
                        job,
                        block_hash,
                        error,
                    }),
                }
            }
            Some(Pending::Put { .. }) | None => {}
        }
        self.pump();
    }

    /// The node stored a block by itself (repair, hand-over, start-up): index it. `height` is
    /// only reported in [`ServeEvent::BlockStored`].
    pub fn block_stored(&mut self, block: &Block, height: u32) {
        self.index_block(block, height);
    }

    /// [`Serve::block_stored`] for a block whose transaction ids are already known (it was
    /// just checked), so that they are not hashed again.
    pub fn block_stored_txids(&mut self, block_hash: BlockHash, height: u32, txids: &[Txid]) {
        let ops = self.index.add_txids(block_hash, txids);
        self.indexed(block_hash, height, ops);
    }

    /// The node deleted a block by itself: unindex it and forget any cached copy.
    pub fn block_removed(&mut self, block_hash: &BlockHash) {
        let ops = self.index.remove_block(block_hash);
        if !ops.is_empty() {
            self.storage(StorageIntent::WriteIndex { ops });
        }
        self.cache.remove(block_hash);
    }

    /// Restores one index record read from the node's key/value store at start.
    pub fn load_index_record(
        &mut self,
        key: &[u8],
        value: &[u8],
    ) -> Result<BlockHash, super::txindex::TxIndexError> {
        self.index.load_record(key, value)
    }

    /// Runs every component's due timers.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.queries.handle_timeout(now_ms);
        self.new_blocks.handle_timeout(now_ms, self.me);
        self.cache.handle_timeout(now_ms);
        self.pump();
    }

    /// The earliest time [`Serve::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        [
            self.queries.poll_timeout(),
            self.new_blocks.poll_timeout(),
            self.cache.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<ServeOutput<P>> {
        self.outputs.pop_front()
    }

    /// Keeps the member list for announcements made outside a call that has an [`Env`].
    fn sync_members(&mut self, env: &Env<'_, P>) {
        if self.members != env.members {
            self.members = env.members.to_vec();
        }
    }

    fn index_block(&mut self, block: &Block, height: u32) {
        let ops = self.index.add_block(block);
        self.indexed(block.block_hash(), height, ops);
    }

    fn indexed(&mut self, block_hash: BlockHash, height: u32, ops: Vec<KvOp>) {
        if !ops.is_empty() {
            self.storage(StorageIntent::WriteIndex { ops });
            self.event(ServeEvent::BlockStored { block_hash, height });
        }
    }

    /// Moves every component's outputs into the serving layer's own.
    fn pump(&mut self) {
        while let Some(out) = self.queries.poll_output() {
            match out {
                QueryOutput::ReadBlock { query, block_hash } => {
                    let id = self.next_request_id();
                    self.pending
                        .insert(id, Pending::QueryRead { query, block_hash });
                    self.storage(StorageIntent::GetBlock {
                        request_id: id,
                        block_hash,
                    });
                }
                QueryOutput::Ask {
                    to,
                    request_id,
                    txid,
                    block_hint,
                } => {
                    self.send(
                        to,
                        ServeMessage::TxQuery {
                            request_id,
                            txid,
                            block_hint,
                        },
                    );
                }
                QueryOutput::Reply {
                    to,
                    request_id,
                    answer,
                } => {
                    self.stats.queries_answered += 1;
                    self.send(to, ServeMessage::TxAnswer { request_id, answer });
                }
                QueryOutput::Done {
                    query,
                    txid,
                    result,
                    answered_by,
                } => {
                    self.stats.queries_done += 1;
                    self.event(ServeEvent::QueryDone {
                        query,
                        txid,
                        result,
                        answered_by,
                    });
                }
                QueryOutput::Misbehaved { peer, score } => {
                    self.event(ServeEvent::Misbehaved { peer, score })
                }
                QueryOutput::CorruptBlock { block_hash } => {
                    // Never serve these bytes; never delete them either (the fault may be
                    // transient, the copy the last). It stays indexed — every read is checked
                    // again, so a later query tries it afresh — and the node refetches a
                    // verified copy to put over it.
                    self.event(ServeEvent::BlockCorrupt { block_hash });
                }
            }
        }
        while let Some(out) = self.new_blocks.poll_output() {
            match out {
                NewBlockOutput::Store {
                    block_hash,
                    height,
                    bytes,
                } => {
                    let id = self.next_request_id();
                    self.pending.insert(
                        id,
                        Pending::Put {
                            block_hash,
                            height,
                            bytes: bytes.clone(),
                        },
                    );
                    self.storage(StorageIntent::PutBlock {
                        request_id: id,
                        block_hash,
                        height,
                        bytes,
                    });
                }
                NewBlockOutput::SendBlock { to, bytes, .. } => {
                    self.send(to, ServeMessage::NewBlock { bytes })
                }
                NewBlockOutput::Announce { block_hash, height } => {
                    let members: Vec<P> = self
                        .members
                        .iter()
                        .copied()
                        .filter(|m| *m != self.me)
                        .collect();
                    for to in members {
                        self.send(to, ServeMessage::Stored { block_hash, height });
                    }
                }
                NewBlockOutput::Drop { block_hash } => {
                    self.stats.blocks_dropped += 1;
                    self.block_removed(&block_hash);
                    self.storage(StorageIntent::DeleteBlock { block_hash });
                    self.event(ServeEvent::BlockDropped { block_hash });
                }
                NewBlockOutput::Fetch { block_hash, height } => {
                    self.event(ServeEvent::MustFetch { block_hash, height })
                }
                NewBlockOutput::SafelyStored {
                    block_hash, height, ..
                } => self.event(ServeEvent::SafelyStored { block_hash, height }),
                NewBlockOutput::Underreplicated {
                    block_hash, height, ..
                } => self.event(ServeEvent::Underreplicated { block_hash, height }),
            }
        }
        while let Some(out) = self.cache.poll_output() {
            match out {
                CacheOutput::Fetch {
                    to,
                    request_id,
                    block_hash,
                } => self.send(
                    to,
                    ServeMessage::GetBlock {
                        request_id: request_id | CACHE_REQUEST_BIT,
                        block_hash,
                    },
                ),
                CacheOutput::Ready { job, block_hash } => {
                    self.event(ServeEvent::JobReady { job, block_hash })
                }
                CacheOutput::Failed {
                    job,
                    block_hash,
                    error,
                } => self.event(ServeEvent::JobFailed {
                    job,
                    block_hash,
                    error,
                }),
                CacheOutput::EvictedAssigned { block_hash } => {
                    self.block_removed(&block_hash);
                    self.storage(StorageIntent::DeleteBlock { block_hash });
                }
                CacheOutput::Misbehaved { peer, score } => {
                    self.event(ServeEvent::Misbehaved { peer, score })
                }
            }
        }
    }

    fn next_request_id(&mut self) -> u64 {
        let id = self.next_request_id;
        self.next_request_id += 1;
        id
    }

    fn send(&mut self, to: P, message: ServeMessage) {
        debug_assert!(to != self.me, "never send to self");
        self.outputs.push_back(ServeOutput::Send { to, message });
    }

    fn storage(&mut self, intent: StorageIntent) {
        self.outputs.push_back(ServeOutput::Storage(intent));
    }

    fn event(&mut self, event: ServeEvent<P>) {
        self.outputs.push_back(ServeOutput::Event(event));
    }
}

fn query_cx<'a, P: Copy>(
    env: &'a Env<'a, P>,
    index: &'a TxIndex,
    me: P,
    holders: &'a dyn Fn(&BlockHash) -> Vec<P>,
) -> query::Context<'a, P> {
    query::Context {
        chain: env.chain,
        index,
        me,
        members: env.members,
        archives: env.archives,
        holders,
    }
}

fn new_block_cx<'a, P>(env: &'a Env<'a, P>, me: P) -> newblock::Context<'a, P> {
    newblock::Context {
        chain: env.chain,
        me,
        holders: env.holders,
    }
}

/// Placement by hash alone, for queries: the height comes from the header chain.
fn holders_of<P>(env: &Env<'_, P>, hash: &BlockHash) -> Vec<P> {
    match env.chain.height_of(hash) {
        Some(height) => (env.holders)(hash, height),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
