//! Basic types every part of the core shares, kept apart so that every module can import them
//! without importing each other: a node's id ([`NodeId`]), a cluster's id ([`ClusterId`]), the
//! node's request-id allocator ([`RequestIds`]) and the seeded random numbers and hash mixing
//! of [`rng`]. This module imports nothing of the core (the chain generator draws from its
//! random numbers, so it hashes with `sha2` itself).
//!
//! # Request ids (the drain contract's "every request carries an id that returns with its
//! answer")
//!
//! A node sends requests to peers (block fetches, transaction queries, invitations, join
//! requests) and to its shell's store (every [`StorageCommand`](crate::node::StorageCommand)).
//! All of their ids come from one [`RequestIds`] per node, so no two requests of one node
//! share an id, whichever part of the node sent them. An answer is routed back by looking its
//! id up in the tables of the parts that wait for answers (repair's fetches, the block cache's
//! fetches, the queries' asks, the serving layer's reads and writes): no bits of the id say who
//! sent it.

pub mod rng;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use rng::mix64;

/// A node's identity: 32 bytes (e.g. the hash of its libp2p public key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// An id derived from any bytes (e.g. a libp2p peer id's bytes): `sha256d(bytes)`.
    pub fn from_bytes_hashed(bytes: &[u8]) -> NodeId {
        use sha2::{Digest, Sha256};
        NodeId(Sha256::digest(Sha256::digest(bytes)).into())
    }

    /// A deterministic id for tests and simulations.
    pub fn from_seed(seed: u64) -> NodeId {
        let mut data = *b"shoal/node-id-seed\0\0\0\0\0\0\0\0";
        data[18..].copy_from_slice(&seed.to_le_bytes());
        NodeId::from_bytes_hashed(&data)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// A cluster's id: a hash over its founding member set, generation and proposer (S4; computed
/// by [`crate::cluster::cluster_id`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ClusterId(pub [u8; 32]);

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterId(")?;
        for byte in &self.0[..6] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// The node's one source of request ids (see the module docs). Cloning gives another handle
/// to the same counter: the serving layer's components keep one each, so that they can
/// number a request wherever they make it (a query's next wave, a fetch's next holder).
#[derive(Debug, Clone)]
pub struct RequestIds(Arc<AtomicU64>);

impl RequestIds {
    /// A new counter: the first id is 1.
    pub fn new() -> RequestIds {
        RequestIds(Arc::new(AtomicU64::new(1)))
    }

    /// The next unused id. A node is driven from one thread at a time (its inputs are
    /// sequential), so the order of ids is the order of the calls.
    pub fn next_id(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_one_counter() {
        let ids = RequestIds::new();
        let other = ids.clone();
        assert_eq!(ids.next_id(), 1);
        assert_eq!(other.next_id(), 2);
        assert_eq!(ids.next_id(), 3);
    }
}
