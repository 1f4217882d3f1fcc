//! A stream-muxer wrapper that keeps every WebRTC data-channel message under 8 KiB.
//!
//! # Why
//!
//! The native `libp2p-webrtc` 0.10.0-alpha reads each data-channel message into an 8192-byte
//! buffer, while senders (the browser transport merges queued frames; native senders write
//! whatever they are given) send messages of up to 16 KiB. A larger message fails the stream
//! with "Short buffer (size: 8192)": browser → relay uploads above ~4 KiB stall or break, and
//! circuits between browsers die on their first large message. Upstream: rust-libp2p#4049,
//! webrtc-rs/webrtc#823; there is no configuration knob. Limiting our own codec's chunks is
//! not enough: relayed circuits carry noise and yamux frames we do not control.
//!
//! # What
//!
//! [`SmallWrites`] wraps a transport's [`StreamMuxer`]; its substreams ([`SmallWriteStream`])
//! flush the previous write before starting the next one and pass on at most
//! [`MAX_WRITE_BYTES`] per write. The WebRTC stream then frames each write alone into one
//! data-channel message of `MAX_WRITE_BYTES` plus a few bytes of envelope, below 8192.
//! Transfers over WebRTC needed by S11–S16 (blocks for repair and serving, up to 4 MB) depend
//! on it. Use it on both ends; remove it when a fixed release appears.
//!
//! # Usage
//!
//! ```ignore
//! let transport = webrtc_transport.map(|(peer_id, connection), _| {
//!     (peer_id, StreamMuxerBox::new(SmallWrites::new(connection)))
//! });
//! ```
//!
//! Non-`Unpin` muxers can be boxed first: `SmallWrites::new(StreamMuxerBox::new(connection))`.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::{AsyncRead, AsyncWrite};
#[cfg(doc)]
use libp2p::core::muxing::StreamMuxer;

use crate::wrap_substreams::{WrapSubstream, WrapSubstreams};

/// Most bytes passed to the inner substream in one write; with the WebRTC stream's protobuf
/// envelope (a few bytes) every data-channel message stays below 8192 bytes.
pub const MAX_WRITE_BYTES: usize = 8000;

/// A [`StreamMuxer`] whose substreams write at most [`MAX_WRITE_BYTES`] at a time, one write
/// in flight at a time. Everything else passes straight through.
pub type SmallWrites<M> = WrapSubstreams<M, SmallWritesWrapper>;

/// Makes the substreams of [`SmallWrites`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SmallWritesWrapper;

impl<S: AsyncRead + AsyncWrite + Unpin> WrapSubstream<S> for SmallWritesWrapper {
    type Wrapped = SmallWriteStream<S>;

    fn wrap(&self, substream: S) -> SmallWriteStream<S> {
        SmallWriteStream::new(substream)
    }
}

impl<M> SmallWrites<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        WrapSubstreams::with(inner, SmallWritesWrapper)
    }
}

/// A substream of [`SmallWrites`]: reads pass through; each write first flushes the previous
/// one, then hands on at most [`MAX_WRITE_BYTES`].
#[derive(Debug)]
pub struct SmallWriteStream<S> {
    inner: S,
    /// A write was passed on and not flushed since.
    write_in_flight: bool,
}

impl<S> SmallWriteStream<S> {
    /// Wraps one substream.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            write_in_flight: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SmallWriteStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SmallWriteStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_in_flight {
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.write_in_flight = false;
        }
        let len = buf.len().min(MAX_WRITE_BYTES);
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..len]))?;
        debug_assert!(written <= len, "inner stream claims more than it was given");
        self.write_in_flight = written > 0;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.write_in_flight = false;
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::AsyncWriteExt;

    use super::*;

    /// What the wrapped stream saw, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Write(usize),
        Flushed,
    }

    /// A stream that buffers like the WebRTC stream: accepts any write, and its flush is
    /// pending once before it completes.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Call>,
        data: Vec<u8>,
        flush_pending: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.calls.push(Call::Write(buf.len()));
            self.data.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flush_pending = !self.flush_pending;
            if self.flush_pending {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.calls.push(Call::Flushed);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn large_write_is_cut_and_each_piece_waits_for_the_previous() {
        let payload: Vec<u8> = (0..1024 * 1024 + 17).map(|i| (i % 253) as u8).collect();
        let mut stream = SmallWriteStream::new(Recorder::default());
        block_on(stream.write_all(&payload)).unwrap();
        block_on(stream.flush()).unwrap();
        let recorder = stream.inner;
        assert_eq!(recorder.data, payload);
        let writes: Vec<usize> = recorder
            .calls
            .iter()
            .filter_map(|call| match call {
                Call::Write(n) => Some(*n),
                Call::Flushed => None,
            })
            .collect();
        assert_eq!(writes.len(), payload.len().div_ceil(MAX_WRITE_BYTES));
        assert!(writes.iter().all(|n| *n <= MAX_WRITE_BYTES));
        for pair in recorder.calls.windows(2) {
            assert!(
                !matches!(pair, [Call::Write(_), Call::Write(_)]),
                "two writes without a flush between them: {:?}",
                recorder.calls
            );
        }
        assert_eq!(recorder.calls.last(), Some(&Call::Flushed));
    }

    #[test]
    fn small_writes_pass_unchanged() {
        let mut stream = SmallWriteStream::new(Recorder::default());
        block_on(stream.write_all(b"ping")).unwrap();
        assert_eq!(stream.inner.calls, vec![Call::Write(4)]);
    }
}
