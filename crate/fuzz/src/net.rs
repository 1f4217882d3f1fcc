//! What `shoal-net` reads from peers: the relay directory's lookups and answers, frames, the
//! replies of Shoal's request-response protocol, and the peer addresses a node hands out in
//! its messages (multiaddrs ending in `/p2p/<peer id>`) (target `net_codecs`); and the WebRTC
//! signaling messages another tab sends through a relay (target `webrtc_signaling`).

use futures::executor::block_on;
use futures::io::Cursor;
use shoal_core::wire::MAX_ADDRESS_BYTES;
use shoal_net::codec::{read_frame, LENGTH_PREFIX_BYTES};
use shoal_net::directory::{self, MAX_ENTRIES, MAX_MESSAGE_BYTES};
use shoal_net::node_link::{self, Reply};
use shoal_net::signaling;

use crate::alloc::bounded;

/// The first byte picks the decoder, the rest is its input.
pub fn net_codecs(data: &[u8]) {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => directory_answer(input),
        1 => directory_lookup(input),
        2 => addresses(input),
        3 => frame(input),
        _ => reply(input),
    }
}

/// A directory answer: at most [`MAX_ENTRIES`] peer ids, re-encoded to the same bytes.
fn directory_answer(input: &[u8]) {
    let Ok(peers) = bounded("directory answer", input.len(), || {
        directory::decode_peers(input)
    }) else {
        return;
    };
    assert!(peers.len() <= MAX_ENTRIES);
    assert!(input.len() <= MAX_MESSAGE_BYTES);
    assert_eq!(directory::encode_peers(&peers), input);
}

/// A directory lookup: a namespace that encodes back to the same bytes.
fn directory_lookup(input: &[u8]) {
    let Ok(namespace) = bounded("directory lookup", input.len(), || {
        directory::decode_lookup(input)
    }) else {
        return;
    };
    assert_eq!(namespace.as_bytes(), input);
    let network = namespace.strip_prefix("shoal/").expect("a namespace");
    assert_eq!(directory::encode_lookup(network).as_deref(), Some(input));
}

/// An address string from a message (an invitation's, a view member's): one peer, every
/// address ending in `/p2p/<that peer>`, nothing longer than the wire's bound.
fn addresses(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Some((peer, addrs)) = bounded("addresses", input.len(), || {
        node_link::parse_addresses(text)
    }) else {
        return;
    };
    assert!(text.len() <= MAX_ADDRESS_BYTES);
    assert!(!addrs.is_empty());
    for addr in &addrs {
        assert_eq!(
            node_link::parse_address(&addr.to_string()).map(|(p, _)| p),
            Some(peer)
        );
    }
    let joined = node_link::join_addresses(&addrs);
    assert!(joined.len() <= MAX_ADDRESS_BYTES);
}

/// A frame read from a stream, under a limit taken from the input: never more than the limit,
/// and exactly the bytes after the prefix.
fn frame(input: &[u8]) {
    let Some((&limit, stream)) = input.split_first() else {
        return;
    };
    let max_bytes = usize::from(limit) * 64;
    let result = bounded("frame", stream.len(), || {
        block_on(read_frame(&mut Cursor::new(stream), max_bytes))
    });
    if let Ok(frame) = result {
        assert!(frame.len() <= max_bytes);
        assert_eq!(
            &stream[LENGTH_PREFIX_BYTES..LENGTH_PREFIX_BYTES + frame.len()],
            &frame[..]
        );
    }
}

/// A response: empty is an acknowledgement, anything else one message.
fn reply(input: &[u8]) {
    match bounded("reply", input.len(), || node_link::decode_reply(input)) {
        Ok(Reply::Ack) => assert!(input.is_empty()),
        Ok(Reply::Message(message)) => {
            assert_eq!(node_link::encode_request(&message).as_deref(), Ok(input))
        }
        Err(_) => {}
    }
}

/// The `/webrtc-signaling/0.0.1` messages two tabs exchange through a relay before they connect
/// directly (`shoal_net::signaling`). The first byte picks what the rest is: a stream of
/// length-prefixed messages, one message body, or a candidate's JSON.
pub fn webrtc_signaling(data: &[u8]) {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => signaling_stream(input),
        1 => signaling_body(input),
        _ => signaling_candidate(input),
    }
}

/// Messages read from a stream until it ends or fails: each within the limit, re-encoded to
/// bytes that read back to it; never more bytes taken from the stream than it has.
fn signaling_stream(input: &[u8]) {
    let messages = bounded("signaling stream", input.len(), || {
        let mut stream = Cursor::new(input);
        let mut messages = Vec::new();
        while let Ok(message) = block_on(signaling::read_message(&mut stream)) {
            messages.push(message);
        }
        messages
    });
    for message in &messages {
        assert!(message.data.len() <= signaling::MAX_MESSAGE_BYTES);
        let encoded = signaling::encode(message);
        let read = block_on(signaling::read_message(&mut Cursor::new(&encoded[..])));
        assert_eq!(read.as_ref().ok(), Some(message));
    }
}

/// One message body: what decodes is written back to a stream that reads to the same message
/// (unknown fields dropped, varints made minimal).
fn signaling_body(input: &[u8]) {
    let Ok(message) = bounded("signaling body", input.len(), || signaling::decode(input)) else {
        return;
    };
    assert!(message.data.len() <= input.len());
    let encoded = signaling::encode(&message);
    let read = block_on(signaling::read_message(&mut Cursor::new(&encoded[..])));
    assert_eq!(read.ok().as_ref(), Some(&message));
}

/// A candidate's JSON: a candidate read is written back to JSON that reads to the same
/// candidate; an end of candidates is `null`, `""` or nothing.
fn signaling_candidate(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match bounded("signaling candidate", input.len(), || {
        signaling::candidate_from_data(text)
    }) {
        Ok(Some(candidate)) => {
            assert!(candidate.sdp_mid.is_some() || candidate.sdp_m_line_index.is_some());
            let data = signaling::candidate_to_data(&candidate);
            assert_eq!(
                signaling::candidate_from_data(&data).ok(),
                Some(Some(candidate))
            );
        }
        Ok(None) => {
            let trimmed = text.trim();
            assert!(trimmed.is_empty() || trimmed == "null" || trimmed == "\"\"");
        }
        Err(_) => {}
    }
}
