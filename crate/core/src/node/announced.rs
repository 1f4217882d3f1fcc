//! Announced new blocks (S14, S15): what a member does when a block source tells it of a new
//! block (`Message::BlockAnnounce`, the header alone).
//!
//! # Overview
//!
//! A block source (the relay's archive node, `NewBlockConfig::announce`) sends each new
//! block's header to every light node connected to it, at once. Each node's shell gives the
//! header to its header sync, which verifies and accepts it (the node then gets the longer
//! chain, [`Input::Headers`](super::Input::Headers)), and the announcement itself to the node.
//! Once the announced block is on the node's best header chain, a member decides by placement
//! who brings its bytes in, so that they leave the source once per cluster (routed) or once
//! per holder (self-selected), never once per light node:
//!
//! - **Routed (S14):** the cluster's *router* for the block is its first holder in placement
//!   order — every member computes the same one from the same view, and the router's download
//!   is one it needs anyway. The router asks the source (`GetBlock`), stores the block and sends
//!   it to the other holders (`NewBlockOutput::SendBlock`, `Message::NewBlock`); the other
//!   holders wait for it.
//! - **Self-selected (S15):** every holder asks the source itself.
//!
//! Either way the block then goes through new-block storage (`serve::newblock`): stored,
//! announced `BlockStored`, counted to P, re-driven. Repair's rescan leaves a height the
//! new-block path is bringing in alone (`Repair::defer`) for `repair_request_timeout_ms`, so
//! the block is not downloaded twice at once; if the source answers `BlockNotFound` or a bad
//! block, or nothing comes in time, repair fetches it as any missing block. A block whose
//! headers came by the poll before its announcement is repair's already, and the announcement
//! changes nothing.
//!
//! Announcements are hints, not trusted: only a connected archive's count, the header is
//! checked by the header sync, the bytes against the header chain. Both tables are bounded.

use std::collections::{HashMap, VecDeque};

use super::{Node, NodeId};
use crate::chain::{BlockHash, Header};
use crate::serve::newblock::StorageMode;
use crate::shared::Role;
use crate::wire::Message;

/// Announced blocks not yet on the header chain, kept at most this many.
const PENDING_MAX: usize = 64;
/// An announcement whose header has not joined the chain by then is forgotten.
const PENDING_TTL_MS: u64 = 60_000;
/// Most fetches from the block source in flight.
const FETCHES_MAX: usize = 64;

/// A fetch of an announced block from its source.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    source: NodeId,
    height: u32,
    deadline_ms: u64,
}

/// The node's announced blocks: waiting for their header to join the chain, and being
/// fetched from the source.
#[derive(Debug, Default)]
pub(crate) struct Announced {
    /// (block, its source, when announced), oldest first.
    pending: VecDeque<(BlockHash, NodeId, u64)>,
    /// Fetches from the source by request id.
    fetches: HashMap<u64, Fetch>,
}

impl Node {
    /// A peer announced a new block. A member remembers it until its header is on the best
    /// chain (now, or at a later [`Input::Headers`](super::Input::Headers)), then acts on it.
    pub(crate) fn on_block_announce(&mut self, from: NodeId, header: Header) {
        let cx = &mut self.shared;
        let from_source = cx
            .peers
            .get(&from)
            .is_some_and(|p| p.connected && p.record.as_ref().is_some_and(|r| r.archive));
        if cx.config.archive || !matches!(cx.role, Role::Member(_)) || !from_source {
            cx.stats.messages_ignored += 1;
            return;
        }
        cx.stats.announcements_received += 1;
        let block_hash = header.block_hash();
        let pending = &mut self.announced.pending;
        if pending.iter().any(|(h, _, _)| *h == block_hash) {
            return;
        }
        if pending.len() >= PENDING_MAX {
            pending.pop_front();
        }
        pending.push_back((block_hash, from, cx.now_ms));
        self.take_announced();
    }

    /// Acts on every announced block now on the best header chain (after an announcement,
    /// and when the node adopts a longer chain, before repair rescans it).
    pub(crate) fn take_announced(&mut self) {
        let now_ms = self.shared.now_ms;
        let Some(view) = self.shared.headers.clone() else {
            return;
        };
        let mut ready = Vec::new();
        self.announced
            .pending
            .retain(
                |(block_hash, source, at_ms)| match view.height_of(block_hash) {
                    Some(height) => {
                        ready.push((*block_hash, height, *source));
                        false
                    }
                    None => now_ms.saturating_sub(*at_ms) < PENDING_TTL_MS,
                },
            );
        for (block_hash, height, source) in ready {
            self.bring_in(block_hash, height, source);
        }
    }

    /// Decides by placement whether this member asks the source for an announced block,
    /// waits for it from the router, or has nothing to do with it.
    fn bring_in(&mut self, block_hash: BlockHash, height: u32, source: NodeId) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        if self.repair.has_or_fetches(height) {
            return;
        }
        let mut holders = std::mem::take(&mut cx.scratch);
        cx.placer
            .holders(&block_hash, height, &m.slots, &mut holders);
        let me = m.number;
        let is_holder = holders.contains(&me);
        let router = holders.first() == Some(&me);
        cx.scratch = holders;
        let fetch = match cx.config.serve.new_blocks.mode {
            StorageMode::Routed => router,
            StorageMode::SelfSelected => is_holder,
        };
        let until_ms = cx.now_ms + cx.config.repair_request_timeout_ms;
        if fetch {
            let now_ms = cx.now_ms;
            self.announced.fetches.retain(|_, f| f.deadline_ms > now_ms);
            if self.announced.fetches.len() >= FETCHES_MAX {
                return; // repair's then
            }
            let request_id = cx.fresh_id();
            self.announced.fetches.insert(
                request_id,
                Fetch {
                    source,
                    height,
                    deadline_ms: until_ms,
                },
            );
            cx.stats.new_blocks_requested += 1;
            cx.send(
                source,
                Message::GetBlock {
                    request_id,
                    block_hash,
                },
            );
            self.repair.defer(cx, height, until_ms);
        } else if is_holder {
            // Routed: the router sends it (and re-drives it); repair steps in after that.
            self.repair.defer(cx, height, until_ms);
        }
    }

    /// The source's answer to one of our fetches of an announced block: `true` if it was one
    /// (a `BlockData` goes to new-block storage as from the block source; a `BlockNotFound`
    /// hands the height to repair).
    pub(crate) fn on_announced_answer(&mut self, from: NodeId, message: &Message) -> bool {
        let request_id = match message {
            Message::BlockData { request_id, .. } | Message::BlockNotFound { request_id } => {
                *request_id
            }
            _ => return false,
        };
        match self.announced.fetches.get(&request_id) {
            Some(f) if f.source == from => {}
            _ => return false,
        }
        let fetch = self
            .announced
            .fetches
            .remove(&request_id)
            .expect("just found");
        let rejected_before = self.shared.stats.blocks_rejected;
        if let Message::BlockData { block, .. } = message {
            // Verified, stored if held here, routed to the other holders (S14).
            if let Some(bytes) = self.on_serve_new_block(block.clone()) {
                self.repair.on_new_block(&mut self.shared, bytes);
            }
        }
        let failed = matches!(message, Message::BlockNotFound { .. })
            || self.shared.stats.blocks_rejected != rejected_before;
        if failed {
            self.shared.stats.fetch_failures += 1;
            self.repair.undefer(&mut self.shared, fetch.height);
        }
        true
    }
}
