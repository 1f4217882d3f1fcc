//! Forming a cluster (S1–S3) and ending it (S4: an undersized cluster that can keep no P
//! copies dissolves early), and the invitation rounds that replacement (S12, S13,
//! [`crate::repair::replacement`]) runs too.
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
//!
//! A member keeps a formation tick only while it has formation work: the coordinator of a
//! cluster below its target size recruits (S12, [`crate::repair::replacement`]), and a cluster
//! that has had fewer than P members for `undersized_leave_after_ms` dissolves once a member of
//! another cluster with P members answers a ping (its blocks are then kept elsewhere, S18).
//!
//! `Formation` keeps this node's state of all that; the node routes invitations and the
//! formation and invitation timers to it, and becomes a member of the view a round founds
//! (`node::membership`).

use crate::base::{mix64, ClusterId, NodeId};
use crate::cluster::{check_view, cluster_id};
use crate::io::TimerId;
use crate::shared::{Peer, Role, Shared};
use crate::wire::{ClusterGenesis, MemberInfo, Message, NodeRecord, View, ViewStamp};

/// An invitation round: forming (no cluster, S1–S2) or replacing (S12, S13).
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
struct Received {
    from: NodeId,
    invite_id: u64,
    record: NodeRecord,
    cluster: Option<ClusterId>,
}

