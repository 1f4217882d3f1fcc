//! Double SHA-256 and the 32-byte hash types of Bitcoin.
//!
//! Every hash is kept in *internal* byte order (the order in which it is hashed and sent on
//! the wire). Bitcoin's tools (bitcoind RPC, block explorers, Electrum) show hashes byte-reversed;
//! [`core::fmt::Display`], [`core::str::FromStr`] and `to_hex` use that *display* order.

use core::fmt;
use core::str::FromStr;

use sha2::{Digest, Sha256};

/// `SHA256(SHA256(data))`.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// `SHA256(SHA256(left || right))`: one Merkle tree node, without allocating.
pub fn sha256d_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut engine = Sha256::new();
    engine.update(left);
    engine.update(right);
    Sha256::digest(engine.finalize()).into()
}

/// A streaming double-SHA-256 engine.
#[derive(Clone, Default)]
pub struct Sha256dEngine(Sha256);

impl Sha256dEngine {
    /// A fresh engine.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The double hash of everything fed so far.
    pub fn finalize(self) -> [u8; 32] {
        Sha256::digest(self.0.finalize()).into()
    }
}

impl fmt::Debug for Sha256dEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256dEngine")
    }
}

/// A hexadecimal string that is not a 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Not 64 characters long.
    #[error("a hash is 64 hexadecimal characters, this has {0}")]
    Length(usize),
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hexadecimal character at position {0}")]
    Character(usize),
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses 64 hex characters into 32 bytes, in the order written.
pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], HexError> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(HexError::Length(bytes.len()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(HexError::Character(2 * i))?;
        let lo = hex_digit(pair[1]).ok_or(HexError::Character(2 * i + 1))?;
        out[i] = (hi << 4) | lo;
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`, in the order given.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// All zeros (e.g. the genesis block's previous-block hash).
            pub const ZERO: Self = Self([0; 32]);

            /// From bytes in internal (wire) order.
            pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The bytes in internal (wire) order.
            pub const fn to_byte_array(self) -> [u8; 32] {
                self.0
            }

            /// The bytes in internal (wire) order.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Hex in display order (byte-reversed), as bitcoind and Electrum print it.
            pub fn to_hex(&self) -> String {
                let mut reversed = self.0;
                reversed.reverse();
                to_hex(&reversed)
            }

            /// Parses hex in display order (byte-reversed).
            pub fn from_hex(s: &str) -> Result<Self, HexError> {
                let mut bytes = parse_hex32(s)?;
                bytes.reverse();
                Ok(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                Self::from_hex(s)
            }
        }
    };
}

hash_newtype!(
    /// The hash of a block header: `sha256d(header)`.
    BlockHash
);
hash_newtype!(
    /// A transaction id: `sha256d` of the transaction without witness data.
    Txid
);
hash_newtype!(
    /// A witness transaction id: `sha256d` of the transaction with witness data.
    Wtxid
);
hash_newtype!(
    /// Any other double-SHA-256 value: Merkle nodes and roots, commitments.
    Hash256
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_input() {
        // Known value: sha256d("") = 5df6e0e2...
        assert_eq!(
            to_hex(&sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn pair_equals_concatenation() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        let mut cat = a.to_vec();
        cat.extend_from_slice(&b);
        assert_eq!(sha256d_pair(&a, &b), sha256d(&cat));
    }

    #[test]
    fn display_order_is_reversed() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        let h = BlockHash(bytes);
        assert!(h.to_hex().ends_with("ab"));
        assert_eq!(BlockHash::from_hex(&h.to_hex()).unwrap(), h);
    }

    #[test]
    fn bad_hex_is_rejected_with_reason() {
        assert_eq!(Txid::from_hex("00"), Err(HexError::Length(2)));
        let mut s = "0".repeat(64);
        s.replace_range(10..11, "g");
        assert_eq!(Txid::from_hex(&s), Err(HexError::Character(10)));
    }
}
