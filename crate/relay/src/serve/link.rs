//! The swarm task's side of the archive node: what goes to the node's thread, and the requests
//! held open for its answers.
//!
//! The archive node ([`super::archive`]) runs on a thread of its own, so that block reads and
//! proof work never hold up the swarm's event loop. The swarm task talks to it over two bounded
//! channels ([`ToNode`], [`FromNode`]):
//!
//! - A peer's `GetHeaders`, `TxQuery` and `GetBlock` are handed to the node and **held open**
//!   ([`Held`]) under (peer, [`Kind`], request id) until the node's answer with that request id
//!   comes out (`Headers`, `TxAnswer`, `BlockData`/`BlockNotFound`), which becomes the libp2p
//!   response. At most [`HELD_REQUESTS_MAX`] are held at once and [`HELD_PER_PEER_MAX`] per
//!   peer; a request beyond them, or held longer than [`HELD_REQUEST_TIMEOUT`], is
//!   acknowledged (an empty response, `shoal_net::node_link`'s convention), and the node's
//!   answer, if it still comes, goes out as a request of its own. Every other message is
//!   acknowledged at once and handed over.
//! - Connection events must reach the node in order: when its inbox is full they wait in a
//!   bounded backlog ([`BACKLOG_MAX`]) that the swarm task flushes as room appears, first.
//!   Messages from peers (and replies to the node's own requests) are new work from a
//!   remote: when the inbox is full they wait in a queue per sender address, served in turn
//!   ([`fair`]), so one address cannot queue its work ahead of everyone else's; past that
//!   queue's bounds they are dropped, a held request acknowledged.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{PeerId, Swarm};
use shoal_core::wire::Message;
use shoal_net::node_link;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{OwnedPermit, Sender};

use super::address::AddressKey;
use super::archive::{FromNode, ToNode};
use super::guard::{Ban, Guard, Offence, Service};
use super::network::Behaviour;

pub mod fair;

/// How long a request is held open for the node's answer before it is merely acknowledged.
pub const HELD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most requests held open at once; beyond this they are acknowledged at once.
pub const HELD_REQUESTS_MAX: usize = 1024;
/// Most requests held open for one peer (a page keeps a few header requests and one query in
/// flight; a peer cannot take every place).
pub const HELD_PER_PEER_MAX: usize = 256;
/// Most connection events waiting for room in the node's inbox; beyond this (a node thread
/// stuck for thousands of connections) one is dropped and logged.
pub const BACKLOG_MAX: usize = 4096;

/// Which answer a held request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `GetHeaders` → `Headers`.
    Headers,
    /// `TxQuery` → `TxAnswer`.
    Tx,
    /// `GetBlock` → `BlockData` or `BlockNotFound`.
    Block,
}

/// A held request: its peer, what it waits for and its request id. A peer's ids are its own,
/// and its header sync and its node count separately, so the kind is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub peer: PeerId,
    pub kind: Kind,
    pub request_id: u64,
}

impl Key {
    /// The key of `message` from `peer`, if it is a request the node answers.
    pub fn of_request(peer: PeerId, message: &Message) -> Option<Key> {
        let (kind, request_id) = match message {
            Message::GetHeaders { request_id, .. } => (Kind::Headers, *request_id),
            Message::TxQuery { request_id, .. } => (Kind::Tx, *request_id),
            Message::GetBlock { request_id, .. } => (Kind::Block, *request_id),
            _ => return None,
        };
        Some(Key {
            peer,
            kind,
            request_id,
        })
    }

    /// The key of the request that `message`, sent to `peer`, answers, if it is an answer.
    pub fn of_answer(peer: PeerId, message: &Message) -> Option<Key> {
        let (kind, request_id) = match message {
            Message::Headers { request_id, .. } => (Kind::Headers, *request_id),
            Message::TxAnswer { request_id, .. } => (Kind::Tx, *request_id),
            Message::BlockData { request_id, .. } | Message::BlockNotFound { request_id } => {
                (Kind::Block, *request_id)
            }
            _ => return None,
        };
        Some(Key {
            peer,
            kind,
            request_id,
        })
    }
}

