//! Virtual clusters: their id (S4), member numbers (S5), and the membership view that formation
//! (S1–S3, [`crate::formation`]) founds and liveness (S9–S10, [`crate::liveness`]) and
//! replacement (S12–S13, [`crate::repair::replacement`]) change. Pure data and functions: the
//! protocols that change a view live in those modules, and the node adopts the views they
//! propose (`node::membership`).
//!
//! # Overview
//!
//! A cluster's id is `sha256d("shoal/cluster" ‖ generation ‖ proposer ‖ founders)` over the
//! founding members sorted by id ([`cluster_id`]); every member recomputes it from the
//! [`ClusterGenesis`] a view carries and refuses a view whose id does not match. The id is
//! valid for `Config::cluster_ttl_ms`; then the members become ordinary nodes again and form a
//! new cluster (preferably with the same members, `generation + 1`).
//!
//! Membership changes keep the id and raise the view's `epoch`. Views are totally ordered by
//! [`view_order`] (epoch, then size, then digest), and every member adopts the greatest view it
//! hears of: members converge on one view after failures and partitions.
//!
//! # Who may change a view
//!
//! The cluster id is no secret (every hello and heartbeat stamp carries it, and a member
//! answers a stale stamp with its whole view), so a view that checks ([`check_view`]) proves
//! nothing about its sender. A member therefore takes a view of its cluster only
//!
//! - **from a node it knows as a member:** one in its current view, or one that departed from
//!   an earlier view of this cluster id (`Liveness::departed`, the `cluster_size_max` latest:
//!   after a partition the two sides know each other only as departed members, and must still
//!   merge); and
//! - **that lists its sender:** every honest view does — a proposer keeps itself in the view
//!   it proposes, and a member only ever forwards the view it is in.
//!
//! Anything else is refused (`NodeStats::views_refused`, and `messages_ignored`). An ordinary
//! node takes only the view its confirmed invitation waits for, from that inviter, listing it
//! and the inviter (S2, S12, S13). So a node that was never a member cannot move a cluster at
//! all.
//!
//! The price: members that never heard of each other cannot merge views. After a partition a
//! side that admitted newcomers (and whose old members have since gone) may come to list
//! members of the other side that know none of its members; they refuse its views, however
//! great. A member whose heartbeats show a mate its view lists still on an older view
//! `offline_after_ms` after it first sent that mate its own (`liveness::StampVerdict::
//! Refused`) gives up its membership and asks to join again (S13,
//! `NodeStats::views_left_refused`): through members the others know, or elsewhere. A mate
//! that takes views from it would have caught up at its first answer.
//!
//! The epoch grows by one per honest change, but the two sides of a partition go on apart
//! and may meet again many epochs apart. A member takes a greater view at most
//! [`VIEW_EPOCH_STEP_MAX`] epochs ahead of its own; one further ahead is taken with its
//! members at its own epoch plus that step (`NodeStats::view_epochs_capped`). The side that is
//! ahead answers every heartbeat of the side behind with its view again, so the two still
//! converge, that many epochs per exchange. A member — or a former one — that sends a view
//! with epoch `u64::MAX` thus moves its mates by that step, not to the end of the epochs
//! where no honest view could win again: it would need 2^60 views to get there.
//!
//! Member numbers ([`numbering`]) follow from the cluster id and the member ids: members sorted
//! by `sha256d(cluster id ‖ member id)`; a member's number is its place in that order.

use crate::base::NodeId;
use crate::chain::sha256d;
use crate::placement::Slot;
use crate::wire::{ClusterGenesis, MemberInfo, View};
use std::cmp::Ordering;

pub use crate::base::ClusterId;

/// Computes the cluster id of a genesis (S4). `founders` must be sorted by id.
pub fn cluster_id(genesis: &ClusterGenesis) -> ClusterId {
    let mut data = Vec::with_capacity(13 + 8 + 32 + 32 * genesis.founders.len());
    data.extend_from_slice(b"shoal/cluster");
    data.extend_from_slice(&genesis.generation.to_le_bytes());
    data.extend_from_slice(&genesis.proposer.0);
    for founder in &genesis.founders {
        data.extend_from_slice(&founder.0);
    }
    ClusterId(sha256d(&data))
}

/// The most epochs one adopted view moves a member forward (see "Who may change a view" in
/// the module docs). Far more than one side of a partition goes through while it lasts, in
/// practice: a view further ahead still wins, one step at a time.
pub const VIEW_EPOCH_STEP_MAX: u64 = 16;

/// Why a received view was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    #[error("view's cluster id does not match its genesis")]
    IdMismatch,
    #[error("view's founders or members are not sorted and distinct")]
    NotSorted,
    #[error("view's proposer is not among its founders")]
    ProposerNotFounder,
    #[error("view has no members")]
    Empty,
    #[error("view has {len} members, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// Checks a view a peer sent: sorted distinct lists, proposer among founders, id matches.
pub fn check_view(view: &View, cluster_size_max: usize) -> Result<(), ViewError> {
    let founders = &view.genesis.founders;
    if view.members.is_empty() {
        return Err(ViewError::Empty);
    }
    if view.members.len() > cluster_size_max {
        return Err(ViewError::TooLarge {
            len: view.members.len(),
            max: cluster_size_max,
        });
    }
    if !founders.windows(2).all(|w| w[0] < w[1])
        || !view.members.windows(2).all(|w| w[0].id < w[1].id)
    {
        return Err(ViewError::NotSorted);
    }
    if founders.binary_search(&view.genesis.proposer).is_err() {
        return Err(ViewError::ProposerNotFounder);
    }
    if cluster_id(&view.genesis) != view.cluster {
        return Err(ViewError::IdMismatch);
    }
    Ok(())
}

