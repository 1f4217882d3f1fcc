//! How a core `Node`'s one-way messages travel over Shoal's request-response protocol.
//!
//! The core's [`Node`](shoal_core::node::Node) speaks in one-way messages
//! (`Output::Send { to, message }`, `Input::Message { from, message }`); libp2p's
//! request-response pairs every request with a response. The convention both shells (browser
//! and relay) follow on [`PROTOCOL_NAME`](crate::PROTOCOL_NAME):
//!
//! - **A request carries one encoded `shoal_core::wire::Message`.** The receiver hands it to its
//!   node as `Input::Message { from: node_id(sender) }`.
//! - **The response is either empty — an acknowledgement, "handed to the node" — or one
//!   encoded `Message`**, a direct answer. A direct answer is also a message from the responder:
//!   whoever asked on behalf of its node feeds it to that node exactly like a one-way message.
//!   A responder may hold a request open until its node answers it (a relay does so for
//!   `GetHeaders`, `TxQuery` and `GetBlock`, which is how the browser's header sync,
//!   `verifyTransaction` and block downloads work; a page does so for another member's
//!   `TxQuery`, whose answer then crosses the relay's circuit once); everything else is
//!   acknowledged and travels back, if at all, as a new request in the other direction.
//! - **Identities:** a node's [`NodeId`] is `sha256d` of its libp2p peer id's bytes
//!   ([`node_id`]). The hash cannot be reversed, so each shell keeps a bounded [`PeerBook`] of
//!   the peers it has met to turn an `Output::Send { to }` back into a peer id.
//! - **Addresses** in `Candidate`s and in the node's own `Config::address` are full multiaddrs
//!   ending in `/p2p/<peer id>` ([`candidate`], [`parse_address`]). A node reachable several
//!   ways (a page through each of its relays) gives them all, separated by single spaces, as
//!   many as fit in `shoal_core::wire::MAX_ADDRESS_BYTES` ([`join_addresses`]); whoever dials
//!   it tries every one ([`parse_addresses`]), so losing one relay does not make it
//!   unreachable.
//!
//! Every decoder here is the core's bounded wire decoder (at most
//! `shoal_core::wire::MAX_MESSAGE_BYTES`); hostile bytes give an error, never a panic.

use std::collections::{BTreeMap, HashMap};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_core::node::{Candidate, NodeId};
use shoal_core::wire::{self, Message, WireError};

/// Most peers a [`PeerBook`] remembers; the least recently used is forgotten beyond this.
pub const PEER_BOOK_MAX: usize = 1024;

/// The node id of a libp2p peer: `sha256d` of the peer id's bytes. Both ends compute it the
/// same way, so a node's id is the same wherever it is seen.
pub fn node_id(peer: &PeerId) -> NodeId {
    NodeId::from_bytes_hashed(&peer.to_bytes())
}

/// The bytes of a request carrying `message`.
pub fn encode_request(message: &Message) -> Result<Vec<u8>, WireError> {
    wire::encode(message)
}

/// The message a request carries (bounded decoder).
pub fn decode_request(bytes: &[u8]) -> Result<Message, WireError> {
    wire::decode(bytes)
}

/// The acknowledgement: an empty response.
pub fn ack() -> Vec<u8> {
    Vec::new()
}

/// What a response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Empty: the message was handed to the responder's node.
    Ack,
    /// A direct answer (a message from the responder).
    Message(Message),
}

/// Reads a response: empty is an acknowledgement, anything else must decode as one message.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, WireError> {
    if bytes.is_empty() {
        Ok(Reply::Ack)
    } else {
        wire::decode(bytes).map(Reply::Message)
    }
}

/// The dialable address of `peer` at `addr`: `addr` ending in `/p2p/<peer>`.
pub fn address_of(addr: &Multiaddr, peer: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(p)) if p == peer) {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer))
    }
}

