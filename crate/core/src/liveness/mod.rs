//! Keeping the cluster alive (S9, S10): heartbeats, detecting silent members, and converging
//! on one membership view.
//!
//! # Overview
//!
//! Every `heartbeat_interval_ms` a member pings either every other member (S9,
//! [`HeartbeatMode::All`]) or the `per_side` members numbered on each side of it (S10,
//! [`HeartbeatMode::Neighbours`]). Detection is receive-side: a ping or pong from a member that
//! carries our cluster's stamp counts as hearing from it, and a monitored member not heard from for `offline_after_ms` is declared
//! offline. The member that notices proposes the next view without it (epoch + 1).
//!
//! Every ping and pong carries a [`ViewStamp`] (cluster id, epoch, size, digest). A member that
//! sees a stamp smaller than its own view sends its view back; views are totally ordered
//! ([`crate::cluster::view_order`]) and each member only ever moves to a greater view, so after
//! failures and partitions every member that can reach another ends on the same view — no two
//! members keep repairing against each other's views. A member that adopts a view which leaves
//! it out becomes an ordinary node (and may ask to join again, S13).
//!
//! `Liveness` keeps the clocks and the departed members of the current view; the node routes
//! heartbeats and its heartbeat and silence timers to it, and turns the members it finds silent
//! into the next view (`node::membership`).

use std::cmp::Ordering;

use crate::base::NodeId;
use crate::cluster::{view_order, Membership};
use crate::config::HeartbeatMode;
use crate::io::TimerId;
use crate::shared::{Role, Shared};
use crate::wire::{Message, ShardReport, ViewStamp};

/// Liveness state of the current view. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    /// Per slot of the current view (member-number order): when we last heard from that
    /// member.
    last_heard_ms: Vec<u64>,
    /// Per slot of the current view: the shard report of that member's latest heartbeat to
    /// us, if any (for what this member shows of the others; see [`ShardReport`]).
    reports: Vec<Option<ShardReport>>,
    /// Members dropped from earlier views, with when (the `cluster_size_max` latest): still
    /// pinged, backing off, while the cluster id lives, so that after a partition heals the two
    /// sides see each other's stamps and converge. One that answers as a non-member is
    /// dropped from the list.
    pub(crate) departed: Vec<(NodeId, u64)>,
    /// Members of the current view whose heartbeats carry an older view of our cluster than
    /// ours, with when this member first saw it under the current view. Each such heartbeat
    /// is answered with our view; a mate that takes views from us catches up at once, so one
    /// still behind `offline_after_ms` later does not take them (see [`StampVerdict`]).
    behind: Vec<(NodeId, u64)>,
}

/// What a heartbeat's stamp tells the node beyond a sign of life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StampVerdict {
    /// A member of our settled view answered as a non-member (it restarted, or joined
    /// elsewhere): it has left us, and the node drops it now rather than after a timeout.
    Gone(NodeId),
    /// A member our view lists has kept an older view of our cluster for `offline_after_ms`
    /// although we sent it ours every time: it refuses views from us, so it does not know us
    /// as a member (`cluster`, "Who may change a view") — our view is not its cluster's. This
    /// happens when the two sides of a partition went on apart and one side's view came to
    /// list members of the other that never heard of its newcomers. This member gives up its
    /// membership and asks to join again (S13), through members the others know.
    Refused(NodeId),
}

impl Liveness {
    /// This node became a member of a view with `members` members: every member counts as
    /// heard from now, and nobody has departed yet.
    pub(crate) fn joined(&mut self, members: usize, now_ms: u64) {
        self.last_heard_ms = vec![now_ms; members];
        self.reports = vec![None; members];
        self.departed.clear();
        self.behind.clear();
    }

    /// The view of our cluster changes from `old` to `next`. A member we already watched keeps
    /// its liveness clock: one that fell silent just before the view changed is declared
    /// offline `offline_after_ms` after its last sign of life, not that long after the change.
    /// (Repair may well have picked it as a new holder meanwhile, so every second counts.) A
    /// member we start watching only now has not been sending us heartbeats (S10: numbers near
    /// a join or leave change neighbours) and starts a fresh period. The members `old` had and
    /// `next` lacks join the departed.
    pub(crate) fn view_changed(&mut self, old: &Membership, next: &Membership, cx: &Shared) {
        let now_ms = cx.now_ms;
        let mode = cx.config.heartbeat_mode;
        let mut last_heard_ms = vec![now_ms; next.slots.len()];
        for (slot, heard) in next.slots.iter().zip(last_heard_ms.iter_mut()) {
            if let Some(before) = old.number_of(&slot.id) {
                if Self::watches(mode, old.number, old.slots.len(), before) {
                    *heard = self.last_heard_ms[before];
                }
            }
        }
        self.last_heard_ms = last_heard_ms;
        self.reports = next
            .slots
            .iter()
            .map(|slot| {
                old.number_of(&slot.id)
                    .and_then(|before| self.reports.get(before).copied().flatten())
            })
            .collect();
        let mut departed: Vec<(NodeId, u64)> = self
            .departed
            .iter()
            .copied()
            .chain(old.slots.iter().map(|s| (s.id, now_ms)))
            .filter(|(id, _)| next.number_of(id).is_none())
            .collect();
        departed.sort_by_key(|(id, since)| (*id, std::cmp::Reverse(*since)));
        departed.dedup_by_key(|(id, _)| *id);
        departed.sort_by_key(|(_, since)| std::cmp::Reverse(*since));
        departed.truncate(cx.config.cluster_size_max);
        self.departed = departed;
        self.behind.clear();
    }

