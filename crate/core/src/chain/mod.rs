//! Bitcoin's consensus formats and the header chain.
//!
//! Everything here is checked against real Bitcoin data in the tests: mainnet block 702861
//! and generated regtest chains, differentially against the `bitcoin` crate.

pub mod block;
pub mod encode;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod pow;
pub mod transaction;

pub use block::{Block, BlockError, WitnessCommitment};
pub use encode::DecodeError;
pub use hash::{sha256d, BlockHash, Hash256, HexError, Txid, Wtxid};
pub use header::{Header, HEADER_SIZE};
pub use pow::{PowError, Target, U256};
pub use transaction::{OutPoint, Transaction, TxIn, TxOut};
