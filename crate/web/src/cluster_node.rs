//! The page's core [`Node`]: the shell that carries its inputs and outputs. Every decision —
//! formation, membership, placement, heartbeats, repair — is the core's; this module only
//! moves things in and out:
//!
//! - the node runs in the one host (`shoal_host::Host`): its input queue, its pump and its
//!   single next deadline, which the event loop waits for (`futures-timer`); time is Unix
//!   milliseconds (`Date.now()`), one clock across reloads;
//! - membership: the node saves it and a reloaded tab's node resumes it
//!   (`Config::resume_membership`, in IndexedDB's `node_kv` with the transaction index);
//! - headers: the verified [`HeaderChain`](shoal_core::chain::HeaderChain) is handed to the node
//!   (`Input::Headers`) once the header sync has caught up and after every later change;
//! - storage commands: carried out by the host in IndexedDB ([`crate::block_store::PageBlocks`]),
//!   the commands of each round of the pump in one batch;
//! - messages: over Shoal's request-response protocol by the convention of
//!   [`shoal_net::node_link`]: every incoming request is handed to the node and acknowledged at
//!   once, except a `TxQuery`, which is held open ([`HeldQueries`]) until the node's `TxAnswer`
//!   to it goes back as the response — one crossing of the relay's circuit instead of a new
//!   stream the other way; the node's messages go out as requests, and a non-empty response
//!   to one of them is handed to the node as a message from the responder;
//! - new blocks: a relay's `BlockAnnounce` goes to the node (which brings the block in, routed
//!   or self-selected, `newBlocks`) and to the header sync (which accepts the header at once);
//! - peers: connections up and down become `PeerConnected` / `PeerDisconnected`; the relays
//!   from the options are the directory's candidates;
//! - transaction queries: `verifyTransaction` becomes `Input::TxQuery`, and its
//!   `Event::TxQueryDone` the promise's result ([`crate::verify::from_result`]); the node asks
//!   the relays' archive nodes when its own blocks and its cluster cannot answer
//!   (`QueryConfig::ask_archives`);
//! - blocks on demand (S17): `getBlock` becomes `Input::RunJob`; on `Event::JobReady` the
//!   block is taken from the core's bounded, verified cache ([`Node::with_block`]) and its bytes
//!   are the promise's result; `Event::JobFailed` its error;
//! - events: `JoinedCluster` / `ViewChanged` / `LeftCluster` → `cluster`, `MemberJoined` →
//!   `member-joined`, `MemberOffline` → `member-lost`, `BlockStored` → `block-stored`;
//! - `status()`: the view, the greeted peers, every connection with its role, and the bytes
//!   received by kind of sender ([`crate::status::Downloaded`]);
//! - diagnostics: the invitations the node sends, receives, answers and sees withdrawn, and
//!   the answers to its own (S1, S3), its join requests (S13) and what a relay's directory
//!   lists, as `console.debug` lines ([`debug`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::StreamExt as _;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::PeerId;
use libp2p::Swarm;
use shoal_core::chain::{BlockHash, Txid};
use shoal_core::node::{
    Candidate, Config, ConfigError, Event, HeartbeatMode, Input, Node, NodeId, Output,
    StorageCommand,
};
use shoal_core::serve::cache::CacheError;
use shoal_core::wire::Message;
use shoal_host::{execute, Host, Inputs, Io, MAX_COMMANDS_PER_BATCH};
use shoal_net::node_link::{self, PeerBook, Reply};
use wasm_bindgen::JsValue;

use crate::block_store::PageBlocks;
use crate::error::{ApiError, ErrorCode};
use crate::event_loop::{EventLoop, DEFERRED_EVENTS_MAX, MAX_PENDING_REQUESTS};
use crate::options::Options;
use crate::status::{Connection, Role, Transport};
use crate::swarm::Behaviour;
use crate::verify::{Source, Verified};

/// Where a `verifyTransaction` promise waits for its query's result.
pub type QueryReply = oneshot::Sender<Result<Verified, ApiError>>;
/// Where a `getBlock` promise waits for the block's bytes.
pub type BlockReply = oneshot::Sender<Result<Vec<u8>, ApiError>>;

/// The node's configuration from the page's options: cluster size, replicas, heartbeat interval,
/// detection timeout, formation interval, new-block storage (`newBlocks`), placement rule
/// (`placement`), cluster id lifetime (`clusterTtlMs`), network segment (`segment`) and
/// heartbeats to all members or to numbered neighbours (`heartbeatNeighbours`) as asked, the
/// origin's `device` and the `capacity_bytes` this node offers ([`crate::origin`]), the page's
/// addresses through its relays' circuits (what invitations carry,
/// [`node_address`]), its own queries asking the relays' archive nodes last, every other
/// setting the core's default (scaled down where the core requires it).
pub fn config(
    options: &Options,
    local: PeerId,
    device: u64,
    capacity_bytes: u64,
) -> Result<Config, ConfigError> {
    let mut config = Config {
        device,
        capacity_bytes,
        heartbeat_interval_ms: u64::from(options.heartbeat_interval_ms),
        offline_after_ms: u64::from(options.offline_after_ms),
        formation_interval_ms: u64::from(options.formation_interval_ms),
        placement: options.placement,
        cluster_ttl_ms: u64::from(options.cluster_ttl_ms),
        segment: options.segment,
        heartbeat_mode: match options.heartbeat_neighbours {
            0 => HeartbeatMode::All,
            per_side => HeartbeatMode::Neighbours {
                per_side: per_side as usize,
            },
        },
        address: node_address(options, local),
        // A reloaded tab is the member it was (its clock, Unix milliseconds, goes on).
        resume_membership: true,
        ..Config::for_cluster(options.cluster_size as usize, options.replicas as usize)
    };
    config.serve.new_blocks.mode = options.new_blocks;
    config.validate()?;
    Ok(config)
}

