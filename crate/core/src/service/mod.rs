//! The serving layer as one piece the node drives (S14–S17): [`Serve`] bundles the serving
//! components of [`crate::serve`] — the transaction index, queries, new-block storage and the
//! block cache — keeps them in step with each other
//! (a stored block is indexed; a dropped block leaves index and cache; a reorg drops what left
//! the best chain) and speaks the node's own vocabulary: it takes the node's [`Message`]s and
//! queues the node's [`Output`]s — messages, [`StorageCommand`]s and [`Event`]s.
//!
//! # Usage
//!
//! The node owns one `Serve` and, with `now_ms` and an [`Env`] (its header view, the cluster's
//! members, placement), calls:
//!
//! - [`Serve::query`] for a front-end query, [`Serve::handle_message`] for the serving
//!   messages from a peer (`TxQuery`, `TxAnswer`, `BlockStored`, `NewBlock`, and the
//!   `BlockData`/`BlockNotFound` answers to the cache's fetches, [`Serve::awaits_block`]),
//!   [`Serve::handle_new_block`] for a block from the block source,
//!   [`Serve::handle_chain_change`] when the header chain moved, [`Serve::run_job`] to run
//!   code on any block (S17);
//! - [`Serve::handle_put_result`] / [`Serve::handle_get_result`] when a storage command it
//!   issued finished ([`Serve::put_height`] / [`Serve::awaits_read`] say which are its own);
//! - [`Serve::block_stored`] / [`Serve::block_removed`] when the node itself (repair, start-up)
//!   stored or deleted a block, so that the index follows the shard;
//! - [`Serve::handle_timeout`] when [`Serve::poll_timeout`] is due;
//!
//! and after each call drains [`Serve::poll_output`] into its own outputs. Every request id
//! (storage commands, queries' asks, the cache's fetches) comes from the node's
//! [`RequestIds`], so an answer is routed back by looking its id up, never by bits in it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

pub(crate) mod upkeep;

use crate::base::{NodeId, RequestIds};
use crate::chain::{Block, BlockHash, Hash256, Txid};
use crate::io::{Event, Output, StorageCommand};
use crate::serve::cache::{BlockCache, CacheError, CacheOutput, JobId};
use crate::serve::newblock::{self, NewBlockError, NewBlockOutput, NewBlocks, Source};
use crate::serve::query::{self, Origin, Queries, QueryError, QueryId, QueryOutput, Scope};
use crate::serve::reorg::ChainChange;
use crate::serve::txindex::{KvOp, TxIndex};
use crate::serve::{BestChain, ServeConfig};
use crate::wire::{Message, TxAnswerBody};

/// What the serving layer needs of the node at each call.
pub struct Env<'a> {
    /// The node's best header chain.
    pub chain: &'a dyn BestChain,
    /// The cluster's members, this node included (empty for an ordinary node).
    pub members: &'a [NodeId],
    /// Connected archives (asked last by this node's own queries when
    /// [`QueryConfig::ask_archives`](crate::serve::query::QueryConfig::ask_archives) is set;
    /// may be empty otherwise).
    pub archives: &'a [NodeId],
    /// Placement: the members that must hold a block (hash, height).
    pub holders: &'a dyn Fn(&BlockHash, u32) -> Vec<NodeId>,
    /// The node's index is built and it holds every block placed on it
    /// ([`query::Context::complete`]).
    pub complete: bool,
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
    /// Blocks dropped because they left the best chain.
    pub blocks_dropped: u64,
}

