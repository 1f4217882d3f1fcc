//! Bitcoin's consensus formats (`shoal_core::chain`): blocks, transactions, headers and Merkle
//! proofs, as peers send them and stores keep them.
//!
//! Each body decodes arbitrary bytes within the allocation bound of [`crate::alloc`];
//! whatever decodes must re-encode to exactly the input and survive every check without a
//! panic. A panic is a finding.

use shoal_core::chain::hash::{sha256d, sha256d_pair, Hash256, Txid};
use shoal_core::chain::merkle::{MAX_BRANCH_LEN, MAX_TXS_PER_BLOCK};
use shoal_core::chain::{Block, Header, MerkleProof, ProofError, Target, Transaction};

use crate::alloc::bounded;

/// `Block::decode`, then the body checks and a proof for the first and last transaction.
pub fn block(data: &[u8]) {
    let Ok(block) = bounded("block", data.len(), || Block::decode(data)) else {
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
    let Ok(tx) = bounded("transaction", data.len(), || Transaction::decode(data)) else {
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
    let Ok(header) = bounded("header", data.len(), || Header::decode(data)) else {
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
    let Ok(proof) = bounded("merkle proof", data.len(), || MerkleProof::decode(data)) else {
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
