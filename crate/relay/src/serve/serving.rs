//! Answers straight from the stored chain to the two queries a shell asks of the relay: header
//! ranges (header sync) and transaction queries with Merkle proofs (S16, the relay as query
//! target). Every answer carries the request's `request_id`. Blocks, pings and the cluster
//! protocol are the archive node's ([`super::archive`]).

use shoal_core::chain::{self, Txid};
use shoal_core::wire::{self, Message, TxAnswerBody, WireError, MAX_HEADERS_PER_MESSAGE};

use super::store::{ChainStore, StoreError};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServingError {
    #[error("undecodable request: {0}")]
    Wire(#[from] WireError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("stored header does not convert to the wire form")]
    HeaderForm,
    #[error("the relay does not answer this message ({0})")]
    NotServed(&'static str),
}

/// The answer to `request`.
pub fn answer(store: &ChainStore, request: &Message) -> Result<Message, ServingError> {
    match request {
        Message::GetHeaders {
            request_id,
            start_height,
            max_count,
        } => {
            let max_count = (*max_count).min(MAX_HEADERS_PER_MESSAGE as u32);
            Ok(Message::Headers {
                request_id: *request_id,
                start_height: *start_height,
                tip_height: store.tip()?.map_or(0, |tip| tip.height),
                headers: store
                    .headers(*start_height, max_count)?
                    .iter()
                    .map(wire_header)
                    .collect::<Result<_, _>>()?,
            })
        }
        Message::TxQuery {
            request_id, txid, ..
        } => {
            let answer = match store.tx_proof(&Txid(txid.0))? {
                Some(proof) => TxAnswerBody::Found {
                    block_hash: wire::BlockHash(proof.block_hash.0),
                    height: proof.height,
                    pos: proof.pos,
                    branch: proof.branch.iter().map(|h| wire::Hash256(h.0)).collect(),
                    header: store
                        .headers(proof.height, 1)?
                        .first()
                        .map(wire_header)
                        .transpose()?,
                },
                None => TxAnswerBody::NotFound,
            };
            Ok(Message::TxAnswer {
                request_id: *request_id,
                answer,
            })
        }
        _ => Err(ServingError::NotServed("not a serving request")),
    }
}

/// The wire's form of a stored header (the same 80 consensus bytes).
fn wire_header(header: &chain::Header) -> Result<wire::Header, ServingError> {
    wire::Header::decode(&header.encode()).map_err(|_| ServingError::HeaderForm)
}
