//! What one peer or one address may ask of the relay: request rates, answers in flight, and
//! bans (issue 16, holes 2–4).
//!
//! # Overview
//!
//! [`super::limits`] bounds the connections one address may hold; the [`Guard`] bounds what
//! comes over them. Every request on Shoal's message, probe and directory protocols passes
//! [`Guard::admit`] on the swarm task before anything else is done with it:
//!
//! - **A rate per address.** Each remote address has a token bucket
//!   ([`GuardConfig::requests_per_ip`]): fresh keys from one machine share it. An address is
//!   an [`AddressKey`] here as everywhere: an IPv4 address or an IPv6 /64, so a machine that
//!   takes a new IPv6 address for each key still shares one bucket, one share and one ban.
//!   The core keeps a rate per peer beside it (`ARCHIVE_PEER_QUERY_RATE` for the archive's
//!   queries).
//! - **Answers in flight.** An answer is memory until the peer has read it, and a peer that
//!   does not read holds it until the request times out. The guard follows every admitted
//!   request from its arrival until libp2p says its response was sent or failed: a peer may
//!   have at most [`GuardConfig::blocks_per_peer`] block requests open (an address
//!   [`GuardConfig::blocks_per_ip`]), and no request is taken from a peer, an address or
//!   anyone while the bytes of answers not yet read pass [`GuardConfig::unsent_per_peer`],
//!   [`GuardConfig::unsent_per_ip`] or [`GuardConfig::unsent_total`].
//! - **Strikes and bans.** A request refused for what the peer itself holds (answers it does
//!   not read, an id it reuses), a request that does not decode and a peer the node scores for
//!   misbehaving (a block or proof that failed its check) add points to the peer (a refusal
//!   for its address's rate or share adds none: that may be a neighbour's doing); points fade at [`STRIKE_DECAY_PER_MINUTE`] a minute. A peer at
//!   [`GuardConfig::ban_points`] is banned for [`GuardConfig::ban_for`]: its connections are
//!   closed and new ones refused (`allow_block_list`), and the log says so once per ban, with
//!   the reason. A refused request gets no response (its stream is dropped), so an honest
//!   peer that went over finds out at once and asks elsewhere.
//! - **Address bans.** A key costs nothing, so a banned machine comes back with a fresh one:
//!   when [`GuardConfig::address_ban_after`] distinct peers from one address were banned within
//!   one [`GuardConfig::ban_for`], the ban that makes it so carries the address
//!   ([`Ban::address`]) and new connections from it are refused for `ban_for`
//!   (`limits::PerIpLimit`); for IPv6 the peers banned from any address of one /64 count
//!   together, and the whole /64 is refused. Connections already open from it are left alone:
//!   addresses are shared (a NAT, a campus), and a peer already connected answers for itself.
//!
//! Every table is bounded: by the peers and addresses connected (whose entries go with their
//! last connection), by [`MAX_REMEMBERED`] for strikes and bans.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::request_response::{InboundRequestId, OutboundRequestId};
use libp2p::{Multiaddr, PeerId};

use super::address::AddressKey;

/// Points a strike loses per minute.
pub const STRIKE_DECAY_PER_MINUTE: u32 = 10;
/// Most peers whose strikes or bans are remembered; beyond it the oldest are forgotten.
pub const MAX_REMEMBERED: usize = 16_384;

/// A token bucket's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests at once.
    pub burst: u32,
    /// Requests a second after that.
    pub per_second: u32,
}

/// The guard's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Requests from one address (an IPv4 address or an IPv6 /64), all its peers together.
    pub requests_per_ip: Rate,
    /// Block requests (`GetBlock`) one peer may have open, from arrival until its answer is
    /// read. Repair fetches at most 4 at once from a peer (`repair_parallel_max`).
    pub blocks_per_peer: usize,
    /// Block requests open for one address.
    pub blocks_per_ip: usize,
    /// Bytes of answers to one peer not yet read.
    pub unsent_per_peer: usize,
    /// Bytes of answers to one address not yet read.
    pub unsent_per_ip: usize,
    /// Bytes of answers to everyone not yet read.
    pub unsent_total: usize,
    /// Points at which a peer is banned.
    pub ban_points: u32,
    /// How long a ban lasts.
    pub ban_for: Duration,
    /// Peers from one address banned within `ban_for` after which the address is banned
    /// too (0: never).
    pub address_ban_after: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            // The tabs behind one NAT together: a page's proofs come at up to the core's 64 a
            // second (after a burst of 256), its block fetches 4 at a time.
            requests_per_ip: Rate {
                burst: 2048,
                per_second: 512,
            },
            blocks_per_peer: 16,
            blocks_per_ip: 64,
            unsent_per_peer: 32 << 20,
            unsent_per_ip: 128 << 20,
            unsent_total: 512 << 20,
            ban_points: 100,
            ban_for: Duration::from_secs(600),
            address_ban_after: 8,
        }
    }
}

