//! Forming a cluster (S1–S3), its id and expiry (S4), replacement by invitation and by request
//! (S12, S13), and adopting views.
//!
//! # Overview
//!
//! An ordinary node's formation timer starts an invitation round once it is connected to at
//! least `invite_after_peers` ordinary peers (S1): it ranks them by condition — former
//! cluster-mates first (re-forming, S4), then blocks served, then measured round-trip time —
//! and invites up to `cluster_size_max − 1` of them. An invitee collects invitations for
//! `invite_collect_ms`, confirms the best by content (former mate, blocks served, capacity) and
//! declines the rest (S3); while it waits for the cluster's view it declines everything, and a
//! member declines every formation invitation. At the deadline (or when all have replied) the
//! inviter forms the cluster if at least `form_with_accepts` confirmed (S2), never taking more
//! than `cluster_size_max − 1`; it sends the founding view, and withdraws every confirmation it
//! does not use.
//!
//! Crossing invitations: an inviter that is invited gives up its own round only if nobody has
//! confirmed it yet and the other inviter ranks higher; otherwise it declines. A node is a
//! member only after it holds a view that lists it, and it accepts a view only from the
//! inviter it confirmed: so no node is ever in two clusters.

use super::{check_view, cluster_id, view_digest, ClusterId, Membership};
use crate::node::{Event, Node, NodeId, ReplacementChoice, Role, TimerId};
use crate::wire::{ClusterGenesis, MemberInfo, Message, NodeRecord, View, ViewStamp};

/// An invitation round: forming (no cluster) or replacing (S12, S13).
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub(crate) invite_id: u64,
    pub(crate) invited: Vec<NodeId>,
    pub(crate) replied: Vec<NodeId>,
    /// Confirmations in reply order.
    pub(crate) accepted: Vec<Accepted>,
    pub(crate) deadline_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) id: NodeId,
    pub(crate) address: String,
    pub(crate) record: NodeRecord,
}

/// An invitation this node received and has not answered yet.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    from: NodeId,
    invite_id: u64,
    record: NodeRecord,
    cluster: Option<ClusterId>,
}

/// An invitation this node confirmed; it waits for the view.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    inviter: NodeId,
    invite_id: u64,
    cluster: Option<ClusterId>,
    until_ms: u64,
}

/// The cluster this node was in before its id lapsed (S4).
#[derive(Debug, Clone, Default)]
pub(crate) struct Previous {
    pub(crate) members: Vec<NodeId>,
    pub(crate) generation: u64,
}

/// An ordinary node's formation state.
#[derive(Debug, Default)]
pub(crate) struct Ordinary {
    pub(crate) round: Option<Round>,
    received: Vec<Received>,
    collect_until_ms: Option<u64>,
    committed: Option<Committed>,
    pub(crate) previous: Option<Previous>,
}

impl Ordinary {
    fn is_previous_mate(&self, id: &NodeId) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|p| p.members.contains(id))
    }
}

/// Most invitations an invitee keeps while choosing; the rest are declined.
const RECEIVED_MAX: usize = 32;

impl Node {
    pub(crate) fn on_formation_timer(&mut self) {
        if matches!(self.role, Role::Member(_)) {
            self.arm_member_formation();
        }
        match &self.role {
            Role::Ordinary(o) => {
                let idle =
                    o.round.is_none() && o.committed.is_none() && o.collect_until_ms.is_none();
                let next = self.now_ms + self.rng.jitter(self.config.formation_interval_ms);
                self.set_timer(TimerId::Formation, next);
                if idle {
                    self.start_formation_round();
                }
            }
            Role::Member(m) => {
                let len = m.view.members.len();
                let recruits = m.number == 0 && m.round.is_none();
                let undersized_for = m
                    .undersized_since_ms
                    .map(|since| self.now_ms.saturating_sub(since));
                if undersized_for
                    .zip(self.config.undersized_leave_after_ms)
                    .is_some_and(|(undersized_for, after)| undersized_for >= after)
                    && self.chain_kept_elsewhere()
                {
                    if self.reach_confirmed() {
                        return self.leave_undersized();
                    }
                    self.probe_reach();
                }
                if recruits && len < self.config.cluster_size_target {
                    let want = self
                        .config
                        .cluster_size_target
                        .min(self.config.cluster_size_max)
                        - len;
                    let outsiders = self.ranked_ordinary_peers(want);
                    self.start_replacement_round(outsiders);
                }
            }
        }
    }

