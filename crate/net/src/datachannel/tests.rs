use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Waker;

use futures::executor::block_on;
use futures::future::poll_fn;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use proptest::prelude::*;

use super::*;

#[derive(Default)]
struct Queue {
    messages: VecDeque<Vec<u8>>,
    closed: bool,
    waker: Option<Waker>,
}

/// One end of an in-memory data channel. `split` cuts every sent message into pieces of at
/// most that many bytes (a sender may split frames across messages).
struct End {
    inbox: Rc<RefCell<Queue>>,
    outbox: Rc<RefCell<Queue>>,
    ready: Rc<Cell<bool>>,
    split: usize,
    closed_by_me: Rc<Cell<bool>>,
    /// Every message this end sent.
    log: Rc<RefCell<Vec<Vec<u8>>>>,
}

fn pair(split: usize) -> (End, End) {
    let a = Rc::new(RefCell::new(Queue::default()));
    let b = Rc::new(RefCell::new(Queue::default()));
    let end = |inbox: &Rc<RefCell<Queue>>, outbox: &Rc<RefCell<Queue>>| End {
        inbox: inbox.clone(),
        outbox: outbox.clone(),
        ready: Rc::new(Cell::new(true)),
        split,
        closed_by_me: Rc::new(Cell::new(false)),
        log: Rc::default(),
    };
    (end(&a, &b), end(&b, &a))
}

impl Channel for End {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Vec<u8>>>> {
        let mut inbox = self.inbox.borrow_mut();
        if let Some(message) = inbox.messages.pop_front() {
            return Poll::Ready(Ok(Some(message)));
        }
        if inbox.closed {
            return Poll::Ready(Ok(None));
        }
        inbox.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_send_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ready.get() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn send(&mut self, message: &[u8]) -> io::Result<()> {
        assert!(
            message.len() <= MAX_MESSAGE_BYTES,
            "message of {}",
            message.len()
        );
        self.log.borrow_mut().push(message.to_vec());
        let mut outbox = self.outbox.borrow_mut();
        if outbox.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        for piece in message.chunks(self.split) {
            outbox.messages.push_back(piece.to_vec());
        }
        if let Some(waker) = outbox.waker.take() {
            waker.wake();
        }
        Ok(())
    }

