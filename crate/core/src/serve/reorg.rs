//! What a change of the best header chain means for the blocks: which left the best chain
//! (to drop from shard, index and cache) and which joined it (to place and store). Serves
//! S14–S16: a reorganised chain must not keep serving blocks that left it.

use super::BestChain;
use crate::chain::BlockHash;

/// The blocks that left and joined the best chain between two views of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainChange {
    /// Height of the last block both views share (`None`: not even the genesis block, or a
    /// fork deeper than the search allowed).
    pub fork_height: Option<u32>,
    /// (height, hash) of blocks in the old best chain only, highest first.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// (height, hash) of blocks in the new best chain only, lowest first.
    pub connected: Vec<(u32, BlockHash)>,
    /// The fork is deeper than `max_depth` (or the lists were cut at it): the node should
    /// rescan what it holds instead of trusting the lists.
    pub truncated: bool,
}

/// Compares two views of the best chain, walking back from the lower tip at most `max_depth`
/// blocks to find the fork point. Lists are bounded by `max_depth` each.
pub fn diff(old: &dyn BestChain, new: &dyn BestChain, max_depth: u32) -> ChainChange {
    let mut change = ChainChange::default();
    let old_tip = old.tip_height();
    let new_tip = new.tip_height();
    let (Some(old_top), Some(new_top)) = (old_tip, new_tip) else {
        // One side is empty: everything (up to `max_depth`) on the other side changed.
        if let Some(tip) = new_tip {
            let start = tip.saturating_sub(max_depth.saturating_sub(1));
            change.truncated = start > 0;
            change.connected = (start..=tip)
                .filter_map(|h| new.block_hash_at(h).map(|b| (h, b)))
                .collect();
        }
        if let Some(tip) = old_tip {
            let stop = tip.saturating_sub(max_depth.saturating_sub(1));
            change.truncated |= stop > 0;
            change.disconnected = (stop..=tip)
                .rev()
                .filter_map(|h| old.block_hash_at(h).map(|b| (h, b)))
                .collect();
        }
        return change;
    };
    let common_top = old_top.min(new_top);
    let mut height = common_top;
    let mut steps = 0u32;
    // The first height that differs (or, when the search gave up, the lowest height looked at).
    let first_changed = loop {
        let shared = old.block_hash_at(height);
        if shared.is_some() && shared == new.block_hash_at(height) {
            change.fork_height = Some(height);
            break height + 1;
        }
        if height == 0 || steps >= max_depth {
            change.truncated = height > 0;
            break height;
        }
        height -= 1;
        steps += 1;
    };
    if let Some(tip) = old_tip {
        for h in (first_changed..=tip).rev() {
            if change.disconnected.len() as u32 >= max_depth {
                change.truncated = true;
                break;
            }
            if let Some(hash) = old.block_hash_at(h) {
                change.disconnected.push((h, hash));
            }
        }
    }
    if let Some(tip) = new_tip {
        for h in first_changed..=tip {
            if change.connected.len() as u32 >= max_depth {
                change.truncated = true;
                break;
            }
            if let Some(hash) = new.block_hash_at(h) {
                change.connected.push((h, hash));
            }
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::testutil::{block, chain_of, TestChain};

    #[test]
    fn extension_connects_only_the_new_blocks() {
        let blocks = chain_of(5, 0, 1);
        let old = TestChain::new(&blocks[..3]);
        let new = TestChain::new(&blocks);
        let change = diff(&old, &new, 100);
        assert_eq!(change.fork_height, Some(2));
        assert!(change.disconnected.is_empty());
        assert_eq!(
            change.connected,
            vec![(3, blocks[3].block_hash()), (4, blocks[4].block_hash())]
        );
        assert!(!change.truncated);
    }

    #[test]
    fn reorg_lists_both_sides() {
        let blocks = chain_of(5, 0, 1);
        let old = TestChain::new(&blocks);
        let mut new = TestChain::new(&blocks[..3]);
        let b3 = block(blocks[2].block_hash(), 3, 0, 2);
        let b4 = block(b3.block_hash(), 4, 0, 2);
        let b5 = block(b4.block_hash(), 5, 0, 2);
        for b in [&b3, &b4, &b5] {
            new.push(b.header);
        }
        let change = diff(&old, &new, 100);
        assert_eq!(change.fork_height, Some(2));
        assert_eq!(
            change.disconnected,
            vec![(4, blocks[4].block_hash()), (3, blocks[3].block_hash())]
        );
        assert_eq!(
            change.connected,
            vec![
                (3, b3.block_hash()),
                (4, b4.block_hash()),
                (5, b5.block_hash())
            ]
        );
        // Bounded: a depth limit of 1 cuts the walk and says so.
        assert!(diff(&old, &new, 1).truncated);
        // Nothing changed.
        assert_eq!(diff(&new, &new, 10).connected, vec![]);
    }

    #[test]
    fn from_empty_chain() {
        let blocks = chain_of(3, 0, 1);
        let change = diff(&TestChain::default(), &TestChain::new(&blocks), 10);
        assert_eq!(change.connected.len(), 3);
        assert_eq!(change.fork_height, None);
    }
}
