//! Which pages get a direct connection, and what happens to the circuit then.
//!
//! Pages meet through a relay's circuit (`circuits`). Once a circuit to another page is up,
//! one of the two — the one whose peer id is smaller, so that exactly one dials — dials the
//! other's `/webrtc` address ([`crate::webrtc`]); the signalling runs on that circuit. When the
//! direct connection is up, both close their circuits to each other: from then on every
//! request between them (heartbeats, views, block transfers) goes over the direct connection
//! and the relay carries none of it. If the direct connection cannot be made (no ICE route,
//! a peer that does not speak `/webrtc-signaling`), the circuit stays and carries everything,
//! and the dial is tried again after a back-off ([`RETRY_MIN_MS`] doubling to
//! [`RETRY_MAX_MS`]). If a direct connection drops, the peer is gone for the node, which
//! reconnects through a circuit as for any lost peer, and the upgrade starts again.

use std::collections::{HashMap, HashSet};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::event_loop::{now_ms, EventLoop};
use crate::status::Transport;

/// A direct connection that showed no sign of life (up, or a ping answered) for this long is
/// taken for stale when its peer comes through a circuit again: a ping goes every
/// `swarm::PING_INTERVAL` (5 s).
pub const ALIVE_WITHIN_MS: f64 = 7_000.0;

/// First wait before a failed direct dial to a peer is tried again.
pub const RETRY_MIN_MS: f64 = 15_000.0;
/// Longest wait between tries.
pub const RETRY_MAX_MS: f64 = 600_000.0;

/// Direct-connection state of the page.
pub struct Direct {
    /// `directConnections`.
    enabled: bool,
    /// Every open connection: its peer and transport.
    connections: HashMap<ConnectionId, (PeerId, Transport)>,
    /// Direct dials on their way: connection id → peer, when dialled.
    dialling: HashMap<ConnectionId, (PeerId, f64)>,
    /// When the first circuit to each peer came up (for the set-up time).
    circuit_at: HashMap<PeerId, f64>,
    /// Peers whose direct dial failed: (failures so far, not before this time).
    retry: HashMap<PeerId, (u32, f64)>,
    /// Peers that are relays (never dialled directly).
    relays: HashSet<PeerId>,
    /// Peers whose identify named Shoal's message protocol: other Shoal pages, the only ones
    /// this page dials directly by itself (anyone may dial it).
    shoal_peers: HashSet<PeerId>,
    /// Peers a direct connection was asked for (`probeDial`), whatever they are: dialled once a
    /// circuit to them is up.
    wanted: HashSet<PeerId>,
    /// Each connection's last ping round trip, milliseconds.
    rtt_ms: HashMap<ConnectionId, f64>,
    /// When each direct connection last showed it is alive: up, or a ping answered.
    alive_at: HashMap<ConnectionId, f64>,
    /// Each peer's agent version, from identify.
    agents: HashMap<PeerId, String>,
    /// Direct connections made, direct dials failed (for `status()` and the benchmark).
    pub made: u64,
    pub failed: u64,
}

impl Direct {
    pub fn new(enabled: bool, relays: impl IntoIterator<Item = PeerId>) -> Direct {
        Direct {
            enabled,
            connections: HashMap::new(),
            dialling: HashMap::new(),
            circuit_at: HashMap::new(),
            retry: HashMap::new(),
            relays: relays.into_iter().collect(),
            shoal_peers: HashSet::new(),
            wanted: HashSet::new(),
            rtt_ms: HashMap::new(),
            alive_at: HashMap::new(),
            agents: HashMap::new(),
            made: 0,
            failed: 0,
        }
    }

    /// Whether direct connections are on (`directConnections`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Every open connection with its transport.
    pub fn connections(&self) -> impl Iterator<Item = (&ConnectionId, &(PeerId, Transport))> {
        self.connections.iter()
    }

    fn has(&self, peer: &PeerId, transport: Transport) -> bool {
        self.connections
            .values()
            .any(|(p, t)| p == peer && *t == transport)
    }

