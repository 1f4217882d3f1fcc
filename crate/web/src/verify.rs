//! A transaction query's outcome as the JavaScript API gives it. The core node runs the query
//! (S16: its own blocks, then its cluster's members, then the relays' archive nodes) and checks
//! every proof against the node's own header chain (`shoal_core::serve::query`); this module
//! only turns its `QueryResult` into the verified result or an error with a documented code.
//! The core also checked that the raw transaction an answer carries hashes to the txid asked
//! for (`shoal_core::serve::query::check_transaction`); it reaches JavaScript as hex.

use serde::Serialize;
use shoal_core::chain::merkle::MerkleProof;
use shoal_core::chain::{BlockHash, Hash256, Txid};
use shoal_core::serve::query::QueryResult;

use crate::error::{ApiError, ErrorCode};

/// Who supplied the proof the node verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The node's own blocks.
    Local,
    /// Another member of its cluster.
    Member,
    /// A relay (its archive node).
    Relay,
}

impl Source {
    /// The name JavaScript sees (`source`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Member => "member",
            Source::Relay => "relay",
        }
    }
}

/// A transaction proven against the node's own headers.
#[derive(Debug, Clone)]
pub struct Verified {
    pub txid: Txid,
    pub proof: MerkleProof,
    pub confirmations: u32,
    pub source: Source,
    /// The peer id of the node whose answer was verified; `None` when local.
    pub answered_by: Option<String>,
    /// The transaction's raw bytes (checked to hash to `txid`).
    pub transaction: Vec<u8>,
    /// The Merkle root of this node's own header at the proof's height (what the proof was
    /// checked against); set by the caller of [`from_result`].
    pub merkle_root: Option<Hash256>,
}

/// The `VerifiedTransaction` of index.d.ts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedJs {
    pub confirmed: bool,
    pub txid: String,
    pub block_hash: String,
    pub height: u32,
    pub confirmations: u32,
    pub pos: u32,
    pub merkle: Vec<String>,
    pub source: Source,
    pub answered_by: Option<String>,
    /// Raw transaction, hex.
    pub transaction: String,
    /// The Merkle root of the node's own header the proof reaches (display hex).
    pub merkle_root: Option<String>,
}

impl Verified {
    /// Its JavaScript form.
    pub fn to_js_shape(&self) -> VerifiedJs {
        VerifiedJs {
            confirmed: true,
            txid: self.txid.to_string(),
            block_hash: self.proof.block_hash.to_string(),
            height: self.proof.height,
            confirmations: self.confirmations,
            pos: self.proof.pos,
            merkle: self.proof.branch.iter().map(|h| h.to_string()).collect(),
            source: self.source,
            answered_by: self.answered_by.clone(),
            transaction: hex::encode(&self.transaction),
            merkle_root: self.merkle_root.map(|r| r.to_string()),
        }
    }
}

/// The API's answer for the core's `result` of a query for `txid` (with `hint`, if any),
/// answered by `answered_by` (a peer id; `None` when the node's own blocks answered).
pub fn from_result(
    txid: Txid,
    hint: Option<BlockHash>,
    result: QueryResult,
    source: Source,
    answered_by: Option<String>,
) -> Result<Verified, ApiError> {
    match result {
        QueryResult::Confirmed {
            confirmations,
            ref transaction,
            ..
        } => {
            let proof = result.proof().expect("a confirmation carries its proof");
            Ok(Verified {
                txid,
                proof,
                confirmations,
                source,
                answered_by,
                transaction: transaction.clone(),
                merkle_root: None,
            })
        }
        QueryResult::NotFound => Err(ApiError::new(
            ErrorCode::NotFound,
            match hint {
                Some(hint) => format!("transaction {txid} is not in block {hint}"),
                None => format!("transaction {txid} is in no block of the chain"),
            },
        )),
        QueryResult::NotSynced => Err(ApiError::new(
            ErrorCode::NotSynced,
            format!("the answer for {txid} is in a block above this node's header tip"),
        )),
        QueryResult::InvalidProof => Err(ApiError::new(
            ErrorCode::InvalidProof,
            format!(
                "the only proofs for {txid} did not verify against this node's headers \
                 (their senders were scored)"
            ),
        )),
        QueryResult::Unavailable => Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("no member or relay gave a verifiable answer for {txid} in time"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::Hash256;
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    fn every_query_result_maps_to_its_code() {
        let txid = Txid([3; 32]);
        let block_hash = BlockHash([4; 32]);
        let merkle = vec![Hash256([5; 32]), Hash256([6; 32])];
        let confirmed = QueryResult::Confirmed {
            block_hash,
            height: 7,
            confirmations: 3,
            pos: 2,
            merkle: merkle.clone(),
            transaction: vec![1, 2, 3],
        };
        let v = from_result(txid, None, confirmed, Source::Relay, Some("12D3Koo".into())).unwrap();
        let shape = v.to_js_shape();
        assert_eq!(shape.transaction, "010203");
        assert_eq!(shape.answered_by.as_deref(), Some("12D3Koo"));
        assert_eq!(
            shape.merkle,
            vec![Hash256([5; 32]).to_string(), Hash256([6; 32]).to_string()]
        );
        let js = crate::status::to_js(&shape).unwrap();
        let get = |key: &str| js_sys::Reflect::get(&js, &key.into()).unwrap();
        assert_eq!(get("answeredBy"), "12D3Koo");
        assert_eq!(get("source"), "relay");
        assert_eq!(get("blockHash"), block_hash.to_string().as_str());
        assert_eq!(
            (v.txid, v.proof.block_hash, v.proof.height, v.proof.pos),
            (txid, block_hash, 7, 2)
        );
        assert_eq!(
            (v.confirmations, v.proof.branch, v.source),
            (3, merkle, Source::Relay)
        );
        let code = |result| {
            from_result(txid, None, result, Source::Local, None)
                .unwrap_err()
                .code
        };
        assert_eq!(code(QueryResult::NotFound), ErrorCode::NotFound);
        assert_eq!(code(QueryResult::NotSynced), ErrorCode::NotSynced);
        assert_eq!(code(QueryResult::InvalidProof), ErrorCode::InvalidProof);
        assert_eq!(code(QueryResult::Unavailable), ErrorCode::Unavailable);
        let hinted = from_result(
            txid,
            Some(block_hash),
            QueryResult::NotFound,
            Source::Local,
            None,
        );
        assert!(hinted
            .unwrap_err()
            .message
            .contains(&block_hash.to_string()));
    }
}
