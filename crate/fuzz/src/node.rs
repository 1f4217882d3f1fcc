//! A core [`Node`] driven by arbitrary inputs: messages from arbitrary peers (raw bytes through
//! the wire decoder, and messages built to get past the first checks: answers to what the node
//! asked, invitations, founding and changed views), connections coming and going, timers firing
//! on time, early or late, and storage that answers faithfully, fails, loses or corrupts.
//!
//! After every input the outputs are drained (the drain contract) and checked against what the
//! core promises (`crate/core/src/node`, and the simulator's invariants, `crate/sim/src/
//! invariants.rs`):
//!
//! - no panic, and at most [`MAX_OUTPUTS_PER_INPUT`] outputs per input;
//! - every message it sends encodes within the wire's limits, and none goes to itself;
//! - it stores only verified blocks: every `Put` is byte for byte the true chain's block of that
//!   hash and height (`NoUnverifiedStore`), and every `BlockStored` event names one;
//! - a job runs on the true block (`JobOnTrueBlock`) and a confirmed query's proof holds on the
//!   true chain (`NoForgedAnswerAccepted`): the only proofs it can accept are true ones, however
//!   its peers lie;
//! - a member's view lists it, within `cluster_size_max`; fetches in flight stay within
//!   `repair_parallel_max`; storage commands do not pile up;
//! - its memory stays bounded: after every input, what it and the harness hold (counted from
//!   when the node was made) is under [`MAX_LIVE_BYTES`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use shoal_core::chain::{Block, BlockHash, Hash256, MerkleProof, Txid};
use shoal_core::chain_seam::{synthetic_chain, HeaderList, HeaderPrefix, HeaderView};
use shoal_core::cluster::cluster_id;
use shoal_core::node::{
    Candidate, Config, Event, HeartbeatMode, Input, KvOp, Node, NodeId, Output, StorageCommand,
    StorageResult, TimerId, Timers,
};
use shoal_core::placement::PlacementRule;
use shoal_core::serve::newblock::StorageMode;
use shoal_core::serve::query::QueryResult;
use shoal_core::wire::{
    self, ClusterGenesis, MemberInfo, Message, NodeRecord, ShardReport, TxAnswerBody, View,
    ViewStamp,
};

use crate::Bytes;

/// Blocks of the true chain (heights 0 to 23).
const CHAIN_BLOCKS: u32 = 24;
/// Inputs one run feeds at most.
const MAX_STEPS: usize = 400;
/// Outputs one input may cause at most.
pub const MAX_OUTPUTS_PER_INPUT: usize = 2_048;
/// What the node and the harness may still hold after a run.
pub const MAX_LIVE_BYTES: usize = 16 * 1024 * 1024;
/// The peers the node hears from (ids from seeds 1 to 8); any other id is a stranger.
const PEERS: u64 = 8;
/// Messages the node sent that the harness keeps, to answer.
const SENT_KEPT: usize = 64;

/// The true chain: its header list and raw blocks, made once.
struct World {
    headers: Arc<HeaderList>,
    blocks: Vec<Vec<u8>>,
    decoded: Vec<Block>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let (headers, blocks) = synthetic_chain(CHAIN_BLOCKS, 40);
        let decoded = blocks
            .iter()
            .map(|b| Block::decode(b).expect("the true chain decodes"))
            .collect();
        World {
            headers: Arc::new(headers),
            blocks,
            decoded,
        }
    })
}

/// See the [module documentation](self).
pub fn node(data: &[u8]) {
    let world = world();
    let counting = crate::alloc::installed();
    let mut b = Bytes::new(data);
    let config = config(&mut b);
    let seed = b.u64();
    let mut h = Harness::new(config, seed, world);
    h.live = counting.then(|| stats_alloc::Region::new(&crate::alloc::COUNTING));
    h.step(Input::Start);
    let tip = b.below(CHAIN_BLOCKS as usize + 1) as u32;
    h.set_headers(tip);
    for _ in 0..MAX_STEPS {
        if b.is_empty() {
            break;
        }
        h.op(&mut b);
    }
    // Whatever is still pending finishes, and a last round of timers fires.
    while let Some(command) = h.pending.pop_front() {
        let result = h.faithful(&command);
        h.step(Input::Storage(result));
    }
    h.advance(h.config.offline_after_ms * 2);
}

