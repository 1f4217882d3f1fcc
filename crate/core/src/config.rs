//! The node's configuration: every limit and timeout, each with a default.

use crate::placement::PlacementRule;
use crate::wire::MAX_VIEW_MEMBERS;

/// Whom a member sends heartbeats to (S9, S10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatMode {
    /// Every member checks every other member (S9): fine for small clusters.
    All,
    /// Each member checks the `per_side` members numbered on either side of it (S10).
    Neighbours { per_side: usize },
}

/// How a member picks among acceptances of a replacement invitation (S12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplacementChoice {
    /// The first acceptances to arrive.
    ReplyOrder,
    /// The acceptances offering the most capacity.
    Capacity,
}

/// A node's configuration. Every field has a default ([`Config::default`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// This node's address as others should dial it (put into invitations, S1).
    pub address: String,
    /// This node's network segment (S8), e.g. an autonomous-system number.
    pub segment: u32,
    /// Bytes of block storage this node offers (sent in invitations). Placement weighs
    /// members by it: a member with half the room of another holds about half as many blocks.
    pub capacity_bytes: u64,
    /// This node's failure domain: the device it runs on. Nodes that fail together share one
    /// (tabs of one browser profile and origin); placement puts a block's P copies on P
    /// distinct devices whenever the cluster spans that many, and formation and replacement
    /// prefer members from devices not yet in the cluster. 0: a device of its own (derived
    /// from its node id).
    pub device: u64,
    /// An archive holds every block it gets, serves them, and never joins a cluster.
    pub archive: bool,
    /// Most peers this node dials from directory candidates.
    pub max_peers: usize,
    /// Most entries in the per-peer table (connected and known peers).
    pub peer_table_max: usize,
    /// S1: an ordinary node invites once connected to at least this many ordinary peers.
    pub invite_after_peers: usize,
    /// S2: a cluster forms once at least this many invitees confirm.
    pub form_with_accepts: usize,
    /// S2: a cluster never has more members than this.
    pub cluster_size_max: usize,
    /// S12/S13: a cluster with fewer members than this invites outsiders and takes join requests.
    pub cluster_size_target: usize,
    /// S4: how long a cluster id is valid, from formation.
    pub cluster_ttl_ms: u64,
    /// S12, when no replacement can be found: a cluster that has had fewer than `replicas`
    /// members for this long (it cannot keep P copies; counted from when it first fell below
    /// P, whatever views followed) dissolves, all members at once, if another cluster with
    /// at least P members is reachable — its members join clusters with room (S13) or form
    /// new ones, bringing their blocks along as sources. The default (1 min) keeps a cluster
    /// below P for less than one repair window: a block whose last holders fail minutes
    /// apart in a cluster that can no longer re-replicate it would otherwise be lost.
    /// `None` keeps undersized clusters.
    pub undersized_leave_after_ms: Option<u64>,
    /// S1: mean time between invitation rounds of an ordinary node (jittered ±50 %).
    pub formation_interval_ms: u64,
    /// S1/S12: how long an inviter waits for replies.
    pub invite_timeout_ms: u64,
    /// S3: how long an invitee collects invitations before picking one.
    pub invite_collect_ms: u64,
    /// S3: how long a node that confirmed waits for the cluster's view before giving up.
    pub accept_timeout_ms: u64,
    /// S12: how acceptances of a replacement invitation are chosen.
    pub replacement_choice: ReplacementChoice,
    /// S6–S8: where blocks go.
    pub placement: PlacementRule,
    /// S6: P, the number of members holding each block.
    pub replicas: usize,
    /// S9/S10: whom heartbeats go to.
    pub heartbeat_mode: HeartbeatMode,
    /// S9/S10: time between heartbeats.
    pub heartbeat_interval_ms: u64,
    /// S9/S10: a member not heard from for this long is declared offline.
    pub offline_after_ms: u64,
    /// S11: most block fetches in flight at once.
    pub repair_parallel_max: usize,
    /// S11: most bytes fetched per `repair_interval_ms` window.
    pub repair_bytes_per_interval: u64,
    /// S11: the repair pacing window.
    pub repair_interval_ms: u64,
    /// S11: a block fetch not answered within this is retried from another source.
    pub repair_request_timeout_ms: u64,
    /// S11: how long a block no source could give waits before it is tried again.
    pub repair_retry_ms: u64,
    /// S11: most blocks queued for fetching (the rest are found again on the next pass).
    pub repair_queue_max: usize,
    /// S12 (third rule), issue 16: a block the view no longer assigns to this member (a
    /// spare) is deleted only once every holder of it under the view proved it holds it
    /// (`crate::repair::holding`). Holders are challenged once they claim it (`ShardHeld`,
    /// `BlockStored`); once the view has held this long, those that have not claimed it are
    /// challenged too (a claim lost on the way). `None` challenges only holders that claimed.
    pub challenge_unclaimed_after_ms: Option<u64>,
    /// Issue 16: how often (jittered ±50 %) a member audits one random mate's claim to hold one
    /// random block it holds too (`crate::repair::holding`). `None` never audits (spares are
    /// still deleted only after proofs).
    pub hold_audit_interval_ms: Option<u64>,
    /// Issue 16: how long a member found to be a faulty holder (it kept failing proofs of
    /// holding) is kept out of the cluster: its views refused, its join requests denied.
    pub faulty_ban_ms: u64,
    /// S11: how often (jittered ±50 %) the node lists its storage and compares it with what
    /// it believes it holds, so that a write the storage acknowledged but lost is found and
    /// fetched again. `None` never audits.
    pub storage_audit_interval_ms: Option<u64>,
    /// Whether the node saves its membership in its key/value store at every change and
    /// becomes a member of the saved view again at start, if that view's id has not lapsed
    /// (a reloaded browser tab resumes its place; `node::resume`). Needs a shell clock that
    /// continues across restarts. Off by default: a restarted node starts as an ordinary node.
    pub resume_membership: bool,
    /// S14–S17: transaction index, queries, new-block storage and the block cache.
    pub serve: crate::serve::ServeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: String::new(),
            segment: 0,
            capacity_bytes: 1 << 30,
            device: 0,
            archive: false,
            max_peers: 16,
            peer_table_max: 256,
            invite_after_peers: 3,
            form_with_accepts: 2,
            cluster_size_max: 8,
            cluster_size_target: 6,
            cluster_ttl_ms: 6 * 60 * 60 * 1000,
            undersized_leave_after_ms: Some(60_000),
            formation_interval_ms: 10_000,
            invite_timeout_ms: 3_000,
            invite_collect_ms: 500,
            accept_timeout_ms: 10_000,
            replacement_choice: ReplacementChoice::ReplyOrder,
            placement: PlacementRule::Rendezvous,
            replicas: 3,
            heartbeat_mode: HeartbeatMode::All,
            heartbeat_interval_ms: 5_000,
            offline_after_ms: 20_000,
            repair_parallel_max: 4,
            repair_bytes_per_interval: 16 << 20,
            repair_interval_ms: 1_000,
            repair_request_timeout_ms: 10_000,
            repair_retry_ms: 30_000,
            repair_queue_max: 4_096,
            challenge_unclaimed_after_ms: Some(600_000),
            hold_audit_interval_ms: Some(60_000),
            faulty_ban_ms: 3_600_000,
            storage_audit_interval_ms: Some(600_000),
            resume_membership: false,
            serve: crate::serve::ServeConfig::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cluster_size_max {0} must be between 2 and {MAX_VIEW_MEMBERS}")]
    ClusterSizeMax(usize),
    #[error("form_with_accepts {accepts} must be at least 1 and below cluster_size_max {max}")]
    FormWithAccepts { accepts: usize, max: usize },
    #[error("replicas {replicas} must be at least 1 and at most form_with_accepts + 1 = {limit}")]
    Replicas { replicas: usize, limit: usize },
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("offline_after_ms must exceed heartbeat_interval_ms")]
    OfflineBeforeHeartbeat,
    #[error("address is longer than {0} bytes")]
    AddressTooLong(usize),
}

