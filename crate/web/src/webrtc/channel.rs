//! One `RTCDataChannel` as a [`Channel`] for `shoal_net::datachannel`'s streams: messages in
//! through `onmessage` into a bounded queue, messages out with back-pressure on
//! `bufferedAmount`.
//!
//! The browser cannot pause a data channel's `onmessage`, so whatever the peer sends is queued
//! until the stream reads it. The queue is bounded per stream ([`MAX_QUEUED_BYTES`]: larger
//! than anything an honest peer sends before waiting for an answer — Shoal's largest frame is
//! 4 MiB) and per connection (the [`Budget`]); a peer past either bound gets its stream failed.
//! An honest peer that merely writes faster than the page reads never reaches them, unlike
//! libp2p-webrtc-websys' 16 KiB buffer that reset such streams (TOOLCHAIN.md).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use send_wrapper::SendWrapper;
use shoal_net::datachannel::Channel;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Event, MessageEvent, RtcDataChannel, RtcDataChannelState, RtcDataChannelType};

/// Most bytes one stream may have received and not read: Shoal's largest frame
/// (`shoal_net::MAX_FRAME_BYTES`) plus room for the framing and what follows it.
pub const MAX_QUEUED_BYTES: usize = shoal_net::MAX_FRAME_BYTES + (1 << 20);

/// Most bytes all streams of one connection may have received and not read.
pub const MAX_CONNECTION_QUEUED_BYTES: usize = 32 << 20;

/// Writes wait while more than this is queued in the browser for sending...
pub const HIGH_WATER_BYTES: u32 = 1 << 20;
/// ...until `bufferedamountlow` says it fell to this.
pub const LOW_WATER_BYTES: u32 = 256 << 10;

/// Bytes received and not yet read by all streams of one connection.
pub type Budget = Rc<Cell<usize>>;

struct State {
    channel: RtcDataChannel,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    budget: Budget,
    /// Why the channel failed (the peer overran a bound, sent text, or the channel errored).
    failed: Option<String>,
    closed: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl State {
    fn wake_all(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }

    fn on_message(&mut self, event: MessageEvent) {
        if self.failed.is_some() || self.closed {
            return;
        }
        let data = event.data();
        let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() else {
            self.fail("the peer sent a text message on a libp2p data channel");
            return;
        };
        let len = buffer.byte_length() as usize;
        if self.queued + len > MAX_QUEUED_BYTES {
            self.fail(&format!(
                "the peer sent more than {MAX_QUEUED_BYTES} bytes the stream has not read"
            ));
            return;
        }
        if self.budget.get() + len > MAX_CONNECTION_QUEUED_BYTES {
            self.fail(&format!(
                "the peer sent more than {MAX_CONNECTION_QUEUED_BYTES} bytes its streams have not read"
            ));
            return;
        }
        self.queue
            .push_back(js_sys::Uint8Array::new(buffer).to_vec());
        self.queued += len;
        self.budget.set(self.budget.get() + len);
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    fn fail(&mut self, why: &str) {
        self.failed = Some(why.to_owned());
        self.release();
        self.channel.close();
        self.wake_all();
    }

    /// Gives the queue's bytes back to the connection's budget.
    fn release(&mut self) {
        self.budget.set(self.budget.get() - self.queued);
        self.queued = 0;
        self.queue.clear();
    }
}

/// The handlers set on the channel; dropped (and unset) with the last [`BrowserChannel`].
struct Handlers {
    channel: RtcDataChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_wake: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(Event)>,
}

impl Drop for Handlers {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.set_onopen(None);
        self.channel.set_onbufferedamountlow(None);
        self.channel.set_onclose(None);
        self.channel.set_onerror(None);
    }
}

/// A data channel for one stream.
pub struct BrowserChannel {
    state: SendWrapper<Rc<RefCell<State>>>,
    _handlers: SendWrapper<Rc<Handlers>>,
}

impl BrowserChannel {
    /// Takes over `channel` (its handlers are replaced); its received bytes count against
    /// `budget`.
    pub fn new(channel: RtcDataChannel, budget: Budget) -> BrowserChannel {
        channel.set_binary_type(RtcDataChannelType::Arraybuffer);
        channel.set_buffered_amount_low_threshold(LOW_WATER_BYTES);
        let closed = matches!(
            channel.ready_state(),
            RtcDataChannelState::Closing | RtcDataChannelState::Closed
        );
        let state = Rc::new(RefCell::new(State {
            channel: channel.clone(),
            queue: VecDeque::new(),
            queued: 0,
            budget,
            failed: None,
            closed,
            read_waker: None,
            write_waker: None,
        }));
        let weak = Rc::downgrade(&state);
        let with = move |f: fn(&mut State)| {
            let weak: Weak<RefCell<State>> = weak.clone();
            move |_: Event| {
                if let Some(state) = weak.upgrade() {
                    f(&mut state.borrow_mut());
                }
            }
        };
        let on_message = {
            let weak = Rc::downgrade(&state);
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if let Some(state) = weak.upgrade() {
                    state.borrow_mut().on_message(event);
                }
            })
        };
        let on_wake = Closure::<dyn FnMut(Event)>::new(with(|state| {
            if let Some(waker) = state.write_waker.take() {
                waker.wake();
            }
        }));
        let on_close = Closure::<dyn FnMut(Event)>::new(with(|state| {
            state.closed = true;
            state.wake_all();
        }));
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        channel.set_onopen(Some(on_wake.as_ref().unchecked_ref()));
        channel.set_onbufferedamountlow(Some(on_wake.as_ref().unchecked_ref()));
        channel.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        channel.set_onerror(Some(on_close.as_ref().unchecked_ref()));
        BrowserChannel {
            state: SendWrapper::new(state),
            _handlers: SendWrapper::new(Rc::new(Handlers {
                channel,
                _on_message: on_message,
                _on_wake: on_wake,
                _on_close: on_close,
            })),
        }
    }
}

impl Drop for BrowserChannel {
    fn drop(&mut self) {
        self.state.borrow_mut().release();
    }
}

fn failed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

impl Channel for BrowserChannel {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        let mut state = self.state.borrow_mut();
        if let Some(why) = &state.failed {
            return Poll::Ready(Err(failed(why)));
        }
        if let Some(message) = state.queue.pop_front() {
            state.queued -= message.len();
            state.budget.set(state.budget.get() - message.len());
            return Poll::Ready(Ok(Some(message)));
        }
        if state.closed {
            return Poll::Ready(Ok(None));
        }
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state.borrow_mut();
        if let Some(why) = &state.failed {
            return Poll::Ready(Err(failed(why)));
        }
        match state.channel.ready_state() {
            RtcDataChannelState::Open => {}
            RtcDataChannelState::Connecting => {
                state.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            _ => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
        if state.channel.buffered_amount() > HIGH_WATER_BYTES {
            state.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        let state = self.state.borrow();
        state.channel.send_with_u8_array(message).map_err(|error| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("data channel send failed: {error:?}"),
            )
        })
    }

    fn close(&mut self) {
        let mut state = self.state.borrow_mut();
        state.channel.close();
        state.release();
    }
}