/// A configuration that validates, with short intervals so that timers matter, small tables so
/// that their bounds are reached, and the input's choice of roles and rules.
fn config(b: &mut Bytes<'_>) -> Config {
    let mut config = Config::for_cluster(2 + b.below(5), 1);
    config.replicas = 1 + b.below(config.form_with_accepts + 1);
    config.invite_after_peers = 1 + b.below(3);
    config.archive = b.u8() % 8 == 0;
    config.resume_membership = b.bool();
    config.heartbeat_mode = if b.bool() {
        HeartbeatMode::All
    } else {
        HeartbeatMode::Neighbours { per_side: 1 }
    };
    config.placement = match b.u8() % 4 {
        0 => PlacementRule::HashMod { offset: 0 },
        1 => PlacementRule::Even { range_blocks: 4 },
        2 => PlacementRule::Segment,
        _ => PlacementRule::Rendezvous,
    };
    config.serve.new_blocks.mode = if b.bool() {
        StorageMode::Routed
    } else {
        StorageMode::SelfSelected
    };
    config.serve.new_blocks.announce = b.bool();
    config.max_peers = 1 + b.below(6);
    config.peer_table_max = 1 + b.below(12);
    config.formation_interval_ms = 2_000;
    config.invite_timeout_ms = 500;
    config.invite_collect_ms = 100;
    config.accept_timeout_ms = 1_000;
    config.heartbeat_interval_ms = 1_000;
    config.offline_after_ms = 4_000;
    config.repair_interval_ms = 200;
    config.repair_request_timeout_ms = 1_000;
    config.repair_retry_ms = 2_000;
    config.repair_parallel_max = 1 + b.below(4);
    config.repair_queue_max = 1 + b.below(64);
    config.cluster_ttl_ms = 60_000;
    config.undersized_leave_after_ms = Some(10_000);
    config.challenge_unclaimed_after_ms = Some(5_000);
    config.hold_audit_interval_ms = Some(3_000);
    config.storage_audit_interval_ms = Some(8_000);
    config.serve.cache.max_blocks = 1 + b.below(8);
    config.serve.cache.max_bytes = 64 * 1024;
    config.address = "/sim/0".to_owned();
    config
        .validate()
        .expect("the harness makes valid configurations");
    config
}

struct Harness {
    node: Node,
    me: NodeId,
    config: Config,
    world: &'static World,
    now_ms: u64,
    timers: Timers,
    /// Storage commands not answered yet, oldest first.
    pending: VecDeque<StorageCommand>,
    /// What the store holds: the bytes of every acknowledged put.
    store: HashMap<BlockHash, Vec<u8>>,
    /// The key/value records the node wrote.
    kv: HashMap<Vec<u8>, Vec<u8>>,
    /// The latest messages the node sent, to answer: (to, message).
    sent: VecDeque<(NodeId, Message)>,
    /// The node's header tip, as last given.
    tip: u32,
    next_query: u64,
    /// What was allocated since the node was made, to bound what it and the harness hold
    /// after every input (`None` without the counting allocator).
    live: Option<stats_alloc::Region<'static, std::alloc::System>>,
}

impl Harness {
    fn new(config: Config, seed: u64, world: &'static World) -> Harness {
        let me = NodeId::from_seed(0);
        Harness {
            node: Node::new(config.clone(), me, seed).expect("a valid configuration"),
            me,
            config,
            world,
            now_ms: 0,
            timers: Timers::default(),
            pending: VecDeque::new(),
            store: HashMap::new(),
            kv: HashMap::new(),
            sent: VecDeque::new(),
            tip: 0,
            next_query: 0,
            live: None,
        }
    }

