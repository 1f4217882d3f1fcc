//! Transactions, legacy and segwit (BIP141/BIP144 serialization).

use super::encode::{
    put_compact_size, put_var_bytes, Counter, DecodeError, Reader, Sink, MAX_BLOCK_SERIALIZED_SIZE,
};
use super::hash::{Sha256dEngine, Txid, Wtxid};
use super::witness::Witness;

/// The smallest possible serialized input: outpoint (36), empty script (1), sequence (4).
const MIN_INPUT_BYTES: usize = 41;
/// The smallest possible serialized output: value (8), empty script (1).
const MIN_OUTPUT_BYTES: usize = 9;
/// The smallest possible serialized transaction (version, two empty counts, lock time).
pub const MIN_TRANSACTION_BYTES: usize = 10;

/// A reference to an output of an earlier transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OutPoint {
    /// The transaction that created the output.
    pub txid: Txid,
    /// The output's index in it.
    pub vout: u32,
}

impl OutPoint {
    /// The null outpoint a coinbase input spends.
    pub const NULL: Self = Self {
        txid: Txid::ZERO,
        vout: u32::MAX,
    };
}

/// A transaction input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxIn {
    /// The output it spends.
    pub previous_output: OutPoint,
    /// The unlocking script.
    pub script_sig: Vec<u8>,
    /// The sequence number.
    pub sequence: u32,
    /// The witness stack (empty for a legacy input).
    pub witness: Witness,
}

/// A transaction output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxOut {
    /// The amount in satoshis.
    pub value: u64,
    /// The locking script.
    pub script_pubkey: Vec<u8>,
}

/// A Bitcoin transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transaction {
    /// The version.
    pub version: i32,
    /// The inputs.
    pub input: Vec<TxIn>,
    /// The outputs.
    pub output: Vec<TxOut>,
    /// The lock time.
    pub lock_time: u32,
}

impl Transaction {
    /// Decodes exactly one transaction from `bytes`; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BLOCK_SERIALIZED_SIZE {
            return Err(DecodeError::TooLarge {
                what: "transaction",
                size: bytes.len(),
                limit: MAX_BLOCK_SERIALIZED_SIZE,
            });
        }
        let mut r = Reader::new(bytes);
        let tx = Self::decode_from(&mut r)?;
        r.finish("transaction")?;
        Ok(tx)
    }

    /// Decodes one transaction from the reader's position.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.read_i32_le()?;
        let mut segwit = false;
        let mut input;
        let output;
        if r.peek_u8() == Some(0) {
            // An empty input list, or the segwit marker.
            r.read_u8()?;
            let offset = r.position();
            match r.read_u8()? {
                // Empty inputs and empty outputs (Core parses it so; the block check rejects it).
                0 => {
                    input = Vec::new();
                    output = Vec::new();
                }
                1 => {
                    segwit = true;
                    input = decode_inputs(r)?;
                    output = decode_outputs(r)?;
                }
                flag => return Err(DecodeError::BadSegwitFlag { flag, offset }),
            }
        } else {
            input = decode_inputs(r)?;
            output = decode_outputs(r)?;
        }
        if segwit {
            for txin in &mut input {
                txin.witness = Witness::decode_from(r)?;
            }
            if input.iter().all(|i| i.witness.is_empty()) {
                return Err(DecodeError::SuperfluousWitness);
            }
        }
        let lock_time = r.read_u32_le()?;
        Ok(Self {
            version,
            input,
            output,
            lock_time,
        })
    }

    /// Whether any input carries witness data (and so the segwit serialization is used).
    pub fn has_witness(&self) -> bool {
        self.input.iter().any(|i| !i.witness.is_empty())
    }

    /// Whether this is a coinbase: a single input spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.input.len() == 1 && self.input[0].previous_output == OutPoint::NULL
    }

    /// Writes the transaction, with witness data when it has any and `with_witness` is set.
    pub fn encode_to(&self, out: &mut impl Sink, with_witness: bool) {
        let segwit = with_witness && self.has_witness();
        out.put(&self.version.to_le_bytes());
        if segwit {
            out.put(&[0, 1]);
        }
        put_compact_size(out, self.input.len() as u64);
        for txin in &self.input {
            out.put(txin.previous_output.txid.as_bytes());
            out.put(&txin.previous_output.vout.to_le_bytes());
            put_var_bytes(out, &txin.script_sig);
            out.put(&txin.sequence.to_le_bytes());
        }
        put_compact_size(out, self.output.len() as u64);
        for txout in &self.output {
            out.put(&txout.value.to_le_bytes());
            put_var_bytes(out, &txout.script_pubkey);
        }
        if segwit {
            for txin in &self.input {
                put_compact_size(out, txin.witness.len() as u64);
                out.put(txin.witness.serialized_items());
            }
        }
        out.put(&self.lock_time.to_le_bytes());
    }

    /// The full serialization (with witness when present).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.total_size());
        self.encode_to(&mut out, true);
        out
    }

    /// The transaction id: the hash of the serialization without witness.
    pub fn txid(&self) -> Txid {
        let mut engine = Sha256dEngine::new();
        self.encode_to(&mut engine, false);
        Txid(engine.finalize())
    }

    /// The witness transaction id: the hash of the full serialization. A coinbase's wtxid
    /// counts as zero in the witness Merkle tree; that is the block's business, not this.
    pub fn wtxid(&self) -> Wtxid {
        let mut engine = Sha256dEngine::new();
        self.encode_to(&mut engine, true);
        Wtxid(engine.finalize())
    }

    /// Size without witness data.
    pub fn base_size(&self) -> usize {
        let mut c = Counter::default();
        self.encode_to(&mut c, false);
        c.0
    }

    /// Size with witness data.
    pub fn total_size(&self) -> usize {
        let mut c = Counter::default();
        self.encode_to(&mut c, true);
        c.0
    }

    /// Weight (BIP141): `3 × base size + total size`.
    pub fn weight(&self) -> usize {
        3 * self.base_size() + self.total_size()
    }
}