    /// A heartbeat (ping or pong) from a member that carries our cluster's stamp is a sign of
    /// life. A node that answers with another cluster's stamp (it joined elsewhere) is not
    /// alive *for us*, and will be declared offline.
    pub(crate) fn heard_from(&mut self, cx: &Shared, from: NodeId, stamp: Option<ViewStamp>) {
        self.heard_from_with(cx, from, stamp, None);
    }

    /// [`Self::heard_from`] for a heartbeat that carries the sender's shard report: kept as
    /// its latest when the sender is a member of our view.
    pub(crate) fn heard_from_with(
        &mut self,
        cx: &Shared,
        from: NodeId,
        stamp: Option<ViewStamp>,
        report: Option<ShardReport>,
    ) {
        let Role::Member(m) = &cx.role else { return };
        if stamp.is_none_or(|s| s.cluster != m.view.cluster) {
            return;
        }
        if let Some(i) = m.number_of(&from) {
            self.last_heard_ms[i] = cx.now_ms;
            if report.is_some() {
                self.reports[i] = report;
            }
        }
    }

    /// Per member of the current view (member-number order): when we last heard from it
    /// (`None` for this member itself and for members it does not watch) and its latest shard
    /// report. Empty for an ordinary node.
    pub(crate) fn members_heard(&self, cx: &Shared) -> Vec<(Option<u64>, Option<ShardReport>)> {
        let Role::Member(m) = &cx.role else {
            return Vec::new();
        };
        let (mode, k) = (cx.config.heartbeat_mode, m.slots.len());
        (0..k)
            .map(|i| {
                let watched = Self::watches(mode, m.number, k, i);
                (
                    watched
                        .then(|| self.last_heard_ms.get(i).copied())
                        .flatten(),
                    self.reports.get(i).copied().flatten(),
                )
            })
            .collect()
    }

    /// Whether our own heartbeats already tell `from` we are alive, so its ping needs no pong:
    /// it sent our exact view's stamp (same cluster, epoch and members, hence the same
    /// numbering) and is one of the members we ping. Heartbeat targets are symmetric within one
    /// view, so each of the two hears from the other once per interval either way; answering
    /// would only double the heartbeat traffic. Everyone else — ordinary nodes measuring the
    /// round-trip time, members on another view, departed members — gets a pong.
    pub(crate) fn pings_back(cx: &Shared, from: NodeId, stamp: Option<ViewStamp>) -> bool {
        let Role::Member(m) = &cx.role else {
            return false;
        };
        if stamp.is_none() || stamp != cx.stamp() {
            return false;
        }
        m.number_of(&from).is_some_and(|theirs| {
            Self::watches(cx.config.heartbeat_mode, m.number, m.slots.len(), theirs)
        })
    }

    /// Whether `other` is among [`Self::monitored`]`(mode, number, k)`, without building the
    /// list: this runs for every heartbeat received.
    pub(crate) fn watches(mode: HeartbeatMode, number: usize, k: usize, other: usize) -> bool {
        if other == number || other >= k {
            return false;
        }
        match mode {
            HeartbeatMode::All => true,
            HeartbeatMode::Neighbours { per_side } => {
                let reach = per_side.min(k / 2 + 1);
                let forward = (other + k - number) % k;
                let backward = (number + k - other) % k;
                forward <= reach || backward <= reach
            }
        }
    }

    /// If the peer's view of our cluster is older than ours, send it ours. Returns what else
    /// the stamp tells (see [`StampVerdict`]): a member of our settled view that answered as
    /// a non-member, so that no node stays listed by a cluster it is not in, or one that keeps
    /// refusing our view.
    pub(crate) fn compare_stamp(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        stamp: Option<ViewStamp>,
    ) -> Option<StampVerdict> {
        let Role::Member(m) = &cx.role else {
            return None;
        };
        let Some(theirs) = stamp.filter(|s| s.cluster == m.view.cluster) else {
            // A departed member that is no longer in our cluster needs no more pings.
            self.departed.retain(|(id, _)| *id != from);
            let settled =
                cx.now_ms.saturating_sub(m.view_since_ms) >= cx.config.offline_after_ms / 2;
            let lapsing = m.expires_at_ms <= cx.now_ms + cx.config.accept_timeout_ms;
            return (m.number_of(&from).is_some() && settled && !lapsing)
                .then_some(StampVerdict::Gone(from));
        };
        let their_key = (theirs.epoch, theirs.members as usize, theirs.digest);
        if view_order(m.order_key(), their_key) != Ordering::Greater {
            self.behind.retain(|(id, _)| *id != from);
            return None;
        }
        let (view, listed) = (m.view.clone(), m.number_of(&from).is_some());
        cx.send(from, Message::View(view));
        if !listed {
            return None;
        }
        let now_ms = cx.now_ms;
        match self.behind.iter().find(|(id, _)| *id == from) {
            Some((_, since)) if now_ms.saturating_sub(*since) >= cx.config.offline_after_ms => {
                Some(StampVerdict::Refused(from))
            }
            Some(_) => None,
            None => {
                self.behind.push((from, now_ms));
                None
            }
        }
    }

