//! Replacement (S12, S13): a cluster that lost members takes in outsiders.
//!
//! # Overview
//!
//! - **By invitation (S12).** When a member goes offline, the coordinator (member number 0) of
//!   a cluster below `cluster_size_target` invites the best ordinary peers it knows (by the
//!   same node condition as formation, S1) on its formation tick, which the loss brings
//!   forward. The invitation carries the cluster id.
//! - **By request (S13).** An ordinary node with too few ordinary peers to form a cluster asks a
//!   cluster that announced room (`Hello`'s open slots) to take it; a member with room answers
//!   with an invitation, one without (or busy with a round) with `JoinDenied`.
//!
//! Among several acceptances the round takes them by reply order or, with
//! `ReplacementChoice::Capacity`, by capacity, up to the cluster's room, and proposes the next
//! view with the newcomers; every member renumbers and recomputes what it holds from the new
//! view, and the newcomer is filled by its numbered neighbours first ([`crate::repair`]).
//!
//! `Replacement` keeps a member's replacement round; the invitation mechanics are
//! formation's ([`crate::formation`]), and the node adopts the view a round proposes
//! (`node::membership`).

use crate::base::NodeId;
use crate::config::ReplacementChoice;
use crate::formation::{
    invite, member_info, ranked_ordinary_peers, take_reply, withdraw, Reply, Round,
};
use crate::io::TimerId;
use crate::shared::{Role, Shared};
use crate::wire::{MemberInfo, Message};

/// A member's replacement state. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Replacement {
    /// The invitation round in progress (S12, S13).
    round: Option<Round>,
}

impl Replacement {
    /// This node became a member: no round yet.
    pub(crate) fn joined(&mut self) {
        self.round = None;
    }

    /// This node stopped being a member: the round ends (handed back, to be withdrawn when
    /// the cluster lapses).
    pub(crate) fn left(&mut self) -> Option<Round> {
        self.round.take()
    }

    /// A member's formation tick (S12): the coordinator of a cluster below its target size
    /// invites the best ordinary peers.
    pub(crate) fn recruit(&mut self, cx: &mut Shared) {
        let Role::Member(m) = &cx.role else { return };
        let len = m.view.members.len();
        let recruits = m.number == 0 && self.round.is_none();
        if recruits && len < cx.config.cluster_size_target {
            let want = cx
                .config
                .cluster_size_target
                .min(cx.config.cluster_size_max)
                - len;
            let outsiders = ranked_ordinary_peers(cx, want, None);
            self.start_round(cx, outsiders);
        }
    }

    /// S13, the newcomer's side: an ordinary node that cannot form a cluster asks a connected
    /// member of a cluster with room to take it.
    pub(crate) fn ask_to_join(cx: &mut Shared) {
        let open = cx
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.cluster.is_some() && p.open_slots > 0)
            .map(|(id, _)| *id)
            .min();
        if let Some(member) = open {
            let request_id = cx.fresh_id();
            let message = Message::JoinRequest {
                request_id,
                address: cx.config.address.clone(),
                record: cx.record(),
            };
            cx.send(member, message);
        }
    }

    /// The cluster was full (or busy): ask another one next time, until this one says hello
    /// again.
    pub(crate) fn on_join_denied(cx: &mut Shared, from: NodeId) {
        if let Some(p) = cx.peers.get_mut(&from) {
            p.open_slots = 0;
        }
    }

    /// S13: an outside node asks to join; a member with room answers with an invitation.
    pub(crate) fn on_join_request(&mut self, cx: &mut Shared, from: NodeId, request_id: u64) {
        let room = match &cx.role {
            Role::Member(m) => {
                self.round.is_none()
                    && m.view.members.len() < cx.config.cluster_size_max
                    && m.number_of(&from).is_none()
                    && !cx.is_banned(&from)
            }
            Role::Ordinary => false,
        };
        if room {
            self.start_round(cx, vec![from]);
        } else {
            cx.send(from, Message::JoinDenied { request_id });
        }
    }

    /// S12: invite outsiders into our cluster.
    fn start_round(&mut self, cx: &mut Shared, invitees: Vec<NodeId>) {
        let Role::Member(m) = &cx.role else { return };
        if invitees.is_empty() {
            return;
        }
        let cluster = m.view.cluster;
        self.round = Some(invite(cx, invitees, Some(cluster)));
        self.rearm_invitation_timer(cx);
    }

    /// A reply to our replacement round. Returns the members of the next view when the round
    /// is complete and admits newcomers: the node proposes it.
    pub(crate) fn on_invite_reply(
        &mut self,
        cx: &mut Shared,
        reply: Reply,
    ) -> Option<Vec<MemberInfo>> {
        if take_reply(cx, &mut self.round, reply) {
            self.finish_round(cx)
        } else {
            None
        }
    }

    /// A member's invitation timer: a round past its deadline is closed. Returns the members
    /// of the next view if it admits newcomers. The node re-arms the invitation timer
    /// afterwards.
    pub(crate) fn on_invitation_timer(&mut self, cx: &mut Shared) -> Option<Vec<MemberInfo>> {
        if self
            .round
            .as_ref()
            .is_some_and(|r| r.deadline_ms <= cx.now_ms)
        {
            return self.finish_round(cx);
        }
        None
    }

    /// Sets the invitation timer to the round's deadline, if a round is open.
    pub(crate) fn rearm_invitation_timer(&self, cx: &mut Shared) {
        if let Some(at) = self.round.as_ref().map(|r| r.deadline_ms) {
            cx.set_timer(TimerId::Invitation, at);
        }
    }

    /// Closes the round: admits newcomers (by reply order, or by capacity) up to the
    /// cluster's room and withdraws the other confirmations. Returns the next view's members
    /// if anyone was admitted.
    fn finish_round(&mut self, cx: &mut Shared) -> Option<Vec<MemberInfo>> {
        let Role::Member(m) = &cx.role else {
            return None;
        };
        let mut round = self.round.take()?;
        let room = cx
            .config
            .cluster_size_max
            .saturating_sub(m.view.members.len());
        if cx.config.replacement_choice == ReplacementChoice::Capacity {
            // Stable: equal capacities keep reply order.
            round
                .accepted
                .sort_by_key(|a| std::cmp::Reverse(a.record.capacity_bytes));
        }
        let take = round.accepted.len().min(room);
        let (newcomers, rest) = round.accepted.split_at(take);
        let mut members = m.view.members.clone();
        members.extend(newcomers.iter().map(member_info));
        withdraw(cx, round.invite_id, rest);
        (take > 0).then_some(members)
    }
}

#[cfg(test)]
mod tests;
