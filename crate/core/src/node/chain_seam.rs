//! The node's seam to the header chain.
//!
//! The node never owns a copy of the header chain. It reads it through [`HeaderView`], a small
//! read-only trait, and receives a new view (an `Arc`) through
//! [`Input::Headers`](crate::node::Input::Headers) whenever the chain advances. A browser tab
//! wraps its own verified header chain; the simulator builds one [`HeaderList`] and hands every
//! one of its thousands of nodes the same `Arc` (a [`HeaderPrefix`] of it), so headers cost
//! memory once, not once per node.
//!
//! Until `chain::headers::HeaderChain` lands on main this module also carries interim
//! definitions of the three chain types the wire needs (`Hash256`, `BlockHash`, `Header`), with
//! the names and shapes of CHAIN_API.md; they are replaced by re-exports of `crate::chain` when
//! those land.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Double SHA-256.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// A 32-byte hash in internal (wire) byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash256(pub [u8; 32]);

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.iter().rev().take(8) {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…")
    }
}

/// A block's hash (the double SHA-256 of its 80-byte header), internal byte order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// Wraps 32 bytes in internal order.
    pub fn from_byte_array(bytes: [u8; 32]) -> Self {
        BlockHash(bytes)
    }
    /// The 32 bytes in internal order.
    pub fn to_byte_array(self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({:?})", Hash256(self.0))
    }
}

/// A Bitcoin block header (80 bytes on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Header {
    pub version: i32,
    pub prev_blockhash: BlockHash,
    pub merkle_root: Hash256,
    pub time: u32,
    pub bits: u32,
    pub nonce: u32,
}

/// A header that is not exactly 80 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderDecodeError {
    #[error("a header is 80 bytes, got {0}")]
    WrongLength(usize),
}

impl Header {
    /// The 80-byte consensus encoding.
    pub fn encode(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_blockhash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Decodes exactly 80 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderDecodeError> {
        let b: &[u8; 80] = bytes
            .try_into()
            .map_err(|_| HeaderDecodeError::WrongLength(bytes.len()))?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&b[4..36]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&b[36..68]);
        Ok(Header {
            version: u32_at(0) as i32,
            prev_blockhash: BlockHash(prev),
            merkle_root: Hash256(root),
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        })
    }

    /// The block hash: double SHA-256 of the 80-byte encoding.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.encode()))
    }
}

/// A read-only view of a verified header chain (best chain only), as the node needs it.
///
/// Implementations must be immutable once shared: a new tip comes as a new view.
pub trait HeaderView: fmt::Debug + Send + Sync {
    /// Height of the best tip, `None` for an empty chain.
    fn tip_height(&self) -> Option<u32>;
    /// The header at `height` on the best chain.
    fn header_at(&self, height: u32) -> Option<Header>;
    /// The block hash at `height` on the best chain.
    fn block_hash_at(&self, height: u32) -> Option<BlockHash>;
    /// The height of `hash` if it is on the best chain.
    fn height_of(&self, hash: &BlockHash) -> Option<u32>;
}

/// A header view shared between the shell and any number of nodes.
pub type SharedHeaders = Arc<dyn HeaderView>;

/// A simple header store: headers, their hashes and a hash → height index.
///
/// It does not check proof of work or linkage (that is `chain::headers::HeaderChain`'s job);
/// it is the store the simulator and tests share between nodes.
#[derive(Debug, Default, Clone)]
pub struct HeaderList {
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    index: HashMap<BlockHash, u32>,
}

impl HeaderList {
    /// Builds the list from headers in height order (height 0 first).
    pub fn new(headers: Vec<Header>) -> HeaderList {
        let hashes: Vec<BlockHash> = headers.iter().map(Header::block_hash).collect();
        let index = hashes
            .iter()
            .enumerate()
            .map(|(height, hash)| (*hash, height as u32))
            .collect();
        HeaderList {
            headers,
            hashes,
            index,
        }
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

impl HeaderView for HeaderList {
    fn tip_height(&self) -> Option<u32> {
        (self.headers.len() as u32).checked_sub(1)
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        self.headers.get(height as usize).copied()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.hashes.get(height as usize).copied()
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.index.get(hash).copied()
    }
}

/// The first `len` headers of a shared [`HeaderList`]: lets a simulator grow the chain over
/// time while all nodes share one list.
#[derive(Debug, Clone)]
pub struct HeaderPrefix {
    list: Arc<HeaderList>,
    len: u32,
}

impl HeaderPrefix {
    /// The first `len` headers of `list` (all of them if `len` is larger).
    pub fn new(list: Arc<HeaderList>, len: u32) -> HeaderPrefix {
        let len = len.min(list.len() as u32);
        HeaderPrefix { list, len }
    }
}

impl HeaderView for HeaderPrefix {
    fn tip_height(&self) -> Option<u32> {
        self.len.checked_sub(1)
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        (height < self.len)
            .then(|| self.list.header_at(height))
            .flatten()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        (height < self.len)
            .then(|| self.list.block_hash_at(height))
            .flatten()
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.list.height_of(hash).filter(|h| *h < self.len)
    }
}

/// Why a block's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockCheckError {
    #[error("block is {0} bytes, shorter than a header")]
    TooShort(usize),
    #[error("block's header hashes to {found:?}, expected {expected:?}")]
    WrongHash {
        expected: BlockHash,
        found: BlockHash,
    },
    #[error("block body does not match the header's Merkle root")]
    BadMerkleRoot,
}

/// Checks raw block bytes against the expected block hash from the header chain.
///
/// Interim: checks that the first 80 bytes are the header with the expected hash. Once
/// `chain::Block` lands this also decodes the body and checks the Merkle root.
pub fn check_block(expected: &BlockHash, bytes: &[u8]) -> Result<(), BlockCheckError> {
    let header_bytes = bytes
        .get(..80)
        .ok_or(BlockCheckError::TooShort(bytes.len()))?;
    let found = BlockHash(sha256d(header_bytes));
    if &found != expected {
        return Err(BlockCheckError::WrongHash {
            expected: *expected,
            found,
        });
    }
    Ok(())
}
