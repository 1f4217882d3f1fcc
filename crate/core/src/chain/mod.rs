//! Bitcoin's consensus formats and the header chain.
//!
//! Everything here is checked against real Bitcoin data in the tests: mainnet block 702861
//! and generated regtest chains, differentially against the `bitcoin` crate.

pub mod block;
pub mod encode;
pub mod generate;
pub mod hash;
pub mod header;
pub mod headers;
pub mod merkle;
pub mod params;
pub mod pow;
pub mod sync;
pub mod transaction;
pub mod witness;

pub use block::{Block, BlockError, WitnessCommitment};
pub use encode::DecodeError;
pub use hash::{sha256d, BlockHash, Hash256, HexError, Txid, Wtxid};
pub use header::{Header, HEADER_SIZE};
pub use headers::{HeaderChain, HeaderChainConfig, HeaderError};
pub use merkle::{MerkleProof, MerkleTree, ProofError};
pub use params::{ChainParams, Network};
pub use pow::{PowError, Target, U256};
pub use transaction::{OutPoint, Transaction, TxError, TxIn, TxOut, MAX_MONEY};
pub use witness::Witness;
