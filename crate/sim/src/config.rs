//! A run's configuration: everything that, with the seed, decides a run.

use serde::Serialize;

use crate::churn::ChurnConfig;
use crate::network::NetworkConfig;
use crate::serving::ServingConfig;
use crate::storage::StorageFaultConfig;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimConfigError {
    /// Too few nodes to form a cluster.
    #[error("need at least {needed} nodes to form a cluster, got {got}")]
    TooFewNodes {
        /// Minimum.
        needed: usize,
        /// Asked for.
        got: usize,
    },
    /// P must be below K.
    #[error(
        "replicas ({replicas}) must be at least 1 and below the cluster size ({cluster_size})"
    )]
    Replicas {
        /// P.
        replicas: usize,
        /// K.
        cluster_size: usize,
    },
    /// The chain needs at least one block.
    #[error("the chain needs at least one block")]
    NoBlocks,
    /// The run needs a positive length.
    #[error("the run must last a positive time")]
    NoTime,
    /// A rate is not a probability.
    #[error("{name} must be between 0 and 1, got {value}")]
    NotAProbability {
        /// The field.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The placement rule is not one the core offers.
    #[error("unknown placement rule {0:?}")]
    UnknownPlacement(String),
    /// Every archive silent: nothing would hold the chain.
    #[error("devices: {0}")]
    Devices(&'static str),
    #[error("{silent} silent archives of {archives}: at least one archive must answer")]
    SilentArchives {
        /// Silent archives asked for.
        silent: usize,
        /// Archives.
        archives: usize,
    },
}

/// Everything that, with the seed, decides a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimConfig {
    /// The seed of all randomness.
    pub seed: u64,
    /// Light nodes (browser tabs) in the run.
    pub nodes: usize,
    /// Archive relays that hold every block and serve as block source (never churn).
    pub archives: usize,
    /// K: the largest cluster.
    pub cluster_size: usize,
    /// P: members holding each block.
    pub replicas: usize,
    /// Placement rule name, as the core names it.
    pub placement: String,
    /// Blocks in the chain (the first ones exist at start, see `initial_blocks`).
    pub blocks: u32,
    /// Blocks that exist at start; the rest arrive one per `block_interval_s`.
    pub initial_blocks: u32,
    /// Time between new blocks after the initial ones.
    pub block_interval_s: u64,
    /// Transactions per generated block (besides the coinbase); keeps blocks tiny or not.
    pub txs_per_block: u32,
    /// Simulated hours.
    pub hours: f64,
    /// Churn, partitions and storage faults stop this long before the end, so that repair
    /// can be checked ("once churn stops, every block returns to P within a bound").
    pub quiet_tail_hours: f64,
    /// The bound on that repair, after churn stops. It must leave room for the core's
    /// `challenge_unclaimed_after_ms` (10 min by default) after the last view change: spares
    /// whose holders all confirmed go once they prove it, but a lost confirmation leaves the
    /// proofs to that timeout.
    pub repair_bound_s: u64,
    /// A failure of a holder counts toward excusing a lost block for this long (S18), and at
    /// least for the core's failure detection (`offline_after_ms`, which grows with the
    /// heartbeat interval) plus 100 s.
    pub repair_window_s: u64,
    /// A node may send at most this many messages per second, averaged over `rate_window_s`.
    pub max_messages_per_node_per_s: f64,
    /// The window of that average.
    pub rate_window_s: u64,
    /// Periodic checks (cluster membership, pending losses) run this often.
    pub check_interval_s: u64,
    /// A node may be counted in two clusters' views at most this long (views converge).
    pub membership_grace_s: u64,
    /// Probability that the block source hands a node a tampered block (a byzantine relay).
    pub tampered_block_rate: f64,
    /// Heartbeat only this many numbered neighbours on each side (S10); `None`: every
    /// member (S9, the core's default).
    pub heartbeat_neighbours: Option<usize>,
    /// Time between heartbeats; `None`: the core's default.
    pub heartbeat_interval_ms: Option<u64>,
    /// The network model.
    pub network: NetworkConfig,
    /// The churn model.
    pub churn: ChurnConfig,
    /// The storage fault model.
    pub storage: StorageFaultConfig,
    /// Most pending events (bounded queue).
    pub max_pending_events: usize,
    /// New blocks, queries and adversaries (S14–S17).
    pub serving: ServingConfig,
    /// An outsider forging views (issue 16); `None`: no such attack.
    pub forged_views: Option<ForgedViews>,
    /// Devices shared by several light nodes, and capacities (issue 17).
    pub devices: DeviceConfig,
}

/// Failure domains and capacities (issue 17). Light node `h` runs on device
/// `h / hosts_per_device` (archives each on their own); with `whole_device_crashes`, when a
/// node leaves by churn every other online node of its device crashes with it (a closed lid,
/// cleared site data). Capacities: node `h` offers `capacity_ratios[h % len]` × the share of
/// the chain a member of a cluster of `cluster_size` holds at P copies × `capacity_headroom`;
/// empty ratios leave the core's default (1 GiB, far above any simulated chain).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceConfig {
    /// Light nodes per device (1: each its own device).
    pub hosts_per_device: usize,
    /// A departure takes the whole device down.
    pub whole_device_crashes: bool,
    /// Capacities relative to a fair share, cycled over the light nodes.
    pub capacity_ratios: Vec<f64>,
    /// Room above the share each ratio gives.
    pub capacity_headroom: f64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            hosts_per_device: 1,
            whole_device_crashes: false,
            capacity_ratios: Vec::new(),
            capacity_headroom: 2.0,
        }
    }
}

