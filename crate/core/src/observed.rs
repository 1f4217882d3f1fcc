//! What this node saw its peers do for it (issue 16: claims ranked by observed service).
//!
//! A peer's `Hello` claims things that cost nothing to claim: that it is an archive holding the
//! whole chain, how many blocks it has served. Where a node chooses whom to ask for a block it
//! goes by what it observed instead: how many blocks the peer sent that passed their check
//! against the header chain, and whether it missed lately (answered `BlockNotFound`, stayed
//! silent past the timeout, or sent bytes that failed the check).
//!
//! # Demotion
//!
//! A peer that misses is *demoted*: asked after every source in good standing until its
//! demotion ends. Misses are counted in *rounds*: fetches sent together to a peer that cannot
//! answer fail together, so a miss of a fetch sent before the peer's last noted miss belongs
//! to that round and adds nothing, and so does a miss of a fetch during which the peer served
//! us another block (it is busy, not missing: a fetch that times out behind others on a
//! congested link says nothing against its source). The first round demotes a peer for
//! `repair_request_timeout_ms`, each further round in a row doubles it (at most 64 ×); a block
//! it serves ends the demotion and clears its misses. A peer that has served us before is
//! forgiven its first round (a block it is still fetching itself, a hiccup); one that never
//! served us is not. So:
//!
//! - a silent peer claiming to be an archive costs one timeout: its first fetches time out
//!   together and it is asked last from then on, probed again after 1, 2, 4 … timeouts;
//! - in a cluster that has just formed, where every holder is still filling itself, a holder
//!   is asked once, answers `BlockNotFound` and is asked after the archives (the misses are a
//!   few per member, not two per block);
//! - a holder that has been serving and misses once stays first.
//!
//! The book is bounded ([`OBSERVED_MAX`] peers); the peer seen longest ago is forgotten first.

use std::collections::HashMap;

use crate::base::NodeId;

/// Peers the book remembers at most.
pub(crate) const OBSERVED_MAX: usize = 256;

/// Longest demotion, in multiples of the first.
const DEMOTION_DOUBLINGS_MAX: u8 = 6;

/// What one peer did for this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// Blocks it sent that passed their check.
    pub(crate) served: u64,
    /// Rounds of misses since the last block it served.
    misses: u8,
    /// When its last miss was noted.
    missed_at_ms: u64,
    /// Asked after the peers in good standing until then.
    demoted_until_ms: u64,
    /// When it last served a block.
    served_at_ms: u64,
    /// When anything was last noted of it.
    seen_ms: u64,
}

/// Every peer's [`Record`]. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    peers: HashMap<NodeId, Record>,
}

impl Observed {
    /// `peer` sent a block that passed its check.
    pub(crate) fn served(&mut self, peer: NodeId, now_ms: u64) {
        let record = self.entry(peer, now_ms);
        record.served = record.served.saturating_add(1);
        record.served_at_ms = now_ms;
        record.misses = 0;
        record.demoted_until_ms = 0;
    }

    /// A fetch sent to `peer` at `sent_ms` came back without the block. `demotion_ms`: how
    /// long a first round demotes it.
    pub(crate) fn missed(&mut self, peer: NodeId, sent_ms: u64, now_ms: u64, demotion_ms: u64) {
        let record = self.entry(peer, now_ms);
        if record.served > 0 && record.served_at_ms >= sent_ms {
            return; // it served us since: busy, not missing
        }
        if record.misses > 0 && sent_ms < record.missed_at_ms {
            return; // the same round
        }
        record.misses = record.misses.saturating_add(1);
        record.missed_at_ms = now_ms;
        let rounds = if record.served > 0 {
            // Forgiven its first round: it has served before.
            record.misses - 1
        } else {
            record.misses
        };
        if rounds > 0 {
            let doublings = (rounds - 1).min(DEMOTION_DOUBLINGS_MAX);
            record.demoted_until_ms = now_ms.saturating_add(demotion_ms << doublings);
        }
    }

    /// Whether `peer` is demoted at `now_ms`.
    pub(crate) fn demoted(&self, peer: &NodeId, now_ms: u64) -> bool {
        self.demoted_until(peer, now_ms).is_some()
    }

