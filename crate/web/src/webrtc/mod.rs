//! Direct page-to-page connections: libp2p's `/webrtc` transport (libp2p/specs
//! `webrtc/webrtc.md`), which rust-libp2p's browser transport does not have
//! (libp2p/rust-libp2p#4389).
//!
//! A page listens on `<relay address>/p2p-circuit/webrtc` (beside its `/p2p-circuit`
//! reservation) and is dialled at `<relay address>/p2p-circuit/webrtc/p2p/<page>`. A dial opens
//! a `/webrtc-signaling/0.0.1` stream on the relayed connection the two pages already have (or
//! that libp2p-stream makes), exchanges SDP and ICE candidates over it ([`signaling`]) and
//! yields a [`Connection`] whose streams are data channels framed as the spec says
//! (`shoal_net::datachannel`). No Noise: the DTLS fingerprints came over the authenticated
//! relayed connection, and the peer is that connection's.
//!
//! This module only makes connections; which peers get one, and closing the circuit once the
//! direct connection is up, is the event loop's (`crate::direct`).

mod channel;
mod connection;
mod signaling;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use send_wrapper::SendWrapper;
use serde::Deserialize;

pub use connection::Connection;

/// An ICE server for direct connections (the `iceServers` option; none by default), as
/// `RTCIceServer`: `urls` one string or several.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    })
}

/// Why a direct connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("WebRTC: {0}")]
    Js(String),
    #[error("WebRTC signalling: {0}")]
    Signaling(String),
    #[error("WebRTC signalling message: {0}")]
    Message(#[from] shoal_net::signaling::SignalingError),
    #[error("WebRTC signalling stream: {0}")]
    Stream(String),
    #[error("the direct connection is closed")]
    Closed,
    #[error("the direct connection went down ({0})")]
    Down(String),
}

impl Error {
    pub(crate) fn js(value: wasm_bindgen::JsValue) -> Error {
        Error::Js(
            value
                .as_string()
                .or_else(|| {
                    js_sys::Reflect::get(&value, &"message".into())
                        .ok()
                        .and_then(|m| m.as_string())
                })
                .unwrap_or_else(|| format!("{value:?}")),
        )
    }
}

/// `<relay>/p2p-circuit/webrtc`: where a page listens for direct connections.
pub fn listen_address(relay_addr: &Multiaddr) -> Multiaddr {
    relay_addr
        .clone()
        .with(Protocol::P2pCircuit)
        .with(Protocol::WebRTC)
}

/// Whether `addr` is a `/webrtc` listen address: `…/p2p-circuit/webrtc`.
fn is_listen_address(addr: &Multiaddr) -> bool {
    let mut rest = addr.iter().collect::<Vec<_>>();
    matches!(rest.pop(), Some(Protocol::WebRTC)) && matches!(rest.pop(), Some(Protocol::P2pCircuit))
}

/// The peer of a `/webrtc` dial address: `…/p2p-circuit/webrtc/p2p/<peer>`.
pub fn dial_peer(addr: &Multiaddr) -> Option<PeerId> {
    let mut rest = addr.iter().collect::<Vec<_>>();
    let Some(Protocol::P2p(peer)) = rest.pop() else {
        return None;
    };
    (matches!(rest.pop(), Some(Protocol::WebRTC))
        && matches!(rest.pop(), Some(Protocol::P2pCircuit)))
    .then_some(peer)
}

/// Whether a connection's address names a direct `/webrtc` connection.
pub fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::WebRTC))
}

type Upgrade = BoxFuture<'static, Result<(PeerId, StreamMuxerBox), Error>>;

/// The libp2p transport for `/webrtc` addresses. Put it before the relay client's transport:
/// that one would take `/p2p-circuit/webrtc` addresses for plain circuits.
pub struct Transport {
    control: libp2p_stream::Control,
    ice_servers: Vec<IceServer>,
    listeners: Vec<(ListenerId, Multiaddr)>,
    incoming: Option<libp2p_stream::IncomingStreams>,
    events: VecDeque<TransportEvent<Upgrade, Error>>,
}

impl Transport {
    /// A transport that opens signalling streams with `control`.
    pub fn new(control: libp2p_stream::Control, ice_servers: Vec<IceServer>) -> Transport {
        Transport {
            control,
            ice_servers,
            listeners: Vec::new(),
            incoming: None,
            events: VecDeque::new(),
        }
    }
}

impl libp2p::core::Transport for Transport {
    type Output = (PeerId, StreamMuxerBox);
    type Error = Error;
    type ListenerUpgrade = Upgrade;
    type Dial = Upgrade;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        if !is_listen_address(&addr) {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        if self.incoming.is_none() {
            let incoming = self
                .control
                .accept(shoal_net::signaling::protocol())
                .map_err(|error| TransportError::Other(Error::Stream(error.to_string())))?;
            self.incoming = Some(incoming);
        }
        self.listeners.push((id, addr.clone()));
        self.events.push_back(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: addr,
        });
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|(listener, _)| *listener != id);
        if self.listeners.len() == before {
            return false;
        }
        if self.listeners.is_empty() {
            self.incoming = None;
        }
        self.events.push_back(TransportEvent::ListenerClosed {
            listener_id: id,
            reason: Ok(()),
        });
        true
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(peer) = dial_peer(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let mut control = self.control.clone();
        let ice_servers = self.ice_servers.clone();
        let dial = async move {
            let stream = control
                .open_stream(peer, shoal_net::signaling::protocol())
                .await
                .map_err(|error| Error::Stream(error.to_string()))?;
            let connection = signaling::initiate(stream, &ice_servers).await?;
            Ok((peer, StreamMuxerBox::new(connection)))
        };
        Ok(SendWrapper::new(dial).boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(Some((peer, stream))) = incoming.poll_next_unpin(cx) else {
            return Poll::Pending;
        };
        let Some((listener_id, local_addr)) = self.listeners.first().cloned() else {
            return Poll::Pending;
        };
        let ice_servers = self.ice_servers.clone();
        let upgrade = async move {
            let connection = signaling::answer(stream, &ice_servers).await?;
            Ok((peer, StreamMuxerBox::new(connection)))
        };
        Poll::Ready(TransportEvent::Incoming {
            listener_id,
            upgrade: SendWrapper::new(upgrade).boxed(),
            // The peer as reached through our relay: identify tells it to the peer as the
            // address it was observed at, and js-libp2p fails its identify on one that names
            // no transport (`/p2p-circuit/webrtc/p2p/…` alone).
            send_back_addr: local_addr.clone().with(Protocol::P2p(peer)),
            local_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn addresses_are_recognised() {
        let relay: Multiaddr =
            "/ip4/10.77.0.1/tcp/9/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .parse()
                .unwrap();
        let listen = listen_address(&relay);
        assert!(is_listen_address(&listen));
        assert!(!is_listen_address(
            &relay.clone().with(Protocol::P2pCircuit)
        ));
        let peer = PeerId::random();
        let dial = listen.clone().with(Protocol::P2p(peer));
        assert_eq!(dial_peer(&dial), Some(peer));
        assert_eq!(
            dial_peer(
                &relay
                    .clone()
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(peer))
            ),
            None
        );
        assert!(is_webrtc(&dial));
    }
}
