//! The sans-IO node: one state machine that runs the whole cluster protocol (S1–S13, S18).
//!
//! # Overview
//!
//! A [`Node`] is driven from outside. The shell (browser, relay or simulator) calls
//! [`Node::handle_input`] with the current time and one [`Input`] — a timer fired, a message
//! arrived, a peer connected or left, a storage command finished, the directory suggested
//! peers, the header chain advanced, a block arrived from the block source — and then drains
//! [`Node::poll_output`] until it returns `None`, carrying out every [`Output`]: send a
//! message, dial a peer, set a timer, run a storage command, report an event. The node does
//! no I/O, reads no clock and draws randomness only from the seed given to [`Node::new`], so
//! the same inputs always give the same outputs.
//!
//! Headers are not copied into the node: it holds an `Arc` of a [`HeaderView`]
//! ([`Input::Headers`]), which thousands of simulated nodes can share. What the node stores is
//! tracked as a bit set by height; blocks themselves live in the shell's store.
//!
//! # Usage: the drain contract
//!
//! Every call to `handle_input` must be followed by draining `poll_output` to `None`:
//!
//! ```
//! use shoal_core::node::{Config, Input, Node, NodeId, Output};
//! let mut node = Node::new(Config::default(), NodeId::from_seed(1), 42).unwrap();
//! let mut now_ms = 0;
//! node.handle_input(now_ms, Input::Start);
//! let mut timers = Vec::new();
//! while let Some(output) = node.poll_output() {
//!     match output {
//!         Output::SetTimer { id, at_ms } => timers.push((id, at_ms)),
//!         Output::Send { .. } | Output::Connect { .. } => { /* hand to the network */ }
//!         Output::Storage(_command) => { /* run it, feed back Input::Storage(result) */ }
//!         Output::Event(_event) => { /* tell the front end */ }
//!     }
//! }
//! // Start asked for a formation timer; when it is due, say so and drain again.
//! let (id, at_ms) = timers[0];
//! now_ms = at_ms;
//! node.handle_input(now_ms, Input::TimerFired(id));
//! while let Some(_output) = node.poll_output() {}
//! ```

pub use crate::chain_seam;
mod serving;

pub use crate::chain_seam::{HeaderList, HeaderPrefix, HeaderView, SharedHeaders};
pub use crate::config::{Config, ConfigError, HeartbeatMode, ReplacementChoice};
pub use crate::io::{
    Candidate, Event, Input, KvRecord, NodeStats, Output, StorageCommand, StorageResult, TimerId,
    Timers, KV_KEY_MAX, KV_VALUE_MAX,
};
pub use crate::serve::txindex::KvOp;

use std::collections::{HashMap, VecDeque};

use crate::base::mix64;
use crate::base::rng::SplitMix64;
pub use crate::base::NodeId;
use crate::base::RequestIds;
use crate::cluster::formation::Ordinary;
use crate::cluster::Membership;
use crate::placement::Placer;
use crate::repair::Repair;
use crate::wire::{Message, NodeRecord};

/// What this node knows of one peer.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) connected: bool,
    /// We dialled it and have heard nothing yet (counts against `max_peers`).
    pub(crate) dialing: bool,
    /// From the peer's `Hello`.
    pub(crate) record: Option<NodeRecord>,
    pub(crate) cluster: Option<crate::cluster::ClusterId>,
    pub(crate) open_slots: u32,
    /// Last measured round-trip time.
    pub(crate) rtt_ms: Option<u64>,
    /// Our outstanding RTT ping: (nonce, sent at).
    pub(crate) ping: Option<(u64, u64)>,
}

/// Ordinary node or member.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // Ordinary is the common case; boxing it would allocate per formation.
pub(crate) enum Role {
    Ordinary(Ordinary),
    Member(Box<Membership>),
}