/// The page's address for invitations: its circuit address through every relay of the
/// options, in their order, as many as fit (`shoal_net::node_link::join_addresses`). Whoever
/// dials the page tries them all, so the page stays reachable while any one of its relays
/// holds its reservation — no relay is a single point of failure.
pub fn node_address(options: &Options, local: PeerId) -> String {
    let through: Vec<_> = options
        .relays
        .iter()
        .map(|relay| node_link::address_of(&crate::circuits::circuit_address(&relay.addr), local))
        .collect();
    node_link::join_addresses(&through)
}

/// Most peers' transaction queries held open at once for the node's answer; beyond this a
/// query is acknowledged at once and its answer goes back as a request of its own.
pub const HELD_QUERIES_MAX: usize = 64;
/// How long a query is held open before it is merely acknowledged (the node answers a
/// member's query from its own blocks, after one read; the asker's query gives up after
/// `QueryConfig::query_timeout_ms`, 10 s).
pub const HELD_QUERY_TIMEOUT_MS: f64 = 10_000.0;

/// Other nodes' `TxQuery` requests held open until this node's `TxAnswer` to them, by (peer,
/// the query's request id): the answer is then the request's response.
#[derive(Default)]
pub struct HeldQueries {
    /// (peer, request id) → (channel, held since, in milliseconds).
    held: HashMap<(PeerId, u64), Held>,
}

/// A held query's channel and since when it is held (milliseconds).
type Held = (ResponseChannel<Vec<u8>>, f64);

impl HeldQueries {
    /// Holds `channel` for `peer`'s query `request_id` received at `now_ms`; gives it back when
    /// [`HELD_QUERIES_MAX`] are held or that query is held already.
    pub fn hold(
        &mut self,
        peer: PeerId,
        request_id: u64,
        channel: ResponseChannel<Vec<u8>>,
        now_ms: f64,
    ) -> Result<(), ResponseChannel<Vec<u8>>> {
        if self.held.len() >= HELD_QUERIES_MAX || self.held.contains_key(&(peer, request_id)) {
            return Err(channel);
        }
        self.held.insert((peer, request_id), (channel, now_ms));
        Ok(())
    }

    /// The channel held for `peer`'s query `request_id`, if any.
    pub fn take(&mut self, peer: &PeerId, request_id: u64) -> Option<ResponseChannel<Vec<u8>>> {
        self.held
            .remove(&(*peer, request_id))
            .map(|(channel, _)| channel)
    }

    /// The channels held since before `now_ms - HELD_QUERY_TIMEOUT_MS` (they are let go).
    pub fn expired(&mut self, now_ms: f64) -> Vec<ResponseChannel<Vec<u8>>> {
        let old: Vec<(PeerId, u64)> = self
            .held
            .iter()
            .filter(|(_, (_, since))| now_ms - since >= HELD_QUERY_TIMEOUT_MS)
            .map(|(key, _)| *key)
            .collect();
        old.iter()
            .filter_map(|key| self.held.remove(key).map(|(channel, _)| channel))
            .collect()
    }
}

/// The core node in its host, and what the shell keeps beside it.
pub struct ClusterNode {
    host: Host,
    /// The node's blocks and records in IndexedDB, with their sizes (for `storedBytes` and
    /// `block-stored`).
    blocks: PageBlocks,
    book: PeerBook,
    /// The node's own requests still waiting for their response.
    requests: HashSet<OutboundRequestId>,
    /// Peers whose node said hello, and whether it is an archive (shown in `status()`).
    hellos: HashMap<PeerId, bool>,
    /// Whether the node has been given the header chain yet.
    has_headers: bool,
    /// `verifyTransaction` calls waiting for their `TxQueryDone`: query id → (block hint,
    /// reply).
    queries: HashMap<u64, (Option<BlockHash>, QueryReply)>,
    next_query_id: u64,
    /// `getBlock` calls waiting for their job: job id → reply.
    jobs: HashMap<u64, BlockReply>,
    next_job_id: u64,
    /// Other nodes' queries waiting for this node's answer as their response.
    pub(crate) held_queries: HeldQueries,
    /// Who sent the latest blocks that arrived (hash, sender), newest last, at most
    /// [`BLOCK_SENDERS_MAX`]: the `from` of `block-stored`.
    block_senders: VecDeque<(BlockHash, PeerId)>,
    /// When a storage failure was last told to the page: [other, quota exceeded].
    storage_error_reported: [Option<u64>; 2],
    /// The page's `capacityBytes` option, which the origin's estimate does not override.
    pub(crate) capacity_option: Option<u64>,
    /// After a write failed for quota: the capacity it allows (the bytes held then, less a
    /// tenth) and when, kept for [`QUOTA_CEILING_MS`] over any larger estimate.
    pub(crate) quota_ceiling: Option<(u64, u64)>,
    /// The origin's estimate is due again (a write failed for quota).
    pub(crate) capacity_check_due: bool,
    /// An estimate is being read.
    pub(crate) capacity_checking: bool,
}

