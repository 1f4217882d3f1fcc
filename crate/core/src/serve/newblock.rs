//! New blocks (S14, S15): who stores a new block, the "stored" announcements, re-driving
//! missing replicas, and what a reorg means for the shard.
//!
//! # Overview
//!
//! Two modes ([`StorageMode`]):
//!
//! - **Routed (S14).** The member that first learns of a block from the block source decides
//!   by placement which members must hold it and sends it to them
//!   ([`NewBlockOutput::SendBlock`]); a member that receives it from another member stores it
//!   if it is a holder and does not route it again.
//! - **Self-selected (S15).** Every member learns of the block from the source, stores it if
//!   placement says so and ignores it otherwise.
//!
//! In both, a holder that has stored the block tells the cluster
//! ([`NewBlockOutput::Announce`]). Every member counts announcements from the block's holders;
//! after `replicas` distinct ones (or all holders, if fewer) the block is *safely stored*
//! ([`NewBlockOutput::SafelyStored`]). An announcement is a claim: it stops re-drives and is
//! reported, but deletes nothing — a copy goes only once its holders proved they hold it, and
//! an announcement makes its sender challengeable on that block (`crate::repair::holding`). If announcements are missing `redrive_after_ms` after
//! the block was seen, the block is re-driven: sent again to the holders that have not
//! announced, by the member that routed it (S14) or by the first holder in placement order that
//! announced (S15), at most `redrive_budget` times; then [`NewBlockOutput::Underreplicated`]
//! hands the block to repair.
//!
//! # How a new block enters a cluster
//!
//! The block source does not send every light node the block: that would cost each node the
//! whole chain's bytes and defeat sharding. It announces each new block at once by its header
//! alone (`Message::BlockAnnounce`, 82 bytes on the wire; [`NewBlockConfig::announce`], set by
//! the relay's archive) to every light node connected to it. The header goes to each node's
//! header sync (accepted at once if it extends the tip); once it is on a member's best chain,
//! the member decides by placement who brings the bytes in (`node::announced`): routed, the
//! block's first holder in placement order — one per cluster, the same on every member —
//! fetches it from the source (`GetBlock`) and hands it here as [`Source::BlockSource`], which
//! sends it to the other holders; self-selected, every holder fetches it from the source
//! itself. So the block's bytes leave the source once per cluster (S14) or once per holder
//! (S15). The simulator's world hands blocks to members itself (one per cluster, or all), the
//! same entry point.
//!
//! Every block is checked before anything else: it must decode (size-bounded), match its
//! header ([`Block::check`]) and be on this node's best header chain, which also gives its
//! height.
//!
//! Reorgs ([`NewBlocks::handle_chain_change`]): held blocks that left the best chain are
//! dropped ([`NewBlockOutput::Drop`]: the node deletes them from shard, index and cache).
//! Blocks that joined are not this component's business: the node's repair rescans the new
//! chain against placement and fetches what this member must hold (S11).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use super::reorg::ChainChange;
use super::BestChain;
use crate::chain::{Block, BlockError, BlockHash, DecodeError};

/// Routed (S14) or self-selected (S15) storage of new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageMode {
    /// The first member to learn of a block sends it to its holders (S14).
    Routed,
    /// Every member learns of every block and stores it if placement says so (S15).
    SelfSelected,
}

/// Configuration of new-block storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewBlockConfig {
    /// Routed (S14) or self-selected (S15).
    pub mode: StorageMode,
    /// Announcements from distinct holders after which a block is safely stored (P; capped at
    /// the number of holders placement gives).
    pub replicas: usize,
    /// Time after first seeing a block (and between re-drives) before missing replicas are
    /// re-driven.
    pub redrive_after_ms: u64,
    /// Re-drives per block before it is handed to repair as under-replicated.
    pub redrive_budget: u32,
    /// Blocks tracked at once (the oldest is forgotten beyond that).
    pub max_tracked_blocks: usize,
    /// Bytes of block data kept for re-drives, across all tracked blocks.
    pub max_pending_bytes: usize,
    /// Most outputs queued before the node drains them.
    pub max_queued_outputs: usize,
    /// A block source (an archive fed new blocks): announce each new block it stores to every
    /// light node connected to it (`Message::BlockAnnounce`, the header alone). Off by default:
    /// the relay turns it on; the simulator's world hands blocks out itself.
    pub announce: bool,
}