    /// Whether this member has formation work on its tick: recruiting (the coordinator of a
    /// cluster below its target size, S12) or watching an undersized cluster for dissolution.
    /// A settled member has none, and keeps no formation tick: at 10,000 nodes that tick was a
    /// quarter of every event the simulator processed.
    fn member_has_formation_work(&self) -> bool {
        let Role::Member(m) = &self.role else {
            return false;
        };
        (m.number == 0 && m.view.members.len() < self.config.cluster_size_target)
            || (m.undersized_since_ms.is_some() && self.config.undersized_leave_after_ms.is_some())
    }

    /// Arms the next formation tick of a member that has formation work (see
    /// [`Self::member_has_formation_work`]); a pending earlier deadline stands.
    pub(crate) fn arm_member_formation(&mut self) {
        if self.member_has_formation_work() {
            let at = self.now_ms + self.rng.jitter(self.config.formation_interval_ms);
            self.set_timer_no_later(TimerId::Formation, at);
        }
    }

    /// Whether a connected peer is a member of another cluster that has at least P members
    /// (by the room it announced: `cluster_size_max` minus its open slots). Such a cluster
    /// keeps the whole chain on P members (S18), so an undersized cluster whose members
    /// dissolve into it loses no block; without one, dissolving could leave blocks with no
    /// cluster keeping them, and the undersized cluster stays (and keeps recruiting).
    fn chain_kept_elsewhere(&self) -> bool {
        let Role::Member(m) = &self.role else {
            return false;
        };
        let ours = m.view.cluster;
        self.peers.values().any(|p| self.keeps_p_elsewhere(p, ours))
    }

    /// Whether `p`, by the room it announced (`cluster_size_max` minus its open slots), is a
    /// connected member of a cluster other than `ours` with at least P members.
    fn keeps_p_elsewhere(&self, p: &crate::node::Peer, ours: ClusterId) -> bool {
        p.connected
            && p.cluster.is_some_and(|c| c != ours)
            && self
                .config
                .cluster_size_max
                .saturating_sub(p.open_slots as usize)
                >= self.config.replicas
    }

    /// Whether a member of another cluster with at least P members answered a ping since the
    /// last [`Self::probe_reach`].
    fn reach_confirmed(&self) -> bool {
        let Role::Member(m) = &self.role else {
            return false;
        };
        m.dissolve_probe_ms
            .zip(m.reach_heard_ms)
            .is_some_and(|(probe, heard)| heard >= probe)
    }

    /// Before an undersized cluster dissolves, it makes sure the cluster it would leave its
    /// blocks to is really there: a peer table says *connected* long after a partition cut
    /// the link, and a remnant cut off with the only copies of some blocks must keep them
    /// (S18). So it pings the members of other clusters with P members and waits for a pong
    /// (a later formation tick dissolves). It also pings its departed members: the rest of its
    /// own cluster, cut off by the same partition, answers with our cluster's stamp, and the
    /// two sides merge instead.
    fn probe_reach(&mut self) {
        let Role::Member(m) = &mut self.role else {
            return;
        };
        m.dissolve_probe_ms = Some(self.now_ms);
        let ours = m.view.cluster;
        let mut targets: Vec<NodeId> = m.departed.iter().map(|(id, _)| *id).collect();
        targets.extend(
            self.peers
                .iter()
                .filter(|(_, p)| self.keeps_p_elsewhere(p, ours))
                .map(|(id, _)| *id),
        );
        targets.sort();
        targets.dedup();
        let stamp = self.stamp();
        for id in targets {
            let nonce = self.rng.next_u64();
            self.send(id, Message::Ping { nonce, stamp });
        }
    }

    /// A pong's stamp: a member of another cluster with at least P members is in reach (see
    /// [`Self::probe_reach`]).
    pub(crate) fn heard_from_other_cluster(&mut self, stamp: Option<ViewStamp>) {
        let replicas = self.config.replicas;
        if let (Role::Member(m), Some(stamp)) = (&mut self.role, stamp) {
            if stamp.cluster != m.view.cluster && stamp.members as usize >= replicas {
                m.reach_heard_ms = Some(self.now_ms);
            }
        }
    }