    fn peer(b: &mut Bytes<'_>) -> NodeId {
        match b.u8() {
            // A stranger: fills the node's tables.
            n @ 0..=31 => NodeId::from_seed(1000 + u64::from(n)),
            n => NodeId::from_seed(1 + u64::from(n) % PEERS),
        }
    }

    fn set_headers(&mut self, tip: u32) {
        self.tip = tip;
        let view = Arc::new(HeaderPrefix::new(self.world.headers.clone(), tip + 1));
        self.step(Input::Headers(view));
    }

    /// Moves the clock on by `ms` and fires every timer due.
    fn advance(&mut self, ms: u64) {
        self.now_ms = (self.now_ms + ms).min(1 << 48);
        for id in self.timers.take_due(self.now_ms) {
            self.step(Input::TimerFired(id));
        }
    }

    /// One input chosen by the fuzzer.
    fn op(&mut self, b: &mut Bytes<'_>) {
        match b.u8() % 20 {
            0 => {
                // Raw bytes through the wire decoder, as the shells do.
                let from = Self::peer(b);
                if let Ok(message) = wire::decode(b.slice(255)) {
                    self.step(Input::Message { from, message });
                }
            }
            1 | 2 => self.answer(b),
            3 => {
                let message = self.made_message(b);
                let from = Self::peer(b);
                self.step(Input::Message { from, message });
            }
            4 => {
                let peer = Self::peer(b);
                self.step(Input::PeerConnected { peer })
            }
            5 => {
                let peer = Self::peer(b);
                self.step(Input::PeerDisconnected { peer })
            }
            6 | 7 => {
                let ms = u64::from(b.u16()) * if b.bool() { 1 } else { 64 };
                self.advance(ms);
            }
            8 => {
                // A timer fired whenever the shell pleases: early, late or twice.
                let id = TimerId::ALL[b.below(TimerId::COUNT)];
                self.step(Input::TimerFired(id));
            }
            9 | 10 => self.storage(b),
            11 => {
                let candidates = (0..b.below(12))
                    .map(|_| {
                        let id = Self::peer(b);
                        Candidate {
                            id,
                            address: format!("/sim/{}", b.u8()),
                        }
                    })
                    .collect();
                self.step(Input::CandidatePeers(candidates));
            }
            12 => {
                let bytes = self.block_bytes(b);
                self.step(Input::NewBlock { bytes });
            }
            13 => {
                let (txid, hint) = self.txid(b);
                self.next_query += 1;
                self.step(Input::TxQuery {
                    query_id: self.next_query,
                    txid,
                    block_hint: hint,
                });
            }
            14 => {
                let block_hash = self.block_hash(b);
                self.step(Input::RunJob {
                    job: u64::from(b.u8()),
                    block_hash,
                });
            }
            15 => {
                let tip = b.below(CHAIN_BLOCKS as usize) as u32;
                self.set_headers(tip);
            }
            16 => {
                // An ordinary peer arrives: connects, says hello, answers the node's ping.
                let peer = Self::peer(b);
                self.step(Input::PeerConnected { peer });
                let record = NodeRecord {
                    archive: false,
                    ..Self::record(b)
                };
                self.step(Input::Message {
                    from: peer,
                    message: Message::Hello {
                        record,
                        cluster: None,
                        open_slots: 0,
                    },
                });
                let ping = self.sent.iter().rev().find_map(|(to, m)| match m {
                    Message::Ping { nonce, .. } if *to == peer => Some(*nonce),
                    _ => None,
                });
                if let Some(nonce) = ping {
                    self.step(Input::Message {
                        from: peer,
                        message: Message::Pong { nonce, stamp: None },
                    });
                }
            }
            17 | 18 => {
                // The store catches up: every pending command answered as a working store does.
                while let Some(command) = self.pending.pop_front() {
                    let result = self.faithful(&command);
                    self.step(Input::Storage(result));
                }
            }
            _ => {
                // An invitation to form a cluster, and time for the node to choose.
                let from = NodeId::from_seed(1 + b.below(PEERS as usize) as u64);
                let message = Message::Invite {
                    invite_id: u64::from(b.u8()),
                    address: format!("/sim/{}", from.0[0]),
                    record: Self::record(b),
                    cluster: None,
                };
                self.step(Input::Message { from, message });
                self.advance(self.config.invite_collect_ms + 1);
            }
        }
    }