/// A 64-bit digest of a view's member list (carried in heartbeats).
pub fn view_digest(members: &[MemberInfo]) -> u64 {
    let mut data = Vec::with_capacity(32 * members.len());
    for member in members {
        data.extend_from_slice(&member.id.0);
    }
    let hash = sha256d(&data);
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// The total order on views of one cluster, each given as `(epoch, members, digest)`: higher
/// epoch, then more members, then higher digest wins. Every member adopts the greatest view it hears of, so views converge.
pub fn view_order(a: (u64, usize, u64), b: (u64, usize, u64)) -> Ordering {
    a.cmp(&b)
}

/// Member numbers (S5): `result[i]` is the index in `members` of the member numbered `i`.
/// Members are ordered by `sha256d(cluster id ‖ member id)`, ties (impossible in practice)
/// by id, so every member computes the same numbers.
pub fn numbering(cluster: &ClusterId, members: &[NodeId]) -> Vec<usize> {
    let mut keyed: Vec<([u8; 32], usize)> = members
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut data = [0u8; 64];
            data[..32].copy_from_slice(&cluster.0);
            data[32..].copy_from_slice(&id.0);
            (sha256d(&data), i)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(members[a.1].cmp(&members[b.1])));
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// A member's state: its view and the members in number order. What the sub-protocols keep
/// per view (liveness's clocks, formation's undersized clock, a replacement round) is theirs.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub(crate) view: View,
    /// Members in member-number order (S5).
    pub(crate) slots: Vec<Slot>,
    /// This node's number.
    pub(crate) number: usize,
    pub(crate) digest: u64,
    pub(crate) expires_at_ms: u64,
    /// When this view was adopted.
    pub(crate) view_since_ms: u64,
    /// Whether this membership re-formed a previous cluster (S4), for counting what it moves.
    pub(crate) reformed: bool,
    /// The room last announced to peers outside the cluster (see
    /// `Shared::announce_room`).
    pub(crate) announced_room: Option<Room>,
}

/// What peers outside a cluster read from the room it announces: ordinary nodes whether it
/// takes join requests (S13), members of other clusters whether it keeps P copies (an
/// undersized cluster dissolves only with such a cluster in reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Room {
    pub(crate) has_room: bool,
    pub(crate) keeps_p: bool,
}

/// How a cluster's members spread over failure domains (devices, [`Slot::device`], and
/// network segments): whether each block's copies can be on distinct devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureDomains {
    /// Members in the view.
    pub members: usize,
    /// Distinct devices among them.
    pub devices: usize,
    /// Distinct network segments among them.
    pub segments: usize,
    /// Copies per block (P).
    pub replicas: usize,
    /// Every block's copies are on distinct devices: the view spans at least
    /// `min(replicas, members)` devices (placement then always takes them, see
    /// [`crate::placement`]). When false, some blocks have two copies on one device.
    pub spread: bool,
}

impl Membership {
    /// Builds the membership of `me` in `view` (which must list `me`).
    pub(crate) fn new(me: NodeId, view: View, now_ms: u64, expires_at_ms: u64) -> Membership {
        let ids: Vec<NodeId> = view.members.iter().map(|m| m.id).collect();
        let order = numbering(&view.cluster, &ids);
        let slots: Vec<Slot> = order
            .iter()
            .map(|&i| Slot {
                id: view.members[i].id,
                segment: view.members[i].segment,
                device: crate::placement::device_of(&view.members[i].id, view.members[i].device),
                weight: crate::placement::weight_of(view.members[i].capacity_bytes),
            })
            .collect();
        let number = slots
            .iter()
            .position(|s| s.id == me)
            .expect("a membership is only built from a view that lists this node");
        let digest = view_digest(&view.members);
        Membership {
            view,
            slots,
            number,
            digest,
            expires_at_ms,
            view_since_ms: now_ms,
            reformed: false,
            announced_room: None,
        }
    }

    /// The view's place in the total order of views ([`view_order`]).
    pub(crate) fn order_key(&self) -> (u64, usize, u64) {
        (self.view.epoch, self.view.members.len(), self.digest)
    }

    /// How this view's members spread over failure domains, with `replicas` (P) copies per
    /// block.
    pub(crate) fn failure_domains(&self, replicas: usize) -> FailureDomains {
        let mut devices: Vec<u64> = self.slots.iter().map(|s| s.device).collect();
        devices.sort_unstable();
        devices.dedup();
        let mut segments: Vec<u32> = self.slots.iter().map(|s| s.segment).collect();
        segments.sort_unstable();
        segments.dedup();
        let members = self.slots.len();
        FailureDomains {
            members,
            devices: devices.len(),
            segments: segments.len(),
            replicas,
            spread: devices.len() >= replicas.min(members),
        }
    }

    /// The slot index (member number) of `id`.
    pub(crate) fn number_of(&self, id: &NodeId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == *id)
    }
}

#[cfg(test)]
pub(crate) mod tests;
