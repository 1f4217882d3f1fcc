//! What a node's sub-protocols share: its identity, configuration, clock and randomness, the
//! outputs and timers it queues, its counters and request ids, its peer table, its role
//! (ordinary node, or member with a view), its header view and placement, and the serving
//! layer that every stored or deleted block is reported to.
//!
//! # Overview
//!
//! A [`Node`](crate::node::Node) is this shared state plus one struct per sub-protocol, each
//! with state of its own: formation (S1–S4, [`crate::formation`]), liveness (S9–S10,
//! [`crate::liveness`]), repair (S11, [`crate::repair`]) and replacement (S12–S13,
//! [`crate::repair::replacement`]). A sub-protocol's methods take `&mut Shared` beside their
//! own state; what crosses from one sub-protocol to another (a view change that makes repair
//! rescan, a silent member that liveness wants dropped from the view) goes through the node,
//! which routes every input to them. So the sub-protocols import this module and each other
//! only downwards, and nothing imports the node.

use std::collections::{HashMap, VecDeque};

use crate::base::rng::Rng;
use crate::base::{ClusterId, NodeId, RequestIds};
use crate::chain_seam::SharedHeaders;
use crate::cluster::{Membership, Room};
use crate::config::Config;
use crate::io::{Candidate, Event, NodeStats, Output, TimerId};
use crate::placement::Placer;
use crate::service::upkeep::Serving;
use crate::wire::{Message, NodeRecord, ViewStamp, MAX_VIEW_MEMBERS};

/// What this node knows of one peer.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) connected: bool,
    /// We dialled it and have heard nothing yet (counts against `max_peers`).
    pub(crate) dialing: bool,
    /// From the peer's `Hello`.
    pub(crate) record: Option<NodeRecord>,
    pub(crate) cluster: Option<ClusterId>,
    pub(crate) open_slots: u32,
    /// Last measured round-trip time.
    pub(crate) rtt_ms: Option<u64>,
    /// Our outstanding RTT ping: (nonce, sent at).
    pub(crate) ping: Option<(u64, u64)>,
}

impl Peer {
    /// A peer we know nothing of yet, connected or being dialled.
    pub(crate) fn new(connected: bool, dialing: bool) -> Peer {
        Peer {
            connected,
            dialing,
            record: None,
            cluster: None,
            open_slots: 0,
            rtt_ms: None,
            ping: None,
        }
    }
}

/// Ordinary node or member.
#[derive(Debug)]
pub(crate) enum Role {
    Ordinary,
    Member(Box<Membership>),
}

/// The state a node's sub-protocols share. See the module docs.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) config: Config,
    pub(crate) rng: Rng,
    pub(crate) now_ms: u64,
    pub(crate) outputs: VecDeque<Output>,
    /// Pending deadline per timer, as last set.
    pub(crate) timers: [Option<u64>; TimerId::COUNT],
    pub(crate) headers: Option<SharedHeaders>,
    pub(crate) peers: HashMap<NodeId, Peer>,
    /// Candidates from the directory not yet dialled (bounded by `peer_table_max`).
    pub(crate) candidates: VecDeque<Candidate>,
    pub(crate) role: Role,
    pub(crate) placer: Placer,
    /// Scratch space for placement (no allocation per block once warmed up).
    pub(crate) scratch: Vec<usize>,
    /// Every request this node sends, to peers or to its store, is numbered from here.
    pub(crate) request_ids: RequestIds,
    /// Per-node salt that breaks ties between equally good peers differently on every node.
    pub(crate) tie_salt: u64,
    pub(crate) stats: NodeStats,
    /// Serving: transaction index, queries and the block cache (S16, S17).
    pub(crate) serving: Serving,
    /// Nodes found to be faulty holders, with until when they are kept out (issue 16,
    /// `crate::repair::holding`): at most [`MAX_VIEW_MEMBERS`], the oldest forgotten first.
    pub(crate) banned: Vec<(NodeId, u64)>,
    /// What peers did for this node's fetches: whom to ask first (`crate::observed`).
    pub(crate) observed: crate::observed::Observed,
}

