//! Spare replicas (S12, third rule): blocks a member holds but its current view no longer
//! assigns to it, kept while the new holders may still fetch them from here, and deleted once
//! every one of their holders has *proved* it holds them.
//!
//! # Overview
//!
//! After a view change (a cluster grows, a member is replaced, the members are renumbered) a
//! member keeps every block it no longer must hold as a *spare*. It deletes one only once every
//! holder of the block under the current view passed a challenge on it (see
//! [`super::holding`]) and this member's own fetching is idle. Holders are challenged once
//! they claim the block:
//!
//! - **Confirmed shards.** A member whose repair has nothing left to fetch under its view
//!   (nothing queued, in flight, waiting for a source or being stored, and every height the
//!   placement gives it held and trusted) says so once to every other member of the view:
//!   [`Message::ShardHeld`], naming the view by its stamp. Each member records which members
//!   said so under its *current* view — a confirmation naming another view (another cluster,
//!   epoch or member list), or from a node outside the view, does not count; a newer view
//!   starts the record afresh, and one that arrives before the view it names is kept until
//!   this member adopts that view (bounded, [`EARLY_MAX`]). A confirmation covers the heights
//!   up to this member's tip when it came (a block mined since is claimed by `BlockStored`).
//!   A member that learns a newer view confirms again once it holds its shard under that one.
//! - **Unclaimed holders**, once the view has held `Config::challenge_unclaimed_after_ms`: a
//!   confirmation may be lost on the way, or a member may never hold its whole shard (a block
//!   nobody can give) and still hold the blocks in question. They are challenged too.
//!
//! A confirmation alone deletes nothing: a member that says it holds blocks it does not
//! fails its challenges, and the spares stay (issue 16). There is no timeout after which
//! unproved spares go.

use std::collections::VecDeque;

use super::Repair;
use crate::base::NodeId;
use crate::shared::{Role, Shared};
use crate::wire::{Message, ViewStamp, MAX_VIEW_MEMBERS};

/// Most confirmations of views this member has not adopted yet that it keeps.
pub(crate) const EARLY_MAX: usize = MAX_VIEW_MEMBERS;

// A view's members fit one bit each in a `u64`.
const _: () = assert!(MAX_VIEW_MEMBERS <= 64);

/// Which members of this member's view said they hold their whole shard under it.
#[derive(Debug)]
pub(crate) struct Confirmations {
    /// The view the record is about: this member's view when it was last brought up to date
    /// (`None` outside a cluster).
    view: Option<ViewStamp>,
    /// Member numbers (under `view`) that confirmed, one bit each.
    members: u64,
    /// Per member number: the height below which its confirmation covers the shard (one past
    /// our chain's tip when it came).
    below: [u32; MAX_VIEW_MEMBERS],
    /// Whether this member confirmed under `view` itself.
    sent: bool,
    /// Confirmations naming a newer view of our cluster than ours, oldest first: counted if
    /// this member adopts exactly that view. One per sender, at most [`EARLY_MAX`].
    early: VecDeque<(NodeId, ViewStamp)>,
}

impl Default for Confirmations {
    fn default() -> Self {
        Confirmations {
            view: None,
            members: 0,
            below: [0; MAX_VIEW_MEMBERS],
            sent: false,
            early: VecDeque::new(),
        }
    }
}

impl Confirmations {
    /// Whether member `number` of the view `stamp` confirmed its shard under it, covering
    /// `height`. Numbers are the record's view's: under any other view (the node adopted a new
    /// one and the record has not followed yet) nothing is covered.
    pub(super) fn covers(&self, stamp: Option<ViewStamp>, number: usize, height: u32) -> bool {
        self.view.is_some()
            && self.view == stamp
            && number < MAX_VIEW_MEMBERS
            && self.members & (1 << number) != 0
            && height < self.below[number]
    }

    /// Member `number` confirmed; `tip` is our chain's tip now.
    fn record(&mut self, number: usize, tip: Option<u32>) {
        self.members |= 1 << number;
        self.below[number] = tip.map_or(0, |tip| tip.saturating_add(1));
    }
}

impl Repair {
    /// After every repair step: confirm our shard if it is whole, then challenge the holders
    /// of our spares and delete the spares whose holders all proved they hold them.
    pub(crate) fn settle_spares(&mut self, cx: &mut Shared) {
        self.follow_view(cx);
        self.confirm_shard(cx);
        self.prove_spares(cx);
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
            let tip = cx.headers.as_ref().and_then(|h| h.tip_height());
            self.confirmations.record(number, tip);
            return self.prove_spares(cx);
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
        let (Some(stamp), Some(m)) = (stamp, cx.membership()) else {
            c.early.clear();
            return;
        };
        let tip = cx.headers.as_ref().and_then(|h| h.tip_height());
        let early: Vec<NodeId> = c
            .early
            .iter()
            .filter(|(_, view)| *view == stamp)
            .map(|(from, _)| *from)
            .collect();
        for from in early {
            if let Some(number) = m.number_of(&from) {
                c.record(number, tip);
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
}

#[cfg(test)]
mod tests;
