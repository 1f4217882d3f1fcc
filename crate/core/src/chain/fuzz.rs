//! The bodies of the fuzz targets in `crate/core/fuzz/`, one per decoder of untrusted bytes
//! (blocks, transactions, headers, Merkle proofs). They live here, as plain functions, so that
//! the unit tests below run them on every build and `cargo fuzz` only adds the driver.
//! Compiled with `cfg(test)` or the `fuzzing` feature.
//!
//! Each body decodes arbitrary bytes; whatever decodes must re-encode to exactly the input
//! and survive every check without a panic. A panic is a finding.

use super::block::Block;
use super::hash::{sha256d, sha256d_pair, Hash256, Txid};
use super::header::Header;
use super::merkle::{MerkleProof, ProofError, MAX_BRANCH_LEN, MAX_TXS_PER_BLOCK};
use super::pow::Target;
use super::transaction::Transaction;

/// `Block::decode`, then the body checks and a proof for the first and last transaction.
pub fn block(data: &[u8]) {
    let Ok(block) = Block::decode(data) else {
        return;
    };
    assert_eq!(
        block.encode(),
        data,
        "a decoded block re-encodes to its input"
    );
    assert_eq!(block.size(), data.len());
    assert!(block.weight() >= block.size());
    let _ = block.check();
    let _ = block.bip34_height();
    let _ = block.witness_commitment();
    let txids = block.txids();
    let (root, mutated) = block.compute_merkle_root();
    if mutated || txids.len() > MAX_TXS_PER_BLOCK {
        return;
    }
    for pos in [0, txids.len() - 1] {
        let proof = MerkleProof::build(block.block_hash(), 0, &txids, pos as u32)
            .expect("a proof for an existing position");
        assert_eq!(proof.verify(txids[pos], root), Ok(()));
        assert_eq!(
            proof.verify_with_tx_count(txids[pos], root, txids.len()),
            Ok(())
        );
    }
}

/// `Transaction::decode`, then hashes, sizes and weight.
pub fn transaction(data: &[u8]) {
    let Ok(tx) = Transaction::decode(data) else {
        return;
    };
    assert_eq!(
        tx.encode(),
        data,
        "a decoded transaction re-encodes to its input"
    );
    assert_eq!(tx.total_size(), data.len());
    assert!(tx.base_size() <= tx.total_size());
    if !tx.has_witness() {
        assert_eq!(tx.txid().0, tx.wtxid().0);
        assert_eq!(tx.txid().0, sha256d(data));
    }
    let _ = tx.weight();
    let _ = tx.is_coinbase();
}

/// `Header::decode`, then the hash and the proof-of-work checks.
pub fn header(data: &[u8]) {
    let Ok(header) = Header::decode(data) else {
        return;
    };
    assert_eq!(header.encode().as_slice(), data);
    assert_eq!(header.block_hash().0, sha256d(data));
    let _ = header.work();
    if let Ok(target) = Target::from_compact(header.bits) {
        let _ = header.check_proof_of_work(target);
        let _ = target.work();
        let _ = target.to_compact();
    }
}

/// `MerkleProof::decode`, then verification against the root a naive walk reaches: the
/// result is either success or a structural refusal, never a root mismatch.
pub fn merkle_proof(data: &[u8]) {
    let Ok(proof) = MerkleProof::decode(data) else {
        return;
    };
    assert_eq!(
        proof.encode(),
        data,
        "a decoded proof re-encodes to its input"
    );
    assert!(proof.branch.len() <= MAX_BRANCH_LEN);
    let txid = Txid(sha256d(data));
    let mut node = txid.0;
    let mut index = proof.pos;
    for sibling in &proof.branch {
        node = if index & 1 == 1 {
            sha256d_pair(&sibling.0, &node)
        } else {
            sha256d_pair(&node, &sibling.0)
        };
        index >>= 1;
    }
    match proof.verify(txid, Hash256(node)) {
        Ok(()) => assert_eq!(index, 0),
        Err(ProofError::RootMismatch { .. }) => panic!("the naive root must match"),
        Err(_) => {}
    }
    let tx_count = (1usize << proof.branch.len()).min(MAX_TXS_PER_BLOCK);
    let _ = proof.verify_with_tx_count(txid, Hash256(node), tx_count);
    assert!(proof.verify(txid, Hash256([0x5a; 32])).is_err());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::transaction::{OutPoint, TxIn, TxOut};

    fn sample_block() -> Block {
        let coinbase = Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint::NULL,
                script_sig: vec![0x51, 0x51],
                sequence: u32::MAX,
                witness: Default::default(),
            }],
            output: vec![TxOut {
                value: 1,
                script_pubkey: vec![0x51],
            }],
            lock_time: 0,
        };
        let mut spend = coinbase.clone();
        spend.input[0].previous_output.vout = 0;
        spend.input[0].witness = vec![vec![1, 2]].into();
        let mut block = Block {
            header: Header::default(),
            txdata: vec![coinbase, spend.clone(), spend],
        };
        block.txdata[2].lock_time = 1;
        block.header.merkle_root = block.compute_merkle_root().0;
        block
    }

    /// Every target on valid encodings, each truncation of them, and a few odd inputs.
    #[test]
    fn targets_run_on_seed_inputs() {
        let block_bytes = sample_block().encode();
        let tx_bytes = sample_block().txdata[1].encode();
        let header_bytes = sample_block().header.encode().to_vec();
        let txids = sample_block().txids();
        let proof_bytes = MerkleProof::build(Default::default(), 1, &txids, 2)
            .unwrap()
            .encode();
        let seeds = [block_bytes, tx_bytes, header_bytes, proof_bytes];
        for seed in &seeds {
            for len in 0..=seed.len() {
                let input = &seed[..len];
                block(input);
                transaction(input);
                header(input);
                merkle_proof(input);
            }
        }
        for odd in [&[][..], &[0xff; 9], &[0; 200]] {
            block(odd);
            transaction(odd);
            header(odd);
            merkle_proof(odd);
        }
    }

    #[test]
    fn seeds_decode() {
        assert!(Block::decode(&sample_block().encode()).is_ok());
        let txids = sample_block().txids();
        let proof = MerkleProof::build(Default::default(), 1, &txids, 2).unwrap();
        assert!(MerkleProof::decode(&proof.encode()).is_ok());
    }
}
