//! What the header chain reports: its errors, its configuration, and the outcome of accepting
//! headers.

use super::super::hash::BlockHash;
use super::super::header::Header;
use super::super::pow::{PowError, U256};

/// Why a header was not accepted. Each names the header and, once its parent is known, the
/// height it would have had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The header is already in the chain (best or side branch).
    #[error("header {hash} is already known at height {height}")]
    Duplicate {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The header's parent is not known.
    #[error("header {hash} builds on unknown block {prev}")]
    Unconnected {
        /// The header's hash.
        hash: BlockHash,
        /// The unknown parent.
        prev: BlockHash,
    },
    /// The proof of work is invalid.
    #[error("header {hash} at height {height} has invalid proof of work: {source}")]
    BadPow {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// What is wrong with it.
        source: PowError,
    },
    /// `nBits` differ from what the chain requires at this height.
    #[error("header {hash} at height {height} has nBits {got:#010x}, the chain requires {expected:#010x}")]
    BadDifficulty {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The required `nBits`.
        expected: u32,
        /// The header's `nBits`.
        got: u32,
    },
    /// The time is not after the median time of the previous eleven blocks.
    #[error("header {hash} at height {height} has time {time}, not after the median time past {median_time_past}")]
    TimeTooOld {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The header's time.
        time: u32,
        /// The median time of the previous eleven blocks.
        median_time_past: u32,
    },
    /// The time is more than two hours after the caller's clock.
    #[error("header {hash} at height {height} has time {time}, more than two hours ahead (latest allowed {max_time_s})")]
    TimeTooNew {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The header's time.
        time: u32,
        /// The latest time allowed.
        max_time_s: u64,
    },
    /// Under BIP94 (testnet4), the first block of a retarget period is dated more than
    /// [`MAX_TIMEWARP_S`](super::super::params::MAX_TIMEWARP_S) before its parent.
    #[error("header {hash} at height {height} has time {time}, before {min_time}: a retarget period's first block may be at most 600 s older than its parent (BIP94)")]
    TimewarpAttack {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The header's time.
        time: u32,
        /// The earliest time allowed: the parent's time less 600 s.
        min_time: u32,
    },
    /// The version is below what BIP34, BIP66 or BIP65 require at this height.
    #[error(
        "header {hash} at height {height} has version {version}, at least {minimum} is required"
    )]
    ObsoleteVersion {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The header's version.
        version: i32,
        /// The lowest version allowed.
        minimum: i32,
    },
    /// The header would start or extend a side branch, and the side-branch store is full of
    /// headers with at least as much work.
    #[error("header {hash} at height {height} is off the best chain and the side-branch store is full ({limit} headers)")]
    SideBranchFull {
        /// The header's hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
        /// The configured limit.
        limit: usize,
    },
    /// In a sequence, the header does not build on the one before it.
    #[error("header {hash} at height {height} builds on {prev}, not on the previous header {expected_prev}")]
    OutOfSequence {
        /// The header's hash.
        hash: BlockHash,
        /// The height it would have in the sequence.
        height: u32,
        /// Its parent.
        prev: BlockHash,
        /// The hash of the header before it in the sequence.
        expected_prev: BlockHash,
    },
    /// A header without parent that is not this network's genesis.
    #[error("header {got} has no parent but is not this network's genesis {expected}")]
    GenesisMismatch {
        /// This network's genesis hash.
        expected: BlockHash,
        /// The header's hash.
        got: BlockHash,
    },
    /// A byte sequence of headers ends inside a header.
    #[error("the header sequence ends with {len} bytes, not a whole 80-byte header")]
    Truncated {
        /// The number of bytes left over.
        len: usize,
    },
    /// A byte sequence holds more headers than [`MAX_SEQUENCE_HEADERS`].
    #[error("the header sequence holds {count} headers, more than the limit of {limit}")]
    TooMany {
        /// The number of headers.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// The most headers [`HeaderChain::verify_sequence`](super::HeaderChain::verify_sequence) takes: ten times mainnet's height today.
pub const MAX_SEQUENCE_HEADERS: usize = 10_000_000;

/// How a [`HeaderChain`](super::HeaderChain) bounds itself and which optional rules it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderChainConfig {
    /// The most headers kept off the best chain.
    pub max_side_headers: usize,
    /// Whether to reject versions below BIP34/66/65's floors, as Core does.
    pub check_version: bool,
    /// The least total work the best chain must have to be trusted
    /// ([`HeaderChain::has_minimum_work`](super::HeaderChain::has_minimum_work)); `None`
    /// for the network's ([`ChainParams::min_chain_work`](super::super::ChainParams)). Tests
    /// set a small one to exercise the rule on regtest-difficulty headers.
    pub min_chain_work: Option<U256>,
}

