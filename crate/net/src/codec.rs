//! Shoal's request-response protocol on the wire: names and the frame codec.
//!
//! Every request and every response is one *frame*: a 4-byte big-endian length followed by that
//! many bytes. On [`PROTOCOL_NAME`] the bytes are one encoded `shoal_core::wire::Message` (the
//! serving messages of S14–S16 and the cluster messages of S1–S13); this layer does not look
//! inside them. On [`PROBE_PROTOCOL_NAME`] the request is arbitrary bytes and the response is
//! their SHA-256 digest: the transfer test of large messages in both directions.
//!
//! A frame longer than the codec's limit is refused before anything is allocated for it, so a
//! hostile peer cannot make us buffer more than [`MAX_FRAME_BYTES`]. libp2p request-response
//! opens a fresh stream per request, which also keeps latency-sensitive messages off idle
//! reused streams (see TOOLCHAIN.md).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::prelude::*;
use libp2p::StreamProtocol;

/// Shoal's message protocol: one `shoal_core::wire::Message` per request and per response.
pub const PROTOCOL_NAME: &str = "/shoal/msg/1.0.0";

/// The transfer probe: the request is any bytes, the response is their SHA-256 (32 bytes).
pub const PROBE_PROTOCOL_NAME: &str = "/shoal/probe/1.0.0";

/// Largest frame either end accepts: the core's largest message (`shoal_core::wire::
/// MAX_MESSAGE_BYTES`, 4 MiB: a maximal 4,000,000-byte block plus the message around it).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge { len_bytes: u64, max_bytes: usize },
    /// The stream ended inside the length prefix.
    #[error("stream ended after {got_bytes} of {LENGTH_PREFIX_BYTES} length-prefix bytes")]
    TruncatedPrefix { got_bytes: usize },
    /// The stream ended inside the frame body.
    #[error("stream ended after {got_bytes} of {len_bytes} frame bytes")]
    TruncatedBody { got_bytes: usize, len_bytes: usize },
    /// A large request arrived while the [`ReadBudget`] was spent on others being read.
    #[error("busy: a request of {len_bytes} bytes while {in_use} of {max_bytes} bytes of large requests are being read")]
    Busy {
        len_bytes: usize,
        in_use: usize,
        max_bytes: usize,
    },
}

impl From<FrameError> for io::Error {
    fn from(error: FrameError) -> Self {
        let kind = match error {
            FrameError::TooLarge { .. } => io::ErrorKind::InvalidData,
            FrameError::TruncatedPrefix { .. } | FrameError::TruncatedBody { .. } => {
                io::ErrorKind::UnexpectedEof
            }
            FrameError::Busy { .. } => io::ErrorKind::OutOfMemory,
        };
        io::Error::new(kind, error)
    }
}

/// Requests up to this size are read whatever the [`ReadBudget`] says: every cluster and
/// query message but a block fits, so a node's conversation goes on while large requests
/// wait.
pub const SMALL_FRAME_BYTES: usize = 64 * 1024;

/// How many bytes of large request frames (above [`SMALL_FRAME_BYTES`]) may be being read at
/// once, every connection and stream together.
///
/// A peer may announce a 4 MiB frame, send all but its last byte and stop: the bytes stay in
/// memory until the request times out, on each of its streams and connections. Counting them
/// in one budget bounds that memory whatever the number of peers; a large frame that finds
/// the budget spent is refused ([`FrameError::Busy`]) before its body is read, and its stream
/// dropped. A frame's share returns when it has been read (it then goes to the node, whose
/// queue is bounded) or its stream fails.
#[derive(Debug, Clone)]
pub struct ReadBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    max_bytes: usize,
    in_use: AtomicUsize,
}

/// A share of a [`ReadBudget`], given back when dropped.
#[derive(Debug)]
pub struct BudgetShare {
    inner: Arc<BudgetInner>,
    bytes: usize,
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        self.inner.in_use.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl ReadBudget {
    /// A budget of `max_bytes`.
    pub fn new(max_bytes: usize) -> ReadBudget {
        ReadBudget {
            inner: Arc::new(BudgetInner {
                max_bytes,
                in_use: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Acquire)
    }

    /// Takes `bytes` if they fit, else says how full the budget is.
    pub fn take(&self, bytes: usize) -> Result<BudgetShare, FrameError> {
        let max_bytes = self.inner.max_bytes;
        self.inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use
                    .checked_add(bytes)
                    .filter(|total| *total <= max_bytes)
            })
            .map_err(|in_use| FrameError::Busy {
                len_bytes: bytes,
                in_use,
                max_bytes,
            })?;
        Ok(BudgetShare {
            inner: self.inner.clone(),
            bytes,
        })
    }
}

/// Reads one frame of at most `max_bytes` bytes.
///
/// Memory grows with the bytes that actually arrive, not with the announced length.
pub async fn read_frame<R>(io: &mut R, max_bytes: usize) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    read_frame_within(io, max_bytes, None).await
}

