//! How pages reach each other: through their relay's circuits (circuit relay v2) and its
//! per-chain directory (rendezvous). Who to connect to, and what to do with a peer, stays the
//! core node's decision: this module only turns the directory's entries into the node's
//! candidate peers.
//!
//! 1. Once a relay from the options is connected, the page listens on
//!    `<relay address>/p2p-circuit` (a reservation on the relay).
//! 2. When the reservation is accepted, that circuit address becomes the page's external
//!    address and the page registers it in the relay's directory under
//!    `shoal_net::directory::namespace(network)`.
//! 3. Every [`DISCOVER_INTERVAL_MS`] it asks the directory who else is registered, and hands
//!    those peers to the node as `Input::CandidatePeers`; the node dials whom it chooses
//!    (`Output::Connect`), through the relay.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::{relay, rendezvous, Multiaddr, PeerId};
use shoal_net::node_link;

use crate::node::Driver;

/// How often a registered page asks the directory for other pages.
pub const DISCOVER_INTERVAL_MS: f64 = 3_000.0;
/// Most directory entries taken per lookup.
pub const DISCOVER_LIMIT: u64 = 64;

/// Circuit and directory state, per relay.
#[derive(Default)]
pub struct Circuits {
    /// Relays we listen through: relay → its address (as dialled).
    listening: HashMap<PeerId, Multiaddr>,
    /// Relays whose directory holds our registration.
    registered: HashMap<PeerId, f64>,
    namespace: Option<rendezvous::Namespace>,
}

impl Circuits {
    /// For the chain called `network`.
    pub fn new(network: &str) -> Circuits {
        Circuits {
            namespace: shoal_net::directory::namespace(network)
                .and_then(|n| rendezvous::Namespace::new(n).ok()),
            ..Circuits::default()
        }
    }
}

/// The page's address through `relay_addr`: `<relay_addr>/p2p-circuit`.
pub fn circuit_address(relay_addr: &Multiaddr) -> Multiaddr {
    relay_addr.clone().with(Protocol::P2pCircuit)
}

impl Driver {
    /// A relay from the options connected over `addr`: reserve a circuit slot on it.
    pub(crate) fn circuits_relay_connected(&mut self, relay: PeerId, addr: Multiaddr) {
        if self.circuits.listening.contains_key(&relay) {
            return;
        }
        match self.swarm.listen_on(circuit_address(&addr)) {
            Ok(_) => {
                self.circuits.listening.insert(relay, addr);
            }
            Err(error) => web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(&format!(
                "shoal: cannot listen through relay {relay}: {error}"
            ))),
        }
    }

    /// A relay connection is gone: its reservation and registration went with it.
    pub(crate) fn circuits_relay_lost(&mut self, relay: &PeerId) {
        if let Some(addr) = self.circuits.listening.remove(relay) {
            self.swarm.remove_external_address(&circuit_address(&addr));
        }
        self.circuits.registered.remove(relay);
    }

    pub(crate) fn on_relay_client_event(&mut self, event: relay::client::Event) {
        if let relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } = event {
            let Some(addr) = self.circuits.listening.get(&relay_peer_id).cloned() else {
                return;
            };
            self.swarm.add_external_address(circuit_address(&addr));
            if let Some(namespace) = self.circuits.namespace.clone() {
                if let Err(error) =
                    self.swarm
                        .behaviour_mut()
                        .directory
                        .register(namespace, relay_peer_id, None)
                {
                    web_sys::console::warn_1(&wasm_bindgen::JsValue::from_str(&format!(
                        "shoal: cannot register in the directory: {error}"
                    )));
                }
            }
        }
    }

    pub(crate) async fn on_directory_event(&mut self, event: rendezvous::client::Event) {
        match event {
            rendezvous::client::Event::Registered {
                rendezvous_node, ..
            } => {
                self.circuits.registered.insert(rendezvous_node, 0.0);
                self.circuits_tick();
            }
            rendezvous::client::Event::Discovered { registrations, .. } => {
                let me = *self.swarm.local_peer_id();
                let candidates = registrations
                    .iter()
                    .filter(|r| r.record.peer_id() != me)
                    .filter_map(|r| {
                        let peer = r.record.peer_id();
                        let addr = r.record.addresses().first()?;
                        Some((peer, node_link::address_of(addr, peer)))
                    })
                    .collect();
                self.node_candidates(candidates).await;
            }
            _ => {}
        }
    }

    /// Asks each directory we are registered in for other pages, at most every
    /// [`DISCOVER_INTERVAL_MS`].
    pub(crate) fn circuits_tick(&mut self) {
        let Some(namespace) = self.circuits.namespace.clone() else {
            return;
        };
        let now = js_sys::Date::now();
        for (relay, last) in self.circuits.registered.iter_mut() {
            if now - *last >= DISCOVER_INTERVAL_MS {
                *last = now;
                self.swarm.behaviour_mut().directory.discover(
                    Some(namespace.clone()),
                    None,
                    Some(DISCOVER_LIMIT),
                    *relay,
                );
            }
        }
    }
}
