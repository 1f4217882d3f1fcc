//! The follower: which headers and blocks to ask Bitcoin peers for, and what to write to the
//! store, as a state machine without I/O (the driver, [`super::driver`], owns the sockets and
//! the clock).
//!
//! # What it does
//!
//! - **Handshake**: `version` (protocol [`PROTOCOL_VERSION`], no services, no transaction
//!   relay), then `verack`; a peer must speak at least [`MIN_PEER_VERSION`] (`sendheaders`)
//!   and serve witness blocks. `wtxidrelay`, `sendaddrv2`, `sendcmpct`, `feefilter` and
//!   address gossip are accepted and ignored. Once both `verack`s are through: `sendheaders`
//!   (new blocks announced by `headers`) and a `getheaders` with the best chain's locator.
//! - **Headers first**: every header goes through the core's [`HeaderChain`] with the
//!   network's rules (proof of work, retargeting, testnet's rules, median time past, the
//!   two-hour limit); a full batch (2,000) is followed by the next `getheaders`. The chain with
//!   the most work wins, whichever peer sent it; a peer whose header breaks a rule is dropped
//!   with that rule as the reason, and the headers it sent before stay (they were valid).
//! - **Announcements**: `headers` (after `sendheaders`) are taken as any other; an `inv` of a
//!   block not known (Bitcoin Core announces by `inv` when several blocks connect at once) is
//!   answered with a `getheaders`; headers that do not connect are answered with a
//!   `getheaders` too, [`FollowerConfig::max_unconnecting`] times in a row at most.
//! - **Blocks**: the best chain's blocks above the stored tip, at most
//!   [`FollowerConfig::download_window`] ahead of it, asked for as witness blocks
//!   (`MSG_WITNESS_BLOCK`) from any ready peer, [`FollowerConfig::blocks_per_peer`] in flight
//!   each. A block is checked against its header (Merkle root, witness commitment, weight,
//!   coinbase) before it is kept; one that fails ends its sender (the header may still have an
//!   honest body elsewhere: it is asked again of another peer). Blocks are handed to the store
//!   in height order ([`ChainUpdate::Connect`]).
//! - **Reorganisations**: when the best chain no longer holds the stored tip, the store is
//!   first rewound to the last block both share ([`ChainUpdate::Rewind`]), then the new
//!   branch's blocks follow.
//! - **Liveness**: a block or a `ping` unanswered for [`FollowerConfig::request_timeout_ms`]
//!   ends the peer; so does a handshake not done in that time, and a `getheaders` unanswered by
//!   a peer that showed it has headers we lack (bcoin answers nothing, not an empty `headers`,
//!   when it has nothing new). Pings every [`FollowerConfig::ping_interval_ms`]; a peer's pings are answered.
//!
//! Nothing a peer says is trusted: its claimed height only decides whom to ask, and every
//! header and block is checked before it counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Address, ServiceFlags};
use shoal_core::chain::headers::BatchOutcome;
use shoal_core::chain::{Block, BlockHash, ChainParams, Header, HeaderChain, HeaderError, U256};

use super::wire::{hash_from, hash_to, header_from, Incoming, MAX_HEADERS_PER_MESSAGE};

/// The protocol version Shoal speaks (Bitcoin Core's since 0.21: `wtxidrelay`).
pub const PROTOCOL_VERSION: u32 = 70016;

/// The lowest protocol version a peer may speak: 70012 introduced `sendheaders`.
pub const MIN_PEER_VERSION: u32 = 70012;

/// How many of the most recently stored blocks the follower remembers, to find where a
/// reorganisation forks off the stored chain. Deeper reorganisations are refused.
pub const MAX_REORG_DEPTH: usize = 2016;

/// A peer, as the driver names it.
pub type PeerKey = u64;

