//! libp2p streams on WebRTC data channels: the message framing of libp2p's WebRTC specs
//! (`webrtc/README.md` in libp2p/specs, "Multiplexing" and "Closing an `RTCDataChannel`"),
//! without any browser API, so that it is tested natively and shared by every shell.
//!
//! A data channel cannot half-close or reset one direction, so every message on it is a
//! varint-length-prefixed protobuf `Message { optional Flag flag = 1; optional bytes message = 2; }`
//! of at most [`MAX_MESSAGE_BYTES`] (prefix included). The flags:
//! - `FIN`: the sender writes no more. The receiver answers `FIN_ACK`.
//! - `STOP_SENDING`: the sender reads no more; the receiver's writes fail from then on.
//! - `RESET_STREAM`: the sender aborts; both directions fail.
//! - `FIN_ACK`: the sender read the receiver's `FIN` (and so everything before it).
//!
//! A stream ([`DataChannelStream`]) reads the channel as a byte stream of such frames (a sender
//! may put one frame in each data-channel message, as js-libp2p does, or split them) and writes
//! one frame per data-channel message. Closing the write half sends `FIN` and returns; the data
//! channel itself is closed only once our `FIN` was acknowledged and the peer's `FIN` arrived
//! (or we stopped reading), or after a timeout: some WebRTC implementations drop messages still
//! queued when a channel closes, so closing it at once could lose the end of a stream. That
//! wait happens after the stream is dropped, in a [`Closing`] future that the connection polls.
//!
//! How much one stream may buffer is the [`Channel`]'s business (the browser's `onmessage`
//! cannot be paused, so the browser channel bounds its queue and fails the stream past it); the
//! framing itself holds at most one frame being decoded and one frame's payload being read.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::channel::mpsc;
use futures::{AsyncRead, AsyncWrite};

/// Largest data-channel message we send or accept, length prefix included: the spec's limit
/// ("MUST NOT exceed 16kiB to support all major browsers").
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Most payload bytes in one frame: [`MAX_MESSAGE_BYTES`] less the largest overhead (a 2-byte
/// length prefix, the message field's tag and 2-byte length, and a flag field's 2 bytes).
pub const MAX_DATA_BYTES: usize = MAX_MESSAGE_BYTES - 7;

/// A frame's flag (`webrtc.pb.Message.Flag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Fin,
    StopSending,
    ResetStream,
    FinAck,
}

impl Flag {
    fn code(self) -> u64 {
        match self {
            Flag::Fin => 0,
            Flag::StopSending => 1,
            Flag::ResetStream => 2,
            Flag::FinAck => 3,
        }
    }

    fn from_code(code: u64) -> Option<Flag> {
        match code {
            0 => Some(Flag::Fin),
            1 => Some(Flag::StopSending),
            2 => Some(Flag::ResetStream),
            3 => Some(Flag::FinAck),
            _ => None,
        }
    }
}

/// One decoded frame. A flag this version does not know is dropped (the field is optional and
/// the spec may add flags), its data kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub flag: Option<Flag>,
    pub data: Vec<u8>,
}

/// Why bytes on a data channel are not a valid frame. The stream is failed (and reset): the
/// peer does not speak the framing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    #[error("data-channel frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    #[error("data-channel frame length prefix is not a minimal varint of at most 3 bytes")]
    BadPrefix,
    #[error("data-channel frame: {0}")]
    BadProtobuf(&'static str),
    #[error("data-channel frame data field of {len} bytes exceeds the limit of {max} bytes")]
    DataTooLarge { len: usize, max: usize },
}

impl From<FrameError> for io::Error {
    fn from(error: FrameError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }
}

/// Appends one frame, length prefix included, to `out`. `data` must be at most
/// [`MAX_DATA_BYTES`] long.
pub fn encode_frame(flag: Option<Flag>, data: &[u8], out: &mut Vec<u8>) {
    debug_assert!(data.len() <= MAX_DATA_BYTES);
    let mut body = Vec::with_capacity(data.len() + 6);
    if let Some(flag) = flag {
        body.push(0x08); // field 1, varint
        put_varint(flag.code(), &mut body);
    }
    if !data.is_empty() {
        body.push(0x12); // field 2, length-delimited
        put_varint(data.len() as u64, &mut body);
        body.extend_from_slice(data);
    }
    put_varint(body.len() as u64, out);
    out.extend_from_slice(&body);
}

