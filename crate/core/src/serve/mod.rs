//! Serving: new blocks, transaction queries and fetch-and-evict (S14–S17).
//!
//! # Overview
//!
//! Four sans-IO components, each driven by the node with `now_ms` passed in, each with its own
//! configuration struct whose defaults are sensible, each bounded in every table it keeps:
//!
//! - [`txindex::TxIndex`]: which of this member's blocks holds which transaction, kept in step
//!   with the shard and persisted as key/value batches (serves S16).
//! - [`query::Queries`]: the transaction query state machine (S16): answer from the local
//!   shard, else forward to the block's holders or fan out to members in waves; the first
//!   answer whose Merkle proof verifies against this node's own header chain wins.
//! - [`newblock::NewBlocks`]: new-block storage, routed (S14) or self-selected (S15), with
//!   "stored" announcements, re-drive of missing replicas and reorg handling.
//! - [`cache::BlockCache`]: fetch a block this member does not hold into a bounded LRU cache,
//!   verified against the header chain, and run caller code on it (S17).
//!
//! # Usage
//!
//! Every component takes inputs through `handle_*` methods and queues its requests as outputs
//! that [`crate::service::Serve`] drains with `poll_output` (or receives directly as return
//! values), turning them into the node's messages, storage commands and events; request ids
//! come from the node's allocator ([`crate::base::RequestIds`]). Components never read a clock: deadlines
//! are compared with the `now_ms` the node passes in, and `poll_timeout` says when the node
//! should call `handle_timeout` next.
//!
//! Peers are identified by a type parameter `P` (the node's `NodeId`), so the components do
//! not depend on the cluster's types and can be tested alone.

pub mod cache;
pub mod newblock;
pub mod query;
pub mod ratelimit;
pub mod reorg;
pub mod txindex;

#[cfg(test)]
pub(crate) mod testutil;

use std::collections::HashMap;
use std::hash::Hash;

use crate::chain::headers::Reorg;
use crate::chain::{BlockHash, Header, HeaderChain};
use cache::CacheConfig;
use newblock::NewBlockConfig;
use query::QueryConfig;
use txindex::TxIndexConfig;

/// Configuration of the serving layer: one section per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeConfig {
    /// The transaction index.
    pub index: TxIndexConfig,
    /// Transaction queries (S16).
    pub query: QueryConfig,
    /// New-block storage (S14, S15).
    pub new_blocks: NewBlockConfig,
    /// The block cache (S17).
    pub cache: CacheConfig,
}

/// A read-only view of this node's verified best header chain: what serving needs to check
/// blocks and proofs against. The node's header view implements it.
pub trait BestChain {
    /// Height of the best tip, `None` for an empty chain.
    fn tip_height(&self) -> Option<u32>;
    /// The header at `height` on the best chain.
    fn header_at(&self, height: u32) -> Option<Header>;
    /// The block hash at `height` on the best chain.
    fn block_hash_at(&self, height: u32) -> Option<BlockHash>;
    /// The height of `hash` if that block is on the best chain.
    fn height_of(&self, hash: &BlockHash) -> Option<u32>;
}

impl BestChain for HeaderChain {
    fn tip_height(&self) -> Option<u32> {
        Some(HeaderChain::tip_height(self))
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        HeaderChain::header_at(self, height).copied()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.hash_at(height)
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        HeaderChain::height_of(self, hash)
    }
}

impl From<&Reorg> for reorg::ChainChange {
    /// The header chain's own (exact) reorg report, in the form serving uses.
    fn from(r: &Reorg) -> Self {
        reorg::ChainChange {
            fork_height: Some(r.fork_height),
            disconnected: r.disconnected.clone(),
            connected: r.connected.clone(),
            truncated: false,
        }
    }
}

/// Misbehaviour scores per peer, bounded: the node reads them to disconnect or ban a peer.
///
/// When the table is full, the peer with the lowest score is forgotten to make room (a peer
/// that keeps misbehaving climbs back quickly; one bad answer long ago is not worth a slot).
#[derive(Debug, Clone)]
pub struct PeerScores<P> {
    scores: HashMap<P, u32>,
    max_peers: usize,
}