    fn of(&self, peer: &PeerId, transport: Transport) -> Vec<ConnectionId> {
        (self.connections.iter())
            .filter(|(_, (p, t))| p == peer && *t == transport)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A connection's last ping round trip (ms).
    pub fn rtt_ms(&self, connection: &ConnectionId) -> Option<f64> {
        self.rtt_ms.get(connection).copied()
    }

    /// A peer's agent version, from identify.
    pub fn agent(&self, peer: &PeerId) -> Option<&str> {
        self.agents.get(peer).map(String::as_str)
    }

    /// A ping over `connection` came back after `rtt_ms`.
    pub fn pinged(&mut self, connection: ConnectionId, rtt_ms: f64) {
        if self.connections.contains_key(&connection) {
            self.rtt_ms.insert(connection, rtt_ms);
            self.alive_at.insert(connection, now_ms());
        }
    }

    /// The best transport we have to `peer`: direct before anything else.
    pub fn transport_to(&self, peer: &PeerId) -> Option<Transport> {
        let mut best = None;
        for (p, t) in self.connections.values() {
            if p == peer && (best.is_none() || *t == Transport::WebRtc) {
                best = Some(*t);
            }
        }
        best
    }

    /// Whether this page should dial `peer` directly now.
    fn should_dial(&self, local: &PeerId, peer: &PeerId, now: f64) -> bool {
        self.enabled
            && !self.relays.contains(peer)
            && (self.wanted.contains(peer)
                || (self.shoal_peers.contains(peer) && local.to_bytes() < peer.to_bytes()))
            && self.has(peer, Transport::Circuit)
            && !self.has(peer, Transport::WebRtc)
            && !self.dialling.values().any(|(p, _)| p == peer)
            && self.retry.get(peer).is_none_or(|(_, at)| now >= *at)
    }
}

/// The address a direct dial to `peer` uses (the relay part is not needed: the signalling
/// runs on the circuit already open).
pub fn dial_address(peer: PeerId) -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::P2pCircuit)
        .with(Protocol::WebRTC)
        .with(Protocol::P2p(peer))
}

impl EventLoop {
    /// A connection is up.
    pub(crate) fn direct_connection_up(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        transport: Transport,
    ) {
        self.direct
            .connections
            .insert(connection, (peer, transport));
        let now = now_ms();
        match transport {
            Transport::WebRtc => {
                self.direct.alive_at.insert(connection, now);
                let dial_ms = (self.direct.dialling.remove(&connection)).map(|(_, at)| now - at);
                let after_circuit_ms = self.direct.circuit_at.get(&peer).map(|at| now - at);
                self.direct.retry.remove(&peer);
                self.direct.made += 1;
                crate::cluster_node::debug(format!("shoal: direct connection to {peer} is up"));
                self.emit_detail(
                    "connection",
                    &crate::status::ConnectionEvent {
                        peer_id: peer.to_string(),
                        transport,
                        up: true,
                        after_circuit_ms,
                        dial_ms,
                    },
                );
                // The circuit has done its job: everything goes over the direct connection.
                for circuit in self.direct.of(&peer, Transport::Circuit) {
                    self.swarm.close_connection(circuit);
                }
            }
            // A peer we have a direct connection to came through a circuit again. Either both
            // pages dialled circuits at once (the direct connection is alive: the circuit goes),
            // or the peer restarted without closing its side (a crashed tab; a closed or
            // reloaded one ends the connection's transports, `webrtc::Connection`) and the
            // direct connection leads nowhere: then the circuit stays and is upgraded, and the
            // dead connection goes — requests sent on it would be lost until ICE gives up.
            Transport::Circuit if self.direct.has(&peer, Transport::WebRtc) => {
                let direct = self.direct.of(&peer, Transport::WebRtc);
                let alive = direct.iter().any(|id| {
                    (self.direct.alive_at.get(id)).is_some_and(|at| now - at <= ALIVE_WITHIN_MS)
                });
                if alive {
                    self.swarm.close_connection(connection);
                } else {
                    self.direct.circuit_at.insert(peer, now);
                    for stale in direct {
                        crate::cluster_node::debug(format!(
                            "shoal: {peer} came through a circuit again and its direct connection was silent: closed as stale"
                        ));
                        self.swarm.close_connection(stale);
                    }
                }
            }
            Transport::Circuit => {
                self.direct.circuit_at.entry(peer).or_insert(now);
                self.direct_tick_peer(peer);
            }
            _ => {}
        }
    }

