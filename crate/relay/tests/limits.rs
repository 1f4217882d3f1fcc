//! The relay's libp2p front door (issue 16, hole 2): connections past the per-address cap are
//! refused however many fresh keys one machine makes, the connections already in are served,
//! and a place freed by a closed connection can be taken again. The relay is the real binary,
//! a child process on 127.0.0.1 stopped by its own pid; every client is a real libp2p swarm
//! with a key of its own.

mod common;

use std::time::Duration;

use common::{Relay, WAIT};

use futures::StreamExt;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm};
use shoal_core::wire::{self, Message};
use shoal_net::FrameCodec;
use shoal_relay::serve::network::{request_response_behaviour, RequestLimits};

const PER_IP: usize = 6;

#[derive(NetworkBehaviour)]
struct Client {
    messages: request_response::Behaviour<FrameCodec>,
}

fn client() -> Swarm<Client> {
    common::swarm(|| Client {
        messages: request_response_behaviour(
            shoal_net::codec::message_protocol(),
            &RequestLimits::default(),
        ),
    })
}

/// Dials `addr` and asks for the headers from height 0: `Ok` once answered, `Err` if the
/// connection was refused or closed first.
async fn connect_and_ask(swarm: &mut Swarm<Client>, addr: &Multiaddr) -> Result<(), String> {
    swarm.dial(addr.clone()).map_err(|e| e.to_string())?;
    let run = async {
        let mut asked = None;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if asked.is_none() => {
                    let request = Message::GetHeaders {
                        request_id: 1,
                        start_height: 0,
                        max_count: 2,
                    };
                    let bytes = wire::encode(&request).expect("encodes");
                    asked = Some(swarm.behaviour_mut().messages.send_request(&peer_id, bytes));
                }
                SwarmEvent::Behaviour(ClientEvent::Messages(
                    request_response::Event::Message {
                        message: RrMessage::Response { request_id, .. },
                        ..
                    },
                )) if Some(request_id) == asked => return Ok(()),
                SwarmEvent::Behaviour(ClientEvent::Messages(
                    request_response::Event::OutboundFailure { error, .. },
                )) => return Err(format!("request failed: {error}")),
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(format!("dial failed: {error}"))
                }
                SwarmEvent::ConnectionClosed { cause, .. } => {
                    return Err(format!("closed: {cause:?}"))
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, run)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

/// Drives a client's swarm for a while (keeps its connection's keep-alive going).
async fn drive(swarm: &mut Swarm<Client>, for_ms: u64) {
    let _ = tokio::time::timeout(Duration::from_millis(for_ms), async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_address_cap_are_refused_and_freed_places_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let per_ip = PER_IP.to_string();
    let relay = Relay::start(
        dir.path(),
        &[
            "--initial-blocks",
            "3",
            "--block-interval-secs",
            "0",
            "--max-connections-per-ip",
            &per_ip,
        ],
    );
    let (ws, relay_peer) = (relay.ws.clone(), relay.peer);

    // 3 × the cap, each with a fresh key, all from 127.0.0.1.
    let mut clients: Vec<Swarm<Client>> = (0..3 * PER_IP).map(|_| client()).collect();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for (i, swarm) in clients.iter_mut().enumerate() {
        match connect_and_ask(swarm, &ws).await {
            Ok(()) => admitted.push(i),
            Err(error) => refused.push((i, error)),
        }
    }
    assert_eq!(
        admitted,
        (0..PER_IP).collect::<Vec<_>>(),
        "the first {PER_IP} are let in; refused: {refused:?}"
    );
    assert_eq!(refused.len(), 2 * PER_IP);

    // The admitted are still served.
    for &i in &admitted {
        drive(&mut clients[i], 50).await;
        assert!(
            clients[i].is_connected(&relay_peer),
            "client {i} stays connected"
        );
    }

    // One leaves: its place is free for a newcomer, and only one.
    let leaving = admitted[0];
    let _ = clients[leaving].disconnect_peer_id(relay_peer);
    drive(&mut clients[leaving], 500).await;
    let mut newcomers: Vec<Swarm<Client>> = (0..2).map(|_| client()).collect();
    let mut results = Vec::new();
    for swarm in newcomers.iter_mut() {
        // The relay notices the close asynchronously: try for a while.
        let mut result = Err(String::new());
        for _ in 0..20 {
            result = connect_and_ask(swarm, &ws).await;
            if result.is_ok() || !results.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        results.push(result.is_ok());
    }
    assert_eq!(results, [true, false], "one freed place, taken once");
}