/// A directory candidate for the core: its node id and its full address.
pub fn candidate(peer: PeerId, addr: &Multiaddr) -> Candidate {
    Candidate {
        id: node_id(&peer),
        address: address_of(addr, peer).to_string(),
    }
}

/// The peer id and multiaddr named by an address the core hands out (`Output::Connect`):
/// `None` unless it parses and ends in `/p2p/<peer id>`.
pub fn parse_address(address: &str) -> Option<(PeerId, Multiaddr)> {
    let addr: Multiaddr = address.parse().ok()?;
    match addr.iter().last()? {
        Protocol::P2p(peer) => Some((peer, addr)),
        _ => None,
    }
}

/// Several addresses of one peer as one address string for the core: separated by single
/// spaces, in the order given, as many whole ones as fit in
/// `shoal_core::wire::MAX_ADDRESS_BYTES` (the rest are left out; an empty string if none fits).
pub fn join_addresses<'a>(addrs: impl IntoIterator<Item = &'a Multiaddr>) -> String {
    let mut joined = String::new();
    for addr in addrs {
        let text = addr.to_string();
        let needed = text.len() + usize::from(!joined.is_empty());
        if joined.len() + needed > wire::MAX_ADDRESS_BYTES {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(&text);
    }
    joined
}

/// The peer and every multiaddr named by an address string from the core (one address, or
/// several joined by [`join_addresses`]): `None` unless each parses and ends in
/// `/p2p/<the same peer id>`. At most `MAX_ADDRESS_BYTES` are read (the core's own bound).
pub fn parse_addresses(address: &str) -> Option<(PeerId, Vec<Multiaddr>)> {
    if address.len() > wire::MAX_ADDRESS_BYTES {
        return None;
    }
    let mut peer = None;
    let mut addrs = Vec::new();
    for part in address.split(' ') {
        let (this, addr) = parse_address(part)?;
        if *peer.get_or_insert(this) != this {
            return None;
        }
        addrs.push(addr);
    }
    Some((peer?, addrs))
}

/// Node id → peer id for the peers a shell has met (connected, dialled or suggested), bounded
/// by [`PEER_BOOK_MAX`]; the peer heard of least recently is forgotten first.
#[derive(Debug, Default)]
pub struct PeerBook {
    peers: HashMap<NodeId, (PeerId, u64)>,
    /// Last use → node id, oldest first.
    recency: BTreeMap<u64, NodeId>,
    clock: u64,
}

impl PeerBook {
    /// Remembers `peer` (or marks it used now) and returns its node id.
    pub fn learn(&mut self, peer: PeerId) -> NodeId {
        let id = node_id(&peer);
        self.clock += 1;
        if let Some((_, used)) = self.peers.insert(id, (peer, self.clock)) {
            self.recency.remove(&used);
        }
        self.recency.insert(self.clock, id);
        while self.peers.len() > PEER_BOOK_MAX {
            if let Some((_, old)) = self.recency.pop_first() {
                self.peers.remove(&old);
            }
        }
        debug_assert_eq!(self.peers.len(), self.recency.len());
        id
    }

    /// The peer id of node `id`, if met.
    pub fn peer(&self, id: &NodeId) -> Option<PeerId> {
        self.peers.get(id).map(|(peer, _)| *peer)
    }

    /// Number of peers remembered.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use shoal_core::wire::NodeRecord;

    use super::*;

    fn hello() -> Message {
        Message::Hello {
            record: NodeRecord {
                blocks_served: 0,
                capacity_bytes: 1 << 20,
                segment: 0,
                device: 1,
                archive: true,
            },
            cluster: None,
            open_slots: 0,
        }
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let bytes = encode_request(&hello()).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), hello());
        assert_eq!(decode_reply(&ack()).unwrap(), Reply::Ack);
        assert_eq!(decode_reply(&bytes).unwrap(), Reply::Message(hello()));
    }

    #[test]
    fn several_addresses_of_one_peer_round_trip_and_stay_within_the_cores_bound() {
        let peer = PeerId::random();
        let relay = PeerId::random();
        let via = |port: u16| -> Multiaddr {
            format!("/ip4/10.77.0.1/tcp/{port}/ws/p2p/{relay}/p2p-circuit/p2p/{peer}")
                .parse()
                .unwrap()
        };
        let addrs: Vec<Multiaddr> = (1..=2).map(via).collect();
        let joined = join_addresses(&addrs);
        assert_eq!(parse_addresses(&joined), Some((peer, addrs.clone())));
        // One address alone is what it always was.
        assert_eq!(
            parse_addresses(&addrs[0].to_string()),
            Some((peer, vec![addrs[0].clone()]))
        );
        // Too many: only whole ones that fit are kept, and they still parse.
        let many: Vec<Multiaddr> = (1..=20).map(via).collect();
        let joined = join_addresses(&many);
        assert!(joined.len() <= wire::MAX_ADDRESS_BYTES);
        let (_, kept) = parse_addresses(&joined).unwrap();
        assert!(kept.len() > 1 && kept.len() < many.len());
        assert_eq!(kept[..], many[..kept.len()]);
    }

    #[test]
    fn hostile_address_lists_are_refused() {
        let a = PeerId::random();
        let b = PeerId::random();
        let of = |peer: PeerId| format!("/ip4/10.0.0.1/tcp/1/ws/p2p/{peer}");
        // Two peers in one list, a part without /p2p, empty parts, too long, garbage.
        assert_eq!(parse_addresses(&format!("{} {}", of(a), of(b))), None);
        assert_eq!(
            parse_addresses(&format!("{} /ip4/10.0.0.1/tcp/1", of(a))),
            None
        );
        assert_eq!(parse_addresses(&format!("{}  {}", of(a), of(a))), None);
        assert_eq!(parse_addresses(""), None);
        assert_eq!(parse_addresses(&vec![of(a); 10].join(" ")), None);
        assert_eq!(parse_addresses("\u{0}\u{ff} nonsense"), None);
    }

    #[test]
    fn node_ids_are_stable_and_distinct() {
        let a = PeerId::random();
        let b = PeerId::random();
        assert_eq!(node_id(&a), node_id(&a));
        assert_ne!(node_id(&a), node_id(&b));
        let mut book = PeerBook::default();
        assert_eq!(book.learn(a), node_id(&a));
        assert_eq!(book.peer(&node_id(&a)), Some(a));
        assert_eq!(book.peer(&node_id(&b)), None);
    }

    #[test]
    fn the_book_is_bounded_and_forgets_the_least_recently_used() {
        let mut book = PeerBook::default();
        let first = PeerId::random();
        let busy = PeerId::random();
        book.learn(first);
        book.learn(busy);
        for _ in 0..PEER_BOOK_MAX - 1 {
            book.learn(PeerId::random());
            book.learn(busy); // heard from all the time: never the one forgotten
        }
        assert_eq!(book.len(), PEER_BOOK_MAX);
        assert_eq!(book.peer(&node_id(&first)), None);
        assert_eq!(book.peer(&node_id(&busy)), Some(busy));
    }

    #[test]
    fn addresses_name_their_peer() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/10.77.0.1/tcp/9000/ws".parse().unwrap();
        let c = candidate(peer, &addr);
        assert_eq!(c.id, node_id(&peer));
        let (parsed, full) = parse_address(&c.address).unwrap();
        assert_eq!(parsed, peer);
        assert_eq!(address_of(&full, peer), full, "no second /p2p");
        assert_eq!(parse_address("/ip4/10.77.0.1/tcp/9000/ws"), None);
        assert_eq!(parse_address("not an address"), None);
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = decode_reply(&bytes);
            let _ = parse_address(&String::from_utf8_lossy(&bytes));
        }
    }
}