impl<P: Copy + Eq + Hash + Ord> PeerScores<P> {
    /// An empty table for at most `max_peers` peers (at least one).
    pub fn new(max_peers: usize) -> Self {
        Self {
            scores: HashMap::new(),
            max_peers: max_peers.max(1),
        }
    }

    /// Adds `points` to `peer`'s score and returns the new score.
    pub fn add(&mut self, peer: P, points: u32) -> u32 {
        if !self.scores.contains_key(&peer) && self.scores.len() >= self.max_peers {
            let lowest = self
                .scores
                .iter()
                .min_by_key(|(p, s)| (**s, **p))
                .map(|(p, _)| *p);
            if let Some(lowest) = lowest {
                self.scores.remove(&lowest);
            }
        }
        let score = self.scores.entry(peer).or_insert(0);
        *score = score.saturating_add(points);
        let score = *score;
        debug_assert!(self.scores.len() <= self.max_peers);
        score
    }

    /// `peer`'s score (0 if unknown).
    pub fn get(&self, peer: &P) -> u32 {
        self.scores.get(peer).copied().unwrap_or(0)
    }

    /// Forgets `peer` (e.g. after the node disconnected it).
    pub fn forget(&mut self, peer: &P) {
        self.scores.remove(peer);
    }

    /// How many peers have a score.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether no peer has a score.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::chain::headers::Accepted;
    use crate::chain::{Network, Target};
    use crate::serve::testutil::block;

    /// Mines a regtest header on `prev` (about two tries per header at regtest difficulty).
    fn mined(prev: &Header, height: u32, tag: u64) -> Header {
        let mut header = block(prev.block_hash(), height, 1, tag).header;
        header.time = prev.time + 600;
        let target = Target::from_compact(header.bits).unwrap();
        while !target.is_met_by(header.block_hash()) {
            header.nonce += 1;
        }
        header
    }

    #[test]
    fn header_chain_is_a_best_chain_and_its_reorgs_match_the_diff() {
        let params = Network::Regtest.params();
        let mut chain = HeaderChain::new(params);
        let now_s = 4_000_000_000;
        let mut main = vec![params.genesis];
        for height in 1..=4 {
            let h = mined(&main[main.len() - 1], height, 1);
            chain.accept(&h, now_s).unwrap();
            main.push(h);
        }
        let before = chain.clone();
        assert_eq!(BestChain::tip_height(&chain), Some(4));
        assert_eq!(BestChain::height_of(&chain, &main[3].block_hash()), Some(3));
        assert_eq!(BestChain::header_at(&chain, 2), Some(main[2]));
        assert_eq!(chain.block_hash_at(4), Some(main[4].block_hash()));
        // A longer side branch from height 2 takes over.
        let mut side = vec![main[2]];
        let mut report = None;
        for height in 3..=5 {
            let h = mined(&side[side.len() - 1], height, 2);
            if let Accepted::Reorg(r) = chain.accept(&h, now_s).unwrap() {
                report = Some(r);
            }
            side.push(h);
        }
        let report = report.expect("the side branch has more work");
        let from_report = reorg::ChainChange::from(&report);
        assert_eq!(from_report, reorg::diff(&before, &chain, 100));
        assert_eq!(BestChain::height_of(&chain, &main[3].block_hash()), None);
    }

    #[test]
    fn peer_scores_are_bounded_and_keep_the_worst() {
        let mut scores = PeerScores::new(2);
        assert_eq!(scores.add(1u8, 5), 5);
        assert_eq!(scores.add(2u8, 1), 1);
        assert_eq!(scores.add(1u8, 5), 10);
        // Full: peer 2 (lowest) makes room for peer 3.
        assert_eq!(scores.add(3u8, 1), 1);
        assert_eq!(scores.len(), 2);
        assert_eq!(scores.get(&1), 10);
        assert_eq!(scores.get(&2), 0);
    }
}
