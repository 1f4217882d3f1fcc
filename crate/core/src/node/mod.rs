//! The sans-IO node: one state machine that runs the whole cluster protocol (S1–S18).
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
//! Inside, a node is the state its sub-protocols share (`crate::shared`) and one struct per
//! sub-protocol — formation (S1–S4), liveness (S9–S10), repair (S11), replacement (S12–S13) —
//! plus its serving layer (S14–S17). [`Node::handle_input`] routes every input to the
//! sub-protocol it concerns; what one sub-protocol's outcome means for another (a founded or
//! changed view, a member found silent) is decided here, in `membership`.
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
mod announced;
mod holders;
mod membership;
pub mod resume;
mod serving;

pub use crate::base::NodeId;
pub use crate::chain_seam::{HeaderList, HeaderPrefix, HeaderView, SharedHeaders};
pub use crate::config::{Config, ConfigError, HeartbeatMode, ReplacementChoice};
pub use crate::io::{
    Candidate, Event, Input, KvRecord, NodeStats, Output, StorageCommand, StorageResult, TimerId,
    Timers, KV_KEY_MAX, KV_VALUE_MAX,
};
pub use crate::serve::txindex::KvOp;

use std::collections::{HashMap, VecDeque};

use crate::base::rng::Rng;
use crate::base::{mix64, ClusterId, RequestIds};
use crate::formation::{Formation, Reply};
use crate::liveness::{Liveness, StampVerdict};
use crate::placement::Placer;
use crate::repair::replacement::Replacement;
use crate::repair::Repair;
use crate::service::upkeep::Serving;
use crate::service::Serve;
use crate::shared::{Peer, Role, Shared};
use crate::wire::{Message, ShardReport, ViewStamp};

/// A node's random stream: the one generator's stream of its seed and the first word of its
/// id, so that nodes given one seed still draw apart.
pub(crate) fn node_rng(seed: u64, id: NodeId) -> Rng {
    Rng::stream(
        seed,
        u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")),
    )
}

/// The sans-IO Shoal node. See the module docs for the drain contract.
#[derive(Debug)]
pub struct Node {
    pub(crate) shared: Shared,
    started: bool,
    /// Forming a cluster and ending it (S1–S4).
    pub(crate) formation: Formation,
    /// Heartbeats and silent members (S9, S10).
    pub(crate) liveness: Liveness,
    /// Filling and re-replicating the shard (S11).
    pub(crate) repair: Repair,
    /// Taking in outsiders (S12, S13).
    pub(crate) replacement: Replacement,
    /// New blocks a block source announced (S14, S15).
    announced: announced::Announced,
    /// Bytes of the blocks this node holds, as its shell last said ([`Node::set_stored_bytes`]).
    stored_bytes: u64,
}

/// One member of this node's view, as this node sees it: from [`Node::member_details`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDetail {
    pub id: NodeId,
    /// Its member number (the index in the view).
    pub number: usize,
    /// When this node last heard a heartbeat from it (on the shell's clock); `None` for this
    /// node itself and for members it does not watch (S10).
    pub last_heard_ms: Option<u64>,
    /// Whether it said it holds its whole shard under the current view (`ShardHeld`); for
    /// this node, whether it said so itself.
    pub shard_held: bool,
    /// Its latest heartbeat's shard report; for this node, its own figures now.
    pub report: Option<ShardReport>,
}