    fn close(&mut self) {
        self.closed_by_me.set(true);
        for queue in [&self.inbox, &self.outbox] {
            let mut queue = queue.borrow_mut();
            queue.closed = true;
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
        }
    }
}

/// Every frame in the messages of `log`.
fn frames_in(log: &Rc<RefCell<Vec<Vec<u8>>>>) -> Vec<Frame> {
    let mut decoder = FrameDecoder::default();
    for message in log.borrow().iter() {
        decoder.push(message);
    }
    let mut frames = Vec::new();
    while let Some(frame) = decoder.next_frame().unwrap() {
        frames.push(frame);
    }
    frames
}

fn flags_in(log: &Rc<RefCell<Vec<Vec<u8>>>>) -> Vec<Flag> {
    frames_in(log).into_iter().filter_map(|f| f.flag).collect()
}

#[test]
fn frames_round_trip_with_every_flag_and_the_largest_payload() {
    for flag in [
        None,
        Some(Flag::Fin),
        Some(Flag::StopSending),
        Some(Flag::ResetStream),
        Some(Flag::FinAck),
    ] {
        for data in [vec![], vec![7u8; 1], vec![9u8; MAX_DATA_BYTES]] {
            let message = frame_message(flag, &data);
            assert!(
                message.len() <= MAX_MESSAGE_BYTES,
                "{} bytes",
                message.len()
            );
            let mut decoder = FrameDecoder::default();
            decoder.push(&message);
            let frame = decoder.next_frame().unwrap().unwrap();
            assert_eq!(frame, Frame { flag, data });
            assert_eq!(decoder.next_frame().unwrap(), None);
        }
    }
}

#[test]
fn known_bytes_match_the_spec_protobuf() {
    // FIN: field 1 varint 0; data "hi": field 2 length 2.
    assert_eq!(frame_message(Some(Flag::Fin), &[]), vec![2, 0x08, 0x00]);
    assert_eq!(frame_message(None, b"hi"), vec![4, 0x12, 2, b'h', b'i']);
    assert_eq!(
        frame_message(Some(Flag::FinAck), b"x"),
        vec![5, 0x08, 3, 0x12, 1, b'x']
    );
}

#[test]
fn frames_split_across_messages_and_packed_into_one_decode_alike() {
    let mut bytes = Vec::new();
    encode_frame(None, b"hello", &mut bytes);
    encode_frame(Some(Flag::Fin), &[], &mut bytes);
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    for byte in &bytes {
        decoder.push(std::slice::from_ref(byte));
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].data, b"hello");
    assert_eq!(frames[1].flag, Some(Flag::Fin));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn hostile_frames_are_refused_with_a_reason() {
    let decode = |bytes: &[u8]| {
        let mut decoder = FrameDecoder::default();
        decoder.push(bytes);
        decoder.next_frame()
    };
    // A length above the limit is refused from its prefix alone (nothing is waited for).
    assert!(matches!(
        decode(&[0x81, 0x80, 0x01]),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(matches!(
        decode(&[0xff, 0xff, 0x7f]),
        Err(FrameError::TooLarge { .. })
    ));
    // A prefix of more than 3 bytes, or a non-minimal one.
    assert_eq!(
        decode(&[0x80, 0x80, 0x80, 0x01]),
        Err(FrameError::BadPrefix)
    );
    assert_eq!(decode(&[0x85, 0x00]), Err(FrameError::BadPrefix));
    // Field 2 claims more bytes than the frame has.
    assert!(matches!(
        decode(&[3, 0x12, 9, 1]),
        Err(FrameError::BadProtobuf(_))
    ));
    // Wire types 3 and 4 (groups), 6 and 7 do not exist here.
    for key in [0x0b, 0x0c, 0x0e, 0x0f] {
        assert!(matches!(decode(&[1, key]), Err(FrameError::BadProtobuf(_))));
    }
    // Field number 0.
    assert!(matches!(
        decode(&[2, 0x00, 0]),
        Err(FrameError::BadProtobuf(_))
    ));
    // A truncated varint inside the body, and one of 11 bytes.
    assert!(matches!(
        decode(&[2, 0x08, 0x80]),
        Err(FrameError::BadProtobuf(_))
    ));
    let mut long = vec![11, 0x08];
    long.extend([0xff; 10]);
    assert!(matches!(decode(&long), Err(FrameError::BadProtobuf(_))));
    // An incomplete frame is not an error: it waits for the rest.
    assert_eq!(decode(&[5, 0x12, 3, b'a']), Ok(None));
}

#[test]
fn unknown_fields_and_flags_are_skipped() {
    // field 3 varint, field 4 fixed64, field 5 fixed32, field 6 bytes, then data "ok",
    // then flag 9 (unknown).
    let body = [
        0x18, 0x05, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x2d, 1, 2, 3, 4, 0x32, 1, 0xaa, 0x12, 2, b'o',
        b'k', 0x08, 9,
    ];
    let frame = decode_frame_body(&body).unwrap();
    assert_eq!(
        frame,
        Frame {
            flag: None,
            data: b"ok".to_vec()
        }
    );
}

#[test]
fn a_stream_carries_its_bytes_and_its_end_and_both_channels_close_cleanly() {
    let (a, b) = pair(usize::MAX);
    let (a_out, b_out) = (a.log.clone(), b.log.clone());
    let (a_closed, b_closed) = (a.closed_by_me.clone(), b.closed_by_me.clone());
    let (drops_a, mut dropped_a) = mpsc::unbounded();
    let (drops_b, mut dropped_b) = mpsc::unbounded();
    let mut writer = DataChannelStream::new(a, Some(drops_a));
    let mut reader = DataChannelStream::new(b, Some(drops_b));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    block_on(async {
        writer.write_all(&data).await.unwrap();
        writer.close().await.unwrap();
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        // The reader answers FIN with FIN_ACK, then answers with its own data and FIN.
        assert_eq!(flags_in(&b_out), vec![Flag::FinAck]);
        reader.write_all(b"answer").await.unwrap();
        reader.close().await.unwrap();
        let mut answer = Vec::new();
        writer.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        drop(writer);
        drop(reader);
        // Both closings finish without a timeout: every FIN acknowledged.
        let never = futures::future::pending::<()>();
        let closing_a = Closing::new(dropped_a.next().await.unwrap(), Box::pin(never));
        let never = futures::future::pending::<()>();
        let closing_b = Closing::new(dropped_b.next().await.unwrap(), Box::pin(never));
        futures::join!(closing_a, closing_b);
    });
    assert!(a_closed.get() || b_closed.get());
    // Each data frame was at most MAX_MESSAGE_BYTES (asserted in send) and A sent exactly
    // one FIN and one FIN_ACK.
    let a_flags = flags_in(&a_out);
    assert_eq!(a_flags.iter().filter(|f| **f == Flag::Fin).count(), 1);
    assert_eq!(a_flags.iter().filter(|f| **f == Flag::FinAck).count(), 1);
}

#[test]
fn a_stream_dropped_before_closing_is_reset_and_the_peer_reads_an_error() {
    let (a, b) = pair(usize::MAX);
    let (drops_a, mut dropped_a) = mpsc::unbounded();
    let mut writer = DataChannelStream::new(a, Some(drops_a));
    let mut reader = DataChannelStream::new(b, None);
    block_on(async {
        writer.write_all(b"partial").await.unwrap();
        drop(writer);
        let never = futures::future::pending::<()>();
        Closing::new(dropped_a.next().await.unwrap(), Box::pin(never)).await;
        let mut got = Vec::new();
        let error = reader.read_to_end(&mut got).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    });
}

#[test]
fn a_reader_that_stops_makes_the_writer_fail_instead_of_sending_into_the_void() {
    let (a, b) = pair(usize::MAX);
    let (drops_b, mut dropped_b) = mpsc::unbounded();
    let mut writer = DataChannelStream::new(a, None);
    let reader = DataChannelStream::new(b, Some(drops_b));
    block_on(async {
        writer.write_all(b"first").await.unwrap();
        // The reader goes away with its read half open, its write half closed.
        let mut reader = reader;
        reader.close().await.unwrap();
        drop(reader);
        let mut closing = Closing::new(
            dropped_b.next().await.unwrap(),
            Box::pin(futures::future::pending::<()>()),
        );
        // It sent STOP_SENDING and waits for our FIN_ACK.
        assert!(poll_fn(|cx| Poll::Ready(Pin::new(&mut closing).poll(cx).is_pending())).await);
        let mut buf = [0u8; 16];
        // The writer learns of the FIN (end of stream) and STOP_SENDING when it reads.
        assert_eq!(writer.read(&mut buf).await.unwrap(), 0);
        let error = writer.write_all(b"more").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    });
}

#[test]
fn closing_gives_up_waiting_for_a_fin_ack_at_its_timeout() {
    let (a, b) = pair(usize::MAX);
    let a_closed = a.closed_by_me.clone();
    let (drops_a, mut dropped_a) = mpsc::unbounded();
    let mut writer = DataChannelStream::new(a, Some(drops_a));
    // The peer is there but never reads: no FIN_ACK will come.
    let _silent_peer = b;
    block_on(async {
        writer.write_all(b"bytes").await.unwrap();
        writer.close().await.unwrap();
        drop(writer);
        let timeout = futures::future::ready(());
        Closing::new(dropped_a.next().await.unwrap(), timeout).await;
    });
    assert!(a_closed.get(), "the channel is closed at the timeout");
}

#[test]
fn writes_wait_for_the_channel_to_drain() {
    let (a, _b) = pair(usize::MAX);
    let ready = a.ready.clone();
    let mut writer = DataChannelStream::new(a, None);
    ready.set(false);
    block_on(async {
        let pending =
            poll_fn(|cx| Poll::Ready(Pin::new(&mut writer).poll_write(cx, b"x").is_pending()))
                .await;
        assert!(pending, "no write while the channel's buffer is full");
        ready.set(true);
        writer.write_all(b"x").await.unwrap();
    });
}

proptest! {
    #[test]
    fn any_writes_over_any_message_split_arrive_whole(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40_000), 0..6),
        split in 1usize..20_000,
    ) {
        let (a, b) = pair(split);
        let mut writer = DataChannelStream::new(a, None);
        let mut reader = DataChannelStream::new(b, None);
        let sent: Vec<u8> = chunks.concat();
        block_on(async {
            for chunk in &chunks {
                writer.write_all(chunk).await.unwrap();
            }
            writer.close().await.unwrap();
            let mut got = Vec::new();
            reader.read_to_end(&mut got).await.unwrap();
            prop_assert_eq!(got, sent);
            Ok(())
        })?;
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut decoder = FrameDecoder::default();
        decoder.push(&bytes);
        while let Ok(Some(_)) = decoder.next_frame() {}
    }
}

#[test]
fn a_stream_dropped_while_the_peer_still_writes_keeps_its_channel_until_the_peers_fin() {
    let (a, b) = pair(usize::MAX);
    let b_closed = b.closed_by_me.clone();
    let (drops_b, mut dropped_b) = mpsc::unbounded();
    let mut peer = DataChannelStream::new(a, None);
    let mut answerer = DataChannelStream::new(b, Some(drops_b));
    block_on(async {
        // The answerer writes its answer and goes away without reading to the end (as an
        // identify responder does); the peer has not closed its write half yet.
        answerer.write_all(b"answer").await.unwrap();
        answerer.close().await.unwrap();
        drop(answerer);
        let mut closing = Closing::new(
            dropped_b.next().await.unwrap(),
            Box::pin(futures::future::pending::<()>()),
        );
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"answer");
        // Our FIN is acknowledged (the read above sent FIN_ACK), but the peer's write half is
        // open: closing the channel now would abort the peer's stream.
        assert!(poll_fn(|cx| Poll::Ready(Pin::new(&mut closing).poll(cx).is_pending())).await);
        assert!(!b_closed.get());
        peer.close().await.unwrap();
        closing.await;
    });
    assert!(b_closed.get(), "closed once the peer's FIN came");
}
