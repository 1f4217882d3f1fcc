//! Proptest strategies for transactions and blocks, shared by the integration tests.
#![allow(dead_code)]

use proptest::prelude::*;
use shoal_core::chain::block::WITNESS_COMMITMENT_PREFIX;
use shoal_core::chain::{sha256d, Block, Header, OutPoint, Transaction, TxIn, TxOut, Txid};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// An input spending a random (non-null) outpoint, with or without a witness.
pub fn txin() -> impl Strategy<Value = TxIn> {
    (
        any::<[u8; 32]>(),
        any::<u32>(),
        bytes(80),
        any::<u32>(),
        prop::collection::vec(bytes(80), 0..4),
    )
        .prop_map(|(txid, vout, script_sig, sequence, witness)| TxIn {
            previous_output: OutPoint {
                txid: Txid(txid),
                vout,
            },
            script_sig,
            sequence,
            witness: witness.into(),
        })
}

pub fn txout() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), bytes(80)).prop_map(|(value, script_pubkey)| TxOut {
        value,
        script_pubkey,
    })
}

/// A non-coinbase transaction with at least one input (a transaction with none cannot be told
/// apart from a segwit marker on the wire, in Bitcoin Core as here).
pub fn transaction() -> impl Strategy<Value = Transaction> {
    (
        any::<i32>(),
        prop::collection::vec(txin(), 1..5),
        prop::collection::vec(txout(), 0..5),
        any::<u32>(),
    )
        .prop_map(|(version, input, output, lock_time)| Transaction {
            version,
            input,
            output,
            lock_time,
        })
}

/// A block that passes `Block::check`: a BIP34 coinbase, a witness commitment when any
/// transaction has a witness, a correct Merkle root; the other header fields random.
pub fn block(max_txs: usize) -> impl Strategy<Value = Block> {
    (
        any::<(i32, [u8; 32], u32, u32, u32)>(),
        0x8000u32..0x80_0000,
        any::<[u8; 32]>(),
        prop::collection::vec(transaction(), 0..max_txs),
    )
        .prop_map(|(fields, height, reserved, txs)| {
            let (version, prev, time, bits, nonce) = fields;
            let mut txdata = vec![coinbase(height, reserved)];
            txdata.extend(txs);
            let mut block = Block {
                header: Header {
                    version,
                    prev_blockhash: shoal_core::chain::BlockHash(prev),
                    time,
                    bits,
                    nonce,
                    ..Header::default()
                },
                txdata,
            };
            if block.txdata.iter().any(Transaction::has_witness) {
                let commitment = {
                    let mut data = block.witness_root().0.to_vec();
                    data.extend_from_slice(&reserved);
                    sha256d(&data)
                };
                let mut script = WITNESS_COMMITMENT_PREFIX.to_vec();
                script.extend_from_slice(&commitment);
                block.txdata[0].output.push(TxOut {
                    value: 0,
                    script_pubkey: script,
                });
            } else {
                block.txdata[0].input[0].witness.clear();
            }
            block.header.merkle_root = block.compute_merkle_root().0;
            block
        })
}

/// A coinbase claiming `height` (BIP34, minimal 3-byte push: 0x8000 ≤ height < 0x800000),
/// with the witness reserved value.
pub fn coinbase(height: u32, reserved: [u8; 32]) -> Transaction {
    let h = height.to_le_bytes();
    Transaction {
        version: 2,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig: vec![0x03, h[0], h[1], h[2], 0xde, 0xad],
            sequence: u32::MAX,
            witness: vec![reserved.to_vec()].into(),
        }],
        output: vec![TxOut {
            value: 625_000_000,
            script_pubkey: vec![0x51],
        }],
        lock_time: 0,
    }
}