impl Default for NewBlockConfig {
    fn default() -> Self {
        Self {
            mode: StorageMode::Routed,
            replicas: 3,
            redrive_after_ms: 5_000,
            redrive_budget: 3,
            max_tracked_blocks: 256,
            max_pending_bytes: 32 * 1024 * 1024,
            max_queued_outputs: 4096,
            announce: false,
        }
    }
}

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<P> {
    /// The block source (a relay's feed): this member may be the first to learn of it.
    BlockSource,
    /// Another member sent it (routed storage or a re-drive).
    Member(P),
}

/// What the node must do for new blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewBlockOutput<P> {
    /// Store the block in this node's shard (and index it), then call
    /// [`NewBlocks::handle_stored`].
    Store {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its raw bytes (verified).
        bytes: Arc<[u8]>,
    },
    /// Send the block to a member that must hold it.
    SendBlock {
        /// The holder.
        to: P,
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
        /// Its raw bytes.
        bytes: Arc<[u8]>,
    },
    /// Tell every member that this node stored the block.
    Announce {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// Delete a held block that left the best chain (shard, index, cache).
    Drop {
        /// The block.
        block_hash: BlockHash,
    },
    /// `holders` holders announced the block: it is safely stored.
    SafelyStored {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
        /// Distinct holders that announced.
        holders: usize,
    },
    /// Re-drives ran out with only `announced` holders: repair must take over.
    Underreplicated {
        /// The block.
        block_hash: BlockHash,
        /// Its height.
        height: u32,
        /// Distinct holders that announced.
        announced: usize,
    },
}

/// Why a new block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewBlockError {
    /// The bytes are not a block.
    #[error("not a block: {0}")]
    Decode(#[from] DecodeError),
    /// The body does not match the header.
    #[error("block body is invalid: {0}")]
    Invalid(#[from] BlockError),
    /// The block is not on this node's best header chain (yet).
    #[error("block {0} is not on the best header chain")]
    NotInBestChain(BlockHash),
}

/// What new-block storage needs of the node.
pub struct Context<'a, P> {
    /// This node's best header chain.
    pub chain: &'a dyn BestChain,
    /// This node's own id.
    pub me: P,
    /// Placement: the members that must hold a block (hash, height).
    pub holders: &'a dyn Fn(&BlockHash, u32) -> Vec<P>,
}

#[derive(Debug)]
struct Tracked<P> {
    height: u32,
    holders: Vec<P>,
    announced: BTreeSet<P>,
    /// Kept for re-drives while the block is not safely stored (bounded in total).
    bytes: Option<Arc<[u8]>>,
    routed_by_me: bool,
    /// A local store is in flight or done.
    storing: bool,
    first_seen_ms: u64,
    next_redrive_ms: u64,
    redrives_left: u32,
}

/// New-block storage of one member. See the module docs.
#[derive(Debug)]
pub struct NewBlocks<P> {
    config: NewBlockConfig,
    tracked: HashMap<BlockHash, Tracked<P>>,
    /// Announcements for blocks not (yet) tracked here, bounded.
    early: BTreeMap<BlockHash, BTreeSet<P>>,
    /// Blocks recently settled (safe or given up), so a late copy starts nothing.
    settled: VecDeque<BlockHash>,
    pending_bytes: usize,
    outputs: VecDeque<NewBlockOutput<P>>,
}

impl<P: Copy + Eq + Hash + Ord> NewBlocks<P> {
    /// Nothing tracked yet.
    pub fn new(config: NewBlockConfig) -> Self {
        Self {
            config,
            tracked: HashMap::new(),
            early: BTreeMap::new(),
            settled: VecDeque::new(),
            pending_bytes: 0,
            outputs: VecDeque::new(),
        }
    }

