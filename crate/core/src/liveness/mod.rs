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

use crate::cluster::view_order;
use crate::node::{Event, HeartbeatMode, Node, NodeId, Role, TimerId};
use crate::wire::{Message, ViewStamp};

impl Node {
    /// Our view's stamp, if we are a member.
    pub(crate) fn stamp(&self) -> Option<ViewStamp> {
        match &self.role {
            Role::Member(m) => Some(ViewStamp {
                cluster: m.view.cluster,
                epoch: m.view.epoch,
                members: m.view.members.len() as u32,
                digest: m.digest,
            }),
            Role::Ordinary(_) => None,
        }
    }

    /// A heartbeat (ping or pong) from a member that carries our cluster's stamp is a sign of
    /// life. A node that answers with another cluster's stamp (it joined elsewhere) is not
    /// alive *for us*, and will be declared offline.
    pub(crate) fn heard_from(&mut self, from: NodeId, stamp: Option<ViewStamp>) {
        let now = self.now_ms;
        if let Role::Member(m) = &mut self.role {
            if stamp.is_none_or(|s| s.cluster != m.view.cluster) {
                return;
            }
            if let Some(i) = m.number_of(&from) {
                m.last_heard_ms[i] = now;
            }
        }
    }

    /// Whether our own heartbeats already tell `from` we are alive, so its ping needs no pong:
    /// it sent our exact view's stamp (same cluster, epoch and members, hence the same
    /// numbering) and is one of the members we ping. Heartbeat targets are symmetric within one
    /// view, so each of the two hears from the other once per interval either way; answering
    /// would only double the heartbeat traffic. Everyone else — ordinary nodes measuring the
    /// round-trip time, members on another view, departed members — gets a pong.
    pub(crate) fn pings_back(&self, from: NodeId, stamp: Option<ViewStamp>) -> bool {
        let Role::Member(m) = &self.role else {
            return false;
        };
        if stamp.is_none() || stamp != self.stamp() {
            return false;
        }
        m.number_of(&from).is_some_and(|theirs| {
            Self::watches(self.config.heartbeat_mode, m.number, m.slots.len(), theirs)
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

    /// If the peer's view of our cluster is older than ours, send it ours.
    pub(crate) fn compare_stamp(&mut self, from: NodeId, stamp: Option<ViewStamp>) {
        let Role::Member(m) = &mut self.role else {
            return;
        };
        let Some(theirs) = stamp.filter(|s| s.cluster == m.view.cluster) else {
            // A departed member that is no longer in our cluster needs no more pings.
            m.departed.retain(|(id, _)| *id != from);
            // A member of our settled view that answers as a non-member (it restarted, or
            // joined elsewhere) has left us: drop it now rather than after a timeout, so that
            // no node stays listed by a cluster it is not in.
            let settled =
                self.now_ms.saturating_sub(m.view_since_ms) >= self.config.offline_after_ms / 2;
            let lapsing = m.expires_at_ms <= self.now_ms + self.config.accept_timeout_ms;
            if m.number_of(&from).is_some() && settled && !lapsing {
                self.declare_offline(&[from]);
            }
            return;
        };
        let their_key = (theirs.epoch, theirs.members as usize, theirs.digest);
        if view_order(m.order_key(), their_key) == std::cmp::Ordering::Greater {
            let view = m.view.clone();
            self.send(from, Message::View(view));
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

    pub(crate) fn on_heartbeat_timer(&mut self) {
        let Role::Member(m) = &self.role else { return };
        let targets = Self::monitored(self.config.heartbeat_mode, m.number, m.slots.len());
        let stamp = self.stamp();
        let dead = self.silent_members();
        let mut ids: Vec<NodeId> = targets.iter().map(|&i| m.slots[i].id).collect();
        // Departed members are pinged too, backing off: on the heartbeats 0, 1, 2, 4, 8, …
        // intervals after they left, for as long as the cluster id lives (the list keeps the
        // `cluster_size_max` latest). Most departed members crashed or left for good, and at
        // one ping per interval they drew a third of all heartbeat traffic at 10,000 nodes; at
        // this back-off one costs a dozen pings over a six-hour id. But the two sides of a
        // partition know each other only from this list: however long they were cut off,
        // they find each other again within twice that time and merge.
        let interval = self.config.heartbeat_interval_ms.max(1);
        ids.extend(
            m.departed
                .iter()
                .filter(|(_, since)| {
                    let beats = self.now_ms.saturating_sub(*since) / interval;
                    beats == 0 || beats.is_power_of_two()
                })
                .map(|(id, _)| *id),
        );
        for id in ids {
            let nonce = self.rng.next_u64();
            self.send(id, Message::Ping { nonce, stamp });
            self.stats.pings_sent += 1;
        }
        let next = self.now_ms + self.config.heartbeat_interval_ms;
        self.set_timer(TimerId::Heartbeat, next);
        if !dead.is_empty() {
            self.declare_offline(&dead);
        }
        self.arm_silence_check();
    }

    /// The watched members not heard from for more than `offline_after_ms`.
    fn silent_members(&self) -> Vec<NodeId> {
        let Role::Member(m) = &self.role else {
            return Vec::new();
        };
        let (mode, k) = (self.config.heartbeat_mode, m.slots.len());
        (0..k)
            .filter(|&i| Self::watches(mode, m.number, k, i))
            .filter(|&i| {
                self.now_ms.saturating_sub(m.last_heard_ms[i]) > self.config.offline_after_ms
            })
            .map(|i| m.slots[i].id)
            .collect()
    }

    /// If a watched member's silence will pass `offline_after_ms` before the next heartbeat
    /// tick checks it, wakes up at that moment too. While every watched member keeps
    /// pinging, its deadline lies beyond the next tick and this sets nothing.
    pub(crate) fn arm_silence_check(&mut self) {
        let Role::Member(m) = &self.role else { return };
        let (mode, k) = (self.config.heartbeat_mode, m.slots.len());
        let Some(deadline) = (0..k)
            .filter(|&i| Self::watches(mode, m.number, k, i))
            .map(|i| m.last_heard_ms[i] + self.config.offline_after_ms + 1)
            // One already past it that is still listed (its view is being proposed) is the
            // heartbeat tick's again: this timer never fires twice at the same moment.
            .filter(|&deadline| deadline > self.now_ms)
            .min()
        else {
            return;
        };
        let next_tick = self.timers[TimerId::Heartbeat as usize].unwrap_or(u64::MAX);
        if deadline < next_tick {
            self.set_timer(TimerId::Silence, deadline);
        }
    }

    pub(crate) fn on_silence_timer(&mut self) {
        let dead = self.silent_members();
        if !dead.is_empty() {
            self.declare_offline(&dead);
        }
        self.arm_silence_check();
    }

    /// S9/S10 → S11/S12: drop `dead` from the view; repair and replacement follow from it.
    pub(crate) fn declare_offline(&mut self, dead: &[NodeId]) {
        let Role::Member(m) = &self.role else { return };
        let members = m
            .view
            .members
            .iter()
            .filter(|info| !dead.contains(&info.id))
            .cloned()
            .collect();
        for member in dead {
            self.stats.members_declared_offline += 1;
            self.event(Event::MemberOffline { member: *member });
        }
        self.propose_view(members);
        // S12: look for a replacement soon rather than at the next formation round.
        let at = self.now_ms + self.config.invite_timeout_ms;
        self.set_timer_no_later(TimerId::Formation, at);
    }
}

#[cfg(test)]
pub(crate) mod tests;