/// How long a quota failure caps the capacity a node offers, whatever the browser's estimate
/// says (Chromium's estimate can promise room its quota does not give).
pub const QUOTA_CEILING_MS: u64 = STORAGE_ERROR_REPEAT_MS;

/// A storage failure of the same kind is told to the page again after this long at most.
pub const STORAGE_ERROR_REPEAT_MS: u64 = 10 * 60 * 1000;

/// Most block senders remembered for `block-stored` (more than a repair window of blocks in
/// flight at once).
const BLOCK_SENDERS_MAX: usize = 256;

impl ClusterNode {
    /// A node for the local peer `local` over the page's `store`, not yet started.
    pub fn new(
        config: Config,
        local: &PeerId,
        seed: u64,
        blocks: PageBlocks,
    ) -> Result<ClusterNode, ConfigError> {
        let node = Node::new(config, node_link::node_id(local), seed)?;
        let mut book = PeerBook::default();
        book.learn(*local); // so that this page names itself among the members
        let mut host = Host::new(node);
        host.push(Input::Start);
        Ok(ClusterNode {
            host,
            blocks,
            book,
            requests: HashSet::new(),
            hellos: HashMap::new(),
            has_headers: false,
            queries: HashMap::new(),
            next_query_id: 1,
            jobs: HashMap::new(),
            next_job_id: 1,
            held_queries: HeldQueries::default(),
            block_senders: VecDeque::new(),
            storage_error_reported: [None; 2],
            capacity_option: None,
            quota_ceiling: None,
            capacity_check_due: false,
            capacity_checking: false,
        })
    }

    /// The node's clock: Unix milliseconds, so that times the node saved (its membership's
    /// expiry, `Config::resume_membership`) mean the same after a reload.
    fn now_ms(&self) -> u64 {
        js_sys::Date::now().max(0.0) as u64
    }

    /// The core node.
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    /// Milliseconds until the node's next deadline (0 if overdue), `None` if it has none.
    pub fn next_timer_in_ms(&self) -> Option<u64> {
        let at = self.host.poll_timeout()?;
        Some(at.saturating_sub(self.now_ms()))
    }

    /// Whether `id` is one of the node's own requests (its response belongs to the node).
    pub fn owns_request(&self, id: &OutboundRequestId) -> bool {
        self.requests.contains(id)
    }

    /// Peers whose node greeted us: (peer id, archive).
    pub fn greeted(&self) -> impl Iterator<Item = (&PeerId, &bool)> {
        self.hellos.iter()
    }

    /// Every reply still waiting for a query's result (the node is stopping).
    pub fn take_queries(&mut self) -> Vec<QueryReply> {
        self.queries.drain().map(|(_, (_, reply))| reply).collect()
    }

    /// Every reply still waiting for a block (the node is stopping).
    pub fn take_jobs(&mut self) -> Vec<BlockReply> {
        self.jobs.drain().map(|(_, reply)| reply).collect()
    }

    /// Hashes of the blocks stored in IndexedDB (as listed at start and written since).
    pub fn stored_blocks(&self) -> impl Iterator<Item = &BlockHash> + '_ {
        self.blocks.hashes()
    }

    /// Whether `peer`'s node greeted this one as an archive.
    pub fn greeted_as_archive(&self, peer: &PeerId) -> bool {
        self.hellos.get(peer) == Some(&true)
    }

    /// Whether `peer`'s node greeted us as a node that is not an archive.
    pub fn greeted_as_member(&self, peer: &PeerId) -> bool {
        self.hellos.get(peer) == Some(&false)
    }

    /// Remembers that `peer` sent the block `bytes` (a `BlockData` or `NewBlock`).
    fn block_arrived(&mut self, peer: PeerId, bytes: &[u8]) {
        let Some(header) = bytes.get(..80) else {
            return;
        };
        let hash = BlockHash(shoal_core::chain::hash::sha256d(header));
        if self.block_senders.len() >= BLOCK_SENDERS_MAX {
            self.block_senders.pop_front();
        }
        self.block_senders.push_back((hash, peer));
    }

    /// Who sent block `hash` last, if it arrived lately.
    fn sender_of(&self, hash: &BlockHash) -> Option<PeerId> {
        (self.block_senders.iter().rev())
            .find(|(h, _)| h == hash)
            .map(|(_, peer)| *peer)
    }

    /// The peer id of node `id` if it was met, else the node id in hex.
    fn name_of(&self, id: &NodeId) -> String {
        self.book
            .peer(id)
            .map(|p| p.to_string())
            .unwrap_or_else(|| hex::encode(id.0))
    }
}

impl EventLoop {
    /// Queues the due timers of the core node and runs them.
    pub(crate) async fn on_node_timers(&mut self) {
        let now = self.core.now_ms();
        self.core.host.handle_timeout(now);
        self.pump_node().await;
    }

    /// The verified header chain changed (or the sync caught up): hand the node a view of it.
    pub(crate) async fn node_headers_changed(&mut self) {
        if !self.sync_caught_up() {
            return; // copying the chain for every batch while catching up would be quadratic
        }
        self.core.has_headers = true;
        self.core
            .host
            .push(Input::Headers(Arc::new(self.chain.clone())));
        self.pump_node().await;
    }

