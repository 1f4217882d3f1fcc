//! Ground-truth replica counts: how many live members of each cluster hold each block.
//!
//! The simulator knows what every host really stores (its storage is simulated) and which
//! cluster every node believes it is in. From those it keeps, for every cluster and every
//! block height, the number of live members holding a verified copy, updated incrementally on
//! every change: a store or delete, a host going offline or coming back, a node joining or
//! leaving a cluster. That is what the replica invariants are checked against:
//!
//! - **live holder** (S18): once a cluster has stored a block on P members, the block must
//!   keep at least one live holder in that cluster, unless P or more of its holders failed
//!   (went offline, or lost the write) within one repair window. A count that reaches zero is
//!   noted and judged at the next check: if the cluster still has live members it is a
//!   violation (or, with P recent failures, an expected loss); if the cluster has no live
//!   member left it dissolved (its id lapsed, S4) and nothing was lost. (The world counts
//!   only honest members there: a hollow adversary, which stores nothing, keeps no cluster
//!   alive — `world::outputs`.)
//! - **repair** (S11): the time from a block falling below P live holders to getting back to
//!   P is a repair time; the report gives its percentiles.
//!
//! Clusters are identified by their id, which stays the same across membership epochs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Dense index of a cluster id seen in the run.
pub type ClusterIdx = u32;

/// Why a holder stopped counting in its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The host went offline (crash or close): a failure.
    Offline,
    /// The other members dropped the node from their view (suspected offline, e.g. behind a
    /// partition): a failure as far as the cluster can tell.
    DroppedFromView,
    /// The node moved to another cluster.
    SwitchedCluster,
    /// The cluster's id lapsed (S4).
    Expired,
    /// The node deleted the block.
    Deleted,
    /// The node overwrote the block with other bytes.
    Overwritten,
}

impl Cause {
    /// Whether this counts as a holder failure (toward excusing a loss).
    pub fn is_failure(self) -> bool {
        matches!(self, Cause::Offline | Cause::DroppedFromView)
    }
}

/// A count that fell to zero, waiting to be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLoss {
    /// The cluster.
    pub cluster: ClusterIdx,
    /// The block height.
    pub height: u32,
    /// When the last live holder went.
    pub at_ms: u64,
    /// Whether P or more holders failed within the repair window before it.
    pub excused: bool,
    /// Why the last holder went.
    pub cause: Cause,
    /// When the most recent holder failures (at most P) happened.
    pub recent_failures_ms: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
struct BlockState {
    live: u32,
    reached_p: bool,
    degraded_since_ms: Option<u64>,
    /// Recent holder failures: (when, counts until), at most 2 P kept.
    failures_ms: VecDeque<(u64, u64)>,
}

#[derive(Debug, Clone, Default)]
struct ClusterState {
    blocks: BTreeMap<u32, BlockState>,
    live_members: BTreeSet<u32>,
}

/// The replica counts of every cluster.
#[derive(Debug, Clone)]
pub struct ReplicaCounts {
    replicas: u32,
    repair_window_ms: u64,
    clusters: Vec<ClusterState>,
    pending: Vec<PendingLoss>,
    repair_times_ms: Vec<u64>,
    min_live_replicas: Option<u32>,
}

impl ReplicaCounts {
    /// Counts for clusters that keep `replicas` copies of each block, where a holder failure
    /// counts for `repair_window_ms`.
    pub fn new(replicas: u32, repair_window_ms: u64) -> Self {
        assert!(replicas > 0, "replicas must be positive");
        Self {
            replicas,
            repair_window_ms,
            clusters: Vec::new(),
            pending: Vec::new(),
            repair_times_ms: Vec::new(),
            min_live_replicas: None,
        }
    }

    /// How long a holder failure counts toward excusing a loss.
    pub fn repair_window_ms(&self) -> u64 {
        self.repair_window_ms
    }

    fn cluster(&mut self, cluster: ClusterIdx) -> &mut ClusterState {
        let index = cluster as usize;
        if self.clusters.len() <= index {
            self.clusters.resize_with(index + 1, ClusterState::default);
        }
        &mut self.clusters[index]
    }

    /// A live member `host` of `cluster` has joined the cluster (or come back online in it).
    pub fn member_up(&mut self, cluster: ClusterIdx, host: u32) {
        self.cluster(cluster).live_members.insert(host);
    }

