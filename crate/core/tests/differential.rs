//! Differential tests against rust-bitcoin (`bitcoin` 0.32): for random transactions and
//! blocks, both libraries must agree byte for byte on the encoding and on every hash, size and
//! weight, and on the Merkle and witness roots and the witness commitment.

mod common;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash as _;
use proptest::prelude::*;
use shoal_core::chain::block::WitnessCommitment;
use shoal_core::chain::merkle::merkle_root;
use shoal_core::chain::{Block, Transaction};

/// The same transaction built field by field in rust-bitcoin (not through bytes).
fn to_bitcoin(tx: &Transaction) -> bitcoin::Transaction {
    bitcoin::Transaction {
        version: bitcoin::transaction::Version(tx.version),
        lock_time: bitcoin::absolute::LockTime::from_consensus(tx.lock_time),
        input: tx
            .input
            .iter()
            .map(|i| bitcoin::TxIn {
                previous_output: bitcoin::OutPoint {
                    txid: bitcoin::Txid::from_byte_array(i.previous_output.txid.0),
                    vout: i.previous_output.vout,
                },
                script_sig: bitcoin::ScriptBuf::from_bytes(i.script_sig.clone()),
                sequence: bitcoin::Sequence(i.sequence),
                witness: bitcoin::Witness::from_slice(&i.witness.to_vec()),
            })
            .collect(),
        output: tx
            .output
            .iter()
            .map(|o| bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(o.value),
                script_pubkey: bitcoin::ScriptBuf::from_bytes(o.script_pubkey.clone()),
            })
            .collect(),
    }
}

fn assert_same_transaction(ours: &Transaction, theirs: &bitcoin::Transaction) {
    let bytes = ours.encode();
    assert_eq!(bytes, serialize(theirs), "encoding");
    assert_eq!(ours.txid().0, theirs.compute_txid().to_byte_array(), "txid");
    assert_eq!(
        ours.wtxid().0,
        theirs.compute_wtxid().to_byte_array(),
        "wtxid"
    );
    assert_eq!(ours.base_size(), theirs.base_size(), "base size");
    assert_eq!(ours.total_size(), theirs.total_size(), "total size");
    assert_eq!(ours.weight() as u64, theirs.weight().to_wu(), "weight");
    assert_eq!(ours.is_coinbase(), theirs.is_coinbase(), "coinbase");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transactions_agree(tx in common::transaction()) {
        let theirs = to_bitcoin(&tx);
        assert_same_transaction(&tx, &theirs);
        // Each decodes the other's bytes to the same transaction.
        let bytes = serialize(&theirs);
        prop_assert_eq!(&Transaction::decode(&bytes).unwrap(), &tx);
        let back: bitcoin::Transaction = deserialize(&tx.encode()).unwrap();
        prop_assert_eq!(back, theirs);
    }

    #[test]
    fn blocks_agree(block in common::block(12)) {
        let bytes = block.encode();
        let theirs: bitcoin::Block = deserialize(&bytes).unwrap();
        prop_assert_eq!(serialize(&theirs), bytes.clone());
        prop_assert_eq!(Block::decode(&bytes).unwrap(), block.clone());
        prop_assert_eq!(block.block_hash().0, theirs.block_hash().to_byte_array());
        prop_assert_eq!(block.size(), theirs.total_size());
        prop_assert_eq!(block.weight() as u64, theirs.weight().to_wu());
        for (ours, theirs) in block.txdata.iter().zip(&theirs.txdata) {
            assert_same_transaction(ours, theirs);
        }
        let (root, mutated) = block.compute_merkle_root();
        prop_assert!(!mutated);
        prop_assert_eq!(root.0, theirs.compute_merkle_root().unwrap().to_byte_array());
        prop_assert!(theirs.check_merkle_root());
        prop_assert_eq!(block.witness_root().0, theirs.witness_root().unwrap().to_byte_array());
        let has_witness = block.txdata.iter().any(Transaction::has_witness);
        let expected = if has_witness { WitnessCommitment::Valid } else { WitnessCommitment::Absent };
        prop_assert_eq!(block.check_witness_commitment(), Ok(expected));
        // Random transactions may break Core's context-free rules (empty outputs, duplicate
        // inputs…): then `check` must name exactly the transaction that breaks them.
        match block.check() {
            Ok(commitment) => prop_assert_eq!(commitment, expected),
            Err(shoal_core::chain::BlockError::BadTransaction { index, error }) => {
                prop_assert_eq!(block.txdata[index].check(), Err(error));
                prop_assert!(block.txdata[..index].iter().all(|tx| tx.check().is_ok()));
            }
            Err(other) => prop_assert!(false, "unexpected block error: {other}"),
        }
        prop_assert!(theirs.check_witness_commitment());
        if block.header.version >= 2 {
            prop_assert_eq!(
                block.bip34_height().map(u64::from),
                theirs.bip34_block_height().ok()
            );
        }
    }

    #[test]
    fn merkle_roots_agree(leaves in prop::collection::vec(any::<[u8; 32]>(), 1..200)) {
        let theirs = bitcoin::merkle_tree::calculate_root(
            leaves.iter().map(|l| bitcoin::TxMerkleNode::from_byte_array(*l)),
        )
        .unwrap();
        prop_assert_eq!(merkle_root(&leaves).0 .0, theirs.to_byte_array());
    }

    /// One byte of a valid transaction replaced: whenever shoal-core accepts the result,
    /// rust-bitcoin accepts it too and both read the same transaction.
    #[test]
    fn corrupted_transactions_are_read_alike(
        tx in common::transaction(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = tx.encode();
        let i = index.index(bytes.len());
        bytes[i] = byte;
        if let Ok(ours) = Transaction::decode(&bytes) {
            let theirs: bitcoin::Transaction = deserialize(&bytes)
                .expect("rust-bitcoin accepts what shoal-core accepts");
            assert_same_transaction(&ours, &theirs);
            prop_assert_eq!(ours.encode(), bytes);
        }
    }
}

/// Block 702861, decoded by both, re-encoded by each, and the encodings swapped.
#[test]
fn real_block_agrees() {
    let bytes = bitcoin_test_data::blocks::mainnet_702861();
    let ours = Block::decode(bytes).unwrap();
    let theirs: bitcoin::Block = deserialize(bytes).unwrap();
    assert_eq!(serialize(&theirs), ours.encode());
    assert_eq!(ours.block_hash().0, theirs.block_hash().to_byte_array());
    assert_eq!(
        ours.compute_merkle_root().0 .0,
        theirs.compute_merkle_root().unwrap().to_byte_array()
    );
    for (ours, theirs) in ours.txdata.iter().zip(&theirs.txdata) {
        assert_same_transaction(ours, theirs);
        assert_eq!(&to_bitcoin(ours), theirs, "field-by-field conversion");
    }
}
