//! The node's membership transitions (S2–S4, S9–S13): becoming a member of a founded view,
//! adopting a greater view of our cluster, proposing the next one, and becoming an ordinary
//! node again. This is where the sub-protocols meet: formation founds views (S1–S3) and
//! dissolves undersized clusters (S4), liveness finds silent members (S9–S10), replacement
//! admits outsiders (S12–S13), and every change makes repair rescan what this member must hold
//! (S11). Views are totally ordered (`cluster::view_order`) and a member only ever moves to a
//! greater one, so members converge. A view is taken only from a node this one knows as a
//! member, and moves it at most `cluster::VIEW_EPOCH_STEP_MAX` epochs (the rule is written
//! out in [`crate::cluster`], "Who may change a view").

use super::Node;
use crate::base::NodeId;
use crate::cluster::{check_view, view_digest, ClusterId, Membership, VIEW_EPOCH_STEP_MAX};
use crate::formation::{withdraw, Previous, Reply};
use crate::io::{Event, Output, TimerId};
use crate::repair::replacement::Replacement;
use crate::shared::Role;
use crate::wire::{MemberInfo, Message, NodeRecord, View};

impl Node {
    /// The formation timer: an ordinary node's rounds (S1) or request to join (S13); a
    /// member's undersized clock (S4) and recruiting (S12).
    pub(crate) fn on_formation_timer(&mut self) {
        let cx = &mut self.shared;
        match cx.role {
            Role::Ordinary => {
                if self.formation.on_formation_timer(cx) {
                    Replacement::ask_to_join(cx);
                }
            }
            Role::Member(_) => {
                self.formation.arm_member_formation(cx);
                if self.formation.undersized_tick(cx, &self.liveness.departed) {
                    return self.leave_undersized();
                }
                self.replacement.recruit(cx);
            }
        }
    }

    /// The invitation timer: an open round (formation's or replacement's) closes at its
    /// deadline; an invitee chooses among the invitations it collected.
    pub(crate) fn on_invitation_timer(&mut self) {
        let cx = &mut self.shared;
        match cx.role {
            Role::Ordinary => {
                if let Some((view, expires_at)) = self.formation.on_invitation_timer(cx) {
                    self.become_member(view, expires_at);
                }
            }
            Role::Member(_) => {
                if let Some(members) = self.replacement.on_invitation_timer(cx) {
                    self.propose_view(members);
                }
            }
        }
        self.rearm_invitation_timer();
    }

    /// Sets the invitation timer for the round of our role, if one is open.
    fn rearm_invitation_timer(&mut self) {
        match self.shared.role {
            Role::Ordinary => self.formation.rearm_invitation_timer(&mut self.shared),
            Role::Member(_) => self.replacement.rearm_invitation_timer(&mut self.shared),
        }
    }

    /// An invitation. A member whose id is about to lapse and is invited by a mate to re-form
    /// lapses now (S4); formation answers it.
    pub(crate) fn on_invite(
        &mut self,
        from: NodeId,
        invite_id: u64,
        record: NodeRecord,
        cluster: Option<ClusterId>,
    ) {
        let cx = &self.shared;
        if !cx.config.archive {
            if let Role::Member(m) = &cx.role {
                let mate = m.number_of(&from).is_some();
                let lapsing = m.expires_at_ms <= cx.now_ms + cx.config.accept_timeout_ms;
                if cluster.is_none() && mate && lapsing {
                    self.expire_cluster();
                }
            }
        }
        self.formation
            .on_invite(&mut self.shared, from, invite_id, record, cluster);
    }

    /// A reply to our round: formation's (founding, S2) or replacement's (S12, S13).
    pub(crate) fn on_invite_reply(&mut self, reply: Reply) {
        let cx = &mut self.shared;
        match cx.role {
            Role::Ordinary => {
                if let Some((view, expires_at)) = self.formation.on_invite_reply(cx, reply) {
                    self.become_member(view, expires_at);
                }
            }
            Role::Member(_) => {
                if let Some(members) = self.replacement.on_invite_reply(cx, reply) {
                    self.propose_view(members);
                }
            }
        }
    }

