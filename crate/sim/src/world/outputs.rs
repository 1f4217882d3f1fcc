//! Carrying out what nodes ask for — messages, dials, storage (see `disk`), events — and the
//! invariant checks that ride along. Timers are not here: the node's host keeps them.

use shoal_core::node::{Event, NodeId, Output};
use shoal_core::wire::{encoded_len, Message};

use super::{HostIdx, SimEvent, World, WorldError};
use crate::invariants::Invariant;
use crate::network::{Delivery, Partition};
use crate::replicas::{Cause, ClusterIdx, PendingLoss};
use crate::storage::Stored;

impl World {
    /// Carries out one output of the node on `host`.
    pub(super) fn apply(&mut self, host: HostIdx, output: Output) -> Result<(), WorldError> {
        match output {
            Output::Send { to, message } => self.send(host, to, message),
            Output::Connect { peer, .. } => self.connect(host, peer),
            Output::SetTimer { .. } => unreachable!("the node's host keeps its timers"),
            Output::Storage(command) => self.storage(host, command),
            Output::Event(event) => self.event(host, event),
        }
    }

    fn linked(&self, a: HostIdx, b: HostIdx) -> bool {
        self.hosts[a as usize].links.contains(&b)
    }

    /// Makes a link between two online hosts; both ends hear of it after one latency.
    fn link(&mut self, a: HostIdx, b: HostIdx) -> Result<(), WorldError> {
        self.hosts[a as usize].links.insert(b);
        self.hosts[b as usize].links.insert(a);
        let at_ms = self.queue.now_ms() + self.network.base_latency_ms(a, b);
        for (host, peer) in [(a, b), (b, a)] {
            let incarnation = self.hosts[host as usize].incarnation;
            let peer = self.hosts[peer as usize].id;
            self.queue.schedule(
                at_ms,
                SimEvent::Link {
                    host,
                    incarnation,
                    peer: Box::new(peer),
                    up: true,
                },
            )?;
        }
        Ok(())
    }

    /// The live host with this id, if any.
    fn live_host(&self, id: &NodeId) -> Option<HostIdx> {
        self.by_id
            .get(id)
            .copied()
            .filter(|host| self.hosts[*host as usize].running.is_some())
    }

    /// A dial. One that cannot succeed (the peer is gone, or across a partition) is silent:
    /// the core has no input for a failed dial, and `PeerDisconnected` is for connections
    /// that existed.
    fn connect(&mut self, host: HostIdx, peer: NodeId) -> Result<(), WorldError> {
        match self.live_host(&peer) {
            Some(target) if target == host || self.linked(host, target) => Ok(()),
            Some(target) if !self.network.separated(host, target) => self.link(host, target),
            _ => Ok(()),
        }
    }