impl Node {
    /// A new node with identity `id`, configuration `config` and randomness from `seed`.
    pub fn new(config: Config, id: NodeId, seed: u64) -> Result<Node, ConfigError> {
        config.validate()?;
        let placer = Placer::new(config.placement, config.replicas);
        let request_ids = RequestIds::new();
        let serve = Serve::new(config.serve, id, request_ids.clone());
        Ok(Node {
            shared: Shared {
                id,
                rng: node_rng(seed, id),
                now_ms: 0,
                outputs: VecDeque::new(),
                timers: [None; TimerId::COUNT],
                headers: None,
                peers: HashMap::new(),
                candidates: VecDeque::new(),
                role: Role::Ordinary,
                placer,
                scratch: Vec::new(),
                request_ids,
                tie_salt: mix64(seed ^ 0x5eed),
                stats: NodeStats::default(),
                serving: Serving::new(serve),
                banned: Vec::new(),
                observed: Default::default(),
                config,
            },
            started: false,
            stored_bytes: 0,
            formation: Formation::default(),
            liveness: Liveness::default(),
            repair: Repair::default(),
            replacement: Replacement::default(),
            announced: announced::Announced::default(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Counters of what the node did and moved.
    pub fn stats(&self) -> &NodeStats {
        &self.shared.stats
    }

    /// The cluster this node is in, with the view's epoch and member ids (in member-number
    /// order), or `None` for an ordinary node.
    pub fn cluster(&self) -> Option<(ClusterId, u64, Vec<NodeId>)> {
        self.shared.membership().map(|m| {
            (
                m.view.cluster,
                m.view.epoch,
                m.slots.iter().map(|s| s.id).collect(),
            )
        })
    }

    /// The view of this node's cluster, or `None` for an ordinary node. Nothing in it is
    /// secret: a member sends it to any peer whose heartbeat carries an older stamp of the
    /// cluster (the simulator's forged-view attack starts from it).
    pub fn view(&self) -> Option<&crate::wire::View> {
        self.shared.membership().map(|m| &m.view)
    }

    /// The members this member checks with heartbeats (S9: every other member; S10: its
    /// numbered neighbours), in member-number order; empty for an ordinary node.
    pub fn watched_members(&self) -> Vec<NodeId> {
        let Some(m) = self.shared.membership() else {
            return Vec::new();
        };
        let mut numbers =
            Liveness::monitored(self.shared.config.heartbeat_mode, m.number, m.slots.len());
        numbers.sort_unstable();
        numbers.into_iter().map(|n| m.slots[n].id).collect()
    }

    /// Tells the node how many bytes its held blocks take in its store, for the shard report
    /// its heartbeats carry (see [`ShardReport`]). The node does not keep block sizes itself.
    pub fn set_stored_bytes(&mut self, bytes: u64) {
        self.stored_bytes = bytes;
    }

    /// What this member's heartbeats say of its shard.
    fn shard_report(&self) -> ShardReport {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        ShardReport {
            held_blocks: clamp(self.repair.held.len()),
            missing_blocks: clamp(self.repair.missing_count()),
            stored_bytes: self.stored_bytes,
        }
    }

    /// The members of this node's view in member-number order, with what it knows of each:
    /// last heartbeat, whether it confirmed its shard, its latest shard report. Empty for an
    /// ordinary node.
    pub fn member_details(&self) -> Vec<MemberDetail> {
        let Some(m) = self.shared.membership() else {
            return Vec::new();
        };
        let confirmed = self.repair.shard_held_members(&self.shared);
        let heard = self.liveness.members_heard(&self.shared);
        m.slots
            .iter()
            .enumerate()
            .map(|(number, slot)| {
                let (last_heard_ms, report) = heard.get(number).copied().unwrap_or((None, None));
                let own = number == m.number;
                MemberDetail {
                    id: slot.id,
                    number,
                    last_heard_ms,
                    shard_held: number < 64 && confirmed & (1 << number) != 0,
                    report: if own {
                        Some(self.shard_report())
                    } else {
                        report
                    },
                }
            })
            .collect()
    }

    /// The member numbers that the placement of this node's current view gives the block at
    /// `height` (S6–S8), most preferred first; `None` outside a cluster or for a height the
    /// node's header chain does not reach.
    pub fn placement_holders(&mut self, height: u32) -> Option<Vec<usize>> {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else {
            return None;
        };
        let hash = cx.headers.as_ref()?.block_hash_at(height)?;
        let mut out = Vec::with_capacity(cx.config.replicas);
        cx.placer.holders(&hash, height, &m.slots, &mut out);
        Some(out)
    }

    /// This node's member number, if it is a member.
    pub fn member_number(&self) -> Option<usize> {
        self.shared.membership().map(|m| m.number)
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

    /// How this node's cluster spreads over failure domains (`None` outside a cluster).
    pub fn failure_domains(&self) -> Option<crate::cluster::FailureDomains> {
        self.shared
            .membership()
            .map(|m| m.failure_domains(self.shared.config.replicas))
    }

    /// Whether this node must hold the block at `height` under its current view.
    pub fn must_hold(&mut self, height: u32) -> bool {
        self.shared.must_hold(height)
    }

    /// A one-line account of the repair state, for diagnostics (simulator traces, logs).
    pub fn repair_summary(&self) -> String {
        let view = match &self.shared.role {
            Role::Member(m) => format!(
                "member #{} of {} epoch {} since {} ms",
                m.number,
                m.slots.len(),
                m.view.epoch,
                m.view_since_ms,
            ),
            Role::Ordinary => "ordinary".to_string(),
        };
        format!("{view}; {}", self.repair.summary())
    }

    /// The blocks this member keeps as spares under its current view, as (height, holders,
    /// holders that proved they hold it): a spare goes once the last two are equal (issue 16,
    /// [`crate::repair::holding`]). Empty outside a cluster.
    pub fn spare_proofs(&self) -> Vec<(u32, u32, u32)> {
        self.repair.holding.spare_proofs()
    }

    /// A request id from this node's allocator, for a request a shell sends in this node's
    /// name (the simulator's outside clients): no request of the node itself will ever carry
    /// it, so the shell can tell the answer apart by its id. The node ignores an answer to it.
    pub fn request_id(&mut self) -> u64 {
        self.shared.fresh_id()
    }

    /// Takes the next output. Call until `None` after every [`Node::handle_input`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.shared.outputs.pop_front()
    }

    /// Feeds one input at time `now_ms` (milliseconds on the shell's monotonic clock).
    pub fn handle_input(&mut self, now_ms: u64, input: Input) {
        debug_assert!(
            self.shared.outputs.is_empty(),
            "outputs must be drained after every input"
        );
        self.shared.now_ms = self.shared.now_ms.max(now_ms);
        match input {
            Input::Start => self.on_start(),
            Input::TimerFired(id) => self.on_timer(id),
            Input::Message { from, message } => self.on_message(from, message),
            Input::PeerConnected { peer } => self.on_peer_connected(peer),
            Input::PeerDisconnected { peer } => {
                // Also how a shell reports a failed dial: the pending entry is forgotten, and
                // one replacement is dialled (pending dials count against max_peers, so
                // failures never fan out).
                if let Some(p) = self.shared.peers.get_mut(&peer) {
                    if p.connected {
                        p.connected = false;
                        p.ping = None;
                    } else {
                        self.shared.peers.remove(&peer);
                    }
                }
                self.shared.dial_candidates();
            }
            Input::Storage(result) => {
                if let Some(result) = self.on_serve_storage(result) {
                    self.repair.on_storage(&mut self.shared, result);
                }
            }
            Input::CandidatePeers(candidates) => {
                let cx = &mut self.shared;
                for candidate in candidates {
                    if candidate.id == cx.id
                        || cx.peers.get(&candidate.id).is_some_and(|p| p.connected)
                        || cx.candidates.iter().any(|c| c.id == candidate.id)
                    {
                        continue;
                    }
                    if cx.candidates.len() >= cx.config.peer_table_max {
                        break;
                    }
                    cx.candidates.push_back(candidate);
                }
                cx.dial_candidates();
            }
            Input::Headers(view) => {
                self.on_serve_headers(&view);
                self.repair.forget_reorganised(&mut self.shared, &view);
                self.shared.headers = Some(view);
                // Announced blocks now on the chain first: the rescan leaves them to the
                // new-block path.
                self.take_announced();
                self.repair.rescan_shard(&mut self.shared);
            }
            Input::NewBlock { bytes } => {
                if let Some(bytes) = self.on_serve_new_block(bytes) {
                    self.repair.on_new_block(&mut self.shared, bytes);
                }
            }
            Input::TxQuery {
                query_id,
                txid,
                block_hint,
            } => self.on_tx_query(query_id, txid, block_hint),
            Input::RunJob { job, block_hash } => self.on_run_job(job, block_hash),
            Input::SetCapacity { capacity_bytes } => {
                self.shared.config.capacity_bytes = capacity_bytes;
                self.announce_capacity();
            }
        }
        self.act_on_faulty_holders();
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
        let cx = &mut self.shared;
        let request_id = cx.fresh_id();
        self.repair.list_request = Some(request_id);
        cx.push(Output::Storage(StorageCommand::List { request_id }));
        if !cx.config.archive {
            let at = cx.now_ms + cx.rng.jitter(cx.config.formation_interval_ms);
            cx.set_timer(TimerId::Formation, at);
        }
    }

    /// Routes a timer to the sub-protocol it belongs to.
    fn on_timer(&mut self, id: TimerId) {
        let due = self.shared.timers[id as usize];
        match due {
            Some(at) if at <= self.shared.now_ms => self.shared.timers[id as usize] = None,
            // Stale (replaced by a later SetTimer) or early: the pending deadline stands.
            _ => return,
        }
        match id {
            TimerId::Formation => self.on_formation_timer(),
            TimerId::Invitation => self.on_invitation_timer(),
            TimerId::Heartbeat => {
                let report = self.shard_report();
                if let Some(dead) = self.liveness.on_heartbeat_timer(&mut self.shared, report) {
                    if !dead.is_empty() {
                        self.declare_offline(&dead);
                    }
                    self.liveness.arm_silence_check(&mut self.shared);
                }
                self.announce_capacity();
            }
            TimerId::Silence => {
                let dead = self.liveness.silent_members(&self.shared);
                if !dead.is_empty() {
                    self.declare_offline(&dead);
                }
                self.liveness.arm_silence_check(&mut self.shared);
            }
            TimerId::ClusterExpiry => self.on_expiry_timer(),
            TimerId::Repair => self.repair.on_repair_timer(&mut self.shared),
            TimerId::Serve => self.on_serve_timer(),
        }
    }

    fn on_peer_connected(&mut self, peer: NodeId) {
        let cx = &mut self.shared;
        if peer == cx.id {
            return;
        }
        if !cx.peers.contains_key(&peer) && cx.peers.len() >= cx.config.peer_table_max {
            // Forget a disconnected peer to make room; if none, do not track this one.
            let stale = cx
                .peers
                .iter()
                .find(|(_, p)| !p.connected)
                .map(|(id, _)| *id);
            match stale {
                Some(stale) => {
                    cx.peers.remove(&stale);
                }
                None => {
                    // Table full: answer with who we are, but keep no state for this peer.
                    let hello = cx.hello();
                    return cx.send(peer, hello);
                }
            }
        }
        cx.candidates.retain(|c| c.id != peer);
        let entry = cx
            .peers
            .entry(peer)
            .or_insert_with(|| Peer::new(true, false));
        entry.connected = true;
        entry.dialing = false;
        let nonce = cx.rng.next_u64();
        if let Some(p) = cx.peers.get_mut(&peer) {
            p.ping = Some((nonce, cx.now_ms));
        }
        let hello = cx.hello();
        cx.send(peer, hello);
        let stamp = cx.stamp();
        cx.send(
            peer,
            Message::Ping {
                nonce,
                stamp,
                shard: None,
            },
        );
    }

    /// Routes a message to the sub-protocol it belongs to.
    fn on_message(&mut self, from: NodeId, message: Message) {
        if from == self.shared.id {
            self.shared.stats.messages_ignored += 1;
            return;
        }
        if let Message::BlockStored { block_hash, height } = &message {
            // A claim that makes its sender challengeable on the block (issue 16).
            self.repair
                .on_stored_claim(&mut self.shared, from, block_hash, *height);
        }
        if self.on_announced_answer(from, &message) || self.on_serve_message(from, &message) {
            return;
        }
        let cx = &mut self.shared;
        match message {
            Message::Hello {
                record,
                cluster,
                open_slots,
            } => {
                let archive = record.archive;
                let mut room_appeared = false;
                if let Some(p) = cx.peers.get_mut(&from) {
                    room_appeared = cluster.is_some()
                        && open_slots > 0
                        && (p.cluster != cluster || p.open_slots == 0);
                    p.record = Some(record);
                    p.cluster = cluster;
                    p.open_slots = open_slots;
                }
                if archive {
                    self.repair.unpark_all(cx);
                }
                // S13: a node that cannot form a cluster asks one with room as soon as it
                // hears of it, not at its next formation tick (a cluster's coordinator would
                // otherwise often invite it first, S12); at most once per formation interval.
                if room_appeared && self.formation.ask_on_room(cx) {
                    Replacement::ask_to_join(cx);
                }
            }
            Message::Ping {
                nonce,
                stamp,
                shard,
            } => {
                self.liveness.heard_from_with(cx, from, stamp, shard);
                if !Liveness::pings_back(cx, from, stamp) {
                    let mine = cx.stamp();
                    cx.send(from, Message::Pong { nonce, stamp: mine });
                }
                self.compare_stamp(from, stamp);
            }
            Message::Pong { nonce, stamp } => {
                self.liveness.heard_from(cx, from, stamp);
                self.formation.heard_from_other_cluster(cx, stamp);
                if let Some(p) = cx.peers.get_mut(&from) {
                    if let Some((sent_nonce, sent_ms)) = p.ping {
                        if sent_nonce == nonce {
                            p.rtt_ms = Some(cx.now_ms.saturating_sub(sent_ms));
                            p.ping = None;
                        }
                    }
                }
                self.compare_stamp(from, stamp);
            }
            Message::Invite {
                invite_id,
                record,
                cluster,
                ..
            } => self.on_invite(from, invite_id, record, cluster),
            Message::InviteReply {
                invite_id,
                accept,
                address,
                record,
            } => self.on_invite_reply(Reply {
                from,
                invite_id,
                accept,
                address,
                record,
            }),
            Message::InviteWithdrawn { invite_id } => {
                self.formation.on_invite_withdrawn(cx, from, invite_id)
            }
            Message::JoinRequest { request_id, .. } => {
                self.replacement.on_join_request(cx, from, request_id)
            }
            Message::JoinDenied { .. } => Replacement::on_join_denied(cx, from),
            Message::View(view) => self.on_view(from, view),
            Message::GetBlock {
                request_id,
                block_hash,
            } => self.repair.on_get_block(cx, from, request_id, block_hash),
            Message::BlockData { request_id, block } => {
                self.repair.on_block_data(cx, from, request_id, block)
            }
            Message::BlockNotFound { request_id } => {
                self.repair.on_block_not_found(cx, from, request_id)
            }
            Message::GetHeaders {
                request_id,
                start_height,
                max_count,
            } => self.on_get_headers(from, request_id, start_height, max_count),
            Message::BlockAnnounce { header } => self.on_block_announce(from, header),
            Message::ShardHeld { view } => self.repair.on_shard_held(cx, from, view),
            Message::HoldChallenge {
                request_id,
                block_hash,
                nonce,
                offset,
                length,
            } => self.repair.on_hold_challenge(
                cx,
                from,
                request_id,
                block_hash,
                (nonce, offset, length),
            ),
            Message::HoldProof { request_id, proof } => {
                self.repair.on_hold_proof(cx, from, request_id, proof)
            }
            Message::HolderFaulty { cluster, member } => {
                self.on_holder_faulty(from, cluster, member)
            }
            // Headers are the shell's (it keeps the header chain); queries, answers, stored
            // announcements and pushed blocks went to the serving layer above.
            Message::Headers { .. }
            | Message::TxAnswer { .. }
            | Message::TxQuery { .. }
            | Message::BlockStored { .. }
            | Message::NewBlock { .. } => {
                cx.stats.messages_ignored += 1;
            }
        }
    }

    /// A heartbeat's stamp: liveness sends our view to a peer on an older one, and names a
    /// member of our settled view that answered as a non-member, which leaves the view now,
    /// or one that keeps refusing our view, which makes this member leave (see
    /// [`StampVerdict`]).
    fn compare_stamp(&mut self, from: NodeId, stamp: Option<ViewStamp>) {
        match self.liveness.compare_stamp(&mut self.shared, from, stamp) {
            Some(StampVerdict::Gone(gone)) => self.declare_offline(&[gone]),
            Some(StampVerdict::Refused(_)) => self.leave_refused_view(),
            None => {}
        }
    }

    fn on_get_headers(&mut self, from: NodeId, request_id: u64, start_height: u32, max_count: u32) {
        let cx = &mut self.shared;
        let mut headers = Vec::new();
        let tip_height = cx
            .headers
            .as_ref()
            .and_then(|view| view.tip_height())
            .unwrap_or(0);
        if let Some(view) = &cx.headers {
            let count = (max_count as usize).min(crate::wire::MAX_HEADERS_PER_MESSAGE);
            for height in start_height..start_height.saturating_add(count as u32) {
                match view.header_at(height) {
                    Some(h) => headers.push(h),
                    None => break,
                }
            }
        }
        cx.send(
            from,
            Message::Headers {
                request_id,
                start_height,
                tip_height,
                headers,
            },
        );
    }
}

#[cfg(test)]
mod tests;