impl Default for HeaderChainConfig {
    fn default() -> Self {
        Self {
            max_side_headers: 1024,
            check_version: true,
            min_chain_work: None,
        }
    }
}

/// What accepting a header did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// It extends the best chain: it is the new tip.
    Extended {
        /// Its height.
        height: u32,
        /// Its hash.
        hash: BlockHash,
    },
    /// It is stored on a side branch with no more work than the best chain.
    SideBranch {
        /// Its height.
        height: u32,
        /// Its hash.
        hash: BlockHash,
    },
    /// Its branch now has the most work: the best chain switched to it.
    Reorg(Reorg),
}

/// A switch of the best chain to another branch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reorg {
    /// The height of the last block both chains share.
    pub fork_height: u32,
    /// The blocks that left the best chain, from the old tip down to `fork_height + 1`.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// The blocks that joined it, from `fork_height + 1` up to the new tip.
    pub connected: Vec<(u32, BlockHash)>,
}

/// What accepting a batch did, net: the blocks that left and joined the best chain between
/// the batch's start and its end (a block that joined and left again within it, or left and
/// came back, is in neither).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Headers accepted.
    pub accepted: usize,
    /// Headers skipped because already known.
    pub duplicates: usize,
    /// Blocks that left the best chain, highest first.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// Blocks that joined the best chain, lowest first.
    pub connected: Vec<(u32, BlockHash)>,
}

impl BatchOutcome {
    pub(super) fn record(&mut self, accepted: Accepted) {
        self.accepted += 1;
        match accepted {
            Accepted::Extended { height, hash } => self.connect((height, hash)),
            Accepted::SideBranch { .. } => {}
            Accepted::Reorg(reorg) => {
                // The best chain is the pre-batch chain below the lowest block in
                // `disconnected`, then `connected`: undo from the top.
                for block in reorg.disconnected {
                    if self.connected.last() == Some(&block) {
                        self.connected.pop();
                    } else {
                        self.disconnected.push(block);
                    }
                }
                for block in reorg.connected {
                    self.connect(block);
                }
            }
        }
    }

    fn connect(&mut self, block: (u32, BlockHash)) {
        // A pre-batch block coming back: it never left, on balance.
        if self.connected.is_empty() && self.disconnected.last() == Some(&block) {
            self.disconnected.pop();
        } else {
            self.connected.push(block);
        }
    }
}

/// A batch stopped at a header that was not accepted; the headers before it were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {index} of the batch: {error}")]
pub struct BatchError {
    /// The position of the rejected header in the batch.
    pub index: usize,
    /// Why it was rejected.
    pub error: HeaderError,
    /// What the headers before it did.
    pub partial: BatchOutcome,
}

/// Counters since the chain was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderChainStats {
    /// Headers accepted (best chain or side branch).
    pub accepted: u64,
    /// Of those, headers stored on a side branch when accepted.
    pub side_branch: u64,
    /// Switches of the best chain to another branch.
    pub reorgs: u64,
    /// Headers rejected.
    pub rejected: u64,
    /// Side-branch headers dropped to respect the cap.
    pub side_evicted: u64,
}

/// A known header and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The header.
    pub header: Header,
    /// Its height.
    pub height: u32,
    /// The cumulative work of the chain ending at it, genesis included.
    pub chainwork: U256,
    /// Whether it is on the best chain.
    pub in_best_chain: bool,
}

/// What [`HeaderChain::verify_sequence`](super::HeaderChain::verify_sequence) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceSummary {
    /// The number of 80-byte headers in the input (the genesis header included if present).
    pub count: usize,
    /// The last header's hash (genesis for an empty input).
    pub tip_hash: BlockHash,
    /// The last header's height.
    pub tip_height: u32,
    /// The cumulative work of the chain up to the last header, genesis included (bitcoind's
    /// `chainwork`).
    pub total_work: U256,
}
