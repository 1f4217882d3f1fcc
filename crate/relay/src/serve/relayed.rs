//! How many bytes the relay has forwarded through circuits (circuit relay v2), for
//! `/status.json`'s `relayed_bytes`: so that a test can show that two tabs connected directly
//! (WebRTC, issue 14) send none of their bytes through the relay.
//!
//! # What is counted
//!
//! libp2p's relay behaviour exposes no byte counts (it copies a circuit's two streams into each
//! other inside its connection handler), so the relay's transports count instead: every
//! substream of their muxers is wrapped ([`CountRelayed`], a [`WrapSubstream`]) and watches the
//! bytes the relay *writes* on it. A circuit the relay serves is two substreams: the source
//! opened a `/libp2p/circuit/relay/0.2.0/hop` stream to the relay, and the relay opened a
//! `/libp2p/circuit/relay/0.2.0/stop` stream to the destination. On an inbound substream that
//! negotiates hop, or an outbound one that negotiates stop, the relay writes the end of
//! multistream-select's negotiation, then exactly one length-prefixed protobuf message of its
//! own (the hop `STATUS` answer, or the stop `CONNECT` request), and after it only bytes it
//! forwards from the circuit's other stream. Those are counted: each forwarded byte once, when
//! the relay writes it on (source → destination on the stop stream, destination → source on
//! the hop stream), whatever the two ends run inside the circuit (their own noise and yamux
//! framing included).
//!
//! Not counted: reservations (a hop stream whose `STATUS` is the last thing the relay writes),
//! the circuits' handshakes, everything on streams of other protocols (the relay's own
//! request-response, identify, ping traffic), and the relay's own use of *other* relays'
//! circuits (as their client it opens hop streams and accepts stop streams, the other way
//! round, and the relayed connections themselves do not run over these transports' muxers).
//!
//! # Cost
//!
//! Each substream parses at most its first few dozen written bytes (a varint and a comparison
//! with three known strings per multistream-select message, a varint for the handshake); then
//! one branch per write, and for a circuit's streams one relaxed atomic addition per write. No
//! allocation after the substream's wrapper is made.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use shoal_net::{WrapSubstream, WrapSubstreams};

/// The stream a circuit's source opens to the relay.
pub const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";
/// The stream the relay opens to a circuit's destination.
pub const STOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/stop";

/// multistream-select's header and its refusal, as messages (with their newline).
const MULTISTREAM_HEADER: &[u8] = b"/multistream/1.0.0\n";
const MULTISTREAM_NA: &[u8] = b"na\n";
/// Longest circuit handshake message (libp2p-relay's own limit on its messages).
const MAX_HANDSHAKE_BYTES: u64 = 4096;

/// Bytes forwarded through circuits since the relay started (see the module docs); shared by
/// every connection's substreams and read by the HTTP server.
#[derive(Debug, Clone, Default)]
pub struct RelayedBytes(Arc<AtomicU64>);