/// One frame as a message of its own.
pub fn frame_message(flag: Option<Flag>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    encode_frame(flag, data, &mut out);
    out
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a protobuf varint of at most 10 bytes from `bytes[*at..]`.
fn take_varint(bytes: &[u8], at: &mut usize) -> Result<u64, FrameError> {
    let mut value = 0u64;
    for shift in 0..10 {
        let Some(&byte) = bytes.get(*at) else {
            return Err(FrameError::BadProtobuf("truncated varint"));
        };
        *at += 1;
        if shift == 9 && byte > 1 {
            return Err(FrameError::BadProtobuf("varint over 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FrameError::BadProtobuf("varint over 10 bytes"))
}

/// Decodes one frame's protobuf body (without its length prefix). Unknown fields are skipped.
pub fn decode_frame_body(body: &[u8]) -> Result<Frame, FrameError> {
    let mut frame = Frame::default();
    let mut at = 0;
    while at < body.len() {
        let key = take_varint(body, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match (field, wire) {
            (0, _) => return Err(FrameError::BadProtobuf("field number 0")),
            (1, 0) => frame.flag = Flag::from_code(take_varint(body, &mut at)?),
            (_, 0) => {
                take_varint(body, &mut at)?;
            }
            (_, 1) => at = skip(body, at, 8)?,
            (_, 5) => at = skip(body, at, 4)?,
            (field, 2) => {
                let len = take_varint(body, &mut at)?;
                let len = usize::try_from(len)
                    .map_err(|_| FrameError::BadProtobuf("field longer than the frame"))?;
                let end = skip(body, at, len)?;
                if field == 2 {
                    if len > MAX_DATA_BYTES {
                        return Err(FrameError::DataTooLarge {
                            len,
                            max: MAX_DATA_BYTES,
                        });
                    }
                    frame.data = body[at..end].to_vec();
                }
                at = end;
            }
            _ => return Err(FrameError::BadProtobuf("unsupported wire type")),
        }
    }
    Ok(frame)
}

fn skip(body: &[u8], at: usize, len: usize) -> Result<usize, FrameError> {
    at.checked_add(len)
        .filter(|end| *end <= body.len())
        .ok_or(FrameError::BadProtobuf("field longer than the frame"))
}

/// Turns the bytes of received data-channel messages back into frames. Holds at most one
/// incomplete frame plus the rest of the message it came in.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if one has arrived whole.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let rest = &self.buffer[self.start..];
        // The prefix: a minimal varint below MAX_MESSAGE_BYTES needs at most 3 bytes.
        let mut len = 0u64;
        let mut prefix = 0;
        loop {
            let Some(&byte) = rest.get(prefix) else {
                return Ok(None);
            };
            len |= u64::from(byte & 0x7f) << (7 * prefix);
            prefix += 1;
            if byte & 0x80 == 0 {
                if prefix > 1 && byte == 0 {
                    return Err(FrameError::BadPrefix);
                }
                break;
            }
            if prefix == 3 {
                return Err(FrameError::BadPrefix);
            }
        }
        if len as usize + prefix > MAX_MESSAGE_BYTES {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_MESSAGE_BYTES - prefix,
            });
        }
        let end = prefix + len as usize;
        if rest.len() < end {
            return Ok(None);
        }
        let frame = decode_frame_body(&rest[prefix..end])?;
        self.start += end;
        Ok(Some(frame))
    }
}

/// A data channel as a stream needs it: whole messages in and out, in order and reliably.
/// The browser's `RTCDataChannel` is one; tests use an in-memory pair.
pub trait Channel: Unpin {
    /// The next message received, `Ok(None)` once the channel is closed.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>>;
    /// Ready when one more message of at most [`MAX_MESSAGE_BYTES`] may be sent: the channel's
    /// back-pressure (the browser's `bufferedAmount`).
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sends one message (after [`Channel::poll_send_ready`] said ready).
    fn send(&mut self, message: &[u8]) -> io::Result<()>;
    /// Closes the channel in both directions; messages already sent are still delivered.
    fn close(&mut self);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadHalf {
    Open,
    /// The peer sent `FIN`: end of stream once the buffered payload is read.
    Finished,
    /// We sent `STOP_SENDING`: whatever arrives is dropped.
    Stopped,
    /// The peer reset the stream.
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteHalf {
    Open,
    /// We sent `FIN` and wait for its `FIN_ACK`.
    FinSent,
    /// The peer acknowledged our `FIN`.
    FinAcked,
    /// The peer sent `STOP_SENDING`.
    Stopped,
    /// One side reset the stream.
    Reset,
}

/// A stream's state, moved to a [`Closing`] when the stream is dropped.
pub struct Parts<C> {
    channel: C,
    decoder: FrameDecoder,
    /// Payload of the last data frame, not yet read.
    readable: VecDeque<u8>,
    read: ReadHalf,
    write: WriteHalf,
    /// The peer's `FIN` arrived and our `FIN_ACK` is not sent yet.
    owe_fin_ack: bool,
    /// The channel said it is closed (or failed).
    channel_gone: bool,
}

impl<C: Channel> Parts<C> {
    fn new(channel: C) -> Parts<C> {
        Parts {
            channel,
            decoder: FrameDecoder::default(),
            readable: VecDeque::new(),
            read: ReadHalf::Open,
            write: WriteHalf::Open,
            owe_fin_ack: false,
            channel_gone: false,
        }
    }

    fn on_frame(&mut self, frame: Frame) {
        if !frame.data.is_empty() && self.read == ReadHalf::Open {
            self.readable.extend(frame.data);
        }
        match frame.flag {
            Some(Flag::Fin) => {
                if matches!(self.read, ReadHalf::Open | ReadHalf::Stopped) {
                    self.read = ReadHalf::Finished;
                }
                self.owe_fin_ack = true;
            }
            Some(Flag::StopSending) if self.write == WriteHalf::Open => {
                self.write = WriteHalf::Stopped;
            }
            Some(Flag::ResetStream) => {
                self.read = ReadHalf::Reset;
                self.readable.clear();
                if matches!(self.write, WriteHalf::Open | WriteHalf::FinSent) {
                    self.write = WriteHalf::Reset;
                }
            }
            Some(Flag::FinAck) if self.write == WriteHalf::FinSent => {
                self.write = WriteHalf::FinAcked;
            }
            Some(Flag::StopSending | Flag::FinAck) | None => {}
        }
    }

    /// Decodes the next frame, receiving from the channel as needed. `Ready(None)` when the
    /// channel closed.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Frame>>> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Poll::Ready(Ok(Some(frame)));
            }
            if self.channel_gone {
                return Poll::Ready(Ok(None));
            }
            match ready!(self.channel.poll_recv(cx)) {
                Ok(Some(message)) => self.decoder.push(&message),
                Ok(None) => {
                    self.channel_gone = true;
                    if self.decoder.buffered() > 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "data channel closed inside a frame",
                        )));
                    }
                }
                Err(error) => {
                    self.channel_gone = true;
                    return Poll::Ready(Err(error));
                }
            }
        }
    }

    /// Takes in every frame already received, without waiting; data is dropped unless the
    /// read half is open. For the writer, to see the peer's flags.
    fn drain_received(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while let Poll::Ready(frame) = self.poll_frame(cx) {
            match frame? {
                Some(frame) => self.on_frame(frame),
                None => break,
            }
        }
        Ok(())
    }

    fn send_frame(&mut self, cx: &mut Context<'_>, flag: Flag) -> Poll<io::Result<()>> {
        if self.channel_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(self.channel.poll_send_ready(cx))?;
        Poll::Ready(self.channel.send(&frame_message(Some(flag), &[])))
    }

    /// Sends the `FIN_ACK` we owe, if any.
    fn poll_ack(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.owe_fin_ack && !self.channel_gone {
            ready!(self.send_frame(cx, Flag::FinAck))?;
        }
        self.owe_fin_ack = false;
        Poll::Ready(Ok(()))
    }

    fn write_error(&self) -> Option<io::Error> {
        match self.write {
            WriteHalf::Open => None,
            WriteHalf::FinSent | WriteHalf::FinAcked => Some(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream closed for writing",
            )),
            WriteHalf::Stopped => Some(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "peer stopped reading the stream",
            )),
            WriteHalf::Reset => Some(io::ErrorKind::ConnectionReset.into()),
        }
    }

    /// Both halves are done with: our `FIN` acknowledged (or writing stopped or reset) and the
    /// peer's `FIN` (or reset) received. Having sent `STOP_SENDING` is not enough: the peer's
    /// write half is still open, and closing the channel under it aborts its side of the
    /// stream (js-libp2p then fails what it read, e.g. an identify answer it already had).
    fn finished(&self) -> bool {
        let write_done = matches!(
            self.write,
            WriteHalf::FinAcked | WriteHalf::Stopped | WriteHalf::Reset
        );
        let read_done = matches!(self.read, ReadHalf::Finished | ReadHalf::Reset);
        write_done && read_done && !self.owe_fin_ack
    }
}

