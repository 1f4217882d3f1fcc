//! How pages reach each other: through their relay's circuits (circuit relay v2) and its
//! per-chain directory (Shoal's directory protocol, `shoal_net::directory`). Who to connect
//! to, and what to do with a peer, stays the core node's decision: this module only turns the
//! directory's entries into the node's candidate peers.
//!
//! 1. Once a relay from the options is connected, the page listens on
//!    `<relay address>/p2p-circuit` (a reservation on the relay). Holding a reservation is
//!    what lists the page in that relay's directory.
//! 2. When the reservation is accepted, that circuit address becomes the page's external
//!    address, and every [`DISCOVER_INTERVAL_MS`] the page asks the relay's directory who else
//!    holds one, for this page's chain.
//! 3. The peers named are handed to the node as `Input::CandidatePeers`, each at
//!    `<relay address>/p2p-circuit/p2p/<peer>`; the node dials whom it chooses
//!    (`Output::Connect`), through the relay.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::{relay, Multiaddr, PeerId};
use shoal_net::{directory, node_link};

use crate::event_loop::EventLoop;

/// How often a page with a reservation asks the relay's directory for other pages.
pub const DISCOVER_INTERVAL_MS: f64 = 3_000.0;

/// Circuit and directory state, per relay.
#[derive(Default)]
pub struct Circuits {
    /// Relays we listen through: relay → its address (as dialled).
    listening: HashMap<PeerId, Multiaddr>,
    /// Relays that accepted our reservation → when we last asked their directory.
    reserved: HashMap<PeerId, f64>,
    /// Directory lookups on their way → the relay asked.
    lookups: HashMap<OutboundRequestId, PeerId>,
    /// The lookup request for this page's chain.
    lookup: Option<Vec<u8>>,
    /// Our `/p2p-circuit/webrtc` listeners (`crate::webrtc`), per relay.
    direct_listeners: HashMap<PeerId, libp2p::core::transport::ListenerId>,
}

impl Circuits {
    /// For the chain called `network`.
    pub fn new(network: &str) -> Circuits {
        Circuits {
            lookup: directory::encode_lookup(network),
            ..Circuits::default()
        }
    }
}

/// The page's address through `relay_addr`: `<relay_addr>/p2p-circuit`.
pub fn circuit_address(relay_addr: &Multiaddr) -> Multiaddr {
    relay_addr.clone().with(Protocol::P2pCircuit)
}

impl EventLoop {
    /// A relay from the options connected over `addr`: reserve a circuit slot on it.
    pub(crate) fn circuits_relay_connected(&mut self, relay: PeerId, addr: Multiaddr) {
        if self.circuits.listening.contains_key(&relay) {
            return;
        }
        match self.swarm.listen_on(circuit_address(&addr)) {
            Ok(_) => {
                // Direct connections are offered through the same relay (`crate::webrtc`).
                if self.direct.enabled() {
                    match self.swarm.listen_on(crate::webrtc::listen_address(&addr)) {
                        Ok(id) => {
                            self.circuits.direct_listeners.insert(relay, id);
                        }
                        Err(error) => web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(
                            &format!(
                                "shoal: cannot take direct connections through relay {relay}: {error}"
                            ),
                        )),
                    }
                }
                self.circuits.listening.insert(relay, addr);
            }
            Err(error) => web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(&format!(
                "shoal: cannot listen through relay {relay}: {error}"
            ))),
        }
    }

    /// A relay connection is gone: its reservation went with it.
    pub(crate) fn circuits_relay_lost(&mut self, relay: &PeerId) {
        if let Some(addr) = self.circuits.listening.remove(relay) {
            self.swarm.remove_external_address(&circuit_address(&addr));
            self.swarm
                .remove_external_address(&crate::webrtc::listen_address(&addr));
        }
        if let Some(id) = self.circuits.direct_listeners.remove(relay) {
            self.swarm.remove_listener(id);
        }
        self.circuits.reserved.remove(relay);
    }

    pub(crate) fn on_relay_client_event(&mut self, event: relay::client::Event) {
        if let relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } = event {
            let Some(addr) = self.circuits.listening.get(&relay_peer_id).cloned() else {
                return;
            };
            self.swarm.add_external_address(circuit_address(&addr));
            if self.direct.enabled() {
                self.swarm
                    .add_external_address(crate::webrtc::listen_address(&addr));
            }
            self.circuits.reserved.insert(relay_peer_id, 0.0);
            self.circuits_tick();
        }
    }

    pub(crate) async fn on_directory_event(
        &mut self,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        let (request_id, response) = match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => (request_id, response),
            request_response::Event::OutboundFailure { request_id, .. } => {
                self.circuits.lookups.remove(&request_id);
                return;
            }
            _ => return,
        };
        let Some(relay) = self.circuits.lookups.remove(&request_id) else {
            return;
        };
        let Some(relay_addr) = self.circuits.listening.get(&relay).cloned() else {
            return;
        };
        let Ok(peers) = directory::decode_peers(&response) else {
            return;
        };
        let me = *self.swarm.local_peer_id();
        let listed: Vec<String> = peers.iter().map(|peer| peer.to_string()).collect();
        crate::cluster_node::debug(format!(
            "shoal: directory of {relay} lists [{}]",
            listed.join(", ")
        ));
        let through = circuit_address(&relay_addr);
        let candidates = peers
            .into_iter()
            .filter(|peer| *peer != me)
            .map(|peer| (peer, node_link::address_of(&through, peer)))
            .collect();
        self.node_candidates(candidates).await;
    }

    /// Asks each relay that holds our reservation who else is there, at most every
    /// [`DISCOVER_INTERVAL_MS`] and one lookup at a time per relay.
    pub(crate) fn circuits_tick(&mut self) {
        let Some(lookup) = self.circuits.lookup.clone() else {
            return;
        };
        let now = js_sys::Date::now();
        let asking: Vec<PeerId> = self.circuits.lookups.values().copied().collect();
        for (relay, last) in self.circuits.reserved.iter_mut() {
            if now - *last >= DISCOVER_INTERVAL_MS && !asking.contains(relay) {
                *last = now;
                let id = self
                    .swarm
                    .behaviour_mut()
                    .directory
                    .send_request(relay, lookup.clone());
                self.circuits.lookups.insert(id, *relay);
            }
        }
    }
}
