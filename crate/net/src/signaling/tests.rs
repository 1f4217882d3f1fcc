use std::pin::Pin;
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::io::Cursor;
use proptest::prelude::*;

use super::*;

fn offer(data: &str) -> Message {
    Message {
        kind: Kind::SdpOffer,
        data: data.into(),
    }
}

/// A reader that hands out at most `chunk` bytes per call and counts what it handed out.
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

/// A stream that announces a length and then has endless bytes: what it handed out is counted.
struct Endless {
    prefix: Vec<u8>,
    read_bytes: usize,
}

impl AsyncRead for Endless {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let at = self.read_bytes;
        let n = buf.len();
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = self.prefix.get(at + i).copied().unwrap_or(b'x');
        }
        self.read_bytes += n;
        Poll::Ready(Ok(n))
    }
}

fn read(bytes: &[u8]) -> Result<Message, SignalingError> {
    block_on(read_message(&mut Cursor::new(bytes.to_vec())))
}

fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

#[test]
fn names_are_those_of_js_libp2p() {
    assert_eq!(PROTOCOL_NAME, "/webrtc-signaling/0.0.1");
    assert_eq!(protocol().as_ref(), PROTOCOL_NAME);
    assert_eq!(
        [Kind::SdpOffer, Kind::SdpAnswer, Kind::IceCandidate].map(Kind::number),
        [0, 1, 2]
    );
}

/// Computed by hand from the protobuf rules: tag (1 << 3 | 0) = 0x08, SDP_OFFER = 0x00; tag
/// (2 << 3 | 2) = 0x12, length 5, "v=0\r\n"; 9 bytes, so the prefix is 0x09.
#[test]
fn an_offer_has_the_bytes_computed_by_hand() {
    let bytes = encode(&offer("v=0\r\n"));
    assert_eq!(
        bytes,
        [0x09, 0x08, 0x00, 0x12, 0x05, b'v', b'=', b'0', b'\r', b'\n']
    );
    assert_eq!(read(&bytes).unwrap(), offer("v=0\r\n"));
    // 200 bytes of data: its length is the varint c8 01, the body 2 + 1 + 2 + 200 = 205 bytes,
    // the prefix cd 01.
    let candidate = Message {
        kind: Kind::IceCandidate,
        data: "a".repeat(200),
    };
    let bytes = encode(&candidate);
    assert_eq!(&bytes[..6], [0xcd, 0x01, 0x08, 0x02, 0x12, 0xc8]);
    assert_eq!(bytes[6], 0x01);
    assert_eq!(bytes.len(), 2 + 205);
    assert_eq!(read(&bytes).unwrap(), candidate);
}

#[test]
fn every_kind_round_trips_with_any_text() {
    for kind in [Kind::SdpOffer, Kind::SdpAnswer, Kind::IceCandidate] {
        for data in ["", "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", "é✓ 🦀", "null"] {
            let message = Message {
                kind,
                data: data.into(),
            };
            let bytes = encode(&message);
            assert_eq!(read(&bytes).unwrap(), message);
            assert_eq!(decode(&bytes[1..]).unwrap(), message);
        }
    }
}

#[test]
fn several_messages_are_read_one_after_another_from_a_trickling_stream() {
    let messages = [
        offer("v=0\r\n"),
        Message {
            kind: Kind::SdpAnswer,
            data: "x".repeat(5000),
        },
        Message {
            kind: Kind::IceCandidate,
            data: END_OF_CANDIDATES_DATA.into(),
        },
    ];
    let stream: Vec<u8> = messages.iter().flat_map(encode).collect();
    let mut reader = Trickle {
        data: stream,
        at: 0,
        chunk: 1,
    };
    for message in &messages {
        assert_eq!(&block_on(read_message(&mut reader)).unwrap(), message);
    }
    assert!(matches!(
        block_on(read_message(&mut reader)),
        Err(SignalingError::UnexpectedEnd)
    ));
}

