//! The relay's libp2p side: transports, behaviours and their limits.
//!
//! Transports: WebRTC-direct (UDP; browsers dial it by certificate hash, no certificate
//! authority needed) and WebSocket (TCP; faster, needs `wss` in production), both carrying
//! every Shoal protocol. The WebRTC muxer is wrapped in [`shoal_net::SmallWrites`] to work
//! around libp2p WebRTC's message-size defect (see that module). The relay's transports count
//! the bytes it forwards through circuits ([`super::relayed`]).
//!
//! Behaviours: circuit relay v2 server with limits sized for cluster traffic (browser ↔ browser
//! transfers of S11–S13 run through circuits when no direct path exists), a circuit relay
//! client (the relay's reservations on its `--peer` relays, and its dials through their
//! circuits; the swarm adds its transport), identify, ping, and Shoal's request-response
//! protocols (messages, S14–S16 serving; the per-chain peer directory, S1 discovery; and the
//! transfer probe), behind the connection limits of [`super::limits`]. Each protocol reads
//! frames up to its own largest honest message: a block for messages and probes, a directory
//! answer for the directory.

use std::num::NonZeroU32;
use std::time::Duration;

use futures::future::Either;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox};
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    connection_limits, identify, memory_connection_limits, noise, ping, relay, tcp, websocket,
    yamux, PeerId,
};
use libp2p_webrtc::tokio::Certificate;
use shoal_net::codec::{message_protocol, probe_protocol};
use shoal_net::{FrameCodec, ReadBudget, SmallWrites};

use super::limits::{ConnectionCaps, PerIpLimit};
use super::relayed::{CountRelayed, RelayedBytes};

/// Identify's protocol version string for Shoal nodes.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/shoal/0.1.0";

/// Circuit relay v2 limits (libp2p's defaults, 2 minutes and 128 KiB per circuit, are far too
/// small to move blocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitLimits {
    pub max_reservations: usize,
    pub max_reservations_per_peer: usize,
    pub reservation_duration_secs: u64,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_circuit_duration_secs: u64,
    pub max_circuit_bytes: u64,
    /// New circuits a peer may open per minute.
    pub circuits_per_peer_per_minute: u32,
}

impl Default for CircuitLimits {
    fn default() -> Self {
        Self {
            max_reservations: 1024,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 3600,
            max_circuits: 512,
            max_circuits_per_peer: 64,
            max_circuit_duration_secs: 6 * 3600,
            max_circuit_bytes: 4 << 30,
            circuits_per_peer_per_minute: 120,
        }
    }
}

impl CircuitLimits {
    fn relay_config(&self) -> relay::Config {
        let per_minute =
            NonZeroU32::new(self.circuits_per_peer_per_minute.max(1)).expect("max(1) is non-zero");
        relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(self.reservation_duration_secs),
            reservation_rate_limiters: Vec::new(),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(self.max_circuit_duration_secs),
            max_circuit_bytes: self.max_circuit_bytes,
            circuit_src_rate_limiters: Vec::new(),
        }
        .reservation_rate_per_peer(
            NonZeroU32::new(30).expect("non-zero"),
            Duration::from_secs(60),
        )
        .circuit_src_per_peer(per_minute, Duration::from_secs(60))
    }
}

/// Request-response settings shared by Shoal's protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLimits {
    /// A request's whole life on its stream: read, answered, the answer written.
    pub request_timeout_secs: u64,
    /// Request streams one connection may have open at once, per protocol (one more is
    /// dropped by libp2p). A page keeps a few header requests, a query and at most 4 block
    /// fetches (`repair_parallel_max`) in flight on a connection; each open stream may hold a
    /// frame of up to 4 MiB.
    pub max_concurrent_streams: usize,
    /// Bytes of large requests (blocks, probes) being read at once, every connection
    /// together (`shoal_net::ReadBudget`): what peers that announce 4 MiB frames and stall can
    /// make the relay hold.
    pub read_budget_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            request_timeout_secs: 60,
            max_concurrent_streams: 32,
            read_budget_bytes: 256 << 20,
        }
    }
}

