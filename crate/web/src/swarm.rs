//! The browser node's libp2p swarm: it reaches relays over WebRTC-direct
//! (`libp2p-webrtc-websys`, wrapped in [`shoal_net::SmallWrites`] against the WebRTC
//! message-size defect and in [`shoal_net::EagerReads`] against its 16 KiB read buffer) or
//! WebSocket (`websocket-websys` + noise + yamux), whichever transport the relay's multiaddr
//! names, and speaks Shoal's request-response protocols over both.
//! Other pages are found in the relay's per-chain directory (Shoal's directory protocol,
//! `shoal_net::directory`) and reached first through the relay's circuits (circuit relay v2
//! client: the page reserves a slot on its relay and dials other pages' `/p2p-circuit`
//! addresses), then directly over libp2p's `/webrtc` ([`crate::webrtc`]), whose signalling
//! stream runs on the circuit (libp2p-stream). Identify runs on every connection (js-libp2p
//! peers expect it).

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::{upgrade, Transport as _};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    identify, noise, ping, relay, webrtc_websys, websocket_websys, yamux, Swarm, SwarmBuilder,
};
use shoal_net::{EagerReads, FrameCodec, SmallWrites, MAX_EAGER_READ_BYTES};

/// How long one request may take before it fails (a 4 MB block over a slow link fits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most concurrent request streams per connection and protocol.
pub const MAX_CONCURRENT_STREAMS: usize = 64;
/// A connection with nothing to do is closed after this long.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// How often a relay connection is pinged; a failed ping closes it (and the node redials), so
/// a relay that vanished without closing is noticed within about `PING_INTERVAL + PING_TIMEOUT`.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the browser node speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub ping: ping::Behaviour,
    pub identify: identify::Behaviour,
    /// The `/webrtc-signaling/0.0.1` streams of [`crate::webrtc`].
    pub stream: libp2p_stream::Behaviour,
    /// Circuits through relays to other pages.
    pub relay_client: relay::client::Behaviour,
    /// The relay's per-chain directory: namespace out, peer ids back.
    pub directory: request_response::Behaviour<FrameCodec>,
    /// `shoal_core::wire::Message` requests and responses.
    pub msg: request_response::Behaviour<FrameCodec>,
    /// The transfer probe: bytes out, their SHA-256 back.
    pub probe: request_response::Behaviour<FrameCodec>,
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    #[error("libp2p swarm setup failed: {0}")]
    Build(String),
}

/// The protocol version identify announces.
pub const IDENTIFY_PROTOCOL: &str = "/shoal/1.0.0";

/// Builds the swarm for `key`; direct connections use `ice_servers`.
pub fn build(
    key: Keypair,
    ice_servers: Vec<crate::webrtc::IceServer>,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let stream = libp2p_stream::Behaviour::new();
    let direct = crate::webrtc::Transport::new(stream.new_control(), ice_servers);
    let (relay_transport, relay_client) = relay::client::new(key.public().to_peer_id());
    let request_config = request_response::Config::default()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_wasm_bindgen()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                // SmallWrites: no data-channel message above 8 KiB (the relay cannot read it).
                // EagerReads: streams read what arrives while request-response closes them, so
                // the transport's 16 KiB read buffer never resets them as "overloaded" (see
                // shoal_net::eager_reads and BENCHMARKS.md).
                let webrtc = webrtc_websys::Transport::new(webrtc_websys::Config::new(key)).map(
                    |(peer, connection), _| {
                        let muxer = SmallWrites::new(StreamMuxerBox::new(connection));
                        let muxer = EagerReads::new(muxer, MAX_EAGER_READ_BYTES);
                        (peer, StreamMuxerBox::new(muxer))
                    },
                );
                let websocket = websocket_websys::Transport::default()
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
                let circuits = relay_transport
                    .upgrade(upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
                // `/webrtc` first: the relay client's transport would dial a
                // `/p2p-circuit/webrtc` address as a plain circuit.
                Ok(direct
                    .or_transport(circuits)
                    .map(|either, _| either.into_inner())
                    .or_transport(webrtc)
                    .map(|either, _| either.into_inner())
                    .or_transport(websocket)
                    .map(|either, _| either.into_inner()))
            },
        )
        .map_err(|e| SwarmError::Build(e.to_string()))?
        .with_behaviour(|key| Behaviour {
            relay_client,
            stream,
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(format!("shoal-web/{}", env!("CARGO_PKG_VERSION"))),
            ),
            directory: request_response::Behaviour::with_codec(
                FrameCodec::default(),
                [(shoal_net::directory::protocol(), ProtocolSupport::Outbound)],
                request_config.clone(),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            msg: request_response::Behaviour::with_codec(
                FrameCodec::default(),
                [(shoal_net::codec::message_protocol(), ProtocolSupport::Full)],
                request_config.clone(),
            ),
            probe: request_response::Behaviour::with_codec(
                FrameCodec::default(),
                [(
                    shoal_net::codec::probe_protocol(),
                    // Probe builds answer other pages' probes (the tab-to-tab measurement).
                    if cfg!(feature = "probes") {
                        ProtocolSupport::Full
                    } else {
                        ProtocolSupport::Outbound
                    },
                )],
                request_config,
            ),
        })
        .map_err(|e| SwarmError::Build(e.to_string()))?
        .with_swarm_config(|c| {
            // Every stream this page opens goes to a peer that speaks the one protocol asked
            // for (Shoal's, ping, circuit relay): the request goes out with the protocol's name
            // instead of a round trip later (multistream-select's `V1Lazy`). Through a relay's
            // circuit that round trip crossed the relay twice: it was a third of a member's
            // answer to a transaction query (BENCHMARKS.md, issue 12).
            c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                .with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}