/// A libp2p stream on one data channel. Dropping it hands its state to the connection's
/// [`Closing`] queue (see [`DataChannelStream::new`]), which ends the stream properly.
pub struct DataChannelStream<C: Channel> {
    parts: Option<Parts<C>>,
    on_drop: Option<mpsc::UnboundedSender<Parts<C>>>,
}

impl<C: Channel> DataChannelStream<C> {
    /// A stream on `channel`. When dropped, its state goes to `on_drop`, whose receiver should
    /// turn each into a [`Closing`] and poll it; without one the channel is closed at once.
    pub fn new(
        channel: C,
        on_drop: Option<mpsc::UnboundedSender<Parts<C>>>,
    ) -> DataChannelStream<C> {
        DataChannelStream {
            parts: Some(Parts::new(channel)),
            on_drop,
        }
    }

    fn parts(&mut self) -> &mut Parts<C> {
        self.parts.as_mut().expect("parts are taken only on drop")
    }
}

impl<C: Channel> Drop for DataChannelStream<C> {
    fn drop(&mut self) {
        let Some(mut parts) = self.parts.take() else {
            return;
        };
        if let Some(on_drop) = self.on_drop.take() {
            match on_drop.unbounded_send(parts) {
                Ok(()) => return,
                Err(error) => parts = error.into_inner(),
            }
        }
        parts.channel.close();
    }
}

