//! `/status.json`'s `relayed_bytes` counts what the relay forwards through circuits, and only
//! that: two native clients, one reserving a slot over WebRTC-direct, the other talking to the
//! relay over WebSocket. Neither the reservation nor 256 KiB sent to the relay itself moves
//! the count; 256 KiB sent to the other client through a circuit moves it by those bytes, their
//! answers and the two ends' own framing (noise, yamux), and not twice over.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{relay, Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use shoal_net::FrameCodec;
use shoal_relay::serve::network::{build_transport, request_response_behaviour, RequestLimits};

use common::{Relay, WAIT};

/// Bytes each side sends: to the relay, then through the circuit.
const SENT_BYTES: usize = 256 * 1024;
/// In requests of this size (the probe answers each with a 32-byte digest).
const REQUEST_BYTES: usize = 64 * 1024;

#[derive(NetworkBehaviour)]
struct Client {
    relay: relay::client::Behaviour,
    probe: request_response::Behaviour<FrameCodec>,
}

/// A client that can reserve a slot, dial through circuits and answer probes (with the
/// request's SHA-256, as the relay does).
fn client() -> Swarm<Client> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let certificate =
        libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng()).expect("certificate");
    let transport = build_transport(&key, certificate).expect("transport");
    let Ok(builder) = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport);
    builder
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay| Client {
            relay,
            probe: request_response_behaviour(
                shoal_net::codec::probe_protocol(),
                &RequestLimits::default(),
            ),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}

/// The relay's `relayed_bytes` now.
fn relayed_bytes(relay: &Relay) -> u64 {
    let mut stream = std::net::TcpStream::connect(relay.http_addr()).expect("connect");
    write!(stream, "GET /status.json HTTP/1.0\r\nHost: relay\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    let status: serde_json::Value = serde_json::from_str(body).expect("JSON");
    status["relayed_bytes"].as_u64().expect("relayed_bytes")
}

/// Drives `swarm` until `done` returns a value for one of its events.
async fn until<T>(
    swarm: &mut Swarm<Client>,
    what: &str,
    mut done: impl FnMut(&mut Swarm<Client>, SwarmEvent<ClientEvent>) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let event = swarm.select_next_some().await;
            if let Some(value) = done(swarm, event) {
                return value;
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
}

/// Sends `SENT_BYTES` in probe requests to `peer` and checks each answer.
async fn send_probes(swarm: &mut Swarm<Client>, peer: PeerId) {
    for i in 0..SENT_BYTES / REQUEST_BYTES {
        let payload: Vec<u8> = (0..REQUEST_BYTES).map(|j| (i * 31 + j) as u8).collect();
        let id = swarm
            .behaviour_mut()
            .probe
            .send_request(&peer, payload.clone());
        let digest = until(swarm, "a probe answer", |_, event| match event {
            SwarmEvent::Behaviour(ClientEvent::Probe(request_response::Event::Message {
                message:
                    RrMessage::Response {
                        request_id,
                        response,
                    },
                ..
            })) if request_id == id => Some(response),
            SwarmEvent::Behaviour(ClientEvent::Probe(
                request_response::Event::OutboundFailure { error, .. },
            )) => panic!("probe to {peer} failed: {error}"),
            _ => None,
        })
        .await;
        assert_eq!(digest, Sha256::digest(&payload).to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_bytes_count_circuit_traffic_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &["--initial-blocks", "3", "--block-interval-secs", "0"],
    );
    assert_eq!(relayed_bytes(&relay), 0, "nothing relayed at start");

    // The listener reserves a slot over WebRTC-direct (the browsers' transport; the native one
    // dials only from a listening socket) and answers probes.
    let mut listener = client();
    let listener_id = *listener.local_peer_id();
    listener
        .listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().unwrap())
        .expect("listen");
    until(&mut listener, "a WebRTC socket", |_, event| {
        matches!(event, SwarmEvent::NewListenAddr { .. }).then_some(())
    })
    .await;
    listener
        .listen_on(relay.webrtc.clone().with(Protocol::P2pCircuit))
        .expect("listen through the relay");
    until(&mut listener, "a reservation", |_, event| match event {
        SwarmEvent::Behaviour(ClientEvent::Relay(
            relay::client::Event::ReservationReqAccepted { .. },
        )) => Some(()),
        SwarmEvent::ListenerClosed { reason, .. } => panic!("reservation refused: {reason:?}"),
        _ => None,
    })
    .await;
    let answering = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(ClientEvent::Probe(request_response::Event::Message {
                message:
                    RrMessage::Request {
                        request, channel, ..
                    },
                ..
            })) = listener.select_next_some().await
            {
                let digest = Sha256::digest(&request).to_vec();
                let _ = listener
                    .behaviour_mut()
                    .probe
                    .send_response(channel, digest);
            }
        }
    });

    // The dialer talks to the relay itself over WebSocket.
    let mut dialer = client();
    dialer.dial(relay.ws.clone()).expect("dial the relay");
    until(&mut dialer, "a connection to the relay", |_, event| {
        matches!(event, SwarmEvent::ConnectionEstablished { .. }).then_some(())
    })
    .await;
    send_probes(&mut dialer, relay.peer).await;
    assert_eq!(
        relayed_bytes(&relay),
        0,
        "a reservation and traffic to the relay itself are not relayed bytes"
    );

    // Then to the listener through a circuit (hop over WebSocket, stop over WebRTC-direct).
    let circuit: Multiaddr = relay
        .ws
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(listener_id));
    dialer.dial(circuit).expect("dial through the relay");
    until(
        &mut dialer,
        "a relayed connection",
        |_, event| match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if peer_id == listener_id => {
                assert!(endpoint.is_relayed(), "through the circuit");
                Some(())
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if peer == listener_id => panic!("circuit dial failed: {error}"),
            _ => None,
        },
    )
    .await;
    send_probes(&mut dialer, listener_id).await;
    let relayed = relayed_bytes(&relay);
    answering.abort();

    let answers = (SENT_BYTES / REQUEST_BYTES * 32) as u64;
    let sent = SENT_BYTES as u64 + answers;
    eprintln!("relayed {relayed} bytes for {sent} bytes of requests and answers");
    assert!(relayed >= sent, "{relayed} bytes relayed, {sent} sent");
    // The ends' own framing: a noise handshake, a 16-byte tag and 2-byte length per noise
    // frame of up to 64 KiB, 12-byte yamux headers, the streams' negotiations, the frame
    // codec's lengths. Counting a byte twice (read and written) would pass 2 × sent.
    let framing = sent / 16 + 16 * 1024;
    assert!(
        relayed <= sent + framing,
        "{relayed} bytes relayed, at most {} expected",
        sent + framing
    );
}