    /// A first connection to `peer` is up.
    pub(crate) async fn node_peer_connected(&mut self, peer: PeerId) {
        let id = self.core.book.learn(peer);
        self.core.host.push(Input::PeerConnected { peer: id });
        self.pump_node().await;
    }

    /// The last connection to `peer` closed, or a dial to it failed.
    pub(crate) async fn node_peer_gone(&mut self, peer: PeerId) {
        let id = self.core.book.learn(peer);
        self.core.hellos.remove(&peer);
        self.core.host.push(Input::PeerDisconnected { peer: id });
        self.pump_node().await;
    }

    /// `verifyTransaction`: a query for the node; `reply` gets its result.
    pub(crate) async fn node_query(
        &mut self,
        txid: Txid,
        block_hint: Option<BlockHash>,
        reply: QueryReply,
    ) {
        if self.core.queries.len() >= MAX_PENDING_REQUESTS {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::Unavailable,
                "too many queries are waiting for an answer",
            )));
            return;
        }
        let query_id = self.core.next_query_id;
        self.core.next_query_id += 1;
        self.core.queries.insert(query_id, (block_hint, reply));
        crate::trace::mark("query-start", query_id);
        self.core.host.push(Input::TxQuery {
            query_id,
            txid,
            block_hint,
        });
        self.pump_node().await;
    }

    /// Who supplied a confirmed query's proof.
    fn source_of(&self, answered_by: Option<NodeId>) -> Source {
        let Some(id) = answered_by else {
            return Source::Local;
        };
        match self.core.book.peer(&id) {
            Some(peer) if self.counts_as_relay(&peer) => Source::Relay,
            _ => Source::Member,
        }
    }

    /// Whether `peer` is a relay for `source` and `downloadedBytes`: a peer whose node greeted
    /// as an archive, or one of the options' relays whose node has not greeted as anything
    /// else (a member relay, `--role member`, holds a shard and answers like a page).
    pub(crate) fn counts_as_relay(&self, peer: &PeerId) -> bool {
        self.core.greeted_as_archive(peer)
            || (self.is_relay(peer) && !self.core.greeted_as_member(peer))
    }

    /// `getBlock`: a job for the node (S17); `reply` gets the block's bytes. A block off this
    /// node's best chain is `NOT_FOUND` at once; while that chain lacks the minimum work it
    /// is trusted for nothing, and every block is `NOT_SYNCED`.
    pub(crate) async fn node_get_block(&mut self, block_hash: BlockHash, reply: BlockReply) {
        if !self.chain.has_minimum_work() {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::NotSynced,
                "the header chain does not have the minimum chain work yet",
            )));
            return;
        }
        if self.chain.height_of(&block_hash).is_none() {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::NotFound,
                format!("block {block_hash} is not in this node's best chain"),
            )));
            return;
        }
        if self.core.jobs.len() >= MAX_PENDING_REQUESTS {
            let _ = reply.send(Err(ApiError::new(
                ErrorCode::Unavailable,
                "too many blocks are being fetched",
            )));
            return;
        }
        let job = self.core.next_job_id;
        self.core.next_job_id += 1;
        self.core.jobs.insert(job, reply);
        self.core.host.push(Input::RunJob { job, block_hash });
        self.pump_node().await;
    }

    /// The relays this page knows are the directory's candidates for the node.
    pub(crate) async fn node_candidates(&mut self, relays: Vec<(PeerId, libp2p::Multiaddr)>) {
        let candidates: Vec<Candidate> = relays
            .iter()
            .map(|(peer, addr)| {
                self.core.book.learn(*peer);
                node_link::candidate(*peer, addr)
            })
            .collect();
        self.core.host.push(Input::CandidatePeers(candidates));
        self.pump_node().await;
    }

    /// A message from `peer` (a request, already acknowledged, or a direct answer).
    pub(crate) async fn node_message(&mut self, peer: PeerId, message: Message) {
        match &message {
            Message::Hello { record, .. } => {
                self.core.hellos.insert(peer, record.archive);
            }
            Message::BlockData { block, .. } | Message::NewBlock { block } => {
                let relay = self.counts_as_relay(&peer);
                self.core.block_arrived(peer, block);
                let mut status = self.shared.status.borrow_mut();
                status.downloaded_bytes.of(relay).blocks += block.len() as u64;
            }
            _ => {}
        }
        match &message {
            Message::JoinRequest { .. } => debug(format!(
                "shoal: {peer} asks to join this node's cluster (S13)"
            )),
            Message::Invite {
                invite_id,
                address,
                record,
                cluster,
            } => debug(format!(
                "shoal: invitation {invite_id} from {peer}{} (S1): address {address}, blocks served {}, capacity {} bytes, segment {}",
                cluster.map_or(String::new(), |c| format!(" to join cluster {}", hex::encode(c.0))),
                record.blocks_served,
                record.capacity_bytes,
                record.segment,
            )),
            Message::InviteWithdrawn { invite_id } => debug(format!(
                "shoal: invitation {invite_id} from {peer} withdrawn"
            )),
            Message::InviteReply {
                invite_id,
                accept,
                address,
                record,
            } => debug(format!(
                "shoal: {peer} {} invitation {invite_id} (S3): address {address}, blocks served {}, capacity {} bytes, segment {}",
                if *accept { "accepts" } else { "declines" },
                record.blocks_served,
                record.capacity_bytes,
                record.segment,
            )),
            _ => {}
        }
        let announced = match &message {
            Message::BlockAnnounce { header } => Some(*header),
            _ => None,
        };
        mark_message(false, &message);
        let from = self.core.book.learn(peer);
        self.core.host.push(Input::Message { from, message });
        self.pump_node().await;
        // The node knows of the announced block first, so that when the header sync hands it
        // the longer chain it brings the block in by the new-block path (S14, S15).
        if let Some(header) = announced {
            self.on_block_announce(peer, header).await;
        }
    }

    /// The response to one of the node's requests.
    pub(crate) async fn node_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: &[u8],
    ) {
        self.core.requests.remove(&id);
        match node_link::decode_reply(response) {
            Ok(Reply::Ack) => {}
            Ok(Reply::Message(message)) => self.node_message(peer, message).await,
            Err(error) => web_sys::console::debug_1(&JsValue::from_str(&format!(
                "shoal: undecodable reply from {peer}: {error}"
            ))),
        }
    }

    /// One of the node's requests failed: the protocol tolerates the loss (every exchange has
    /// its own timeout in the core).
    pub(crate) fn node_request_failed(&mut self, id: &OutboundRequestId) {
        self.core.requests.remove(id);
    }

    /// Runs the host until the node is quiet: messages and dials go out as the node asks,
    /// the storage commands of each round run in one IndexedDB batch, and the node's events
    /// reach the page once the round is over. The host's pump (`Host::run`), with one
    /// difference: while IndexedDB works, the swarm is polled (its events wait in
    /// `EventLoop::deferred`), so that the messages the node sent in that round leave at once
    /// instead of after its writes — a new block on its way to the other holders does not
    /// wait for the router's own copy to land.
    pub(crate) async fn pump_node(&mut self) {
        crate::trace::mark("pump-start", 0);
        let stored_bytes = self.core.blocks.stored_bytes();
        self.core.host.node_mut().set_stored_bytes(stored_bytes);
        let now = self.core.now_ms();
        let relays: Vec<PeerId> = self.relays().collect();
        let mut events = Vec::new();
        loop {
            let mut io = PageIo {
                swarm: &mut self.swarm,
                book: &mut self.core.book,
                requests: &mut self.core.requests,
                held_queries: &mut self.core.held_queries,
                relays: &relays,
                events: Vec::new(),
                storage: Vec::new(),
            };
            self.core.host.drain(now, &mut io);
            let commands = std::mem::take(&mut io.storage);
            events.append(&mut io.events);
            if commands.is_empty() {
                break;
            }
            for chunk in commands.chunks(MAX_COMMANDS_PER_BATCH) {
                let (results, error) = {
                    let mut store = std::pin::pin!(execute(&mut self.core.blocks, chunk));
                    loop {
                        if self.deferred.len() >= DEFERRED_EVENTS_MAX {
                            break store.await;
                        }
                        match future::select(store.as_mut(), self.swarm.select_next_some()).await {
                            Either::Left((done, _)) => break done,
                            Either::Right((event, _)) => self.deferred.push_back(event),
                        }
                    }
                };
                let wrote = results
                    .iter()
                    .any(|r| matches!(r, shoal_core::node::StorageResult::Put { ok: true, .. }));
                match error {
                    Some(error) => self.storage_failed(&error),
                    None if wrote => self.shared.status.borrow_mut().storage_error = None,
                    None => {}
                }
                for result in results {
                    self.core.host.push(Input::Storage(result));
                }
            }
        }
        crate::trace::mark("pump-end", 0);
        for event in events {
            self.node_event(event);
        }
        self.publish_node();
    }

    fn node_event(&mut self, event: Event) {
        match event {
            Event::JoinedCluster { .. } | Event::ViewChanged { .. } | Event::LeftCluster { .. } => {
                let detail = self.cluster_changed();
                self.emit_detail("cluster", &detail);
            }
            Event::MemberJoined { member } => {
                let peer_id = self.core.name_of(&member);
                self.emit_detail("member-joined", &crate::events::Member { peer_id });
            }
            Event::JobReady { job, block_hash } => {
                if let Some(reply) = self.core.jobs.remove(&job) {
                    let bytes = self
                        .core
                        .host
                        .node_mut()
                        .with_block(&block_hash, |block| block.encode());
                    let _ = reply.send(bytes.ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::Unavailable,
                            format!("block {block_hash} left the cache before it was read"),
                        )
                    }));
                }
            }
            Event::JobFailed {
                job,
                block_hash,
                error,
            } => {
                if let Some(reply) = self.core.jobs.remove(&job) {
                    let code = match error {
                        // The page's chain has it (checked first): the node's view lags.
                        CacheError::NotInBestChain => ErrorCode::NotSynced,
                        _ => ErrorCode::Unavailable,
                    };
                    let message = format!("block {block_hash}: {error}");
                    let _ = reply.send(Err(ApiError::new(code, message)));
                }
            }
            Event::MemberOffline { member } => {
                let peer_id = self.core.name_of(&member);
                self.emit_detail("member-lost", &crate::events::Member { peer_id });
            }
            Event::HolderFaulty { member, by_us } => {
                let peer_id = self.core.name_of(&member);
                let detail = crate::events::HolderFaulty { peer_id, by_us };
                self.emit_detail("holder-faulty", &detail);
            }
            Event::TxQueryDone {
                query_id,
                txid,
                result,
                answered_by,
            } => {
                crate::trace::mark("query-done", query_id);
                if let Some((hint, reply)) = self.core.queries.remove(&query_id) {
                    let source = self.source_of(answered_by);
                    let answerer = answered_by.map(|id| self.core.name_of(&id));
                    let verified = crate::verify::from_result(txid, hint, result, source, answerer)
                        .map(|mut v| {
                            v.merkle_root =
                                self.chain.header_at(v.proof.height).map(|h| h.merkle_root);
                            v
                        });
                    let _ = reply.send(verified);
                }
            }
            Event::FailureDomains(domains) => {
                let detail = crate::status::FailureDomains::from(domains);
                self.emit_detail("failure-domains", &detail);
            }
            Event::BlockStored { block_hash, height } => {
                crate::trace::mark("block-stored", block_id(&block_hash.0));
                let detail = crate::events::BlockStored {
                    block_hash: block_hash.to_string(),
                    height,
                    bytes: self.core.blocks.size_of(&block_hash).unwrap_or(0),
                    from: self.core.sender_of(&block_hash).map(|p| p.to_string()),
                };
                self.emit_detail("block-stored", &detail);
            }
            _ => {}
        }
    }

    /// The `cluster` event's detail: the node's cluster now.
    fn cluster_changed(&self) -> crate::events::ClusterChanged {
        match self.core.node().cluster() {
            Some((cluster, _epoch, ids)) => crate::events::ClusterChanged {
                cluster_id: Some(hex::encode(cluster.0)),
                member_number: self.core.node().member_number().map(|n| n as u32),
                members: ids.iter().map(|id| self.core.name_of(id)).collect(),
            },
            None => crate::events::ClusterChanged {
                cluster_id: None,
                member_number: None,
                members: Vec::new(),
            },
        }
    }

    /// A storage batch failed: `status().storageError` says so at once; the page hears of it
    /// (`storage-error`, and the console) once, and again only after
    /// [`STORAGE_ERROR_REPEAT_MS`] — the node retries with back-off, not the page's patience.
    fn storage_failed(&mut self, error: &crate::store::StoreError) {
        let now = js_sys::Date::now().max(0.0) as u64;
        let quota_exceeded = matches!(error, crate::store::StoreError::QuotaExceeded(_));
        let failure = crate::status::StorageFailure {
            code: "STORAGE",
            message: error.to_string(),
            quota_exceeded,
            at: now,
        };
        if quota_exceeded {
            // Issue 17: offer no more than what fits. The cluster moves the rest elsewhere, and
            // the origin's estimate is read again at once.
            let ceiling = (self.core.blocks.stored_bytes() / 10 * 9).max(1);
            self.core.quota_ceiling = Some((ceiling, now));
            self.core.capacity_check_due = true;
            let current = self.shared.status.borrow().storage.capacity_bytes;
            self.set_capacity(ceiling.min(current));
        }
        let last = &mut self.core.storage_error_reported[usize::from(quota_exceeded)];
        let tell = last.is_none_or(|at| now.saturating_sub(at) >= STORAGE_ERROR_REPEAT_MS);
        if tell {
            *last = Some(now);
            web_sys::console::error_1(&JsValue::from_str(&format!("shoal: {error}")));
            self.emit_detail("storage-error", &failure);
        }
        self.shared.status.borrow_mut().storage_error = Some(failure);
    }

    /// Issue 17: the capacity this node offers is now `capacity_bytes`. The core hears of it
    /// (`Input::SetCapacity`: the cluster's next view carries it, and placement moves blocks
    /// to match) when it moved by a tenth or more; smaller moves are not worth a view change.
    pub(crate) fn set_capacity(&mut self, capacity_bytes: u64) {
        let current = self.shared.status.borrow().storage.capacity_bytes;
        let moved = current.abs_diff(capacity_bytes);
        if moved == 0 || moved < current / 10 {
            return;
        }
        self.shared.status.borrow_mut().storage.capacity_bytes = capacity_bytes;
        self.core.host.push(Input::SetCapacity { capacity_bytes });
    }

    /// Issue 17, every [`crate::event_loop::CAPACITY_CHECK`] and at once after a write failed
    /// for quota: the origin's storage is read again (tabs of the origin opened or closed, its
    /// other data grew, the browser's quota changed) — in a task of its own, so the node's
    /// loop never waits for the browser's storage calls; its answer comes back through
    /// `results` to [`EventLoop::on_storage_share`].
    pub(crate) fn check_capacity(
        &mut self,
        results: &futures::channel::mpsc::UnboundedSender<crate::origin::StorageShare>,
    ) {
        self.core.capacity_check_due = false;
        if self.core.capacity_checking {
            return;
        }
        self.core.capacity_checking = true;
        let option = self.core.capacity_option;
        let own = self.core.blocks.stored_bytes();
        let results = results.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let share = crate::origin::storage_share(option, own, false).await;
            let _ = results.unbounded_send(share);
        });
    }

    /// The origin's storage as read by [`EventLoop::check_capacity`]: the capacity follows it,
    /// capped by a recent quota failure.
    pub(crate) async fn on_storage_share(&mut self, share: crate::origin::StorageShare) {
        self.core.capacity_checking = false;
        let now = js_sys::Date::now().max(0.0) as u64;
        let mut capacity = share.capacity_bytes;
        match self.core.quota_ceiling {
            Some((ceiling, at)) if now.saturating_sub(at) < QUOTA_CEILING_MS => {
                capacity = capacity.min(ceiling);
            }
            Some(_) => self.core.quota_ceiling = None,
            None => {}
        }
        {
            let mut status = self.shared.status.borrow_mut();
            let kept = status.storage.capacity_bytes;
            status.storage = crate::origin::StorageShare {
                capacity_bytes: kept,
                ..share
            };
        }
        self.set_capacity(capacity);
        self.pump_node().await;
    }

    /// `shardMap(from, to)`: the placement of each height under the node's view, and which
    /// of them it holds. `to - from` is below `SHARD_MAP_MAX_HEIGHTS` (checked by the API).
    pub(crate) fn shard_map(&mut self, from: u32, to: u32) -> crate::status::ShardMap {
        let tip = self.chain.tip_height();
        let last = to.min(tip);
        let members = match self.core.node().cluster() {
            Some((_, _, ids)) => ids.iter().map(|id| self.core.name_of(id)).collect(),
            None => Vec::new(),
        };
        let node = self.core.host.node_mut();
        let mut holders = Vec::new();
        let mut held = Vec::new();
        for height in from..=last {
            let numbers = node.placement_holders(height).unwrap_or_default();
            holders.push(numbers.into_iter().map(|n| n as u32).collect());
            if node.holds(height) {
                held.push(height);
            }
        }
        crate::status::ShardMap {
            tip_height: tip,
            from_height: from,
            to_height: if from > tip {
                i64::from(from) - 1
            } else {
                i64::from(last)
            },
            members,
            holders,
            held,
        }
    }

    /// `status().memberDetails`: the core's view of each member, with how it is connected.
    fn member_details(&self) -> Vec<crate::status::MemberDetail> {
        let own = self.core.node().member_number();
        (self.core.node().member_details().into_iter())
            .map(|d| {
                let peer = self.core.book.peer(&d.id);
                let transport = peer.and_then(|p| self.direct.transport_to(&p));
                let is_self = Some(d.number) == own;
                crate::status::MemberDetail {
                    peer_id: self.core.name_of(&d.id),
                    number: d.number as u32,
                    is_self,
                    relay: matches!(
                        transport,
                        Some(Transport::WebRtcDirect | Transport::WebSocket)
                    ),
                    connected: is_self || transport.is_some(),
                    last_heard_at: d.last_heard_ms,
                    shard_held: d.shard_held,
                    report: d.report.map(|r| crate::status::ShardReport {
                        held_blocks: r.held_blocks,
                        stored_bytes: r.stored_bytes,
                        missing_blocks: r.missing_blocks,
                    }),
                }
            })
            .collect()
    }

    /// Copies the node's state into the status snapshot.
    fn publish_node(&self) {
        let mut status = self.shared.status.borrow_mut();
        match self.core.node().cluster() {
            Some((cluster, _epoch, ids)) => {
                status.cluster_id = Some(hex::encode(cluster.0));
                status.member_number = self.core.node().member_number().map(|n| n as u32);
                status.members = ids.iter().map(|id| self.core.name_of(id)).collect();
                status.watching = (self.core.node().watched_members().iter())
                    .map(|id| self.core.name_of(id))
                    .collect();
                status.member_details = self.member_details();
            }
            None => {
                status.cluster_id = None;
                status.member_number = None;
                status.members.clear();
                status.watching.clear();
                status.member_details.clear();
            }
        }
        status.failure_domains = self.core.node().failure_domains().map(Into::into);
        status.held_blocks = self.core.node().held_count() as u32;
        status.missing_blocks = self.core.node().missing_count() as u32;
        let stats = self.core.node().stats();
        status.holding = crate::status::Holding {
            spare_blocks: self.core.node().spare_proofs().len() as u32,
            challenges_sent: stats.hold_challenges_sent,
            proofs_passed: stats.hold_proofs_passed,
            proofs_failed: stats.hold_proofs_failed,
            unanswered: stats.hold_challenges_unanswered,
            answered: stats.hold_challenges_answered,
        };
        status.stored_bytes = self.core.blocks.stored_bytes();
        status.node_peers = self
            .core
            .greeted()
            .map(|(peer, archive)| crate::status::NodePeer {
                peer_id: peer.to_string(),
                archive: *archive,
            })
            .collect();
        status.node_has_headers = self.core.has_headers;
        let members: HashSet<PeerId> = self
            .core
            .node()
            .cluster()
            .map(|(_, _, ids)| {
                ids.iter()
                    .filter_map(|id| self.core.book.peer(id))
                    .collect()
            })
            .unwrap_or_default();
        let mut connections: Vec<Connection> = (self.direct.connections())
            .map(|(id, (peer, transport))| Connection {
                peer_id: peer.to_string(),
                transport: *transport,
                rtt_ms: self.direct.rtt_ms(id),
                agent: self.direct.agent(peer).map(str::to_owned),
                role: if self.core.greeted_as_archive(peer) {
                    Role::Archive
                } else if self.is_relay(peer) {
                    Role::Relay
                } else if members.contains(peer) {
                    Role::Member
                } else {
                    Role::Peer
                },
            })
            .collect();
        connections.sort_by(|a, b| {
            (a.peer_id.cmp(&b.peer_id)).then(a.transport.as_str().cmp(b.transport.as_str()))
        });
        status.connections = connections;
    }
}

