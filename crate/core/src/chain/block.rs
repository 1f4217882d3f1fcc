//! Blocks: decoding, size and weight, and the checks a block body must pass against its
//! header (Merkle root, CVE-2012-2459, the segwit witness commitment, BIP34 height).

use super::encode::{
    put_compact_size, Counter, DecodeError, Reader, Sink, MAX_BLOCK_SERIALIZED_SIZE,
};
use super::hash::{sha256d_pair, BlockHash, Hash256, Txid};
use super::header::{Header, HEADER_SIZE};
use super::merkle::merkle_root;
use super::transaction::{Transaction, TxError, MIN_TRANSACTION_BYTES};

/// The largest block weight (BIP141).
pub const MAX_BLOCK_WEIGHT: usize = 4_000_000;

/// The prefix of a witness commitment output script: `OP_RETURN`, push 36, `aa21a9ed`.
pub const WITNESS_COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// A block: header and transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, coinbase first.
    pub txdata: Vec<Transaction>,
}

/// Why a block body does not match its header or breaks a consensus rule checked here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// No transactions at all.
    #[error("the block has no transactions")]
    NoTransactions,
    /// The first transaction is not a coinbase, or a later one is.
    #[error("transaction {index} is {}a coinbase", if *index == 0 { "not " } else { "" })]
    CoinbasePosition {
        /// The offending position.
        index: usize,
    },
    /// The transactions do not hash to the header's Merkle root.
    #[error("merkle root mismatch: header has {expected}, transactions give {computed}")]
    MerkleRootMismatch {
        /// The header's root.
        expected: Hash256,
        /// The computed root.
        computed: Hash256,
    },
    /// The transaction list repeats its tail (CVE-2012-2459).
    #[error("mutated merkle tree: duplicate transactions (CVE-2012-2459)")]
    MutatedMerkleTree,
    /// The witness commitment does not match the witness data.
    #[error("witness commitment mismatch")]
    WitnessCommitmentMismatch,
    /// The coinbase's witness is not the single 32-byte reserved value.
    #[error("coinbase witness must be one 32-byte reserved value")]
    BadWitnessReservedValue,
    /// Witness data without a commitment to it.
    #[error("transactions carry witness data but the coinbase commits to none")]
    UnexpectedWitness,
    /// A transaction breaks a context-free rule.
    #[error("transaction {index}: {error}")]
    BadTransaction {
        /// Its position in the block.
        index: usize,
        /// What is wrong with it.
        error: TxError,
    },
    /// Heavier than 4,000,000 weight units.
    #[error("block weight {0} exceeds {MAX_BLOCK_WEIGHT}")]
    TooHeavy(usize),
}

/// What a block says about segwit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessCommitment {
    /// The coinbase commits to the witness data, and the commitment matches.
    Valid,
    /// No commitment, and no witness data.
    Absent,
}

impl Block {
    /// Decodes exactly one block from `bytes` (at most 4,000,000 bytes; no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_SERIALIZED_SIZE {
            return Err(DecodeError::TooLarge {
                what: "block",
                size: bytes.len(),
                limit: MAX_BLOCK_SERIALIZED_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        let block = Self::decode_from(&mut r)?;
        r.finish("block")?;
        Ok(block)
    }

    /// Decodes one block at the reader's position.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = Header::decode_from(r)?;
        let count = r.read_count("transaction", u64::MAX, MIN_TRANSACTION_BYTES)?;
        if count == 0 {
            return Err(DecodeError::NoTransactions);
        }
        let mut txdata = Vec::with_capacity(count);
        for _ in 0..count {
            txdata.push(Transaction::decode_from(r)?);
        }
        Ok(Self { header, txdata })
    }

    /// Writes the block (transactions with witness).
    pub fn encode_to(&self, out: &mut impl Sink) {
        out.put(&self.header.encode());
        put_compact_size(out, self.txdata.len() as u64);
        for tx in &self.txdata {
            tx.encode_to(out, true);
        }
    }