/// What a request is, as far as the guard cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `GetBlock`: answered with up to 4 MB.
    Block,
    /// Any other request on a protocol the relay answers.
    Other,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the address {0} is over its request rate")]
    Rate(AddressKey),
    #[error("the peer has {open} block requests open already")]
    BlocksOpen { open: usize },
    #[error("the peer has {unsent} bytes of answers not yet read")]
    Unsent { unsent: usize },
    #[error("its address has {open} block requests open already")]
    AddressBlocksOpen { open: usize },
    #[error("its address has {unsent} bytes of answers not yet read")]
    AddressUnsent { unsent: usize },
    #[error("the relay holds {unsent} bytes of answers not yet read")]
    UnsentTotal { unsent: usize },
    /// A request with the id of one of the peer's requests still open: no honest peer reuses
    /// an id before its answer, and one that does would have the relay answer it twice.
    #[error("the peer reused the id of a request still open")]
    ReusedId,
}

impl Refusal {
    /// Points a refusal adds to the peer: keeping answers unread while asking for more, or
    /// reusing an id, is no honest peer's doing; going over its address's share may be a
    /// neighbour's (the tabs behind one NAT), and the relay's total is everyone's: those are
    /// refused, not held against the peer.
    fn points(&self) -> u32 {
        match self {
            Refusal::BlocksOpen { .. } | Refusal::Unsent { .. } | Refusal::ReusedId => 5,
            Refusal::Rate(_)
            | Refusal::AddressBlocksOpen { .. }
            | Refusal::AddressUnsent { .. }
            | Refusal::UnsentTotal { .. } => 0,
        }
    }
}

/// Why a peer was struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    Refused(Refusal),
    /// A request that is not a message of the protocol.
    Undecodable,
    /// The node scored the peer (a block or proof that failed its check); its total.
    Misbehaved {
        score: u32,
    },
}

impl std::fmt::Display for Offence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Offence::Refused(refusal) => write!(f, "request refused: {refusal}"),
            Offence::Undecodable => f.write_str("a request that does not decode"),
            Offence::Misbehaved { score } => {
                write!(f, "sent data that failed its check (score {score})")
            }
        }
    }
}

/// Points for a request that does not decode: five and the peer is banned.
pub const UNDECODABLE_POINTS: u32 = 20;

/// A ban the swarm task carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub peer: PeerId,
    pub until: Instant,
    /// The offence that took the peer over.
    pub last: Offence,
    /// The peer's address, when this ban makes it [`GuardConfig::address_ban_after`] peers
    /// banned from it within [`GuardConfig::ban_for`]: new connections from it are refused
    /// until `until`.
    pub address: Option<AddressKey>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Open {
    peer: PeerId,
    ip: Option<AddressKey>,
    block: bool,
    unsent: usize,
}

#[derive(Debug, Default)]
struct Load {
    blocks: usize,
    unsent: usize,
}

#[derive(Debug)]
struct Strikes {
    points: u32,
    at: Instant,
}

/// Which of the relay's request-response protocols (services) a request came on: each numbers its
/// requests on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Messages,
    Probe,
    Directory,
}

/// A request the guard follows: its protocol and libp2p's id.
pub type RequestKey = (Service, InboundRequestId);