/// An invitation this node confirmed; it waits for the view.
#[derive(Debug, Clone)]
struct Committed {
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

/// Formation state. As an ordinary node: its invitation round, the invitations it collects or
/// confirmed, and its previous cluster. As a member: the clocks that decide whether its
/// cluster dissolves.
#[derive(Debug, Default)]
pub(crate) struct Formation {
    round: Option<Round>,
    received: Vec<Received>,
    collect_until_ms: Option<u64>,
    committed: Option<Committed>,
    previous: Option<Previous>,
    /// Since when this member's views have had fewer than P members without a break
    /// (`Config::undersized_leave_after_ms`); `None` while the cluster has at least P.
    undersized_since_ms: Option<u64>,
    /// When this undersized member last pinged the peers it would dissolve into, and when a
    /// member of another cluster with P members last answered a ping (see
    /// [`Formation::undersized_tick`]).
    dissolve_probe_ms: Option<u64>,
    reach_heard_ms: Option<u64>,
    /// When this ordinary node last asked to join because a hello told it of room (S13 at
    /// once): at most once per `formation_interval_ms` — under churn rooms open all the time,
    /// and asking at every one multiplied join requests tenfold in the 2,000-node world.
    asked_on_room_ms: Option<u64>,
}

/// Most invitations an invitee keeps while choosing; the rest are declined.
const RECEIVED_MAX: usize = 32;

impl Formation {
    fn is_previous_mate(&self, id: &NodeId) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|p| p.members.contains(id))
    }

    /// The ordinary node becomes a member: its round is withdrawn, the invitations it
    /// collected declined, and its previous cluster handed back (to tell whether the new one
    /// re-forms it). `members` is the new view's size: a cluster founded below P starts its
    /// undersized clock.
    pub(crate) fn joined(&mut self, cx: &mut Shared, members: usize) -> Option<Previous> {
        if let Some(round) = self.round.take() {
            withdraw(cx, round.invite_id, &round.accepted);
        }
        for r in std::mem::take(&mut self.received) {
            reply(cx, r.from, r.invite_id, false);
        }
        self.collect_until_ms = None;
        self.committed = None;
        self.undersized_since_ms = (members < cx.config.replicas).then_some(cx.now_ms);
        self.dissolve_probe_ms = None;
        self.reach_heard_ms = None;
        self.previous.take()
    }

    /// The member's view changed to one with `members` members. The undersized clock runs on
    /// across views that all stay below P (members leaving one by one, a newcomer that does
    /// not bring the cluster back to P): it measures how long the cluster has been unable to
    /// keep P copies, not how long this view held.
    pub(crate) fn view_changed(&mut self, cx: &Shared, members: usize) {
        self.undersized_since_ms =
            (members < cx.config.replicas).then(|| self.undersized_since_ms.unwrap_or(cx.now_ms));
    }

    /// The node is an ordinary node again, after its cluster `previous` (S4: it may re-form).
    pub(crate) fn left(&mut self, previous: Previous) {
        *self = Formation {
            previous: Some(previous),
            ..Formation::default()
        };
    }

    /// An ordinary node's formation tick: the next one is set, and an idle node starts an
    /// invitation round (S1). Returns whether it has too few ordinary peers for one and should
    /// ask a cluster to take it instead (S13).
    pub(crate) fn on_formation_timer(&mut self, cx: &mut Shared) -> bool {
        let idle =
            self.round.is_none() && self.committed.is_none() && self.collect_until_ms.is_none();
        let next = cx.now_ms + cx.rng.jitter(cx.config.formation_interval_ms);
        cx.set_timer(TimerId::Formation, next);
        idle && self.start_formation_round(cx)
    }

    /// S13, as soon as an ordinary node hears of a cluster with room: whether it should ask to
    /// join now — it has no round, invitation or confirmation of its own under way, too few
    /// ordinary peers to form a cluster (what its formation tick would find too), and has not
    /// asked on hearing of room within the last `formation_interval_ms`. A yes is recorded as
    /// an ask.
    pub(crate) fn ask_on_room(&mut self, cx: &Shared) -> bool {
        let idle =
            self.round.is_none() && self.committed.is_none() && self.collect_until_ms.is_none();
        let rested = self
            .asked_on_room_ms
            .is_none_or(|at| cx.now_ms >= at.saturating_add(cx.config.formation_interval_ms));
        let ask = idle
            && rested
            && matches!(cx.role, Role::Ordinary)
            && ranked_ordinary_peers(cx, usize::MAX, self.previous.as_ref()).len()
                < cx.config
                    .invite_after_peers
                    .max(cx.config.form_with_accepts);
        if ask {
            self.asked_on_room_ms = Some(cx.now_ms);
        }
        ask
    }

    /// Whether this member has formation work on its tick: recruiting (the coordinator of a
    /// cluster below its target size, S12) or watching an undersized cluster for dissolution.
    /// A settled member has none, and keeps no formation tick: at 10,000 nodes that tick was a
    /// quarter of every event the simulator processed.
    fn member_has_formation_work(&self, cx: &Shared) -> bool {
        let Role::Member(m) = &cx.role else {
            return false;
        };
        (m.number == 0 && m.view.members.len() < cx.config.cluster_size_target)
            || (self.undersized_since_ms.is_some() && cx.config.undersized_leave_after_ms.is_some())
    }

    /// Arms the next formation tick of a member that has formation work (see
    /// [`Self::member_has_formation_work`]); a pending earlier deadline stands.
    pub(crate) fn arm_member_formation(&self, cx: &mut Shared) {
        if self.member_has_formation_work(cx) {
            let at = cx.now_ms + cx.rng.jitter(cx.config.formation_interval_ms);
            cx.set_timer_no_later(TimerId::Formation, at);
        }
    }

    /// A member's formation tick, on the undersized clock: a cluster that has had too few
    /// members to keep P copies for `undersized_leave_after_ms` (measured from when it first
    /// fell below P, across later views) and found no replacement dissolves once another
    /// cluster with P members is in reach — as if its id lapsed now (S4). Returns whether to
    /// dissolve now; otherwise, if it would, it first makes sure such a cluster is really
    /// there: a peer table says *connected* long after a partition cut the link, and a
    /// remnant cut off with the only copies of some blocks must keep them (S18). So it pings
    /// the members of other clusters with P members and waits for a pong (a later tick
    /// dissolves). It also pings its `departed` members: the rest of its own cluster, cut off
    /// by the same partition, answers with our cluster's stamp, and the two sides merge
    /// instead.
    pub(crate) fn undersized_tick(&mut self, cx: &mut Shared, departed: &[(NodeId, u64)]) -> bool {
        let undersized_for = self
            .undersized_since_ms
            .map(|since| cx.now_ms.saturating_sub(since));
        if undersized_for
            .zip(cx.config.undersized_leave_after_ms)
            .is_some_and(|(undersized_for, after)| undersized_for >= after)
            && chain_kept_elsewhere(cx)
        {
            if self.reach_confirmed(cx) {
                return true;
            }
            self.probe_reach(cx, departed);
        }
        false
    }

    /// Whether a member of another cluster with at least P members answered a ping since the
    /// last probe.
    fn reach_confirmed(&self, cx: &Shared) -> bool {
        matches!(cx.role, Role::Member(_))
            && self
                .dissolve_probe_ms
                .zip(self.reach_heard_ms)
                .is_some_and(|(probe, heard)| heard >= probe)
    }

    /// Pings the peers an undersized cluster would dissolve into, and its departed members
    /// (see [`Self::undersized_tick`]).
    fn probe_reach(&mut self, cx: &mut Shared, departed: &[(NodeId, u64)]) {
        let Role::Member(m) = &cx.role else {
            return;
        };
        self.dissolve_probe_ms = Some(cx.now_ms);
        let ours = m.view.cluster;
        let mut targets: Vec<NodeId> = departed.iter().map(|(id, _)| *id).collect();
        targets.extend(
            cx.peers
                .iter()
                .filter(|(_, p)| keeps_p_elsewhere(cx, p, ours))
                .map(|(id, _)| *id),
        );
        targets.sort();
        targets.dedup();
        let stamp = cx.stamp();
        for id in targets {
            let nonce = cx.rng.next_u64();
            cx.send(
                id,
                Message::Ping {
                    nonce,
                    stamp,
                    shard: None,
                },
            );
        }
    }

    /// A pong's stamp: a member of another cluster with at least P members is in reach (see
    /// [`Self::undersized_tick`]).
    pub(crate) fn heard_from_other_cluster(&mut self, cx: &Shared, stamp: Option<ViewStamp>) {
        if let (Role::Member(m), Some(stamp)) = (&cx.role, stamp) {
            if stamp.cluster != m.view.cluster && stamp.members as usize >= cx.config.replicas {
                self.reach_heard_ms = Some(cx.now_ms);
            }
        }
    }

    /// S1: invite the best ordinary peers. Returns whether there are too few of them and the
    /// node should ask a cluster with room to take it instead (S13).
    pub(crate) fn start_formation_round(&mut self, cx: &mut Shared) -> bool {
        let mut invitees = ranked_ordinary_peers(cx, usize::MAX, self.previous.as_ref());
        if invitees.len()
            < cx.config
                .invite_after_peers
                .max(cx.config.form_with_accepts)
        {
            cx.dial_candidates();
            return true;
        }
        invitees.truncate(cx.config.cluster_size_max - 1);
        self.round = Some(invite(cx, invitees, None));
        self.rearm_invitation_timer(cx);
        false
    }

    /// An invitation to form a cluster (or to join one, S12). An archive, a member and a node
    /// that confirmed another invitation decline it (S3); an inviter yields only to a better
    /// one nobody confirmed yet; the others are collected for `invite_collect_ms`.
    pub(crate) fn on_invite(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        invite_id: u64,
        record: NodeRecord,
        cluster: Option<ClusterId>,
    ) {
        if cx.config.archive {
            return reply(cx, from, invite_id, false);
        }
        let my_rank = (cx.stats.blocks_served, cx.id);
        if !matches!(cx.role, Role::Ordinary) {
            // S3: a node already in a cluster declines every other invitation.
            return reply(cx, from, invite_id, false);
        }
        if self.committed.is_some() {
            return reply(cx, from, invite_id, false);
        }
        if let Some(round) = &self.round {
            // Crossing invitations: yield only to a better-ranked inviter nobody confirmed yet.
            let theirs_better = (record.blocks_served, std::cmp::Reverse(from))
                > (my_rank.0, std::cmp::Reverse(my_rank.1));
            let mate_first = self.is_previous_mate(&from) && !self.is_previous_mate(&cx.id);
            if !round.accepted.is_empty() || !(theirs_better || mate_first) {
                return reply(cx, from, invite_id, false);
            }
            let round = self.round.take().expect("checked above");
            for invitee in round.invited {
                cx.send(
                    invitee,
                    Message::InviteWithdrawn {
                        invite_id: round.invite_id,
                    },
                );
            }
        }
        if self.received.len() >= RECEIVED_MAX || self.received.iter().any(|r| r.from == from) {
            return reply(cx, from, invite_id, false);
        }
        self.received.push(Received {
            from,
            invite_id,
            record,
            cluster,
        });
        if self.collect_until_ms.is_none() {
            self.collect_until_ms = Some(cx.now_ms + cx.config.invite_collect_ms);
        }
        self.rearm_invitation_timer(cx);
    }

    /// A reply to our formation round. Returns the founding view and its expiry when the
    /// round is complete and enough confirmed (S2): the node becomes a member of it.
    pub(crate) fn on_invite_reply(&mut self, cx: &mut Shared, reply: Reply) -> Option<(View, u64)> {
        if take_reply(cx, &mut self.round, reply) {
            self.finish_round(cx)
        } else {
            None
        }
    }

    /// The inviter withdrew an invitation: forget it (and the wait for its view).
    pub(crate) fn on_invite_withdrawn(&mut self, cx: &Shared, from: NodeId, invite_id: u64) {
        if !matches!(cx.role, Role::Ordinary) {
            return;
        }
        if self
            .committed
            .as_ref()
            .is_some_and(|c| c.inviter == from && c.invite_id == invite_id)
        {
            self.committed = None;
        }
        self.received
            .retain(|r| !(r.from == from && r.invite_id == invite_id));
    }

    /// Whether a view from `from` for `cluster` is the one our confirmed invitation waits for.
    pub(crate) fn expects_view(&self, from: NodeId, cluster: ClusterId) -> bool {
        self.committed
            .as_ref()
            .is_some_and(|c| c.inviter == from && c.cluster.is_none_or(|id| id == cluster))
    }

    /// An ordinary node's invitation timer: a confirmation that waited too long is dropped,
    /// collected invitations are chosen from (S3), and a round past its deadline is closed.
    /// Returns the founding view and its expiry if the round formed a cluster (S2). The node
    /// re-arms the invitation timer afterwards.
    pub(crate) fn on_invitation_timer(&mut self, cx: &mut Shared) -> Option<(View, u64)> {
        let now = cx.now_ms;
        if self.committed.as_ref().is_some_and(|c| c.until_ms <= now) {
            self.committed = None;
        }
        if self.collect_until_ms.is_some_and(|t| t <= now) {
            self.choose_invitation(cx);
        }
        if self.round.as_ref().is_some_and(|r| r.deadline_ms <= now) {
            return self.finish_round(cx);
        }
        None
    }

    /// Sets the invitation timer to the earliest pending deadline of an ordinary node.
    pub(crate) fn rearm_invitation_timer(&self, cx: &mut Shared) {
        let next = [
            self.round.as_ref().map(|r| r.deadline_ms),
            self.collect_until_ms,
            self.committed.as_ref().map(|c| c.until_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(at) = next {
            cx.set_timer(TimerId::Invitation, at);
        }
    }

    /// S3: confirm the best collected invitation, decline the others.
    fn choose_invitation(&mut self, cx: &mut Shared) {
        self.collect_until_ms = None;
        let mut received = std::mem::take(&mut self.received);
        let previous = self.previous.clone();
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
            self.committed = Some(Committed {
                inviter: best.from,
                invite_id: best.invite_id,
                cluster: best.cluster,
                until_ms: cx.now_ms + cx.config.accept_timeout_ms,
            });
            reply(cx, best.from, best.invite_id, true);
        }
        for other in iter {
            reply(cx, other.from, other.invite_id, false);
        }
    }

    /// Closes the open round: forms the cluster if enough confirmed (S2), sending the
    /// founding view to the members; withdraws every confirmation it does not use.
    fn finish_round(&mut self, cx: &mut Shared) -> Option<(View, u64)> {
        let round = self.round.take()?;
        if round.accepted.len() < cx.config.form_with_accepts {
            withdraw(cx, round.invite_id, &round.accepted);
            return None;
        }
        let take = round.accepted.len().min(cx.config.cluster_size_max - 1);
        let (members, rest) = round.accepted.split_at(take);
        withdraw(cx, round.invite_id, rest);
        let mut founders: Vec<NodeId> = members.iter().map(|a| a.id).collect();
        founders.push(cx.id);
        founders.sort();
        let genesis = ClusterGenesis {
            proposer: cx.id,
            generation: self
                .previous
                .as_ref()
                .map_or(0, |p| p.generation.saturating_add(1)),
            founders,
        };
        let mut infos: Vec<MemberInfo> = members.iter().map(member_info).collect();
        infos.push(MemberInfo {
            id: cx.id,
            address: cx.config.address.clone(),
            segment: cx.config.segment,
            capacity_bytes: cx.config.capacity_bytes,
            device: cx.device(),
        });
        infos.sort_by_key(|info| info.id);
        let view = View {
            cluster: cluster_id(&genesis),
            genesis,
            epoch: 0,
            members: infos,
            expires_in_ms: cx.config.cluster_ttl_ms,
        };
        debug_assert!(check_view(&view, cx.config.cluster_size_max).is_ok());
        cx.stats.clusters_formed += 1;
        for member in members {
            cx.send(member.id, Message::View(view.clone()));
        }
        let expires_at = cx.now_ms + cx.config.cluster_ttl_ms;
        Some((view, expires_at))
    }
}

