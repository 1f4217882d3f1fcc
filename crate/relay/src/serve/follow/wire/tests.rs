//! Frames from the wire, honest and hostile.

use super::*;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message_blockdata::Inventory;

const REGTEST: [u8; 4] = [0xfa, 0xbf, 0xb5, 0xda];

fn magic() -> Magic {
    Magic::from_bytes(REGTEST)
}

fn split(frame: &[u8]) -> Result<Incoming, FrameError> {
    let head: [u8; FRAME_HEADER_BYTES] = frame[..FRAME_HEADER_BYTES].try_into().unwrap();
    let header = read_frame_header(&head, magic())?;
    assert_eq!(header.length as usize, frame.len() - FRAME_HEADER_BYTES);
    decode_frame(&header, frame)
}

#[test]
fn messages_round_trip_through_rust_bitcoins_encoding() {
    let hash = bitcoin::BlockHash::from_byte_array([7; 32]);
    let frame = encode_frame(
        magic(),
        NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]),
    );
    match split(&frame).unwrap() {
        Incoming::Message(NetworkMessage::GetData(items)) => {
            assert_eq!(items, vec![Inventory::WitnessBlock(hash)])
        }
        other => panic!("{other:?}"),
    }
    let frame = encode_frame(magic(), NetworkMessage::Ping(42));
    assert!(matches!(
        split(&frame).unwrap(),
        Incoming::Message(NetworkMessage::Ping(42))
    ));
}

#[test]
fn a_block_frame_is_decoded_by_shoals_block_decoder_witness_and_all() {
    let bytes = bitcoin_test_data::blocks::mainnet_702861();
    let block: bitcoin::Block = encode::deserialize(bytes).unwrap();
    let frame = encode_frame(magic(), NetworkMessage::Block(block));
    match split(&frame).unwrap() {
        Incoming::Block(block) => {
            assert_eq!(block.encode(), bytes);
            block.check().unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_frame_for_another_network_is_refused_before_its_payload_is_read() {
    let mut frame = encode_frame(
        Magic::from_bytes([0xf9, 0xbe, 0xb4, 0xd9]),
        NetworkMessage::Verack,
    );
    let head: [u8; FRAME_HEADER_BYTES] = frame[..FRAME_HEADER_BYTES].try_into().unwrap();
    assert!(matches!(
        read_frame_header(&head, magic()),
        Err(FrameError::WrongMagic { .. })
    ));
    frame[..4].copy_from_slice(&REGTEST);
    assert!(split(&frame).is_ok());
}

#[test]
fn a_frame_announcing_more_than_four_megabytes_is_refused_from_its_header() {
    let mut head = [0u8; FRAME_HEADER_BYTES];
    head[..4].copy_from_slice(&REGTEST);
    head[4..9].copy_from_slice(b"block");
    head[16..20].copy_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_le_bytes());
    let error = read_frame_header(&head, magic()).unwrap_err();
    assert_eq!(
        error,
        FrameError::TooLarge {
            command: "block".into(),
            length: MAX_PAYLOAD_BYTES + 1
        }
    );
    head[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(read_frame_header(&head, magic()).is_err());
}

#[test]
fn a_damaged_payload_fails_its_checksum() {
    let mut frame = encode_frame(magic(), NetworkMessage::Ping(42));
    *frame.last_mut().unwrap() ^= 1;
    assert_eq!(
        split(&frame).unwrap_err(),
        FrameError::BadChecksum {
            command: "ping".into()
        }
    );
}

/// A frame whose checksum matches a hostile payload.
fn frame_of(command: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = REGTEST.to_vec();
    let mut name = [0u8; 12];
    name[..command.len()].copy_from_slice(command.as_bytes());
    frame.extend_from_slice(&name);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&sha256d(payload)[..4]);
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn hostile_payloads_are_errors_never_panics() {
    // A truncated block, a block of garbage, a count far beyond the bytes, trailing bytes.
    let block = bitcoin_test_data::blocks::mainnet_702861();
    for (command, payload) in [
        ("block", &block[..block.len() / 2]),
        ("block", &[0xff; 100][..]),
        ("headers", &[0xfe, 0xff, 0xff, 0xff, 0x7f][..]),
        ("inv", &[0xfd, 0xff, 0xff][..]),
        ("ping", &[1, 2, 3, 4, 5, 6, 7, 8, 9][..]),
        ("version", &[0; 10][..]),
    ] {
        let result = split(&frame_of(command, payload));
        assert!(
            matches!(result, Err(FrameError::Undecodable { .. })),
            "{command}: {result:?}"
        );
    }
    // A command rust-bitcoin does not know is not an error: it is ignored later.
    assert!(matches!(
        split(&frame_of("shoalnope", b"xyz")).unwrap(),
        Incoming::Message(NetworkMessage::Unknown { .. })
    ));
}

#[test]
fn hashes_and_headers_convert_both_ways() {
    let block: bitcoin::Block =
        encode::deserialize(bitcoin_test_data::blocks::mainnet_702861()).unwrap();
    let header = header_from(&block.header);
    assert_eq!(hash_to(header.block_hash()), block.block_hash());
    assert_eq!(hash_from(block.block_hash()), header.block_hash());
}
