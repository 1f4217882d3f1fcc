//! Merkle trees over transaction ids, and inclusion proofs (S16, and the rule "nothing is
//! trusted": every answer to a transaction query carries a proof the asker checks against its
//! own header chain).
//!
//! # Overview
//!
//! Bitcoin's tree duplicates the last node of an odd level. That makes two different
//! transaction lists share a root (CVE-2012-2459): a list whose tail repeats. The root
//! computation reports such a *mutated* tree so that a block built that way is rejected.
//!
//! A [`MerkleProof`] carries the fields of Electrum's `blockchain.transaction.get_merkle`: the
//! block, its height, the transaction's position and the branch of sibling hashes from the
//! leaf up to (not including) the root. Bit `k` of the position says whether the running hash
//! is the right (1) or left (0) child at level `k`.
//!
//! # What verification guards against
//!
//! A bare "hash up the branch and compare the root" accepts more than it should. The checks of
//! [`MerkleProof::verify`], and why:
//!
//! - **Bounded branch.** No block holds more than [`MAX_TXS_PER_BLOCK`] transactions, so no
//!   tree is deeper than [`MAX_BRANCH_LEN`]; a longer branch is refused before any hashing.
//! - **Position within the branch.** The walk reads one position bit per branch node. Bits
//!   above the branch would be ignored, so many positions would "prove" the same leaf; a
//!   position `>= 2^branch.len()` is refused.
//! - **Phantom duplicates (CVE-2012-2459).** A right child equal to its left sibling never
//!   occurs in a valid block: either the tree is mutated (and the block invalid), or the
//!   "right child" is the implicit copy of the last node of an odd level, i.e. a position that
//!   does not exist (in `[a, b, c]`, `c` would otherwise also "sit" at position 3). Refused.
//!   A *left* child equal to its sibling is the normal odd-level duplicate; it marks the node
//!   as the last of its level, and so are all its ancestors: from then on every left step must
//!   duplicate too, or the proof contradicts itself and is refused.
//! - **The 64-byte transaction ambiguity.** An inner node is `sha256d` of 64 bytes; a
//!   transaction whose non-witness serialization is 64 bytes has a txid computed exactly the
//!   same way. A forger can exploit this in two directions:
//!   1. present an inner node's two children as a "transaction" with a *shorter* branch. This
//!      needs the 64 bytes to parse as a transaction, and it is always 64 bytes long:
//!      [`MerkleProof::verify_transaction`] refuses any transaction whose non-witness size is
//!      64 bytes (Bitcoin Core's policy already refuses to relay them; BIP 54 makes them
//!      invalid).
//!   2. mine a real 64-byte transaction whose second half is the txid of a fake transaction,
//!      then prove the fake one with a branch *one level deeper* than the tree. The fake
//!      transaction is not 64 bytes, so only the tree's depth exposes it. The txid list alone
//!      cannot tell; the depth can: [`MerkleProof::verify_with_depth`] and
//!      [`MerkleProof::verify_with_tx_count`] pin the branch length. The depth is learned
//!      robustly from a proof of the coinbase ([`MerkleProof::coinbase_depth`]): a coinbase
//!      spends the null outpoint, so posing as an inner node would need a hash with 27 zero
//!      bytes in a fixed place.
//!
//!   A verifier that knows neither the depth nor the transaction bytes (a bare txid against a
//!   bare header) stays exposed to direction 2, at a cost published estimates put between
//!   about 2^60 and 2^72 double-SHA-256 operations plus mining a block. Checking the
//!   transaction closes direction 1; pinning the depth closes both.

use super::block::{Block, MAX_BLOCK_WEIGHT};
use super::encode::{put_compact_size, DecodeError, Reader, Sink};
use super::hash::{sha256d_pair, BlockHash, Hash256, Txid};
use super::header::Header;
use super::transaction::{Transaction, MIN_TRANSACTION_BYTES};

/// The most transactions a block can hold: each weighs at least `4 × 10` units.
pub const MAX_TXS_PER_BLOCK: usize = MAX_BLOCK_WEIGHT / (4 * MIN_TRANSACTION_BYTES);

/// The depth of the deepest possible transaction tree, and so the longest valid branch.
pub const MAX_BRANCH_LEN: usize = tree_depth(MAX_TXS_PER_BLOCK);