    /// S9/S10 → S11/S12: drop `dead` from the view; repair and replacement follow from it.
    pub(crate) fn declare_offline(&mut self, dead: &[NodeId]) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        let members = m
            .view
            .members
            .iter()
            .filter(|info| !dead.contains(&info.id))
            .cloned()
            .collect();
        for member in dead {
            cx.stats.members_declared_offline += 1;
            cx.event(Event::MemberOffline { member: *member });
        }
        self.propose_view(members);
        // S12: look for a replacement soon rather than at the next formation round.
        let cx = &mut self.shared;
        let at = cx.now_ms + cx.config.invite_timeout_ms;
        cx.set_timer_no_later(TimerId::Formation, at);
    }

    /// [`Input::SetCapacity`](crate::io::Input::SetCapacity): when our view lists another
    /// capacity for this member than it now offers, propose the next view with its entry
    /// changed (views are greatest-wins, so one that lost the change is followed by another).
    pub(crate) fn announce_capacity(&mut self) {
        let cx = &self.shared;
        let Role::Member(m) = &cx.role else { return };
        let capacity = cx.config.capacity_bytes;
        let Some(mine) = m.view.members.iter().find(|info| info.id == cx.id) else {
            return;
        };
        if mine.capacity_bytes == capacity {
            return;
        }
        let members = m
            .view
            .members
            .iter()
            .map(|info| {
                let mut info = info.clone();
                if info.id == cx.id {
                    info.capacity_bytes = capacity;
                }
                info
            })
            .collect();
        self.shared.stats.capacity_announced += 1;
        self.propose_view(members);
    }

    /// Makes `members` (any order) the next view of our cluster, adopts it and sends it to
    /// everyone in the old or new view.
    pub(crate) fn propose_view(&mut self, mut members: Vec<MemberInfo>) {
        let cx = &self.shared;
        let Role::Member(m) = &cx.role else { return };
        members.sort_by_key(|info| info.id);
        members.dedup_by(|a, b| a.id == b.id);
        let view = View {
            cluster: m.view.cluster,
            genesis: m.view.genesis.clone(),
            epoch: m.view.epoch.saturating_add(1),
            members,
            expires_in_ms: m.expires_at_ms.saturating_sub(cx.now_ms),
        };
        self.send_and_adopt_view(view);
    }

    /// Sends `view` to everyone in our current view or in it, then adopts it.
    fn send_and_adopt_view(&mut self, view: View) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        let mut recipients: Vec<NodeId> = m.slots.iter().map(|s| s.id).collect();
        recipients.extend(view.members.iter().map(|i| i.id));
        recipients.sort();
        recipients.dedup();
        for to in recipients {
            if to != cx.id {
                cx.send(to, Message::View(view.clone()));
            }
        }
        self.adopt_view(view);
    }

    /// A view from `from`: the founding view our confirmed invitation waits for, or a view of
    /// our own cluster — adopted if greater, answered with ours if smaller. Only from a
    /// sender the view lists and this node knows as a member, and at most
    /// [`VIEW_EPOCH_STEP_MAX`] epochs ahead (see "Who may change a view" in [`crate::cluster`]).
    pub(crate) fn on_view(&mut self, from: NodeId, mut view: View) {
        let cx = &mut self.shared;
        if check_view(&view, cx.config.cluster_size_max).is_err() {
            cx.stats.messages_ignored += 1;
            return;
        }
        if cx.is_banned(&from) {
            // A faulty holder we keep out (issue 16): its views move nobody.
            cx.stats.views_refused += 1;
            cx.stats.messages_ignored += 1;
            return;
        }
        let lists = |id: &NodeId| view.members.binary_search_by(|m| m.id.cmp(id)).is_ok();
        let (lists_me, lists_sender) = (lists(&cx.id), lists(&from));
        match &cx.role {
            Role::Ordinary => {
                if self.formation.expects_view(from, view.cluster) && lists_me && lists_sender {
                    let expires_at = cx.now_ms.saturating_add(view.expires_in_ms);
                    self.become_member(view, expires_at);
                } else {
                    cx.stats.messages_ignored += 1;
                }
            }
            Role::Member(m) => {
                if view.cluster != m.view.cluster {
                    cx.stats.messages_ignored += 1;
                    return;
                }
                let known = m.number_of(&from).is_some()
                    || self.liveness.departed.iter().any(|(id, _)| *id == from);
                if !known || !lists_sender {
                    cx.stats.views_refused += 1;
                    cx.stats.messages_ignored += 1;
                    return;
                }
                let furthest = m.view.epoch.saturating_add(VIEW_EPOCH_STEP_MAX);
                if view.epoch > furthest {
                    view.epoch = furthest;
                    cx.stats.view_epochs_capped += 1;
                }
                let theirs = (view.epoch, view.members.len(), view_digest(&view.members));
                match theirs.cmp(&m.order_key()) {
                    std::cmp::Ordering::Greater if !lists_me => {
                        self.rejoin_greater_view(view);
                        self.drop_banned();
                    }
                    std::cmp::Ordering::Greater => {
                        self.adopt_view(view);
                        self.drop_banned();
                    }
                    std::cmp::Ordering::Less => {
                        let mine = m.view.clone();
                        cx.send(from, Message::View(mine));
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
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        let me = m.view.members.iter().find(|info| info.id == cx.id).cloned();
        let (Some(me), true) = (me, view.members.len() < cx.config.cluster_size_max) else {
            return self.adopt_view(view);
        };
        cx.stats.views_rejoined += 1;
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
    pub(crate) fn become_member(&mut self, view: View, expires_at_ms: u64) {
        let cx = &mut self.shared;
        if !matches!(cx.role, Role::Ordinary) {
            return;
        }
        // Leave no loose ends: withdraw our own round, decline what we collected.
        let previous = self.formation.joined(cx, view.members.len());
        let mut membership = Membership::new(cx.id, view, cx.now_ms, expires_at_ms);
        membership.reformed = previous.is_some_and(|p| {
            membership
                .slots
                .iter()
                .any(|s| s.id != cx.id && p.members.contains(&s.id))
        });
        let event = Event::JoinedCluster {
            cluster: membership.view.cluster,
            epoch: membership.view.epoch,
            members: membership.slots.len(),
            number: membership.number,
        };
        // Every other member enters this node's view.
        let joined: Vec<NodeId> = membership
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != cx.id)
            .collect();
        self.connect_members(&membership);
        self.liveness
            .joined(membership.slots.len(), self.shared.now_ms);
        self.replacement.joined();
        let cx = &mut self.shared;
        cx.role = Role::Member(Box::new(membership));
        cx.stats.clusters_joined += 1;
        cx.stats.views_adopted += 1;
        cx.event(event);
        for member in joined {
            cx.event(Event::MemberJoined { member });
        }
        if let Some(m) = cx.membership() {
            let domains = m.failure_domains(cx.config.replicas);
            cx.event(Event::FailureDomains(domains));
        }
        cx.announce();
        cx.set_timer(
            TimerId::Heartbeat,
            cx.now_ms + cx.config.heartbeat_interval_ms,
        );
        cx.set_timer(TimerId::ClusterExpiry, expires_at_ms);
        self.formation.arm_member_formation(cx);
        self.repair.rescan_shard(cx);
        self.save_membership();
    }

    /// Dials members we are not connected to.
    fn connect_members(&mut self, membership: &Membership) {
        let cx = &mut self.shared;
        for info in &membership.view.members {
            if info.id == cx.id || cx.peers.get(&info.id).is_some_and(|p| p.connected) {
                continue;
            }
            cx.push(Output::Connect {
                peer: info.id,
                address: info.address.clone(),
            });
        }
    }

    /// Adopts a greater view of our own cluster (S9–S13): renumber, or leave if it drops us.
    pub(crate) fn adopt_view(&mut self, view: View) {
        let cx = &mut self.shared;
        let Role::Member(old) = &cx.role else {
            return;
        };
        let cluster = old.view.cluster;
        let old_domains = old.failure_domains(cx.config.replicas);
        if view.members.binary_search_by(|m| m.id.cmp(&cx.id)).is_err() {
            return self.leave_cluster();
        }
        // A greater view may shorten the id's life (an undersized cluster dissolving), never
        // lengthen it.
        let expires_at_ms = old
            .expires_at_ms
            .min(cx.now_ms.saturating_add(view.expires_in_ms));
        let shortened = expires_at_ms < old.expires_at_ms;
        let mut next = Membership::new(cx.id, view, cx.now_ms, expires_at_ms);
        // A member that was not in our last view (a newcomer, or the other side of a healed
        // partition) may bring blocks nobody we could ask had.
        let joined: Vec<NodeId> = next
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != cx.id && old.number_of(id).is_none())
            .collect();
        let gained = !joined.is_empty();
        self.liveness.view_changed(old, &next, cx);
        next.reformed = old.reformed;
        next.announced_room = old.announced_room;
        self.formation.view_changed(cx, next.slots.len());
        let event = Event::ViewChanged {
            cluster,
            epoch: next.view.epoch,
            members: next.slots.len(),
            number: next.number,
        };
        self.connect_members(&next);
        let cx = &mut self.shared;
        let coordinator_short =
            next.number == 0 && next.slots.len() < cx.config.cluster_size_target;
        let domains = next.failure_domains(cx.config.replicas);
        let domains_changed = old_domains != domains;
        cx.role = Role::Member(Box::new(next));
        cx.stats.views_adopted += 1;
        cx.event(event);
        for member in joined {
            cx.event(Event::MemberJoined { member });
        }
        if domains_changed {
            cx.event(Event::FailureDomains(domains));
        }
        // Peers outside the cluster learn its new room (join requests, S13; dissolving).
        cx.announce_room();
        if shortened {
            cx.set_timer_no_later(TimerId::ClusterExpiry, expires_at_ms);
        }
        if coordinator_short {
            // S12: the coordinator looks for a replacement soon.
            let at = cx.now_ms + cx.config.invite_timeout_ms;
            cx.set_timer_no_later(TimerId::Formation, at);
        }
        self.formation.arm_member_formation(cx);
        self.liveness.arm_silence_check(cx);
        self.repair.rescan_shard(cx);
        if gained {
            self.repair.unpark_all(cx);
        }
        self.save_membership();
    }

    /// Becomes an ordinary node again before the id lapses: a view dropped us, or a mate
    /// refuses ours. Blocks stay stored (sources for whichever cluster this node joins next).
    fn leave_cluster(&mut self) {
        let cx = &mut self.shared;
        let Role::Member(old) = &cx.role else {
            return;
        };
        let cluster = old.view.cluster;
        let previous = previous_of(old, cx.id);
        cx.role = Role::Ordinary;
        self.formation.left(previous);
        // An open replacement round ends with the membership.
        self.replacement.left();
        cx.event(Event::LeftCluster {
            cluster,
            expired: false,
        });
        cx.announce();
        self.repair.rescan_shard(cx);
        self.save_membership();
    }

    /// A member our view lists has refused our view for `offline_after_ms` (see
    /// `liveness::StampVerdict::Refused`): our view is a side of the cluster its members do not
    /// know. This member leaves and asks to join again, soon (S13): through the members the
    /// others know, or into another cluster.
    pub(crate) fn leave_refused_view(&mut self) {
        self.shared.stats.views_left_refused += 1;
        self.leave_cluster();
        let cx = &mut self.shared;
        let at = cx.now_ms + cx.config.invite_timeout_ms;
        cx.set_timer_no_later(TimerId::Formation, at);
    }

    pub(crate) fn on_expiry_timer(&mut self) {
        let cx = &mut self.shared;
        if let Role::Member(m) = &cx.role {
            if m.expires_at_ms <= cx.now_ms {
                self.expire_cluster();
            } else {
                let at = m.expires_at_ms;
                cx.set_timer(TimerId::ClusterExpiry, at);
            }
        }
    }

    /// S4: the cluster id lapsed; become ordinary. Member number 0 invites the old members at
    /// once to re-form; the others wait for that invitation before inviting on their own.
    pub(crate) fn expire_cluster(&mut self) {
        let cx = &mut self.shared;
        let Role::Member(m) = &cx.role else { return };
        let cluster = m.view.cluster;
        let first = m.number == 0;
        let previous = previous_of(m, cx.id);
        let round = self.replacement.left();
        cx.role = Role::Ordinary;
        self.formation.left(previous);
        if let Some(round) = round {
            withdraw(cx, round.invite_id, &round.accepted);
        }
        cx.event(Event::LeftCluster {
            cluster,
            expired: true,
        });
        cx.announce();
        if first && self.formation.start_formation_round(cx) {
            Replacement::ask_to_join(cx);
        }
        let grace = cx.config.invite_timeout_ms + cx.config.accept_timeout_ms;
        let at = cx.now_ms + grace + cx.rng.jitter(cx.config.formation_interval_ms);
        cx.set_timer(TimerId::Formation, at);
        self.repair.rescan_shard(cx);
        self.save_membership();
    }

    /// The cluster has had too few members to keep P copies for `undersized_leave_after_ms`
    /// and another cluster with P members is in reach (formation decided): dissolve it — as
    /// if its id lapsed now (S4). A view with the next epoch and no time left tells the other
    /// members, who lapse with us, so the whole cluster ends at once rather than side by side
    /// with a remnant that lacks the blocks its leavers held. Blocks stay stored: they are
    /// sources for whichever cluster each member joins next.
    fn leave_undersized(&mut self) {
        let cx = &mut self.shared;
        let Role::Member(m) = &mut cx.role else {
            return;
        };
        cx.stats.undersized_leaves += 1;
        m.expires_at_ms = cx.now_ms;
        let members = m.view.members.clone();
        self.propose_view(members);
        self.expire_cluster();
    }
}

/// The cluster `m` as this node (`me`) leaves it: its other members and generation (S4).
fn previous_of(m: &Membership, me: NodeId) -> Previous {
    Previous {
        members: m
            .slots
            .iter()
            .map(|s| s.id)
            .filter(|id| *id != me)
            .collect(),
        generation: m.view.genesis.generation,
    }
}

#[cfg(test)]
mod tests;