impl<C: Channel> AsyncRead for DataChannelStream<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let parts = self.parts();
        loop {
            if !parts.readable.is_empty() {
                let n = buf.len().min(parts.readable.len());
                for (slot, byte) in buf.iter_mut().zip(parts.readable.drain(..n)) {
                    *slot = byte;
                }
                return Poll::Ready(Ok(n));
            }
            // A FIN_ACK owed is sent while we are here anyway (waiting on back-pressure would
            // hold up the read: then the next write or the closing sends it).
            if parts.owe_fin_ack {
                if let Poll::Ready(result) = parts.poll_ack(cx) {
                    result?;
                }
            }
            match parts.read {
                ReadHalf::Open => {}
                ReadHalf::Finished | ReadHalf::Stopped => return Poll::Ready(Ok(0)),
                ReadHalf::Reset => return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            }
            match ready!(parts.poll_frame(cx))? {
                Some(frame) => parts.on_frame(frame),
                // Closed without a FIN: the end of what will ever come.
                None => parts.read = ReadHalf::Finished,
            }
        }
    }
}

impl<C: Channel> AsyncWrite for DataChannelStream<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let parts = self.parts();
        if parts.read != ReadHalf::Open {
            // Nobody reads any more: look at what came for flags (STOP_SENDING, RESET).
            parts.drain_received(cx)?;
        }
        if let Some(error) = parts.write_error() {
            return Poll::Ready(Err(error));
        }
        ready!(parts.poll_ack(cx))?;
        if parts.channel_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(parts.channel.poll_send_ready(cx))?;
        let n = buf.len().min(MAX_DATA_BYTES);
        parts.channel.send(&frame_message(None, &buf[..n]))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every write went to the channel as it was made.
        self.parts().poll_ack(cx)
    }

    /// Sends `FIN`. The wait for its `FIN_ACK` happens in [`Closing`], after the stream is
    /// dropped: the writer need not wait for the reader.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let parts = self.parts();
        match parts.write {
            WriteHalf::Open => {
                ready!(parts.poll_ack(cx))?;
                ready!(parts.send_frame(cx, Flag::Fin))?;
                parts.write = WriteHalf::FinSent;
                Poll::Ready(Ok(()))
            }
            WriteHalf::FinSent | WriteHalf::FinAcked | WriteHalf::Stopped => Poll::Ready(Ok(())),
            WriteHalf::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
        }
    }
}

/// The end of a dropped stream: a stream dropped before its write half was closed is reset; one
/// dropped while its read half is open sends `STOP_SENDING`; then the channel stays open until
/// both halves are finished (our `FIN` acknowledged, the peer's `FIN` acknowledged) or `timeout`
/// fires, and is closed. Resolves when the channel is closed.
pub struct Closing<C: Channel, T> {
    parts: Parts<C>,
    timeout: T,
    done: bool,
}

impl<C: Channel, T: Future<Output = ()> + Unpin> Closing<C, T> {
    pub fn new(parts: Parts<C>, timeout: T) -> Closing<C, T> {
        Closing {
            parts,
            timeout,
            done: false,
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let parts = &mut self.parts;
        if parts.channel_gone {
            return Poll::Ready(Ok(()));
        }
        if parts.write == WriteHalf::Open {
            ready!(parts.send_frame(cx, Flag::ResetStream))?;
            parts.write = WriteHalf::Reset;
            // A reset ends both halves: nothing is waited for.
            parts.read = ReadHalf::Reset;
            parts.owe_fin_ack = false;
        }
        if parts.read == ReadHalf::Open {
            ready!(parts.send_frame(cx, Flag::StopSending))?;
            parts.read = ReadHalf::Stopped;
            parts.readable.clear();
        }
        loop {
            ready!(parts.poll_ack(cx))?;
            if parts.finished() {
                return Poll::Ready(Ok(()));
            }
            match ready!(parts.poll_frame(cx))? {
                Some(frame) => parts.on_frame(frame),
                None => return Poll::Ready(Ok(())),
            }
            parts.readable.clear();
        }
    }
}

impl<C: Channel, T: Future<Output = ()> + Unpin> Future for Closing<C, T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let finished = match self.step(cx) {
            Poll::Ready(_) => true,
            Poll::Pending => Pin::new(&mut self.timeout).poll(cx).is_ready(),
        };
        if !finished {
            return Poll::Pending;
        }
        self.done = true;
        self.parts.channel.close();
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests;
