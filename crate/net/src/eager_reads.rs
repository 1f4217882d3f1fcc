//! A stream-muxer wrapper that keeps reading a substream while its user is busy writing or
//! closing it, so the browser's WebRTC transport never resets it as "overloaded".
//!
//! # Why
//!
//! The browser transport (`libp2p-webrtc-websys` 0.5) copies every incoming data-channel
//! message into a per-stream read buffer from the channel's `onmessage` handler and drains that
//! buffer only from `poll_read`. If a message would take the buffer past 16 KiB
//! (`MAX_MSG_LEN`), it drops the message and fails the stream with "remote overloaded us with
//! messages" — two 8 KiB messages (see [`crate::small_writes`]) fit, the third does not.
//!
//! libp2p request-response writes a request, *closes* its write half, and only then reads the
//! answer. In the browser, each flush and the close wait for the data channel's
//! `bufferedamountlow` event (the request frame, then the FIN). That event is a browser task
//! like the `message` events of the answer, and it queues behind them: the relay answers a
//! 2,000-header request (160 KB) or a block within a round trip, while the page is busy
//! verifying the previous batch or writing IndexedDB. Every answer message dispatched before the
//! close completes lands in the 16 KiB buffer with no reader, and the third one resets the
//! stream. Pacing the relay's writes by its own send buffer cannot prevent this (the browser's
//! SCTP stack acknowledges the data long before the page reads it).
//!
//! # What
//!
//! [`EagerReads`] wraps a [`StreamMuxer`]; its substreams ([`EagerReadStream`]) read whatever
//! has arrived into a buffer of their own at every `poll_write`, `poll_flush` and `poll_close`
//! (which also registers the task for "data arrived" wake-ups), and hand it out at the next
//! `poll_read`. The buffer is bounded by the limit given to [`EagerReads::new`]; beyond it the
//! stream stops reading early and the transport's own limit applies again. Reads while nothing
//! is buffered go straight to the inner stream.
//!
//! Use it on the browser's WebRTC-direct muxer (outside [`crate::SmallWrites`]). Remove it when
//! `libp2p-webrtc-websys` drains its buffer without waiting for `poll_read`.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
#[cfg(doc)]
use libp2p::core::muxing::StreamMuxer;

use crate::wrap_substreams::{WrapSubstream, WrapSubstreams};

/// Default bound of a substream's early-read buffer: one maximal frame of Shoal's codec plus
/// room for protocol negotiation. A stream carries one request and one answer.
pub const MAX_EAGER_READ_BYTES: usize =
    crate::codec::MAX_FRAME_BYTES + crate::codec::LENGTH_PREFIX_BYTES + 64 * 1024;

/// Bytes asked of the inner stream per early read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A [`StreamMuxer`] whose substreams read early while they are being written or closed.
/// Everything else passes straight through.
pub type EagerReads<M> = WrapSubstreams<M, EagerReadsWrapper>;

/// Makes the substreams of [`EagerReads`], each buffering at most `max_buffered_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct EagerReadsWrapper {
    max_buffered_bytes: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WrapSubstream<S> for EagerReadsWrapper {
    type Wrapped = EagerReadStream<S>;

    fn wrap(&self, substream: S) -> EagerReadStream<S> {
        EagerReadStream::new(substream, self.max_buffered_bytes)
    }
}

impl<M> EagerReads<M> {
    /// Wraps `inner`; each substream buffers at most `max_buffered_bytes` read early
    /// (e.g. [`MAX_EAGER_READ_BYTES`]).
    pub fn new(inner: M, max_buffered_bytes: usize) -> Self {
        WrapSubstreams::with(inner, EagerReadsWrapper { max_buffered_bytes })
    }
}

/// How the inner stream's read side ended while reading early; handed out once the buffered
/// bytes are gone.
#[derive(Debug)]
enum ReadEnd {
    Eof,
    Failed(io::Error),
}

/// A substream of [`EagerReads`]: writes, flushes and closes first read what has arrived.
#[derive(Debug)]
pub struct EagerReadStream<S> {
    inner: S,
    /// Bytes read early, not yet handed out.
    buffered: VecDeque<u8>,
    max_buffered_bytes: usize,
    /// The inner read side ended during an early read.
    end: Option<ReadEnd>,
}

impl<S> EagerReadStream<S> {
    /// Wraps one substream; at most `max_buffered_bytes` are read early.
    pub fn new(inner: S, max_buffered_bytes: usize) -> Self {
        Self {
            inner,
            buffered: VecDeque::new(),
            max_buffered_bytes,
            end: None,
        }
    }

    /// Bytes read early and not yet handed out.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.len()
    }
}

