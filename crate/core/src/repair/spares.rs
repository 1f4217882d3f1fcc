//! Spare replicas (S12, third rule): blocks a member holds but its current view no longer
//! assigns to it, kept while the new holders may still fetch them from here, and deleted once
//! they have.
//!
//! # Overview
//!
//! After a view change (a cluster grows, a member is replaced, the members are renumbered) a
//! member keeps every block it no longer must hold as a *spare*. It deletes it by one of two
//! paths:
//!
//! - **Confirmed.** A member whose repair has nothing left to fetch under its view (nothing
//!   queued, in flight, waiting for a source or being stored, and every height the placement
//!   gives it held and trusted) says so once to every other member of the view:
//!   [`Message::ShardHeld`], naming the view by its stamp. Each member records which members
//!   said so under its *current* view — a confirmation naming another view (another cluster,
//!   epoch or member list), or from a node outside the view, does not count; a newer view
//!   starts the record afresh, and one that arrives before the view it names is kept until
//!   this member adopts that view (bounded, [`EARLY_MAX`]). A spare height is deleted as soon
//!   as every one of its holders under the current view has confirmed and this member's own
//!   fetching is idle; heights go in several steps as confirmations arrive. A member that
//!   learns a newer view confirms again once it holds its shard under that one.
//! - **Timed out** (the fallback, as before confirmations existed): once the view has held
//!   for `Config::evict_spares_after_ms` and this member's own fetching is idle, every spare
//!   goes, confirmed or not. It covers holders that never confirm (a confirmation lost on the
//!   way, a member on an older version, a block nobody can give) — and it deletes a spare
//!   whether or not its new holder stored the block, which issue 16 is to settle.
//!
//! A confirmation is a member's word, as the rest of the cluster protocol is: a member that
//! says it holds blocks it does not can make others drop spares early, as one that stores
//! nothing can lose its share.

use std::collections::VecDeque;

use super::Repair;
use crate::base::NodeId;
use crate::io::{Output, StorageCommand};
use crate::shared::{Role, Shared};
use crate::wire::{Message, ViewStamp, MAX_VIEW_MEMBERS};

/// Most confirmations of views this member has not adopted yet that it keeps.
pub(crate) const EARLY_MAX: usize = MAX_VIEW_MEMBERS;

// A view's members fit one bit each in a `u64`.
const _: () = assert!(MAX_VIEW_MEMBERS <= 64);

/// Which members of this member's view said they hold their whole shard under it.
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    /// The view the record is about: this member's view when it was last brought up to date
    /// (`None` outside a cluster).
    view: Option<ViewStamp>,
    /// Member numbers (under `view`) that confirmed, one bit each.
    members: u64,
    /// Whether this member confirmed under `view` itself.
    sent: bool,
    /// What the last deletion by confirmation saw: (`members`, blocks held, chain tip). It
    /// runs again only when one of them changed.
    swept: Option<(u64, usize, u32)>,
    /// Confirmations naming a newer view of our cluster than ours, oldest first: counted if
    /// this member adopts exactly that view. One per sender, at most [`EARLY_MAX`].
    early: VecDeque<(NodeId, ViewStamp)>,
}

impl Repair {
    /// After every repair step: confirm our shard if it is whole, then delete the spares the
    /// confirmations allow, then those whose time is up.
    pub(crate) fn settle_spares(&mut self, cx: &mut Shared) {
        self.follow_view(cx);
        self.confirm_shard(cx);
        self.evict_confirmed(cx);
        self.evict_spares(cx);
    }

    /// Which members of this member's current view said (`ShardHeld`) they hold their whole
    /// shard under it, one bit per member number, this member's own bit set once it said so
    /// itself. 0 outside a cluster or before anyone did.
    pub(crate) fn shard_held_members(&self, cx: &Shared) -> u64 {
        let (Some(m), c) = (cx.membership(), &self.confirmations) else {
            return 0;
        };
        if c.view != cx.stamp() {
            return 0;
        }
        c.members | if c.sent { 1 << m.number } else { 0 }
    }

    /// `from` says it holds its whole shard under `view`.
    pub(crate) fn on_shard_held(&mut self, cx: &mut Shared, from: NodeId, view: ViewStamp) {
        self.follow_view(cx);
        let Some(m) = cx.membership() else {
            cx.stats.messages_ignored += 1;
            return;
        };
        let ours = self.confirmations.view;
        if Some(view) == ours {
            let Some(number) = m.number_of(&from) else {
                cx.stats.messages_ignored += 1;
                return;
            };
            self.confirmations.members |= 1 << number;
            return self.evict_confirmed(cx);
        }
        if view.cluster == m.view.cluster && view.epoch > m.view.epoch {
            // The view it names may reach us after its confirmation does.
            let early = &mut self.confirmations.early;
            early.retain(|(id, _)| *id != from);
            if early.len() >= EARLY_MAX {
                early.pop_front();
            }
            early.push_back((from, view));
            return;
        }
        cx.stats.messages_ignored += 1;
    }