/// The page's I/O for the host: the node's messages go out over the swarm as requests, its
/// dials are made (a relay of the options is dialled by the loop already), its events are
/// kept for the page.
struct PageIo<'a> {
    swarm: &'a mut Swarm<Behaviour>,
    book: &'a mut PeerBook,
    requests: &'a mut HashSet<OutboundRequestId>,
    held_queries: &'a mut HeldQueries,
    relays: &'a [PeerId],
    events: Vec<Event>,
    /// The round's storage commands, for one IndexedDB batch.
    storage: Vec<StorageCommand>,
}

impl Io for PageIo<'_> {
    fn carry_out(&mut self, output: Output, inputs: &mut Inputs) {
        match output {
            Output::Send { to, message } => {
                let Some(peer) = self.book.peer(&to) else {
                    return; // never met: dropped, the core's timeouts cover it
                };
                match &message {
                    Message::JoinRequest { .. } => debug(format!(
                        "shoal: asking {peer} to let this node join its cluster (S13)"
                    )),
                    Message::Invite { invite_id, .. } => debug(format!(
                        "shoal: inviting {peer} (invitation {invite_id}, S1)"
                    )),
                    Message::InviteReply {
                        invite_id, accept, ..
                    } => debug(format!(
                        "shoal: {} invitation {invite_id} from {peer} (S3)",
                        if *accept { "accepting" } else { "declining" }
                    )),
                    _ => {}
                }
                let Ok(bytes) = node_link::encode_request(&message) else {
                    return;
                };
                mark_message(true, &message);
                // The answer to a query held open is its response (a direct answer); should
                // the asker have gone, it goes as a request like any message.
                let held = match &message {
                    Message::TxAnswer { request_id, .. } => {
                        self.held_queries.take(&peer, *request_id)
                    }
                    _ => None,
                };
                let bytes = match held {
                    Some(channel) => {
                        match self.swarm.behaviour_mut().msg.send_response(channel, bytes) {
                            Ok(()) => return,
                            Err(bytes) => bytes,
                        }
                    }
                    None => bytes,
                };
                let id = self.swarm.behaviour_mut().msg.send_request(&peer, bytes);
                self.requests.insert(id);
            }
            Output::Connect { peer, address } => match node_link::parse_addresses(&address) {
                Some((peer_id, _)) if self.swarm.is_connected(&peer_id) => {
                    inputs.push(Input::PeerConnected { peer });
                }
                // A relay of the options: the loop dials it already (with its backoff); its
                // connection will be reported as usual.
                Some((peer_id, _)) if self.relays.contains(&peer_id) => {}
                Some((peer_id, addrs)) => {
                    // Every address the peer gave (one per relay it listens through): the
                    // swarm tries them until one connects.
                    self.book.learn(peer_id);
                    let opts = DialOpts::peer_id(peer_id).addresses(addrs).build();
                    if self.swarm.dial(opts).is_err() {
                        inputs.push(Input::PeerDisconnected { peer });
                    }
                }
                None => inputs.push(Input::PeerDisconnected { peer }),
            },
            Output::Event(event) => self.events.push(event),
            Output::Storage(command) => self.storage.push(command),
            // Timers are the host's.
            Output::SetTimer { .. } => {}
        }
    }
}