#[test]
fn write_message_writes_the_encoding_and_refuses_what_is_over_the_limit() {
    let mut sink = Cursor::new(Vec::new());
    block_on(write_message(&mut sink, &offer("v=0\r\n"))).unwrap();
    assert_eq!(sink.into_inner(), encode(&offer("v=0\r\n")));

    // Body = 2 + 1 + 3 (varint of the data length) + data.
    let at_limit = offer(&"a".repeat(MAX_MESSAGE_BYTES - 6));
    let mut sink = Cursor::new(Vec::new());
    block_on(write_message(&mut sink, &at_limit)).unwrap();
    let written = sink.into_inner();
    assert_eq!(read(&written).unwrap(), at_limit);

    let over = offer(&"a".repeat(MAX_MESSAGE_BYTES - 5));
    let mut sink = Cursor::new(Vec::new());
    let error = block_on(write_message(&mut sink, &over)).unwrap_err();
    assert!(matches!(
        error,
        SignalingError::TooLarge { len, max: MAX_MESSAGE_BYTES } if len == MAX_MESSAGE_BYTES as u64 + 1
    ));
    assert!(sink.into_inner().is_empty(), "nothing written on refusal");
    // Nor is one over the limit read.
    assert!(matches!(
        read(&encode(&over)),
        Err(SignalingError::TooLarge { .. })
    ));
}

/// A length prefix over the limit is refused after its own bytes: not one byte of the body is
/// read (so nothing is allocated for it), however much the stream holds.
#[test]
fn an_oversized_length_is_refused_before_the_body_is_read() {
    for len in [
        MAX_MESSAGE_BYTES as u64 + 1,
        1 << 32,
        (1 << 63) - 1, // the largest 9-byte varint
    ] {
        let mut prefix = Vec::new();
        put_varint(&mut prefix, len);
        let mut stream = Endless {
            prefix: prefix.clone(),
            read_bytes: 0,
        };
        let error = block_on(read_message(&mut stream)).unwrap_err();
        assert!(
            matches!(error, SignalingError::TooLarge { len: l, max: MAX_MESSAGE_BYTES } if l == len),
            "{error}"
        );
        assert_eq!(stream.read_bytes, prefix.len(), "only the prefix was read");
    }
}

#[test]
fn a_malformed_length_prefix_is_refused() {
    // Not minimal: 0 and 5 padded with a zero group.
    for bytes in [&[0x80, 0x00][..], &[0x85, 0x00, 0x00], &[0x85, 0x80, 0x00]] {
        assert!(
            matches!(read(bytes), Err(SignalingError::BadVarint)),
            "{bytes:02x?}"
        );
    }
    // Ten bytes: longer than the multiformats limit of nine.
    let mut ten = vec![0xff; 9];
    ten.push(0x01);
    let mut stream = Endless {
        prefix: ten,
        read_bytes: 0,
    };
    assert!(matches!(
        block_on(read_message(&mut stream)),
        Err(SignalingError::BadVarint)
    ));
    assert_eq!(stream.read_bytes, MAX_PREFIX_BYTES);
}

