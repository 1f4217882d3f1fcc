//! Basic types every part of the node shares, kept apart so that every module can import them
//! without importing each other: the node's request-id allocator.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