    /// A member left the cluster or went offline.
    pub fn member_down(&mut self, cluster: ClusterIdx, host: u32) {
        self.cluster(cluster).live_members.remove(&host);
    }

    /// Number of live members of a cluster.
    pub fn live_members(&self, cluster: ClusterIdx) -> usize {
        self.clusters
            .get(cluster as usize)
            .map_or(0, |state| state.live_members.len())
    }

    /// The live members of `cluster` (host indices), in order.
    pub fn members(&self, cluster: ClusterIdx) -> Vec<u32> {
        self.clusters
            .get(cluster as usize)
            .map_or_else(Vec::new, |state| {
                state.live_members.iter().copied().collect()
            })
    }

    /// How many holder failures of block `height` in `cluster` still count at `now_ms`.
    pub fn failures_counting(&self, cluster: ClusterIdx, height: u32, now_ms: u64) -> usize {
        self.clusters
            .get(cluster as usize)
            .and_then(|state| state.blocks.get(&height))
            .map_or(0, |block| {
                block
                    .failures_ms
                    .iter()
                    .filter(|(_, until)| now_ms <= *until)
                    .count()
            })
    }

    /// A live member of `cluster` now holds a verified copy of block `height`.
    pub fn add_holder(&mut self, cluster: ClusterIdx, height: u32, now_ms: u64) {
        let replicas = self.replicas;
        let block = self.cluster(cluster).blocks.entry(height).or_default();
        block.live += 1;
        if block.live >= replicas {
            block.reached_p = true;
            if let Some(since_ms) = block.degraded_since_ms.take() {
                self.repair_times_ms.push(now_ms - since_ms);
            }
        }
    }

    /// A holder's failure (offline, lost write) of block `height` in `cluster`, without
    /// changing the count (use [`ReplicaCounts::remove_holder`] for that).
    pub fn note_failure(&mut self, cluster: ClusterIdx, height: u32, now_ms: u64) {
        self.note_silent_failure(cluster, height, now_ms, self.repair_window_ms);
    }

    /// A failure nobody is told of (a lost write): it counts for `counts_for_ms`, the time
    /// the holder may take to notice it (its storage audit) plus the repair window.
    pub fn note_silent_failure(
        &mut self,
        cluster: ClusterIdx,
        height: u32,
        now_ms: u64,
        counts_for_ms: u64,
    ) {
        let kept = 2 * self.replicas as usize;
        let failures = &mut self
            .cluster(cluster)
            .blocks
            .entry(height)
            .or_default()
            .failures_ms;
        failures.push_back((now_ms, now_ms.saturating_add(counts_for_ms)));
        while failures.len() > kept {
            failures.pop_front();
        }
    }

    /// A live member of `cluster` no longer holds block `height`, for `cause`.
    pub fn remove_holder(&mut self, cluster: ClusterIdx, height: u32, now_ms: u64, cause: Cause) {
        if cause.is_failure() {
            self.note_failure(cluster, height, now_ms);
        }
        let replicas = self.replicas;
        let block = self
            .cluster(cluster)
            .blocks
            .get_mut(&height)
            .expect("removing a holder that was never added");
        assert!(block.live > 0, "replica count would go negative");
        block.live -= 1;
        let live = block.live;
        if !block.reached_p {
            return;
        }
        if live < replicas && block.degraded_since_ms.is_none() {
            block.degraded_since_ms = Some(now_ms);
        }
        let recent_failures = block
            .failures_ms
            .iter()
            .filter(|(_, until)| now_ms <= *until)
            .count();
        let excused = recent_failures >= replicas as usize;
        let block = &self.clusters[cluster as usize].blocks[&height];
        self.min_live_replicas = Some(self.min_live_replicas.map_or(live, |m| m.min(live)));
        if live == 0 {
            let recent_failures_ms = block.failures_ms.iter().map(|(at, _)| *at).collect();
            self.pending.push(PendingLoss {
                cluster,
                height,
                at_ms: now_ms,
                excused,
                cause,
                recent_failures_ms,
            });
        }
    }

    /// Live holders of block `height` in `cluster`.
    pub fn live(&self, cluster: ClusterIdx, height: u32) -> u32 {
        self.clusters
            .get(cluster as usize)
            .and_then(|state| state.blocks.get(&height))
            .map_or(0, |block| block.live)
    }