/// Requests held open for the node's answers, each with its response channel `C` (libp2p's
/// `ResponseChannel`; anything in tests). Bounded in all and per peer.
#[derive(Debug)]
pub struct Held<C> {
    requests: HashMap<Key, (C, Instant)>,
    per_peer: HashMap<PeerId, usize>,
    max: usize,
    per_peer_max: usize,
    timeout: Duration,
}

impl<C> Held<C> {
    /// Nothing held; at most `max` requests, `per_peer_max` of one peer, each for `timeout`.
    pub fn new(max: usize, per_peer_max: usize, timeout: Duration) -> Held<C> {
        Held {
            requests: HashMap::new(),
            per_peer: HashMap::new(),
            max,
            per_peer_max,
            timeout,
        }
    }

    /// Holds `channel` under `key` since `now`. Returns the channel to acknowledge at once, if
    /// any: `channel` itself when no place is left, or the older request's when the peer
    /// reused a request id.
    pub fn hold(&mut self, key: Key, channel: C, now: Instant) -> Option<C> {
        if let Some(slot) = self.requests.get_mut(&key) {
            let (older, _) = std::mem::replace(slot, (channel, now));
            return Some(older);
        }
        let of_peer = self.per_peer.get(&key.peer).copied().unwrap_or(0);
        if self.requests.len() >= self.max || of_peer >= self.per_peer_max {
            return Some(channel);
        }
        self.requests.insert(key, (channel, now));
        self.per_peer.insert(key.peer, of_peer + 1);
        None
    }

    /// Whether a request is held under `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.requests.contains_key(key)
    }

    /// The channel held under `key`, released.
    pub fn take(&mut self, key: &Key) -> Option<C> {
        let (channel, _) = self.requests.remove(key)?;
        self.released(&key.peer);
        Some(channel)
    }

    /// Releases every request held for `timeout` or longer at `now`; their channels are to be
    /// acknowledged.
    pub fn expire(&mut self, now: Instant) -> Vec<C> {
        let expired: Vec<Key> = self
            .requests
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= self.timeout)
            .map(|(key, _)| *key)
            .collect();
        expired.iter().filter_map(|key| self.take(key)).collect()
    }

    /// Forgets every request of `peer` (its connection closed: nothing can be answered).
    pub fn forget(&mut self, peer: &PeerId) {
        self.requests.retain(|key, _| key.peer != *peer);
        self.per_peer.remove(peer);
    }

    /// Requests held.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    fn released(&mut self, peer: &PeerId) {
        if let Some(count) = self.per_peer.get_mut(peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(peer);
            }
        }
    }
}

/// A held request's response channel and libp2p's id of the request (the guard follows the
/// answer's bytes by it).
type Channel = (ResponseChannel<Vec<u8>>, InboundRequestId);

/// The swarm task's end of the node's channels, with the held requests.
pub struct Link {
    inbox: Sender<ToNode>,
    backlog: VecDeque<ToNode>,
    /// Peers' messages and replies waiting for room, by address.
    waiting: fair::Fair<ToNode>,
    held: Held<Channel>,
}

impl Link {
    /// A link that hands the node's inputs to `inbox`.
    pub fn new(inbox: Sender<ToNode>) -> Link {
        Link {
            inbox,
            backlog: VecDeque::new(),
            waiting: fair::Fair::default(),
            held: Held::new(HELD_REQUESTS_MAX, HELD_PER_PEER_MAX, HELD_REQUEST_TIMEOUT),
        }
    }

    /// A sender on the node's inbox, to wait for room with ([`Link::flush`]).
    pub fn inbox(&self) -> Sender<ToNode> {
        self.inbox.clone()
    }

    /// Whether `message` from `peer` reuses the id of one of its requests still held.
    pub fn holds(&self, peer: PeerId, message: &Message) -> bool {
        Key::of_request(peer, message).is_some_and(|key| self.held.contains(&key))
    }

    /// A connection to `peer` is up (its first).
    pub fn connected(&mut self, peer: PeerId) {
        self.deliver(ToNode::Connected(peer));
    }