/// What a storage command of the serving layer is for: its result is routed by this.
#[derive(Debug, Clone)]
enum Pending {
    /// A query reads a candidate block.
    QueryRead {
        query: QueryId,
        block_hash: BlockHash,
    },
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
pub struct Serve {
    me: NodeId,
    request_ids: RequestIds,
    index: TxIndex,
    queries: Queries<NodeId>,
    new_blocks: NewBlocks<NodeId>,
    cache: BlockCache<NodeId>,
    /// Storage commands in flight, by request id.
    pending: HashMap<u64, Pending>,
    /// This node's front-end queries: the queries' own id → the front end's.
    local_queries: HashMap<QueryId, u64>,
    outputs: VecDeque<Output>,
    /// Stored blocks a query read back corrupt, for [`Serve::handle_get_result`] to report.
    corrupt: Vec<BlockHash>,
    /// The members as of the last call with an [`Env`] (announcement targets).
    members: Vec<NodeId>,
    stats: ServeStats,
}

impl Serve {
    /// The serving layer of node `me`, numbering its requests with the node's `request_ids`.
    pub fn new(config: ServeConfig, me: NodeId, request_ids: RequestIds) -> Self {
        Self {
            me,
            index: TxIndex::new(config.index),
            queries: Queries::with_request_ids(config.query, request_ids.clone()),
            new_blocks: NewBlocks::new(config.new_blocks),
            cache: BlockCache::with_request_ids(config.cache, request_ids.clone()),
            request_ids,
            pending: HashMap::new(),
            local_queries: HashMap::new(),
            outputs: VecDeque::new(),
            corrupt: Vec::new(),
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

    /// Whether the block cache waits for a `BlockData`/`BlockNotFound` under `request_id`.
    pub fn awaits_block(&self, request_id: u64) -> bool {
        self.cache.awaits(request_id)
    }

    /// Whether a block read (`StorageCommand::Get`) of the serving layer waits under
    /// `request_id`.
    pub fn awaits_read(&self, request_id: u64) -> bool {
        matches!(
            self.pending.get(&request_id),
            Some(Pending::QueryRead { .. } | Pending::JobRead { .. })
        )
    }

    /// The height of the new block a `StorageCommand::Put` of the serving layer writes under
    /// `request_id`, if it is one.
    pub fn put_height(&self, request_id: u64) -> Option<u32> {
        match self.pending.get(&request_id) {
            Some(Pending::Put { height, .. }) => Some(*height),
            _ => None,
        }
    }

    /// A query from this node's front end, answered by [`Event::TxQueryDone`] with
    /// `query_id`.
    pub fn query(
        &mut self,
        now_ms: u64,
        query_id: u64,
        txid: Txid,
        block_hint: Option<BlockHash>,
        env: &Env<'_>,
    ) -> Result<(), QueryError> {
        self.sync_members(env);
        let holders = |h: &BlockHash| holders_of(env, h);
        let cx = query_cx(env, &self.index, self.me, &holders);
        let started =
            self.queries
                .start(now_ms, Origin::Local, Scope::Cluster, txid, block_hint, &cx);
        if let Ok(query) = started {
            self.local_queries.insert(query, query_id);
        }
        self.pump();
        started.map(|_| ())
    }

    /// A serving message from `from`: `TxQuery`, `TxAnswer`, `BlockStored`, `NewBlock`, or a
    /// `BlockData`/`BlockNotFound` the cache awaits. Other messages are not the serving
    /// layer's and are ignored. A new block that fails its checks is refused with the error.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        message: &Message,
        env: &Env<'_>,
    ) -> Result<(), NewBlockError> {
        self.sync_members(env);
        let holders = |h: &BlockHash| holders_of(env, h);
        let mut result = Ok(());
        match message {
            Message::TxQuery {
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
                    request_id: *request_id,
                };
                match self
                    .queries
                    .start(now_ms, origin, scope, Txid(txid.0), *block_hint, &cx)
                {
                    Ok(_) => {}
                    // An outsider over its rate is not worth a message; a member is told at
                    // once so that it asks elsewhere instead of waiting.
                    Err(QueryError::RateLimited) if scope == Scope::Cluster => {}
                    Err(_) => self.send(
                        from,
                        Message::TxAnswer {
                            request_id: *request_id,
                            answer: TxAnswerBody::Unavailable,
                        },
                    ),
                }
            }
            Message::TxAnswer { request_id, answer } => {
                let cx = query_cx(env, &self.index, self.me, &holders);
                self.queries
                    .handle_answer(now_ms, from, *request_id, answer.clone(), &cx);
            }
            Message::BlockStored { block_hash, .. } => {
                self.new_blocks.handle_announcement(from, block_hash);
            }
            Message::NewBlock { block } => {
                let cx = new_block_cx(env, self.me);
                result = self
                    .new_blocks
                    .handle_block(now_ms, Source::Member(from), block, &cx)
                    .map(|_| ());
            }
            Message::BlockData { request_id, block } => {
                self.cache
                    .handle_block_data(now_ms, from, *request_id, block, env.chain);
            }
            Message::BlockNotFound { request_id } => {
                self.cache.handle_not_found(now_ms, from, *request_id);
            }
            _ => {}
        }
        self.pump();
        result
    }

    /// A block from the block source.
    pub fn handle_new_block(
        &mut self,
        now_ms: u64,
        bytes: &[u8],
        env: &Env<'_>,
    ) -> Result<BlockHash, NewBlockError> {
        self.sync_members(env);
        let cx = new_block_cx(env, self.me);
        let result = self
            .new_blocks
            .handle_block(now_ms, Source::BlockSource, bytes, &cx);
        self.pump();
        result
    }

    /// The best chain changed: drop what left it (shard, index, cache). What joined it is the
    /// node's repair's to fetch (it rescans the new chain against placement).
    pub fn handle_chain_change(&mut self, change: &ChainChange, env: &Env<'_>) {
        self.sync_members(env);
        let index = &self.index;
        let held = |h: &BlockHash| index.contains_block(h);
        self.new_blocks.handle_chain_change(change, &held);
        for (_, block_hash) in &change.disconnected {
            self.cache.remove(block_hash);
        }
        self.pump();
    }

