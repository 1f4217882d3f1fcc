//! Checking an answer to a transaction query (S16) against the node's own header chain: the
//! proof's block must be the block of the node's best chain at that height, and the Merkle
//! branch must lead from the txid to that header's Merkle root. Nothing a relay or member says
//! is taken on trust.

use shoal_core::chain::merkle::MerkleProof;
use shoal_core::chain::{HeaderChain, Txid};

use crate::error::{ApiError, ErrorCode};

/// A transaction proven against the node's own headers.
#[derive(Debug, Clone)]
pub struct Verified {
    pub txid: Txid,
    pub proof: MerkleProof,
    pub confirmations: u32,
    /// Answered from the node's own blocks rather than by a relay.
    pub local: bool,
}

/// Checks `proof` for `txid` against `chain`'s best chain.
///
/// `NOT_SYNCED` when the proof's height is above the tip; `INVALID_PROOF` when the block at
/// that height is another one or the branch does not lead to its Merkle root.
pub fn check_proof(
    chain: &HeaderChain,
    txid: Txid,
    proof: MerkleProof,
    local: bool,
) -> Result<Verified, ApiError> {
    let tip = chain.tip_height();
    if proof.height > tip {
        return Err(ApiError::new(
            ErrorCode::NotSynced,
            format!(
                "the answer is in block {} at height {}, above this node's tip {tip}",
                proof.block_hash, proof.height
            ),
        ));
    }
    let header = chain
        .header_at(proof.height)
        .ok_or_else(|| ApiError::new(ErrorCode::NotSynced, "no header at the answer's height"))?;
    proof
        .verify_against_header(txid, header)
        .map_err(|e| ApiError::new(ErrorCode::InvalidProof, e.to_string()))?;
    Ok(Verified {
        txid,
        confirmations: tip - proof.height + 1,
        proof,
        local,
    })
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::generate::{generate_chain, GenerateConfig};
    use shoal_core::chain::{Block, Hash256, Network};
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn chain_of(blocks: &[Block]) -> HeaderChain {
        let mut chain = HeaderChain::new(Network::Regtest.params());
        let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
        chain.accept_batch(&headers, u64::from(u32::MAX)).unwrap();
        chain
    }

    fn proof(blocks: &[Block], height: u32, pos: u32) -> (Txid, MerkleProof) {
        let block = &blocks[height as usize - 1];
        let txids = block.txids();
        let proof = MerkleProof::build(block.block_hash(), height, &txids, pos).unwrap();
        (txids[pos as usize], proof)
    }

    #[wasm_bindgen_test]
    fn proofs_verify_only_against_the_nodes_own_headers() {
        let blocks = generate_chain(&GenerateConfig {
            blocks: 12,
            txs_per_block: 5,
            seed: 3,
            ..GenerateConfig::default()
        })
        .unwrap();
        let chain = chain_of(&blocks);
        assert_eq!(chain.tip_height(), 12);

        let (txid, good) = proof(&blocks, 7, 3);
        let verified = check_proof(&chain, txid, good.clone(), false).unwrap();
        assert_eq!(verified.confirmations, 6);

        let mut branch = good.clone();
        branch.branch[0] = Hash256([0x55; 32]);
        let err = check_proof(&chain, txid, branch, false).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidProof, "{err}");

        let mut position = good.clone();
        position.pos ^= 1;
        assert_eq!(
            check_proof(&chain, txid, position, false).unwrap_err().code,
            ErrorCode::InvalidProof
        );

        let mut height = good.clone();
        height.height = 8; // claims another block's place in the chain
        assert_eq!(
            check_proof(&chain, txid, height, false).unwrap_err().code,
            ErrorCode::InvalidProof
        );

        let (other_txid, _) = proof(&blocks, 9, 1);
        assert_eq!(
            check_proof(&chain, other_txid, good.clone(), false)
                .unwrap_err()
                .code,
            ErrorCode::InvalidProof
        );

        let short = chain_of(&blocks[..5]);
        assert_eq!(
            check_proof(&short, txid, good, false).unwrap_err().code,
            ErrorCode::NotSynced
        );
    }
}