/// [`read_frame`], with a frame above [`SMALL_FRAME_BYTES`] counted in `budget` while it is
/// read (refused if it does not fit).
pub async fn read_frame_within<R>(
    io: &mut R,
    max_bytes: usize,
    budget: Option<&ReadBudget>,
) -> io::Result<Vec<u8>>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let mut got_bytes = 0;
    while got_bytes < LENGTH_PREFIX_BYTES {
        let n = io.read(&mut prefix[got_bytes..]).await?;
        if n == 0 {
            return Err(FrameError::TruncatedPrefix { got_bytes }.into());
        }
        got_bytes += n;
    }
    let len_bytes = u32::from_be_bytes(prefix);
    let len = usize::try_from(len_bytes)
        .ok()
        .filter(|len| *len <= max_bytes)
        .ok_or(FrameError::TooLarge {
            len_bytes: u64::from(len_bytes),
            max_bytes,
        })?;
    let _share = match budget {
        Some(budget) if len > SMALL_FRAME_BYTES => Some(budget.take(len)?),
        _ => None,
    };
    let mut body = Vec::new();
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(FrameError::TruncatedBody {
            got_bytes: body.len(),
            len_bytes: len,
        }
        .into());
    }
    Ok(body)
}

/// Writes `bytes` as one frame and flushes; refuses a frame above `max_bytes`.
pub async fn write_frame<W>(io: &mut W, bytes: &[u8], max_bytes: usize) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let too_large = FrameError::TooLarge {
        len_bytes: bytes.len() as u64,
        max_bytes,
    };
    if bytes.len() > max_bytes {
        return Err(too_large.into());
    }
    let len = u32::try_from(bytes.len()).map_err(|_| too_large)?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

/// The request-response codec for both of Shoal's protocols: frames of raw bytes.
///
/// Decoding the bytes into a `shoal_core::wire::Message` is the caller's step, so the codec
/// stays the same whatever the message set grows into.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    /// Largest request or response accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Large requests read are counted here, if set (a relay's; a page's answers come from
    /// the few peers it asks).
    pub read_budget: Option<ReadBudget>,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self {
            max_frame_bytes: MAX_FRAME_BYTES,
            read_budget: None,
        }
    }
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame_within(io, self.max_frame_bytes, self.read_budget.as_ref()).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_frame_bytes).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.max_frame_bytes).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.max_frame_bytes).await
    }
}

/// The protocol list for a `request_response::Behaviour` that speaks Shoal's messages.
pub fn message_protocol() -> StreamProtocol {
    StreamProtocol::new(PROTOCOL_NAME)
}