/// The size of a proof's wire form with the longest branch (see [`MerkleProof::encode`]).
pub const MAX_PROOF_BYTES: usize = 32 + 4 + 4 + 1 + 32 * MAX_BRANCH_LEN;

/// The non-witness size of a transaction that cannot be told apart from an inner node.
pub const AMBIGUOUS_TRANSACTION_SIZE: usize = 64;

/// The depth of a tree over `leaf_count` leaves: the length of every branch in it.
pub const fn tree_depth(leaf_count: usize) -> usize {
    if leaf_count <= 1 {
        0
    } else {
        (usize::BITS - (leaf_count - 1).leading_zeros()) as usize
    }
}

/// The Merkle root of `leaves` and whether the tree is mutated (two equal siblings on some
/// level, the CVE-2012-2459 pattern). An empty list has the zero root.
pub fn merkle_root(leaves: &[[u8; 32]]) -> (Hash256, bool) {
    if leaves.is_empty() {
        return (Hash256::ZERO, false);
    }
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    let mut mutated = false;
    while level.len() > 1 {
        mutated |= next_level(&mut level);
    }
    (Hash256(level[0]), mutated)
}

/// Replaces `level` (at least two nodes) by the level above it, in place; returns whether two
/// real siblings were equal.
fn next_level(level: &mut Vec<[u8; 32]>) -> bool {
    debug_assert!(level.len() > 1);
    let mut mutated = false;
    let parents = level.len().div_ceil(2);
    for i in 0..parents {
        let left = level[2 * i];
        let right = match level.get(2 * i + 1) {
            Some(right) => {
                mutated |= *right == left;
                *right
            }
            None => left,
        };
        level[i] = sha256d_pair(&left, &right);
    }
    level.truncate(parents);
    mutated
}

/// Why a proof could not be built, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A proof needs at least one leaf.
    #[error("cannot build a proof over an empty transaction list")]
    EmptyTree,
    /// More leaves than any block can hold.
    #[error("{count} leaves exceed the {MAX_TXS_PER_BLOCK} transactions a block can hold")]
    TooManyLeaves {
        /// The number of leaves given.
        count: usize,
    },
    /// The position is not that of a leaf of the tree.
    #[error("position {pos} is outside a tree of {leaf_count} transactions")]
    PositionOutOfRange {
        /// The position asked for.
        pos: u32,
        /// The tree's leaf count.
        leaf_count: usize,
    },
    /// A branch longer than any block's tree is deep.
    #[error("branch of {len} nodes exceeds the maximum depth {MAX_BRANCH_LEN}")]
    BranchTooLong {
        /// The branch length.
        len: usize,
    },
    /// The position has bits above the branch, which the walk would ignore.
    #[error("position {pos} does not fit a branch of {len} nodes")]
    PositionBeyondBranch {
        /// The position.
        pos: u32,
        /// The branch length.
        len: usize,
    },
    /// The branch length differs from the tree's known depth.
    #[error("branch of {len} nodes, but the tree is {depth} deep")]
    DepthMismatch {
        /// The branch length.
        len: usize,
        /// The tree's depth.
        depth: usize,
    },
    /// A right child equal to its left sibling: a phantom position or a mutated tree.
    #[error("the node at level {level} is a right child equal to its sibling (CVE-2012-2459)")]
    DuplicateRightChild {
        /// The level, 0 for the leaves.
        level: usize,
    },
    /// After an odd-level duplicate (the node is the last of its level), a left step that does
    /// not duplicate: the node would have a right neighbour after all.
    #[error("the node at level {level} must be the last of its level but has a right sibling")]
    InconsistentTail {
        /// The level, 0 for the leaves.
        level: usize,
    },
    /// The sibling equals the node where the known tree shape has a real sibling.
    #[error("the node at level {level} equals its real sibling (mutated tree)")]
    UnexpectedDuplicate {
        /// The level, 0 for the leaves.
        level: usize,
    },
    /// The node is the last of an odd level but its sibling is not its own copy.
    #[error("the node at level {level} is the last of an odd level but is not duplicated")]
    MissingDuplicate {
        /// The level, 0 for the leaves.
        level: usize,
    },
    /// The branch does not lead to the expected root.
    #[error("branch leads to root {computed}, expected {expected}")]
    RootMismatch {
        /// The root the proof must reach.
        expected: Hash256,
        /// The root it reaches.
        computed: Hash256,
    },
    /// The proof names another block than the header it is checked against.
    #[error("proof is for block {proof}, checked against {header}")]
    WrongBlock {
        /// The block the proof names.
        proof: BlockHash,
        /// The header's block.
        header: BlockHash,
    },
    /// A transaction whose non-witness serialization is 64 bytes, indistinguishable from an
    /// inner node.
    #[error("a 64-byte transaction cannot be told apart from an inner Merkle node")]
    AmbiguousTransaction,
    /// A depth proof whose transaction is not a coinbase at position 0.
    #[error("a depth proof must be for the coinbase at position 0")]
    NotCoinbase,
    /// The wire form is malformed.
    #[error("malformed proof: {0}")]
    Decode(#[from] DecodeError),
}

