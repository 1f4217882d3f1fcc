//! The `/webrtc-signaling/0.0.1` messages: how two browser tabs exchange an SDP offer and answer
//! and their ICE candidates over a relayed connection before they talk to each other directly
//! (issue 14; libp2p's `/webrtc` browser-to-browser specification, `webrtc/webrtc.md` in
//! libp2p/specs, as js-libp2p's `@libp2p/webrtc` speaks it).
//!
//! # Overview
//!
//! The dialing side *A* opens a stream with protocol [`PROTOCOL_NAME`] on its relayed
//! connection to *B*, sends an [`Kind::SdpOffer`], reads *B*'s [`Kind::SdpAnswer`]; then both
//! send [`Kind::IceCandidate`]s as they find them and read the other's until the direct
//! connection is up, and close the stream. This module holds only the bytes of that exchange:
//! the browser shell (`crate/web`) drives `RTCPeerConnection`.
//!
//! On the stream, every message is an unsigned varint (the multiformats `unsigned-varint`:
//! minimal, at most 9 bytes) holding the length of the protobuf message that follows:
//!
//! ```protobuf
//! message Message {
//!   enum Type { SDP_OFFER = 0; SDP_ANSWER = 1; ICE_CANDIDATE = 2; }
//!   optional Type type = 1;
//!   optional string data = 2;
//! }
//! ```
//!
//! `data` is `RTCSessionDescription.sdp` for an offer or an answer, and
//! `JSON.stringify(RTCIceCandidate.toJSON())` for a candidate ([`candidate_to_data`],
//! [`candidate_from_data`]); js-libp2p sends `"null"` when its browser says gathering is
//! complete.
//!
//! # Bounds and forward compatibility
//!
//! A message longer than [`MAX_MESSAGE_BYTES`] is refused from its length prefix, before
//! anything is allocated for it ([`read_message`]). Fields this version does not know are
//! skipped (a later version may add some); a missing `data` is an empty string; a missing or
//! unknown `type` is an error, as it is for js-libp2p, which checks the type of every message.
//! The decoder is hand-written (two fields): no protobuf crate, the same code for wasm32 and
//! native.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The signaling protocol, as js-libp2p names it (`SIGNALING_PROTOCOL` in `@libp2p/webrtc`;
/// the specification says `/webrtc-signaling`, every implementation adds the version).
pub const PROTOCOL_NAME: &str = "/webrtc-signaling/0.0.1";

/// The protocol to open or accept a signaling stream with.
pub fn protocol() -> libp2p::StreamProtocol {
    libp2p::StreamProtocol::new(PROTOCOL_NAME)
}

/// Largest message, length prefix excluded, read or written.
///
/// A browser's SDP offer is one to a few KB (a handful of lines per media section, one
/// fingerprint; candidates are trickled in messages of their own, each a few hundred bytes), so
/// 64 KiB leaves room for an offer that inlines many candidates. js-libp2p accepts up to 4 MiB
/// but never sends more than its browser's SDP.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest length prefix: the multiformats unsigned varint allows 9 bytes (63 bits).
pub const MAX_PREFIX_BYTES: usize = 9;

/// What a message carries (the protobuf `Message.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `data` is the offer's `RTCSessionDescription.sdp`.
    SdpOffer,
    /// `data` is the answer's `RTCSessionDescription.sdp`.
    SdpAnswer,
    /// `data` is an ICE candidate as JSON ([`candidate_from_data`]).
    IceCandidate,
}

impl Kind {
    /// The protobuf enum value.
    pub fn number(self) -> i32 {
        match self {
            Kind::SdpOffer => 0,
            Kind::SdpAnswer => 1,
            Kind::IceCandidate => 2,
        }
    }

    /// The kind of a protobuf enum value, if it is one this version knows.
    pub fn from_number(number: i32) -> Option<Kind> {
        match number {
            0 => Some(Kind::SdpOffer),
            1 => Some(Kind::SdpAnswer),
            2 => Some(Kind::IceCandidate),
            _ => None,
        }
    }
}