    /// Brings the record up to date with our view: a different view starts it afresh, with
    /// the early confirmations that name it.
    fn follow_view(&mut self, cx: &Shared) {
        let stamp = cx.stamp();
        let c = &mut self.confirmations;
        if c.view == stamp {
            return;
        }
        c.view = stamp;
        c.members = 0;
        c.sent = false;
        c.swept = None;
        let (Some(stamp), Some(m)) = (stamp, cx.membership()) else {
            c.early.clear();
            return;
        };
        for (from, _) in c.early.iter().filter(|(_, view)| *view == stamp) {
            if let Some(number) = m.number_of(from) {
                c.members |= 1 << number;
            }
        }
        c.early
            .retain(|(_, view)| view.cluster == stamp.cluster && view.epoch > stamp.epoch);
    }

    /// Tells the other members, once per view, that this member holds its whole shard.
    fn confirm_shard(&mut self, cx: &mut Shared) {
        if self.confirmations.sent || !self.holds_whole_shard(cx) {
            return;
        }
        let (Some(view), Some(m)) = (self.confirmations.view, cx.membership()) else {
            return;
        };
        self.confirmations.sent = true;
        let others: Vec<NodeId> = m
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != cx.id)
            .collect();
        for to in others {
            cx.send(to, Message::ShardHeld { view });
        }
    }

    /// Whether every height the placement gives this member is held and trusted, and nothing
    /// is being fetched or stored. A height whose write failed is missing without being
    /// queued (the next rescan queues it): the scan finds it.
    fn holds_whole_shard(&mut self, cx: &mut Shared) -> bool {
        let busy = self.list_request.is_some()
            || self.rescan_needed
            || self.missing_count() != 0
            || self.busy.len() != 0
            || self.deferred.keys().any(|h| !self.held_good(*h));
        if busy || !matches!(cx.role, Role::Member(_)) {
            return false;
        }
        let Some(tip) = cx.headers.as_ref().and_then(|h| h.tip_height()) else {
            return false;
        };
        (0..=tip).all(|height| self.held_good(height) || !cx.must_hold(height))
    }

    /// Deletes the spares whose holders under the current view all confirmed, once this
    /// member's own fetching is idle.
    fn evict_confirmed(&mut self, cx: &mut Shared) {
        debug_assert_eq!(self.confirmations.view, cx.stamp(), "follow_view first");
        let idle = self.queue.is_empty() && self.in_flight.is_empty() && self.parked.is_empty();
        let confirmed = self.confirmations.members;
        let (Role::Member(m), true) = (&cx.role, idle && confirmed != 0) else {
            return;
        };
        let Some(headers) = cx.headers.clone() else {
            return;
        };
        let Some(tip) = headers.tip_height() else {
            return;
        };
        let seen = (confirmed, self.held.len(), tip);
        if self.confirmations.swept == Some(seen) {
            return;
        }
        self.confirmations.swept = Some(seen);
        let mut holders = std::mem::take(&mut cx.scratch);
        let mut spares = Vec::new();
        for height in 0..=tip {
            if !self.held.contains(height) {
                continue;
            }
            let Some(block_hash) = headers.block_hash_at(height) else {
                continue;
            };
            cx.placer
                .holders(&block_hash, height, &m.slots, &mut holders);
            let mine = holders.contains(&m.number);
            if !mine && holders.iter().all(|n| confirmed & (1 << n) != 0) {
                spares.push((height, block_hash));
            }
        }
        cx.scratch = holders;
        for (height, block_hash) in spares {
            self.forget(height);
            cx.stats.spares_evicted += 1;
            cx.stats.spares_evicted_confirmed += 1;
            let request_id = cx.fresh_id();
            cx.push(Output::Storage(StorageCommand::Delete {
                request_id,
                block_hash,
            }));
        }
    }

    /// When spare blocks may be evicted under the current view by the timeout, if that is
    /// still to come.
    pub(super) fn eviction_due(&self, cx: &Shared) -> Option<u64> {
        let Role::Member(m) = &cx.role else {
            return None;
        };
        let after = cx.config.evict_spares_after_ms?;
        if self.evicted_for == Some((m.view.cluster, m.view.epoch)) {
            return None;
        }
        Some(m.view_since_ms.saturating_add(after))
    }

    /// The timeout path: once the view has held `evict_spares_after_ms`, delete every block
    /// this member no longer must hold.
    fn evict_spares(&mut self, cx: &mut Shared) {
        let Some(due) = self.eviction_due(cx) else {
            return;
        };
        let idle = self.queue.is_empty() && self.in_flight.is_empty() && self.parked.is_empty();
        if due > cx.now_ms || !idle {
            return;
        }
        let Role::Member(m) = &cx.role else { return };
        self.evicted_for = Some((m.view.cluster, m.view.epoch));
        let Some(tip) = cx.headers.as_ref().and_then(|h| h.tip_height()) else {
            return;
        };
        for height in 0..=tip {
            if !self.held.contains(height) || cx.must_hold(height) {
                continue;
            }
            let Some(block_hash) = cx.headers.as_ref().and_then(|h| h.block_hash_at(height)) else {
                continue;
            };
            self.forget(height);
            cx.stats.spares_evicted += 1;
            let request_id = cx.fresh_id();
            cx.push(Output::Storage(StorageCommand::Delete {
                request_id,
                block_hash,
            }));
        }
    }
}

#[cfg(test)]
mod tests;