/// Proof that a transaction is at position `pos` of block `block_hash` (at `height`).
///
/// Electrum's `get_merkle` lists the branch as hex in display (byte-reversed) order: that is
/// [`Hash256`]'s `Display` and `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MerkleProof {
    /// The block whose header holds the root.
    pub block_hash: BlockHash,
    /// The block's height (for the verifier's header lookup; not covered by the proof).
    pub height: u32,
    /// The transaction's index in the block.
    pub pos: u32,
    /// The sibling hashes from the leaf level up, in internal byte order.
    pub branch: Vec<Hash256>,
}

impl MerkleProof {
    /// The proof for the leaf at `pos` of the tree over `txids`.
    pub fn build(
        block_hash: BlockHash,
        height: u32,
        txids: &[Txid],
        pos: u32,
    ) -> Result<Self, ProofError> {
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        let branch = merkle_branch(&leaves, pos)?;
        Ok(Self {
            block_hash,
            height,
            pos,
            branch,
        })
    }

    /// Checks that `txid` is at `pos` of a valid tree with root `merkle_root` (see the module
    /// docs for what this does and does not rule out).
    pub fn verify(&self, txid: Txid, merkle_root: Hash256) -> Result<(), ProofError> {
        self.check_shape()?;
        let computed = self.walk(txid.0, None)?;
        check_root(computed, merkle_root)
    }

    /// [`Self::verify`] against the header of the proof's block.
    pub fn verify_against_header(&self, txid: Txid, header: &Header) -> Result<(), ProofError> {
        let block = header.block_hash();
        if block != self.block_hash {
            return Err(ProofError::WrongBlock {
                proof: self.block_hash,
                header: block,
            });
        }
        self.verify(txid, header.merkle_root)
    }

    /// [`Self::verify`] for a whole transaction; refuses a 64-byte one (see the module docs).
    pub fn verify_transaction(
        &self,
        tx: &Transaction,
        merkle_root: Hash256,
    ) -> Result<(), ProofError> {
        if tx.base_size() == AMBIGUOUS_TRANSACTION_SIZE {
            return Err(ProofError::AmbiguousTransaction);
        }
        self.verify(tx.txid(), merkle_root)
    }

    /// [`Self::verify`] for a tree of known `depth` (from [`Self::coinbase_depth`]).
    pub fn verify_with_depth(
        &self,
        txid: Txid,
        merkle_root: Hash256,
        depth: usize,
    ) -> Result<(), ProofError> {
        if self.branch.len() != depth {
            return Err(ProofError::DepthMismatch {
                len: self.branch.len(),
                depth,
            });
        }
        self.verify(txid, merkle_root)
    }

    /// The strictest check, for a tree of known size: the position must exist, the branch
    /// must have the tree's depth, and every sibling must equal the node exactly where the
    /// tree's shape duplicates it.
    pub fn verify_with_tx_count(
        &self,
        txid: Txid,
        merkle_root: Hash256,
        tx_count: usize,
    ) -> Result<(), ProofError> {
        if tx_count == 0 || tx_count > MAX_TXS_PER_BLOCK || self.pos as usize >= tx_count {
            return Err(ProofError::PositionOutOfRange {
                pos: self.pos,
                leaf_count: tx_count,
            });
        }
        let depth = tree_depth(tx_count);
        if self.branch.len() != depth {
            return Err(ProofError::DepthMismatch {
                len: self.branch.len(),
                depth,
            });
        }
        self.check_shape()?;
        let computed = self.walk(txid.0, Some(tx_count))?;
        check_root(computed, merkle_root)
    }