    /// The full serialization.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        self.encode_to(&mut out);
        out
    }

    /// The block hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The transaction ids, in block order.
    pub fn txids(&self) -> Vec<Txid> {
        self.txdata.iter().map(Transaction::txid).collect()
    }

    /// Serialized size with witness data.
    pub fn size(&self) -> usize {
        let mut c = Counter::default();
        self.encode_to(&mut c);
        c.0
    }

    /// Weight (BIP141): `3 × stripped size + total size`.
    pub fn weight(&self) -> usize {
        let mut c = Counter::default();
        put_compact_size(&mut c, self.txdata.len() as u64);
        let prefix = HEADER_SIZE + c.0;
        4 * prefix + self.txdata.iter().map(Transaction::weight).sum::<usize>()
    }

    /// The Merkle root of the transaction ids and whether the tree is mutated.
    pub fn compute_merkle_root(&self) -> (Hash256, bool) {
        let leaves: Vec<[u8; 32]> = self.txdata.iter().map(|tx| tx.txid().0).collect();
        merkle_root(&leaves)
    }

    /// Whether the transactions hash to the header's root without mutation.
    pub fn check_merkle_root(&self) -> bool {
        let (root, mutated) = self.compute_merkle_root();
        root == self.header.merkle_root && !mutated
    }

    /// The Merkle root of the witness transaction ids, the coinbase's counted as zero.
    pub fn witness_root(&self) -> Hash256 {
        self.witness_root_with(None)
    }

    /// [`Block::witness_root`]; with the block's txids at hand, a transaction without witness
    /// data (whose wtxid is its txid) is not hashed again.
    fn witness_root_with(&self, txids: Option<&[Txid]>) -> Hash256 {
        let leaves: Vec<[u8; 32]> = self
            .txdata
            .iter()
            .enumerate()
            .map(|(i, tx)| match (i, txids) {
                (0, _) => [0; 32],
                (_, Some(txids)) if !tx.has_witness() => txids[i].0,
                _ => tx.wtxid().0,
            })
            .collect();
        merkle_root(&leaves).0
    }

    /// The 32-byte commitment in the coinbase's last commitment output, if any.
    pub fn witness_commitment(&self) -> Option<Hash256> {
        let coinbase = self.txdata.first()?;
        coinbase
            .output
            .iter()
            .rev()
            .find(|o| {
                o.script_pubkey.len() >= 38 && o.script_pubkey[..6] == WITNESS_COMMITMENT_PREFIX
            })
            .map(|o| {
                let mut c = [0u8; 32];
                c.copy_from_slice(&o.script_pubkey[6..38]);
                Hash256(c)
            })
    }

    /// Checks the segwit witness commitment (BIP141).
    pub fn check_witness_commitment(&self) -> Result<WitnessCommitment, BlockError> {
        self.check_witness_commitment_with(None)
    }

    fn check_witness_commitment_with(
        &self,
        txids: Option<&[Txid]>,
    ) -> Result<WitnessCommitment, BlockError> {
        let coinbase = self.txdata.first().ok_or(BlockError::NoTransactions)?;
        match self.witness_commitment() {
            None => {
                if self.txdata.iter().any(Transaction::has_witness) {
                    Err(BlockError::UnexpectedWitness)
                } else {
                    Ok(WitnessCommitment::Absent)
                }
            }
            Some(commitment) => {
                let witness = &coinbase
                    .input
                    .first()
                    .ok_or(BlockError::NoTransactions)?
                    .witness;
                if witness.len() != 1 || witness[0].len() != 32 {
                    return Err(BlockError::BadWitnessReservedValue);
                }
                let mut reserved = [0u8; 32];
                reserved.copy_from_slice(&witness[0]);
                let computed = sha256d_pair(&self.witness_root_with(txids).0, &reserved);
                if computed == commitment.0 {
                    Ok(WitnessCommitment::Valid)
                } else {
                    Err(BlockError::WitnessCommitmentMismatch)
                }
            }
        }
    }

    /// The height the coinbase script claims (BIP34), if it starts with a height push.
    pub fn bip34_height(&self) -> Option<u32> {
        let script = &self.txdata.first()?.input.first()?.script_sig;
        match *script.first()? {
            0x00 => Some(0),
            op @ 0x51..=0x60 => Some(u32::from(op - 0x50)),
            len @ 0x01..=0x04 => {
                let bytes = script.get(1..1 + usize::from(len))?;
                let mut value = 0u64;
                for (i, b) in bytes.iter().enumerate() {
                    value |= u64::from(*b) << (8 * i);
                }
                // A script number: the top bit of the last byte is the sign.
                if bytes[bytes.len() - 1] & 0x80 != 0 {
                    return None;
                }
                u32::try_from(value).ok()
            }
            _ => None,
        }
    }

    /// Every check of the body against its own header that needs no chain context, in the
    /// order of Core's `CheckBlock`: the Merkle root (unmutated), the weight limit, a coinbase
    /// first and only first, each transaction's context-free rules (`CheckTransaction`),
    /// then the witness commitment.
    pub fn check(&self) -> Result<WitnessCommitment, BlockError> {
        self.check_with_txids().map(|(commitment, _)| commitment)
    }

    /// [`Block::check`], also returning the transaction ids it hashed on the way, in block
    /// order: a caller that indexes the block needs not hash them again.
    pub fn check_with_txids(&self) -> Result<(WitnessCommitment, Vec<Txid>), BlockError> {
        // In Core's `CheckBlock` order: the Merkle root first, so that a mutated copy of a
        // valid block is reported as mutated whatever else is wrong with it.
        if self.txdata.is_empty() {
            return Err(BlockError::NoTransactions);
        }
        let txids = self.txids();
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        let (computed, mutated) = merkle_root(&leaves);
        if computed != self.header.merkle_root {
            return Err(BlockError::MerkleRootMismatch {
                expected: self.header.merkle_root,
                computed,
            });
        }
        if mutated {
            return Err(BlockError::MutatedMerkleTree);
        }
        let weight = self.weight();
        if weight > MAX_BLOCK_WEIGHT {
            return Err(BlockError::TooHeavy(weight));
        }
        for (index, tx) in self.txdata.iter().enumerate() {
            if tx.is_coinbase() != (index == 0) {
                return Err(BlockError::CoinbasePosition { index });
            }
        }
        for (index, tx) in self.txdata.iter().enumerate() {
            tx.check()
                .map_err(|error| BlockError::BadTransaction { index, error })?;
        }
        let commitment = self.check_witness_commitment_with(Some(&txids))?;
        Ok((commitment, txids))
    }
}

