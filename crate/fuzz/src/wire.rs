//! Shoal's wire messages (`shoal_core::wire`): everything one node sends another, and the view
//! inside a stored membership record.

use shoal_core::wire::{self, Message, MAX_MESSAGE_BYTES};

use crate::alloc::bounded;

/// `wire::decode` within the allocation bound; whatever decodes re-encodes to exactly the
/// input (one byte form per message), its `encoded_len` is the input's length, and it stays
/// within the codec's limits.
pub fn wire_message(data: &[u8]) {
    let Ok(message) = bounded("wire message", data.len(), || wire::decode(data)) else {
        return;
    };
    assert!(data.len() <= MAX_MESSAGE_BYTES);
    let encoded = wire::encode(&message).expect("a decoded message encodes");
    assert_eq!(encoded, data, "a decoded message re-encodes to its input");
    assert_eq!(wire::encoded_len(&message), Ok(data.len()));
    let _ = message.kind();
    match &message {
        Message::View(view) => {
            assert!(view.members.len() <= wire::MAX_VIEW_MEMBERS);
            assert!(view.genesis.founders.len() <= wire::MAX_VIEW_MEMBERS);
            // What a receiver checks before taking a view: any answer, never a panic.
            let _ = shoal_core::cluster::check_view(view, wire::MAX_VIEW_MEMBERS);
        }
        Message::Headers { headers, .. } => {
            assert!(headers.len() <= wire::MAX_HEADERS_PER_MESSAGE)
        }
        Message::TxAnswer { answer, .. } => {
            if let Some((proof, tx)) = answer.clone().into_proof() {
                assert!(proof.branch.len() <= wire::MAX_BRANCH_LEN);
                assert!(tx.len() <= wire::MAX_TX_BYTES);
                // What an asker does with it: any answer, never a panic.
                let txid = shoal_core::chain::Txid(shoal_core::chain::sha256d(&tx));
                let _ = proof.verify(txid, shoal_core::chain::Hash256(proof.block_hash.0));
            }
        }
        _ => {}
    }
}