    pub(super) fn send(
        &mut self,
        host: HostIdx,
        to: NodeId,
        message: Message,
    ) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        // An adversary's message may be rewritten or dropped before it leaves.
        let Some(message) = self.serving_outgoing(host, &to, message) else {
            return Ok(());
        };
        let index = host as usize;
        self.counters.messages_sent += 1;
        *self
            .counters
            .messages_by_kind
            .entry(message.kind())
            .or_default() += 1;
        if !self.hosts[index].archive {
            self.counters.light_messages_sent += 1;
            self.log.checked(Invariant::MessageRateBounded, 1);
            if let Some(count) = self.rate.record(index, now_ms, message.kind()) {
                let detail = format!(
                    "node {:?} (host {host}) sent {count} messages in one {} s window, more than {} messages/s allow ({})",
                    self.hosts[index].id,
                    self.config.rate_window_s,
                    self.config.max_messages_per_node_per_s,
                    self.rate.kinds_in_window(index)
                );
                self.log
                    .violate(now_ms, Invariant::MessageRateBounded, detail);
            }
        }
        let bytes = match encoded_len(&message) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.counters.encode_failures += 1;
                return Ok(());
            }
        };
        self.counters.message_bytes += bytes as u64;
        let Some(target) = self.live_host(&to) else {
            self.counters.messages_to_offline += 1;
            self.serving_dropped(host, &to, &message);
            return Ok(());
        };
        if !self.linked(host, target) {
            // Sending dials first; a dial that cannot succeed is silent (see `connect`).
            if self.network.separated(host, target) {
                self.counters.messages_partitioned += 1;
                self.serving_dropped(host, &to, &message);
                return Ok(());
            }
            self.link(host, target)?;
        }
        match self.network.transmit(now_ms, host, target, bytes) {
            Delivery::At(at_ms) => {
                let incarnation = self.hosts[target as usize].incarnation;
                let from = self.hosts[index].id;
                self.queue.schedule(
                    at_ms,
                    SimEvent::Deliver {
                        to: target,
                        incarnation,
                        message: Box::new((from, message)),
                    },
                )?;
            }
            Delivery::Lost => {
                self.counters.messages_lost += 1;
                self.serving_dropped(host, &to, &message);
            }
            Delivery::Partitioned => {
                self.counters.messages_partitioned += 1;
                self.serving_dropped(host, &to, &message);
            }
        }
        Ok(())
    }

    pub(super) fn block_len(&self, height: u32) -> u64 {
        self.chain.block(height).map_or(0, |b| b.len() as u64)
    }

    /// One holder of `height` in `cluster` is gone; the live-holder invariant is evaluated.
    pub(super) fn drop_holder(&mut self, cluster: ClusterIdx, height: u32, cause: Cause) {
        let now_ms = self.queue.now_ms();
        self.log.checked(Invariant::LiveHolder, 1);
        self.replicas.remove_holder(cluster, height, now_ms, cause);
    }

    /// The node on `host` reported an event.
    fn event(&mut self, host: HostIdx, event: Event) -> Result<(), WorldError> {
        self.serving_event(host, &event)?;
        if self.trace.events && !matches!(event, Event::TxQueryDone { .. } | Event::JobReady { .. })
        {
            let cluster = self.hosts[host as usize].cluster;
            eprintln!(
                "{} ms host {host} (#{cluster:?}): {event:?}",
                self.queue.now_ms()
            );
        }
        match event {
            Event::JoinedCluster { cluster, .. } | Event::ViewChanged { cluster, .. } => {
                let idx = self.cluster_idx(cluster);
                self.cluster_changed_ms[idx as usize] = self.queue.now_ms();
                if self.hosts[host as usize].cluster != Some(idx) {
                    self.leave_cluster(host, Cause::SwitchedCluster);
                    self.join_cluster(host, idx);
                }
            }
            // A lapsed id (S4) dissolves the cluster: that is not a member departure.
            Event::LeftCluster { expired, .. } => {
                let cause = if expired {
                    Cause::Expired
                } else {
                    Cause::DroppedFromView
                };
                self.leave_cluster(host, cause);
                // An ordinary node again: it asks the directory for peers.
                let incarnation = self.hosts[host as usize].incarnation;
                let at_ms = self.queue.now_ms() + 1;
                self.queue
                    .schedule(at_ms, SimEvent::Directory { host, incarnation })?;
            }
            Event::MemberOffline { .. } => self.counters.members_declared_offline += 1,
            Event::BlockStored { .. } => self.counters.block_stored_events += 1,
            Event::BlockRejected { .. } => self.counters.blocks_rejected_events += 1,
            _ => {}
        }
        Ok(())
    }

    /// The dense index of a cluster id, allocating one the first time it is seen.
    fn cluster_idx(&mut self, cluster: shoal_core::cluster::ClusterId) -> ClusterIdx {
        let next = self.cluster_index.len() as ClusterIdx;
        let now_ms = self.queue.now_ms();
        let idx = *self.cluster_index.entry(cluster).or_insert(next);
        if idx == next && self.cluster_changed_ms.len() == next as usize {
            self.cluster_changed_ms.push(now_ms);
        }
        idx
    }

    /// `host` is now a member of `cluster`: its verified blocks count as replicas there.
    fn join_cluster(&mut self, host: HostIdx, cluster: ClusterIdx) {
        let now_ms = self.queue.now_ms();
        let index = host as usize;
        self.hosts[index].cluster = Some(cluster);
        self.replicas.member_up(cluster, host);
        let heights: Vec<u32> = self.held_heights(host);
        for height in heights {
            self.replicas.add_holder(cluster, height, now_ms);
        }
        if let Some(partition) = self.network.active_partition() {
            self.note_cut_off(cluster, partition);
        }
    }

    /// `host` stops counting in its cluster, for `cause`. A departure (anything but the
    /// cluster's id lapsing) is counted with the least that repair must move for it: one copy
    /// of every block that falls below P live holders.
    pub(super) fn leave_cluster(&mut self, host: HostIdx, cause: Cause) {
        let departure = cause != Cause::Expired;
        let index = host as usize;
        let Some(cluster) = self.hosts[index].cluster.take() else {
            return;
        };
        self.replicas.member_down(cluster, host);
        if departure {
            self.counters.cluster_leaves += 1;
        }
        let replicas = self.config.replicas as u32;
        for height in self.held_heights(host) {
            if departure
                && self.replicas.reached_p(cluster, height)
                && self.replicas.live(cluster, height) <= replicas
            {
                self.counters.cluster_leave_optimal_bytes += self.block_len(height);
            }
            self.drop_holder(cluster, height, cause);
        }
        if let Some(partition) = self.network.active_partition() {
            self.note_cut_off(cluster, partition);
        }
    }

    /// A partition starts: the members it cuts off from the larger part of their cluster (the
    /// side of the cut with fewer of its live members; the cut-off segment on a tie) have, for
    /// that cluster, failed as holders of each block they hold — the rest cannot fetch from
    /// them, and will declare them offline — until the partition ends plus the repair window
    /// (as a lost write counts until its holder must have noticed it). A loss is still excused
    /// only by P failures together: one member cut off with one copy while the other holders
    /// crash is the case the invariant allows for; the members on the larger side fail
    /// nothing by it.
    ///
    /// Which side is the larger can change while the partition lasts: members crash, leave
    /// and join on either side. So the cut is judged again whenever a cluster's membership
    /// changes during the partition ([`World::note_cut_off`]), and a member counts as failed
    /// at most once a partition.
    pub(super) fn note_partition_failures(&mut self, partition: Partition) {
        self.cut_off.clear();
        for cluster in 0..self.replicas.cluster_count() as ClusterIdx {
            self.note_cut_off(cluster, partition);
        }
    }

    /// The members of `cluster` that `partition` now cuts off from the larger part of it, and
    /// that have not counted as cut off during this partition yet, fail as holders of their
    /// blocks (see [`World::note_partition_failures`]).
    pub(super) fn note_cut_off(&mut self, cluster: ClusterIdx, partition: Partition) {
        let now_ms = self.queue.now_ms();
        let counts_for_ms =
            partition.end_ms.saturating_sub(now_ms) + self.replicas.repair_window_ms();
        let (inside, outside): (Vec<HostIdx>, Vec<HostIdx>) = self
            .replicas
            .members(cluster)
            .into_iter()
            .partition(|host| self.network.segment_of(*host) == partition.segment);
        if inside.is_empty() || outside.is_empty() {
            return;
        }
        let cut_off = if inside.len() <= outside.len() {
            inside
        } else {
            outside
        };
        for host in cut_off {
            if !self.cut_off.insert((cluster, host)) {
                continue;
            }
            for height in self.held_heights(host) {
                if self.replicas.live(cluster, height) > 0 {
                    self.replicas
                        .note_silent_failure(cluster, height, now_ms, counts_for_ms);
                }
            }
        }
    }

    pub(super) fn held_heights(&self, host: HostIdx) -> Vec<u32> {
        self.hosts[host as usize]
            .store
            .iter()
            .filter_map(|(_, stored)| match stored {
                Stored::Block(height) => Some(*height),
                Stored::Bytes(_) => None,
            })
            .collect()
    }

    /// The checks that run on their own timer: losses noted since the last one (judged once
    /// the grace period has passed), no node in two clusters, and the repair of clusters
    /// formed after churn stopped once their deadline has come.
    pub(super) fn periodic_checks(&mut self) {
        self.judge_losses();
        self.check_membership();
        let (checked, published) = self.check_late_clusters();
        self.serving_check_new_blocks(&checked, published);
    }

    /// Judges the losses older than the grace period: a cluster that still has live members
    /// lost the block (excused or not); one without any dissolved.
    pub(super) fn judge_losses(&mut self) {
        let now_ms = self.queue.now_ms();
        let grace_ms = self.config.membership_grace_s * 1_000;

        self.pending_losses.extend(self.replicas.take_pending());
        let (due, later): (Vec<PendingLoss>, Vec<PendingLoss>) = self
            .pending_losses
            .drain(..)
            .partition(|loss| loss.at_ms + grace_ms <= now_ms);
        self.pending_losses = later;
        for loss in due {
            // Hollow adversaries hold nothing and keep no cluster alive: one that still
            // believes itself a member of a cluster its honest members left (they dropped it,
            // then dissolved) does not make that cluster's blocks lost.
            let honest_live = self
                .replicas
                .members(loss.cluster)
                .into_iter()
                .filter(|host| !self.serving.hollow(*host))
                .count();
            if honest_live == 0 {
                // The cluster dissolved (its id lapsed, or every member left): nothing of it
                // remains to hold the block.
                self.counters.dissolved_losses += 1;
                continue;
            }
            self.counters.lost_blocks += 1;
            if !loss.excused {
                let detail = format!(
                    "cluster #{} lost its last live holder of block {} at {} ms ({:?}) with fewer than {} holder failures in the last {} s (recent failures at {:?} ms)",
                    loss.cluster,
                    loss.height,
                    loss.at_ms,
                    loss.cause,
                    self.config.replicas,
                    self.replicas.repair_window_ms() / 1_000,
                    loss.recent_failures_ms
                );
                self.log.violate(now_ms, Invariant::LiveHolder, detail);
            }
        }
    }

    /// No node in two clusters: gathers, for every live node, the clusters whose live members
    /// list it; a node listed by two for longer than the grace period is a violation.
    fn check_membership(&mut self) {
        let now_ms = self.queue.now_ms();
        let grace_ms = self.config.membership_grace_s * 1_000;
        let mut listed: Vec<Vec<ClusterIdx>> = vec![Vec::new(); self.hosts.len()];
        let mut examined = 0u64;
        for index in 0..self.hosts.len() {
            let Some((cluster, _epoch, members)) =
                self.hosts[index].node().and_then(|node| node.cluster())
            else {
                continue;
            };
            let idx = self.cluster_idx(cluster);
            for member in members {
                if let Some(member_host) = self.live_host(&member) {
                    listed[member_host as usize].push(idx);
                }
            }
        }
        for (index, clusters) in listed.iter_mut().enumerate() {
            if clusters.is_empty() {
                continue;
            }
            examined += 1;
            clusters.sort_unstable();
            clusters.dedup();
            let id = self.hosts[index].id;
            if clusters.len() < 2 {
                self.two_cluster_since.remove(&id);
                continue;
            }
            let since_ms = *self.two_cluster_since.entry(id).or_insert(now_ms);
            if since_ms != u64::MAX && now_ms - since_ms >= grace_ms {
                let detail = format!(
                    "node {id:?} (host {index}) has been a member of clusters {clusters:?} (as their live members see it) for {} s",
                    (now_ms - since_ms) / 1_000
                );
                self.log
                    .violate(now_ms, Invariant::OneClusterPerNode, detail);
                // Reported once per episode.
                self.two_cluster_since.insert(id, u64::MAX);
            }
        }
        self.log.checked(Invariant::OneClusterPerNode, examined);
    }

    /// The repair deadline: every cluster whose membership has not changed since churn stopped
    /// and that still has live members must hold every published block on exactly P live
    /// members — no fewer ([`Invariant::RepairedToP`]) and no more ([`Invariant::ExactlyP`]).
    ///
    /// After churn stops, membership still changes, by the protocol's own doing: a cluster id
    /// lapses every `cluster_ttl` and its members form again, clusters below their target size
    /// take in nodes, an undersized cluster dissolves into others. Each such change moves
    /// blocks (a newcomer fetches its share, old holders keep spares until their holders
    /// prove they hold them — at once once they confirm their shards, or after the core's
    /// `challenge_unclaimed_after_ms` if the confirmation is lost — and
    /// then delete them), so a cluster is held to the rule at its
    /// own deadline: its last membership change (or churn stopping, if later) + repair bound
    /// (see [`World::check_late_clusters`]). A cluster whose membership never settles is never
    /// checked, and the report counts it (`clusters_repair_unchecked`).
    pub(super) fn check_repaired(&mut self) {
        self.repair_pending = Some((0..self.replicas.cluster_count() as ClusterIdx).collect());
        let (checked, published) = self.check_late_clusters();
        self.serving_check_new_blocks(&checked, published);
    }

    /// After the run's repair deadline, on every periodic check: each pending cluster is
    /// checked once its own deadline has come. Blocks mined less than one repair window
    /// before the check are left out (they are still being stored;
    /// [`Invariant::NewBlockReachesP`] covers new blocks). Returns the clusters it checked,
    /// and the blocks `0..published` it held them to.
    fn check_late_clusters(&mut self) -> (Vec<ClusterIdx>, u32) {
        let Some(mut pending) = self.repair_pending.take() else {
            return (Vec::new(), 0);
        };
        let now_ms = self.queue.now_ms();
        let quiet_at_ms = self.config.quiet_at_ms();
        let bound_ms = self.config.repair_bound_s * 1_000;
        let settled_ms = now_ms.saturating_sub(self.config.repair_window_s * 1_000);
        let published = self.published_by(settled_ms);
        let mut due = Vec::new();
        pending.retain(|&cluster| {
            if self.replicas.live_members(cluster) == 0 {
                // Dissolved: nothing of it is left to hold blocks.
                return false;
            }
            let changed_ms = self.cluster_changed_ms[cluster as usize];
            if changed_ms.max(quiet_at_ms) + bound_ms > now_ms {
                return true;
            }
            due.push((cluster, changed_ms > quiet_at_ms));
            false
        });
        if !due.is_empty() {
            self.assert_counts_consistent();
        }
        let mut checked = Vec::new();
        for (cluster, changed_late) in due {
            let since = if changed_late {
                "its membership last changed"
            } else {
                "churn stopped"
            };
            if self.check_cluster_at_p(cluster, since, published) {
                checked.push(cluster);
            }
        }
        self.repair_pending = Some(pending);
        (checked, published)
    }

    /// How many blocks had been published by `at_ms` (initial blocks at 0, then one every
    /// `block_interval_s`, as [`World::mine`] schedules them).
    fn published_by(&self, at_ms: u64) -> u32 {
        let initial = self.config.initial_blocks.clamp(1, self.config.blocks);
        let interval_ms = (self.config.block_interval_s * 1_000).max(1);
        let mined = u32::try_from(at_ms / interval_ms).unwrap_or(u32::MAX);
        initial.saturating_add(mined).min(self.published)
    }

    /// Checks that `cluster`, if it has live members, holds blocks `0..published` on exactly
    /// P live members; `since` names what its deadline counts from. Returns whether it was
    /// checked (it had live members).
    fn check_cluster_at_p(&mut self, cluster: ClusterIdx, since: &str, published: u32) -> bool {
        let now_ms = self.queue.now_ms();
        let replicas = self.config.replicas as u32;
        let members = self.replicas.live_members(cluster);
        if members == 0 {
            return false;
        }
        self.counters.clusters_repair_checked += 1;
        let off = self.replicas.blocks_not_at_p(cluster, published);
        let below: Vec<(u32, u32)> = off
            .iter()
            .copied()
            .filter(|(_, live)| *live < replicas)
            .collect();
        let above: Vec<(u32, u32)> = off
            .iter()
            .copied()
            .filter(|(_, live)| *live > replicas)
            .collect();
        self.counters.blocks_below_p_at_deadline += below.len() as u64;
        self.counters.blocks_above_p_at_deadline += above.len() as u64;
        for (invariant, blocks, what) in [
            (Invariant::RepairedToP, &below, "fewer"),
            (Invariant::ExactlyP, &above, "more"),
        ] {
            self.log.checked(invariant, u64::from(published));
            if let Some((height, live)) = blocks.first() {
                let detail = format!(
                    "{} s after {since}, cluster #{cluster} ({members} live members) has {} of {published} blocks on {what} than {replicas} live holders (block {height}: {live})",
                    self.config.repair_bound_s,
                    blocks.len(),
                );
                self.log.violate(now_ms, invariant, detail);
                if self.trace.state {
                    self.trace_cluster(cluster);
                }
            }
        }
        self.check_cluster_domains(cluster, published);
        true
    }

    /// Issue 17 at a cluster's repair deadline: each of blocks `0..published` has its live
    /// copies on `min(P, devices the cluster spans)` distinct devices
    /// ([`Invariant::DistinctDevices`]).
    fn check_cluster_domains(&mut self, cluster: ClusterIdx, published: u32) {
        let now_ms = self.queue.now_ms();
        let members: Vec<HostIdx> = (0..self.hosts.len() as HostIdx)
            .filter(|&h| {
                self.hosts[h as usize].cluster == Some(cluster)
                    && self.hosts[h as usize].node().is_some()
            })
            .collect();
        let mut devices_by_height: std::collections::BTreeMap<u32, Vec<u64>> =
            std::collections::BTreeMap::new();
        let mut spanned: Vec<u64> = Vec::new();
        let mut stored_and_capacity = Vec::with_capacity(members.len());
        for &host in &members {
            let device = self.effective_device(host);
            if !spanned.contains(&device) {
                spanned.push(device);
            }
            let mut stored = 0u64;
            for height in self.held_heights(host) {
                stored += self.blocks[height as usize].bytes.len() as u64;
                if height < published {
                    devices_by_height.entry(height).or_default().push(device);
                }
            }
            stored_and_capacity.push((stored as f64, self.capacity_of(host) as f64));
        }
        let stored_total: f64 = stored_and_capacity.iter().map(|(s, _)| s).sum();
        let capacity_total: f64 = stored_and_capacity.iter().map(|(_, c)| c).sum();
        if stored_total > 0.0 && capacity_total > 0.0 {
            for (stored, capacity) in stored_and_capacity {
                let error = (stored / stored_total) / (capacity / capacity_total) - 1.0;
                self.counters.capacity_share_errors.push(error.abs());
            }
        }
        let want = self.config.replicas.min(spanned.len());
        self.log
            .checked(Invariant::DistinctDevices, devices_by_height.len() as u64);
        for (height, mut devices) in devices_by_height {
            devices.sort_unstable();
            devices.dedup();
            if devices.len() < want {
                let detail = format!(
                    "cluster #{cluster} spans {} devices: block {height}'s copies are on {} of them",
                    spanned.len(),
                    devices.len()
                );
                self.log.violate(now_ms, Invariant::DistinctDevices, detail);
                break;
            }
        }
    }

    /// At the end of the run: counts the clusters still waiting for their deadline, and marks
    /// the repair invariants not checked if no cluster was.
    pub(super) fn finish_repair_checks(&mut self) {
        let Some(pending) = self.repair_pending.take() else {
            // The run ended before its repair deadline (reported as not checked at start).
            return;
        };
        for cluster in pending {
            if self.replicas.live_members(cluster) > 0 {
                self.counters.clusters_repair_unchecked += 1;
            }
        }
        if self.counters.clusters_repair_checked == 0 {
            for invariant in [Invariant::RepairedToP, Invariant::ExactlyP] {
                self.log.not_checkable(
                    invariant,
                    "no cluster had a live member at its repair deadline (its last membership change or churn stopping, whichever is later, + bound)",
                );
            }
        }
    }

    /// Prints every live member of `cluster` with what it holds and its repair state.
    fn trace_cluster(&self, cluster: ClusterIdx) {
        for (index, host) in self.hosts.iter().enumerate() {
            let Some(node) = host.node() else {
                continue;
            };
            if host.cluster != Some(cluster) {
                continue;
            }
            let mut held = self.held_heights(index as HostIdx);
            held.sort_unstable();
            eprintln!(
                "  host {index} {:?}: stores {held:?}; {}",
                host.id,
                node.repair_summary()
            );
        }
    }

    /// The simulator's own bookkeeping, checked from scratch: every live node is counted in
    /// the cluster its `cluster()` getter names, and the incremental replica counts equal a
    /// fresh count over every store. A mismatch is a simulator bug, so it panics.
    fn assert_counts_consistent(&mut self) {
        let mut fresh: std::collections::BTreeMap<(ClusterIdx, u32), u32> =
            std::collections::BTreeMap::new();
        for index in 0..self.hosts.len() {
            let Some(node) = self.hosts[index].node() else {
                continue;
            };
            let believed = node.cluster().map(|(cluster, _, _)| cluster);
            let believed = believed.map(|cluster| self.cluster_idx(cluster));
            assert_eq!(
                believed, self.hosts[index].cluster,
                "host {index}: the simulator lost track of the node's cluster"
            );
            if let Some(cluster) = believed {
                for height in self.held_heights(index as HostIdx) {
                    *fresh.entry((cluster, height)).or_default() += 1;
                }
            }
        }
        for cluster in 0..self.replicas.cluster_count() as ClusterIdx {
            for height in 0..self.published {
                let counted = fresh.get(&(cluster, height)).copied().unwrap_or(0);
                assert_eq!(
                    counted,
                    self.replicas.live(cluster, height),
                    "replica count of block {height} in cluster #{cluster} drifted"
                );
            }
        }
    }
}