/// The sans-IO Shoal node. See the module docs for the drain contract.
#[derive(Debug)]
pub struct Node {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) rng: SplitMix64,
    pub(crate) now_ms: u64,
    pub(crate) started: bool,
    pub(crate) outputs: VecDeque<Output>,
    /// Pending deadline per timer, as last set.
    pub(crate) timers: [Option<u64>; TimerId::COUNT],
    pub(crate) headers: Option<SharedHeaders>,
    pub(crate) peers: HashMap<NodeId, Peer>,
    /// Candidates from the directory not yet dialled (bounded by `peer_table_max`).
    pub(crate) candidates: VecDeque<Candidate>,
    pub(crate) role: Role,
    pub(crate) placer: Placer,
    pub(crate) repair: Repair,
    /// Every request this node sends, to peers or to its store, is numbered from here.
    pub(crate) request_ids: RequestIds,
    /// Per-node salt that breaks ties between equally good peers differently on every node.
    pub(crate) tie_salt: u64,
    pub(crate) stats: NodeStats,
    /// Serving: transaction index, queries and the block cache (S16, S17).
    pub(crate) serve: serving::Serving,
}

impl Node {
    /// A new node with identity `id`, configuration `config` and randomness from `seed`.
    pub fn new(config: Config, id: NodeId, seed: u64) -> Result<Node, ConfigError> {
        config.validate()?;
        let placer = Placer::new(config.placement, config.replicas);
        let repair = Repair::new(&config);
        let request_ids = RequestIds::new();
        let serve = crate::serve::service::Serve::new(config.serve, id, request_ids.clone());
        Ok(Node {
            id,
            rng: SplitMix64::new(seed ^ u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))),
            now_ms: 0,
            started: false,
            outputs: VecDeque::new(),
            timers: [None; TimerId::COUNT],
            headers: None,
            peers: HashMap::new(),
            candidates: VecDeque::new(),
            role: Role::Ordinary(Ordinary::default()),
            placer,
            repair,
            request_ids,
            tie_salt: mix64(seed ^ 0x5eed),
            stats: NodeStats::default(),
            serve: serving::Serving::new(serve),
            config,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters of what the node did and moved.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The cluster this node is in, with the view's epoch and member ids (in member-number
    /// order), or `None` for an ordinary node.
    pub fn cluster(&self) -> Option<(crate::cluster::ClusterId, u64, Vec<NodeId>)> {
        match &self.role {
            Role::Member(m) => Some((
                m.view.cluster,
                m.view.epoch,
                m.slots.iter().map(|s| s.id).collect(),
            )),
            Role::Ordinary(_) => None,
        }
    }

    /// This node's member number, if it is a member.
    pub fn member_number(&self) -> Option<usize> {
        match &self.role {
            Role::Member(m) => Some(m.number),
            Role::Ordinary(_) => None,
        }
    }

    /// Whether the node holds (has stored) the block at `height`.
    pub fn holds(&self, height: u32) -> bool {
        self.repair.held.contains(height)
    }

    /// Number of blocks stored.
    pub fn held_count(&self) -> usize {
        self.repair.held.len()
    }

    /// Blocks this node must hold under its current view but does not yet (queued, in flight
    /// or waiting for a source).
    pub fn missing_count(&self) -> usize {
        self.repair.missing_count()
    }

    /// A one-line account of the repair state, for diagnostics (simulator traces, logs).
    pub fn repair_summary(&self) -> String {
        let view = match &self.role {
            Role::Member(m) => format!(
                "member #{} of {} epoch {} since {} ms, evicted_for_this_view={}",
                m.number,
                m.slots.len(),
                m.view.epoch,
                m.view_since_ms,
                self.repair.evicted_for == Some((m.view.cluster, m.view.epoch))
            ),
            Role::Ordinary(_) => "ordinary".to_string(),
        };
        format!("{view}; {}", self.repair.summary())
    }

    /// What this node says about itself in invitations and hellos.
    pub(crate) fn record(&self) -> NodeRecord {
        NodeRecord {
            blocks_served: self.stats.blocks_served,
            capacity_bytes: self.config.capacity_bytes,
            segment: self.config.segment,
            archive: self.config.archive,
        }
    }

    /// Takes the next output. Call until `None` after every [`Node::handle_input`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Feeds one input at time `now_ms` (milliseconds on the shell's monotonic clock).
    pub fn handle_input(&mut self, now_ms: u64, input: Input) {
        debug_assert!(
            self.outputs.is_empty(),
            "outputs must be drained after every input"
        );
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Start => self.on_start(),
            Input::TimerFired(id) => self.on_timer(id),
            Input::Message { from, message } => self.on_message(from, message),
            Input::PeerConnected { peer } => self.on_peer_connected(peer),
            Input::PeerDisconnected { peer } => {
                // Also how a shell reports a failed dial: the pending entry is forgotten, and
                // one replacement is dialled (pending dials count against max_peers, so
                // failures never fan out).
                if let Some(p) = self.peers.get_mut(&peer) {
                    if p.connected {
                        p.connected = false;
                        p.ping = None;
                    } else {
                        self.peers.remove(&peer);
                    }
                }
                self.dial_candidates();
            }
            Input::Storage(result) => {
                if let Some(result) = self.on_serve_storage(result) {
                    self.on_storage(result);
                }
            }
            Input::CandidatePeers(candidates) => {
                for candidate in candidates {
                    if candidate.id == self.id
                        || self.peers.get(&candidate.id).is_some_and(|p| p.connected)
                        || self.candidates.iter().any(|c| c.id == candidate.id)
                    {
                        continue;
                    }
                    if self.candidates.len() >= self.config.peer_table_max {
                        break;
                    }
                    self.candidates.push_back(candidate);
                }
                self.dial_candidates();
            }
            Input::Headers(view) => {
                self.on_serve_headers(&view);
                self.forget_reorganised(&view);
                self.headers = Some(view);
                self.rescan_shard();
            }
            Input::NewBlock { bytes } => {
                if let Some(bytes) = self.on_serve_new_block(bytes) {
                    self.on_new_block(bytes);
                }
            }
            Input::TxQuery {
                query_id,
                txid,
                block_hint,
            } => self.on_tx_query(query_id, txid, block_hint),
            Input::RunJob { job, block_hash } => self.on_run_job(job, block_hash),
        }
        self.flush_index_writes();
    }