/// The most satoshis that can ever exist (Core's `MAX_MONEY`).
pub const MAX_MONEY: u64 = 21_000_000 * 100_000_000;

/// Why a transaction breaks a context-free consensus rule (Core's `CheckTransaction`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    /// No inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// No outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// Larger than a block could hold without witness data.
    #[error("transaction of {0} stripped bytes exceeds the block weight limit")]
    Oversize(usize),
    /// An output or the sum of outputs above 21 million bitcoin.
    #[error("output values exceed 21 million bitcoin")]
    ValueOutOfRange,
    /// The same outpoint spent twice.
    #[error("input {index} spends an outpoint already spent by this transaction")]
    DuplicateInput {
        /// The second input spending it.
        index: usize,
    },
    /// A coinbase script outside 2..=100 bytes.
    #[error("coinbase script of {0} bytes is outside 2..=100")]
    CoinbaseScriptSize(usize),
    /// A non-coinbase input spending the null outpoint.
    #[error("input {index} spends the null outpoint outside a coinbase")]
    NullPrevout {
        /// The offending input.
        index: usize,
    },
}

impl Transaction {
    /// The checks that need no chain state, as Bitcoin Core's `CheckTransaction`.
    pub fn check(&self) -> Result<(), TxError> {
        if self.input.is_empty() {
            return Err(TxError::NoInputs);
        }
        if self.output.is_empty() {
            return Err(TxError::NoOutputs);
        }
        let stripped = self.base_size();
        if stripped * 4 > super::block::MAX_BLOCK_WEIGHT {
            return Err(TxError::Oversize(stripped));
        }
        let mut total = 0u64;
        for out in &self.output {
            total = total.saturating_add(out.value);
            if out.value > MAX_MONEY || total > MAX_MONEY {
                return Err(TxError::ValueOutOfRange);
            }
        }
        if self.input.len() > 1 {
            let mut seen: Vec<(&[u8; 32], u32)> = self
                .input
                .iter()
                .map(|i| (i.previous_output.txid.as_bytes(), i.previous_output.vout))
                .collect();
            seen.sort_unstable();
            if let Some(pos) = seen.windows(2).position(|w| w[0] == w[1]) {
                // Report the position in the original order of the second spend.
                let dup = seen[pos];
                let index = self
                    .input
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| {
                        (i.previous_output.txid.as_bytes(), i.previous_output.vout) == dup
                    })
                    .nth(1)
                    .map_or(0, |(n, _)| n);
                return Err(TxError::DuplicateInput { index });
            }
        }
        if self.is_coinbase() {
            let len = self.input[0].script_sig.len();
            if !(2..=100).contains(&len) {
                return Err(TxError::CoinbaseScriptSize(len));
            }
        } else if let Some(index) = self
            .input
            .iter()
            .position(|i| i.previous_output == OutPoint::NULL)
        {
            return Err(TxError::NullPrevout { index });
        }
        Ok(())
    }
}