/// An outsider — a node no cluster ever had as a member — that read each cluster's view (a
/// member sends it to any peer whose heartbeat carries an older stamp of the cluster) and
/// sends every member a forged view of its cluster: epoch `u64::MAX`, and members of its
/// choosing (its own id and made-up ones added, up to the largest cluster, a real member
/// other than the receiver dropped if the cluster is full). A member that took it would
/// renumber around members that never store anything, and no honest view could win again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForgedViews {
    /// When the first round goes out.
    pub start_s: u64,
    /// Time between rounds, until the end of the run.
    pub interval_s: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            nodes: 60,
            archives: 2,
            cluster_size: 8,
            replicas: 3,
            placement: "rendezvous".to_string(),
            blocks: 50,
            initial_blocks: 40,
            block_interval_s: 600,
            txs_per_block: 2,
            hours: 1.0,
            quiet_tail_hours: 0.25,
            repair_bound_s: 1_500,
            repair_window_s: 120,
            max_messages_per_node_per_s: 50.0,
            rate_window_s: 10,
            check_interval_s: 10,
            membership_grace_s: 120,
            tampered_block_rate: 0.01,
            heartbeat_neighbours: None,
            heartbeat_interval_ms: None,
            network: NetworkConfig::default(),
            churn: ChurnConfig::default(),
            storage: StorageFaultConfig::default(),
            max_pending_events: 50_000_000,
            serving: ServingConfig::default(),
            forged_views: None,
            devices: DeviceConfig::default(),
        }
    }
}

impl SimConfig {
    /// Virtual length of the run.
    pub fn duration_ms(&self) -> u64 {
        (self.hours * 3_600_000.0) as u64
    }

    /// When churn, partitions and faults stop.
    pub fn quiet_at_ms(&self) -> u64 {
        self.duration_ms()
            .saturating_sub((self.quiet_tail_hours * 3_600_000.0) as u64)
    }

    /// The seed sweep's world (`crate/sim/tests/sweep.rs`, and the adversarial tests run in
    /// it): 24 light nodes and an archive, a 24-block chain (20 at the start, one every 5
    /// minutes), one hour with churn (sessions of 15 minutes, 5 offline, medians), 2
    /// partitions an hour of a minute, 0.5 % message loss and every other fault at its
    /// default, and half an hour of quiet at the end; repairs judged 1,500 s after churn stops
    /// (holders that never confirm are challenged once a view has held for 10 minutes).
    pub fn sweep_world(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            nodes: 24,
            archives: 1,
            blocks: 24,
            initial_blocks: 20,
            block_interval_s: 300,
            hours: 1.0,
            quiet_tail_hours: 0.5,
            repair_bound_s: 1_500,
            network: NetworkConfig {
                partitions_per_hour: 2.0,
                partition_median_s: 60.0,
                loss_rate: 0.005,
                ..NetworkConfig::default()
            },
            churn: ChurnConfig {
                median_session_min: Some(15.0),
                median_offline_min: 5.0,
                ..ChurnConfig::default()
            },
            ..SimConfig::default()
        }
    }

    /// Checks that the configuration can work.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.nodes < 2 {
            return Err(SimConfigError::TooFewNodes {
                needed: 2,
                got: self.nodes,
            });
        }
        if self.replicas == 0 || self.replicas >= self.cluster_size {
            return Err(SimConfigError::Replicas {
                replicas: self.replicas,
                cluster_size: self.cluster_size,
            });
        }
        if self.blocks == 0 {
            return Err(SimConfigError::NoBlocks);
        }
        if self.hours <= 0.0 || !self.hours.is_finite() {
            return Err(SimConfigError::NoTime);
        }
        if self.serving.silent_archives > 0 && self.serving.silent_archives >= self.archives {
            return Err(SimConfigError::SilentArchives {
                silent: self.serving.silent_archives,
                archives: self.archives,
            });
        }
        if self.devices.hosts_per_device == 0 {
            return Err(SimConfigError::Devices(
                "hosts_per_device must be at least 1",
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !self.devices.capacity_ratios.iter().all(|r| positive(*r))
            || !positive(self.devices.capacity_headroom)
        {
            return Err(SimConfigError::Devices(
                "capacity ratios and headroom must be positive numbers",
            ));
        }
        for (name, value) in [
            ("loss_rate", self.network.loss_rate),
            ("crash_fraction", self.churn.crash_fraction),
            (
                "return_with_data_fraction",
                self.churn.return_with_data_fraction,
            ),
            ("lost_write_rate", self.storage.lost_write_rate),
            ("corrupt_read_rate", self.storage.corrupt_read_rate),
            ("tampered_block_rate", self.tampered_block_rate),
        ]
        .into_iter()
        .chain(self.serving.probabilities())
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimConfigError::NotAProbability {
                    name,
                    value: value.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_refused() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        let bad = SimConfig {
            replicas: 8,
            ..SimConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(SimConfigError::Replicas { .. })
        ));
        let mut bad = SimConfig::default();
        bad.network.loss_rate = 1.5;
        assert!(matches!(
            bad.validate(),
            Err(SimConfigError::NotAProbability {
                name: "loss_rate",
                ..
            })
        ));
    }

    #[test]
    fn quiet_tail_comes_before_the_end() {
        let config = SimConfig {
            hours: 2.0,
            quiet_tail_hours: 0.5,
            ..SimConfig::default()
        };
        assert_eq!(config.duration_ms(), 7_200_000);
        assert_eq!(config.quiet_at_ms(), 5_400_000);
    }
}
