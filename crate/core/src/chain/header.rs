//! The 80-byte block header.

use super::encode::{DecodeError, Reader};
use super::hash::{sha256d, BlockHash, Hash256};

/// The size of a serialized header.
pub const HEADER_SIZE: usize = 80;

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// The block version (BIP9 version bits).
    pub version: i32,
    /// The hash of the previous block's header.
    pub prev_blockhash: BlockHash,
    /// The Merkle root of the block's transaction ids.
    pub merkle_root: Hash256,
    /// The block time, seconds since the Unix epoch.
    pub time: u32,
    /// The proof-of-work target in compact form.
    pub bits: u32,
    /// The proof-of-work nonce.
    pub nonce: u32,
}

impl Header {
    /// Decodes exactly 80 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > HEADER_SIZE {
            return Err(DecodeError::TrailingBytes {
                what: "header",
                count: bytes.len() - HEADER_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        Self::decode_from(&mut r)
    }

    /// Decodes a header at the reader's position.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: r.read_i32_le()?,
            prev_blockhash: BlockHash(r.read_array()?),
            merkle_root: Hash256(r.read_array()?),
            time: r.read_u32_le()?,
            bits: r.read_u32_le()?,
            nonce: r.read_u32_le()?,
        })
    }

    /// The 80-byte serialization.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_blockhash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// The block hash: `sha256d` of the 80 bytes.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.encode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mainnet's genesis header.
    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn mainnet_genesis_hash() {
        let bytes = unhex(GENESIS);
        let header = Header::decode(&bytes).unwrap();
        assert_eq!(
            header.block_hash().to_hex(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(header.encode().to_vec(), bytes);
        assert_eq!(header.bits, 0x1d00ffff);
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        let bytes = unhex(GENESIS);
        assert!(matches!(
            Header::decode(&bytes[..79]),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            Header::decode(&long),
            Err(DecodeError::TrailingBytes { count: 1, .. })
        ));
    }
}