    /// The last connection to `peer` closed, or a dial to it failed.
    pub fn disconnected(&mut self, peer: PeerId) {
        self.waiting.forget(&peer);
        self.held.forget(&peer);
        self.deliver(ToNode::Disconnected(peer));
    }

    /// A request on the message protocol from `peer` at `ip`: held open if the node answers
    /// it, else acknowledged; handed to the node either way, now or in its address's turn
    /// (unless that queue is full).
    pub fn request(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        ip: Option<AddressKey>,
        message: Message,
        channel: Channel,
    ) {
        let key = Key::of_request(peer, &message);
        let acknowledge = match key {
            Some(key) => self.held.hold(key, channel, Instant::now()),
            None => Some(channel),
        };
        if let Some((channel, _)) = acknowledge {
            let _ = swarm
                .behaviour_mut()
                .messages
                .send_response(channel, node_link::ack());
        }
        if !self.hand_over(peer, ip, ToNode::Message { peer, message }) {
            tracing::debug!(%peer, "archive node busy: request dropped");
            if let Some((channel, _)) = key.and_then(|key| self.held.take(&key)) {
                let _ = swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, node_link::ack());
            }
        }
    }

    /// Peers a peer relay's directory named (asked again every few seconds: dropped when the
    /// node is busy).
    pub fn candidates(&mut self, peers: Vec<(PeerId, libp2p::Multiaddr)>) {
        if !peers.is_empty() && !self.offer(ToNode::Candidates(peers)) {
            tracing::debug!("node busy: directory candidates dropped");
        }
    }

    /// The response from `peer` at `ip` to one of the node's own requests (decoded on the
    /// node's thread).
    pub fn response(&mut self, peer: PeerId, ip: Option<AddressKey>, bytes: Vec<u8>) {
        if !self.hand_over(peer, ip, ToNode::Reply { peer, bytes }) {
            tracing::debug!(%peer, "archive node busy: reply dropped");
        }
    }

    /// Carries out what the node asked for: its answer to a held request becomes that
    /// request's response (its bytes followed by the `guard` until the peer has read them),
    /// any other message a request of its own; a dial that fails at once is reported back as
    /// a disconnection. A peer the node scored for misbehaving is the guard's.
    pub fn from_node(&mut self, swarm: &mut Swarm<Behaviour>, guard: &mut Guard, output: FromNode) {
        match output {
            FromNode::Send {
                peer,
                answers,
                bytes,
            } => {
                let messages = &mut swarm.behaviour_mut().messages;
                match answers.and_then(|key| self.held.take(&key)) {
                    Some((channel, id)) => {
                        let len = bytes.len();
                        if messages.send_response(channel, bytes).is_err() {
                            tracing::debug!(%peer, "peer left before the archive node's answer");
                        } else {
                            guard.responding((Service::Messages, id), len);
                        }
                    }
                    // An answer whose request was answered empty (held too long, the node
                    // busy) goes as a request of its own, within the guard's bounds.
                    None if answers.is_some() => {
                        let len = bytes.len();
                        match guard.may_push(peer, len, Instant::now()) {
                            Ok(()) => {
                                let id = messages.send_request(&peer, bytes);
                                guard.pushing(peer, id, len);
                            }
                            Err((refusal, ban)) => {
                                tracing::debug!(%peer, %refusal, "late answer dropped");
                                if let Some(ban) = ban {
                                    enforce(swarm, &ban);
                                }
                            }
                        }
                    }
                    None => {
                        messages.send_request(&peer, bytes);
                    }
                }
            }
            FromNode::Dial { peer, addrs } => {
                if swarm.is_connected(&peer) {
                    // A page that holds a reservation here is connected already.
                    self.deliver(ToNode::Connected(peer));
                    return;
                }
                let opts = DialOpts::peer_id(peer).addresses(addrs).build();
                if let Err(error) = swarm.dial(opts) {
                    tracing::debug!(%peer, %error, "dial failed");
                    self.disconnected(peer);
                }
            }
            FromNode::Misbehaved { peer, score } => {
                let offence = Offence::Misbehaved { score };
                if let Some(ban) = guard.strike(peer, offence, Instant::now()) {
                    enforce(swarm, &ban);
                }
            }
        }
    }

    /// Acknowledges the requests held too long.
    pub fn expire(&mut self, swarm: &mut Swarm<Behaviour>, now: Instant) {
        for (channel, _) in self.held.expire(now) {
            let _ = swarm
                .behaviour_mut()
                .messages
                .send_response(channel, node_link::ack());
        }
    }

    /// Whether connection events or peers' messages wait for room in the node's inbox.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty() || !self.waiting.is_empty()
    }

    /// Sends through `permit` (room in the inbox) the oldest waiting connection event, else
    /// the next peer's message in its address's turn.
    pub fn flush(&mut self, permit: OwnedPermit<ToNode>) {
        if let Some(input) = self.backlog.pop_front().or_else(|| self.waiting.pop()) {
            permit.send(input);
        }
    }

    /// Hands a peer's `input` over now if nothing waits and there is room, else queues it in
    /// its address's turn; `false`: dropped (the node stopped, or the queue is full).
    fn hand_over(&mut self, peer: PeerId, ip: Option<AddressKey>, input: ToNode) -> bool {
        let input = if self.backlog.is_empty() && self.waiting.is_empty() {
            match self.inbox.try_send(input) {
                Ok(()) => return true,
                Err(TrySendError::Closed(_)) => return false,
                Err(TrySendError::Full(input)) => input,
            }
        } else {
            input
        };
        self.waiting.push(ip, peer, input).is_ok()
    }

    /// Hands `input` over now or, behind any backlog, later.
    fn deliver(&mut self, input: ToNode) {
        if self.backlog.is_empty() {
            match self.inbox.try_send(input) {
                Ok(()) => return,
                Err(TrySendError::Closed(_)) => return, // the node has stopped
                Err(TrySendError::Full(input)) => self.backlog.push_back(input),
            }
        } else {
            self.backlog.push_back(input);
        }
        if self.backlog.len() > BACKLOG_MAX {
            let dropped = self.backlog.pop_front();
            tracing::warn!(
                ?dropped,
                "archive node's backlog full: connection event dropped"
            );
        }
    }

    /// Hands `input` over if there is room now and nothing waits before it.
    fn offer(&mut self, input: ToNode) -> bool {
        self.backlog.is_empty() && self.waiting.is_empty() && self.inbox.try_send(input).is_ok()
    }
}

