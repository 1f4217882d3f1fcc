//! The node's seam to the header chain.
//!
//! The node never owns a copy of the header chain. It reads it through [`HeaderView`], a small
//! read-only trait, and receives a new view (an `Arc`) through
//! [`Input::Headers`](crate::node::Input::Headers) whenever the chain advances. A browser tab
//! wraps its own verified header chain; the simulator builds one [`HeaderList`] and hands every
//! one of its thousands of nodes the same `Arc` (a [`HeaderPrefix`] of it), so headers cost
//! memory once, not once per node.
//!
//! [`check_block`] is the one place a block body is checked before it is stored or served:
//! decoded with `chain::Block`'s bounded decoder, hashed against the header chain, and checked
//! by `Block::check` (Merkle root with the CVE-2012-2459 mutation check, coinbase position,
//! witness commitment, weight). `chain::headers::HeaderChain` implements [`HeaderView`], so a
//! shell hands its verified chain to the node as it is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use crate::chain::{sha256d, BlockHash, Hash256, Header};
use crate::chain::{Block, BlockError, DecodeError};

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
    #[error("block bytes do not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("block's header hashes to {found:?}, expected {expected:?}")]
    WrongHash {
        expected: BlockHash,
        found: BlockHash,
    },
    #[error("block body does not match its header: {0}")]
    Body(#[from] BlockError),
}

/// Checks raw block bytes against the block hash the header chain expects: decodes them
/// (bounded, no trailing bytes), compares the header's hash and checks the body against the
/// header (`Block::check`).
pub fn check_block(expected: &BlockHash, bytes: &[u8]) -> Result<Checked, BlockCheckError> {
    let block = Block::decode(bytes)?;
    let found = block.block_hash();
    if &found != expected {
        return Err(BlockCheckError::WrongHash {
            expected: *expected,
            found,
        });
    }
    let (_, txids) = block.check_with_txids()?;
    Ok(Checked {
        block_hash: found,
        txids,
    })
}

/// What [`check_block`] learnt on the way: the block's transaction ids, so that indexing the
/// block when it is stored needs neither decoding nor hashing it again.
#[derive(Debug)]
pub struct Checked {
    pub block_hash: BlockHash,
    pub txids: Vec<crate::chain::Txid>,
}

/// A chain of `blocks` small valid blocks (a coinbase each, `payload_bytes` of script, no
/// proof of work) with its header list: for tests and simulations of the cluster protocol.
/// Built by the one chain builder, [`crate::chain::generate::build_chain`].
pub fn synthetic_chain(blocks: u32, payload_bytes: usize) -> (HeaderList, Vec<Vec<u8>>) {
    use crate::chain::generate::{build_chain, Seal};
    use crate::chain::{OutPoint, Transaction, TxIn, TxOut};
    let chain = build_chain(blocks, Seal::Nonce, |height| {
        let mut script_sig = height.to_le_bytes().to_vec();
        script_sig.resize(payload_bytes.max(4), 0x51);
        let coinbase = Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig,
                sequence: u32::MAX,
                witness: Default::default(),
            }],
            output: vec![TxOut {
                value: 50,
                script_pubkey: vec![0x51],
            }],
            lock_time: 0,
        };
        Block {
            header: Header {
                version: 1,
                prev_blockhash: BlockHash::default(),
                merkle_root: Hash256::default(),
                time: 1_600_000_000 + height,
                bits: 0x207f_ffff,
                nonce: height,
            },
            txdata: vec![coinbase],
        }
    })
    .expect("blocks without proof of work always build");
    let headers = chain.iter().map(|b| b.header).collect();
    let raw = chain.iter().map(Block::encode).collect();
    (HeaderList::new(headers), raw)
}

/// The verified header chain is a header view of its best chain. A shell that keeps its
/// `HeaderChain` in an `Arc` and hands the node a clone of that `Arc` after each change pays a
/// copy of the chain when it next mutates it (`Arc::make_mut`) while the node still holds the
/// old view; for one browser node at one block per ten minutes that is acceptable, and the
/// simulator shares one [`HeaderList`] instead.
impl HeaderView for crate::chain::headers::HeaderChain {
    fn tip_height(&self) -> Option<u32> {
        Some(crate::chain::headers::HeaderChain::tip_height(self))
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        crate::chain::headers::HeaderChain::header_at(self, height).copied()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.hash_at(height)
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        crate::chain::headers::HeaderChain::height_of(self, hash)
    }
}