/// One signaling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub data: String,
}

/// Why a signaling message could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The length prefix, or the message to write, is over the limit.
    #[error("signaling message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
    /// The bytes end inside the length prefix, a field's tag, or a field.
    #[error("signaling message truncated: the bytes end inside {0}")]
    Truncated(&'static str),
    /// A varint of more than 10 bytes or over 64 bits, or a length prefix that is longer than 9
    /// bytes or not minimally encoded (the multiformats rules).
    #[error("signaling message has a malformed varint")]
    BadVarint,
    /// A field number of 0 or above protobuf's largest (2^29 − 1).
    #[error("signaling message has a field number {0} that protobuf does not allow")]
    BadFieldNumber(u64),
    /// A known field with another wire type than its own, or a group or invalid wire type.
    #[error("signaling message field {field} has wire type {wire_type}, which it cannot have")]
    BadWireType { field: u64, wire_type: u8 },
    /// A `type` this version does not know.
    #[error("signaling message of unknown type {0}")]
    UnknownType(i32),
    /// No `type` field.
    #[error("signaling message without a type")]
    MissingType,
    /// `data` is not UTF-8 (protobuf strings must be).
    #[error("signaling message data is not valid UTF-8")]
    BadUtf8,
    /// An ICE candidate's JSON is not an `RTCIceCandidateInit`.
    #[error("signaling message carries a bad ICE candidate: {0}")]
    BadCandidate(String),
    /// The stream failed.
    #[error("signaling stream failed: {0}")]
    Io(#[from] io::Error),
    /// The stream ended where a new message would start (the other end closed it; after a
    /// connection is established that is the normal end).
    #[error("signaling stream ended before a message")]
    UnexpectedEnd,
}

/// Protobuf wire types.
const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;
/// Tag bytes of `type = 1` (varint) and `data = 2` (length-delimited).
const TAG_TYPE: u8 = 1 << 3 | WIRE_VARINT;
const TAG_DATA: u8 = 2 << 3 | WIRE_LEN;
/// Protobuf's largest field number.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// `message` as it goes on the stream: the length prefix, then the protobuf message. Both
/// fields are always written (`type` too when it is 0, as js-libp2p does). Does not check
/// [`MAX_MESSAGE_BYTES`]; [`write_message`] does.
pub fn encode(message: &Message) -> Vec<u8> {
    let data = message.data.as_bytes();
    let body_len = 2 + 1 + varint_len(data.len() as u64) + data.len();
    let mut out = Vec::with_capacity(varint_len(body_len as u64) + body_len);
    put_varint(&mut out, body_len as u64);
    out.push(TAG_TYPE);
    let number = message.kind.number();
    debug_assert!((0..0x80).contains(&number), "one varint byte");
    out.push(number as u8);
    out.push(TAG_DATA);
    put_varint(&mut out, data.len() as u64);
    out.extend_from_slice(data);
    debug_assert_eq!(out.len(), varint_len(body_len as u64) + body_len);
    out
}

/// One protobuf message, without its length prefix. Unknown fields are skipped; of a field
/// given twice the last counts (protobuf's rule). Allocates only the returned `data`.
pub fn decode(bytes: &[u8]) -> Result<Message, SignalingError> {
    let mut at = 0;
    let mut kind = None;
    let mut data: &[u8] = &[];
    while at < bytes.len() {
        let tag = get_varint(bytes, &mut at, "a field tag")?;
        let field = tag >> 3;
        let wire_type = (tag & 7) as u8;
        if field == 0 || field > MAX_FIELD_NUMBER {
            return Err(SignalingError::BadFieldNumber(field));
        }
        match (field, wire_type) {
            // An int32 enum: the low 32 bits (a negative value is sent as 10 bytes).
            (1, WIRE_VARINT) => kind = Some(get_varint(bytes, &mut at, "the type")? as i32),
            (2, WIRE_LEN) => data = get_len_delimited(bytes, &mut at, "the data")?,
            (1 | 2, _) => return Err(SignalingError::BadWireType { field, wire_type }),
            (_, WIRE_VARINT) => {
                get_varint(bytes, &mut at, "an unknown field")?;
            }
            (_, WIRE_LEN) => {
                get_len_delimited(bytes, &mut at, "an unknown field")?;
            }
            (_, WIRE_I64) => skip(bytes, &mut at, 8)?,
            (_, WIRE_I32) => skip(bytes, &mut at, 4)?,
            // Groups (3, 4: deprecated, proto3 has none) and 6, 7 (no such wire type).
            _ => return Err(SignalingError::BadWireType { field, wire_type }),
        }
    }
    let number = kind.ok_or(SignalingError::MissingType)?;
    let kind = Kind::from_number(number).ok_or(SignalingError::UnknownType(number))?;
    let data = std::str::from_utf8(data).map_err(|_| SignalingError::BadUtf8)?;
    Ok(Message {
        kind,
        data: data.to_owned(),
    })
}

/// Reads one message: its length prefix, then its body. A length over [`MAX_MESSAGE_BYTES`] is
/// refused before the body is read or allocated; memory grows with the bytes that arrive.
/// A stream that ends before the first byte of a message gives
/// [`SignalingError::UnexpectedEnd`], one that ends inside it [`SignalingError::Truncated`].
pub async fn read_message<R: AsyncRead + Unpin>(io: &mut R) -> Result<Message, SignalingError> {
    let len = read_prefix(io).await?;
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(SignalingError::TooLarge {
            len,
            max: MAX_MESSAGE_BYTES,
        });
    }
    let mut body = Vec::new();
    io.take(len).read_to_end(&mut body).await?;
    if body.len() as u64 != len {
        return Err(SignalingError::Truncated("the message body"));
    }
    decode(&body)
}