/// Whether a connected peer is a member of another cluster that has at least P members (by
/// the room it announced: `cluster_size_max` minus its open slots). Such a cluster keeps the
/// whole chain on P members (S18), so an undersized cluster whose members dissolve into it
/// loses no block; without one, dissolving could leave blocks with no cluster keeping them,
/// and the undersized cluster stays (and keeps recruiting).
fn chain_kept_elsewhere(cx: &Shared) -> bool {
    let Role::Member(m) = &cx.role else {
        return false;
    };
    let ours = m.view.cluster;
    cx.peers.values().any(|p| keeps_p_elsewhere(cx, p, ours))
}

/// Whether `p`, by the room it announced (`cluster_size_max` minus its open slots), is a
/// connected member of a cluster other than `ours` with at least P members.
fn keeps_p_elsewhere(cx: &Shared, p: &Peer, ours: ClusterId) -> bool {
    p.connected
        && p.cluster.is_some_and(|c| c != ours)
        && cx
            .config
            .cluster_size_max
            .saturating_sub(p.open_slots as usize)
            >= cx.config.replicas
}

/// Ordinary, connected, non-archive peers that said hello, best first (S1's node condition:
/// former mates of `previous`, blocks served, round-trip time), at most `max`. Failure
/// domains come before all of it (issue 17): a peer on a device not yet in the cluster (this
/// node's, its members', or a better-ranked candidate's) ranks before every peer on a device
/// already there, so a second member from one device is invited only when no other candidate
/// is in reach.
pub(crate) fn ranked_ordinary_peers(
    cx: &Shared,
    max: usize,
    previous: Option<&Previous>,
) -> Vec<NodeId> {
    let mut eligible: Vec<(bool, u64, u64, u64, NodeId)> = cx
        .peers
        .iter()
        .filter(|(id, p)| p.connected && p.cluster.is_none() && !cx.is_banned(id))
        .filter_map(|(id, p)| {
            let record = p.record.as_ref()?;
            (!record.archive).then_some((
                false,
                record.blocks_served,
                p.rtt_ms.unwrap_or(u64::MAX),
                mix64(cx.tie_salt ^ u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))),
                *id,
            ))
        })
        .collect();
    if let Some(previous) = previous {
        for e in eligible.iter_mut() {
            e.0 = previous.members.contains(&e.4);
        }
        // Former mates are invited even if our table still thinks they are in a cluster.
        for mate in previous.members.iter().filter(|id| !cx.is_banned(id)) {
            if !eligible.iter().any(|e| e.4 == *mate) {
                eligible.push((true, 0, u64::MAX, 0, *mate));
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
    let device = |id: &NodeId| {
        let said = cx
            .peers
            .get(id)
            .and_then(|p| p.record.as_ref())
            .map_or(0, |r| r.device);
        crate::placement::device_of(id, said)
    };
    let mut taken: Vec<u64> = cx
        .membership()
        .map(|m| m.slots.iter().map(|s| s.device).collect())
        .unwrap_or_default();
    taken.push(cx.device());
    let (mut diverse, mut same): (Vec<NodeId>, Vec<NodeId>) = (Vec::new(), Vec::new());
    for (.., id) in eligible {
        let d = device(&id);
        if taken.contains(&d) {
            same.push(id);
        } else {
            taken.push(d);
            diverse.push(id);
        }
    }
    diverse.extend(same);
    diverse.truncate(max);
    diverse
}

/// Sends invitations (to form a cluster, or with `cluster` to join ours) and returns the
/// round that tracks them.
pub(crate) fn invite(cx: &mut Shared, invitees: Vec<NodeId>, cluster: Option<ClusterId>) -> Round {
    let invite_id = cx.fresh_id();
    let record = cx.record();
    for invitee in &invitees {
        let message = Message::Invite {
            invite_id,
            address: cx.config.address.clone(),
            record: record.clone(),
            cluster,
        };
        cx.send(*invitee, message);
        cx.stats.invitations_sent += 1;
    }
    Round {
        invite_id,
        invited: invitees,
        replied: Vec::new(),
        accepted: Vec::new(),
        deadline_ms: cx.now_ms + cx.config.invite_timeout_ms,
    }
}

fn reply(cx: &mut Shared, to: NodeId, invite_id: u64, accept: bool) {
    let message = Message::InviteReply {
        invite_id,
        accept,
        address: cx.config.address.clone(),
        record: cx.record(),
    };
    cx.send(to, message);
}

/// An invitee's answer to a round (`Message::InviteReply`).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) from: NodeId,
    pub(crate) invite_id: u64,
    pub(crate) accept: bool,
    pub(crate) address: String,
    pub(crate) record: NodeRecord,
}

/// Records a reply to `round`. A late or unknown confirmation releases the confirmer. Returns
/// whether every invitee has replied (the round is complete).
pub(crate) fn take_reply(cx: &mut Shared, round: &mut Option<Round>, reply: Reply) -> bool {
    let Reply {
        from,
        invite_id,
        accept,
        address,
        record,
    } = reply;
    let Some(round) = round.as_mut().filter(|r| {
        r.invite_id == invite_id && r.invited.contains(&from) && !r.replied.contains(&from)
    }) else {
        if accept {
            cx.send(from, Message::InviteWithdrawn { invite_id });
        }
        return false;
    };
    round.replied.push(from);
    if accept {
        round.accepted.push(Accepted {
            id: from,
            address,
            record,
        });
    }
    round.replied.len() == round.invited.len()
}

/// Releases the confirmations in `accepted` that a round does not use.
pub(crate) fn withdraw(cx: &mut Shared, invite_id: u64, accepted: &[Accepted]) {
    for a in accepted {
        cx.send(a.id, Message::InviteWithdrawn { invite_id });
    }
}

pub(crate) fn member_info(a: &Accepted) -> MemberInfo {
    MemberInfo {
        id: a.id,
        address: a.address.clone(),
        segment: a.record.segment,
        capacity_bytes: a.record.capacity_bytes,
        device: crate::placement::device_of(&a.id, a.record.device),
    }
}

#[cfg(test)]
pub(crate) mod tests;
