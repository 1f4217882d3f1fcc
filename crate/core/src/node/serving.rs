//! The node's seam to its serving layer (S16, S17, reorg handling for S14–S16): the node owns
//! a [`Serve`], routes serving messages and storage results to it by request id, drains its
//! outputs (already the node's own: messages, storage commands, events) and keeps the
//! transaction index in step with the shard.
//!
//! - Front-end queries ([`Input::TxQuery`]) and queries from peers (`Message::TxQuery`) run in
//!   the serving layer: answered from this member's blocks through its transaction index, else
//!   forwarded to the block's holders or to all members, and, for front-end queries with
//!   `serve.query.ask_archives`, last to the connected peers whose `Hello` says archive; the
//!   first answer whose Merkle proof checks against this node's header view wins
//!   ([`Event::TxQueryDone`], which names the answering node).
//! - Jobs on any block ([`Input::RunJob`], [`Node::with_block`]): from the shard or fetched
//!   from a holder into the bounded, verified cache (S17). A `BlockData` or `BlockNotFound`
//!   goes to the cache if one of its fetches waits under that request id, else to repair.
//! - The transaction index follows the shard: every `StorageCommand::Put` the node issues is
//!   indexed, every `Delete` unindexed, and each change is persisted as one record per block
//!   (`StorageCommand::WriteKv`, an atomic batch). At start the node lists the records
//!   (`ListKv`) and loads them; of the listed blocks only those without a valid record are read
//!   back (a few at a time) and indexed. A record that fails to decode is deleted (its block,
//!   if held, is re-indexed from its bytes), and so is a record whose block is not stored.
//! - A reorg seen in [`Input::Headers`] drops held blocks that left the best chain (from the
//!   store, the held set, the index and the cache); the repair rescan then fetches the blocks
//!   that replaced them.
//! - New blocks from the block source reach a member's serving layer ([`Input::NewBlock`]):
//!   routed (S14: the first member to learn of a block sends it to its holders,
//!   `Message::NewBlock`) or self-selected (S15), per `Config::serve.new_blocks.mode`; holders
//!   announce `Message::BlockStored`; after P announcements [`Event::BlockSafelyStored`], after
//!   the re-drive budget [`Event::BlockUnderreplicated`] and a repair rescan. Archives and
//!   ordinary nodes keep the node's own path (store if wanted).
//!
//! [`Input::TxQuery`]: super::Input::TxQuery
//! [`Input::RunJob`]: super::Input::RunJob
//! [`Input::Headers`]: super::Input::Headers
//! [`Input::NewBlock`]: super::Input::NewBlock

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::{HeaderView, Node, NodeId};
use crate::chain::{Block, BlockHash, Header, Txid};
use crate::io::{Event, KvRecord, Output, StorageCommand, StorageResult, TimerId};
use crate::placement::Slot;
use crate::serve::reorg::diff;
use crate::serve::txindex::KvOp;
use crate::serve::BestChain;
use crate::service::{Env, Serve};
use crate::shared::Role;
use crate::wire::Message;

