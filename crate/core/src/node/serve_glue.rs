//! The node's serving layer (S16, S17, reorg handling for S14–S16): the node owns a
//! [`Serve`] and this file connects it to the node's inputs and outputs.
//!
//! - Front-end queries ([`Input::TxQuery`]) and queries from peers (`Message::TxQuery`) run in
//!   the serving layer: answered from this member's blocks through its transaction index, else
//!   forwarded to the block's holders or to all members, and, for front-end queries with
//!   `serve.query.ask_archives`, last to the connected peers whose `Hello` says archive; the
//!   first answer whose Merkle proof checks against this node's header view wins
//!   ([`Event::TxQueryDone`], which names the answering node).
//! - Jobs on any block ([`Input::RunJob`], [`Node::with_block`]): from the shard or fetched
//!   from a holder into the bounded, verified cache (S17).
//! - The transaction index follows the shard: every `StorageCommand::Put` the node issues is
//!   indexed, every `Delete` unindexed, and each change is persisted as one record per block
//!   (`StorageCommand::WriteKv`, an atomic batch). At start the node lists the records
//!   (`ListKv`) and loads them; of the listed blocks only those without a valid record are read
//!   back (a few at a time) and indexed. A record that fails to decode is deleted (its block,
//!   if held, is re-indexed from its bytes), and so is a record whose block is not stored.
//! - A reorg seen in [`Input::Headers`] drops held blocks that left the best chain (from the
//!   store, the held set, the index and the cache); the repair rescan then fetches the blocks
//!   that replaced them.
//!
//! - New blocks from the block source reach a member's serving layer ([`Input::NewBlock`]):
//!   routed (S14: the first member to learn of a block sends it to its holders,
//!   `Message::NewBlock`) or self-selected (S15), per `Config::serve.new_blocks.mode`; holders
//!   announce `Message::BlockStored`; after P announcements [`Event::BlockSafelyStored`], after
//!   the re-drive budget [`Event::BlockUnderreplicated`] and a repair rescan. Archives and
//!   ordinary nodes keep the node's own path (store if wanted).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

use super::chain_seam::Checked;
use super::io::{Event, Output, StorageCommand, StorageResult, TimerId};
use super::{HeaderView, Node, NodeId, Role};
use crate::chain::{Block, BlockHash, Header, Txid};
use crate::placement::Slot;
use crate::serve::query::{QueryId, TxAnswer};
use crate::serve::reorg::diff;
use crate::serve::service::{Env, Serve, ServeEvent, ServeMessage, ServeOutput, StorageIntent};
use crate::serve::txindex::KvOp;
use crate::serve::BestChain;
use crate::wire::{Message, TxAnswerBody};

/// Blocks read back at once to rebuild the index at start.
const INDEX_REBUILD_READS_MAX: usize = 8;
/// Deepest reorg followed block by block (deeper ones are left to the repair rescan).
const REORG_DEPTH_MAX: u32 = 1_000;

/// The serving layer and what connects it to the node.
#[derive(Debug)]
pub(crate) struct ServeGlue {
    pub(crate) serve: Serve<NodeId>,
    /// Storage request id (the node's) → the serving layer's request id.
    storage: HashMap<u64, u64>,
    /// Puts the node issued → the block, to unindex if the write fails.
    puts: HashMap<u64, BlockHash>,
    /// Puts of new blocks the serving layer asked for: the node's request id → (the serving
    /// layer's request id, height).
    new_block_puts: HashMap<u64, (u64, u32)>,
    /// The serving layer's query id → the front end's.
    queries: HashMap<QueryId, u64>,
    /// Listed blocks still to read back into the index.
    rebuild: VecDeque<BlockHash>,
    /// Reads of the rebuild in flight: the node's request id → block.
    rebuild_reads: HashMap<u64, BlockHash>,
    /// A held block was dropped (it left the best chain, or was evicted): the repair rescan
    /// must run.
    rescan: bool,
    /// The start-up `ListKv` in flight.
    kv_list_request: Option<u64>,
    /// Blocks whose stored record loaded at start (checked against the block listing: a
    /// record without its block is deleted).
    loaded: HashSet<BlockHash>,
    /// Until the start-up listings are in: blocks put (`true`) or deleted (`false`) since
    /// start, which the listings may not show yet.
    since_start: Option<HashMap<BlockHash, bool>>,
    /// The start-up block listing, waiting for the records to load.
    listed: Option<Vec<BlockHash>>,
    /// The serving layer may hold index writes not yet turned into storage commands.
    index_dirty: bool,
    /// The block the node checked last, with its txids: the put that follows the check is
    /// indexed from them instead of decoding and hashing the block again.
    pub(crate) checked: Option<Checked>,
}

impl ServeGlue {
    pub(crate) fn new(serve: Serve<NodeId>) -> Self {
        Self {
            serve,
            storage: HashMap::new(),
            puts: HashMap::new(),
            new_block_puts: HashMap::new(),
            queries: HashMap::new(),
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
}

/// The node's header view as the serving layer reads it (an absent view is an empty chain).
struct ViewChain<'a>(Option<&'a dyn HeaderView>);

impl BestChain for ViewChain<'_> {
    fn tip_height(&self) -> Option<u32> {
        self.0.and_then(|v| v.tip_height())
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        self.0.and_then(|v| v.header_at(height))
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.0.and_then(|v| v.block_hash_at(height))
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.0.and_then(|v| v.height_of(hash))
    }
}

