//! A direct WebRTC connection to another page as a libp2p [`StreamMuxer`]: each stream is one
//! data channel (created with an empty label and `negotiated: false`, as the spec says),
//! framed by `shoal_net::datachannel`.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::channel::mpsc;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use futures_timer::Delay;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerEvent};
use send_wrapper::SendWrapper;
use shoal_net::datachannel::{Closing, DataChannelStream, Parts};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Event, RtcDataChannelEvent, RtcPeerConnection, RtcPeerConnectionState};

use super::channel::{BrowserChannel, Budget};
use super::Error;

/// A stream on a direct connection.
pub type Stream = DataChannelStream<BrowserChannel>;

/// How long a dropped stream waits for the peer's `FIN_ACK` (or `FIN`) before its data channel
/// is closed anyway.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most data channels the peer may have opened that no one has taken as a stream yet.
pub const MAX_PENDING_INBOUND: usize = 64;

/// The label js-libp2p gives the data channel it opens to have something to offer before any
/// stream exists; it is closed once connected and is not a stream.
pub const INIT_LABEL: &str = "init";

struct Shared {
    /// Set when the peer connection failed or closed.
    down: Cell<Option<RtcPeerConnectionState>>,
    waker: Cell<Option<Waker>>,
}

impl Shared {
    fn wake(&self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

struct Handlers {
    pc: RtcPeerConnection,
    on_datachannel: Closure<dyn FnMut(RtcDataChannelEvent)>,
    on_state: Closure<dyn FnMut(Event)>,
    /// `statechange` of the SCTP and DTLS transports (see [`Connection::watch_transports`]).
    on_transport: Option<Closure<dyn FnMut(Event)>>,
}

impl Drop for Handlers {
    fn drop(&mut self) {
        self.pc.set_ondatachannel(None);
        let _ = self.pc.remove_event_listener_with_callback(
            "connectionstatechange",
            self.on_state.as_ref().unchecked_ref(),
        );
        let _ = &self.on_datachannel;
    }
}

/// A direct connection: an `RTCPeerConnection` and its data channels.
pub struct Connection {
    pc: SendWrapper<RtcPeerConnection>,
    shared: SendWrapper<Rc<Shared>>,
    budget: SendWrapper<Budget>,
    inbound: SendWrapper<mpsc::Receiver<BrowserChannel>>,
    dropped_tx: mpsc::UnboundedSender<Parts<BrowserChannel>>,
    dropped_rx: mpsc::UnboundedReceiver<Parts<BrowserChannel>>,
    closings: FuturesUnordered<Closing<BrowserChannel, Delay>>,
    closed: bool,
    _handlers: SendWrapper<Handlers>,
}

impl Connection {
    /// Wraps `pc` before the peer can open anything on it: data channels it opens from now on
    /// are kept (up to [`MAX_PENDING_INBOUND`]) until the swarm takes them as streams.
    pub fn new(pc: RtcPeerConnection) -> Connection {
        let (mut inbound_tx, inbound_rx) = mpsc::channel(MAX_PENDING_INBOUND);
        let shared = Rc::new(Shared {
            down: Cell::new(None),
            waker: Cell::new(None),
        });
        let budget: Budget = Rc::new(Cell::new(0));
        let on_datachannel = {
            let shared = Rc::downgrade(&shared);
            let budget = Budget::clone(&budget);
            Closure::<dyn FnMut(RtcDataChannelEvent)>::new(move |event: RtcDataChannelEvent| {
                let channel = event.channel();
                if channel.label() == INIT_LABEL {
                    return;
                }
                // Its messages are kept from now on: the peer may write (a protocol name, a
                // request) before the swarm takes the stream, and a data channel without a
                // message handler drops what arrives.
                let stream = BrowserChannel::new(channel.clone(), Budget::clone(&budget));
                if inbound_tx.try_send(stream).is_err() {
                    // Too many streams opened and not taken: refuse this one.
                    channel.close();
                }
                if let Some(shared) = shared.upgrade() {
                    shared.wake();
                }
            })
        };
        let on_state = {
            let shared = Rc::downgrade(&shared);
            let pc = pc.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                let state = pc.connection_state();
                if let Some(shared) = shared.upgrade() {
                    if matches!(
                        state,
                        RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
                    ) {
                        shared.down.set(Some(state));
                    }
                    shared.wake();
                }
            })
        };
        pc.set_ondatachannel(Some(on_datachannel.as_ref().unchecked_ref()));
        let _ = pc.add_event_listener_with_callback(
            "connectionstatechange",
            on_state.as_ref().unchecked_ref(),
        );
        let (dropped_tx, dropped_rx) = mpsc::unbounded();
        Connection {
            pc: SendWrapper::new(pc.clone()),
            shared: SendWrapper::new(shared),
            budget: SendWrapper::new(budget),
            inbound: SendWrapper::new(inbound_rx),
            dropped_tx,
            dropped_rx,
            closings: FuturesUnordered::new(),
            closed: false,
            _handlers: SendWrapper::new(Handlers {
                pc,
                on_datachannel,
                on_state,
                on_transport: None,
            }),
        }
    }