/// Blocks read back at once to rebuild the index at start.
const INDEX_REBUILD_READS_MAX: usize = 8;
/// Deepest reorg followed block by block (deeper ones are left to the repair rescan).
const REORG_DEPTH_MAX: u32 = 1_000;

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
    /// drains the serving layer's outputs into the node's.
    fn with_serve<R>(&mut self, f: impl FnOnce(&mut Serve, &Env<'_>) -> R) -> R {
        let result = self.with_serve_quiet(f);
        self.pump_serve();
        result
    }

    /// [`Node::with_serve`] without draining the outputs yet.
    fn with_serve_quiet<R>(&mut self, f: impl FnOnce(&mut Serve, &Env<'_>) -> R) -> R {
        let view = self.shared.headers.clone();
        let archives = self.archives_to_ask();
        let complete = self.search_complete();
        with_env(
            view.as_deref(),
            &self.shared.role,
            &self.shared.placer,
            &archives,
            complete,
            |env| f(&mut self.shared.serving.serve, env),
        )
    }

    /// Whether a search of this node's own blocks is complete: the index is built (the
    /// start-up records loaded, every held block without a record read back) and repair
    /// misses no block placed here. Until then a peer's query that finds nothing here is
    /// answered "unavailable", not "not found".
    pub(crate) fn search_complete(&self) -> bool {
        let s = &self.shared.serving;
        s.kv_list_request.is_none()
            && s.since_start.is_none()
            && s.listed.is_none()
            && s.rebuild.is_empty()
            && s.rebuild_reads.is_empty()
            && self.repair.missing_count() == 0
    }

    /// The connected archives, by id, if this node's queries ask them (none otherwise: the
    /// list is not built for nothing).
    fn archives_to_ask(&self) -> Vec<NodeId> {
        if !self.shared.config.serve.query.ask_archives {
            return Vec::new();
        }
        self.shared.connected_archives()
    }

    /// [`Input::TxQuery`](super::Input::TxQuery): a query from the front end.
    pub(crate) fn on_tx_query(&mut self, query_id: u64, txid: Txid, hint: Option<BlockHash>) {
        let now_ms = self.shared.now_ms;
        if self
            .with_serve_quiet(|s, env| s.query(now_ms, query_id, txid, hint, env))
            .is_err()
        {
            self.shared.event(Event::TxQueryDone {
                query_id,
                txid,
                result: crate::serve::query::QueryResult::Unavailable,
                answered_by: None,
            });
        }
        self.pump_serve();
    }

    /// [`Input::RunJob`](super::Input::RunJob): make a block ready for [`Node::with_block`].
    pub(crate) fn on_run_job(&mut self, job: u64, block_hash: BlockHash) {
        let now_ms = self.shared.now_ms;
        if let Err(error) = self.with_serve(|s, env| s.run_job(now_ms, job, block_hash, env)) {
            self.shared.event(Event::JobFailed {
                job,
                block_hash,
                error,
            });
        }
    }

    /// Runs `f` on a block made ready by [`Input::RunJob`](super::Input::RunJob)
    /// ([`Event::JobReady`]); `None` if it is no longer in the cache.
    pub fn with_block<R>(
        &mut self,
        block_hash: &BlockHash,
        f: impl FnOnce(&Block) -> R,
    ) -> Option<R> {
        self.shared.serving.serve.with_block(block_hash, f)
    }

    /// A serving message from a peer: `TxQuery`, `TxAnswer`, `BlockStored`, `NewBlock`, and a
    /// `BlockData`/`BlockNotFound` whose request id one of the cache's fetches waits for.
    /// Returns `false` for messages that are not the serving layer's.
    pub(crate) fn on_serve_message(&mut self, from: NodeId, message: &Message) -> bool {
        let serving = match message {
            Message::TxQuery { .. }
            | Message::TxAnswer { .. }
            | Message::BlockStored { .. }
            | Message::NewBlock { .. } => true,
            Message::BlockData { request_id, .. } | Message::BlockNotFound { request_id } => {
                self.shared.serving.serve.awaits_block(*request_id)
            }
            _ => false,
        };
        if !serving {
            return false;
        }
        let now_ms = self.shared.now_ms;
        if self
            .with_serve(|s, env| s.handle_message(now_ms, from, message, env))
            .is_err()
        {
            self.shared.stats.blocks_rejected += 1;
        }
        true
    }

    /// At the end of every input: index writes made while observing storage commands are
    /// drained now, not at the serving layer's next output.
    pub(crate) fn flush_index_writes(&mut self) {
        if std::mem::take(&mut self.shared.serving.index_dirty) {
            self.pump_serve();
        }
    }

    /// [`Input::Start`](super::Input::Start): ask for the index records before the block
    /// listing.
    pub(crate) fn start_index_load(&mut self) {
        let request_id = self.shared.fresh_id();
        self.shared.serving.kv_list_request = Some(request_id);
        self.shared.serving.since_start = Some(HashMap::new());
        self.shared
            .push(Output::Storage(StorageCommand::ListKv { request_id }));
    }

    /// The start-up `ListKv` answered: load every record; one that fails to decode is deleted
    /// (its block, if listed, is then read back and re-indexed). The membership record, if any, is
    /// not the index's: it goes to `resume`.
    fn on_kv_listed(&mut self, records: &[KvRecord]) {
        let mut bad = Vec::new();
        let mut membership = None;
        for (key, value) in records {
            if key.as_slice() == super::resume::MEMBERSHIP_KEY {
                membership = Some(value);
                continue;
            }
            match self.shared.serving.serve.load_index_record(key, value) {
                Ok(hash) => {
                    self.shared.serving.loaded.insert(hash);
                }
                Err(_) => bad.push(KvOp::Delete { key: key.clone() }),
            }
        }
        if !bad.is_empty() {
            let request_id = self.shared.fresh_id();
            self.shared.push(Output::Storage(StorageCommand::WriteKv {
                request_id,
                ops: bad,
            }));
        }
        if let Some(blocks) = self.shared.serving.listed.take() {
            self.index_listed(blocks);
        }
        if let Some(value) = membership {
            // Not restored: the record is deleted and the node starts as an ordinary node.
            let _ = self.resume_membership(value);
        }
    }

    /// Records and block listing are both in: delete the records of blocks not stored, and
    /// read back the stored blocks that have no record.
    fn index_listed(&mut self, blocks: Vec<BlockHash>) {
        let loaded = std::mem::take(&mut self.shared.serving.loaded);
        let since_start = self.shared.serving.since_start.take().unwrap_or_default();
        let listed: HashSet<BlockHash> = blocks.iter().copied().collect();
        for hash in loaded {
            let stored = since_start
                .get(&hash)
                .copied()
                .unwrap_or_else(|| listed.contains(&hash));
            if !stored {
                // Unindexes it and deletes its record.
                self.shared.serving.serve.block_removed(&hash);
            }
        }
        self.shared.serving.rebuild.extend(blocks);
        self.pump_index_rebuild();
        self.pump_serve();
    }

    /// Storage results for the serving layer, routed by request id. Returns the result back
    /// if it is the node's own.
    pub(crate) fn on_serve_storage(&mut self, result: StorageResult) -> Option<StorageResult> {
        match &result {
            StorageResult::Put { request_id, ok } => {
                if let Some(block_hash) = self.shared.serving.puts.remove(request_id) {
                    if !ok {
                        self.shared.serving.serve.block_removed(&block_hash);
                    }
                }
                let Some(height) = self.shared.serving.serve.put_height(*request_id) else {
                    return Some(result);
                };
                if !*ok {
                    self.repair.put_failed(&mut self.shared, height, 0);
                }
                if *ok {
                    self.repair.confirm(height);
                    self.shared.stats.blocks_from_source += 1;
                    if let Some(block_hash) = self
                        .shared
                        .headers
                        .as_ref()
                        .and_then(|h| h.block_hash_at(height))
                    {
                        self.shared.event(Event::BlockStored { block_hash, height });
                    }
                }
                self.shared
                    .serving
                    .serve
                    .handle_put_result(*request_id, *ok);
                self.pump_serve();
                None
            }
            StorageResult::Got { request_id, bytes } => {
                if let Some(block_hash) = self.shared.serving.rebuild_reads.remove(request_id) {
                    // Indexed even before the headers arrive: queries only use entries whose
                    // block is on the best chain.
                    if let Some(bytes) = bytes {
                        if let Ok(block) = Block::decode(bytes) {
                            if block.block_hash() == block_hash && block.check().is_ok() {
                                self.shared.serving.serve.block_stored(&block);
                            }
                        }
                    }
                    self.pump_index_rebuild();
                    self.pump_serve();
                    return None;
                }
                if !self.shared.serving.serve.awaits_read(*request_id) {
                    return Some(result);
                }
                // What the serving layer queued before (an audit's index writes) goes out
                // first, as it always has; then a corrupt copy turns suspect before the
                // query's next steps are drained.
                self.drain_serve();
                let now_ms = self.shared.now_ms;
                let request_id = *request_id;
                let bytes = bytes.clone();
                let corrupt = self.with_serve_quiet(|s, env| {
                    s.handle_get_result(now_ms, request_id, bytes.as_deref(), env)
                });
                for block_hash in corrupt {
                    // Kept, not served, refetched: a verified copy is put over it (repair).
                    if let Some(height) = self
                        .shared
                        .headers
                        .as_ref()
                        .and_then(|h| h.height_of(&block_hash))
                    {
                        self.repair.suspect_block(&mut self.shared, height);
                    }
                }
                self.pump_serve();
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
                if self.shared.serving.kv_list_request.is_some() {
                    // The records are still loading.
                    self.shared.serving.listed = Some(blocks.clone());
                } else {
                    self.index_listed(blocks.clone());
                }
                Some(result)
            }
            StorageResult::Listed { .. }
            | StorageResult::ListFailed { .. }
            | StorageResult::Deleted { .. } => Some(result),
            StorageResult::KvListed {
                request_id,
                records,
            } => {
                if self.shared.serving.kv_list_request == Some(*request_id) {
                    self.shared.serving.kv_list_request = None;
                    self.on_kv_listed(records);
                }
                None
            }
            // A lost index write needs no retry: a missing record is rebuilt from the block at
            // the next start, a record left behind is deleted then.
            StorageResult::KvWritten { .. } => None,
        }
    }

    /// [`Input::Headers`](super::Input::Headers): before the node adopts `new`, drop what left the best chain.
    pub(crate) fn on_serve_headers(&mut self, new: &super::SharedHeaders) {
        let Some(old) = self.shared.headers.clone() else {
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
        with_env(
            Some(&*new_view),
            &self.shared.role,
            &self.shared.placer,
            &[],
            false,
            |env| self.shared.serving.serve.handle_chain_change(&change, env),
        );
        self.pump_serve();
        // The node rescans once it has adopted the new view.
        self.shared.serving.rescan = false;
    }

    /// [`Input::NewBlock`](super::Input::NewBlock) for a member (not an archive): new-block storage, routed (S14) or
    /// self-selected (S15) as configured, with announcements. Gives the bytes back when the
    /// node's own path should take the block.
    pub(crate) fn on_serve_new_block(&mut self, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if self.shared.config.archive || !matches!(self.shared.role, Role::Member(_)) {
            return Some(bytes);
        }
        let now_ms = self.shared.now_ms;
        if self
            .with_serve(|s, env| s.handle_new_block(now_ms, &bytes, env))
            .is_err()
        {
            self.shared.stats.blocks_rejected += 1;
        }
        self.rescan_if_dropped();
        None
    }

    /// The serving layer's timer fired.
    pub(crate) fn on_serve_timer(&mut self) {
        let now_ms = self.shared.now_ms;
        self.shared.serving.serve.handle_timeout(now_ms);
        self.pump_serve();
        self.rescan_if_dropped();
    }

    /// A held block was dropped: let repair fetch what placement still assigns here.
    fn rescan_if_dropped(&mut self) {
        if std::mem::take(&mut self.shared.serving.rescan) {
            self.repair.rescan_shard(&mut self.shared);
        }
    }

    fn pump_index_rebuild(&mut self) {
        while self.shared.serving.rebuild_reads.len() < INDEX_REBUILD_READS_MAX {
            let Some(block_hash) = self.shared.serving.rebuild.pop_front() else {
                break;
            };
            if self
                .shared
                .serving
                .serve
                .index()
                .contains_block(&block_hash)
            {
                continue;
            }
            let request_id = self.shared.fresh_id();
            self.shared
                .serving
                .rebuild_reads
                .insert(request_id, block_hash);
            self.shared.push(Output::Storage(StorageCommand::Get {
                request_id,
                block_hash,
            }));
        }
    }

    /// Drains the serving layer's outputs into the node's and re-arms its timer.
    pub(crate) fn pump_serve(&mut self) {
        self.drain_serve();
        let due = self.shared.serving.serve.poll_timeout();
        if let Some(at_ms) = due {
            self.shared
                .set_timer_no_later(TimerId::Serve, at_ms.max(self.shared.now_ms));
        }
    }

    /// Moves the serving layer's outputs into the node's. Two of them concern repair too: a
    /// held block the serving layer deletes (it left the best chain, or the cache evicted it)
    /// is no longer held, and a new block whose re-drives ran out is repair's to re-replicate
    /// (S11); both make repair rescan placement.
    fn drain_serve(&mut self) {
        while let Some(output) = self.shared.serving.serve.poll_output() {
            match &output {
                Output::Storage(StorageCommand::Delete { block_hash, .. }) => {
                    if let Some(height) = self
                        .shared
                        .headers
                        .as_ref()
                        .and_then(|h| h.height_of(block_hash))
                    {
                        self.repair.forget(height);
                        self.shared.serving.rescan = true;
                    }
                }
                Output::Event(Event::BlockUnderreplicated { .. }) => {
                    self.shared.serving.rescan = true
                }
                _ => {}
            }
            self.shared.push(output);
        }
    }
}

/// Runs `f` with the serving layer's view of this node: the header chain `view`, the
/// cluster's members (none for an ordinary node), the archives its queries may ask, whether
/// its own blocks can be searched completely, and who holds a block by placement.
fn with_env<R>(
    view: Option<&dyn HeaderView>,
    role: &Role,
    placer: &crate::placement::Placer,
    archives: &[NodeId],
    complete: bool,
    f: impl FnOnce(&Env<'_>) -> R,
) -> R {
    let chain = ViewChain(view);
    let slots: &[Slot] = match role {
        Role::Member(m) => &m.slots,
        Role::Ordinary => &[],
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
        complete,
    })
}

#[cfg(test)]
mod tests;
