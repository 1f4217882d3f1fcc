//! The seeded network: latency, jitter, bandwidth, loss and partitions.
//!
//! Every host sits in one of `segments` network segments (S8's "network segment"). Each pair
//! of hosts has a fixed base one-way latency, drawn once from a log-normal distribution and
//! derived from the seed and the pair alone, so round-trip measurements a node makes are
//! meaningful (S1 picks invitees by round-trip time). Each message adds uniform jitter and its
//! size divided by the link bandwidth, and is lost with a fixed probability. Messages between
//! two requests are not kept in order: Shoal's transport opens a fresh stream per request.
//!
//! A partition cuts one segment off from all others for a while: messages crossing the cut
//! are dropped. Partitions start at exponentially distributed intervals.

use serde::Serialize;

use crate::rng::{mix, SimRng, Stream};

/// A host: an index into the simulator's table of machines (stable across a node's restarts).
pub type HostIdx = u32;

const SEGMENT_SALT: u64 = 0x5345_474D_454E_5400;
/// Salt of the per-link hash that picks a link's latency from the table (the table itself is
/// drawn from [`Stream::LinkTable`]).
const LINK_SALT: u64 = 0x4C49_4E4B_0000_0000;
/// Entries of the table of link latencies (quantiles of the log-normal distribution).
const LATENCY_TABLE_LEN: usize = 4_096;

/// How the simulated network behaves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// Median over links of the base one-way latency.
    pub latency_median_ms: f64,
    /// Shape (σ of the underlying normal) of the log-normal base latency over links.
    pub latency_sigma: f64,
    /// Each message waits an extra uniform `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Bytes a link carries per millisecond (1,000 = 1 MB/s).
    pub bandwidth_bytes_per_ms: u64,
    /// Probability that a message is lost.
    pub loss_rate: f64,
    /// Number of network segments hosts are spread over.
    pub segments: u32,
    /// Mean number of partitions started per simulated hour (0 = none).
    pub partitions_per_hour: f64,
    /// Median duration of a partition.
    pub partition_median_s: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            latency_median_ms: 40.0,
            latency_sigma: 0.5,
            jitter_ms: 10,
            bandwidth_bytes_per_ms: 1_000,
            loss_rate: 0.001,
            segments: 8,
            partitions_per_hour: 0.0,
            partition_median_s: 60.0,
        }
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It arrives at this virtual time.
    At(u64),
    /// It was lost at random.
    Lost,
    /// A partition separates sender and receiver.
    Partitioned,
}

/// One planned partition: `segment` is cut off from the rest during `start_ms..end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The isolated segment.
    pub segment: u32,
    /// When the cut begins.
    pub start_ms: u64,
    /// When it heals.
    pub end_ms: u64,
}

/// The network of one run.
pub struct Network {
    config: NetworkConfig,
    seed: u64,
    /// Link latencies in milliseconds, sorted: a link's latency is the entry its hash picks.
    /// Drawing from a table keeps a message's cost free of logarithms and exponentials.
    latency_table_ms: Vec<u64>,
    rng: SimRng,
    active: Option<Partition>,
}