/// Writes `message` and flushes. A message whose body is over [`MAX_MESSAGE_BYTES`] is refused
/// (the other end would refuse it) and nothing is written.
pub async fn write_message<W: AsyncWrite + Unpin>(
    io: &mut W,
    message: &Message,
) -> Result<(), SignalingError> {
    let bytes = encode(message);
    let body_len = bytes.len() - varint_len_of_prefix(&bytes);
    if body_len > MAX_MESSAGE_BYTES {
        return Err(SignalingError::TooLarge {
            len: body_len as u64,
            max: MAX_MESSAGE_BYTES,
        });
    }
    io.write_all(&bytes).await?;
    io.flush().await?;
    Ok(())
}

/// An ICE candidate as `RTCIceCandidate.toJSON()` gives it (an `RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` attribute line (without `a=`); empty means "end of candidates of this
    /// generation" (hand it to `addIceCandidate` as it is).
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default)]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// The `data` of an [`Kind::IceCandidate`] message for `candidate`: its JSON as
/// `RTCIceCandidate.toJSON()` writes it (absent values as `null`).
pub fn candidate_to_data(candidate: &IceCandidate) -> String {
    serde_json::to_string(candidate).expect("a struct of strings and numbers serializes")
}

/// The `data` js-libp2p sends when its browser has gathered every candidate (a `null` event
/// candidate): JSON `null`.
pub const END_OF_CANDIDATES_DATA: &str = "null";