    /// `peer` identified itself: a Shoal page (it speaks Shoal's message protocol) is dialled
    /// directly if this page is the one to.
    pub(crate) fn direct_identified(&mut self, peer: PeerId, info: &libp2p::identify::Info) {
        const MAX_AGENT_CHARS: usize = 128;
        let agent: String = info.agent_version.chars().take(MAX_AGENT_CHARS).collect();
        self.direct.agents.insert(peer, agent);
        let shoal = shoal_net::codec::message_protocol();
        if info.protocols.contains(&shoal) {
            self.direct.shoal_peers.insert(peer);
            self.direct_tick_peer(peer);
        }
    }

    /// A connection closed.
    pub(crate) fn direct_connection_down(&mut self, connection: ConnectionId) {
        self.direct.rtt_ms.remove(&connection);
        self.direct.alive_at.remove(&connection);
        let Some((peer, transport)) = self.direct.connections.remove(&connection) else {
            return;
        };
        if !self.direct.connections.values().any(|(p, _)| *p == peer) {
            self.direct.shoal_peers.remove(&peer);
            self.direct.agents.remove(&peer);
            self.direct.circuit_at.remove(&peer);
        }
        if transport == Transport::WebRtc {
            // A circuit still there (a restarted peer's) is upgraded again.
            self.direct_tick_peer(peer);
            self.emit_detail(
                "connection",
                &crate::status::ConnectionEvent {
                    peer_id: peer.to_string(),
                    transport: Transport::WebRtc,
                    up: false,
                    after_circuit_ms: None,
                    dial_ms: None,
                },
            );
        }
    }

    /// A dial failed: if it was a direct one, the circuit stays and the dial waits.
    pub(crate) fn direct_dial_failed(&mut self, connection: ConnectionId, error: &str) {
        let Some((peer, _)) = self.direct.dialling.remove(&connection) else {
            return;
        };
        self.direct.failed += 1;
        let now = now_ms();
        let entry = self.direct.retry.entry(peer).or_insert((0, now));
        entry.0 += 1;
        let wait = (RETRY_MIN_MS * 2f64.powi(entry.0 as i32 - 1)).min(RETRY_MAX_MS);
        entry.1 = now + wait;
        web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(&format!(
            "shoal: no direct connection to {peer} ({error}); its circuit carries the traffic, next try in {} s",
            (wait / 1000.0) as u64
        )));
    }

    fn direct_tick_peer(&mut self, peer: PeerId) {
        let local = *self.swarm.local_peer_id();
        if !self.direct.should_dial(&local, &peer, now_ms()) {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![dial_address(peer)])
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        let now = now_ms();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.direct.dialling.insert(id, (peer, now));
            }
            Err(error) => {
                self.direct.dialling.insert(id, (peer, now));
                self.direct_dial_failed(id, &error.to_string());
            }
        }
    }

    /// Asks for a direct connection to the peer of `addr` (`<relay>/p2p-circuit/webrtc/p2p/<peer>`):
    /// through the circuit `<relay>/p2p-circuit/p2p/<peer>` first when there is none, then
    /// directly over it. (Test builds: `probeDial`.)
    #[cfg(feature = "probes")]
    pub(crate) fn direct_want(&mut self, addr: &Multiaddr) -> Result<(), String> {
        let peer = crate::webrtc::dial_peer(addr)
            .ok_or_else(|| format!("{addr} is not a /p2p-circuit/webrtc/p2p/<peer> address"))?;
        self.direct.wanted.insert(peer);
        self.direct.retry.remove(&peer);
        if self.direct.has(&peer, Transport::Circuit) {
            self.direct_tick_peer(peer);
            return Ok(());
        }
        let circuit: Multiaddr = addr
            .iter()
            .filter(|p| !matches!(p, Protocol::WebRTC))
            .collect();
        self.swarm.dial(circuit).map_err(|error| error.to_string())
    }

    /// Dials the peers whose back-off ended.
    pub(crate) fn direct_tick(&mut self) {
        let peers: HashSet<PeerId> = (self.direct.connections.values())
            .filter(|(_, t)| *t == Transport::Circuit)
            .map(|(p, _)| *p)
            .collect();
        for peer in peers {
            self.direct_tick_peer(peer);
        }
    }
}