impl Node {
    /// Runs `f` on the serving layer with the node's header view, members and placement, then
    /// turns the serving layer's outputs into the node's.
    fn with_serve<R>(&mut self, f: impl FnOnce(&mut Serve<NodeId>, &Env<'_, NodeId>) -> R) -> R {
        let result = self.with_serve_quiet(f);
        self.pump_serve();
        result
    }

    /// [`Node::with_serve`] without turning outputs over yet (the caller records an id first).
    fn with_serve_quiet<R>(
        &mut self,
        f: impl FnOnce(&mut Serve<NodeId>, &Env<'_, NodeId>) -> R,
    ) -> R {
        let view = self.headers.clone();
        let archives = self.archives_to_ask();
        with_env(
            view.as_deref(),
            &self.role,
            &self.placer,
            &archives,
            |env| f(&mut self.serve.serve, env),
        )
    }

    /// The connected archives, by id, if this node's queries ask them (none otherwise: the
    /// list is not built for nothing).
    fn archives_to_ask(&self) -> Vec<NodeId> {
        if !self.config.serve.query.ask_archives {
            return Vec::new();
        }
        self.connected_archives()
    }

    /// [`Input::TxQuery`]: a query from the front end.
    pub(crate) fn on_tx_query(&mut self, query_id: u64, txid: Txid, hint: Option<BlockHash>) {
        let now_ms = self.now_ms;
        // The query may finish at once: map its id before its outputs are turned over.
        match self.with_serve_quiet(|s, env| s.query(now_ms, txid, hint, env)) {
            Ok(id) => {
                self.serve.queries.insert(id, query_id);
            }
            Err(_) => self.event(Event::TxQueryDone {
                query_id,
                txid,
                result: crate::serve::query::QueryResult::Unavailable,
                answered_by: None,
            }),
        }
        self.pump_serve();
    }

    /// [`Input::RunJob`]: make a block ready for [`Node::with_block`].
    pub(crate) fn on_run_job(&mut self, job: u64, block_hash: BlockHash) {
        let now_ms = self.now_ms;
        if let Err(error) = self.with_serve(|s, env| s.run_job(now_ms, job, block_hash, env)) {
            self.event(Event::JobFailed {
                job,
                block_hash,
                error,
            });
        }
    }

    /// Runs `f` on a block made ready by [`Input::RunJob`](super::Input::RunJob) ([`Event::JobReady`]); `None` if it
    /// is no longer in the cache.
    pub fn with_block<R>(
        &mut self,
        block_hash: &BlockHash,
        f: impl FnOnce(&Block) -> R,
    ) -> Option<R> {
        self.serve.serve.with_block(block_hash, f)
    }

    /// A serving message from a peer: `TxQuery`, `TxAnswer`, and `BlockData`/`BlockNotFound`
    /// answering the cache's fetches. Returns `false` for messages that are not the serving
    /// layer's.
    pub(crate) fn on_serve_message(&mut self, from: NodeId, message: &Message) -> bool {
        let serve_message = match message {
            Message::TxQuery {
                request_id,
                txid,
                block_hint,
            } => ServeMessage::TxQuery {
                request_id: *request_id,
                txid: Txid(txid.0),
                block_hint: *block_hint,
            },
            Message::TxAnswer { request_id, answer } => ServeMessage::TxAnswer {
                request_id: *request_id,
                answer: match answer {
                    TxAnswerBody::Found {
                        block_hash,
                        height,
                        pos,
                        branch,
                        ..
                    } => TxAnswer::Found(crate::chain::MerkleProof {
                        block_hash: *block_hash,
                        height: *height,
                        pos: *pos,
                        branch: branch.clone(),
                    }),
                    TxAnswerBody::NotFound => TxAnswer::NotFound,
                    TxAnswerBody::Unavailable => TxAnswer::Unavailable,
                },
            },
            Message::BlockData { request_id, block }
                if Serve::<NodeId>::owns_request_id(*request_id) =>
            {
                ServeMessage::BlockData {
                    request_id: *request_id,
                    bytes: block.as_slice().into(),
                }
            }
            Message::BlockNotFound { request_id }
                if Serve::<NodeId>::owns_request_id(*request_id) =>
            {
                ServeMessage::BlockNotFound {
                    request_id: *request_id,
                }
            }
            Message::BlockStored { block_hash, height } => ServeMessage::Stored {
                block_hash: *block_hash,
                height: *height,
            },
            Message::NewBlock { block } => ServeMessage::NewBlock {
                bytes: block.as_slice().into(),
            },
            _ => return false,
        };
        let now_ms = self.now_ms;
        self.with_serve(|s, env| s.handle_message(now_ms, from, serve_message, env));
        true
    }

    /// Watches the storage commands the node issues so that the index follows the shard.
    pub(crate) fn observe_storage_command(&mut self, command: &StorageCommand) {
        match command {
            StorageCommand::Put {
                request_id,
                block_hash,
                height,
                bytes,
            } => {
                // Indexed when issued (so a query can find it at once), unindexed if the write
                // fails. The node only puts blocks it has checked against the header chain.
                let checked = self
                    .serve
                    .checked
                    .take()
                    .filter(|c| c.block_hash == *block_hash);
                let indexed = match checked {
                    Some(c) => {
                        self.serve
                            .serve
                            .block_stored_txids(*block_hash, *height, &c.txids);
                        true
                    }
                    None => match Block::decode(bytes) {
                        Ok(block) => {
                            self.serve.serve.block_stored(&block, *height);
                            true
                        }
                        Err(_) => false,
                    },
                };
                if indexed {
                    self.serve.puts.insert(*request_id, *block_hash);
                    self.serve.index_dirty = true;
                    if let Some(since) = &mut self.serve.since_start {
                        since.insert(*block_hash, true);
                    }
                }
            }
            StorageCommand::Delete { block_hash, .. } => {
                self.serve.serve.block_removed(block_hash);
                self.serve.index_dirty = true;
                if let Some(since) = &mut self.serve.since_start {
                    since.insert(*block_hash, false);
                }
            }
            StorageCommand::Get { .. }
            | StorageCommand::List { .. }
            | StorageCommand::WriteKv { .. }
            | StorageCommand::ListKv { .. } => {}
        }
    }

    /// At the end of every input: index writes made while observing storage commands become
    /// storage commands now, not at the serving layer's next output.
    pub(crate) fn flush_index_writes(&mut self) {
        if std::mem::take(&mut self.serve.index_dirty) {
            self.pump_serve();
        }
    }

    /// [`Input::Start`]: ask for the index records before the block listing.
    pub(crate) fn start_index_load(&mut self) {
        let request_id = self.fresh_id();
        self.serve.kv_list_request = Some(request_id);
        self.serve.since_start = Some(HashMap::new());
        self.push(Output::Storage(StorageCommand::ListKv { request_id }));
    }

    /// The start-up `ListKv` answered: load every record; one that fails to decode is deleted
    /// (its block, if listed, is then read back and re-indexed).
    fn on_kv_listed(&mut self, records: &[super::io::KvRecord]) {
        let mut bad = Vec::new();
        for (key, value) in records {
            match self.serve.serve.load_index_record(key, value) {
                Ok(hash) => {
                    self.serve.loaded.insert(hash);
                }
                Err(_) => bad.push(KvOp::Delete { key: key.clone() }),
            }
        }
        if !bad.is_empty() {
            let request_id = self.fresh_id();
            self.push(Output::Storage(StorageCommand::WriteKv {
                request_id,
                ops: bad,
            }));
        }
        if let Some(blocks) = self.serve.listed.take() {
            self.index_listed(blocks);
        }
    }

    /// Records and block listing are both in: delete the records of blocks not stored, and
    /// read back the stored blocks that have no record.
    fn index_listed(&mut self, blocks: Vec<BlockHash>) {
        let loaded = std::mem::take(&mut self.serve.loaded);
        let since_start = self.serve.since_start.take().unwrap_or_default();
        let listed: HashSet<BlockHash> = blocks.iter().copied().collect();
        for hash in loaded {
            let stored = since_start
                .get(&hash)
                .copied()
                .unwrap_or_else(|| listed.contains(&hash));
            if !stored {
                // Unindexes it and deletes its record.
                self.serve.serve.block_removed(&hash);
            }
        }
        self.serve.rebuild.extend(blocks);
        self.pump_index_rebuild();
        self.pump_serve();
    }

    /// Storage results for the serving layer. Returns the result back if it is the node's.
    pub(crate) fn on_serve_storage(&mut self, result: StorageResult) -> Option<StorageResult> {
        match &result {
            StorageResult::Put { request_id, ok } => {
                if let Some(block_hash) = self.serve.puts.remove(request_id) {
                    if !ok {
                        self.serve.serve.block_removed(&block_hash);
                    }
                }
                let Some((serve_id, height)) = self.serve.new_block_puts.remove(request_id) else {
                    return Some(result);
                };
                if *ok {
                    self.repair.confirm(height);
                    self.stats.blocks_from_source += 1;
                    if let Some(block_hash) =
                        self.headers.as_ref().and_then(|h| h.block_hash_at(height))
                    {
                        self.event(Event::BlockStored { block_hash, height });
                    }
                }
                self.serve.serve.handle_put_result(serve_id, *ok);
                self.pump_serve();
                None
            }
            StorageResult::Got { request_id, bytes } => {
                if let Some(block_hash) = self.serve.rebuild_reads.remove(request_id) {
                    // Indexed even before the headers arrive: queries only use entries whose
                    // block is on the best chain. The height is only reported.
                    let height = self.headers.as_ref().and_then(|h| h.height_of(&block_hash));
                    if let Some(bytes) = bytes {
                        if let Ok(block) = Block::decode(bytes) {
                            if block.block_hash() == block_hash && block.check().is_ok() {
                                self.serve.serve.block_stored(&block, height.unwrap_or(0));
                            }
                        }
                    }
                    self.pump_index_rebuild();
                    self.pump_serve();
                    return None;
                }
                let Some(serve_id) = self.serve.storage.remove(request_id) else {
                    return Some(result);
                };
                let now_ms = self.now_ms;
                let bytes = bytes.clone();
                self.with_serve(|s, env| {
                    s.handle_get_result(now_ms, serve_id, bytes.as_deref(), env)
                });
                self.rescan_if_dropped();
                None
            }
            StorageResult::Listed { request_id, .. }
                if self.repair.audit_request == Some(*request_id) =>
            {
                // A storage audit, not the start-up listing: the index is already built.
                Some(result)
            }
            StorageResult::Listed { request_id, blocks }
                if self.repair.list_request == Some(*request_id) =>
            {
                if self.serve.kv_list_request.is_some() {
                    // The records are still loading.
                    self.serve.listed = Some(blocks.clone());
                } else {
                    self.index_listed(blocks.clone());
                }
                Some(result)
            }
            StorageResult::Listed { .. } | StorageResult::Deleted { .. } => Some(result),
            StorageResult::KvListed {
                request_id,
                records,
            } => {
                if self.serve.kv_list_request == Some(*request_id) {
                    self.serve.kv_list_request = None;
                    self.on_kv_listed(records);
                }
                None
            }
            // A lost index write needs no retry: a missing record is rebuilt from the block at
            // the next start, a record left behind is deleted then.
            StorageResult::KvWritten { .. } => None,
        }
    }

    /// [`Input::Headers`]: before the node adopts `new`, drop what left the best chain.
    pub(crate) fn on_serve_headers(&mut self, new: &super::SharedHeaders) {
        let Some(old) = self.headers.clone() else {
            return;
        };
        let change = diff(
            &ViewChain(Some(&*old)),
            &ViewChain(Some(&**new)),
            REORG_DEPTH_MAX,
        );
        if change.disconnected.is_empty() {
            return;
        }
        for (height, _) in &change.disconnected {
            self.repair.forget(*height);
        }
        // The new view decides holders and heights of what joined.
        let new_view = new.clone();
        with_env(Some(&*new_view), &self.role, &self.placer, &[], |env| {
            self.serve.serve.handle_chain_change(&change, env)
        });
        self.pump_serve();
        // The node rescans once it has adopted the new view.
        self.serve.rescan = false;
    }

    /// [`Input::NewBlock`] for a member (not an archive): new-block storage, routed (S14) or
    /// self-selected (S15) as configured, with announcements. Gives the bytes back when the
    /// node's own path should take the block.
    pub(crate) fn on_serve_new_block(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.config.archive || !matches!(self.role, Role::Member(_)) {
            return Some(bytes);
        }
        let now_ms = self.now_ms;
        let _ = self.with_serve(|s, env| s.handle_new_block(now_ms, &bytes, env));
        self.rescan_if_dropped();
        None
    }

    /// The serving layer's timer fired.
    pub(crate) fn on_serve_timer(&mut self) {
        let now_ms = self.now_ms;
        self.serve.serve.handle_timeout(now_ms);
        self.pump_serve();
        self.rescan_if_dropped();
    }

    /// A held block was dropped: let repair fetch what placement still assigns here.
    fn rescan_if_dropped(&mut self) {
        if std::mem::take(&mut self.serve.rescan) {
            self.rescan_shard();
        }
    }

    fn pump_index_rebuild(&mut self) {
        while self.serve.rebuild_reads.len() < INDEX_REBUILD_READS_MAX {
            let Some(block_hash) = self.serve.rebuild.pop_front() else {
                break;
            };
            if self.serve.serve.index().contains_block(&block_hash) {
                continue;
            }
            let request_id = self.fresh_id();
            self.serve.rebuild_reads.insert(request_id, block_hash);
            self.push(Output::Storage(StorageCommand::Get {
                request_id,
                block_hash,
            }));
        }
    }

    /// Turns the serving layer's outputs into the node's, and re-arms its timer.
    pub(crate) fn pump_serve(&mut self) {
        while let Some(out) = self.serve.serve.poll_output() {
            match out {
                ServeOutput::Send { to, message } => {
                    self.send(to, to_wire(message));
                }
                ServeOutput::Storage(StorageIntent::GetBlock {
                    request_id,
                    block_hash,
                }) => {
                    let id = self.fresh_id();
                    self.serve.storage.insert(id, request_id);
                    self.push(Output::Storage(StorageCommand::Get {
                        request_id: id,
                        block_hash,
                    }));
                }
                ServeOutput::Storage(StorageIntent::DeleteBlock { block_hash }) => {
                    if let Some(height) =
                        self.headers.as_ref().and_then(|h| h.height_of(&block_hash))
                    {
                        self.repair.forget(height);
                        self.serve.rescan = true;
                    }
                    let id = self.fresh_id();
                    self.push(Output::Storage(StorageCommand::Delete {
                        request_id: id,
                        block_hash,
                    }));
                }
                ServeOutput::Storage(StorageIntent::PutBlock {
                    request_id,
                    block_hash,
                    height,
                    bytes,
                }) => {
                    let id = self.fresh_id();
                    self.serve.new_block_puts.insert(id, (request_id, height));
                    self.push(Output::Storage(StorageCommand::Put {
                        request_id: id,
                        block_hash,
                        height,
                        bytes: bytes.to_vec(),
                    }));
                }
                ServeOutput::Storage(StorageIntent::WriteIndex { ops }) => {
                    let id = self.fresh_id();
                    self.push(Output::Storage(StorageCommand::WriteKv {
                        request_id: id,
                        ops,
                    }));
                }
                ServeOutput::Event(event) => self.on_serve_event(event),
            }
        }
        let due = self.serve.serve.poll_timeout();
        if let Some(at_ms) = due {
            self.set_timer_no_later(TimerId::Serve, at_ms.max(self.now_ms));
        }
    }

    fn on_serve_event(&mut self, event: ServeEvent<NodeId>) {
        match event {
            ServeEvent::QueryDone {
                query,
                txid,
                result,
                answered_by,
            } => {
                if let Some(query_id) = self.serve.queries.remove(&query) {
                    self.event(Event::TxQueryDone {
                        query_id,
                        txid,
                        result,
                        answered_by,
                    });
                }
            }
            ServeEvent::JobReady { job, block_hash } => {
                self.event(Event::JobReady { job, block_hash })
            }
            ServeEvent::JobFailed {
                job,
                block_hash,
                error,
            } => self.event(Event::JobFailed {
                job,
                block_hash,
                error,
            }),
            ServeEvent::Misbehaved { peer, score } => {
                self.event(Event::PeerMisbehaved { peer, score })
            }
            ServeEvent::SafelyStored { block_hash, height } => {
                self.event(Event::BlockSafelyStored { block_hash, height })
            }
            ServeEvent::Underreplicated { block_hash, height } => {
                // Repair's rescan finds the missing replicas from placement (S11).
                self.serve.rescan = true;
                self.event(Event::BlockUnderreplicated { block_hash, height });
            }
            ServeEvent::BlockRejected { .. } => self.stats.blocks_rejected += 1,
            ServeEvent::BlockCorrupt { block_hash } => {
                // Kept, not served, refetched: a verified copy is put over it (repair).
                if let Some(height) = self.headers.as_ref().and_then(|h| h.height_of(&block_hash)) {
                    self.suspect_block(height);
                }
            }
            // Repair's rescan after the new header view fetches what joined.
            ServeEvent::MustFetch { .. }
            | ServeEvent::BlockStored { .. }
            | ServeEvent::BlockDropped { .. } => {}
        }
    }
}

/// The wire form of a serving message.
fn to_wire(message: ServeMessage) -> Message {
    match message {
        ServeMessage::TxQuery {
            request_id,
            txid,
            block_hint,
        } => Message::TxQuery {
            request_id,
            txid: crate::chain::Hash256(txid.0),
            block_hint,
        },
        ServeMessage::TxAnswer { request_id, answer } => Message::TxAnswer {
            request_id,
            answer: match answer {
                TxAnswer::Found(proof) => TxAnswerBody::Found {
                    block_hash: proof.block_hash,
                    height: proof.height,
                    pos: proof.pos,
                    branch: proof.branch,
                    header: None,
                },
                TxAnswer::NotFound => TxAnswerBody::NotFound,
                TxAnswer::Unavailable => TxAnswerBody::Unavailable,
            },
        },
        ServeMessage::GetBlock {
            request_id,
            block_hash,
        } => Message::GetBlock {
            request_id,
            block_hash,
        },
        ServeMessage::BlockData { request_id, bytes } => Message::BlockData {
            request_id,
            block: bytes.to_vec(),
        },
        ServeMessage::BlockNotFound { request_id } => Message::BlockNotFound { request_id },
        ServeMessage::Stored { block_hash, height } => Message::BlockStored { block_hash, height },
        ServeMessage::NewBlock { bytes } => Message::NewBlock {
            block: bytes.to_vec(),
        },
    }
}

/// Runs `f` with the serving layer's view of this node: the header chain `view`, the
/// cluster's members (none for an ordinary node), the archives its queries may ask, and who
/// holds a block by placement.
fn with_env<R>(
    view: Option<&dyn HeaderView>,
    role: &Role,
    placer: &crate::placement::Placer,
    archives: &[NodeId],
    f: impl FnOnce(&Env<'_, NodeId>) -> R,
) -> R {
    let chain = ViewChain(view);
    let slots: &[Slot] = match role {
        Role::Member(m) => &m.slots,
        Role::Ordinary(_) => &[],
    };
    let members: Vec<NodeId> = slots.iter().map(|s| s.id).collect();
    let placer = RefCell::new(placer.clone());
    let holders = |hash: &BlockHash, height: u32| -> Vec<NodeId> {
        let mut out = Vec::new();
        placer.borrow_mut().holders(hash, height, slots, &mut out);
        out.into_iter().map(|i| slots[i].id).collect()
    };
    f(&Env {
        chain: &chain,
        members: &members,
        archives,
        holders: &holders,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use crate::chain::{Block, BlockHash, Header, Txid};
    use crate::cluster::tests::{fast_config, network};
    use crate::node::chain_seam::synthetic_chain;
    use crate::node::{
        Config, Event, HeaderList, HeaderView, Input, KvOp, Node, NodeId, Output, StorageCommand,
        StorageResult,
    };
    use crate::serve::query::QueryResult;

    /// A shell's stores: blocks, index records, and how many block reads it served.
    #[derive(Default)]
    struct Disk {
        blocks: HashMap<BlockHash, Vec<u8>>,
        kv: BTreeMap<Vec<u8>, Vec<u8>>,
        gets: usize,
    }

    /// Feeds an input and carries out storage commands against `disk` until quiet; returns
    /// every other output.
    fn feed(node: &mut Node, disk: &mut Disk, now_ms: u64, input: Input) -> Vec<Output> {
        let mut pending = vec![input];
        let mut rest = Vec::new();
        while let Some(input) = pending.pop() {
            node.handle_input(now_ms, input);
            while let Some(output) = node.poll_output() {
                match output {
                    Output::Storage(StorageCommand::Put {
                        request_id,
                        block_hash,
                        bytes,
                        ..
                    }) => {
                        disk.blocks.insert(block_hash, bytes);
                        pending.push(Input::Storage(StorageResult::Put {
                            request_id,
                            ok: true,
                        }));
                    }
                    Output::Storage(StorageCommand::Get {
                        request_id,
                        block_hash,
                    }) => {
                        disk.gets += 1;
                        let bytes = disk.blocks.get(&block_hash).cloned();
                        pending.push(Input::Storage(StorageResult::Got { request_id, bytes }));
                    }
                    Output::Storage(StorageCommand::Delete {
                        request_id,
                        block_hash,
                    }) => {
                        disk.blocks.remove(&block_hash);
                        pending.push(Input::Storage(StorageResult::Deleted { request_id }));
                    }
                    Output::Storage(StorageCommand::List { request_id }) => {
                        let blocks = disk.blocks.keys().copied().collect();
                        pending.push(Input::Storage(StorageResult::Listed { request_id, blocks }));
                    }
                    Output::Storage(StorageCommand::WriteKv { request_id, ops }) => {
                        for op in ops {
                            match op {
                                KvOp::Put { key, value } => {
                                    disk.kv.insert(key, value);
                                }
                                KvOp::Delete { key } => {
                                    disk.kv.remove(&key);
                                }
                            }
                        }
                        pending.push(Input::Storage(StorageResult::KvWritten {
                            request_id,
                            ok: true,
                        }));
                    }
                    Output::Storage(StorageCommand::ListKv { request_id }) => {
                        let records = disk.kv.clone().into_iter().collect();
                        pending.push(Input::Storage(StorageResult::KvListed {
                            request_id,
                            records,
                        }));
                    }
                    other => rest.push(other),
                }
            }
        }
        rest
    }

    fn query_results(outputs: &[Output]) -> Vec<(u64, QueryResult)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::TxQueryDone {
                    query_id, result, ..
                }) => Some((*query_id, result.clone())),
                _ => None,
            })
            .collect()
    }

    /// A node answers from its own blocks through the index; after a reorg the blocks that left
    /// the best chain are deleted from its store and index, and their transactions no longer
    /// confirm. A restarted node rebuilds its index from the blocks it lists.
    #[test]
    fn reorg_deletes_blocks_off_the_best_chain_and_the_index_is_rebuilt_at_start() {
        let (mut node, config, list, parsed, mut store) = running_archive();
        let txid = parsed[8].txdata[0].txid();
        let out = feed(
            &mut node,
            &mut store,
            2,
            Input::TxQuery {
                query_id: 1,
                txid,
                block_hint: None,
            },
        );
        assert!(
            matches!(
                query_results(&out)[..],
                [(
                    1,
                    QueryResult::Confirmed {
                        height: 8,
                        confirmations: 2,
                        ..
                    }
                )]
            ),
            "{out:?}"
        );
        // A competing chain sharing the first 6 blocks.
        let (other, _) = synthetic_chain(12, 11);
        let mut headers: Vec<Header> = (0..6).map(|h| list.header_at(h).unwrap()).collect();
        headers.extend((6..12).map(|h| other.header_at(h).unwrap()));
        feed(
            &mut node,
            &mut store,
            3,
            Input::Headers(Arc::new(HeaderList::new(headers))),
        );
        for (height, b) in parsed.iter().enumerate() {
            assert_eq!(
                store.blocks.contains_key(&b.block_hash()),
                height < 6,
                "block {height}"
            );
        }
        let out = feed(
            &mut node,
            &mut store,
            4,
            Input::TxQuery {
                query_id: 2,
                txid,
                block_hint: None,
            },
        );
        let results = query_results(&out);
        assert_eq!(results.len(), 1);
        assert!(
            !matches!(results[0].1, QueryResult::Confirmed { .. }),
            "{results:?}"
        );
        // Restart: the index comes back from the listed blocks.
        let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
        feed(&mut node, &mut store, 10, Input::Start);
        feed(&mut node, &mut store, 10, Input::Headers(list.clone()));
        let txid = parsed[4].txdata[0].txid();
        let out = feed(
            &mut node,
            &mut store,
            11,
            Input::TxQuery {
                query_id: 3,
                txid,
                block_hint: None,
            },
        );
        assert!(
            matches!(
                query_results(&out)[..],
                [(3, QueryResult::Confirmed { height: 4, .. })]
            ),
            "{out:?}"
        );
    }

    /// An archive that stored `blocks`, with its disk.
    fn archive_with_blocks() -> (Config, Arc<HeaderList>, Vec<Block>, Disk) {
        let (_, config, list, parsed, disk) = running_archive();
        (config, list, parsed, disk)
    }

    /// An archive node that stored a 10-block chain, still running, with its disk.
    fn running_archive() -> (Node, Config, Arc<HeaderList>, Vec<Block>, Disk) {
        let (list, blocks) = synthetic_chain(10, 10);
        let list = Arc::new(list);
        let config = Config {
            archive: true,
            ..fast_config()
        };
        let mut node = Node::new(config.clone(), NodeId::from_seed(1), 1).unwrap();
        let mut disk = Disk::default();
        feed(&mut node, &mut disk, 0, Input::Start);
        feed(&mut node, &mut disk, 0, Input::Headers(list.clone()));
        for bytes in &blocks {
            feed(
                &mut node,
                &mut disk,
                1,
                Input::NewBlock {
                    bytes: bytes.clone(),
                },
            );
        }
        let parsed = blocks.iter().map(|b| Block::decode(b).unwrap()).collect();
        (node, config, list, parsed, disk)
    }

    /// Starts a fresh node on `disk`; returns it and the block reads its start made.
    fn restart(config: &Config, list: &Arc<HeaderList>, disk: &mut Disk) -> (Node, usize) {
        let mut node = Node::new(config.clone(), NodeId::from_seed(1), 1).unwrap();
        disk.gets = 0;
        feed(&mut node, disk, 10, Input::Start);
        feed(&mut node, disk, 10, Input::Headers(list.clone()));
        (node, disk.gets)
    }

    fn confirmed_height(node: &mut Node, disk: &mut Disk, txid: Txid) -> Option<u32> {
        let out = feed(
            node,
            disk,
            11,
            Input::TxQuery {
                query_id: 7,
                txid,
                block_hint: None,
            },
        );
        match query_results(&out)[..] {
            [(7, QueryResult::Confirmed { height, .. })] => Some(height),
            _ => None,
        }
    }

    /// The messages in `outputs` addressed to `to`.
    fn sent_to(outputs: &[Output], to: NodeId) -> Vec<crate::wire::Message> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send { to: t, message } if *t == to => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// A node with `ask_archives` (a browser page outside any cluster) asks the connected
    /// archive for what it does not hold; the archive's proof is checked against the node's
    /// own headers and the result names who answered. A node without the setting does not ask.
    #[test]
    fn an_ordinary_node_asks_its_archive_when_configured() {
        let (mut archive, _, list, parsed, mut archive_disk) = running_archive();
        let archive_id = NodeId::from_seed(1);
        for ask_archives in [true, false] {
            let mut config = fast_config();
            config.serve.query.ask_archives = ask_archives;
            let light_id = NodeId::from_seed(2);
            let mut light = Node::new(config, light_id, 2).unwrap();
            let mut disk = Disk::default();
            feed(&mut light, &mut disk, 0, Input::Start);
            feed(&mut light, &mut disk, 0, Input::Headers(list.clone()));
            feed(
                &mut light,
                &mut disk,
                0,
                Input::PeerConnected { peer: archive_id },
            );
            let hello = crate::wire::Message::Hello {
                record: crate::wire::NodeRecord {
                    blocks_served: 0,
                    capacity_bytes: 0,
                    segment: 0,
                    archive: true,
                },
                cluster: None,
                open_slots: 0,
            };
            let from = archive_id;
            feed(
                &mut light,
                &mut disk,
                1,
                Input::Message {
                    from,
                    message: hello,
                },
            );
            let txid = parsed[6].txdata[0].txid();
            let query = Input::TxQuery {
                query_id: 5,
                txid,
                block_hint: None,
            };
            let out = feed(&mut light, &mut disk, 2, query);
            let asked = sent_to(&out, archive_id);
            if !ask_archives {
                assert!(asked.is_empty(), "{out:?}");
                assert_eq!(query_results(&out), [(5, QueryResult::Unavailable)]);
                continue;
            }
            assert_eq!(asked.len(), 1, "{out:?}");
            let message = asked[0].clone();
            let from = light_id;
            let answered = feed(
                &mut archive,
                &mut archive_disk,
                3,
                Input::Message { from, message },
            );
            let answer = sent_to(&answered, light_id);
            assert_eq!(answer.len(), 1, "{answered:?}");
            let message = answer[0].clone();
            let out = feed(
                &mut light,
                &mut disk,
                4,
                Input::Message {
                    from: archive_id,
                    message,
                },
            );
            let done: Vec<_> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Event(Event::TxQueryDone {
                        query_id,
                        result: QueryResult::Confirmed { height, .. },
                        answered_by,
                        ..
                    }) => Some((*query_id, *height, *answered_by)),
                    _ => None,
                })
                .collect();
            assert_eq!(done, [(5, 6, Some(archive_id))], "{out:?}");
        }
    }

    /// Every stored block has its index record; a restarted node loads the records and reads
    /// no block back, and still answers from its index. Without the records it reads them all.
    #[test]
    fn the_index_survives_a_restart_without_reading_blocks() {
        let (config, list, parsed, mut disk) = archive_with_blocks();
        assert_eq!(disk.kv.len(), parsed.len(), "one record per block");
        let (mut node, gets) = restart(&config, &list, &mut disk);
        assert_eq!(gets, 0, "no block read back");
        assert_eq!(node.serve.serve.index().block_count(), parsed.len());
        let txid = parsed[4].txdata[0].txid();
        assert_eq!(confirmed_height(&mut node, &mut disk, txid), Some(4));
        // Without records: the old path reads every block, and writes the records again.
        let records = std::mem::take(&mut disk.kv);
        let (_, gets) = restart(&config, &list, &mut disk);
        assert_eq!(gets, parsed.len());
        assert_eq!(disk.kv, records, "rebuilt records equal the lost ones");
    }

    /// A record that fails to decode is dropped and its block re-indexed from its bytes; a
    /// record under a key that is no record key is deleted.
    #[test]
    fn a_corrupt_record_is_dropped_and_its_block_reindexed() {
        let (config, list, parsed, mut disk) = archive_with_blocks();
        let key = crate::serve::txindex::record_key(&parsed[3].block_hash());
        let good = disk.kv[&key].clone();
        // One bit flipped in a short key: only the checksum tells.
        let mut flipped = good.clone();
        flipped[5] ^= 0x10;
        disk.kv.insert(key.clone(), flipped);
        disk.kv.insert(b"txi/short".to_vec(), vec![1, 0, 0, 0]);
        // A hostile count: far more keys than any block holds.
        let other = crate::serve::txindex::record_key(&parsed[5].block_hash());
        disk.kv
            .insert(other.clone(), u32::MAX.to_le_bytes().to_vec());
        let (mut node, gets) = restart(&config, &list, &mut disk);
        assert_eq!(
            gets, 2,
            "only the two blocks with bad records are read back"
        );
        assert_eq!(disk.kv[&key], good, "the record is written again");
        assert!(
            !disk.kv.contains_key(b"txi/short".as_slice()),
            "bad key deleted"
        );
        assert_eq!(disk.kv.len(), parsed.len());
        for h in [3, 5] {
            let txid = parsed[h].txdata[0].txid();
            assert_eq!(confirmed_height(&mut node, &mut disk, txid), Some(h as u32));
        }
    }

    /// A record whose block is no longer stored is deleted, and its transactions are not
    /// indexed.
    #[test]
    fn a_record_without_its_block_is_removed() {
        let (config, list, parsed, mut disk) = archive_with_blocks();
        let gone = parsed[6].block_hash();
        disk.blocks.remove(&gone);
        let key = crate::serve::txindex::record_key(&gone);
        assert!(disk.kv.contains_key(&key));
        let (node, gets) = restart(&config, &list, &mut disk);
        assert_eq!(gets, 0);
        assert!(!disk.kv.contains_key(&key), "orphan record deleted");
        assert!(!node.serve.serve.index().contains_block(&gone));
        assert_eq!(node.serve.serve.index().block_count(), parsed.len() - 1);
    }

    /// S14 and S15 in a running cluster: a block the archive never had arrives at members;
    /// exactly its holders store it, announce it, and it is declared safely stored.
    #[test]
    fn new_blocks_reach_their_holders_routed_and_self_selected() {
        use crate::serve::newblock::StorageMode;
        use crate::testnet::Net;
        for mode in [StorageMode::Routed, StorageMode::SelfSelected] {
            let mut config = fast_config();
            config.serve.new_blocks.mode = mode;
            config.serve.new_blocks.redrive_after_ms = 1_000;
            let mut configs = vec![Config {
                archive: true,
                ..fast_config()
            }];
            configs.extend(std::iter::repeat_n(config, 5));
            let blocks = 20;
            let mut net = Net::new(configs, blocks, 11);
            let last = net.blocks.len() - 1;
            let known: Vec<Vec<u8>> = net.blocks[..last].to_vec();
            for bytes in known {
                net.input(0, Input::NewBlock { bytes });
            }
            net.introduce_all();
            net.run_until(30_000);
            let members: Vec<usize> = (1..net.nodes.len())
                .filter(|i| net.nodes[*i].cluster().is_some())
                .collect();
            assert!(members.len() >= 3, "a cluster formed: {members:?}");
            let new_block = net.blocks[last].clone();
            let hash = Block::decode(&new_block).unwrap().block_hash();
            let learners: Vec<usize> = match mode {
                StorageMode::Routed => vec![members[0]],
                StorageMode::SelfSelected => members.clone(),
            };
            for i in learners {
                net.input(
                    i,
                    Input::NewBlock {
                        bytes: new_block.clone(),
                    },
                );
            }
            let now = net.now_ms;
            net.run_until(now + 10_000);
            let holders: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| net.stores[*i].contains_key(&hash))
                .collect();
            let p = 3.min(members.len());
            assert_eq!(holders.len(), p, "{mode:?}: exactly P members store it");
            for i in &holders {
                assert!(
                    net.nodes[*i].holds(last as u32),
                    "{mode:?}: holder {i} knows it holds it"
                );
            }
            let safe: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| {
                    net.events[*i].iter().any(|e| {
                        *e == Event::BlockSafelyStored {
                            block_hash: hash,
                            height: last as u32,
                        }
                    })
                })
                .collect();
            match mode {
                StorageMode::Routed => {
                    assert!(safe.contains(&members[0]), "the router saw P announcements")
                }
                StorageMode::SelfSelected => {
                    assert_eq!(safe, members, "every member saw P announcements")
                }
            }
        }
    }

    /// S16 and S17 in a running cluster: a member answers queries for blocks it does not hold
    /// by asking the holders, checks their proofs against its own headers, and runs code on a
    /// block it does not hold after fetching it.
    #[test]
    fn members_answer_queries_and_run_jobs_for_any_block() {
        let blocks = 30;
        let mut net = network(5, blocks, fast_config(), 7);
        net.run_until(30_000);
        let member = (1..net.nodes.len())
            .find(|i| net.nodes[*i].cluster().is_some())
            .expect("a cluster formed");
        assert!(
            net.nodes[member].held_count() > 0,
            "repair filled the shard"
        );
        let parsed: Vec<Block> = net
            .blocks
            .iter()
            .map(|b| Block::decode(b).unwrap())
            .collect();
        let not_held = parsed
            .iter()
            .position(|b| !net.stores[member].contains_key(&b.block_hash()))
            .expect("a member holds only part of the chain");
        let held = parsed
            .iter()
            .position(|b| net.stores[member].contains_key(&b.block_hash()))
            .unwrap();
        let queries = [
            (1, parsed[not_held].txdata[0].txid(), None),
            (2, parsed[held].txdata[0].txid(), None),
            (
                3,
                parsed[not_held].txdata[0].txid(),
                Some(parsed[not_held].block_hash()),
            ),
            (4, Txid([7; 32]), None),
        ];
        for (query_id, txid, block_hint) in queries {
            net.input(
                member,
                Input::TxQuery {
                    query_id,
                    txid,
                    block_hint,
                },
            );
        }
        let job_block = parsed[not_held].block_hash();
        net.input(
            member,
            Input::RunJob {
                job: 9,
                block_hash: job_block,
            },
        );
        let now = net.now_ms;
        net.run_until(now + 15_000);
        let results: Vec<(u64, QueryResult)> = net.events[member]
            .iter()
            .filter_map(|e| match e {
                Event::TxQueryDone {
                    query_id, result, ..
                } => Some((*query_id, result.clone())),
                _ => None,
            })
            .collect();
        let height_of = |q: u64| {
            results
                .iter()
                .find(|(id, _)| *id == q)
                .map(|(_, r)| match r {
                    QueryResult::Confirmed { height, .. } => Some(*height),
                    _ => None,
                })
        };
        assert_eq!(height_of(1), Some(Some(not_held as u32)), "{results:?}");
        assert_eq!(height_of(2), Some(Some(held as u32)), "{results:?}");
        assert_eq!(height_of(3), Some(Some(not_held as u32)), "{results:?}");
        assert!(results.contains(&(4, QueryResult::NotFound)), "{results:?}");
        assert!(net.events[member].contains(&Event::JobReady {
            job: 9,
            block_hash: job_block
        }));
        let count = net.nodes[member].with_block(&job_block, |b| b.txdata.len());
        assert_eq!(count, Some(1));
        assert!(
            !net.stores[member].contains_key(&job_block),
            "cached, not stored"
        );
    }
}