    /// Member numbers this member checks (and expects checks from).
    pub(crate) fn monitored(mode: HeartbeatMode, number: usize, k: usize) -> Vec<usize> {
        match mode {
            HeartbeatMode::All => (0..k).filter(|i| *i != number).collect(),
            HeartbeatMode::Neighbours { per_side } => {
                let mut out = Vec::with_capacity(2 * per_side);
                for d in 1..=per_side.min(k / 2 + 1) {
                    for n in [(number + d) % k, (number + k - d % k) % k] {
                        if n != number && !out.contains(&n) {
                            out.push(n);
                        }
                    }
                }
                out
            }
        }
    }

    /// The heartbeat tick of a member: pings the watched members (and, backing off, the
    /// departed ones) and sets the next tick. Returns the watched members that fell silent
    /// (the node drops them from the view, then calls [`Self::arm_silence_check`]); `None` for
    /// an ordinary node, which has no heartbeats.
    pub(crate) fn on_heartbeat_timer(
        &mut self,
        cx: &mut Shared,
        report: ShardReport,
    ) -> Option<Vec<NodeId>> {
        let Role::Member(m) = &cx.role else {
            return None;
        };
        let targets = Self::monitored(cx.config.heartbeat_mode, m.number, m.slots.len());
        let stamp = cx.stamp();
        let dead = self.silent_members(cx);
        let mut ids: Vec<NodeId> = targets.iter().map(|&i| m.slots[i].id).collect();
        // Departed members are pinged too, backing off: on the heartbeats 0, 1, 2, 4, 8, …
        // intervals after they left, for as long as the cluster id lives (the list keeps the
        // `cluster_size_max` latest). Most departed members crashed or left for good, and at
        // one ping per interval they drew a third of all heartbeat traffic at 10,000 nodes; at
        // this back-off one costs a dozen pings over a six-hour id. But the two sides of a
        // partition know each other only from this list: however long they were cut off,
        // they find each other again within twice that time and merge.
        let interval = cx.config.heartbeat_interval_ms.max(1);
        ids.extend(
            self.departed
                .iter()
                .filter(|(_, since)| {
                    let beats = cx.now_ms.saturating_sub(*since) / interval;
                    beats == 0 || beats.is_power_of_two()
                })
                .map(|(id, _)| *id),
        );
        for id in ids {
            let nonce = cx.rng.next_u64();
            cx.send(
                id,
                Message::Ping {
                    nonce,
                    stamp,
                    shard: Some(report),
                },
            );
            cx.stats.pings_sent += 1;
        }
        let next = cx.now_ms + cx.config.heartbeat_interval_ms;
        cx.set_timer(TimerId::Heartbeat, next);
        Some(dead)
    }

    /// The watched members not heard from for more than `offline_after_ms`.
    pub(crate) fn silent_members(&self, cx: &Shared) -> Vec<NodeId> {
        let Role::Member(m) = &cx.role else {
            return Vec::new();
        };
        let (mode, k) = (cx.config.heartbeat_mode, m.slots.len());
        (0..k)
            .filter(|&i| Self::watches(mode, m.number, k, i))
            .filter(|&i| {
                cx.now_ms.saturating_sub(self.last_heard_ms[i]) > cx.config.offline_after_ms
            })
            .map(|i| m.slots[i].id)
            .collect()
    }

    /// If a watched member's silence will pass `offline_after_ms` before the next heartbeat
    /// tick checks it, wakes up at that moment too (the node's silence timer). While every
    /// watched member keeps pinging, its deadline lies beyond the next tick and this sets
    /// nothing.
    pub(crate) fn arm_silence_check(&self, cx: &mut Shared) {
        let Role::Member(m) = &cx.role else { return };
        let (mode, k) = (cx.config.heartbeat_mode, m.slots.len());
        let Some(deadline) = (0..k)
            .filter(|&i| Self::watches(mode, m.number, k, i))
            .map(|i| self.last_heard_ms[i] + cx.config.offline_after_ms + 1)
            // One already past it that is still listed (its view is being proposed) is the
            // heartbeat tick's again: this timer never fires twice at the same moment.
            .filter(|&deadline| deadline > cx.now_ms)
            .min()
        else {
            return;
        };
        let next_tick = cx.timers[TimerId::Heartbeat as usize].unwrap_or(u64::MAX);
        if deadline < next_tick {
            cx.set_timer(TimerId::Silence, deadline);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