    /// The cluster has had too few members to keep P copies for `undersized_leave_after_ms`
    /// (measured from when it first fell below P, across later views) and found no
    /// replacement, and another cluster with P members is reachable: dissolve it — as if its
    /// id lapsed now (S4). A view with the next epoch and no time left tells the other
    /// members, who lapse with us, so the whole cluster ends at once rather than side by side
    /// with a remnant that lacks the blocks its leavers held. Blocks stay stored: they are
    /// sources for whichever cluster each member joins next.
    fn leave_undersized(&mut self) {
        let Role::Member(m) = &mut self.role else {
            return;
        };
        self.stats.undersized_leaves += 1;
        m.expires_at_ms = self.now_ms;
        let members = m.view.members.clone();
        self.propose_view(members);
        self.expire_cluster();
    }

    /// Ordinary, connected, non-archive peers that said hello, best first (S1's node
    /// condition: former mates, blocks served, round-trip time), at most `max`.
    fn ranked_ordinary_peers(&self, max: usize) -> Vec<NodeId> {
        let mut eligible: Vec<(bool, u64, u64, u64, NodeId)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.cluster.is_none())
            .filter_map(|(id, p)| {
                let record = p.record.as_ref()?;
                (!record.archive).then_some((
                    false,
                    record.blocks_served,
                    p.rtt_ms.unwrap_or(u64::MAX),
                    crate::base::mix64(
                        self.tie_salt ^ u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")),
                    ),
                    *id,
                ))
            })
            .collect();
        if let Role::Ordinary(o) = &self.role {
            for e in eligible.iter_mut() {
                e.0 = o.is_previous_mate(&e.4);
            }
            // Former mates are invited even if our table still thinks they are in a cluster.
            if let Some(previous) = &o.previous {
                for mate in &previous.members {
                    if !eligible.iter().any(|e| e.4 == *mate) {
                        eligible.push((true, 0, u64::MAX, 0, *mate));
                    }
                }
            }
        }
        eligible.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
                .then(a.4.cmp(&b.4))
        });
        eligible.truncate(max);
        eligible.into_iter().map(|e| e.4).collect()
    }

    /// S1: invite the best ordinary peers, or (S13) ask a cluster with room to take us.
    fn start_formation_round(&mut self) {
        let mut invitees = self.ranked_ordinary_peers(usize::MAX);
        if invitees.len()
            < self
                .config
                .invite_after_peers
                .max(self.config.form_with_accepts)
        {
            self.dial_candidates();
            let open = self
                .peers
                .iter()
                .filter(|(_, p)| p.connected && p.cluster.is_some() && p.open_slots > 0)
                .map(|(id, _)| *id)
                .min();
            if let Some(member) = open {
                let request_id = self.fresh_id();
                let message = Message::JoinRequest {
                    request_id,
                    address: self.config.address.clone(),
                    record: self.record(),
                };
                self.send(member, message);
            }
            return;
        }
        invitees.truncate(self.config.cluster_size_max - 1);
        let round = self.invite(invitees, None);
        if let Role::Ordinary(o) = &mut self.role {
            o.round = Some(round);
        }
        self.rearm_invitation_timer();
    }

    /// Sends invitations and returns the round that tracks them.
    fn invite(&mut self, invitees: Vec<NodeId>, cluster: Option<ClusterId>) -> Round {
        let invite_id = self.fresh_id();
        let record = self.record();
        for invitee in &invitees {
            let message = Message::Invite {
                invite_id,
                address: self.config.address.clone(),
                record: record.clone(),
                cluster,
            };
            self.send(*invitee, message);
            self.stats.invitations_sent += 1;
        }
        Round {
            invite_id,
            invited: invitees,
            replied: Vec::new(),
            accepted: Vec::new(),
            deadline_ms: self.now_ms + self.config.invite_timeout_ms,
        }
    }

    fn reply(&mut self, to: NodeId, invite_id: u64, accept: bool) {
        let message = Message::InviteReply {
            invite_id,
            accept,
            address: self.config.address.clone(),
            record: self.record(),
        };
        self.send(to, message);
    }

    pub(crate) fn on_invite(
        &mut self,
        from: NodeId,
        invite_id: u64,
        _address: String,
        record: NodeRecord,
        cluster: Option<ClusterId>,
    ) {
        if self.config.archive {
            return self.reply(from, invite_id, false);
        }
        // A member whose id is about to lapse and is invited by a mate to re-form: lapse now.
        if let Role::Member(m) = &self.role {
            let mate = m.number_of(&from).is_some();
            let lapsing = m.expires_at_ms <= self.now_ms + self.config.accept_timeout_ms;
            if cluster.is_none() && mate && lapsing {
                self.expire_cluster();
            }
        }
        let my_rank = (self.stats.blocks_served, self.id);
        let Role::Ordinary(o) = &mut self.role else {
            // S3: a node already in a cluster declines every other invitation.
            return self.reply(from, invite_id, false);
        };
        if o.committed.is_some() {
            return self.reply(from, invite_id, false);
        }
        if let Some(round) = &o.round {
            // Crossing invitations: yield only to a better-ranked inviter nobody confirmed yet.
            let theirs_better = (record.blocks_served, std::cmp::Reverse(from))
                > (my_rank.0, std::cmp::Reverse(my_rank.1));
            let mate_first = o.is_previous_mate(&from) && !o.is_previous_mate(&self.id);
            if !round.accepted.is_empty() || !(theirs_better || mate_first) {
                return self.reply(from, invite_id, false);
            }
            let round = o.round.take().expect("checked above");
            for invitee in round.invited {
                self.send(
                    invitee,
                    Message::InviteWithdrawn {
                        invite_id: round.invite_id,
                    },
                );
            }
        }
        let Role::Ordinary(o) = &mut self.role else {
            unreachable!("role checked above")
        };
        if o.received.len() >= RECEIVED_MAX || o.received.iter().any(|r| r.from == from) {
            return self.reply(from, invite_id, false);
        }
        o.received.push(Received {
            from,
            invite_id,
            record,
            cluster,
        });
        if o.collect_until_ms.is_none() {
            o.collect_until_ms = Some(self.now_ms + self.config.invite_collect_ms);
        }
        self.rearm_invitation_timer();
    }

    pub(crate) fn on_invite_reply(
        &mut self,
        from: NodeId,
        invite_id: u64,
        accept: bool,
        address: String,
        record: NodeRecord,
    ) {
        let round = match &mut self.role {
            Role::Ordinary(o) => o.round.as_mut(),
            Role::Member(m) => m.round.as_mut(),
        };
        let Some(round) = round.filter(|r| {
            r.invite_id == invite_id && r.invited.contains(&from) && !r.replied.contains(&from)
        }) else {
            // A late or unknown confirmation: release the confirmer.
            if accept {
                self.send(from, Message::InviteWithdrawn { invite_id });
            }
            return;
        };
        round.replied.push(from);
        if accept {
            round.accepted.push(Accepted {
                id: from,
                address,
                record,
            });
        }
        if round.replied.len() == round.invited.len() {
            self.finish_round();
        }
    }

    pub(crate) fn on_invite_withdrawn(&mut self, from: NodeId, invite_id: u64) {
        if let Role::Ordinary(o) = &mut self.role {
            if o.committed
                .as_ref()
                .is_some_and(|c| c.inviter == from && c.invite_id == invite_id)
            {
                o.committed = None;
            }
            o.received
                .retain(|r| !(r.from == from && r.invite_id == invite_id));
        }
    }

    /// S13: an outside node asks to join; a member with room answers with an invitation.
    pub(crate) fn on_join_request(
        &mut self,
        from: NodeId,
        request_id: u64,
        _address: String,
        _record: NodeRecord,
    ) {
        let room = match &self.role {
            Role::Member(m) => {
                m.round.is_none()
                    && m.view.members.len() < self.config.cluster_size_max
                    && m.number_of(&from).is_none()
            }
            Role::Ordinary(_) => false,
        };
        if room {
            self.start_replacement_round(vec![from]);
        } else {
            self.send(from, Message::JoinDenied { request_id });
        }
    }

    /// S12: invite outsiders into our cluster.
    fn start_replacement_round(&mut self, invitees: Vec<NodeId>) {
        let Role::Member(m) = &self.role else { return };
        if invitees.is_empty() {
            return;
        }
        let cluster = m.view.cluster;
        let round = self.invite(invitees, Some(cluster));
        if let Role::Member(m) = &mut self.role {
            m.round = Some(round);
        }
        self.rearm_invitation_timer();
    }

    pub(crate) fn on_invitation_timer(&mut self) {
        let now = self.now_ms;
        match &mut self.role {
            Role::Ordinary(o) => {
                if o.committed.as_ref().is_some_and(|c| c.until_ms <= now) {
                    o.committed = None;
                }
                if o.collect_until_ms.is_some_and(|t| t <= now) {
                    self.choose_invitation();
                }
            }
            Role::Member(_) => {}
        }
        let round_due = match &self.role {
            Role::Ordinary(o) => o.round.as_ref().is_some_and(|r| r.deadline_ms <= now),
            Role::Member(m) => m.round.as_ref().is_some_and(|r| r.deadline_ms <= now),
        };
        if round_due {
            self.finish_round();
        }
        self.rearm_invitation_timer();
    }

    /// Sets the invitation timer to the earliest pending deadline.
    fn rearm_invitation_timer(&mut self) {
        let next = match &self.role {
            Role::Ordinary(o) => [
                o.round.as_ref().map(|r| r.deadline_ms),
                o.collect_until_ms,
                o.committed.as_ref().map(|c| c.until_ms),
            ]
            .into_iter()
            .flatten()
            .min(),
            Role::Member(m) => m.round.as_ref().map(|r| r.deadline_ms),
        };
        if let Some(at) = next {
            self.set_timer(TimerId::Invitation, at);
        }
    }

    /// S3: confirm the best collected invitation, decline the others.
    fn choose_invitation(&mut self) {
        let Role::Ordinary(o) = &mut self.role else {
            return;
        };
        o.collect_until_ms = None;
        let mut received = std::mem::take(&mut o.received);
        let previous = o.previous.clone();
        let mate = |id: &NodeId| previous.as_ref().is_some_and(|p| p.members.contains(id));
        received.sort_by(|a, b| {
            mate(&b.from)
                .cmp(&mate(&a.from))
                .then(b.record.blocks_served.cmp(&a.record.blocks_served))
                .then(b.record.capacity_bytes.cmp(&a.record.capacity_bytes))
                .then(a.from.cmp(&b.from))
        });
        let mut iter = received.into_iter();
        if let Some(best) = iter.next() {
            o.committed = Some(Committed {
                inviter: best.from,
                invite_id: best.invite_id,
                cluster: best.cluster,
                until_ms: self.now_ms + self.config.accept_timeout_ms,
            });
            self.reply(best.from, best.invite_id, true);
        }
        for other in iter {
            self.reply(other.from, other.invite_id, false);
        }
    }

    /// Closes the open round: forms the cluster (S2) or admits newcomers (S12, S13).
    fn finish_round(&mut self) {
        match &mut self.role {
            Role::Ordinary(o) => {
                let Some(round) = o.round.take() else { return };
                let previous = o.previous.clone();
                if round.accepted.len() < self.config.form_with_accepts {
                    self.withdraw(round.invite_id, &round.accepted);
                    return;
                }
                let take = round.accepted.len().min(self.config.cluster_size_max - 1);
                let (members, rest) = round.accepted.split_at(take);
                self.withdraw(round.invite_id, rest);
                let mut founders: Vec<NodeId> = members.iter().map(|a| a.id).collect();
                founders.push(self.id);
                founders.sort();
                let genesis = ClusterGenesis {
                    proposer: self.id,
                    generation: previous.map_or(0, |p| p.generation.saturating_add(1)),
                    founders,
                };
                let mut infos: Vec<MemberInfo> = members.iter().map(member_info).collect();
                infos.push(MemberInfo {
                    id: self.id,
                    address: self.config.address.clone(),
                    segment: self.config.segment,
                    capacity_bytes: self.config.capacity_bytes,
                });
                infos.sort_by_key(|info| info.id);
                let view = View {
                    cluster: cluster_id(&genesis),
                    genesis,
                    epoch: 0,
                    members: infos,
                    expires_in_ms: self.config.cluster_ttl_ms,
                };
                debug_assert!(check_view(&view, self.config.cluster_size_max).is_ok());
                self.stats.clusters_formed += 1;
                for member in members {
                    self.send(member.id, Message::View(view.clone()));
                }
                let expires_at = self.now_ms + self.config.cluster_ttl_ms;
                self.become_member(view, expires_at);
            }
            Role::Member(m) => {
                let Some(mut round) = m.round.take() else {
                    return;
                };
                let room = self
                    .config
                    .cluster_size_max
                    .saturating_sub(m.view.members.len());
                if self.config.replacement_choice == ReplacementChoice::Capacity {
                    // Stable: equal capacities keep reply order.
                    round
                        .accepted
                        .sort_by_key(|a| std::cmp::Reverse(a.record.capacity_bytes));
                }
                let take = round.accepted.len().min(room);
                let (newcomers, rest) = round.accepted.split_at(take);
                let rest = rest.to_vec();
                let mut members = m.view.members.clone();
                members.extend(newcomers.iter().map(member_info));
                self.withdraw(round.invite_id, &rest);
                if take > 0 {
                    self.propose_view(members);
                }
            }
        }
    }

    fn withdraw(&mut self, invite_id: u64, accepted: &[Accepted]) {
        for a in accepted {
            self.send(a.id, Message::InviteWithdrawn { invite_id });
        }
    }

    /// Makes `members` (any order) the next view of our cluster, adopts it and sends it to
    /// everyone in the old or new view.
    pub(crate) fn propose_view(&mut self, mut members: Vec<MemberInfo>) {
        let Role::Member(m) = &self.role else { return };
        members.sort_by_key(|info| info.id);
        members.dedup_by(|a, b| a.id == b.id);
        let view = View {
            cluster: m.view.cluster,
            genesis: m.view.genesis.clone(),
            epoch: m.view.epoch.saturating_add(1),
            members,
            expires_in_ms: m.expires_at_ms.saturating_sub(self.now_ms),
        };
        self.send_and_adopt_view(view);
    }

    /// Sends `view` to everyone in our current view or in it, then adopts it.
    fn send_and_adopt_view(&mut self, view: View) {
        let Role::Member(m) = &self.role else { return };
        let mut recipients: Vec<NodeId> = m.slots.iter().map(|s| s.id).collect();
        recipients.extend(view.members.iter().map(|i| i.id));
        recipients.sort();
        recipients.dedup();
        for to in recipients {
            if to != self.id {
                self.send(to, Message::View(view.clone()));
            }
        }
        self.adopt_view(view);
    }

    pub(crate) fn on_view(&mut self, from: NodeId, view: View) {
        if check_view(&view, self.config.cluster_size_max).is_err() {
            self.stats.messages_ignored += 1;
            return;
        }
        let lists_me = view
            .members
            .binary_search_by(|m| m.id.cmp(&self.id))
            .is_ok();
        match &mut self.role {
            Role::Ordinary(o) => {
                let expected = o.committed.as_ref().is_some_and(|c| {
                    c.inviter == from && c.cluster.is_none_or(|id| id == view.cluster)
                });
                if expected && lists_me {
                    let expires_at = self.now_ms.saturating_add(view.expires_in_ms);
                    self.become_member(view, expires_at);
                } else {
                    self.stats.messages_ignored += 1;
                }
            }
            Role::Member(m) => {
                if view.cluster != m.view.cluster {
                    self.stats.messages_ignored += 1;
                    return;
                }
                let theirs = (view.epoch, view.members.len(), view_digest(&view.members));
                match theirs.cmp(&m.order_key()) {
                    std::cmp::Ordering::Greater if !lists_me => self.rejoin_greater_view(view),
                    std::cmp::Ordering::Greater => self.adopt_view(view),
                    std::cmp::Ordering::Less => {
                        let mine = m.view.clone();
                        self.send(from, Message::View(mine));
                    }
                    std::cmp::Ordering::Equal => {}
                }
            }
        }
    }

    /// A greater view of our cluster leaves this node out — it was declared offline while a
    /// partition or a slow link cut it off, yet it is here and keeps its blocks. Unless the
    /// cluster is full it proposes the next view with itself added back, so the two sides of
    /// a healed partition merge instead of one side dropping the other; concurrent proposals
    /// from several left-out members converge because each of them re-adds itself to the
    /// greatest view it hears of.
    fn rejoin_greater_view(&mut self, view: View) {
        let Role::Member(m) = &self.role else { return };
        let me = m
            .view
            .members
            .iter()
            .find(|info| info.id == self.id)
            .cloned();
        let (Some(me), true) = (me, view.members.len() < self.config.cluster_size_max) else {
            return self.adopt_view(view);
        };
        self.stats.views_rejoined += 1;
        let mut members = view.members.clone();
        members.push(me);
        members.sort_by_key(|info| info.id);
        self.send_and_adopt_view(View {
            epoch: view.epoch.saturating_add(1),
            members,
            ..view
        });
    }

    /// Becomes a member of the cluster `view` describes (it lists this node).
    fn become_member(&mut self, view: View, expires_at_ms: u64) {
        let Role::Ordinary(o) = &mut self.role else {
            return;
        };
        // Leave no loose ends: withdraw our own round, decline what we collected.
        let round = o.round.take();
        let received = std::mem::take(&mut o.received);
        let previous = o.previous.take();
        if let Some(round) = round {
            self.withdraw(round.invite_id, &round.accepted);
        }
        for r in received {
            self.reply(r.from, r.invite_id, false);
        }
        let mut membership = Membership::new(self.id, view, self.now_ms, expires_at_ms);
        membership.undersized_since_ms =
            (membership.slots.len() < self.config.replicas).then_some(self.now_ms);
        membership.reformed = previous.is_some_and(|p| {
            membership
                .slots
                .iter()
                .any(|s| s.id != self.id && p.members.contains(&s.id))
        });
        let event = Event::JoinedCluster {
            cluster: membership.view.cluster,
            epoch: membership.view.epoch,
            members: membership.slots.len(),
            number: membership.number,
        };
        self.connect_members(&membership);
        self.role = Role::Member(Box::new(membership));
        self.stats.clusters_joined += 1;
        self.stats.views_adopted += 1;
        self.event(event);
        self.announce();
        self.set_timer(
            TimerId::Heartbeat,
            self.now_ms + self.config.heartbeat_interval_ms,
        );
        self.set_timer(TimerId::ClusterExpiry, expires_at_ms);
        self.arm_member_formation();
        self.rescan_shard();
    }

    /// Dials members we are not connected to.
    fn connect_members(&mut self, membership: &Membership) {
        for info in &membership.view.members {
            if info.id == self.id || self.peers.get(&info.id).is_some_and(|p| p.connected) {
                continue;
            }
            self.push(crate::node::Output::Connect {
                peer: info.id,
                address: info.address.clone(),
            });
        }
    }

    /// Adopts a greater view of our own cluster (S9–S13): renumber, or leave if it drops us.
    pub(crate) fn adopt_view(&mut self, view: View) {
        let Role::Member(old) = &self.role else {
            return;
        };
        let cluster = old.view.cluster;
        if view
            .members
            .binary_search_by(|m| m.id.cmp(&self.id))
            .is_err()
        {
            let previous = Previous {
                members: old
                    .slots
                    .iter()
                    .map(|s| s.id)
                    .filter(|id| *id != self.id)
                    .collect(),
                generation: old.view.genesis.generation,
            };
            self.role = Role::Ordinary(Ordinary {
                previous: Some(previous),
                ..Ordinary::default()
            });
            self.event(Event::LeftCluster {
                cluster,
                expired: false,
            });
            self.announce();
            self.rescan_shard();
            return;
        }
        // A greater view may shorten the id's life (an undersized cluster dissolving), never
        // lengthen it.
        let expires_at_ms = old
            .expires_at_ms
            .min(self.now_ms.saturating_add(view.expires_in_ms));
        let shortened = expires_at_ms < old.expires_at_ms;
        let mut next = Membership::new(self.id, view, self.now_ms, expires_at_ms);
        // A member that was not in our last view (a newcomer, or the other side of a healed
        // partition) may bring blocks nobody we could ask had.
        let gained = next.slots.iter().any(|s| old.number_of(&s.id).is_none());
        // A member we already watched keeps its liveness clock: one that fell silent just
        // before the view changed is declared offline `offline_after_ms` after its last sign
        // of life, not that long after the change. (Repair may well have picked it as a new
        // holder meanwhile, so every second counts.) A member we start watching only now has
        // not been sending us heartbeats (S10: numbers near a join or leave change
        // neighbours) and starts a fresh period.
        let mode = self.config.heartbeat_mode;
        for (slot, heard) in next.slots.iter().zip(next.last_heard_ms.iter_mut()) {
            if let Some(before) = old.number_of(&slot.id) {
                if Self::watches(mode, old.number, old.slots.len(), before) {
                    *heard = old.last_heard_ms[before];
                }
            }
        }
        next.reformed = old.reformed;
        next.announced_room = old.announced_room;
        next.dissolve_probe_ms = old.dissolve_probe_ms;
        next.reach_heard_ms = old.reach_heard_ms;
        // The undersized clock runs on across views that all stay below P (members leaving
        // one by one, a newcomer that does not bring the cluster back to P): it measures how
        // long the cluster has been unable to keep P copies, not how long this view held.
        next.undersized_since_ms = (next.slots.len() < self.config.replicas)
            .then(|| old.undersized_since_ms.unwrap_or(self.now_ms));
        next.departed = old
            .departed
            .iter()
            .copied()
            .chain(old.slots.iter().map(|s| (s.id, self.now_ms)))
            .filter(|(id, _)| next.number_of(id).is_none())
            .collect();
        next.departed
            .sort_by_key(|(id, since)| (*id, std::cmp::Reverse(*since)));
        next.departed.dedup_by_key(|(id, _)| *id);
        next.departed
            .sort_by_key(|(_, since)| std::cmp::Reverse(*since));
        next.departed.truncate(self.config.cluster_size_max);
        next.round = old.round.clone();
        let event = Event::ViewChanged {
            cluster,
            epoch: next.view.epoch,
            members: next.slots.len(),
            number: next.number,
        };
        self.connect_members(&next);
        let coordinator_short =
            next.number == 0 && next.slots.len() < self.config.cluster_size_target;
        self.role = Role::Member(Box::new(next));
        self.stats.views_adopted += 1;
        self.event(event);
        // Peers outside the cluster learn its new room (join requests, S13; dissolving).
        self.announce_room();
        if shortened {
            self.set_timer_no_later(TimerId::ClusterExpiry, expires_at_ms);
        }
        if coordinator_short {
            // S12: the coordinator looks for a replacement soon.
            let at = self.now_ms + self.config.invite_timeout_ms;
            self.set_timer_no_later(TimerId::Formation, at);
        }
        self.arm_member_formation();
        self.arm_silence_check();
        self.rescan_shard();
        if gained {
            self.unpark_all();
        }
    }

    pub(crate) fn on_expiry_timer(&mut self) {
        if let Role::Member(m) = &self.role {
            if m.expires_at_ms <= self.now_ms {
                self.expire_cluster();
            } else {
                let at = m.expires_at_ms;
                self.set_timer(TimerId::ClusterExpiry, at);
            }
        }
    }

    /// S4: the cluster id lapsed; become ordinary. Member number 0 invites the old members at
    /// once to re-form; the others wait for that invitation before inviting on their own.
    fn expire_cluster(&mut self) {
        let Role::Member(m) = &self.role else { return };
        let cluster = m.view.cluster;
        let first = m.number == 0;
        let previous = Previous {
            members: m
                .slots
                .iter()
                .map(|s| s.id)
                .filter(|id| *id != self.id)
                .collect(),
            generation: m.view.genesis.generation,
        };
        let round = m.round.clone();
        self.role = Role::Ordinary(Ordinary {
            previous: Some(previous),
            ..Ordinary::default()
        });
        if let Some(round) = round {
            self.withdraw(round.invite_id, &round.accepted);
        }
        self.event(Event::LeftCluster {
            cluster,
            expired: true,
        });
        self.announce();
        if first {
            self.start_formation_round();
        }
        let grace = self.config.invite_timeout_ms + self.config.accept_timeout_ms;
        let at = self.now_ms + grace + self.rng.jitter(self.config.formation_interval_ms);
        self.set_timer(TimerId::Formation, at);
        self.rescan_shard();
    }
}

fn member_info(a: &Accepted) -> MemberInfo {
    MemberInfo {
        id: a.id,
        address: a.address.clone(),
        segment: a.record.segment,
        capacity_bytes: a.record.capacity_bytes,
    }
}
