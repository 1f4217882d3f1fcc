//! # shoal-net: what both ends of Shoal's network share
//!
//! The browser shell (`crate/web`, wasm32) and the relay (`crate/relay`, native) speak the same
//! libp2p protocols over the same transports. This crate holds the pieces both need, so that the
//! two ends cannot drift apart:
//!
//! - [`codec`]: Shoal's request-response protocol names and the length-prefixed frame codec
//!   that carries `shoal_core::wire::Message` bytes (every frame size-bounded). It carries the
//!   serving messages of S14–S16 (headers, blocks, transaction queries) and the cluster traffic
//!   of S1–S13.
//! - [`small_writes`]: a stream-muxer wrapper that works around libp2p WebRTC's message-size
//!   defect (rust-libp2p#4049): each substream write waits until the previous one has left the
//!   buffer and passes on at most [`small_writes::MAX_WRITE_BYTES`] bytes, so no SCTP message
//!   exceeds the 8 KiB the native receiver can read. Wrap the WebRTC transport's muxer with it on
//!   *both* ends.
//! - [`eager_reads`]: a stream-muxer wrapper for the browser's WebRTC-direct muxer: substreams
//!   read what has arrived while they are being written or closed, so the browser transport's
//!   16 KiB read buffer never overflows ("remote overloaded us") while request-response closes
//!   a request stream before reading the answer.
//! - [`wrap_substreams`]: the muxer both wrappers are made of — every substream the inner muxer
//!   opens or accepts is wrapped, everything else passes straight through.
//! - [`node_link`]: how a core `Node`'s one-way messages ride on request-response (a request
//!   carries one message, the response is an empty acknowledgement or a direct answer), node
//!   ids from peer ids, and the bounded book that maps them back.
//! - [`datachannel`]: libp2p streams on WebRTC data channels (the spec's framing with `FIN`,
//!   `STOP_SENDING`, `RESET_STREAM`, `FIN_ACK`; at most 16 KiB a message), over any message
//!   channel — the browser's `RTCDataChannel` in `crate/web`, an in-memory pair in tests.
//! - [`signaling`]: the `/webrtc-signaling/0.0.1` messages (SDP offer, answer, ICE candidates)
//!   two tabs exchange over a relayed connection before they connect directly (libp2p's
//!   `/webrtc` browser-to-browser specification, as js-libp2p speaks it); bounded.
//! - [`directory`]: the namespace under which nodes of one chain find each other through a
//!   relay's peer directory (Shoal's directory protocol, bounded).
//!
//! # How a page finds a relay
//!
//! `shoal-relay serve` serves `GET /relay-addrs.json` on its HTTP address:
//! `{"peer_id": "...", "network": "regtest", "addrs": ["/ip4/.../udp/N/webrtc-direct/certhash/.../p2p/...",
//! "/ip4/.../tcp/M/ws/p2p/..."]}`. Dial any of them with protocol [`codec::PROTOCOL_NAME`]
//! and frames of at most [`codec::MAX_FRAME_BYTES`].

pub mod codec;
pub mod datachannel;
pub mod directory;
pub mod eager_reads;
pub mod node_link;
pub mod signaling;
pub mod small_writes;
pub mod wrap_substreams;

pub use codec::{
    FrameCodec, FrameError, ReadBudget, MAX_FRAME_BYTES, PROBE_PROTOCOL_NAME, PROTOCOL_NAME,
    SMALL_FRAME_BYTES,
};
pub use eager_reads::{EagerReadStream, EagerReads, EagerReadsWrapper, MAX_EAGER_READ_BYTES};
pub use small_writes::{SmallWriteStream, SmallWrites, SmallWritesWrapper, MAX_WRITE_BYTES};
pub use wrap_substreams::{WrapSubstream, WrapSubstreams};