    /// Once connected: watches the SCTP association and the DTLS transport under it. A peer
    /// that closes its side (a tab closed or reloaded) ends them at once — a DTLS
    /// `close_notify`, an SCTP abort — while the connection's own state waits for ICE to give
    /// up, many seconds later, and requests sent meanwhile would be lost. (Neither transport
    /// is in web-sys: read through `Reflect`.)
    pub fn watch_transports(&mut self) {
        let Ok(sctp) = js_sys::Reflect::get(&self.pc, &"sctp".into()) else {
            return;
        };
        if sctp.is_null() || sctp.is_undefined() {
            return;
        }
        let dtls = js_sys::Reflect::get(&sctp, &"transport".into()).ok();
        let shared = Rc::downgrade(&self.shared);
        let targets: Vec<wasm_bindgen::JsValue> = std::iter::once(sctp)
            .chain(dtls.filter(|d| !d.is_null() && !d.is_undefined()))
            .collect();
        let watched = targets.clone();
        let on_transport = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let ended = watched.iter().any(|t| {
                let state = js_sys::Reflect::get(t, &"state".into())
                    .ok()
                    .and_then(|s| s.as_string());
                matches!(state.as_deref(), Some("closed" | "failed"))
            });
            if let (true, Some(shared)) = (ended, shared.upgrade()) {
                shared.down.set(Some(RtcPeerConnectionState::Closed));
                shared.wake();
            }
        });
        for target in &targets {
            if let Some(target) = target.dyn_ref::<web_sys::EventTarget>() {
                let _ = target.add_event_listener_with_callback(
                    "statechange",
                    on_transport.as_ref().unchecked_ref(),
                );
            }
        }
        self._handlers.on_transport = Some(on_transport);
    }

    /// The peer connection (for the signalling).
    pub fn peer_connection(&self) -> &RtcPeerConnection {
        &self.pc
    }

    fn stream(&self, channel: BrowserChannel) -> Stream {
        DataChannelStream::new(channel, Some(self.dropped_tx.clone()))
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.pc.close();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

impl StreamMuxer for Connection {
    type Substream = Stream;
    type Error = Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        match self.inbound.poll_next_unpin(cx) {
            Poll::Ready(Some(channel)) => Poll::Ready(Ok(self.stream(channel))),
            Poll::Ready(None) => Poll::Ready(Err(Error::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        if self.closed || self.shared.down.get().is_some() {
            return Poll::Ready(Err(Error::Closed));
        }
        let channel = self.pc.create_data_channel("");
        let channel = BrowserChannel::new(channel, Budget::clone(&self.budget));
        Poll::Ready(Ok(self.stream(channel)))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.close();
        Poll::Ready(Ok(()))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        if let Some(state) = self.shared.down.get() {
            return Poll::Ready(Err(Error::Down(format!("{state:?}"))));
        }
        self.shared.waker.set(Some(cx.waker().clone()));
        while let Poll::Ready(Some(parts)) = self.dropped_rx.poll_next_unpin(cx) {
            let closing = Closing::new(parts, Delay::new(CLOSE_TIMEOUT));
            self.closings.push(closing);
        }
        while let Poll::Ready(Some(())) = self.closings.poll_next_unpin(cx) {}
        Poll::Pending
    }
}