/// How the follower behaves.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The network's rules.
    pub params: ChainParams,
    /// The least total work a header chain needs before its blocks are fetched and stored
    /// (Bitcoin Core's `nMinimumChainWork`, the network's [`ChainParams::min_chain_work`]; 0
    /// on regtest): below it a chain costs an attacker too little to be worth storing.
    pub min_chain_work: U256,
    /// Most blocks asked of one peer at a time.
    pub blocks_per_peer: usize,
    /// Most blocks fetched ahead of the stored tip (bounds the memory blocks wait in: at most
    /// this many blocks of at most 4 MB).
    pub download_window: u32,
    /// A request (handshake, `getheaders`, block, `ping`) unanswered this long ends the peer.
    pub request_timeout_ms: u64,
    /// Time between pings to a peer.
    pub ping_interval_ms: u64,
    /// Most `headers` messages in a row that do not connect to any known header.
    pub max_unconnecting: u32,
    /// What the `version` message says Shoal is.
    pub user_agent: String,
}

impl FollowerConfig {
    /// The defaults for `params`' network.
    pub fn new(params: ChainParams) -> FollowerConfig {
        FollowerConfig {
            params,
            min_chain_work: params.min_chain_work,
            blocks_per_peer: 16,
            download_window: 64,
            request_timeout_ms: 60_000,
            ping_interval_ms: 60_000,
            max_unconnecting: 10,
            user_agent: format!("/shoal:{}/", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What the store must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainUpdate {
    /// Drop the stored blocks above `to_height` from the chain: the best chain forks there.
    Rewind { to_height: u32 },
    /// Append `block` at `height` (on the stored tip).
    Connect { height: u32, block: Block },
}

/// What the follower asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `peer`.
    Send {
        peer: PeerKey,
        message: NetworkMessage,
    },
    /// Close the connection to `peer`: it broke a rule or stopped answering.
    Disconnect { peer: PeerKey, reason: String },
    /// Apply this to the store.
    Store(ChainUpdate),
}

/// Counters since the follower started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FollowerStats {
    pub headers_accepted: u64,
    pub blocks_received: u64,
    pub blocks_stored: u64,
    pub reorgs: u64,
    pub peers_dropped: u64,
}

/// One peer as the follower sees it (for the relay's status).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    pub key: PeerKey,
    pub address: String,
    pub ready: bool,
    pub user_agent: String,
    pub version: u32,
    pub start_height: i32,
    pub blocks_in_flight: usize,
}

struct Peer {
    address: SocketAddr,
    connected_ms: u64,
    version: Option<VersionMessage>,
    verack: bool,
    /// When our `getheaders` went out, while unanswered.
    headers_asked_ms: Option<u64>,
    /// `headers` messages in a row that did not connect.
    unconnecting: u32,
    /// The highest height this peer showed it has (its `version`, or headers it sent).
    best_height: u32,
    /// Blocks it said it does not have (`notfound`), not asked of it again.
    lacks: HashSet<BlockHash>,
    /// The ping awaiting its pong.
    ping: Option<(u64, u64)>,
    next_ping_ms: u64,
}

impl Peer {
    fn ready(&self) -> bool {
        self.version.is_some() && self.verack
    }
}

/// The follower (see the module docs).
pub struct Follower {
    config: FollowerConfig,
    chain: HeaderChain,
    /// The stored chain's most recent blocks, lowest first, ending with the stored tip.
    stored: VecDeque<(u32, BlockHash)>,
    peers: BTreeMap<PeerKey, Peer>,
    /// Blocks asked for: by whom and when.
    in_flight: HashMap<BlockHash, (PeerKey, u64)>,
    /// Blocks checked and waiting for the ones below them, by height.
    arrived: BTreeMap<u32, Block>,
    outputs: VecDeque<Output>,
    stats: FollowerStats,
    /// A reorganisation deeper than [`MAX_REORG_DEPTH`] stopped the block download.
    stuck: Option<String>,
    next_nonce: u64,
    /// The driver's clock at the latest input.
    now_ms: u64,
}

impl Follower {
    /// A follower whose header chain already holds the stored chain (`chain`, built from the
    /// store), whose tip is the stored tip (`None`: nothing stored, not even genesis).
    pub fn new(config: FollowerConfig, chain: HeaderChain, stored_any: bool) -> Follower {
        let mut stored = VecDeque::with_capacity(MAX_REORG_DEPTH);
        if stored_any {
            let tip = chain.tip_height();
            let low = tip.saturating_sub(MAX_REORG_DEPTH as u32 - 1);
            for height in low..=tip {
                let hash = chain.hash_at(height).expect("a best-chain height");
                stored.push_back((height, hash));
            }
        }
        Follower {
            next_nonce: u64::from(chain.tip_height()) ^ 0x5ba1_5eed,
            config,
            chain,
            stored,
            peers: BTreeMap::new(),
            in_flight: HashMap::new(),
            arrived: BTreeMap::new(),
            outputs: VecDeque::new(),
            stats: FollowerStats::default(),
            stuck: None,
            now_ms: 0,
        }
    }