/// The guard (see the module docs), over [`RequestKey`]s and libp2p's outbound request ids
/// (or any ids, in tests).
#[derive(Debug)]
pub struct Guard<I = RequestKey, O = OutboundRequestId> {
    config: GuardConfig,
    /// Each connected peer's address (its latest connection's) and connection count.
    peers: HashMap<PeerId, (Option<AddressKey>, u32)>,
    /// Buckets of the addresses with a connected peer.
    buckets: HashMap<AddressKey, Bucket>,
    open: HashMap<I, Open>,
    /// Answers sent as requests of their own (their request was answered empty before the
    /// node's answer came), until the peer read them.
    pushed: HashMap<O, Open>,
    by_peer: HashMap<PeerId, Load>,
    by_ip: HashMap<AddressKey, Load>,
    unsent_total: usize,
    strikes: HashMap<PeerId, Strikes>,
    banned: HashMap<PeerId, Instant>,
    /// Per address, when its peers were banned (the latest `address_ban_after`, within
    /// `ban_for`).
    bans_by_ip: HashMap<AddressKey, Vec<Instant>>,
    /// Banned addresses and when their bans end.
    banned_ips: HashMap<AddressKey, Instant>,
}

impl<I: std::hash::Hash + Eq, O: std::hash::Hash + Eq> Guard<I, O> {
    pub fn new(config: GuardConfig) -> Guard<I, O> {
        Guard {
            config,
            peers: HashMap::new(),
            buckets: HashMap::new(),
            open: HashMap::new(),
            pushed: HashMap::new(),
            by_peer: HashMap::new(),
            by_ip: HashMap::new(),
            unsent_total: 0,
            strikes: HashMap::new(),
            banned: HashMap::new(),
            bans_by_ip: HashMap::new(),
            banned_ips: HashMap::new(),
        }
    }

    /// A connection to `peer` from `remote` is up.
    pub fn connected(&mut self, peer: PeerId, remote: &Multiaddr) {
        let ip = AddressKey::of_multiaddr(remote);
        let entry = self.peers.entry(peer).or_insert((ip, 0));
        entry.1 += 1;
        if ip.is_some() {
            entry.0 = ip;
        }
    }

    /// A connection to `peer` closed; `remaining` are still open.
    pub fn disconnected(&mut self, peer: PeerId, remaining: u32) {
        if remaining > 0 {
            if let Some(entry) = self.peers.get_mut(&peer) {
                entry.1 = remaining;
            }
            return;
        }
        let Some((ip, _)) = self.peers.remove(&peer) else {
            return;
        };
        if let Some(ip) = ip {
            if !self.peers.values().any(|(other, _)| *other == Some(ip)) {
                self.buckets.remove(&ip);
            }
        }
    }

    /// The address `peer` connects from, if it has one (a relayed peer has none of its own).
    pub fn address_of(&self, peer: &PeerId) -> Option<AddressKey> {
        self.peers.get(peer).and_then(|(ip, _)| *ip)
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.banned.get(peer).is_some_and(|until| *until > now)
    }

    /// Request `id` of `kind` from `peer` arrived at `now`: `Ok` if it may be served (the
    /// guard follows it until [`Guard::finished`]); else why not, and the ban the refusal
    /// brought, if any.
    pub fn admit(
        &mut self,
        peer: PeerId,
        id: I,
        kind: RequestKind,
        now: Instant,
    ) -> Result<(), (Refusal, Option<Ban>)> {
        let ip = self.address_of(&peer);
        if let Err(refusal) = self.check(peer, ip, kind, now) {
            let ban = self.strike(peer, Offence::Refused(refusal), now);
            return Err((refusal, ban));
        }
        let block = kind == RequestKind::Block;
        self.open.insert(
            id,
            Open {
                peer,
                ip,
                block,
                unsent: 0,
            },
        );
        if block {
            self.by_peer.entry(peer).or_default().blocks += 1;
            if let Some(ip) = ip {
                self.by_ip.entry(ip).or_default().blocks += 1;
            }
        }
        Ok(())
    }