/// A trace id for a block (its hash's first 8 bytes; `crate::trace`).
pub(crate) fn block_id(hash: &[u8; 32]) -> u64 {
    u64::from_le_bytes(hash[..8].try_into().expect("8 of 32 bytes"))
}

/// The trace id of a block from its raw bytes (its header's hash), 0 if they are too short.
fn raw_block_id(block: &[u8]) -> u64 {
    block
        .get(..80)
        .and_then(|bytes| shoal_core::chain::Header::decode(bytes).ok())
        .map_or(0, |header| block_id(&header.block_hash().0))
}

/// Marks the messages on the paths the benchmarks break down (`crate::trace`; nothing without
/// the `probes` feature).
fn mark_message(sent: bool, message: &Message) {
    use crate::trace::mark;
    if !cfg!(feature = "probes") {
        return; // no hashing for marks that are not kept
    }
    match (sent, message) {
        (true, Message::TxQuery { request_id, .. }) => mark("query-sent", *request_id),
        (false, Message::TxQuery { request_id, .. }) => mark("query-received", *request_id),
        (true, Message::TxAnswer { request_id, .. }) => mark("answer-sent", *request_id),
        (false, Message::TxAnswer { request_id, .. }) => mark("answer-received", *request_id),
        (true, Message::GetBlock { block_hash, .. }) => {
            mark("get-block-sent", block_id(&block_hash.0))
        }
        (false, Message::BlockData { block, .. }) => {
            mark("block-data-received", raw_block_id(block))
        }
        (true, Message::NewBlock { block }) => mark("new-block-sent", raw_block_id(block)),
        (false, Message::NewBlock { block }) => mark("new-block-received", raw_block_id(block)),
        (false, Message::BlockAnnounce { header }) => {
            mark("announce-received", block_id(&header.block_hash().0))
        }
        _ => {}
    }
}

/// A diagnostic line on the page's console (`console.debug`): what the node did that the API
/// does not report, e.g. the invitations it sends, receives and answers (S1, S3), which the
/// end-to-end tests read.
pub(crate) fn debug(line: String) {
    web_sys::console::debug_1(&JsValue::from_str(&line));
}
