//! Bitcoin's P2P message framing, with rust-bitcoin's encoding of the messages.
//!
//! A frame is a 24-byte header (network magic, command, payload length, checksum) and the
//! payload. The reader bounds a frame before it reads the payload ([`MAX_PAYLOAD_BYTES`],
//! Bitcoin Core's `MAX_PROTOCOL_MESSAGE_LENGTH`), checks the magic and the checksum, and
//! decodes every message with rust-bitcoin's `RawNetworkMessage` — except a `block`, whose
//! payload goes straight to Shoal's own block decoder (the one every stored and served block
//! goes through, with its own bounds), so a block is decoded once, not twice.

use bitcoin::consensus::encode::{self, Decodable};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use shoal_core::chain::{sha256d, Block, Header};

/// Bytes of a frame's header.
pub const FRAME_HEADER_BYTES: usize = 24;

/// The largest payload read: Bitcoin Core's `MAX_PROTOCOL_MESSAGE_LENGTH` (4 MB), which a
/// block's serialization cannot exceed either (`MAX_BLOCK_SERIALIZED_SIZE`).
pub const MAX_PAYLOAD_BYTES: u32 = 4_000_000;

/// The most headers one `headers` message may carry (Core's `MAX_HEADERS_RESULTS`).
pub const MAX_HEADERS_PER_MESSAGE: usize = 2000;

/// A frame's header, read before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The command, NUL padding removed (at most 12 bytes).
    command: [u8; 12],
    /// Payload bytes that follow.
    pub length: u32,
    checksum: [u8; 4],
}

impl FrameHeader {
    /// The command as text, if it is printable ASCII.
    pub fn command(&self) -> &str {
        let end = self.command.iter().position(|&b| b == 0).unwrap_or(12);
        std::str::from_utf8(&self.command[..end]).unwrap_or("?")
    }
}

/// A message received.
#[derive(Debug)]
pub enum Incoming {
    /// A `block`, decoded by Shoal's block decoder.
    Block(Block),
    /// Any other message, decoded by rust-bitcoin.
    Message(NetworkMessage),
}

/// Why a frame was refused. Each ends the connection: the stream cannot be trusted after.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame for another network: magic {got:02x?}, expected {expected:02x?}")]
    WrongMagic { got: [u8; 4], expected: [u8; 4] },
    #[error("`{command}` frame of {length} bytes, more than the limit of {MAX_PAYLOAD_BYTES}")]
    TooLarge { command: String, length: u32 },
    #[error("`{command}` frame's checksum does not match its payload")]
    BadChecksum { command: String },
    #[error("`{command}` message does not decode: {reason}")]
    Undecodable { command: String, reason: String },
}

/// Reads a frame's header: the magic must be `magic`, the length within the limit.
pub fn read_frame_header(
    bytes: &[u8; FRAME_HEADER_BYTES],
    magic: Magic,
) -> Result<FrameHeader, FrameError> {
    let got: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    if got != magic.to_bytes() {
        return Err(FrameError::WrongMagic {
            got,
            expected: magic.to_bytes(),
        });
    }
    let header = FrameHeader {
        command: bytes[4..16].try_into().expect("12 bytes"),
        length: u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")),
        checksum: bytes[20..24].try_into().expect("4 bytes"),
    };
    if header.length > MAX_PAYLOAD_BYTES {
        return Err(FrameError::TooLarge {
            command: header.command().to_owned(),
            length: header.length,
        });
    }
    Ok(header)
}

/// Checks the payload against its header's checksum and decodes the message. `frame` is the
/// whole frame: its header, then `header.length` payload bytes.
pub fn decode_frame(header: &FrameHeader, frame: &[u8]) -> Result<Incoming, FrameError> {
    let command = header.command();
    let payload = &frame[FRAME_HEADER_BYTES..];
    debug_assert_eq!(payload.len(), header.length as usize);
    if sha256d(payload)[..4] != header.checksum {
        return Err(FrameError::BadChecksum {
            command: command.to_owned(),
        });
    }
    let undecodable = |reason: String| FrameError::Undecodable {
        command: command.to_owned(),
        reason,
    };
    if command == "block" {
        return Block::decode(payload)
            .map(Incoming::Block)
            .map_err(|error| undecodable(error.to_string()));
    }
    let mut reader = frame;
    let raw = RawNetworkMessage::consensus_decode(&mut reader)
        .map_err(|error: encode::Error| undecodable(error.to_string()))?;
    if !reader.is_empty() {
        return Err(undecodable(format!(
            "{} bytes after the message",
            reader.len()
        )));
    }
    Ok(Incoming::Message(raw.into_payload()))
}

/// The frame of `message` on the network `magic`.
pub fn encode_frame(magic: Magic, message: NetworkMessage) -> Vec<u8> {
    encode::serialize(&RawNetworkMessage::new(magic, message))
}

/// A rust-bitcoin header as Shoal's.
pub fn header_from(header: &bitcoin::block::Header) -> Header {
    let bytes = encode::serialize(header);
    Header::decode(&bytes).expect("an 80-byte header decodes")
}

/// Shoal's block hash as rust-bitcoin's.
pub fn hash_to(hash: shoal_core::chain::BlockHash) -> bitcoin::BlockHash {
    use bitcoin::hashes::Hash;
    bitcoin::BlockHash::from_byte_array(hash.0)
}

/// rust-bitcoin's block hash as Shoal's.
pub fn hash_from(hash: bitcoin::BlockHash) -> shoal_core::chain::BlockHash {
    use bitcoin::hashes::Hash;
    shoal_core::chain::BlockHash(hash.to_byte_array())
}

#[cfg(test)]
mod tests;