    fn check(
        &mut self,
        peer: PeerId,
        ip: Option<AddressKey>,
        kind: RequestKind,
        now: Instant,
    ) -> Result<(), Refusal> {
        let none = Load::default();
        let of_peer = self.by_peer.get(&peer).unwrap_or(&none);
        let of_ip = ip.and_then(|ip| self.by_ip.get(&ip)).unwrap_or(&none);
        if kind == RequestKind::Block {
            if of_peer.blocks >= self.config.blocks_per_peer {
                return Err(Refusal::BlocksOpen {
                    open: of_peer.blocks,
                });
            }
            if of_ip.blocks >= self.config.blocks_per_ip {
                return Err(Refusal::AddressBlocksOpen { open: of_ip.blocks });
            }
        }
        if of_peer.unsent >= self.config.unsent_per_peer {
            return Err(Refusal::Unsent {
                unsent: of_peer.unsent,
            });
        }
        if of_ip.unsent >= self.config.unsent_per_ip {
            return Err(Refusal::AddressUnsent {
                unsent: of_ip.unsent,
            });
        }
        if self.unsent_total >= self.config.unsent_total {
            return Err(Refusal::UnsentTotal {
                unsent: self.unsent_total,
            });
        }
        // The rate last: a request refused for what the peer holds takes no token, and is
        // struck as such.
        if let Some(ip) = ip {
            let rate = self.config.requests_per_ip;
            let bucket = self.buckets.entry(ip).or_insert(Bucket {
                tokens: f64::from(rate.burst),
                at: now,
            });
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens =
                (bucket.tokens + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst));
            bucket.at = now;
            if bucket.tokens < 1.0 {
                return Err(Refusal::Rate(ip));
            }
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// The response to request `id` (`bytes` long) was handed to libp2p: memory until the peer
    /// reads it.
    pub fn responding(&mut self, id: I, bytes: usize) {
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        open.unsent += bytes;
        self.unsent_total += bytes;
        self.by_peer.entry(open.peer).or_default().unsent += bytes;
        if let Some(ip) = open.ip {
            self.by_ip.entry(ip).or_default().unsent += bytes;
        }
    }

    /// Whether the node's answer to a request that is no longer open (answered empty: held
    /// too long, or the node was busy) may go to `peer` as a request of its own, `bytes` long:
    /// not while the peer, its address or everyone has too many bytes unread. A peer that
    /// makes the relay drop its answers is struck as one that asks while holding them.
    pub fn may_push(
        &mut self,
        peer: PeerId,
        bytes: usize,
        now: Instant,
    ) -> Result<(), (Refusal, Option<Ban>)> {
        let ip = self.address_of(&peer);
        let none = Load::default();
        let of_peer = self.by_peer.get(&peer).unwrap_or(&none);
        let of_ip = ip.and_then(|ip| self.by_ip.get(&ip)).unwrap_or(&none);
        let refusal = if of_peer.unsent + bytes > self.config.unsent_per_peer {
            Refusal::Unsent {
                unsent: of_peer.unsent,
            }
        } else if of_ip.unsent + bytes > self.config.unsent_per_ip {
            Refusal::AddressUnsent {
                unsent: of_ip.unsent,
            }
        } else if self.unsent_total + bytes > self.config.unsent_total {
            Refusal::UnsentTotal {
                unsent: self.unsent_total,
            }
        } else {
            return Ok(());
        };
        let ban = self.strike(peer, Offence::Refused(refusal), now);
        Err((refusal, ban))
    }

    /// An answer went to `peer` as request `id` ([`Guard::may_push`]): followed until
    /// [`Guard::push_finished`].
    pub fn pushing(&mut self, peer: PeerId, id: O, bytes: usize) {
        let ip = self.address_of(&peer);
        self.unsent_total += bytes;
        self.by_peer.entry(peer).or_default().unsent += bytes;
        if let Some(ip) = ip {
            self.by_ip.entry(ip).or_default().unsent += bytes;
        }
        self.pushed.insert(
            id,
            Open {
                peer,
                ip,
                block: false,
                unsent: bytes,
            },
        );
    }

    /// Outbound request `id` is over (answered, or failed).
    pub fn push_finished(&mut self, id: O) {
        if let Some(open) = self.pushed.remove(&id) {
            self.release(open);
        }
    }

    /// Request `id` is over: its response was sent, or it failed (timed out, dropped, its
    /// connection closed).
    pub fn finished(&mut self, id: I) {
        if let Some(open) = self.open.remove(&id) {
            self.release(open);
        }
    }

    fn release(&mut self, open: Open) {
        self.unsent_total -= open.unsent;
        let blocks = usize::from(open.block);
        release(&mut self.by_peer, open.peer, blocks, open.unsent);
        if let Some(ip) = open.ip {
            release(&mut self.by_ip, ip, blocks, open.unsent);
        }
    }

    /// Requests followed now (open, or their answers not yet read; pushed answers).
    pub fn open_requests(&self) -> usize {
        self.open.len() + self.pushed.len()
    }

    /// Bytes of answers not yet read, everyone's.
    pub fn unsent_bytes(&self) -> usize {
        self.unsent_total
    }

    /// Adds `offence`'s points to `peer`; returns the ban if they reach the threshold (the
    /// peer is then banned until the ban's end, its points cleared).
    pub fn strike(&mut self, peer: PeerId, offence: Offence, now: Instant) -> Option<Ban> {
        let points = match offence {
            Offence::Refused(refusal) => refusal.points(),
            Offence::Undecodable => UNDECODABLE_POINTS,
            Offence::Misbehaved { score } => score,
        };
        if points == 0 || self.is_banned(&peer, now) {
            return None;
        }
        if self.strikes.len() >= MAX_REMEMBERED && !self.strikes.contains_key(&peer) {
            forget_oldest(&mut self.strikes, |s| s.at);
        }
        let strikes = self
            .strikes
            .entry(peer)
            .or_insert(Strikes { points: 0, at: now });
        let minutes = now.saturating_duration_since(strikes.at).as_secs() / 60;
        let faded = u32::try_from(minutes)
            .unwrap_or(u32::MAX)
            .saturating_mul(STRIKE_DECAY_PER_MINUTE);
        strikes.points = strikes.points.saturating_sub(faded);
        if minutes > 0 {
            strikes.at = now;
        }
        strikes.points = match offence {
            // The node's score is a total of its own: the peer is over when it is.
            Offence::Misbehaved { score } => strikes.points.max(score),
            _ => strikes.points.saturating_add(points),
        };
        if strikes.points < self.config.ban_points {
            return None;
        }
        self.strikes.remove(&peer);
        if self.banned.len() >= MAX_REMEMBERED {
            forget_oldest(&mut self.banned, |until| *until);
        }
        let until = now + self.config.ban_for;
        self.banned.insert(peer, until);
        let address = self
            .address_of(&peer)
            .filter(|ip| self.address_banned_by(*ip, now));
        Some(Ban {
            peer,
            until,
            last: offence,
            address,
        })
    }

    /// A peer from `ip` was banned at `now`: whether that makes
    /// [`GuardConfig::address_ban_after`] within [`GuardConfig::ban_for`] and bans the
    /// address (not while it is banned already; the count starts again then).
    fn address_banned_by(&mut self, ip: AddressKey, now: Instant) -> bool {
        let after = self.config.address_ban_after as usize;
        if after == 0 || self.banned_ips.get(&ip).is_some_and(|until| *until > now) {
            return false;
        }
        if self.bans_by_ip.len() >= MAX_REMEMBERED && !self.bans_by_ip.contains_key(&ip) {
            forget_oldest(&mut self.bans_by_ip, |times| {
                times.last().copied().unwrap_or(now)
            });
        }
        let ban_for = self.config.ban_for;
        let times = self.bans_by_ip.entry(ip).or_default();
        times.retain(|at| now.saturating_duration_since(*at) < ban_for);
        times.push(now);
        if times.len() < after {
            return false;
        }
        self.bans_by_ip.remove(&ip);
        self.banned_ips.retain(|_, until| *until > now);
        if self.banned_ips.len() >= MAX_REMEMBERED {
            forget_oldest(&mut self.banned_ips, |until| *until);
        }
        self.banned_ips.insert(ip, now + ban_for);
        true
    }

    /// The bans over at `now`, forgotten: their peers may connect again.
    pub fn expired(&mut self, now: Instant) -> Vec<PeerId> {
        let over: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &over {
            self.banned.remove(peer);
        }
        over
    }
}

fn release<K: std::hash::Hash + Eq>(
    loads: &mut HashMap<K, Load>,
    key: K,
    blocks: usize,
    unsent: usize,
) {
    if let Some(load) = loads.get_mut(&key) {
        load.blocks -= blocks;
        load.unsent -= unsent;
        if load.blocks == 0 && load.unsent == 0 {
            loads.remove(&key);
        }
    }
}

fn forget_oldest<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    at: impl Fn(&V) -> Instant,
) {
    if let Some(oldest) = map.iter().min_by_key(|(_, v)| at(v)).map(|(k, _)| *k) {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests;