/// Everything the relay speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// First: a banned peer's connections are closed and refused (`super::guard`).
    pub blocked: allow_block_list::Behaviour<BlockedPeers>,
    /// A connection past a limit is refused before any other behaviour sees it.
    pub limits: connection_limits::Behaviour,
    pub per_ip: PerIpLimit,
    /// No new connection while the process uses more memory than `ConnectionCaps::max_memory_mb`.
    pub memory: memory_connection_limits::Behaviour,
    pub relay: relay::Behaviour,
    /// The relay's own reservations on its `--peer` relays (so that it is listed in their
    /// directories) and its dials through their circuits (to pages that hold a reservation
    /// only there).
    pub relay_client: relay::client::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub messages: request_response::Behaviour<FrameCodec>,
    pub probe: request_response::Behaviour<FrameCodec>,
    /// Shoal's directory protocol (`shoal_net::directory`), what browser pages use.
    pub directory: request_response::Behaviour<FrameCodec>,
}

impl Behaviour {
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        circuits: &CircuitLimits,
        requests: &RequestLimits,
        connections: &ConnectionCaps,
    ) -> Self {
        let peer_id = key.public().to_peer_id();
        let budget = ReadBudget::new(requests.read_budget_bytes);
        let codec = FrameCodec {
            read_budget: Some(budget),
            ..FrameCodec::default()
        };
        Self {
            blocked: allow_block_list::Behaviour::default(),
            limits: connections.libp2p(),
            per_ip: PerIpLimit::new(connections.max_per_ip),
            memory: memory_connection_limits::Behaviour::with_max_bytes(
                connections.max_memory_mb.saturating_mul(1 << 20),
            ),
            relay: relay::Behaviour::new(peer_id, circuits.relay_config()),
            relay_client,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL_VERSION.into(), key.public())
                    .with_agent_version(format!("shoal-relay/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            messages: request_response::Behaviour::with_codec(
                codec.clone(),
                [(message_protocol(), ProtocolSupport::Full)],
                request_response_config(requests),
            ),
            probe: request_response::Behaviour::with_codec(
                codec,
                [(probe_protocol(), ProtocolSupport::Full)],
                request_response_config(requests),
            ),
            directory: request_response::Behaviour::with_codec(
                FrameCodec {
                    max_frame_bytes: shoal_net::directory::MAX_MESSAGE_BYTES,
                    read_budget: None,
                },
                [(shoal_net::directory::protocol(), ProtocolSupport::Full)],
                request_response_config(requests),
            ),
        }
    }
}

/// A request-response behaviour on `protocol` with Shoal's frame codec, both directions.
pub fn request_response_behaviour(
    protocol: libp2p::StreamProtocol,
    limits: &RequestLimits,
) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        FrameCodec::default(),
        [(protocol, ProtocolSupport::Full)],
        request_response_config(limits),
    )
}

fn request_response_config(limits: &RequestLimits) -> request_response::Config {
    request_response::Config::default()
        .with_request_timeout(Duration::from_secs(limits.request_timeout_secs))
        .with_max_concurrent_streams(limits.max_concurrent_streams)
}

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    #[error("noise handshake setup: {0}")]
    Noise(#[from] noise::Error),
}

/// WebRTC-direct (with the small-writes workaround) and WebSocket over TCP (noise + yamux),
/// one transport. Used by native clients such as the tests; the relay uses
/// [`build_relay_transport`].
pub fn build_transport(
    key: &Keypair,
    certificate: Certificate,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetworkError> {
    transport(key, certificate, None)
}

/// [`build_transport`], with every byte the relay forwards through the circuits it serves
/// counted in `relayed` (see [`super::relayed`]).
pub fn build_relay_transport(
    key: &Keypair,
    certificate: Certificate,
    relayed: &RelayedBytes,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetworkError> {
    transport(key, certificate, Some(relayed.clone()))
}

fn transport(
    key: &Keypair,
    certificate: Certificate,
    relayed: Option<RelayedBytes>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetworkError> {
    fn boxed<M>(muxer: M, relayed: &Option<RelayedBytes>) -> StreamMuxerBox
    where
        M: StreamMuxer + Unpin + Send + 'static,
        M::Substream: Unpin + Send + 'static,
        M::Error: Send + Sync + 'static,
    {
        match relayed {
            Some(relayed) => StreamMuxerBox::new(CountRelayed::muxer(muxer, relayed.clone())),
            None => StreamMuxerBox::new(muxer),
        }
    }
    let counted = relayed.clone();
    let webrtc = libp2p_webrtc::tokio::Transport::new(key.clone(), certificate).map(
        move |(peer_id, connection), _| (peer_id, boxed(SmallWrites::new(connection), &counted)),
    );
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let ws = websocket::Config::new(tcp)
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(move |(peer_id, muxer), _| (peer_id, boxed(muxer, &relayed)));
    Ok(webrtc
        .or_transport(ws)
        .map(|either, _| match either {
            Either::Left(out) | Either::Right(out) => out,
        })
        .boxed())
}
