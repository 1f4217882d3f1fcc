//! The report of a run: the figures asked for, every invariant's status, and the seed.

use serde::Serialize;

use super::{NodeStatTotals, World};
use crate::invariants::{InvariantStatus, Violation};
use crate::replicas::quantile;

/// What a run measured. Serialised as the one JSON object `shoal-sim --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed: `SEED=<seed>` replays the run.
    pub seed: u64,
    /// Light nodes.
    pub nodes: usize,
    /// Archive relays.
    pub archives: usize,
    /// K.
    pub cluster_size: usize,
    /// P.
    pub replicas: usize,
    /// Placement rule.
    pub placement: String,
    /// Blocks published by the end.
    pub blocks: u32,
    /// Simulated hours.
    pub hours: f64,
    /// Median session length, if there was churn.
    pub churn_median_session_min: Option<f64>,

    /// (cluster, block) pairs whose last live holder went while the cluster lived on.
    pub lost_blocks: u64,
    /// The lowest live replica count a fully replicated block fell to (`null`: no block was
    /// ever on P members).
    pub min_live_replicas: Option<u32>,
    /// Median time from a block falling below P live holders to being back at P.
    pub repair_time_p50_s: Option<f64>,
    /// 99th percentile of that.
    pub repair_time_p99_s: Option<f64>,
    /// How many repairs were timed.
    pub repairs_measured: usize,
    /// Bytes of blocks written where the cluster already had them on P members (moved because
    /// membership changed), per member departure.
    pub bytes_moved_per_leave: Option<f64>,
    /// Per departure, the bytes of the blocks that fell below P because of it: the least any
    /// rule and repair could move.
    pub bytes_moved_per_leave_optimal: Option<f64>,
    /// (cluster, block) pairs below P live holders at the repair deadline.
    pub blocks_below_p_at_deadline: u64,
    /// (cluster, block) pairs above P live holders at the repair deadline (spare copies).
    pub blocks_above_p_at_deadline: u64,
    /// Issue 17: how far members' stored bytes are from their capacity's share, at the
    /// repair deadline: per member |(stored / cluster's stored) / (capacity / cluster's
    /// capacity) − 1|, the median and the largest over every member checked (`null`: none).
    pub capacity_share_error_p50: Option<f64>,
    /// The largest of those.
    pub capacity_share_error_max: Option<f64>,
    /// Clusters whose blocks were checked against exactly P at their repair deadline: the
    /// run's deadline (churn stop + bound) for clusters formed before churn stopped,
    /// formation + bound for those formed after.
    pub clusters_repair_checked: u64,
    /// Clusters formed after churn stopped whose own deadline fell after the end of the run
    /// (not checked).
    pub clusters_repair_unchecked: u64,
    /// Member departures from clusters.
    pub cluster_leaves: u64,
    /// Messages sent by light nodes per online second.
    pub messages_per_node_per_s: f64,
    /// The highest rate one node reached in one rate window.
    pub peak_messages_per_node_per_s: f64,
    /// Distinct cluster ids nodes joined.
    pub clusters_formed: usize,
    /// Total violations of all invariants.
    pub invariant_violations: u64,
    /// Every invariant: checks, violations, or why it was not checked.
    pub invariants: Vec<InvariantStatus>,
    /// The first violations of each invariant in full, in time order.
    pub violations: Vec<Violation>,

    /// Events processed.
    pub events: u64,
    /// Events processed, by kind. A node's timers cost `wake` events: one a wake-up, which
    /// fires every timer of the node then due (a stale wake-up, overtaken by an earlier
    /// deadline, is counted too).
    pub events_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Timers the nodes' hosts fired, by timer id.
    pub timers_fired: std::collections::BTreeMap<&'static str, u64>,
    /// Messages sent (all hosts).
    pub messages_sent: u64,
    /// Messages sent, by kind.
    pub messages_by_kind: std::collections::BTreeMap<&'static str, u64>,
    /// Their encoded bytes.
    pub message_bytes: u64,
    /// Lost at random.
    pub messages_lost: u64,
    /// Dropped by a partition.
    pub messages_partitioned: u64,
    /// Sent to a node that was gone.
    pub messages_to_offline: u64,
    /// Messages the core produced that its own codec refused to encode.
    pub encode_failures: u64,
    /// Sessions that ended.
    pub leaves: u64,
    /// Of those, nodes that crashed because another node of their device left (issue 17).
    pub device_crashes: u64,
    /// Returns with data and identity.
    pub returns_with_data: u64,
    /// Returns empty, with a new identity.
    pub returns_fresh: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Writes the storage lost.
    pub lost_writes: u64,
    /// Reads the storage corrupted.
    pub corrupt_reads: u64,
    /// Key/value batches written (the nodes' transaction index records).
    pub kv_writes: u64,
    /// Key/value batches the storage lost.
    pub kv_lost_writes: u64,
    /// Key/value records read back corrupted.
    pub kv_corrupt_reads: u64,
    /// Tampered blocks the block source handed out.
    pub tampered_blocks_sent: u64,
    /// `BlockRejected` events nodes reported.
    pub blocks_rejected_events: u64,
    /// `MemberOffline` events nodes reported.
    pub members_declared_offline: u64,
    /// Losses in clusters that dissolved (no live member left): not counted as lost.
    pub dissolved_losses: u64,
    /// Losses too recent at the end to judge (within the grace period).
    pub unjudged_losses: usize,
    /// The core's own counters, summed over every node.
    pub node_stats: NodeStatTotals,
    /// Forged views an outsider sent to members (`SimConfig::forged_views`).
    pub forged_views_sent: u64,
    /// New blocks, queries and adversaries (S14–S17), as top-level fields.
    #[serde(flatten)]
    pub serving: crate::serving::ServingReport,
    /// Wall-clock seconds the run took.
    pub wall_seconds: f64,
}