    /// A block arrived from the block source or from a member. Verified first; then stored if
    /// this member holds it, and (routed mode, from the source) sent to its holders.
    pub fn handle_block(
        &mut self,
        now_ms: u64,
        source: Source<P>,
        bytes: &[u8],
        cx: &Context<'_, P>,
    ) -> Result<BlockHash, NewBlockError> {
        // The header first: a block off the best chain, or one already settled, costs one
        // header's hash, not a decoded and hashed body.
        let block_hash = super::cache::header_hash(bytes)?;
        let height = cx
            .chain
            .height_of(&block_hash)
            .ok_or(NewBlockError::NotInBestChain(block_hash))?;
        if self.settled.contains(&block_hash) {
            return Ok(block_hash);
        }
        let block = Block::decode(bytes)?;
        block.check()?;
        if let Some(t) = self.tracked.get_mut(&block_hash) {
            // Seen before: store if we hold it and have not (e.g. the first store failed).
            if t.holders.contains(&cx.me) && !t.storing {
                t.storing = true;
                let bytes: Arc<[u8]> = Arc::from(bytes);
                self.push(NewBlockOutput::Store {
                    block_hash,
                    height,
                    bytes,
                });
            }
            return Ok(block_hash);
        }
        let mut holders = (cx.holders)(&block_hash, height);
        let mut seen = BTreeSet::new();
        holders.retain(|p| seen.insert(*p));
        let bytes: Arc<[u8]> = Arc::from(bytes);
        let me_holder = holders.contains(&cx.me);
        let route = self.config.mode == StorageMode::Routed && source == Source::BlockSource;
        // Keep the bytes only where a re-drive may need them.
        let keep = (route || (self.config.mode == StorageMode::SelfSelected && me_holder))
            && self.pending_bytes + bytes.len() <= self.config.max_pending_bytes;
        if keep {
            self.pending_bytes += bytes.len();
        }
        let announced = self
            .early
            .remove(&block_hash)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| holders.contains(p))
            .collect();
        self.make_room();
        self.tracked.insert(
            block_hash,
            Tracked {
                height,
                holders: holders.clone(),
                announced,
                bytes: keep.then(|| bytes.clone()),
                routed_by_me: route,
                storing: me_holder,
                first_seen_ms: now_ms,
                next_redrive_ms: now_ms.saturating_add(self.config.redrive_after_ms),
                redrives_left: self.config.redrive_budget,
            },
        );
        if me_holder {
            self.push(NewBlockOutput::Store {
                block_hash,
                height,
                bytes: bytes.clone(),
            });
        }
        if route {
            for to in holders.into_iter().filter(|p| *p != cx.me) {
                self.push(NewBlockOutput::SendBlock {
                    to,
                    block_hash,
                    height,
                    bytes: bytes.clone(),
                });
            }
        }
        self.check_safe(&block_hash);
        Ok(block_hash)
    }

    /// This node's store of a block finished. On success the node announces it.
    pub fn handle_stored(&mut self, block_hash: &BlockHash, ok: bool, me: P) {
        let Some(t) = self.tracked.get_mut(block_hash) else {
            return;
        };
        if !ok {
            // A re-drive (or the block arriving again) will retry.
            t.storing = false;
            return;
        }
        let height = t.height;
        if t.holders.contains(&me) {
            t.announced.insert(me);
        }
        self.push(NewBlockOutput::Announce {
            block_hash: *block_hash,
            height,
        });
        self.check_safe(block_hash);
    }

    /// A member announced that it stored a block. Only the block's holders count.
    pub fn handle_announcement(&mut self, from: P, block_hash: &BlockHash) {
        match self.tracked.get_mut(block_hash) {
            Some(t) => {
                if t.holders.contains(&from) {
                    t.announced.insert(from);
                }
                self.check_safe(block_hash);
            }
            None if !self.settled.contains(block_hash) => {
                if !self.early.contains_key(block_hash)
                    && self.early.len() >= self.config.max_tracked_blocks
                {
                    self.early.pop_first();
                }
                let set = self.early.entry(*block_hash).or_default();
                // At most one announcement per holder; a cluster has at most a few dozen.
                if set.len() < 256 {
                    set.insert(from);
                }
            }
            None => {}
        }
    }

    /// Re-drives blocks whose announcements are overdue.
    pub fn handle_timeout(&mut self, now_ms: u64, me: P) {
        let mut due: Vec<BlockHash> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.next_redrive_ms <= now_ms)
            .map(|(h, _)| *h)
            .collect();
        // The map's order is random per process: sort, so outputs are reproducible.
        due.sort_unstable();
        for block_hash in due {
            let t = self.tracked.get_mut(&block_hash).expect("due block");
            let driver = match self.config.mode {
                StorageMode::Routed => t.routed_by_me,
                StorageMode::SelfSelected => {
                    t.holders.iter().find(|h| t.announced.contains(h)) == Some(&me)
                }
            };
            let height = t.height;
            if t.redrives_left == 0 {
                let announced = t.announced.len();
                self.settle(&block_hash);
                if driver {
                    self.push(NewBlockOutput::Underreplicated {
                        block_hash,
                        height,
                        announced,
                    });
                }
                continue;
            }
            t.redrives_left -= 1;
            t.next_redrive_ms = now_ms.saturating_add(self.config.redrive_after_ms);
            let Some(bytes) = t.bytes.clone() else {
                continue;
            };
            let missing: Vec<P> = t
                .holders
                .iter()
                .copied()
                .filter(|h| !t.announced.contains(h))
                .collect();
            let retry_store = missing.contains(&me) && !t.storing;
            if retry_store {
                t.storing = true;
                self.push(NewBlockOutput::Store {
                    block_hash,
                    height,
                    bytes: bytes.clone(),
                });
            }
            if driver {
                for to in missing.into_iter().filter(|p| *p != me) {
                    self.push(NewBlockOutput::SendBlock {
                        to,
                        block_hash,
                        height,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
    }

    /// The best chain changed: drop held blocks that left it (and stop tracking them). `held`
    /// says whether this node's shard has a block.
    pub fn handle_chain_change(&mut self, change: &ChainChange, held: &dyn Fn(&BlockHash) -> bool) {
        for (_, block_hash) in &change.disconnected {
            if let Some(t) = self.tracked.remove(block_hash) {
                self.release(&t);
            }
            if held(block_hash) {
                self.push(NewBlockOutput::Drop {
                    block_hash: *block_hash,
                });
            }
        }
    }

    /// The earliest re-drive deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.tracked.values().map(|t| t.next_redrive_ms).min()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<NewBlockOutput<P>> {
        self.outputs.pop_front()
    }

    /// Blocks being tracked (not yet safely stored).
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Bytes kept for re-drives.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn check_safe(&mut self, block_hash: &BlockHash) {
        let Some(t) = self.tracked.get(block_hash) else {
            return;
        };
        let needed = self.config.replicas.min(t.holders.len()).max(1);
        let count = t.announced.len();
        debug_assert!(t.announced.iter().all(|p| t.holders.contains(p)));
        if count >= needed {
            let height = t.height;
            self.settle(block_hash);
            self.push(NewBlockOutput::SafelyStored {
                block_hash: *block_hash,
                height,
                holders: count,
            });
        }
    }

    fn settle(&mut self, block_hash: &BlockHash) {
        if let Some(t) = self.tracked.remove(block_hash) {
            self.release(&t);
        }
        if self.settled.len() >= self.config.max_tracked_blocks.max(1) {
            self.settled.pop_front();
        }
        self.settled.push_back(*block_hash);
    }

    fn release(&mut self, t: &Tracked<P>) {
        if let Some(bytes) = &t.bytes {
            self.pending_bytes -= bytes.len();
        }
    }

    /// Forgets the oldest tracked block if the table is full.
    fn make_room(&mut self) {
        if self.tracked.len() < self.config.max_tracked_blocks.max(1) {
            return;
        }
        let oldest = self
            .tracked
            .iter()
            .min_by_key(|(h, t)| (t.first_seen_ms, **h))
            .map(|(h, _)| *h);
        if let Some(oldest) = oldest {
            self.settle(&oldest);
        }
    }

    fn push(&mut self, output: NewBlockOutput<P>) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(output);
    }
}

#[cfg(test)]
mod tests;