/// The protocol list entry for the transfer probe.
pub fn probe_protocol() -> StreamProtocol {
    StreamProtocol::new(PROBE_PROTOCOL_NAME)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;
    use futures::io::Cursor;
    use proptest::prelude::*;

    use super::*;

    /// A reader that hands out at most `chunk` bytes per call, as a network stream does.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(n))
        }
    }

    fn frame_error(error: &io::Error) -> Option<&FrameError> {
        error.get_ref()?.downcast_ref::<FrameError>()
    }

    fn encode(bytes: &[u8]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        block_on(write_frame(&mut out, bytes, MAX_FRAME_BYTES)).expect("write");
        out.into_inner()
    }

    #[test]
    fn one_mebibyte_round_trips() {
        let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let encoded = encode(&payload);
        assert_eq!(encoded.len(), payload.len() + LENGTH_PREFIX_BYTES);
        let mut reader = Trickle {
            data: encoded,
            at: 0,
            chunk: 8000,
        };
        let decoded = block_on(read_frame(&mut reader, MAX_FRAME_BYTES)).expect("read");
        assert_eq!(decoded, payload);
    }

    #[test]
    fn hostile_length_is_refused_without_reading_the_body() {
        let mut stream = Cursor::new(u32::MAX.to_be_bytes().to_vec());
        let error = block_on(read_frame(&mut stream, MAX_FRAME_BYTES)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            frame_error(&error),
            Some(&FrameError::TooLarge {
                len_bytes: u64::from(u32::MAX),
                max_bytes: MAX_FRAME_BYTES
            })
        );
    }

    #[test]
    fn limit_is_exact() {
        let at_limit = encode(&[7u8; 100]);
        assert_eq!(
            block_on(read_frame(&mut Cursor::new(at_limit.clone()), 100)).unwrap(),
            vec![7u8; 100]
        );
        let error = block_on(read_frame(&mut Cursor::new(at_limit), 99)).unwrap_err();
        assert!(matches!(
            frame_error(&error),
            Some(FrameError::TooLarge { len_bytes: 100, .. })
        ));
        let mut sink = Cursor::new(Vec::new());
        let error = block_on(write_frame(&mut sink, &[0u8; 100], 99)).unwrap_err();
        assert!(matches!(
            frame_error(&error),
            Some(FrameError::TooLarge { .. })
        ));
        assert!(sink.into_inner().is_empty(), "nothing written on refusal");
    }

    #[test]
    fn truncated_frames_are_errors() {
        let encoded = encode(b"hello shoal");
        for cut in 0..encoded.len() {
            let error =
                block_on(read_frame(&mut Cursor::new(encoded[..cut].to_vec()), 64)).unwrap_err();
            let expected = if cut < LENGTH_PREFIX_BYTES {
                FrameError::TruncatedPrefix { got_bytes: cut }
            } else {
                FrameError::TruncatedBody {
                    got_bytes: cut - LENGTH_PREFIX_BYTES,
                    len_bytes: 11,
                }
            };
            assert_eq!(frame_error(&error), Some(&expected), "cut at {cut}");
        }
    }

    /// Large frames share the budget while they are read: one that does not fit is refused
    /// before its body is read; small ones always pass; a share returns when its frame is
    /// read, or its read fails.
    #[test]
    fn large_frames_share_the_read_budget() {
        let budget = ReadBudget::new(300_000);
        let big = encode(&[1u8; 200_000]);
        // A frame whose body stops half way, as a peer that trickles and stalls leaves it.
        struct Stalled<'a> {
            data: &'a [u8],
            at: usize,
        }
        impl AsyncRead for Stalled<'_> {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                if self.at >= self.data.len() / 2 {
                    return Poll::Pending;
                }
                let n = buf.len().min(self.data.len() / 2 - self.at);
                let at = self.at;
                buf[..n].copy_from_slice(&self.data[at..at + n]);
                self.at += n;
                Poll::Ready(Ok(n))
            }
        }
        let mut stalled = Stalled { data: &big, at: 0 };
        let mut pending = Box::pin(read_frame_within(
            &mut stalled,
            MAX_FRAME_BYTES,
            Some(&budget),
        ));
        let waker = futures::task::noop_waker();
        assert!(pending
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(budget.in_use(), 200_000);
        let error = block_on(read_frame_within(
            &mut Cursor::new(big.clone()),
            MAX_FRAME_BYTES,
            Some(&budget),
        ))
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        assert_eq!(
            frame_error(&error),
            Some(&FrameError::Busy {
                len_bytes: 200_000,
                in_use: 200_000,
                max_bytes: 300_000
            })
        );
        let small = vec![2u8; SMALL_FRAME_BYTES];
        let read = block_on(read_frame_within(
            &mut Cursor::new(encode(&small)),
            MAX_FRAME_BYTES,
            Some(&budget),
        ))
        .unwrap();
        assert_eq!(read, small);
        // The stalled read is dropped (its stream failed): its share returns.
        drop(pending);
        assert_eq!(budget.in_use(), 0);
        let read = block_on(read_frame_within(
            &mut Cursor::new(big),
            MAX_FRAME_BYTES,
            Some(&budget),
        ))
        .unwrap();
        assert_eq!(read.len(), 200_000);
        assert_eq!(budget.in_use(), 0, "returned once read");
    }

    #[test]
    fn empty_frame_is_allowed() {
        let decoded = block_on(read_frame(&mut Cursor::new(encode(&[])), 16)).unwrap();
        assert!(decoded.is_empty());
    }

    proptest! {
        #[test]
        fn frames_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..20_000),
                             chunk in 1usize..9000) {
            let mut reader = Trickle { data: encode(&payload), at: 0, chunk };
            let decoded = block_on(read_frame(&mut reader, MAX_FRAME_BYTES)).unwrap();
            prop_assert_eq!(decoded, payload);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64),
                                       max in 0usize..64) {
            let result = block_on(read_frame(&mut Cursor::new(data.clone()), max));
            if let Ok(frame) = result {
                prop_assert!(frame.len() <= max);
                prop_assert_eq!(&data[LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + frame.len()], &frame[..]);
            }
        }
    }
}