fn ms_to_s(ms: Option<u64>) -> Option<f64> {
    ms.map(|ms| ms as f64 / 1_000.0)
}

impl World {
    /// Closes the books and builds the report.
    pub(super) fn finish(mut self) -> Report {
        let now_ms = self.queue.now_ms().max(self.config.duration_ms());
        // Losses younger than the grace period stay unjudged (reported as such).
        self.judge_losses();
        self.finish_repair_checks();
        self.pending_losses.extend(self.replicas.take_pending());
        for record in &self.hosts {
            if let Some(node) = record.node() {
                self.counters.node_stats.add(node);
                if !record.archive {
                    self.counters.light_online_ms += now_ms - record.online_since_ms;
                }
            }
        }
        let serving = self.serving_report();
        let counters = &self.counters;
        let repairs = self.replicas.repair_times_ms();
        let per_leave = |bytes: u64| {
            (counters.cluster_leaves > 0).then(|| bytes as f64 / counters.cluster_leaves as f64)
        };
        Report {
            seed: self.config.seed,
            nodes: self.config.nodes,
            archives: self.config.archives,
            cluster_size: self.config.cluster_size,
            replicas: self.config.replicas,
            placement: self.config.placement.clone(),
            blocks: self.published,
            hours: self.config.hours,
            churn_median_session_min: self.config.churn.median_session_min,
            lost_blocks: counters.lost_blocks,
            min_live_replicas: self.replicas.min_live_replicas().or_else(|| {
                // Never degraded: every fully stored block stayed at P or above.
                (0..self.replicas.cluster_count() as u32)
                    .any(|c| (0..self.published).any(|h| self.replicas.reached_p(c, h)))
                    .then_some(self.config.replicas as u32)
            }),
            repair_time_p50_s: ms_to_s(quantile(repairs, 0.5)),
            repair_time_p99_s: ms_to_s(quantile(repairs, 0.99)),
            repairs_measured: repairs.len(),
            bytes_moved_per_leave: per_leave(counters.moved_bytes),
            bytes_moved_per_leave_optimal: per_leave(counters.cluster_leave_optimal_bytes),
            blocks_below_p_at_deadline: counters.blocks_below_p_at_deadline,
            capacity_share_error_p50: median_of(&counters.capacity_share_errors),
            capacity_share_error_max: counters
                .capacity_share_errors
                .iter()
                .copied()
                .reduce(f64::max),
            blocks_above_p_at_deadline: counters.blocks_above_p_at_deadline,
            clusters_repair_checked: counters.clusters_repair_checked,
            clusters_repair_unchecked: counters.clusters_repair_unchecked,
            cluster_leaves: counters.cluster_leaves,
            messages_per_node_per_s: if counters.light_online_ms > 0 {
                counters.light_messages_sent as f64 * 1_000.0 / counters.light_online_ms as f64
            } else {
                0.0
            },
            peak_messages_per_node_per_s: self.rate.peak_per_s(),
            clusters_formed: self.cluster_index.len(),
            invariant_violations: self.log.total(),
            invariants: self.log.statuses(),
            violations: self.log.kept().to_vec(),
            events: counters.events,
            events_by_kind: counters.events_by_kind.clone(),
            timers_fired: counters.timers_fired.clone(),
            messages_sent: counters.messages_sent,
            messages_by_kind: counters.messages_by_kind.clone(),
            message_bytes: counters.message_bytes,
            messages_lost: counters.messages_lost,
            messages_partitioned: counters.messages_partitioned,
            messages_to_offline: counters.messages_to_offline,
            encode_failures: counters.encode_failures,
            leaves: counters.leaves,
            device_crashes: counters.device_crashes,
            returns_with_data: counters.returns_with_data,
            returns_fresh: counters.returns_fresh,
            partitions: counters.partitions,
            lost_writes: counters.lost_writes,
            corrupt_reads: counters.corrupt_reads,
            kv_writes: counters.kv_writes,
            kv_lost_writes: counters.kv_lost_writes,
            kv_corrupt_reads: counters.kv_corrupt_reads,
            tampered_blocks_sent: counters.tampered_blocks_sent,
            blocks_rejected_events: counters.blocks_rejected_events,
            members_declared_offline: counters.members_declared_offline,
            dissolved_losses: counters.dissolved_losses,
            unjudged_losses: self.pending_losses.len(),
            node_stats: counters.node_stats.clone(),
            forged_views_sent: counters.forged_views_sent,
            serving,
            wall_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// The median of `values` (`None` if empty).
fn median_of(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}