/// Carries out `ban`: the peer's connections close and new ones are refused until
/// [`Guard::expired`] lifts it. Said once per ban.
pub fn enforce(swarm: &mut Swarm<Behaviour>, ban: &Ban) {
    let secs = ban
        .until
        .saturating_duration_since(Instant::now())
        .as_secs();
    tracing::warn!(peer = %ban.peer, secs, reason = %ban.last, "peer banned");
    swarm.behaviour_mut().blocked.block_peer(ban.peer);
    if let Some(ip) = ban.address {
        tracing::warn!(%ip, secs, "address banned: new connections from it refused");
        swarm.behaviour_mut().per_ip.ban(ip, ban.until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    fn key(peer: PeerId, kind: Kind, request_id: u64) -> Key {
        Key {
            peer,
            kind,
            request_id,
        }
    }

    /// An answer takes the request of its own kind: a page's header sync and its node number
    /// their requests separately, so the same id may be held twice.
    #[test]
    fn an_answer_releases_the_request_of_its_kind_and_id() {
        let (a, b) = (peer(), peer());
        let mut held = Held::new(8, 8, HELD_REQUEST_TIMEOUT);
        let now = Instant::now();
        let get_headers = Message::GetHeaders {
            request_id: 5,
            start_height: 0,
            max_count: 10,
        };
        let get_block = Message::GetBlock {
            request_id: 5,
            block_hash: shoal_core::wire::BlockHash([1; 32]),
        };
        let tx_query = Message::TxQuery {
            request_id: 5,
            txid: shoal_core::wire::Hash256([2; 32]),
            block_hint: None,
        };
        for (channel, message) in [("headers", &get_headers), ("block", &get_block)] {
            let key = Key::of_request(a, message).unwrap();
            assert!(held.hold(key, channel, now).is_none());
        }
        assert!(held
            .hold(Key::of_request(b, &tx_query).unwrap(), "tx", now)
            .is_none());
        assert_eq!(
            Key::of_request(
                a,
                &Message::Ping {
                    nonce: 1,
                    stamp: None,
                    shard: None,
                }
            ),
            None
        );

        let not_found = Message::BlockNotFound { request_id: 5 };
        assert_eq!(
            held.take(&Key::of_answer(a, &not_found).unwrap()),
            Some("block")
        );
        let headers = Message::Headers {
            request_id: 5,
            start_height: 0,
            tip_height: 0,
            headers: Vec::new(),
        };
        assert_eq!(held.take(&Key::of_answer(b, &headers).unwrap()), None);
        assert_eq!(
            held.take(&Key::of_answer(a, &headers).unwrap()),
            Some("headers")
        );
        let answer = Message::TxAnswer {
            request_id: 5,
            answer: shoal_core::wire::TxAnswerBody::NotFound,
        };
        assert_eq!(held.take(&Key::of_answer(b, &answer).unwrap()), Some("tx"));
        assert!(held.is_empty());
        assert_eq!(
            Key::of_answer(
                a,
                &Message::Ping {
                    nonce: 1,
                    stamp: None,
                    shard: None,
                }
            ),
            None
        );
    }

    #[test]
    fn held_requests_are_bounded_in_all_and_per_peer() {
        let (a, b, c) = (peer(), peer(), peer());
        let mut held = Held::new(5, 3, HELD_REQUEST_TIMEOUT);
        let now = Instant::now();
        for id in 0..3 {
            assert_eq!(held.hold(key(a, Kind::Tx, id), id, now), None);
        }
        assert_eq!(
            held.hold(key(a, Kind::Tx, 3), 3, now),
            Some(3),
            "a's places are taken"
        );
        for id in 10..12 {
            assert_eq!(held.hold(key(b, Kind::Block, id), id, now), None);
        }
        assert_eq!(held.len(), 5);
        assert_eq!(
            held.hold(key(c, Kind::Headers, 20), 20, now),
            Some(20),
            "no place left at all"
        );
        // A reused id replaces the older request, which is acknowledged; nothing grows.
        assert_eq!(held.hold(key(a, Kind::Tx, 0), 100, now), Some(0));
        assert_eq!(held.len(), 5);
        // An answer frees a place of its peer.
        assert_eq!(held.take(&key(a, Kind::Tx, 1)), Some(1));
        assert_eq!(held.hold(key(a, Kind::Tx, 4), 4, now), None);
        // A closed connection frees all of its peer's.
        held.forget(&a);
        assert_eq!(held.len(), 2);
        for id in 30..33 {
            assert_eq!(held.hold(key(c, Kind::Headers, id), id, now), None);
        }
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn held_requests_time_out() {
        let a = peer();
        let timeout = Duration::from_secs(10);
        let mut held = Held::new(8, 8, timeout);
        let start = Instant::now();
        held.hold(key(a, Kind::Tx, 1), 1, start);
        held.hold(key(a, Kind::Headers, 2), 2, start + Duration::from_secs(5));
        assert!(held.expire(start + Duration::from_secs(9)).is_empty());
        assert_eq!(held.expire(start + timeout), vec![1]);
        assert_eq!(held.take(&key(a, Kind::Tx, 1)), None, "gone once expired");
        assert_eq!(held.expire(start + Duration::from_secs(15)), vec![2]);
        assert!(held.is_empty());
        // Expired requests free their peer's places.
        let mut small = Held::new(1, 1, timeout);
        small.hold(key(a, Kind::Tx, 1), 1, start);
        assert_eq!(small.hold(key(a, Kind::Tx, 2), 2, start), Some(2));
        small.expire(start + timeout);
        assert_eq!(small.hold(key(a, Kind::Tx, 2), 2, start + timeout), None);
    }
}