impl Shared {
    /// Whether `id` was found to be a faulty holder and is still kept out.
    pub(crate) fn is_banned(&self, id: &NodeId) -> bool {
        self.banned
            .iter()
            .any(|(banned, until)| banned == id && *until > self.now_ms)
    }

    /// Keeps `id` out for `faulty_ban_ms` from now.
    pub(crate) fn ban(&mut self, id: NodeId) {
        let now = self.now_ms;
        self.banned
            .retain(|(banned, until)| *banned != id && *until > now);
        if self.banned.len() >= MAX_VIEW_MEMBERS {
            self.banned.remove(0);
        }
        let until = now.saturating_add(self.config.faulty_ban_ms);
        self.banned.push((id, until));
    }

    /// A fresh request id.
    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.request_ids.next_id()
    }

    /// Queues an output. A block put or deleted is reported to the serving layer at once, so
    /// that the transaction index follows the shard.
    pub(crate) fn push(&mut self, output: Output) {
        if let Output::Storage(command) = &output {
            self.serving.observe(command);
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

    /// The membership, if this node is a member.
    pub(crate) fn membership(&self) -> Option<&Membership> {
        match &self.role {
            Role::Member(m) => Some(m),
            Role::Ordinary => None,
        }
    }

    /// What this node says about itself in invitations and hellos.
    pub(crate) fn record(&self) -> NodeRecord {
        NodeRecord {
            blocks_served: self.stats.blocks_served,
            capacity_bytes: self.config.capacity_bytes,
            segment: self.config.segment,
            device: self.device(),
            archive: self.config.archive,
        }
    }

    /// This node's failure domain: [`Config::device`](crate::config::Config::device), or a
    /// device of its own derived from its id.
    pub(crate) fn device(&self) -> u64 {
        crate::placement::device_of(&self.id, self.config.device)
    }

    /// Our view's stamp, if we are a member (carried by every ping and pong, S9–S10).
    pub(crate) fn stamp(&self) -> Option<ViewStamp> {
        self.membership().map(|m| ViewStamp {
            cluster: m.view.cluster,
            epoch: m.view.epoch,
            members: m.view.members.len() as u32,
            digest: m.digest,
        })
    }

    pub(crate) fn hello(&self) -> Message {
        let (cluster, open_slots) = match &self.role {
            Role::Member(m) => (
                Some(m.view.cluster),
                self.config
                    .cluster_size_max
                    .saturating_sub(m.view.members.len()) as u32,
            ),
            Role::Ordinary => (None, 0),
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

    /// A block source's announcement of the block at `height` (S14, S15): its header to every
    /// connected peer that greeted us as a light node (not an archive).
    pub(crate) fn announce_block(&mut self, height: u32) {
        let Some(header) = self.headers.as_ref().and_then(|h| h.header_at(height)) else {
            return;
        };
        let mut light: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.record.as_ref().is_some_and(|r| !r.archive))
            .map(|(id, _)| *id)
            .collect();
        light.sort();
        self.stats.blocks_announced += 1;
        for peer in light {
            self.send(peer, Message::BlockAnnounce { header });
        }
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
    /// cluster, when what they read from it changed ([`Room`]): ordinary peers choose by it
    /// which cluster to ask to join (S13), and members of other clusters judge by it whether a
    /// cluster with P members is in reach before an undersized cluster dissolves. Our own
    /// members know the view itself. A change that leaves both readings as they were tells
    /// nobody anything: at 10,000 nodes those hellos were a sixth of all messages.
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
    fn room(&self) -> Option<Room> {
        let members = self.membership()?.view.members.len();
        Some(Room {
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
        let ordinary = matches!(self.role, Role::Ordinary);
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
            self.peers.insert(candidate.id, Peer::new(false, true));
            self.push(Output::Connect {
                peer: candidate.id,
                address: candidate.address,
            });
        }
    }

    /// Whether this node must hold the block at `height` under its current view (S6–S8).
    pub(crate) fn must_hold(&mut self, height: u32) -> bool {
        let Role::Member(m) = &self.role else {
            return false;
        };
        let Some(hash) = self.headers.as_ref().and_then(|h| h.block_hash_at(height)) else {
            return false;
        };
        self.placer
            .is_holder(&hash, height, &m.slots, m.number, &mut self.scratch)
    }
}