impl Config {
    /// A light member's configuration for clusters of at most `cluster_size` members keeping
    /// `replicas` copies (a page, a member relay): the defaults, with formation's thresholds
    /// scaled down to what such a cluster can reach, and its own transaction queries asking
    /// the archives last. Not validated: the caller sets the rest, then validates.
    pub fn for_cluster(cluster_size: usize, replicas: usize) -> Config {
        let defaults = Config::default();
        let form_with_accepts = defaults
            .form_with_accepts
            .min(cluster_size.saturating_sub(1));
        let mut config = Config {
            cluster_size_max: cluster_size,
            cluster_size_target: defaults.cluster_size_target.min(cluster_size),
            form_with_accepts,
            invite_after_peers: defaults.invite_after_peers.min(form_with_accepts),
            replicas,
            ..defaults
        };
        config.serve.query.ask_archives = true;
        config
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(2..=MAX_VIEW_MEMBERS).contains(&self.cluster_size_max) {
            return Err(ConfigError::ClusterSizeMax(self.cluster_size_max));
        }
        if self.form_with_accepts == 0 || self.form_with_accepts >= self.cluster_size_max {
            return Err(ConfigError::FormWithAccepts {
                accepts: self.form_with_accepts,
                max: self.cluster_size_max,
            });
        }
        let limit = self.form_with_accepts + 1;
        if self.replicas == 0 || self.replicas > limit {
            return Err(ConfigError::Replicas {
                replicas: self.replicas,
                limit,
            });
        }
        for (name, value) in [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("formation_interval_ms", self.formation_interval_ms),
            ("invite_timeout_ms", self.invite_timeout_ms),
            ("accept_timeout_ms", self.accept_timeout_ms),
            ("cluster_ttl_ms", self.cluster_ttl_ms),
            ("repair_interval_ms", self.repair_interval_ms),
            ("repair_request_timeout_ms", self.repair_request_timeout_ms),
            ("repair_parallel_max", self.repair_parallel_max as u64),
            ("repair_queue_max", self.repair_queue_max as u64),
            ("peer_table_max", self.peer_table_max as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.offline_after_ms <= self.heartbeat_interval_ms {
            return Err(ConfigError::OfflineBeforeHeartbeat);
        }
        if self.address.len() > crate::wire::MAX_ADDRESS_BYTES {
            return Err(ConfigError::AddressTooLong(crate::wire::MAX_ADDRESS_BYTES));
        }
        Ok(())
    }
}
