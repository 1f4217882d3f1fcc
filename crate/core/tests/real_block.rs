//! Mainnet block 702861 (1.38 MB, segwit, taproot era) decoded and checked by shoal-core and
//! compared with the `bitcoin` crate: hashes, Merkle root, witness commitment, BIP34 height,
//! and inclusion proofs for every 100th transaction.

use bitcoin::consensus::deserialize;
use shoal_core::chain::block::WitnessCommitment;
use shoal_core::chain::merkle::{tree_depth, MerkleProof};
use shoal_core::chain::{Block, BlockHash, Hash256, Txid};

const HASH: &str = "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae";
const HEIGHT: u32 = 702_861;

fn block() -> Block {
    Block::decode(bitcoin_test_data::blocks::mainnet_702861()).expect("block 702861 decodes")
}

#[test]
fn decodes_re_encodes_and_hashes() {
    let bytes = bitcoin_test_data::blocks::mainnet_702861();
    let block = block();
    assert_eq!(block.block_hash(), HASH.parse::<BlockHash>().unwrap());
    assert_eq!(block.encode(), bytes, "byte-exact re-encoding");
    assert_eq!(block.size(), bytes.len());
    let theirs: bitcoin::Block = deserialize(bytes).unwrap();
    assert_eq!(block.weight() as u64, theirs.weight().to_wu());
    assert_eq!(block.txdata.len(), theirs.txdata.len());
    for (ours, theirs) in block.txdata.iter().zip(&theirs.txdata) {
        assert_eq!(ours.txid().0, theirs.compute_txid().to_byte_array());
        assert_eq!(ours.wtxid().0, theirs.compute_wtxid().to_byte_array());
        assert_eq!(ours.base_size(), theirs.base_size());
        assert_eq!(ours.total_size(), theirs.total_size());
        assert_eq!(ours.weight() as u64, theirs.weight().to_wu());
    }
}

use bitcoin::hashes::Hash as _;

#[test]
fn merkle_root_witness_commitment_and_height() {
    let block = block();
    assert!(block.check_merkle_root());
    assert!(block.txdata.iter().skip(1).any(|tx| tx.has_witness()));
    assert_eq!(
        block.check_witness_commitment(),
        Ok(WitnessCommitment::Valid)
    );
    assert_eq!(block.check(), Ok(WitnessCommitment::Valid));
    // The one-pass check (txids hashed once, reused for the witness tree's non-witness
    // transactions) agrees, and hands back the block's txids.
    assert!(block.txdata.iter().skip(1).any(|tx| !tx.has_witness()));
    assert_eq!(
        block.check_with_txids(),
        Ok((WitnessCommitment::Valid, block.txids()))
    );
    assert_eq!(block.bip34_height(), Some(HEIGHT));
    let theirs: bitcoin::Block = deserialize(bitcoin_test_data::blocks::mainnet_702861()).unwrap();
    assert_eq!(
        block.witness_root().0,
        theirs.witness_root().unwrap().to_byte_array()
    );
    assert!(theirs.check_witness_commitment());
    assert_eq!(theirs.bip34_block_height().unwrap(), u64::from(HEIGHT));
}

#[test]
fn proofs_for_every_hundredth_transaction() {
    let block = block();
    let header = block.header;
    let txids = block.txids();
    let depth = tree_depth(txids.len());
    let coinbase_proof = MerkleProof::build(header.block_hash(), HEIGHT, &txids, 0).unwrap();
    assert_eq!(
        coinbase_proof.coinbase_depth(&block.txdata[0], header.merkle_root),
        Ok(depth)
    );
    let tree = block.merkle_tree().unwrap();
    assert_eq!(tree.root(), header.merkle_root);
    assert!(!tree.is_mutated());
    let mut checked = 0;
    for pos in (0..txids.len()).step_by(100) {
        let proof = MerkleProof::build(header.block_hash(), HEIGHT, &txids, pos as u32).unwrap();
        assert_eq!(proof, block.merkle_proof(HEIGHT, pos as u32).unwrap());
        assert_eq!(
            proof,
            tree.proof(header.block_hash(), HEIGHT, pos as u32).unwrap()
        );
        let txid = txids[pos];
        assert_eq!(proof.verify_against_header(txid, &header), Ok(()));
        assert_eq!(
            proof.verify_transaction(&block.txdata[pos], header.merkle_root),
            Ok(())
        );
        assert_eq!(
            proof.verify_with_depth(txid, header.merkle_root, depth),
            Ok(())
        );
        assert_eq!(
            proof.verify_with_tx_count(txid, header.merkle_root, txids.len()),
            Ok(())
        );
        assert_eq!(MerkleProof::decode(&proof.encode()), Ok(proof.clone()));

        // Mutations: another transaction's id, a flipped bit, a shifted position.
        let other = txids[(pos + 1) % txids.len()];
        // (For an even position that id is the sibling itself: refused as an inconsistent
        // tail before any root comparison.)
        assert!(proof.verify(other, header.merkle_root).is_err());
        let mut flipped = proof.clone();
        flipped.branch[pos % depth].0[pos % 32] ^= 0x80;
        assert!(flipped.verify_against_header(txid, &header).is_err());
        let shifted = MerkleProof {
            pos: proof.pos ^ 1,
            ..proof.clone()
        };
        assert!(shifted.verify_against_header(txid, &header).is_err());
        let mut truncated = proof.clone();
        truncated.branch.pop();
        assert!(truncated.verify(txid, header.merkle_root).is_err());
        checked += 1;
    }
    assert_eq!(checked, txids.len().div_ceil(100));
    // The last transaction, the one most exposed to odd-level duplication.
    let last = txids.len() as u32 - 1;
    let proof = block.merkle_proof(HEIGHT, last).unwrap();
    assert_eq!(
        proof.verify_against_header(*txids.last().unwrap(), &header),
        Ok(())
    );
    let wrong: Txid = Txid(Hash256::ZERO.0);
    assert!(proof.verify(wrong, header.merkle_root).is_err());
}
