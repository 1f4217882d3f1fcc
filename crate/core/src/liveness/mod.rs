//! Keeping the cluster alive (S9, S10): heartbeats, detecting silent members, and converging
//! on one membership view.
//!
//! # Overview
//!
//! Every `heartbeat_interval_ms` a member pings either every other member (S9,
//! [`HeartbeatMode::All`]) or the `per_side` members numbered on each side of it (S10,
//! [`HeartbeatMode::Neighbours`]). Detection is receive-side: any message from a member counts
//! as hearing from it, and a monitored member not heard from for `offline_after_ms` is declared
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

    /// Any message from a member counts as a sign of life.
    pub(crate) fn heard_from(&mut self, from: NodeId) {
        let now = self.now_ms;
        if let Role::Member(m) = &mut self.role {
            if let Some(i) = m.number_of(&from) {
                m.last_heard_ms[i] = now;
            }
        }
    }

    /// If the peer's view of our cluster is older than ours, send it ours.
    pub(crate) fn compare_stamp(&mut self, from: NodeId, stamp: Option<ViewStamp>) {
        let (Role::Member(m), Some(theirs)) = (&self.role, stamp) else {
            return;
        };
        if theirs.cluster != m.view.cluster {
            return;
        }
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
        let mut dead = Vec::new();
        for &i in &targets {
            let id = m.slots[i].id;
            if self.now_ms.saturating_sub(m.last_heard_ms[i]) > self.config.offline_after_ms {
                dead.push(id);
            }
        }
        let ids: Vec<NodeId> = targets.iter().map(|&i| m.slots[i].id).collect();
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
    }

    /// S9/S10 → S11/S12: drop `dead` from the view; repair and replacement follow from it.
    fn declare_offline(&mut self, dead: &[NodeId]) {
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