impl RelayedBytes {
    /// A count at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes counted so far.
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: usize) {
        self.0.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A muxer whose circuit streams are counted in a [`RelayedBytes`].
pub type CountRelayedMuxer<M> = WrapSubstreams<M, CountRelayed>;

/// Wraps a muxer's substreams so that those of the circuits the relay serves are counted: an
/// inbound one is watched for hop, an outbound one for stop.
#[derive(Debug, Clone)]
pub struct CountRelayed {
    counter: RelayedBytes,
}

impl CountRelayed {
    /// Counts in `counter`.
    pub fn new(counter: RelayedBytes) -> Self {
        Self { counter }
    }

    /// `inner` with its circuit streams counted in `counter`.
    pub fn muxer<M>(inner: M, counter: RelayedBytes) -> CountRelayedMuxer<M> {
        WrapSubstreams::with(inner, Self::new(counter))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WrapSubstream<S> for CountRelayed {
    type Wrapped = CountedStream<S>;

    /// A substream of unknown direction: never counted.
    fn wrap(&self, substream: S) -> CountedStream<S> {
        CountedStream {
            inner: substream,
            watch: Watch::Other,
            counter: self.counter.clone(),
        }
    }

    fn wrap_inbound(&self, substream: S) -> CountedStream<S> {
        CountedStream::new(substream, HOP_PROTOCOL, self.counter.clone())
    }

    fn wrap_outbound(&self, substream: S) -> CountedStream<S> {
        CountedStream::new(substream, STOP_PROTOCOL, self.counter.clone())
    }
}

/// A substream of [`CountRelayed`]: reads pass through; what is written is watched, and counted
/// once the substream turned out to be a circuit's.
#[derive(Debug)]
pub struct CountedStream<S> {
    inner: S,
    watch: Watch,
    counter: RelayedBytes,
}

impl<S> CountedStream<S> {
    fn new(inner: S, protocol: &'static str, counter: RelayedBytes) -> Self {
        Self {
            inner,
            watch: Watch::new(protocol),
            counter,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result {
            let forwarded = this.watch.observe(&buf[..written.min(buf.len())]);
            if forwarded > 0 {
                this.counter.add(forwarded);
            }
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// What the bytes a substream writes have shown so far.
#[derive(Debug)]
enum Watch {
    /// In multistream-select: messages until one is `wanted` (then [`Watch::Handshake`]), the
    /// header or `na` (then the next message), or anything else (then [`Watch::Other`]).
    Negotiating {
        /// The protocol's message: its name and a newline.
        wanted: &'static [u8],
        frame: Frame,
        /// Which of `wanted`, the header and `na` the message read so far can still be.
        could_be: [bool; 3],
    },
    /// The relay's own circuit message (hop `STATUS`, stop `CONNECT`).
    Handshake(Frame),
    /// A circuit's stream past its handshake: every byte written is forwarded.
    Forwarding,
    /// Any other stream: never counted.
    Other,
}

/// A varint length and then that many bytes, read as they come.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    len: u64,
    shift: u32,
    /// Body bytes read so far, once the length is known.
    body: Option<u64>,
}

impl Frame {
    /// Takes the length's next byte: the length once it is complete, `Err` for a varint over
    /// 64 bits.
    fn length_byte(&mut self, byte: u8) -> Result<Option<u64>, ()> {
        if self.shift == 63 && byte > 1 {
            return Err(());
        }
        self.len |= u64::from(byte & 0x7f) << self.shift;
        if byte & 0x80 == 0 {
            self.body = Some(0);
            return Ok(Some(self.len));
        }
        self.shift += 7;
        if self.shift > 63 {
            return Err(());
        }
        Ok(None)
    }
}

/// The message that names `protocol` in multistream-select.
fn message_of(protocol: &'static str) -> &'static [u8] {
    match protocol {
        HOP_PROTOCOL => b"/libp2p/circuit/relay/0.2.0/hop\n",
        STOP_PROTOCOL => b"/libp2p/circuit/relay/0.2.0/stop\n",
        _ => unreachable!("only hop and stop are watched for"),
    }
}

impl Watch {
    fn new(protocol: &'static str) -> Self {
        Watch::Negotiating {
            wanted: message_of(protocol),
            frame: Frame::default(),
            could_be: [false; 3],
        }
    }

    /// Takes `written`, the bytes the substream just wrote; returns how many of them are
    /// forwarded circuit bytes.
    fn observe(&mut self, written: &[u8]) -> usize {
        let mut rest = written;
        loop {
            match self {
                Watch::Forwarding => return rest.len(),
                Watch::Other => return 0,
                _ if rest.is_empty() => return 0,
                Watch::Negotiating {
                    wanted,
                    frame,
                    could_be,
                } => {
                    let candidates = [*wanted, MULTISTREAM_HEADER, MULTISTREAM_NA];
                    let Some(at) = frame.body else {
                        match frame.length_byte(rest[0]) {
                            Ok(None) => {}
                            Ok(Some(len)) => {
                                *could_be = candidates.map(|c| c.len() as u64 == len);
                                if *could_be == [false; 3] {
                                    *self = Watch::Other;
                                }
                            }
                            Err(()) => *self = Watch::Other,
                        }
                        rest = &rest[1..];
                        continue;
                    };
                    let (at, left) = (at as usize, (frame.len - at) as usize);
                    let (chunk, after) = rest.split_at(left.min(rest.len()));
                    for (could, candidate) in could_be.iter_mut().zip(candidates) {
                        *could = *could && candidate.get(at..at + chunk.len()) == Some(chunk);
                    }
                    rest = after;
                    frame.body = Some((at + chunk.len()) as u64);
                    if *could_be == [false; 3] {
                        *self = Watch::Other;
                    } else if chunk.len() == left {
                        *self = if could_be[0] {
                            Watch::Handshake(Frame::default())
                        } else {
                            Watch::Negotiating {
                                wanted: candidates[0],
                                frame: Frame::default(),
                                could_be: [false; 3],
                            }
                        };
                    }
                }
                Watch::Handshake(frame) => {
                    let Some(at) = frame.body else {
                        match frame.length_byte(rest[0]) {
                            Ok(Some(len)) if len > MAX_HANDSHAKE_BYTES => *self = Watch::Other,
                            Ok(Some(0)) => *self = Watch::Forwarding,
                            Ok(_) => {}
                            Err(()) => *self = Watch::Other,
                        }
                        rest = &rest[1..];
                        continue;
                    };
                    let left = (frame.len - at) as usize;
                    let take = left.min(rest.len());
                    rest = &rest[take..];
                    frame.body = Some(at + take as u64);
                    if take == left {
                        *self = Watch::Forwarding;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