    /// Checks a proof of the coinbase and returns the depth of its block's tree, which pins
    /// the branch length of every other proof in that block ([`Self::verify_with_depth`]).
    pub fn coinbase_depth(
        &self,
        coinbase: &Transaction,
        merkle_root: Hash256,
    ) -> Result<usize, ProofError> {
        if self.pos != 0 || !coinbase.is_coinbase() {
            return Err(ProofError::NotCoinbase);
        }
        self.verify(coinbase.txid(), merkle_root)?;
        Ok(self.branch.len())
    }

    /// The wire form: block hash (32), height and position (little-endian `u32`s), branch
    /// length (compact size, at most [`MAX_BRANCH_LEN`]) and the branch hashes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41 + 32 * self.branch.len());
        self.encode_to(&mut out);
        out
    }

    /// Writes the wire form.
    pub fn encode_to(&self, out: &mut impl Sink) {
        out.put(self.block_hash.as_bytes());
        out.put(&self.height.to_le_bytes());
        out.put(&self.pos.to_le_bytes());
        put_compact_size(out, self.branch.len() as u64);
        for node in &self.branch {
            out.put(node.as_bytes());
        }
    }

    /// Decodes exactly one wire-form proof (at most [`MAX_PROOF_BYTES`]). The shape is not
    /// checked here; verification does that.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_PROOF_BYTES {
            return Err(DecodeError::TooLarge {
                what: "merkle proof",
                size: bytes.len(),
                limit: MAX_PROOF_BYTES,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let block_hash = BlockHash(r.read_array()?);
        let height = r.read_u32_le()?;
        let pos = r.read_u32_le()?;
        let len = r.read_count("merkle branch node", MAX_BRANCH_LEN as u64, 32)?;
        let branch = (0..len)
            .map(|_| r.read_array().map(Hash256))
            .collect::<Result<Vec<_>, _>>()?;
        r.finish("merkle proof")?;
        Ok(Self {
            block_hash,
            height,
            pos,
            branch,
        })
    }

    fn check_shape(&self) -> Result<(), ProofError> {
        let len = self.branch.len();
        if len > MAX_BRANCH_LEN {
            return Err(ProofError::BranchTooLong { len });
        }
        if u64::from(self.pos) >> len != 0 {
            return Err(ProofError::PositionBeyondBranch { pos: self.pos, len });
        }
        Ok(())
    }

    /// Hashes up the branch, checking the duplicate rules; with a leaf count, against the
    /// exact shape of that tree.
    fn walk(&self, leaf: [u8; 32], leaf_count: Option<usize>) -> Result<Hash256, ProofError> {
        let mut node = leaf;
        let mut index = self.pos as usize;
        let mut level_len = leaf_count;
        let mut last_of_level = false;
        for (level, sibling) in self.branch.iter().enumerate() {
            let sibling = sibling.0;
            let is_right = index & 1 == 1;
            let duplicated = sibling == node;
            if is_right && duplicated {
                return Err(ProofError::DuplicateRightChild { level });
            }
            match level_len {
                Some(len) => {
                    let must_duplicate = !is_right && index + 1 == len;
                    if must_duplicate && !duplicated {
                        return Err(ProofError::MissingDuplicate { level });
                    }
                    if !must_duplicate && duplicated {
                        return Err(ProofError::UnexpectedDuplicate { level });
                    }
                    level_len = Some(len.div_ceil(2));
                }
                None => {
                    if !is_right && last_of_level && !duplicated {
                        return Err(ProofError::InconsistentTail { level });
                    }
                    last_of_level |= duplicated;
                }
            }
            node = if is_right {
                sha256d_pair(&sibling, &node)
            } else {
                sha256d_pair(&node, &sibling)
            };
            index >>= 1;
        }
        debug_assert_eq!(index, 0, "check_shape bounds the position");
        Ok(Hash256(node))
    }
}