    /// A block hash the node may know: one of the true chain's, or any.
    fn block_hash(&self, b: &mut Bytes<'_>) -> BlockHash {
        match b.below(CHAIN_BLOCKS as usize + 1) {
            n if n < CHAIN_BLOCKS as usize => self
                .world
                .headers
                .block_hash_at(n as u32)
                .expect("a height"),
            _ => BlockHash([b.u8(); 32]),
        }
    }

    /// Bytes offered as a block: a true block, a damaged one, or any bytes.
    fn block_bytes(&self, b: &mut Bytes<'_>) -> Vec<u8> {
        let height = b.below(CHAIN_BLOCKS as usize);
        let mut bytes = self.world.blocks[height].clone();
        match b.u8() % 4 {
            0 => {
                let at = b.below(bytes.len());
                bytes[at] ^= b.u8() | 1;
            }
            1 => return b.slice(255).to_vec(),
            _ => {}
        }
        bytes
    }

    fn txid(&self, b: &mut Bytes<'_>) -> (Txid, Option<BlockHash>) {
        let height = b.below(CHAIN_BLOCKS as usize + 1);
        let hint = b.bool().then(|| self.block_hash(b));
        match self.world.decoded.get(height) {
            Some(block) => (block.txdata[0].txid(), hint),
            None => (Txid([b.u8(); 32]), hint),
        }
    }

    fn record(b: &mut Bytes<'_>) -> NodeRecord {
        NodeRecord {
            blocks_served: u64::from(b.u16()),
            capacity_bytes: 1 << 30,
            segment: u32::from(b.u8() % 3),
            device: u64::from(b.u8() % 4),
            archive: b.u8() % 8 == 0,
        }
    }

    fn member(id: NodeId) -> MemberInfo {
        MemberInfo {
            id,
            address: format!("/sim/{}", id.0[0]),
            segment: u32::from(id.0[1] % 3),
            capacity_bytes: 1 << 30,
            device: u64::from(id.0[2] % 4),
        }
    }

    /// A view of the node's cluster changed the way the input says (members added or dropped,
    /// the epoch moved), or a founding view of a new cluster that lists the node.
    fn view(&self, b: &mut Bytes<'_>, proposer: Option<NodeId>) -> View {
        let current = self.node.view().cloned();
        match current {
            Some(mut view) if b.bool() => {
                for _ in 0..b.below(3) {
                    let id = Self::peer(b);
                    if b.bool() {
                        view.members.retain(|m| m.id != id);
                    } else if !view.members.iter().any(|m| m.id == id) {
                        view.members.push(Self::member(id));
                    }
                }
                if b.u8() % 4 == 0 {
                    view.members.retain(|m| m.id != self.me);
                }
                view.members.sort_by_key(|m| m.id);
                view.epoch = view.epoch.saturating_add(b.below(20) as u64);
                view.expires_in_ms = u64::from(b.u32());
                view
            }
            _ => {
                let proposer = proposer
                    .unwrap_or_else(|| NodeId::from_seed(1 + b.below(PEERS as usize) as u64));
                let mut founders = vec![proposer, self.me];
                for _ in 0..b.below(4) {
                    founders.push(Self::peer(b));
                }
                founders.sort();
                founders.dedup();
                let genesis = ClusterGenesis {
                    proposer,
                    generation: u64::from(b.u8() % 2),
                    founders,
                };
                View {
                    cluster: cluster_id(&genesis),
                    members: genesis
                        .founders
                        .iter()
                        .map(|id| Self::member(*id))
                        .collect(),
                    genesis,
                    epoch: b.below(3) as u64,
                    expires_in_ms: 60_000,
                }
            }
        }
    }