#[cfg(test)]
mod tests {
    use super::super::transaction::{OutPoint, TxIn, TxOut};
    use super::*;

    fn coinbase(height_push: Vec<u8>) -> Transaction {
        Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig: height_push,
                sequence: u32::MAX,
                witness: Default::default(),
            }],
            output: vec![TxOut {
                value: 50,
                script_pubkey: vec![0x51],
            }],
            lock_time: 0,
        }
    }

    fn block_with(txdata: Vec<Transaction>) -> Block {
        let mut block = Block {
            header: Header::default(),
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().0;
        block
    }

    #[test]
    fn round_trip_and_check() {
        let block = block_with(vec![coinbase(vec![0x02, 0x2c, 0x01])]);
        let bytes = block.encode();
        assert_eq!(bytes.len(), block.size());
        let decoded = Block::decode(&bytes).unwrap();
        assert_eq!(decoded, block);
        assert_eq!(decoded.check(), Ok(WitnessCommitment::Absent));
        assert_eq!(decoded.bip34_height(), Some(300));
        assert_eq!(block.weight(), 4 * block.size());
    }

    #[test]
    fn wrong_merkle_root_is_rejected() {
        let mut block = block_with(vec![coinbase(vec![0x51, 0x00])]);
        block.header.merkle_root = Hash256([9; 32]);
        assert!(matches!(
            block.check(),
            Err(BlockError::MerkleRootMismatch { .. })
        ));
        assert_eq!(block.bip34_height(), Some(1));
    }

    #[test]
    fn empty_block_is_a_decode_error() {
        let mut bytes = Header::default().encode().to_vec();
        bytes.push(0);
        assert_eq!(Block::decode(&bytes), Err(DecodeError::NoTransactions));
    }

    #[test]
    fn oversize_input_is_rejected_before_parsing() {
        let bytes = vec![0u8; MAX_BLOCK_SERIALIZED_SIZE + 1];
        assert!(matches!(
            Block::decode(&bytes),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