fn check_root(computed: Hash256, expected: Hash256) -> Result<(), ProofError> {
    if computed == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch { expected, computed })
    }
}

/// The branch (siblings from the leaf level up) for the leaf at `pos` of the tree over
/// `leaves`.
pub fn merkle_branch(leaves: &[[u8; 32]], pos: u32) -> Result<Vec<Hash256>, ProofError> {
    if leaves.is_empty() {
        return Err(ProofError::EmptyTree);
    }
    if leaves.len() > MAX_TXS_PER_BLOCK {
        return Err(ProofError::TooManyLeaves {
            count: leaves.len(),
        });
    }
    let mut index = pos as usize;
    if index >= leaves.len() {
        return Err(ProofError::PositionOutOfRange {
            pos,
            leaf_count: leaves.len(),
        });
    }
    let mut branch = Vec::with_capacity(tree_depth(leaves.len()));
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = level.get(index ^ 1).unwrap_or(&level[index]);
        branch.push(Hash256(*sibling));
        next_level(&mut level);
        index >>= 1;
    }
    debug_assert_eq!(branch.len(), tree_depth(leaves.len()));
    Ok(branch)
}

/// Every level of a transaction tree, kept to answer many proofs for one block (a serving
/// member, S16) in `O(depth)` each instead of rehashing the tree per proof. Holds about twice
/// the leaves' 32 bytes each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` are the leaves, the last level is the root alone.
    levels: Vec<Vec<[u8; 32]>>,
    mutated: bool,
}

impl MerkleTree {
    /// Builds the tree over `txids` (at least one, at most [`MAX_TXS_PER_BLOCK`]).
    pub fn new(txids: &[Txid]) -> Result<Self, ProofError> {
        if txids.is_empty() {
            return Err(ProofError::EmptyTree);
        }
        if txids.len() > MAX_TXS_PER_BLOCK {
            return Err(ProofError::TooManyLeaves { count: txids.len() });
        }
        let mut levels = vec![txids.iter().map(|t| t.0).collect::<Vec<_>>()];
        let mut mutated = false;
        while let Some(level) = levels.last().filter(|l| l.len() > 1) {
            let mut next = level.clone();
            mutated |= next_level(&mut next);
            levels.push(next);
        }
        debug_assert_eq!(levels.len(), tree_depth(txids.len()) + 1);
        Ok(Self { levels, mutated })
    }

    /// The root.
    pub fn root(&self) -> Hash256 {
        Hash256(self.levels[self.levels.len() - 1][0])
    }

    /// Whether two real siblings are equal somewhere (CVE-2012-2459): no valid block's tree is.
    pub fn is_mutated(&self) -> bool {
        self.mutated
    }

    /// The number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.levels[0].len()
    }

    /// The proof for the leaf at `pos`.
    pub fn proof(
        &self,
        block_hash: BlockHash,
        height: u32,
        pos: u32,
    ) -> Result<MerkleProof, ProofError> {
        let mut index = pos as usize;
        if index >= self.leaf_count() {
            return Err(ProofError::PositionOutOfRange {
                pos,
                leaf_count: self.leaf_count(),
            });
        }
        let mut branch = Vec::with_capacity(self.levels.len() - 1);
        for level in &self.levels[..self.levels.len() - 1] {
            branch.push(Hash256(*level.get(index ^ 1).unwrap_or(&level[index])));
            index >>= 1;
        }
        Ok(MerkleProof {
            block_hash,
            height,
            pos,
            branch,
        })
    }
}

impl Block {
    /// The inclusion proof of the transaction at `pos`, for a block at `height`. Hashes every
    /// transaction; to prove many, use [`Block::merkle_tree`].
    pub fn merkle_proof(&self, height: u32, pos: u32) -> Result<MerkleProof, ProofError> {
        MerkleProof::build(self.block_hash(), height, &self.txids(), pos)
    }