impl Network {
    /// The network of the run seeded with `seed`, drawing from stream `stream`.
    pub fn new(config: NetworkConfig, seed: u64, stream: u64) -> Self {
        assert!(config.segments > 0, "a network needs at least one segment");
        let mut table_rng = SimRng::stream(seed, Stream::LinkTable.number());
        let mut latency_table_ms: Vec<u64> = (0..LATENCY_TABLE_LEN)
            .map(|_| {
                let latency = table_rng.log_normal(config.latency_median_ms, config.latency_sigma);
                // Same-host traffic still takes a millisecond: nothing is instantaneous.
                latency.clamp(1.0, 10_000.0) as u64
            })
            .collect();
        latency_table_ms.sort_unstable();
        Self {
            config,
            seed,
            latency_table_ms,
            rng: SimRng::stream(seed, stream),
            active: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// The segment a host sits in: a pure function of seed and host.
    pub fn segment_of(&self, host: HostIdx) -> u32 {
        (mix(&[self.seed, SEGMENT_SALT, u64::from(host)]) % u64::from(self.config.segments)) as u32
    }

    /// The fixed one-way base latency between two hosts (symmetric).
    pub fn base_latency_ms(&self, a: HostIdx, b: HostIdx) -> u64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let link = mix(&[self.seed, LINK_SALT, u64::from(lo), u64::from(hi)]);
        self.latency_table_ms[(link % LATENCY_TABLE_LEN as u64) as usize]
    }

    /// The partition in force, if any.
    pub fn active_partition(&self) -> Option<Partition> {
        self.active
    }

    /// Puts a partition in force (or heals it with `None`).
    pub fn set_partition(&mut self, partition: Option<Partition>) {
        self.active = partition;
    }

    /// True if the partition in force separates the two hosts.
    pub fn separated(&self, a: HostIdx, b: HostIdx) -> bool {
        match self.active {
            Some(cut) => (self.segment_of(a) == cut.segment) != (self.segment_of(b) == cut.segment),
            None => false,
        }
    }

    /// Decides the fate of a message of `bytes` bytes sent at `now_ms`.
    pub fn transmit(&mut self, now_ms: u64, from: HostIdx, to: HostIdx, bytes: usize) -> Delivery {
        if self.separated(from, to) {
            return Delivery::Partitioned;
        }
        if self.rng.chance(self.config.loss_rate) {
            return Delivery::Lost;
        }
        let jitter_ms = self.rng.below(self.config.jitter_ms + 1);
        let transfer_ms = bytes as u64 / self.config.bandwidth_bytes_per_ms.max(1);
        Delivery::At(now_ms + self.base_latency_ms(from, to) + jitter_ms + transfer_ms)
    }

    /// Draws the next partition to start after `after_ms`, or `None` if partitions are off.
    pub fn next_partition(&mut self, after_ms: u64) -> Option<Partition> {
        if self.config.partitions_per_hour <= 0.0 {
            return None;
        }
        let gap_ms = self
            .rng
            .exponential(3_600_000.0 / self.config.partitions_per_hour);
        let duration_ms = self
            .rng
            .log_normal(self.config.partition_median_s * 1_000.0, 0.5);
        let start_ms = after_ms + gap_ms as u64 + 1;
        Some(Partition {
            segment: self.rng.below(u64::from(self.config.segments)) as u32,
            start_ms,
            end_ms: start_ms + duration_ms.max(1_000.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_symmetric_and_stable() {
        let net = Network::new(NetworkConfig::default(), 1, 0);
        let again = Network::new(NetworkConfig::default(), 1, 0);
        for (a, b) in [(0, 1), (5, 3), (100, 7)] {
            assert_eq!(net.base_latency_ms(a, b), net.base_latency_ms(b, a));
            assert_eq!(net.base_latency_ms(a, b), again.base_latency_ms(a, b));
            assert!(net.base_latency_ms(a, b) >= 1);
        }
    }

    #[test]
    fn median_latency_is_near_the_configured_one() {
        let net = Network::new(NetworkConfig::default(), 9, 0);
        let mut latencies: Vec<u64> = (0..2_001).map(|b| net.base_latency_ms(0, b + 1)).collect();
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2];
        assert!((35..=45).contains(&median), "median {median}");
    }

    #[test]
    fn partitions_drop_only_crossing_traffic() {
        let config = NetworkConfig {
            loss_rate: 0.0,
            segments: 2,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 3, 0);
        let hosts: Vec<HostIdx> = (0..40).collect();
        let (inside, outside): (Vec<HostIdx>, Vec<HostIdx>) =
            hosts.iter().partition(|h| net.segment_of(**h) == 0);
        assert!(!inside.is_empty() && !outside.is_empty());
        net.set_partition(Some(Partition {
            segment: 0,
            start_ms: 0,
            end_ms: 10,
        }));
        assert_eq!(
            net.transmit(0, inside[0], outside[0], 10),
            Delivery::Partitioned
        );
        assert!(matches!(
            net.transmit(0, inside[0], inside[1], 10),
            Delivery::At(_)
        ));
        assert!(matches!(
            net.transmit(0, outside[0], outside[1], 10),
            Delivery::At(_)
        ));
        net.set_partition(None);
        assert!(matches!(
            net.transmit(0, inside[0], outside[0], 10),
            Delivery::At(_)
        ));
    }

    #[test]
    fn loss_rate_is_respected() {
        let config = NetworkConfig {
            loss_rate: 0.1,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 4, 0);
        let lost = (0..10_000)
            .filter(|_| net.transmit(0, 1, 2, 0) == Delivery::Lost)
            .count();
        assert!((800..1_200).contains(&lost), "lost {lost}");
    }

    #[test]
    fn big_messages_take_longer() {
        let config = NetworkConfig {
            loss_rate: 0.0,
            jitter_ms: 0,
            ..NetworkConfig::default()
        };
        let mut net = Network::new(config, 5, 0);
        let Delivery::At(small) = net.transmit(0, 1, 2, 0) else {
            panic!("lost without loss")
        };
        let Delivery::At(big) = net.transmit(0, 1, 2, 1_000_000) else {
            panic!("lost without loss")
        };
        assert_eq!(big - small, 1_000);
    }
}