    fn on_start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        // The index records first: the block listing then tells which blocks still need
        // reading back into the index.
        self.start_index_load();
        let request_id = self.fresh_id();
        self.repair.list_request = Some(request_id);
        self.push(Output::Storage(StorageCommand::List { request_id }));
        if !self.config.archive {
            let at = self.now_ms + self.rng.jitter(self.config.formation_interval_ms);
            self.set_timer(TimerId::Formation, at);
        }
    }

    fn on_timer(&mut self, id: TimerId) {
        let due = self.timers[id as usize];
        match due {
            Some(at) if at <= self.now_ms => self.timers[id as usize] = None,
            // Stale (replaced by a later SetTimer) or early: the pending deadline stands.
            _ => return,
        }
        match id {
            TimerId::Formation => self.on_formation_timer(),
            TimerId::Invitation => self.on_invitation_timer(),
            TimerId::Heartbeat => self.on_heartbeat_timer(),
            TimerId::Silence => self.on_silence_timer(),
            TimerId::ClusterExpiry => self.on_expiry_timer(),
            TimerId::Repair => self.on_repair_timer(),
            TimerId::Serve => self.on_serve_timer(),
        }
    }

    fn on_peer_connected(&mut self, peer: NodeId) {
        if peer == self.id {
            return;
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.config.peer_table_max {
            // Forget a disconnected peer to make room; if none, do not track this one.
            let stale = self
                .peers
                .iter()
                .find(|(_, p)| !p.connected)
                .map(|(id, _)| *id);
            match stale {
                Some(stale) => {
                    self.peers.remove(&stale);
                }
                None => {
                    // Table full: answer with who we are, but keep no state for this peer.
                    let hello = self.hello();
                    return self.send(peer, hello);
                }
            }
        }
        self.candidates.retain(|c| c.id != peer);
        let entry = self.peers.entry(peer).or_insert_with(|| Peer {
            connected: true,
            dialing: false,
            record: None,
            cluster: None,
            open_slots: 0,
            rtt_ms: None,
            ping: None,
        });
        entry.connected = true;
        entry.dialing = false;
        let nonce = self.rng.next_u64();
        if let Some(p) = self.peers.get_mut(&peer) {
            p.ping = Some((nonce, self.now_ms));
        }
        let hello = self.hello();
        self.send(peer, hello);
        let stamp = self.stamp();
        self.send(peer, Message::Ping { nonce, stamp });
    }

    pub(crate) fn hello(&self) -> Message {
        let (cluster, open_slots) = match &self.role {
            Role::Member(m) => (
                Some(m.view.cluster),
                self.config
                    .cluster_size_max
                    .saturating_sub(m.view.members.len()) as u32,
            ),
            Role::Ordinary(_) => (None, 0),
        };
        Message::Hello {
            record: self.record(),
            cluster,
            open_slots,
        }
    }

    /// The connected peers whose hello says archive, in id order (the peer table's own order
    /// is not deterministic).
    pub(crate) fn connected_archives(&self) -> Vec<NodeId> {
        let mut archives: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.record.as_ref().is_some_and(|r| r.archive))
            .map(|(id, _)| *id)
            .collect();
        archives.sort();
        archives
    }

    /// Tells every connected peer whether we are in a cluster now (after joining or leaving).
    pub(crate) fn announce(&mut self) {
        self.announce_to(|_| true);
        if let Some(room) = self.room() {
            if let Role::Member(m) = &mut self.role {
                m.announced_room = Some(room);
            }
        }
    }

    /// Tells connected peers outside our cluster of its room after a view change of the same
    /// cluster, when what they read from it changed ([`crate::cluster::Room`]): ordinary
    /// peers choose by it which cluster to ask to join (S13), and members of other clusters
    /// judge by it whether a cluster with P members is in reach before an undersized cluster
    /// dissolves. Our own members know the view itself. A change that leaves both readings as
    /// they were tells nobody anything: at 10,000 nodes those hellos were a sixth of all
    /// messages.
    pub(crate) fn announce_room(&mut self) {
        let Some(room) = self.room() else { return };
        let Role::Member(m) = &mut self.role else {
            return;
        };
        if m.announced_room == Some(room) {
            return;
        }
        m.announced_room = Some(room);
        let ours = Some(m.view.cluster);
        self.announce_to(|p| p.cluster != ours);
    }

    /// Our cluster's room as peers outside it read it, if we are a member.
    fn room(&self) -> Option<crate::cluster::Room> {
        let Role::Member(m) = &self.role else {
            return None;
        };
        let members = m.view.members.len();
        Some(crate::cluster::Room {
            has_room: members < self.config.cluster_size_max,
            keeps_p: members >= self.config.replicas,
        })
    }

    fn announce_to(&mut self, wants: impl Fn(&Peer) -> bool) {
        let hello = self.hello();
        let mut connected: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && wants(p))
            .map(|(id, _)| *id)
            .collect();
        connected.sort();
        for peer in connected {
            self.send(peer, hello.clone());
        }
    }

    /// Dials candidates until `max_peers` connections are up or being made. An ordinary node
    /// counts only peers that are not in a cluster: it needs ordinary peers to form one (S1).
    pub(crate) fn dial_candidates(&mut self) {
        let ordinary = matches!(self.role, Role::Ordinary(_));
        let connected = self
            .peers
            .values()
            .filter(|p| p.dialing || (p.connected && !(ordinary && p.cluster.is_some())))
            .count();
        let mut budget = self.config.max_peers.saturating_sub(connected);
        while budget > 0 {
            let Some(candidate) = self.candidates.pop_front() else {
                break;
            };
            if self.peers.contains_key(&candidate.id) {
                continue; // connected, or dialled already
            }
            if self.peers.len() >= self.config.peer_table_max {
                break;
            }
            budget -= 1;
            self.peers.insert(
                candidate.id,
                Peer {
                    connected: false,
                    dialing: true,
                    record: None,
                    cluster: None,
                    open_slots: 0,
                    rtt_ms: None,
                    ping: None,
                },
            );
            self.push(Output::Connect {
                peer: candidate.id,
                address: candidate.address,
            });
        }
    }

    fn on_message(&mut self, from: NodeId, message: Message) {
        if from == self.id {
            self.stats.messages_ignored += 1;
            return;
        }
        if self.on_serve_message(from, &message) {
            return;
        }
        match message {
            Message::Hello {
                record,
                cluster,
                open_slots,
            } => {
                let archive = record.archive;
                if let Some(p) = self.peers.get_mut(&from) {
                    p.record = Some(record);
                    p.cluster = cluster;
                    p.open_slots = open_slots;
                }
                if archive {
                    self.unpark_all();
                }
            }
            Message::Ping { nonce, stamp } => {
                self.heard_from(from, stamp);
                if !self.pings_back(from, stamp) {
                    let mine = self.stamp();
                    self.send(from, Message::Pong { nonce, stamp: mine });
                }
                self.compare_stamp(from, stamp);
            }
            Message::Pong { nonce, stamp } => {
                self.heard_from(from, stamp);
                self.heard_from_other_cluster(stamp);
                if let Some(p) = self.peers.get_mut(&from) {
                    if let Some((sent_nonce, sent_ms)) = p.ping {
                        if sent_nonce == nonce {
                            p.rtt_ms = Some(self.now_ms.saturating_sub(sent_ms));
                            p.ping = None;
                        }
                    }
                }
                self.compare_stamp(from, stamp);
            }
            Message::Invite {
                invite_id,
                address,
                record,
                cluster,
            } => self.on_invite(from, invite_id, address, record, cluster),
            Message::InviteReply {
                invite_id,
                accept,
                address,
                record,
            } => self.on_invite_reply(from, invite_id, accept, address, record),
            Message::InviteWithdrawn { invite_id } => self.on_invite_withdrawn(from, invite_id),
            Message::JoinRequest {
                request_id,
                address,
                record,
            } => self.on_join_request(from, request_id, address, record),
            Message::JoinDenied { .. } => {
                // Full (or busy): ask another cluster next time, until it says hello again.
                if let Some(p) = self.peers.get_mut(&from) {
                    p.open_slots = 0;
                }
            }
            Message::View(view) => self.on_view(from, view),
            Message::GetBlock {
                request_id,
                block_hash,
            } => self.on_get_block(from, request_id, block_hash),
            Message::BlockData { request_id, block } => self.on_block_data(from, request_id, block),
            Message::BlockNotFound { request_id } => self.on_block_not_found(from, request_id),
            Message::GetHeaders {
                request_id,
                start_height,
                max_count,
            } => self.on_get_headers(from, request_id, start_height, max_count),
            // Headers are the shell's (it keeps the header chain); queries, answers, stored
            // announcements and pushed blocks went to the serving layer above.
            Message::Headers { .. }
            | Message::TxAnswer { .. }
            | Message::TxQuery { .. }
            | Message::BlockStored { .. }
            | Message::NewBlock { .. } => {
                self.stats.messages_ignored += 1;
            }
        }
    }

    fn on_get_headers(&mut self, from: NodeId, request_id: u64, start_height: u32, max_count: u32) {
        let mut headers = Vec::new();
        let tip_height = self
            .headers
            .as_ref()
            .and_then(|view| view.tip_height())
            .unwrap_or(0);
        if let Some(view) = &self.headers {
            let count = (max_count as usize).min(crate::wire::MAX_HEADERS_PER_MESSAGE);
            for height in start_height..start_height.saturating_add(count as u32) {
                match view.header_at(height) {
                    Some(h) => headers.push(h),
                    None => break,
                }
            }
        }
        self.send(
            from,
            Message::Headers {
                request_id,
                start_height,
                tip_height,
                headers,
            },
        );
    }

    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.request_ids.next_id()
    }

    /// A request id from this node's allocator, for a request a shell sends in this node's
    /// name (the simulator's outside clients): no request of the node itself will ever carry
    /// it, so the shell can tell the answer apart by its id. The node ignores an answer to it.
    pub fn request_id(&mut self) -> u64 {
        self.request_ids.next_id()
    }

    pub(crate) fn push(&mut self, output: Output) {
        if let Output::Storage(command) = &output {
            self.observe_storage_command(command);
        }
        self.outputs.push_back(output);
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        debug_assert_ne!(to, self.id, "a node never sends to itself");
        self.push(Output::Send { to, message });
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.push(Output::Event(event));
    }

    /// Sets timer `id` to `at_ms`, unless it is already set to exactly that.
    pub(crate) fn set_timer(&mut self, id: TimerId, at_ms: u64) {
        if self.timers[id as usize] != Some(at_ms) {
            self.timers[id as usize] = Some(at_ms);
            self.push(Output::SetTimer { id, at_ms });
        }
    }

    /// Sets timer `id` to `at_ms` if that is sooner than its pending deadline.
    pub(crate) fn set_timer_no_later(&mut self, id: TimerId, at_ms: u64) {
        match self.timers[id as usize] {
            Some(pending) if pending <= at_ms => {}
            _ => self.set_timer(id, at_ms),
        }
    }
}

#[cfg(test)]
mod tests;