    /// The whole transaction tree, to prove many transactions of this block.
    pub fn merkle_tree(&self) -> Result<MerkleTree, ProofError> {
        MerkleTree::new(&self.txids())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(i: usize) -> [u8; 32] {
        super::super::hash::sha256d(&(i as u64).to_le_bytes())
    }

    fn leaves(n: usize) -> Vec<Txid> {
        (0..n).map(|i| Txid(leaf(i))).collect()
    }

    fn root_of(txids: &[Txid]) -> Hash256 {
        let raw: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        merkle_root(&raw).0
    }

    #[test]
    fn single_leaf_is_its_own_root() {
        assert_eq!(merkle_root(&[[5; 32]]), (Hash256([5; 32]), false));
        let proof = MerkleProof::build(BlockHash::ZERO, 0, &[Txid([5; 32])], 0).unwrap();
        assert!(proof.branch.is_empty());
        assert_eq!(proof.verify(Txid([5; 32]), Hash256([5; 32])), Ok(()));
    }

    #[test]
    fn odd_level_duplicates_last_and_duplicate_tail_is_flagged() {
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        let (odd, mutated) = merkle_root(&[a, b, c]);
        assert!(!mutated);
        let (dup, mutated) = merkle_root(&[a, b, c, c]);
        assert_eq!(odd, dup, "the CVE-2012-2459 collision");
        assert!(mutated, "the duplicated tail must be reported");
    }

    #[test]
    fn depths() {
        assert_eq!(tree_depth(0), 0);
        assert_eq!(tree_depth(1), 0);
        assert_eq!(tree_depth(2), 1);
        assert_eq!(tree_depth(3), 2);
        assert_eq!(tree_depth(4), 2);
        assert_eq!(tree_depth(5), 3);
        assert_eq!(MAX_TXS_PER_BLOCK, 100_000);
        assert_eq!(MAX_BRANCH_LEN, 17);
    }

    #[test]
    fn phantom_position_of_the_odd_tail_is_refused() {
        // [a, b, c]: c's proof at position 2 is [c, H(ab)]; at position 3 the same branch
        // would hash to the same root with c as its own left sibling.
        let txids = leaves(3);
        let root = root_of(&txids);
        let proof = MerkleProof::build(BlockHash::ZERO, 0, &txids, 2).unwrap();
        assert_eq!(
            proof.branch[0].0, txids[2].0,
            "the odd tail pairs with itself"
        );
        assert_eq!(proof.verify(txids[2], root), Ok(()));
        assert_eq!(proof.verify_with_tx_count(txids[2], root, 3), Ok(()));
        let phantom = MerkleProof { pos: 3, ..proof };
        assert_eq!(
            phantom.verify(txids[2], root),
            Err(ProofError::DuplicateRightChild { level: 0 })
        );
        assert!(phantom.verify_with_tx_count(txids[2], root, 3).is_err());
    }

    #[test]
    fn inconsistent_tail_is_refused() {
        // Five leaves: leaf 4 is the odd tail of level 0 and its parent the odd tail of
        // level 1, so its branch is [itself, its parent, m0]. A level-1 sibling other than
        // the parent itself would give the last node of level 0 a right neighbour above.
        let txids = leaves(5);
        let root = root_of(&txids);
        let proof = MerkleProof::build(BlockHash::ZERO, 0, &txids, 4).unwrap();
        assert_eq!(proof.verify(txids[4], root), Ok(()));
        // Forge: after the level-0 duplicate, a level-1 left step with a foreign sibling.
        let mut forged = proof.clone();
        forged.branch[1] = Hash256([7; 32]);
        assert_eq!(
            forged.verify(txids[4], root),
            Err(ProofError::InconsistentTail { level: 1 })
        );
    }

    #[test]
    fn over_long_branch_and_high_position_bits_are_refused() {
        let txids = leaves(4);
        let root = root_of(&txids);
        let proof = MerkleProof::build(BlockHash::ZERO, 0, &txids, 1).unwrap();
        let high = MerkleProof {
            pos: 1 | 1 << 2,
            ..proof.clone()
        };
        assert_eq!(
            high.verify(txids[1], root),
            Err(ProofError::PositionBeyondBranch { pos: 5, len: 2 })
        );
        let long = MerkleProof {
            branch: vec![Hash256([1; 32]); MAX_BRANCH_LEN + 1],
            ..proof
        };
        assert_eq!(
            long.verify(txids[1], root),
            Err(ProofError::BranchTooLong {
                len: MAX_BRANCH_LEN + 1
            })
        );
    }

    #[test]
    fn sixty_four_byte_transaction_poses_as_inner_node() {
        // Build a 64-byte transaction whose bytes are two leaves of a real tree: its txid is
        // their parent, so a bare-txid proof one level shorter verifies. The transaction
        // check refuses it; so does the depth check.
        use super::super::transaction::{OutPoint, TxIn, TxOut};
        let tx = Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: Txid([0x11; 32]),
                    vout: 0,
                },
                script_sig: vec![],
                sequence: 0,
                witness: Default::default(),
            }],
            output: vec![TxOut {
                value: 0,
                script_pubkey: vec![0x51; 4],
            }],
            lock_time: 0,
        };
        let bytes = tx.encode();
        assert_eq!(bytes.len(), 64);
        let mut left = [0; 32];
        let mut right = [0; 32];
        left.copy_from_slice(&bytes[..32]);
        right.copy_from_slice(&bytes[32..]);
        let tree = [left, right, leaf(2), leaf(3)];
        let root = merkle_root(&tree).0;
        let txids: Vec<Txid> = tree.iter().map(|l| Txid(*l)).collect();
        let honest = MerkleProof::build(BlockHash::ZERO, 0, &txids, 0).unwrap();
        let forged = MerkleProof {
            pos: 0,
            branch: vec![honest.branch[1]],
            ..honest
        };
        assert_eq!(
            forged.verify(tx.txid(), root),
            Ok(()),
            "the ambiguity is real"
        );
        assert_eq!(
            forged.verify_transaction(&tx, root),
            Err(ProofError::AmbiguousTransaction)
        );
        assert_eq!(
            forged.verify_with_depth(tx.txid(), root, 2),
            Err(ProofError::DepthMismatch { len: 1, depth: 2 })
        );
    }

    #[test]
    fn wrong_block_is_refused() {
        let txids = leaves(2);
        let header = Header {
            merkle_root: root_of(&txids),
            ..Header::default()
        };
        let proof = MerkleProof::build(header.block_hash(), 7, &txids, 1).unwrap();
        assert_eq!(proof.verify_against_header(txids[1], &header), Ok(()));
        let other = Header { nonce: 1, ..header };
        assert!(matches!(
            proof.verify_against_header(txids[1], &other),
            Err(ProofError::WrongBlock { .. })
        ));
    }

    #[test]
    fn build_refuses_bad_input() {
        assert_eq!(
            MerkleProof::build(BlockHash::ZERO, 0, &[], 0),
            Err(ProofError::EmptyTree)
        );
        assert!(matches!(
            MerkleProof::build(BlockHash::ZERO, 0, &leaves(3), 3),
            Err(ProofError::PositionOutOfRange { pos: 3, .. })
        ));
    }

    #[test]
    fn oversize_wire_forms_are_refused() {
        let mut bytes = MerkleProof::default().encode();
        bytes[40] = (MAX_BRANCH_LEN + 1) as u8;
        bytes.extend(std::iter::repeat_n(0, 32 * (MAX_BRANCH_LEN + 1)));
        assert!(matches!(
            MerkleProof::decode(&bytes),
            Err(ProofError::Decode(DecodeError::TooLarge { .. }))
        ));
        bytes.truncate(MAX_PROOF_BYTES);
        assert!(matches!(
            MerkleProof::decode(&bytes),
            Err(ProofError::Decode(DecodeError::CountTooLarge { .. }))
        ));
    }

    #[test]
    fn wire_form_truncated_anywhere_fails() {
        let txids = leaves(9);
        let proof = MerkleProof::build(BlockHash([3; 32]), 9, &txids, 8).unwrap();
        let bytes = proof.encode();
        assert_eq!(MerkleProof::decode(&bytes), Ok(proof));
        for len in 0..bytes.len() {
            assert!(MerkleProof::decode(&bytes[..len]).is_err());
        }
        let mut long = bytes;
        long.push(0);
        assert!(matches!(
            MerkleProof::decode(&long),
            Err(ProofError::Decode(DecodeError::TrailingBytes { .. }))
        ));
    }

    #[test]
    fn tree_refuses_bad_input() {
        assert_eq!(MerkleTree::new(&[]), Err(ProofError::EmptyTree));
        let tree = MerkleTree::new(&leaves(3)).unwrap();
        assert!(matches!(
            tree.proof(BlockHash::ZERO, 0, 3),
            Err(ProofError::PositionOutOfRange { pos: 3, .. })
        ));
        let mut dup = leaves(3);
        dup.push(dup[2]);
        let mutated = MerkleTree::new(&dup).unwrap();
        assert!(mutated.is_mutated());
        assert_eq!(mutated.root(), tree.root(), "CVE-2012-2459");
    }

    /// Ways to alter a valid proof; every one must make verification fail.
    #[derive(Debug, Clone)]
    enum Alteration {
        FlipBit { node: usize, bit: usize },
        Pos(u32),
        Truncate(usize),
        Extend([u8; 32]),
        OtherTxid([u8; 32]),
    }

    fn alteration() -> impl Strategy<Value = Alteration> {
        prop_oneof![
            (any::<usize>(), 0..256usize).prop_map(|(node, bit)| Alteration::FlipBit { node, bit }),
            any::<u32>().prop_map(Alteration::Pos),
            any::<usize>().prop_map(Alteration::Truncate),
            any::<[u8; 32]>().prop_map(Alteration::Extend),
            any::<[u8; 32]>().prop_map(Alteration::OtherTxid),
        ]
    }

    proptest! {
        #[test]
        fn every_position_round_trips(raw in prop::collection::vec(any::<[u8; 32]>(), 1..70)) {
            let txids: Vec<Txid> = raw.iter().map(|l| Txid(*l)).collect();
            let (root, mutated) = merkle_root(&raw);
            let tree = MerkleTree::new(&txids).unwrap();
            prop_assert_eq!((tree.root(), tree.is_mutated()), (root, mutated));
            prop_assert_eq!(tree.leaf_count(), txids.len());
            prop_assume!(!mutated);
            for pos in 0..txids.len() as u32 {
                let proof = MerkleProof::build(BlockHash([1; 32]), 5, &txids, pos).unwrap();
                prop_assert_eq!(proof.branch.len(), tree_depth(txids.len()));
                let t = txids[pos as usize];
                prop_assert_eq!(proof.verify(t, root), Ok(()));
                prop_assert_eq!(proof.verify_with_tx_count(t, root, txids.len()), Ok(()));
                prop_assert_eq!(proof.verify_with_depth(t, root, tree_depth(txids.len())), Ok(()));
                prop_assert_eq!(MerkleProof::decode(&proof.encode()), Ok(proof.clone()));
                prop_assert_eq!(tree.proof(BlockHash([1; 32]), 5, pos), Ok(proof));
            }
        }

        #[test]
        fn any_altered_proof_fails(
            raw in prop::collection::vec(any::<[u8; 32]>(), 1..70),
            pos in any::<u32>(),
            change in alteration(),
        ) {
            let txids: Vec<Txid> = raw.iter().map(|l| Txid(*l)).collect();
            let (root, mutated) = merkle_root(&raw);
            prop_assume!(!mutated);
            let pos = pos % txids.len() as u32;
            let mut proof = MerkleProof::build(BlockHash([1; 32]), 5, &txids, pos).unwrap();
            let mut txid = txids[pos as usize];
            match change {
                Alteration::FlipBit { node, bit } => {
                    prop_assume!(!proof.branch.is_empty());
                    let node = node % proof.branch.len();
                    proof.branch[node].0[bit / 8] ^= 1 << (bit % 8);
                }
                Alteration::Pos(p) => {
                    prop_assume!(p != pos);
                    proof.pos = p;
                }
                Alteration::Truncate(n) => {
                    prop_assume!(!proof.branch.is_empty());
                    proof.branch.truncate(n % proof.branch.len());
                }
                Alteration::Extend(node) => proof.branch.push(Hash256(node)),
                Alteration::OtherTxid(other) => {
                    prop_assume!(other != txid.0);
                    txid = Txid(other);
                }
            }
            prop_assert!(proof.verify(txid, root).is_err());
            prop_assert!(proof.verify_with_tx_count(txid, root, txids.len()).is_err());
        }

        #[test]
        fn proof_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            if let Ok(proof) = MerkleProof::decode(&bytes) {
                prop_assert!(proof.branch.len() <= MAX_BRANCH_LEN);
                prop_assert_eq!(proof.encode(), bytes);
            }
        }
    }
}