fn decode_inputs(r: &mut Reader<'_>) -> Result<Vec<TxIn>, DecodeError> {
    let count = r.read_count("input", u64::MAX, MIN_INPUT_BYTES)?;
    let mut input = Vec::with_capacity(count);
    for _ in 0..count {
        let txid = Txid(r.read_array()?);
        let vout = r.read_u32_le()?;
        let script_sig = r.read_var_bytes("script_sig")?.to_vec();
        let sequence = r.read_u32_le()?;
        input.push(TxIn {
            previous_output: OutPoint { txid, vout },
            script_sig,
            sequence,
            witness: Default::default(),
        });
    }
    Ok(input)
}

fn decode_outputs(r: &mut Reader<'_>) -> Result<Vec<TxOut>, DecodeError> {
    let count = r.read_count("output", u64::MAX, MIN_OUTPUT_BYTES)?;
    let mut output = Vec::with_capacity(count);
    for _ in 0..count {
        let value = r.read_u64_le()?;
        let script_pubkey = r.read_var_bytes("script_pubkey")?.to_vec();
        output.push(TxOut {
            value,
            script_pubkey,
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(witness: bool) -> Transaction {
        Transaction {
            version: 2,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: Txid([7; 32]),
                    vout: 3,
                },
                script_sig: vec![0x51],
                sequence: 0xffff_fffe,
                witness: if witness {
                    vec![vec![1, 2, 3], vec![]].into()
                } else {
                    Default::default()
                },
            }],
            output: vec![TxOut {
                value: 50_000,
                script_pubkey: vec![0x00, 0x14, 9, 9, 9],
            }],
            lock_time: 101,
        }
    }

    #[test]
    fn legacy_and_segwit_round_trip() {
        for witness in [false, true] {
            let tx = sample(witness);
            let bytes = tx.encode();
            assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
            assert_eq!(bytes.len(), tx.total_size());
        }
    }

    #[test]
    fn txid_ignores_witness_and_wtxid_does_not() {
        let (a, b) = (sample(false), sample(true));
        assert_eq!(a.txid(), b.txid());
        assert_ne!(a.wtxid(), b.wtxid());
        assert_eq!(a.txid().0, a.wtxid().0);
        assert!(b.weight() < 4 * b.total_size());
    }

    #[test]
    fn context_free_checks_follow_core() {
        assert_eq!(sample(true).check(), Ok(()));
        let mut tx = sample(false);
        tx.input.push(tx.input[0].clone());
        assert_eq!(tx.check(), Err(TxError::DuplicateInput { index: 1 }));
        let mut tx = sample(false);
        tx.output[0].value = MAX_MONEY + 1;
        assert_eq!(tx.check(), Err(TxError::ValueOutOfRange));
        let mut tx = sample(false);
        tx.output.clear();
        assert_eq!(tx.check(), Err(TxError::NoOutputs));
        let mut tx = sample(false);
        tx.input.clear();
        assert_eq!(tx.check(), Err(TxError::NoInputs));
        let mut tx = sample(false);
        tx.input[0].previous_output = OutPoint::NULL;
        tx.input[0].script_sig = vec![1];
        assert_eq!(tx.check(), Err(TxError::CoinbaseScriptSize(1)));
        tx.input.push(sample(false).input[0].clone());
        assert_eq!(tx.check(), Err(TxError::NullPrevout { index: 0 }));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample(true).encode();
        bytes.push(0);
        assert_eq!(
            Transaction::decode(&bytes),
            Err(DecodeError::TrailingBytes {
                what: "transaction",
                count: 1
            })
        );
    }

    #[test]
    fn unknown_segwit_flag_is_rejected() {
        let mut bytes = sample(true).encode();
        bytes[5] = 2;
        assert!(matches!(
            Transaction::decode(&bytes),
            Err(DecodeError::BadSegwitFlag { flag: 2, .. })
        ));
    }

    #[test]
    fn superfluous_witness_is_rejected() {
        // Segwit serialization whose only witness stack is empty.
        let mut bytes = 2i32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0, 1, 1]);
        bytes.extend_from_slice(&[0; 36]);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // empty script, sequence, 0 outputs
        bytes.push(0); // empty witness
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(
            Transaction::decode(&bytes),
            Err(DecodeError::SuperfluousWitness)
        );
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = sample(true).encode();
        for len in 0..bytes.len() {
            assert!(Transaction::decode(&bytes[..len]).is_err());
        }
    }
}