/// The candidate in an [`Kind::IceCandidate`] message's `data`; `Ok(None)` when `data` says
/// that the sender has no more candidates. js-libp2p sends `JSON.stringify(candidate?.toJSON()
/// ?? null)` and reads `JSON.parse(data ?? 'null')`, taking `null` and `""` (a JSON string) as
/// the end; so is an empty `data` here (what a missing field decodes to).
///
/// A candidate object needs `candidate` and one of `sdpMid` and `sdpMLineIndex` (without both,
/// `new RTCIceCandidate` throws); other fields are ignored. `data` longer than
/// [`MAX_MESSAGE_BYTES`] is refused unread.
pub fn candidate_from_data(data: &str) -> Result<Option<IceCandidate>, SignalingError> {
    if data.len() > MAX_MESSAGE_BYTES {
        return Err(SignalingError::TooLarge {
            len: data.len() as u64,
            max: MAX_MESSAGE_BYTES,
        });
    }
    if data.trim().is_empty() {
        return Ok(None);
    }
    let parsed: CandidateData =
        serde_json::from_str(data).map_err(|e| SignalingError::BadCandidate(e.to_string()))?;
    match parsed {
        CandidateData::End => Ok(None),
        CandidateData::Candidate(candidate) => {
            if candidate.sdp_mid.is_none() && candidate.sdp_m_line_index.is_none() {
                return Err(SignalingError::BadCandidate(
                    "neither sdpMid nor sdpMLineIndex is given".into(),
                ));
            }
            Ok(Some(candidate))
        }
    }
}

/// What a candidate's JSON may be: `null` or `""` (the end), or a candidate object. Read
/// without building a JSON tree, so the allocations are those of the candidate's strings.
enum CandidateData {
    End,
    Candidate(IceCandidate),
}

impl<'de> serde::Deserialize<'de> for CandidateData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CandidateData;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RTCIceCandidateInit object, null or \"\"")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<CandidateData, E> {
                Ok(CandidateData::End)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<CandidateData, E> {
                Ok(CandidateData::End)
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<CandidateData, E> {
                if text.is_empty() {
                    Ok(CandidateData::End)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(text), &self))
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<CandidateData, A::Error> {
                serde::Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(CandidateData::Candidate)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Reads the length prefix byte by byte (nothing of the body is read ahead).
async fn read_prefix<R: AsyncRead + Unpin>(io: &mut R) -> Result<u64, SignalingError> {
    let mut value = 0u64;
    for i in 0..MAX_PREFIX_BYTES {
        let mut byte = [0u8];
        if io.read(&mut byte).await? == 0 {
            return Err(if i == 0 {
                SignalingError::UnexpectedEnd
            } else {
                SignalingError::Truncated("the length prefix")
            });
        }
        let byte = byte[0];
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Minimal: no trailing zero group (a lone 0 is the length 0).
            if byte == 0 && i > 0 {
                return Err(SignalingError::BadVarint);
            }
            return Ok(value);
        }
    }
    Err(SignalingError::BadVarint)
}

/// A protobuf varint at `*at` (at most 10 bytes, at most 64 bits; non-minimal encodings are
/// valid protobuf and accepted).
fn get_varint(bytes: &[u8], at: &mut usize, what: &'static str) -> Result<u64, SignalingError> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = bytes.get(*at) else {
            return Err(SignalingError::Truncated(what));
        };
        *at += 1;
        if i == 9 && byte > 1 {
            return Err(SignalingError::BadVarint);
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(SignalingError::BadVarint)
}

/// A length-delimited field's bytes at `*at`.
fn get_len_delimited<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    what: &'static str,
) -> Result<&'a [u8], SignalingError> {
    let len = get_varint(bytes, at, what)?;
    let left = bytes.len() - *at;
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= left)
        .ok_or(SignalingError::Truncated(what))?;
    let field = &bytes[*at..*at + len];
    *at += len;
    Ok(field)
}

fn skip(bytes: &[u8], at: &mut usize, len: usize) -> Result<(), SignalingError> {
    if bytes.len() - *at < len {
        return Err(SignalingError::Truncated("an unknown field"));
    }
    *at += len;
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of the length prefix at the start of an encoded message.
fn varint_len_of_prefix(encoded: &[u8]) -> usize {
    encoded
        .iter()
        .position(|b| b & 0x80 == 0)
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests;
