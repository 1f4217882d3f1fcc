use futures::executor::block_on;
use futures::io::{AsyncWriteExt, Cursor};

use super::*;

/// One multistream-select message: its length as a varint, then the bytes.
fn ms(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut len = message.len();
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(message);
    out
}

fn named(protocol: &str) -> Vec<u8> {
    ms(format!("{protocol}\n").as_bytes())
}

/// A relay message of `len` bytes (what is in it does not matter to the watch), prefixed.
fn handshake(len: usize) -> Vec<u8> {
    ms(&vec![0x08; len])
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// What a watch for `protocol` counts of `written`, handed to it in pieces of `chunk` bytes.
fn counted(protocol: &'static str, written: &[u8], chunk: usize) -> usize {
    let mut watch = Watch::new(protocol);
    written.chunks(chunk).map(|c| watch.observe(c)).sum()
}

/// Every way of cutting `written` into writes gives the same count (single bytes, a few
/// sizes, and one cut at every position).
fn count_every_way(protocol: &'static str, written: &[u8]) -> usize {
    let whole = counted(protocol, written, written.len().max(1));
    for chunk in [1, 2, 3, 7, 19, 64] {
        assert_eq!(
            counted(protocol, written, chunk),
            whole,
            "chunks of {chunk}"
        );
    }
    for cut in 0..written.len() {
        let mut watch = Watch::new(protocol);
        let (a, b) = written.split_at(cut);
        assert_eq!(watch.observe(a) + watch.observe(b), whole, "cut at {cut}");
    }
    whole
}

#[test]
fn a_circuit_streams_bytes_after_the_handshake_are_counted() {
    // Inbound hop: the relay echoes the header and the protocol, answers STATUS, forwards.
    let mut hop = [ms(MULTISTREAM_HEADER), named(HOP_PROTOCOL), handshake(14)].concat();
    hop.extend(payload(1000));
    assert_eq!(count_every_way(HOP_PROTOCOL, &hop), 1000);
    // Outbound stop: the relay proposes stop and sends CONNECT (a peer id inside: ~50 bytes,
    // lazily, in the same write), then forwards.
    let mut stop = [ms(MULTISTREAM_HEADER), named(STOP_PROTOCOL), handshake(50)].concat();
    stop.extend(payload(300));
    assert_eq!(count_every_way(STOP_PROTOCOL, &stop), 300);
    // A handshake message longer than 127 bytes (a two-byte length).
    let mut long = [ms(MULTISTREAM_HEADER), named(HOP_PROTOCOL), handshake(200)].concat();
    long.extend(payload(5));
    assert_eq!(count_every_way(HOP_PROTOCOL, &long), 5);
}

#[test]
fn refused_proposals_before_the_protocol_are_skipped() {
    let mut hop = [
        ms(MULTISTREAM_HEADER),
        ms(MULTISTREAM_NA),
        ms(MULTISTREAM_NA),
        named(HOP_PROTOCOL),
        handshake(14),
    ]
    .concat();
    hop.extend(payload(77));
    assert_eq!(count_every_way(HOP_PROTOCOL, &hop), 77);
}

#[test]
fn a_reservation_is_not_counted() {
    // The relay's answer to RESERVE (addresses, expiry, limits) is the last it writes.
    let reservation = [ms(MULTISTREAM_HEADER), named(HOP_PROTOCOL), handshake(120)].concat();
    assert_eq!(count_every_way(HOP_PROTOCOL, &reservation), 0);
}

#[test]
fn streams_of_other_protocols_are_not_counted() {
    for protocol in [
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
        "/shoal/msg/1.0.0",
        "/libp2p/circuit/relay/0.2.0/hopx",
        "/libp2p/circuit/relay/0.2.0/ho",
        "/libp2p/circuit/relay/0.2.0/stop",
    ] {
        let mut written = [ms(MULTISTREAM_HEADER), named(protocol)].concat();
        // Bytes that look like a hop negotiation after it change nothing.
        written.extend([named(HOP_PROTOCOL), handshake(3), payload(500)].concat());
        assert_eq!(count_every_way(HOP_PROTOCOL, &written), 0, "{protocol}");
    }
}

/// The relay as a client of other relays: its own hop streams are outbound, the stop streams
/// other relays open to it inbound; neither is a circuit it serves.
#[test]
fn the_relays_own_use_of_other_relays_is_not_counted() {
    let mut own_hop = [ms(MULTISTREAM_HEADER), named(HOP_PROTOCOL), handshake(40)].concat();
    own_hop.extend(payload(900));
    assert_eq!(count_every_way(STOP_PROTOCOL, &own_hop), 0);
    let mut own_stop = [ms(MULTISTREAM_HEADER), named(STOP_PROTOCOL), handshake(4)].concat();
    own_stop.extend(payload(900));
    assert_eq!(count_every_way(HOP_PROTOCOL, &own_stop), 0);
}

#[test]
fn malformed_negotiations_are_not_counted() {
    let cases: [Vec<u8>; 5] = [
        // A varint over 64 bits.
        [vec![0xff; 10], vec![0x01], payload(100)].concat(),
        // A message of length 0, then the protocol.
        [vec![0x00], named(HOP_PROTOCOL), handshake(2), payload(100)].concat(),
        // A huge message.
        [vec![0xff, 0xff, 0x03], payload(100)].concat(),
        // A header of the right length but other bytes.
        [
            ms(b"/multistream/2.0.0\n"),
            named(HOP_PROTOCOL),
            payload(100),
        ]
        .concat(),
        // A handshake message over libp2p-relay's limit.
        [
            ms(MULTISTREAM_HEADER),
            named(HOP_PROTOCOL),
            vec![0x81, 0x40], // 8193
            payload(100),
        ]
        .concat(),
    ];
    for (i, written) in cases.iter().enumerate() {
        assert_eq!(count_every_way(HOP_PROTOCOL, written), 0, "case {i}");
    }
}

/// A sink that takes at most `max` bytes per write.
struct Short {
    written: Vec<u8>,
    max: usize,
}

impl AsyncWrite for Short {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.max);
        self.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Short {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(0))
    }
}

/// Only what the inner stream took is watched: short writes count exactly the forwarded
/// bytes, and the wrapper's three directions watch what they should.
#[test]
fn a_wrapped_stream_counts_what_the_inner_stream_took() {
    let counter = RelayedBytes::new();
    let wrapper = CountRelayed::new(counter.clone());
    let mut written = [ms(MULTISTREAM_HEADER), named(HOP_PROTOCOL), handshake(14)].concat();
    written.extend(payload(10_000));
    for max in [1, 5, 4096] {
        let before = counter.total();
        let mut stream = wrapper.wrap_inbound(Short {
            written: Vec::new(),
            max,
        });
        block_on(stream.write_all(&written)).unwrap();
        assert_eq!(stream.inner.written, written);
        assert_eq!(counter.total() - before, 10_000, "writes of at most {max}");
    }
    // The same bytes on an outbound stream, or one of unknown direction: nothing.
    let before = counter.total();
    block_on(
        wrapper
            .wrap_outbound(Cursor::new(Vec::new()))
            .write_all(&written),
    )
    .unwrap();
    block_on(wrapper.wrap(Cursor::new(Vec::new())).write_all(&written)).unwrap();
    assert_eq!(counter.total(), before);
}