impl<S: AsyncRead + Unpin> EagerReadStream<S> {
    /// Reads what the inner stream has ready into `buffered`, up to the bound. A pending read
    /// leaves the task registered for the next arrival.
    fn read_early(&mut self, cx: &mut Context<'_>) {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        while self.end.is_none() {
            let room = self.max_buffered_bytes.saturating_sub(self.buffered.len());
            if room == 0 {
                return;
            }
            let want = room.min(READ_CHUNK_BYTES);
            match Pin::new(&mut self.inner).poll_read(cx, &mut chunk[..want]) {
                Poll::Ready(Ok(0)) => self.end = Some(ReadEnd::Eof),
                Poll::Ready(Ok(n)) => self.buffered.extend(&chunk[..n.min(want)]),
                Poll::Ready(Err(err)) => self.end = Some(ReadEnd::Failed(err)),
                Poll::Pending => return,
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for EagerReadStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.buffered.is_empty() {
            let n = buf.len().min(self.buffered.len());
            for (to, from) in buf.iter_mut().zip(self.buffered.drain(..n)) {
                *to = from;
            }
            return Poll::Ready(Ok(n));
        }
        match self.end.take() {
            Some(ReadEnd::Eof) => Poll::Ready(Ok(0)),
            Some(ReadEnd::Failed(err)) => Poll::Ready(Err(err)),
            None => Pin::new(&mut self.inner).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for EagerReadStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.read_early(cx);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.read_early(cx);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.read_early(cx);
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A stream like the browser's WebRTC stream: `incoming` arrives in pieces (one per poll
    /// of anything), and more than `capacity` unread bytes fail the stream as overloaded.
    /// Writes are accepted; `flush_polls` flushes stay pending before one completes.
    struct Overloadable {
        incoming: VecDeque<Vec<u8>>,
        unread: VecDeque<u8>,
        capacity: usize,
        overloaded: bool,
        flush_polls: usize,
        written: Vec<u8>,
    }

    impl Overloadable {
        fn new(pieces: Vec<Vec<u8>>, capacity: usize, flush_polls: usize) -> Self {
            Self {
                incoming: pieces.into(),
                unread: VecDeque::new(),
                capacity,
                overloaded: false,
                flush_polls,
                written: Vec::new(),
            }
        }

        /// One message arrives whenever the stream is polled (as events interleave with polls).
        fn arrive(&mut self) {
            if let Some(piece) = self.incoming.pop_front() {
                if self.unread.len() + piece.len() > self.capacity {
                    self.overloaded = true;
                } else {
                    self.unread.extend(piece);
                }
            }
        }

        fn check(&self) -> io::Result<()> {
            if self.overloaded {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "overloaded"));
            }
            Ok(())
        }
    }

    impl AsyncRead for Overloadable {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.arrive();
            self.check()?;
            if self.unread.is_empty() {
                if self.incoming.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.unread.len());
            for (to, from) in buf.iter_mut().zip(self.unread.drain(..n)) {
                *to = from;
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Overloadable {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.arrive();
            self.check()?;
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.arrive();
            self.check()?;
            if self.flush_polls > 0 {
                self.flush_polls -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    fn answer_pieces() -> (Vec<u8>, Vec<Vec<u8>>) {
        let answer: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let pieces = answer.chunks(8000).map(<[u8]>::to_vec).collect();
        (answer, pieces)
    }

    /// Request-response's order: write the request, close, then read the answer.
    async fn ask<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
        stream.write_all(b"request").await?;
        stream.close().await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    }

    #[test]
    fn answer_arriving_during_close_overloads_the_bare_stream() {
        let (_, pieces) = answer_pieces();
        let mut bare = Overloadable::new(pieces, 16 * 1024, 5);
        let err = block_on(ask(&mut bare)).unwrap_err();
        assert_eq!(err.to_string(), "overloaded");
    }

    #[test]
    fn answer_arriving_during_close_is_read_early_and_intact() {
        let (answer, pieces) = answer_pieces();
        let inner = Overloadable::new(pieces, 16 * 1024, 5);
        let mut stream = EagerReadStream::new(inner, MAX_EAGER_READ_BYTES);
        assert_eq!(block_on(ask(&mut stream)).unwrap(), answer);
        assert_eq!(stream.inner.written, b"request");
    }

    #[test]
    fn early_reads_stop_at_the_bound() {
        let (_, pieces) = answer_pieces();
        let inner = Overloadable::new(pieces, usize::MAX, 20);
        let mut stream = EagerReadStream::new(inner, 10_000);
        block_on(stream.write_all(b"request")).unwrap();
        block_on(stream.close()).unwrap();
        assert!(stream.buffered_bytes() <= 10_000);
        assert!(stream.buffered_bytes() > 0);
        let mut rest = Vec::new();
        block_on(stream.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, answer_pieces().0);
    }

    #[test]
    fn end_and_errors_read_early_are_handed_out_after_the_data() {
        let inner = Overloadable::new(vec![b"abc".to_vec()], 16, 3);
        let mut stream = EagerReadStream::new(inner, 1024);
        block_on(stream.close()).unwrap();
        let mut out = Vec::new();
        block_on(stream.read_to_end(&mut out)).unwrap();
        assert_eq!(out, b"abc");

        let inner = Overloadable::new(vec![vec![1; 10], vec![2; 10]], 14, 3);
        let mut stream = EagerReadStream::new(inner, 5);
        let err = block_on(stream.close()).unwrap_err();
        assert_eq!(err.to_string(), "overloaded");
        let mut out = [0u8; 10];
        assert_eq!(block_on(stream.read(&mut out)).unwrap(), 5);
        assert!(block_on(stream.read(&mut out)).is_err());
    }
}