    /// The header chain (every header accepted from any peer).
    pub fn chain(&self) -> &HeaderChain {
        &self.chain
    }

    /// The stored tip, as the follower has told the store.
    pub fn stored_tip(&self) -> Option<(u32, BlockHash)> {
        self.stored.back().copied()
    }

    pub fn stats(&self) -> FollowerStats {
        self.stats
    }

    /// Why blocks are not being stored, if something stopped them.
    pub fn stuck(&self) -> Option<&str> {
        self.stuck.as_deref()
    }

    /// The peers, for the relay's status.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(&key, peer)| PeerInfo {
                key,
                address: peer.address.to_string(),
                ready: peer.ready(),
                user_agent: peer
                    .version
                    .as_ref()
                    .map(|v| v.user_agent.clone())
                    .unwrap_or_default(),
                version: peer.version.as_ref().map_or(0, |v| v.version),
                start_height: peer.version.as_ref().map_or(0, |v| v.start_height),
                blocks_in_flight: self.in_flight.values().filter(|(p, _)| *p == key).count(),
            })
            .collect()
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A TCP connection to `peer` at `address` is open: the handshake starts.
    pub fn on_connected(&mut self, peer: PeerKey, address: SocketAddr, now_ms: u64, now_s: u64) {
        self.now_ms = now_ms;
        self.peers.insert(
            peer,
            Peer {
                address,
                connected_ms: now_ms,
                version: None,
                verack: false,
                headers_asked_ms: None,
                unconnecting: 0,
                best_height: 0,
                lacks: HashSet::new(),
                ping: None,
                next_ping_ms: now_ms + self.config.ping_interval_ms,
            },
        );
        let nonce = self.nonce();
        let version = VersionMessage {
            version: PROTOCOL_VERSION,
            services: ServiceFlags::NONE,
            timestamp: i64::try_from(now_s).unwrap_or(i64::MAX),
            receiver: Address::new(&address, ServiceFlags::NONE),
            sender: Address::new(&SocketAddr::from(([0, 0, 0, 0], 0)), ServiceFlags::NONE),
            nonce,
            user_agent: self.config.user_agent.clone(),
            start_height: i32::try_from(self.chain.tip_height()).unwrap_or(i32::MAX),
            relay: false,
        };
        self.send(peer, NetworkMessage::Version(version));
    }

    /// The connection to `peer` closed (or the driver closed it): what it was asked for is
    /// asked of others.
    pub fn on_disconnected(&mut self, peer: PeerKey) {
        if self.peers.remove(&peer).is_some() {
            self.in_flight.retain(|_, (from, _)| *from != peer);
            self.request_blocks();
        }
    }

    /// A message from `peer`. `now_s` is the wall clock (seconds since the Unix epoch), for
    /// the headers' time limit.
    pub fn on_message(&mut self, peer: PeerKey, incoming: Incoming, now_ms: u64, now_s: u64) {
        self.now_ms = now_ms;
        if !self.peers.contains_key(&peer) {
            return;
        }
        match incoming {
            Incoming::Block(block) => self.on_block(peer, block),
            Incoming::Message(message) => self.on_network_message(peer, message, now_ms, now_s),
        }
    }

    fn on_network_message(
        &mut self,
        peer: PeerKey,
        message: NetworkMessage,
        now_ms: u64,
        now_s: u64,
    ) {
        let ready = self.peers[&peer].ready();
        match message {
            NetworkMessage::Version(version) => self.on_version(peer, version, now_ms),
            NetworkMessage::Verack => {
                let p = self.peers.get_mut(&peer).expect("checked");
                p.verack = true;
                self.on_maybe_ready(peer, now_ms);
            }
            NetworkMessage::Ping(nonce) => self.send(peer, NetworkMessage::Pong(nonce)),
            NetworkMessage::Pong(nonce) => {
                let p = self.peers.get_mut(&peer).expect("checked");
                if p.ping.is_some_and(|(sent, _)| sent == nonce) {
                    p.ping = None;
                }
            }
            NetworkMessage::Headers(headers) if ready => {
                self.on_headers(peer, &headers, now_ms, now_s)
            }
            NetworkMessage::Inv(items) if ready => self.on_inv(peer, &items, now_ms),
            NetworkMessage::NotFound(items) if ready => self.on_not_found(peer, &items),
            NetworkMessage::Headers(_) | NetworkMessage::Inv(_) | NetworkMessage::NotFound(_) => {
                self.drop_peer(peer, "sent chain data before the handshake ended".into())
            }
            // Accepted and not needed: Shoal relays no transactions and keeps no address book.
            _ => {}
        }
    }

    fn on_version(&mut self, peer: PeerKey, version: VersionMessage, now_ms: u64) {
        if self.peers[&peer].version.is_some() {
            return self.drop_peer(peer, "sent a second version message".into());
        }
        if version.version < MIN_PEER_VERSION {
            return self.drop_peer(
                peer,
                format!(
                    "speaks protocol version {}, below {MIN_PEER_VERSION} (sendheaders)",
                    version.version
                ),
            );
        }
        let full = version.services.has(ServiceFlags::NETWORK)
            || version.services.has(ServiceFlags::NETWORK_LIMITED);
        if !full || !version.services.has(ServiceFlags::WITNESS) {
            return self.drop_peer(
                peer,
                format!(
                    "does not serve witness blocks (services {})",
                    version.services
                ),
            );
        }
        let p = self.peers.get_mut(&peer).expect("checked");
        p.best_height = u32::try_from(version.start_height).unwrap_or(0);
        p.version = Some(version);
        self.send(peer, NetworkMessage::Verack);
        self.on_maybe_ready(peer, now_ms);
    }

    fn on_maybe_ready(&mut self, peer: PeerKey, now_ms: u64) {
        if !self.peers[&peer].ready() {
            return;
        }
        self.send(peer, NetworkMessage::SendHeaders);
        self.ask_headers(peer, None, now_ms);
        self.request_blocks();
    }

    /// Sends `getheaders` with the best chain's locator, after `from` (the last header of a
    /// full batch, which may be on a branch the locator does not hold).
    fn ask_headers(&mut self, peer: PeerKey, from: Option<BlockHash>, now_ms: u64) {
        let mut locator: Vec<BlockHash> = from.into_iter().collect();
        locator.extend(self.chain.locator());
        let message = GetHeadersMessage {
            version: PROTOCOL_VERSION,
            locator_hashes: locator.into_iter().map(hash_to).collect(),
            stop_hash: hash_to(BlockHash::default()),
        };
        self.peers
            .get_mut(&peer)
            .expect("a known peer")
            .headers_asked_ms = Some(now_ms);
        self.send(peer, NetworkMessage::GetHeaders(message));
    }

    fn on_headers(
        &mut self,
        peer: PeerKey,
        headers: &[bitcoin::block::Header],
        now_ms: u64,
        now_s: u64,
    ) {
        if headers.len() > MAX_HEADERS_PER_MESSAGE {
            return self.drop_peer(
                peer,
                format!(
                    "sent {} headers in one message, more than {MAX_HEADERS_PER_MESSAGE}",
                    headers.len()
                ),
            );
        }
        let solicited = self
            .peers
            .get_mut(&peer)
            .expect("checked")
            .headers_asked_ms
            .take()
            .is_some();
        let Some(first) = headers.first() else {
            return; // Nothing after our locator: the peer has nothing new.
        };
        let headers: Vec<Header> = headers.iter().map(header_from).collect();
        let parent = first.prev_blockhash;
        if !self.chain.contains(&hash_from(parent)) {
            let p = self.peers.get_mut(&peer).expect("checked");
            p.unconnecting += 1;
            let unconnecting = p.unconnecting;
            if unconnecting > self.config.max_unconnecting {
                return self.drop_peer(
                    peer,
                    format!(
                        "sent {unconnecting} header messages in a row that connect to nothing known"
                    ),
                );
            }
            return self.ask_headers(peer, None, now_ms);
        }
        self.peers.get_mut(&peer).expect("checked").unconnecting = 0;
        let last = headers.last().expect("not empty").block_hash();
        let (outcome, refused) = match self.chain.accept_batch(&headers, now_s) {
            Ok(outcome) => (outcome, None),
            Err(error) => (error.partial, Some(error.error)),
        };
        self.stats.headers_accepted += outcome.accepted as u64;
        if let Some(info) = self.chain.get(&last) {
            let p = self.peers.get_mut(&peer).expect("checked");
            p.best_height = p.best_height.max(info.height);
        }
        self.on_chain_changed(&outcome);
        if let Some(error) = refused {
            return self.drop_peer(peer, refusal(&error));
        }
        if headers.len() == MAX_HEADERS_PER_MESSAGE {
            if outcome.accepted == 0 && solicited {
                return self.drop_peer(
                    peer,
                    format!(
                        "answered getheaders with {MAX_HEADERS_PER_MESSAGE} headers already known"
                    ),
                );
            }
            self.ask_headers(peer, Some(last), now_ms);
        }
    }

    fn on_inv(&mut self, peer: PeerKey, items: &[Inventory], now_ms: u64) {
        let unknown = items.iter().any(|item| match item {
            Inventory::Block(hash) | Inventory::WitnessBlock(hash) => {
                !self.chain.contains(&hash_from(*hash))
            }
            _ => false,
        });
        // Asked even while an earlier `getheaders` is out: a peer at its tip may never answer
        // that one (bcoin), and the new block must not wait for its timeout.
        if unknown {
            self.ask_headers(peer, None, now_ms);
        }
    }

    fn on_not_found(&mut self, peer: PeerKey, items: &[Inventory]) {
        for item in items {
            if let Inventory::Block(hash) | Inventory::WitnessBlock(hash) = item {
                let hash = hash_from(*hash);
                if self
                    .in_flight
                    .get(&hash)
                    .is_some_and(|(from, _)| *from == peer)
                {
                    self.in_flight.remove(&hash);
                    self.peers
                        .get_mut(&peer)
                        .expect("checked")
                        .lacks
                        .insert(hash);
                }
            }
        }
        self.request_blocks();
    }

    fn on_block(&mut self, peer: PeerKey, block: Block) {
        let hash = block.block_hash();
        if self.in_flight.get(&hash).map(|(from, _)| *from) != Some(peer) {
            // Not asked of this peer: not ours to check or keep.
            return;
        }
        self.in_flight.remove(&hash);
        self.stats.blocks_received += 1;
        if let Err(error) = block.check() {
            // The header may well have an honest body elsewhere: asked again of another.
            self.peers
                .get_mut(&peer)
                .expect("checked")
                .lacks
                .insert(hash);
            return self.drop_peer(
                peer,
                format!("sent block {hash} whose body does not match its header: {error}"),
            );
        }
        match self.chain.get(&hash) {
            Some(info) if info.in_best_chain && self.wanted(info.height) => {
                self.arrived.insert(info.height, block);
                self.connect_arrived();
            }
            // Left the best chain while it travelled, or already stored.
            _ => {}
        }
        self.request_blocks();
    }

    /// Whether the block at best-chain `height` is still to be stored.
    fn wanted(&self, height: u32) -> bool {
        match self.stored_tip() {
            Some((tip, _)) => height > tip,
            None => true,
        }
    }

    /// The header chain changed: rewind the store if its tip left the best chain, then fetch.
    fn on_chain_changed(&mut self, outcome: &BatchOutcome) {
        if outcome.disconnected.is_empty() && outcome.connected.is_empty() {
            return;
        }
        if !outcome.disconnected.is_empty() {
            self.stats.reorgs += 1;
            // Blocks waiting for lower ones may belong to the branch that lost.
            let chain = &self.chain;
            self.arrived
                .retain(|&height, block| chain.hash_at(height) == Some(block.block_hash()));
        }
        if let Some(&(tip_height, tip_hash)) = self.stored.back() {
            if self.chain.hash_at(tip_height) != Some(tip_hash) {
                let fork = self
                    .stored
                    .iter()
                    .rev()
                    .find(|(height, hash)| self.chain.hash_at(*height) == Some(*hash))
                    .copied();
                match fork {
                    Some((fork_height, _)) => {
                        while self.stored.back().is_some_and(|&(h, _)| h > fork_height) {
                            self.stored.pop_back();
                        }
                        tracing::info!(
                            from = tip_height,
                            to = fork_height,
                            "bitcoin: the best chain forks below the stored tip: rewinding"
                        );
                        self.outputs.push_back(Output::Store(ChainUpdate::Rewind {
                            to_height: fork_height,
                        }));
                    }
                    None => {
                        let reason = format!(
                            "the best chain forks more than {MAX_REORG_DEPTH} blocks below the stored tip {tip_height}; not followed"
                        );
                        tracing::error!("bitcoin: {reason}");
                        self.stuck = Some(reason);
                    }
                }
            }
        }
        self.connect_arrived();
        self.request_blocks();
    }

    /// Hands the store every block that now extends its tip.
    fn connect_arrived(&mut self) {
        loop {
            let next = self.stored_tip().map_or(0, |(height, _)| height + 1);
            let Some(block) = self.arrived.remove(&next) else {
                return;
            };
            let hash = block.block_hash();
            if self.chain.hash_at(next) != Some(hash) {
                continue;
            }
            if self.stored.len() == MAX_REORG_DEPTH {
                self.stored.pop_front();
            }
            self.stored.push_back((next, hash));
            self.stats.blocks_stored += 1;
            self.outputs.push_back(Output::Store(ChainUpdate::Connect {
                height: next,
                block,
            }));
        }
    }

    /// Asks ready peers for the best chain's next blocks, within the window and each peer's
    /// share.
    fn request_blocks(&mut self) {
        if self.stuck.is_some() || self.chain.total_work() < self.config.min_chain_work {
            return;
        }
        let first = self.stored_tip().map_or(0, |(height, _)| height + 1);
        let last = self
            .chain
            .tip_height()
            .min(first.saturating_add(self.config.download_window - 1));
        let mut asks: BTreeMap<PeerKey, Vec<Inventory>> = BTreeMap::new();
        for height in first..=last {
            if first > self.chain.tip_height() || self.arrived.contains_key(&height) {
                continue;
            }
            let hash = self.chain.hash_at(height).expect("a best-chain height");
            if self.in_flight.contains_key(&hash) {
                continue;
            }
            let load = |peer: PeerKey, in_flight: &HashMap<BlockHash, (PeerKey, u64)>| {
                in_flight.values().filter(|(p, _)| *p == peer).count()
            };
            let chosen = self
                .peers
                .iter()
                .filter(|(_, p)| p.ready() && p.best_height >= height && !p.lacks.contains(&hash))
                .map(|(&key, _)| (load(key, &self.in_flight), key))
                .filter(|&(load, _)| load < self.config.blocks_per_peer)
                .min();
            let Some((_, peer)) = chosen else {
                continue;
            };
            self.in_flight.insert(hash, (peer, self.now_ms));
            asks.entry(peer)
                .or_default()
                .push(Inventory::WitnessBlock(hash_to(hash)));
        }
        for (peer, items) in asks {
            self.send(peer, NetworkMessage::GetData(items));
        }
    }

    /// Time passed: ends peers that stopped answering, pings the others.
    pub fn on_timer(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let timeout = self.config.request_timeout_ms;
        let late = |at: u64| now_ms.saturating_sub(at) >= timeout;
        let mut drops = Vec::new();
        let tip = self.chain.tip_height();
        for (&key, peer) in &mut self.peers {
            if !peer.ready() && late(peer.connected_ms) {
                drops.push((key, "did not finish the handshake in time".to_owned()));
            } else if peer.headers_asked_ms.is_some_and(late) {
                // bcoin sends nothing, not an empty `headers`, when it has nothing after the
                // locator: silence is a fault only from a peer that showed it has more.
                if peer.best_height > tip {
                    drops.push((
                        key,
                        format!(
                            "did not answer getheaders in time (it has {}, we {tip})",
                            peer.best_height
                        ),
                    ));
                } else {
                    peer.headers_asked_ms = None;
                }
            } else if peer.ping.is_some_and(|(_, at)| late(at)) {
                drops.push((key, "did not answer a ping in time".to_owned()));
            }
        }
        for (hash, (peer, at)) in &self.in_flight {
            if late(*at) && !drops.iter().any(|(p, _)| p == peer) {
                drops.push((*peer, format!("did not send block {hash} in time")));
            }
        }
        for (peer, reason) in drops {
            self.drop_peer(peer, reason);
        }
        let mut pings = Vec::new();
        for (&key, peer) in &mut self.peers {
            if peer.ready() && peer.ping.is_none() && now_ms >= peer.next_ping_ms {
                pings.push(key);
                peer.next_ping_ms = now_ms + self.config.ping_interval_ms;
            }
        }
        for peer in pings {
            let nonce = self.nonce();
            self.peers.get_mut(&peer).expect("just seen").ping = Some((nonce, now_ms));
            self.send(peer, NetworkMessage::Ping(nonce));
        }
    }

    /// When [`Follower::on_timer`] next has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        let timeout = self.config.request_timeout_ms;
        let peers = self.peers.values().flat_map(|peer| {
            let handshake = (!peer.ready()).then_some(peer.connected_ms + timeout);
            let headers = peer.headers_asked_ms.map(|at| at + timeout);
            let ping = match peer.ping {
                Some((_, at)) => at + timeout,
                None => peer.next_ping_ms,
            };
            [handshake, headers, Some(ping)]
        });
        let blocks = self.in_flight.values().map(|(_, at)| Some(at + timeout));
        peers.chain(blocks).flatten().min()
    }

    fn drop_peer(&mut self, peer: PeerKey, reason: String) {
        if self.peers.remove(&peer).is_none() {
            return;
        }
        self.stats.peers_dropped += 1;
        self.in_flight.retain(|_, (from, _)| *from != peer);
        self.outputs.push_back(Output::Disconnect { peer, reason });
        self.request_blocks();
    }

    fn send(&mut self, peer: PeerKey, message: NetworkMessage) {
        self.outputs.push_back(Output::Send { peer, message });
    }

    fn nonce(&mut self) -> u64 {
        // Not a secret: it only tells our own pings apart and detects a connection to self.
        self.next_nonce = self
            .next_nonce
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.next_nonce
    }
}

/// Why a header sent by a peer ends it, said for the log.
fn refusal(error: &HeaderError) -> String {
    match error {
        HeaderError::SideBranchFull { .. } => format!(
            "sent a branch with less work than the best chain, beyond what is kept of such branches: {error}"
        ),
        other => format!("sent an invalid header: {other}"),
    }
}

#[cfg(test)]
mod tests;