    /// Until when `peer` is demoted, if it is at `now_ms`.
    pub(crate) fn demoted_until(&self, peer: &NodeId, now_ms: u64) -> Option<u64> {
        self.peers
            .get(peer)
            .map(|r| r.demoted_until_ms)
            .filter(|until| *until > now_ms)
    }

    /// Blocks `peer` sent that passed their check (0 for a peer never seen).
    pub(crate) fn served_by(&self, peer: &NodeId) -> u64 {
        self.peers.get(peer).map_or(0, |r| r.served)
    }

    /// Clears the misses of `peers` (members whose lacks, noted while they filled themselves,
    /// say nothing of the next repair); what they served stays.
    pub(crate) fn forgive<'a>(&mut self, peers: impl IntoIterator<Item = &'a NodeId>) {
        for peer in peers {
            if let Some(record) = self.peers.get_mut(peer) {
                record.misses = 0;
                record.demoted_until_ms = 0;
            }
        }
    }

    /// The record of `peer`, made if new (forgetting the peer seen longest ago when full).
    fn entry(&mut self, peer: NodeId, now_ms: u64) -> &mut Record {
        if !self.peers.contains_key(&peer) && self.peers.len() >= OBSERVED_MAX {
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(id, r)| (r.seen_ms, **id))
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.peers.remove(&oldest);
            }
        }
        let record = self.peers.entry(peer).or_default();
        record.seen_ms = now_ms;
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::from_seed(n)
    }

    #[test]
    fn a_peer_that_never_served_is_demoted_at_its_first_miss_and_the_round_counts_once() {
        let mut book = Observed::default();
        // Four fetches sent at 0 time out together at 500.
        for _ in 0..4 {
            book.missed(id(1), 0, 500, 500);
        }
        assert!(book.demoted(&id(1), 999));
        assert!(
            !book.demoted(&id(1), 1_000),
            "one round: one timeout's demotion"
        );
        // Probed again at 1,000, silent again: twice as long.
        book.missed(id(1), 1_000, 1_500, 500);
        assert!(book.demoted(&id(1), 2_499));
        assert!(!book.demoted(&id(1), 2_500));
        // The longest demotion is 64 timeouts.
        for round in 0..20u64 {
            let t = 10_000 + round * 100_000;
            book.missed(id(1), t, t + 500, 500);
        }
        let last = 10_000 + 19 * 100_000 + 500;
        assert!(book.demoted(&id(1), last + 64 * 500 - 1));
        assert!(!book.demoted(&id(1), last + 64 * 500));
    }

    #[test]
    fn a_peer_that_served_is_forgiven_one_round_and_a_served_block_ends_a_demotion() {
        let mut book = Observed::default();
        book.served(id(2), 10);
        book.missed(id(2), 20, 30, 500);
        assert!(!book.demoted(&id(2), 31), "a hiccup of a peer that served");
        book.missed(id(2), 40, 50, 500);
        assert!(book.demoted(&id(2), 51), "two rounds in a row");
        // A fetch sent before a block it served, timing out after: busy, not missing.
        book.served(id(2), 60);
        book.missed(id(2), 55, 70, 500);
        book.missed(id(2), 56, 71, 500);
        assert!(!book.demoted(&id(2), 72));
        book.served(id(2), 80);
        assert!(!book.demoted(&id(2), 81));
        assert_eq!(book.served_by(&id(2)), 3);
        assert_eq!(book.served_by(&id(3)), 0);
        book.missed(id(4), 0, 10, 500);
        book.forgive([id(4)].iter());
        assert!(!book.demoted(&id(4), 11));
    }

    #[test]
    fn the_book_is_bounded_and_forgets_the_peer_seen_longest_ago() {
        let mut book = Observed::default();
        for n in 0..OBSERVED_MAX as u64 + 10 {
            book.served(id(n), n);
        }
        assert_eq!(book.peers.len(), OBSERVED_MAX);
        assert_eq!(book.served_by(&id(0)), 0, "the oldest went first");
        assert_eq!(book.served_by(&id(OBSERVED_MAX as u64 + 9)), 1);
    }
}