#[test]
fn a_stream_that_ends_early_is_told_apart_from_one_that_ends_between_messages() {
    assert!(matches!(read(&[]), Err(SignalingError::UnexpectedEnd)));
    assert!(matches!(
        read(&[0x80]),
        Err(SignalingError::Truncated("the length prefix"))
    ));
    let bytes = encode(&offer("v=0\r\n"));
    for cut in 1..bytes.len() {
        assert!(
            matches!(
                read(&bytes[..cut]),
                Err(SignalingError::Truncated("the message body"))
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_truncated_body_is_an_error_at_every_cut() {
    let body = &encode(&offer("v=0\r\n"))[1..];
    assert!(matches!(decode(&[]), Err(SignalingError::MissingType)));
    for cut in 1..body.len() {
        if cut == 2 {
            // The type alone: a whole message (data missing is empty).
            assert_eq!(decode(&body[..cut]).unwrap(), offer(""));
            continue;
        }
        let error = decode(&body[..cut]).unwrap_err();
        assert!(
            matches!(error, SignalingError::Truncated(_)),
            "cut at {cut}: {error}"
        );
    }
    // A length that runs past the end, one that does not fit in usize anywhere.
    assert!(matches!(
        decode(&[0x08, 0x00, 0x12, 0x06, b'a']),
        Err(SignalingError::Truncated("the data"))
    ));
    let mut huge = vec![0x08, 0x00, 0x12];
    put_varint(&mut huge, u64::MAX);
    assert!(matches!(
        decode(&huge),
        Err(SignalingError::Truncated("the data"))
    ));
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let mut body = vec![
        0x18, 0x96, 0x01, // field 3, varint 150
        0x21, 1, 2, 3, 4, 5, 6, 7, 8, // field 4, 64-bit
        0x2a, 0x02, 0xff, 0xfe, // field 5, 2 bytes (not UTF-8: unknown, so unchecked)
        0x35, 1, 2, 3, 4, // field 6, 32-bit
    ];
    body.extend_from_slice(&encode(&offer("v=0\r\n"))[1..]);
    // A field number as large as protobuf allows, after the known ones.
    put_varint(&mut body, MAX_FIELD_NUMBER << 3);
    body.push(0x07);
    assert_eq!(decode(&body).unwrap(), offer("v=0\r\n"));
}

#[test]
fn a_missing_data_is_empty_and_the_last_of_a_repeated_field_counts() {
    assert_eq!(
        decode(&[0x08, 0x01]).unwrap(),
        Message {
            kind: Kind::SdpAnswer,
            data: String::new()
        }
    );
    // type 2, data "a", type 1, data "bc": an answer "bc".
    assert_eq!(
        decode(&[0x08, 0x02, 0x12, 0x01, b'a', 0x08, 0x01, 0x12, 0x02, b'b', b'c']).unwrap(),
        Message {
            kind: Kind::SdpAnswer,
            data: "bc".into()
        }
    );
    // A non-minimal varint is valid protobuf: type 1 as 0x81 0x00.
    assert_eq!(decode(&[0x08, 0x81, 0x00]).unwrap().kind, Kind::SdpAnswer);
}

#[test]
fn a_missing_or_unknown_type_is_refused() {
    assert!(matches!(
        decode(&[0x12, 0x01, b'a']),
        Err(SignalingError::MissingType)
    ));
    assert!(matches!(
        decode(&[0x08, 0x03]),
        Err(SignalingError::UnknownType(3))
    ));
    // -1 as an int32 is sent as ten bytes.
    let mut minus_one = vec![0x08];
    put_varint(&mut minus_one, u64::MAX);
    assert_eq!(minus_one.len(), 11);
    assert!(matches!(
        decode(&minus_one),
        Err(SignalingError::UnknownType(-1))
    ));
    // Only the low 32 bits count (protobuf's int32): 2^32 + 1 is 1.
    let mut wrapped = vec![0x08];
    put_varint(&mut wrapped, (1 << 32) + 1);
    assert_eq!(decode(&wrapped).unwrap().kind, Kind::SdpAnswer);
}

#[test]
fn overlong_varints_are_refused() {
    // Eleven bytes, and ten whose last holds more than the 64th bit.
    let mut eleven = vec![0x08];
    eleven.extend([0x80; 10]);
    eleven.push(0x00);
    assert!(matches!(decode(&eleven), Err(SignalingError::BadVarint)));
    let mut ten = vec![0x08];
    ten.extend([0xff; 9]);
    ten.push(0x02);
    assert!(matches!(decode(&ten), Err(SignalingError::BadVarint)));
    // The same in a tag.
    assert!(matches!(
        decode(&[0xff; 11]),
        Err(SignalingError::BadVarint)
    ));
}

#[test]
fn bad_wire_types_and_field_numbers_are_refused() {
    let cases: [(&[u8], u64, u8); 6] = [
        (&[0x0a, 0x00], 1, 2),       // type as bytes
        (&[0x0d, 0, 0, 0, 0], 1, 5), // type as 32-bit
        (&[0x10, 0x00], 2, 0),       // data as a varint
        (&[0x1b], 3, 3),             // start group
        (&[0x1c], 3, 4),             // end group
        (&[0x1e], 3, 6),             // no such wire type
    ];
    for (body, field, wire_type) in cases {
        let error = decode(body).unwrap_err();
        assert!(
            matches!(error, SignalingError::BadWireType { field: f, wire_type: w } if f == field && w == wire_type),
            "{body:02x?}: {error}"
        );
    }
    assert!(matches!(
        decode(&[0x1f]),
        Err(SignalingError::BadWireType { wire_type: 7, .. })
    ));
    assert!(matches!(
        decode(&[0x00, 0x00]),
        Err(SignalingError::BadFieldNumber(0))
    ));
    let mut too_large = Vec::new();
    put_varint(&mut too_large, (MAX_FIELD_NUMBER + 1) << 3);
    too_large.push(0);
    assert!(matches!(
        decode(&too_large),
        Err(SignalingError::BadFieldNumber(n)) if n == MAX_FIELD_NUMBER + 1
    ));
}

#[test]
fn data_that_is_not_utf8_is_refused() {
    assert!(matches!(
        decode(&[0x08, 0x00, 0x12, 0x02, 0xc3, 0x28]),
        Err(SignalingError::BadUtf8)
    ));
    assert!(matches!(
        read(&prefixed(&[0x08, 0x02, 0x12, 0x01, 0xff])),
        Err(SignalingError::BadUtf8)
    ));
}

fn chrome_candidate() -> IceCandidate {
    IceCandidate {
        candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 4ZcD network-cost 999".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: Some("4ZcD".into()),
    }
}

#[test]
fn a_candidate_is_written_as_to_json_writes_it_and_read_back() {
    let candidate = chrome_candidate();
    let data = candidate_to_data(&candidate);
    assert_eq!(
        data,
        format!(
            r#"{{"candidate":"{}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"4ZcD"}}"#,
            candidate.candidate
        )
    );
    assert_eq!(candidate_from_data(&data).unwrap(), Some(candidate));
    // Absent values as null, as toJSON gives them.
    let bare = IceCandidate {
        candidate: String::new(),
        sdp_mid: None,
        sdp_m_line_index: Some(1),
        username_fragment: None,
    };
    let data = candidate_to_data(&bare);
    assert_eq!(
        data,
        r#"{"candidate":"","sdpMid":null,"sdpMLineIndex":1,"usernameFragment":null}"#
    );
    assert_eq!(candidate_from_data(&data).unwrap(), Some(bare));
}

#[test]
fn a_candidate_from_a_browser_with_fields_missing_or_added_is_read() {
    // Firefox leaves usernameFragment out; a later browser may add fields.
    let data = r#" {"candidate":"candidate:1 1 UDP 2122252543 192.0.2.1 5000 typ host","sdpMLineIndex":0,"sdpMid":"0","relayProtocol":"udp","extra":{"a":[1,2,{"b":null}]}} "#;
    let candidate = candidate_from_data(data).unwrap().unwrap();
    assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
    assert_eq!(candidate.username_fragment, None);
}

#[test]
fn the_end_of_candidates_is_none() {
    for data in [END_OF_CANDIDATES_DATA, "", "  ", r#""""#, " null\n"] {
        assert_eq!(candidate_from_data(data).unwrap(), None, "{data:?}");
    }
}

#[test]
fn bad_candidates_are_refused_with_a_reason() {
    let cases = [
        r#"{"sdpMid":"0","sdpMLineIndex":0}"#, // no candidate
        r#"{"candidate":"candidate:1"}"#,      // neither sdpMid nor sdpMLineIndex
        r#"{"candidate":"candidate:1","sdpMid":null,"sdpMLineIndex":null}"#,
        r#"{"candidate":1,"sdpMid":"0"}"#,            // a number
        r#"{"candidate":"c","sdpMLineIndex":70000}"#, // over u16
        r#"{"candidate":"c","sdpMLineIndex":-1}"#,
        r#""candidate:1""#, // a string that is not empty
        "[]",
        "42",
        "true",
        "{",
        r#"{"candidate":"c","sdpMid":"0"} trailing"#,
        "nul",
    ];
    for data in cases {
        let error = candidate_from_data(data).unwrap_err();
        match &error {
            SignalingError::BadCandidate(reason) => assert!(!reason.is_empty()),
            other => panic!("{data}: {other}"),
        }
    }
}

#[test]
fn huge_or_deep_candidate_json_is_refused_without_trouble() {
    let huge = format!(
        r#"{{"candidate":"{}","sdpMid":"0"}}"#,
        "a".repeat(MAX_MESSAGE_BYTES)
    );
    assert!(matches!(
        candidate_from_data(&huge),
        Err(SignalingError::TooLarge {
            max: MAX_MESSAGE_BYTES,
            ..
        })
    ));
    // Nested 20,000 deep in a field that is ignored: skipped without recursion (serde_json
    // keeps a byte per level), so neither an error nor a stack overflow.
    let deep = format!(
        r#"{{"candidate":"c","sdpMid":"0","x":{}{}}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    assert!(deep.len() < MAX_MESSAGE_BYTES);
    assert!(candidate_from_data(&deep).unwrap().is_some());
    // Nested where a candidate or its string should be: refused at the first bracket.
    for deep in [
        "[".repeat(20_000),
        format!(r#"{{"candidate":{}"#, "{".repeat(20_000)),
    ] {
        assert!(matches!(
            candidate_from_data(&deep),
            Err(SignalingError::BadCandidate(_))
        ));
    }
}

#[test]
fn errors_say_what_happened() {
    let text = SignalingError::TooLarge {
        len: 70_000,
        max: MAX_MESSAGE_BYTES,
    }
    .to_string();
    assert_eq!(
        text,
        "signaling message of 70000 bytes exceeds the limit of 65536 bytes"
    );
    assert_eq!(
        SignalingError::Truncated("the data").to_string(),
        "signaling message truncated: the bytes end inside the data"
    );
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::SdpOffer),
        Just(Kind::SdpAnswer),
        Just(Kind::IceCandidate)
    ]
}

proptest! {
    #[test]
    fn messages_round_trip(kind in any_kind(), data in ".{0,3000}", chunk in 1usize..600) {
        let message = Message { kind, data };
        let mut reader = Trickle { data: encode(&message), at: 0, chunk };
        prop_assert_eq!(block_on(read_message(&mut reader)).unwrap(), message);
    }

    #[test]
    fn any_body_decodes_or_is_refused_and_what_decodes_reencodes(
        body in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        if let Ok(message) = decode(&body) {
            let encoded = encode(&message);
            prop_assert_eq!(decode(&encoded[varint_len_of_prefix(&encoded)..]).unwrap(), message);
        }
        let _ = read(&body);
    }

    #[test]
    fn candidates_round_trip(
        candidate in ".{0,300}",
        sdp_mid in proptest::option::of(".{0,8}"),
        sdp_m_line_index in proptest::option::of(any::<u16>()),
        username_fragment in proptest::option::of("[a-zA-Z0-9+/]{0,16}"),
    ) {
        prop_assume!(sdp_mid.is_some() || sdp_m_line_index.is_some());
        let candidate = IceCandidate { candidate, sdp_mid, sdp_m_line_index, username_fragment };
        prop_assert_eq!(candidate_from_data(&candidate_to_data(&candidate)).unwrap(), Some(candidate));
    }
}