    /// Runs a job on block `block_hash` (S17): from the cache, from this node's own store, or
    /// fetched from a holder. [`Event::JobReady`] says when to call [`Serve::with_block`].
    pub fn run_job(
        &mut self,
        now_ms: u64,
        job: JobId,
        block_hash: BlockHash,
        env: &Env<'_>,
    ) -> Result<(), CacheError> {
        if !self.cache.contains(&block_hash) && self.index.contains_block(&block_hash) {
            self.read(Pending::JobRead { job, block_hash }, block_hash);
            return Ok(());
        }
        let holders: Vec<NodeId> = holders_of(env, &block_hash)
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

    /// A `StorageCommand::Put` of a new block finished.
    pub fn handle_put_result(&mut self, request_id: u64, ok: bool) {
        let Some(Pending::Put {
            block_hash, bytes, ..
        }) = self.pending.remove(&request_id)
        else {
            return;
        };
        if ok {
            if let Ok(block) = Block::decode(&bytes) {
                self.index_block(&block);
                self.stats.new_blocks_stored += 1;
            }
        }
        self.new_blocks.handle_stored(&block_hash, ok, self.me);
        self.pump();
    }

    /// A `StorageCommand::Get` of the serving layer finished (`None`: not stored). Returns the
    /// stored blocks that read back corrupt: the node keeps them as suspect, serves none of
    /// their bytes and refetches a verified copy to put over them (it has to act on them
    /// before it drains what this call queued).
    pub fn handle_get_result(
        &mut self,
        now_ms: u64,
        request_id: u64,
        bytes: Option<&[u8]>,
        env: &Env<'_>,
    ) -> Vec<BlockHash> {
        match self.pending.remove(&request_id) {
            Some(Pending::QueryRead { query, block_hash }) => {
                let holders = |h: &BlockHash| holders_of(env, h);
                let cx = query_cx(env, &self.index, self.me, &holders);
                self.queries
                    .handle_block_read(now_ms, query, block_hash, bytes, &cx);
            }
            Some(Pending::JobRead { job, block_hash }) => {
                let inserted = bytes
                    .ok_or(CacheError::Unavailable)
                    .and_then(|b| self.cache.insert_verified(b, true, env.chain));
                match inserted {
                    Ok(_) => self.event(Event::JobReady { job, block_hash }),
                    Err(error) => self.event(Event::JobFailed {
                        job,
                        block_hash,
                        error,
                    }),
                }
            }
            Some(Pending::Put { .. }) | None => {}
        }
        self.pump();
        std::mem::take(&mut self.corrupt)
    }

    /// The node stored a block by itself (repair, hand-over, start-up): index it (and queue
    /// the index record's write).
    pub fn block_stored(&mut self, block: &Block) {
        self.index_block(block);
    }

    /// [`Serve::block_stored`] for a block whose transaction ids are already known (it was
    /// just checked), so that they are not hashed again.
    pub fn block_stored_txids(&mut self, block_hash: BlockHash, txids: &[Txid]) {
        let ops = self.index.add_txids(block_hash, txids);
        self.indexed(ops);
    }

    /// The node deleted a block by itself: unindex it and forget any cached copy.
    pub fn block_removed(&mut self, block_hash: &BlockHash) {
        let ops = self.index.remove_block(block_hash);
        self.indexed(ops);
        self.cache.remove(block_hash);
    }

    /// Restores one index record read from the node's key/value store at start.
    pub fn load_index_record(
        &mut self,
        key: &[u8],
        value: &[u8],
    ) -> Result<BlockHash, crate::serve::txindex::TxIndexError> {
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
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Keeps the member list for announcements made outside a call that has an [`Env`].
    fn sync_members(&mut self, env: &Env<'_>) {
        if self.members != env.members {
            self.members = env.members.to_vec();
        }
    }

    fn index_block(&mut self, block: &Block) {
        let ops = self.index.add_block(block);
        self.indexed(ops);
    }

    /// Queues the write of index records, if there are any.
    fn indexed(&mut self, ops: Vec<KvOp>) {
        if !ops.is_empty() {
            let request_id = self.request_ids.next_id();
            self.outputs
                .push_back(Output::Storage(StorageCommand::WriteKv { request_id, ops }));
        }
    }

    /// Reads a stored block for `pending`.
    fn read(&mut self, pending: Pending, block_hash: BlockHash) {
        let request_id = self.request_ids.next_id();
        self.pending.insert(request_id, pending);
        self.outputs.push_back(Output::Storage(StorageCommand::Get {
            request_id,
            block_hash,
        }));
    }

    /// Deletes a stored block.
    fn delete(&mut self, block_hash: BlockHash) {
        let request_id = self.request_ids.next_id();
        self.outputs
            .push_back(Output::Storage(StorageCommand::Delete {
                request_id,
                block_hash,
            }));
    }

    /// Turns every component's outputs into the node's.
    fn pump(&mut self) {
        while let Some(out) = self.queries.poll_output() {
            match out {
                QueryOutput::ReadBlock { query, block_hash } => {
                    self.read(Pending::QueryRead { query, block_hash }, block_hash);
                }
                QueryOutput::Ask {
                    to,
                    request_id,
                    txid,
                    block_hint,
                } => self.send(
                    to,
                    Message::TxQuery {
                        request_id,
                        txid: Hash256(txid.0),
                        block_hint,
                    },
                ),
                QueryOutput::Reply {
                    to,
                    request_id,
                    answer,
                } => {
                    self.stats.queries_answered += 1;
                    self.send(to, Message::TxAnswer { request_id, answer });
                }
                QueryOutput::Done {
                    query,
                    txid,
                    result,
                    answered_by,
                } => {
                    self.stats.queries_done += 1;
                    if let Some(query_id) = self.local_queries.remove(&query) {
                        self.event(Event::TxQueryDone {
                            query_id,
                            txid,
                            result,
                            answered_by,
                        });
                    }
                }
                QueryOutput::Misbehaved { peer, score } => {
                    self.event(Event::PeerMisbehaved { peer, score })
                }
                QueryOutput::CorruptBlock { block_hash } => {
                    // Never serve these bytes; never delete them either (the fault may be
                    // transient, the copy the last). It stays indexed — every read is checked
                    // again, so a later query tries it afresh — and the node refetches a
                    // verified copy to put over it.
                    self.corrupt.push(block_hash);
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
                    let request_id = self.request_ids.next_id();
                    self.pending.insert(
                        request_id,
                        Pending::Put {
                            block_hash,
                            height,
                            bytes: bytes.clone(),
                        },
                    );
                    self.outputs.push_back(Output::Storage(StorageCommand::Put {
                        request_id,
                        block_hash,
                        height,
                        bytes: bytes.to_vec(),
                    }));
                }
                NewBlockOutput::SendBlock { to, bytes, .. } => self.send(
                    to,
                    Message::NewBlock {
                        block: bytes.to_vec(),
                    },
                ),
                NewBlockOutput::Announce { block_hash, height } => {
                    let members: Vec<NodeId> = self
                        .members
                        .iter()
                        .copied()
                        .filter(|m| *m != self.me)
                        .collect();
                    for to in members {
                        self.send(to, Message::BlockStored { block_hash, height });
                    }
                }
                NewBlockOutput::Drop { block_hash } => {
                    self.stats.blocks_dropped += 1;
                    self.block_removed(&block_hash);
                    self.delete(block_hash);
                }
                NewBlockOutput::SafelyStored {
                    block_hash, height, ..
                } => self.event(Event::BlockSafelyStored { block_hash, height }),
                NewBlockOutput::Underreplicated {
                    block_hash, height, ..
                } => self.event(Event::BlockUnderreplicated { block_hash, height }),
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
                    Message::GetBlock {
                        request_id,
                        block_hash,
                    },
                ),
                CacheOutput::Ready { job, block_hash } => {
                    self.event(Event::JobReady { job, block_hash })
                }
                CacheOutput::Failed {
                    job,
                    block_hash,
                    error,
                } => self.event(Event::JobFailed {
                    job,
                    block_hash,
                    error,
                }),
                CacheOutput::EvictedAssigned { block_hash } => {
                    self.block_removed(&block_hash);
                    self.delete(block_hash);
                }
                CacheOutput::Misbehaved { peer, score } => {
                    self.event(Event::PeerMisbehaved { peer, score })
                }
            }
        }
    }

    fn send(&mut self, to: NodeId, message: Message) {
        debug_assert!(to != self.me, "never send to self");
        self.outputs.push_back(Output::Send { to, message });
    }

    fn event(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }
}

fn query_cx<'a>(
    env: &'a Env<'a>,
    index: &'a TxIndex,
    me: NodeId,
    holders: &'a dyn Fn(&BlockHash) -> Vec<NodeId>,
) -> query::Context<'a, NodeId> {
    query::Context {
        chain: env.chain,
        index,
        me,
        members: env.members,
        archives: env.archives,
        holders,
        complete: env.complete,
    }
}

fn new_block_cx<'a>(env: &'a Env<'a>, me: NodeId) -> newblock::Context<'a, NodeId> {
    newblock::Context {
        chain: env.chain,
        me,
        holders: env.holders,
    }
}

/// Placement by hash alone, for queries: the height comes from the header chain.
fn holders_of(env: &Env<'_>, hash: &BlockHash) -> Vec<NodeId> {
    match env.chain.height_of(hash) {
        Some(height) => (env.holders)(hash, height),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