    /// Whether the block ever reached P live holders in the cluster.
    pub fn reached_p(&self, cluster: ClusterIdx, height: u32) -> bool {
        self.clusters
            .get(cluster as usize)
            .and_then(|state| state.blocks.get(&height))
            .is_some_and(|block| block.reached_p)
    }

    /// Takes the losses noted since the last call. Whether each is a loss or its cluster
    /// dissolved is for the caller to judge (after a grace period, with
    /// [`ReplicaCounts::live_members`]).
    pub fn take_pending(&mut self) -> Vec<PendingLoss> {
        std::mem::take(&mut self.pending)
    }

    /// All repair durations measured so far.
    pub fn repair_times_ms(&self) -> &[u64] {
        &self.repair_times_ms
    }

    /// The lowest live replica count any fully stored block fell to.
    pub fn min_live_replicas(&self) -> Option<u32> {
        self.min_live_replicas
    }

    /// Clusters seen so far (indices `0..n`).
    pub fn cluster_count(&self) -> usize {
        self.clusters.len()
    }

    /// Number of blocks whose live count in `cluster` is not exactly P, for heights below
    /// `chain_len` — the end-of-run repair check.
    pub fn blocks_not_at_p(&self, cluster: ClusterIdx, chain_len: u32) -> Vec<(u32, u32)> {
        (0..chain_len)
            .map(|height| (height, self.live(cluster, height)))
            .filter(|(_, live)| *live != self.replicas)
            .collect()
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values`, by nearest rank; `None` if empty.
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repair_time_runs_from_degraded_to_p() {
        let mut counts = ReplicaCounts::new(2, 1_000);
        counts.add_holder(0, 7, 0);
        counts.add_holder(0, 7, 0);
        counts.remove_holder(0, 7, 100, Cause::Offline);
        counts.add_holder(0, 7, 600);
        assert_eq!(counts.repair_times_ms(), &[500]);
        assert_eq!(counts.min_live_replicas(), Some(1));
    }

    #[test]
    fn filling_is_not_repair_and_not_loss() {
        let mut counts = ReplicaCounts::new(3, 1_000);
        counts.member_up(0, 1);
        counts.add_holder(0, 1, 0);
        counts.remove_holder(0, 1, 10, Cause::Deleted);
        assert!(counts.take_pending().is_empty());
        assert!(counts.repair_times_ms().is_empty());
    }

    #[test]
    fn loss_is_excused_only_by_p_recent_failures() {
        let mut counts = ReplicaCounts::new(2, 1_000);
        counts.member_up(0, 9);
        for height in [1, 2] {
            counts.add_holder(0, height, 0);
            counts.add_holder(0, height, 0);
        }
        // Block 1: two failures within the window — excused.
        counts.remove_holder(0, 1, 100, Cause::Offline);
        counts.remove_holder(0, 1, 200, Cause::DroppedFromView);
        // Block 2: one failure long ago, then a deliberate delete — not excused.
        counts.remove_holder(0, 2, 100, Cause::Offline);
        counts.remove_holder(0, 2, 5_000, Cause::Deleted);
        let pending = counts.take_pending();
        assert_eq!(pending.len(), 2);
        assert!(pending[0].excused);
        assert!(!pending[1].excused);
        assert_eq!(pending[1].cause, Cause::Deleted);
        assert_eq!(pending[1].recent_failures_ms, vec![100]);
        assert_eq!(counts.live_members(0), 1);
        assert_eq!(counts.min_live_replicas(), Some(0));
    }

    #[test]
    fn dissolved_clusters_are_flagged() {
        let mut counts = ReplicaCounts::new(1, 1_000);
        counts.member_up(3, 1);
        counts.add_holder(3, 0, 0);
        counts.member_down(3, 1);
        counts.remove_holder(3, 0, 10, Cause::Expired);
        let pending = counts.take_pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            counts.live_members(3),
            0,
            "cluster with no live member is dissolved"
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), None);
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&values, 1.0), Some(100));
        assert_eq!(quantile(&[5], 0.0), Some(5));
    }

    #[test]
    fn end_check_lists_blocks_off_p() {
        let mut counts = ReplicaCounts::new(2, 1_000);
        counts.add_holder(0, 0, 0);
        counts.add_holder(0, 0, 0);
        counts.add_holder(0, 1, 0);
        assert_eq!(counts.blocks_not_at_p(0, 3), vec![(1, 1), (2, 0)]);
    }
}