    /// A message built to get past the node's first checks.
    fn made_message(&mut self, b: &mut Bytes<'_>) -> Message {
        let stamp = |b: &mut Bytes<'_>, node: &Node| -> Option<ViewStamp> {
            let view = node.view()?;
            b.bool().then(|| ViewStamp {
                cluster: view.cluster,
                epoch: view.epoch.saturating_add(b.below(3) as u64),
                members: view.members.len() as u32,
                digest: if b.bool() {
                    shoal_core::cluster::view_digest(&view.members)
                } else {
                    b.u64()
                },
            })
        };
        match b.u8() % 12 {
            0 => Message::Hello {
                record: Self::record(b),
                cluster: self.node.view().map(|v| v.cluster).filter(|_| b.bool()),
                open_slots: u32::from(b.u8() % 4),
            },
            1 => Message::Invite {
                invite_id: u64::from(b.u8()),
                address: format!("/sim/{}", b.u8()),
                record: Self::record(b),
                cluster: self.node.view().map(|v| v.cluster).filter(|_| b.bool()),
            },
            2 | 3 => Message::View(self.view(b, None)),
            4 => Message::Ping {
                nonce: u64::from(b.u8()),
                stamp: stamp(b, &self.node),
                shard: b.bool().then(|| ShardReport {
                    held_blocks: b.u32(),
                    missing_blocks: b.u32(),
                    stored_bytes: b.u64(),
                }),
            },
            5 => Message::JoinRequest {
                request_id: u64::from(b.u8()),
                address: format!("/sim/{}", b.u8()),
                record: Self::record(b),
            },
            6 => {
                let height = b.below(CHAIN_BLOCKS as usize) as u32;
                Message::BlockAnnounce {
                    header: self.world.headers.header_at(height).expect("a height"),
                }
            }
            7 => Message::NewBlock {
                block: self.block_bytes(b),
            },
            8 => {
                let height = b.below(CHAIN_BLOCKS as usize) as u32;
                Message::BlockStored {
                    block_hash: self.world.headers.block_hash_at(height).expect("a height"),
                    height: if b.bool() { height } else { b.u32() },
                }
            }
            9 => Message::GetBlock {
                request_id: u64::from(b.u16()),
                block_hash: self.block_hash(b),
            },
            10 => {
                let (txid, block_hint) = self.txid(b);
                Message::TxQuery {
                    request_id: u64::from(b.u16()),
                    txid: Hash256(txid.0),
                    block_hint,
                }
            }
            _ => match stamp(b, &self.node) {
                Some(view) => Message::ShardHeld { view },
                None => Message::GetHeaders {
                    request_id: u64::from(b.u8()),
                    start_height: b.u32() % 32,
                    max_count: b.u32(),
                },
            },
        }
    }

    /// An answer to a message the node sent, from the peer it went to: true, refused or
    /// forged, as the input says.
    fn answer(&mut self, b: &mut Bytes<'_>) {
        if self.sent.is_empty() {
            return;
        }
        let index = self.sent.len() - 1 - b.below(self.sent.len());
        let (to, message) = self.sent[index].clone();
        let honest = b.u8() % 4 != 0;
        let reply = match message {
            Message::GetBlock {
                request_id,
                block_hash,
            } => match self.world.headers.height_of(&block_hash) {
                Some(height) if honest => Message::BlockData {
                    request_id,
                    block: self.world.blocks[height as usize].clone(),
                },
                _ if b.bool() => Message::BlockNotFound { request_id },
                _ => Message::BlockData {
                    request_id,
                    block: self.block_bytes(b),
                },
            },
            Message::Ping { nonce, .. } => Message::Pong {
                nonce: if honest { nonce } else { b.u64() },
                stamp: self.node.view().filter(|_| b.bool()).map(|view| ViewStamp {
                    cluster: view.cluster,
                    epoch: view.epoch,
                    members: view.members.len() as u32,
                    digest: shoal_core::cluster::view_digest(&view.members),
                }),
            },
            Message::Invite {
                invite_id, record, ..
            } => Message::InviteReply {
                invite_id: if honest { invite_id } else { b.u64() },
                accept: b.u8() % 4 != 0,
                address: format!("/sim/{}", to.0[0]),
                record,
            },
            // The inviter founds the cluster (or withdraws).
            Message::InviteReply { invite_id, .. } => match b.u8() % 3 {
                0 => Message::InviteWithdrawn { invite_id },
                _ => Message::View(self.view(b, Some(to))),
            },
            Message::JoinRequest { request_id, .. } => match b.bool() {
                true => Message::JoinDenied { request_id },
                false => Message::View(self.view(b, Some(to))),
            },
            Message::TxQuery {
                request_id, txid, ..
            } => Message::TxAnswer {
                request_id,
                answer: self.tx_answer(b, Txid(txid.0), honest),
            },
            Message::GetHeaders {
                request_id,
                start_height,
                ..
            } => Message::Headers {
                request_id,
                start_height,
                tip_height: CHAIN_BLOCKS - 1,
                headers: Vec::new(),
            },
            Message::View(view) => {
                let mut view = view;
                view.epoch = view.epoch.saturating_add(b.below(3) as u64);
                Message::View(view)
            }
            Message::ShardHeld { view } => Message::ShardHeld { view },
            Message::Hello { .. } => Message::Hello {
                record: Self::record(b),
                cluster: None,
                open_slots: 0,
            },
            _ => return,
        };
        self.step(Input::Message {
            from: to,
            message: reply,
        });
    }

    /// An answer to a query for `txid`: a true proof, one for another transaction or
    /// position, a damaged one, or no answer at all.
    fn tx_answer(&self, b: &mut Bytes<'_>, txid: Txid, honest: bool) -> TxAnswerBody {
        let found = self
            .world
            .decoded
            .iter()
            .enumerate()
            .find(|(_, block)| block.txdata[0].txid() == txid);
        let (height, block) = match found {
            Some(found) if honest || b.bool() => found,
            _ if b.bool() => return TxAnswerBody::NotFound,
            _ => {
                let height = b.below(CHAIN_BLOCKS as usize);
                (height, &self.world.decoded[height])
            }
        };
        let txids = block.txids();
        let proof = MerkleProof::build(block.block_hash(), height as u32, &txids, 0)
            .expect("a proof of the coinbase");
        let mut tx = block.txdata[0].encode();
        let mut body = TxAnswerBody::found(proof, tx.clone());
        if !honest {
            if let TxAnswerBody::Found { branch, pos, .. } = &mut body {
                match b.u8() % 3 {
                    0 => branch.push(Hash256([b.u8(); 32])),
                    1 => *pos = b.u32(),
                    _ => {
                        let at = b.below(tx.len());
                        tx[at] ^= 1;
                        body = TxAnswerBody::Found {
                            block_hash: block.block_hash(),
                            height: height as u32,
                            pos: 0,
                            branch: Vec::new(),
                            header: None,
                            tx,
                        };
                    }
                }
            }
        }
        body
    }

    /// Answers a pending storage command: faithfully, failed, lost or corrupted.
    fn storage(&mut self, b: &mut Bytes<'_>) {
        if self.pending.is_empty() {
            return;
        }
        let index = b.below(self.pending.len());
        let command = self
            .pending
            .remove(index)
            .expect("an index below the length");
        let result = match (b.u8() % 8, &command) {
            (0, StorageCommand::Put { request_id, .. }) => StorageResult::Put {
                request_id: *request_id,
                ok: false,
            },
            (0, StorageCommand::List { request_id }) => StorageResult::ListFailed {
                request_id: *request_id,
            },
            (0, StorageCommand::WriteKv { request_id, .. }) => StorageResult::KvWritten {
                request_id: *request_id,
                ok: false,
            },
            (1, StorageCommand::Get { request_id, .. }) => StorageResult::Got {
                request_id: *request_id,
                bytes: Some(self.block_bytes(b)),
            },
            (1, StorageCommand::List { request_id }) => StorageResult::Listed {
                request_id: *request_id,
                // A listing that claims blocks the store never held.
                blocks: (0..b.below(6)).map(|_| self.block_hash(b)).collect(),
            },
            (1, StorageCommand::ListKv { request_id }) => {
                let mut records: Vec<(Vec<u8>, Vec<u8>)> = self
                    .kv
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                records.sort();
                for _ in 0..b.below(4) {
                    let mut key = if b.bool() {
                        shoal_core::node::resume::MEMBERSHIP_KEY.to_vec()
                    } else {
                        shoal_core::serve::txindex::record_key(&self.block_hash(b))
                    };
                    if b.u8() % 4 == 0 {
                        key = b.slice(80).to_vec();
                    }
                    records.push((key, b.slice(1024).to_vec()));
                }
                StorageResult::KvListed {
                    request_id: *request_id,
                    records,
                }
            }
            (2, StorageCommand::Get { request_id, .. }) => StorageResult::Got {
                request_id: *request_id,
                bytes: None,
            },
            _ => self.faithful(&command),
        };
        self.step(Input::Storage(result));
    }

    /// What a store that works answers.
    fn faithful(&mut self, command: &StorageCommand) -> StorageResult {
        match command {
            StorageCommand::Put {
                request_id,
                block_hash,
                bytes,
                ..
            } => {
                self.store.insert(*block_hash, bytes.clone());
                StorageResult::Put {
                    request_id: *request_id,
                    ok: true,
                }
            }
            StorageCommand::Get {
                request_id,
                block_hash,
            } => StorageResult::Got {
                request_id: *request_id,
                bytes: self.store.get(block_hash).cloned(),
            },
            StorageCommand::Delete {
                request_id,
                block_hash,
            } => {
                self.store.remove(block_hash);
                StorageResult::Deleted {
                    request_id: *request_id,
                }
            }
            StorageCommand::List { request_id } => {
                let mut blocks: Vec<BlockHash> = self.store.keys().copied().collect();
                blocks.sort();
                StorageResult::Listed {
                    request_id: *request_id,
                    blocks,
                }
            }
            StorageCommand::WriteKv { request_id, ops } => {
                for op in ops {
                    match op {
                        KvOp::Put { key, value } => {
                            self.kv.insert(key.clone(), value.clone());
                        }
                        KvOp::Delete { key } => {
                            self.kv.remove(key);
                        }
                    }
                }
                StorageResult::KvWritten {
                    request_id: *request_id,
                    ok: true,
                }
            }
            StorageCommand::ListKv { request_id } => {
                let mut records: Vec<(Vec<u8>, Vec<u8>)> = self
                    .kv
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                records.sort();
                StorageResult::KvListed {
                    request_id: *request_id,
                    records,
                }
            }
        }
    }

    /// Feeds one input, drains every output and checks it.
    fn step(&mut self, input: Input) {
        self.node.handle_input(self.now_ms, input);
        let mut outputs = 0;
        while let Some(output) = self.node.poll_output() {
            outputs += 1;
            assert!(
                outputs <= MAX_OUTPUTS_PER_INPUT,
                "more than {MAX_OUTPUTS_PER_INPUT} outputs for one input"
            );
            self.check_output(output);
        }
        self.check_state();
    }

    fn check_output(&mut self, output: Output) {
        let world = self.world;
        match output {
            Output::Send { to, message } => {
                assert_ne!(to, self.me, "a message to itself");
                let bytes = wire::encode(&message).unwrap_or_else(|e| {
                    panic!("the node sent a message that does not encode: {e}")
                });
                assert_eq!(wire::decode(&bytes).as_ref(), Ok(&message));
                if self.sent.len() == SENT_KEPT {
                    self.sent.pop_front();
                }
                self.sent.push_back((to, message));
            }
            Output::Connect { peer, address } => {
                assert_ne!(peer, self.me, "a dial to itself");
                assert!(address.len() <= wire::MAX_ADDRESS_BYTES);
            }
            Output::SetTimer { id, at_ms } => self.timers.set(id, at_ms),
            Output::Storage(command) => {
                if let StorageCommand::Put {
                    block_hash,
                    height,
                    bytes,
                    ..
                } = &command
                {
                    assert_eq!(
                        world.headers.block_hash_at(*height),
                        Some(*block_hash),
                        "a put of a block that is not the chain's at {height}"
                    );
                    assert_eq!(
                        Some(bytes),
                        world.blocks.get(*height as usize),
                        "a put of bytes that are not the block's"
                    );
                }
                if let StorageCommand::WriteKv { ops, .. } = &command {
                    for op in ops {
                        if let KvOp::Put { key, value } = op {
                            assert!(key.len() <= shoal_core::node::KV_KEY_MAX);
                            assert!(value.len() <= shoal_core::node::KV_VALUE_MAX);
                        }
                    }
                }
                self.pending.push_back(command);
            }
            Output::Event(event) => match event {
                Event::BlockStored { block_hash, height } => assert_eq!(
                    world.headers.block_hash_at(height),
                    Some(block_hash),
                    "stored a block that is not the chain's"
                ),
                Event::JobReady { block_hash, .. } => {
                    let height = world
                        .headers
                        .height_of(&block_hash)
                        .expect("a job on a block of the chain");
                    let encoded = self.node.with_block(&block_hash, Block::encode);
                    if let Some(encoded) = encoded {
                        assert_eq!(
                            encoded, world.blocks[height as usize],
                            "a job on a false block"
                        );
                    }
                }
                Event::TxQueryDone {
                    txid,
                    result:
                        QueryResult::Confirmed {
                            block_hash,
                            height,
                            pos,
                            transaction,
                            ..
                        },
                    ..
                } => {
                    let block = world
                        .decoded
                        .get(height as usize)
                        .expect("a proof at a height of the chain");
                    assert_eq!(block.block_hash(), block_hash, "a proof on a false block");
                    let tx = block.txdata.get(pos as usize).expect("a true position");
                    assert_eq!(tx.txid(), txid, "a proof of another transaction");
                    assert_eq!(tx.encode(), transaction);
                }
                _ => {}
            },
        }
    }

    fn check_state(&mut self) {
        let config = &self.config;
        if let Some((_, _, members)) = self.node.cluster() {
            assert!(members.contains(&self.me), "a member's view lists it");
            assert!(
                members.len() <= config.cluster_size_max,
                "a view within cluster_size_max"
            );
            let number = self.node.member_number().expect("a member has a number");
            assert_eq!(members[number], self.me);
        }
        let stats = self.node.stats();
        assert!(stats.fetches_in_flight_peak <= config.repair_parallel_max as u64);
        assert!(self.node.held_count() <= CHAIN_BLOCKS as usize);
        assert!(self.pending.len() <= 100_000, "storage commands pile up");
        if let Some(region) = &self.live {
            let stats = region.change();
            let live = (stats.bytes_allocated as i128) - (stats.bytes_deallocated as i128)
                + stats.bytes_reallocated as i128;
            assert!(
                live <= MAX_LIVE_BYTES as i128,
                "the node and the harness hold {live} bytes after an input"
            );
        }
    }
}
