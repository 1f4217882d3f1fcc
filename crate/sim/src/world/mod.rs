//! The simulated world: hosts running unmodified core nodes, and the loop that drives them.
//!
//! # Overview
//!
//! A [`World`] owns a table of hosts (light nodes and a few archive relays), the true chain,
//! the network, churn and fault models, and one event queue. [`World::run`] takes events in
//! virtual-time order; each event is one *step*: it gives one input to one node (or changes
//! the world: a host leaves or returns, a partition starts or heals, a block is mined) and
//! carries out everything that follows.
//!
//! Every online node runs inside a [`shoal_host::Host`], the same host the page and the relay
//! use: a step pushes its input and calls [`shoal_host::Host::drain`], which feeds the node
//! and keeps its timers; the node's other outputs are collected in order and then carried out
//! by the world — messages go to the network, storage commands to the host's simulated disk
//! (through [`shoal_host::execute`], see `disk`), with their results back into the queue
//! `STORAGE_LATENCY_MS` later.
//!
//! A node's timers cost the world one wake-up at a time. After every step for a host, the
//! world reads [`shoal_host::Host::poll_timeout`] and queues a wake-up (`SimEvent::Wake`)
//! for it unless one at that time or earlier is queued already; a newer wake-up makes the
//! older one stale (ignored when it comes), and one that comes early — the node moved its
//! deadline later — finds nothing due and queues the next. A wake-up hands the time to
//! [`shoal_host::Host::handle_timeout`], which fires every timer then due in one drain, in
//! [`TimerId`] order; among the other events of its millisecond a wake-up comes in the order
//! it was queued. Invariants are checked inside the step where their state changes (see
//! [`crate::invariants`]), and the periodic ones on a timer of their own.
//!
//! Nodes are addressed by [`NodeId`]; a host keeps its id when it returns with its data and
//! gets a new one when it returns empty. Every event aimed at a node carries the host's
//! incarnation number, so nothing scheduled for a node that has since crashed reaches its
//! successor.

mod disk;
mod forgery;
mod outputs;
mod report;
mod serving;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use shoal_core::cluster::ClusterId;
use shoal_core::node::{
    Candidate, Config as NodeConfig, HeaderList, HeaderPrefix, HeartbeatMode, Input, Node, NodeId,
    Output, SharedHeaders, StorageResult, TimerId,
};
use shoal_core::placement::PlacementRule;
use shoal_core::serve::newblock::StorageMode;
use shoal_core::wire::{BlockHash, Header, Message};

use crate::chain::{self, SimBlock};
use crate::churn::{Churn, Departure, Return};
use crate::config::{SimConfig, SimConfigError};
use crate::invariants::{Invariant, InvariantLog, RateLimitCheck};
use crate::network::{HostIdx, Network, Partition};
use crate::queue::{EventQueue, QueueError};
use crate::replicas::{Cause, ClusterIdx, PendingLoss, ReplicaCounts};
use crate::rng::{mix, SimRng, Stream};
use crate::storage::{HostStore, StorageFaults, TrueChain};

pub use report::Report;

const NODE_SEED_SALT: u64 = 0x4E4F_4445;

/// Milliseconds a storage command takes.
const STORAGE_LATENCY_MS: u64 = 2;
/// Peers of a crashed host learn that the connection is dead after this long (WebRTC's
/// consent-freshness timeout); until then only heartbeats can tell.
const CRASH_TRANSPORT_TIMEOUT_MS: u64 = 30_000;
/// Nodes not in a cluster get fresh directory candidates this often.
const DIRECTORY_INTERVAL_MS: u64 = 60_000;
/// Candidates per directory answer (besides the archives).
const DIRECTORY_CANDIDATES: usize = 8;
/// Archives (relays) per directory answer.
const ARCHIVES_PER_ANSWER: usize = 2;
/// Violations of each invariant kept in full in the report.
const VIOLATIONS_KEPT: usize = 20;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorldError {
    /// The simulator's configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    Config(#[from] SimConfigError),
    /// The node configuration derived from it is refused by the core.
    #[error("the core refused the node configuration: {0}")]
    NodeConfig(#[from] shoal_core::node::ConfigError),
    /// The event queue overflowed (a node flooding the network, or a bound set too low).
    #[error("event queue: {0}")]
    Queue(#[from] QueueError),
}

/// Parses a placement rule name: `rendezvous`, `segment`, `hash-mod[:OFFSET]`,
/// `even[:RANGE_BLOCKS]`.
pub fn parse_placement(name: &str) -> Result<PlacementRule, SimConfigError> {
    let (rule, arg) = match name.split_once(':') {
        Some((rule, arg)) => (rule, Some(arg)),
        None => (name, None),
    };
    let number = |default: u64| -> Result<u64, SimConfigError> {
        arg.map_or(Ok(default), |a| {
            a.parse()
                .map_err(|_| SimConfigError::UnknownPlacement(name.to_string()))
        })
    };
    match rule {
        "rendezvous" if arg.is_none() => Ok(PlacementRule::Rendezvous),
        "segment" if arg.is_none() => Ok(PlacementRule::Segment),
        "hash-mod" => Ok(PlacementRule::HashMod { offset: number(0)? }),
        "even" => Ok(PlacementRule::Even {
            range_blocks: u32::try_from(number(1)?)
                .map_err(|_| SimConfigError::UnknownPlacement(name.to_string()))?,
        }),
        _ => Err(SimConfigError::UnknownPlacement(name.to_string())),
    }
}

/// Hashes a [`NodeId`] — already a uniform hash — by its first eight bytes. Deterministic,
/// unlike the standard library's randomly keyed hasher.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

/// Something that will happen.
#[derive(Debug)]
enum SimEvent {
    /// A message from node `.0` arrives at `to` (if it is still the same incarnation).
    /// Boxed, like the other large payloads, to keep queue entries small.
    Deliver {
        to: HostIdx,
        incarnation: u32,
        message: Box<(NodeId, Message)>,
    },
    /// A host's node has a timer due: the wake-up numbered `serial` (only the host's latest
    /// counts; see [`Host::wake`]).
    Wake {
        host: HostIdx,
        incarnation: u32,
        serial: u64,
    },
    /// A storage command finished.
    Storage {
        host: HostIdx,
        incarnation: u32,
        result: Box<StorageResult>,
    },
    /// A connection came up (or, `up == false`, went down) as seen from `host`.
    Link {
        host: HostIdx,
        incarnation: u32,
        peer: Box<NodeId>,
        up: bool,
    },
    /// The directory answers an ordinary node.
    Directory { host: HostIdx, incarnation: u32 },
    /// A host's session ends.
    Leave { host: HostIdx, incarnation: u32 },
    /// A host comes back.
    Return { host: HostIdx },
    /// The next block is mined.
    Mine,
    /// A partition starts.
    PartitionStart(Partition),
    /// The partition heals.
    PartitionEnd,
    /// Churn, partitions and faults stop.
    Quiet,
    /// The periodic invariant checks.
    Check,
    /// Every block must be back at P live holders.
    RepairDeadline,
    /// Queries and their deadlines.
    Serving(serving::ServingEvent),
    /// An outsider sends members forged views (see [`crate::config::ForgedViews`]).
    ForgeViews,
}

impl SimEvent {
    /// A short name, for the report's event counts.
    fn kind(&self) -> &'static str {
        match self {
            SimEvent::Deliver { .. } => "deliver",
            SimEvent::Wake { .. } => "wake",
            SimEvent::Storage { .. } => "storage",
            SimEvent::Link { up: true, .. } => "link_up",
            SimEvent::Link { up: false, .. } => "link_down",
            SimEvent::Directory { .. } => "directory",
            SimEvent::Leave { .. } => "leave",
            SimEvent::Return { .. } => "return",
            SimEvent::Mine => "mine",
            SimEvent::PartitionStart(_) => "partition_start",
            SimEvent::PartitionEnd => "partition_end",
            SimEvent::Quiet => "quiet",
            SimEvent::Check => "check",
            SimEvent::RepairDeadline => "repair_deadline",
            SimEvent::Serving(_) => "serving",
            SimEvent::ForgeViews => "forge_views",
        }
    }
}

/// Every timer id, and its name in the report's `timers_fired`.
const TIMERS: [(TimerId, &str); TimerId::COUNT] = [
    (TimerId::Formation, "formation"),
    (TimerId::Invitation, "invitation"),
    (TimerId::Heartbeat, "heartbeat"),
    (TimerId::Silence, "silence"),
    (TimerId::ClusterExpiry, "cluster_expiry"),
    (TimerId::Repair, "repair"),
    (TimerId::Serve, "serve"),
];

/// The wake-up a host waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wake {
    at_ms: u64,
    serial: u64,
}

/// One machine in the world.
struct Host {
    /// The node in its host while the machine is online.
    running: Option<Box<shoal_host::Host>>,
    id: NodeId,
    incarnation: u32,
    archive: bool,
    store: HostStore<BlockHash>,
    /// A hollow adversary's "blocks": written and listed, never kept (see `disk`).
    hollow: BTreeSet<BlockHash>,
    /// The node's key/value records (its transaction index), with the same faults as blocks.
    kv: BTreeMap<Box<[u8]>, Box<[u8]>>,
    /// The cluster the node says it is in (from its events), as a dense index.
    cluster: Option<ClusterIdx>,
    /// The one queued [`SimEvent::Wake`] that counts: any other queued for this host is stale.
    wake: Option<Wake>,
    /// Wake-ups queued for this host so far (numbers them).
    wakes_queued: u64,
    /// Hosts this one has a connection with.
    links: BTreeSet<HostIdx>,
    online_since_ms: u64,
}

impl Host {
    /// The node, while the machine is online.
    fn node(&self) -> Option<&Node> {
        self.running.as_deref().map(shoal_host::Host::node)
    }

    fn node_mut(&mut self) -> Option<&mut Node> {
        self.running.as_deref_mut().map(shoal_host::Host::node_mut)
    }
}

/// The `Io` the world drains a node's host into: the node's outputs, kept in order to be
/// carried out once the drain is over (the world cannot be the `Io` itself, since the host
/// it drains is borrowed from it meanwhile).
struct Collected(Vec<Output>);

impl shoal_host::Io for Collected {
    fn carry_out(&mut self, output: Output, _inputs: &mut shoal_host::Inputs) {
        self.0.push(output);
    }
}

/// Counters for the report.
#[derive(Debug, Default, Clone)]
struct Counters {
    events: u64,
    events_by_kind: BTreeMap<&'static str, u64>,
    timers_fired: BTreeMap<&'static str, u64>,
    messages_by_kind: BTreeMap<&'static str, u64>,
    messages_sent: u64,
    message_bytes: u64,
    messages_lost: u64,
    messages_partitioned: u64,
    messages_to_offline: u64,
    encode_failures: u64,
    light_messages_sent: u64,
    light_online_ms: u64,
    leaves: u64,
    device_crashes: u64,
    returns_with_data: u64,
    returns_fresh: u64,
    partitions: u64,
    lost_writes: u64,
    corrupt_reads: u64,
    kv_writes: u64,
    kv_lost_writes: u64,
    kv_corrupt_reads: u64,
    tampered_blocks_sent: u64,
    blocks_rejected_events: u64,
    block_stored_events: u64,
    members_declared_offline: u64,
    /// Bytes of verified blocks written where the cluster already had the block on P members:
    /// data moved because membership changed, not first fills or new blocks.
    moved_bytes: u64,
    /// Member departures from a cluster (offline, dropped, or switched).
    cluster_leaves: u64,
    /// Per departure, the bytes of blocks that fell below P because of it: the least any
    /// repair must move.
    cluster_leave_optimal_bytes: u64,
    lost_blocks: u64,
    dissolved_losses: u64,
    /// Forged views the outsider sent (see [`crate::config::ForgedViews`]).
    forged_views_sent: u64,
    blocks_below_p_at_deadline: u64,
    /// Per member checked at a repair deadline: |its share of the cluster's stored bytes /
    /// its share of the cluster's capacity − 1| (issue 17).
    capacity_share_errors: Vec<f64>,
    blocks_above_p_at_deadline: u64,
    /// Clusters whose repair (exactly P) was checked at their deadline.
    clusters_repair_checked: u64,
    /// Clusters formed after churn stopped whose deadline fell after the end of the run.
    clusters_repair_unchecked: u64,
    node_stats: NodeStatTotals,
}

/// Sums of the core's own counters over every node incarnation.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct NodeStatTotals {
    /// Clusters formed as inviter.
    pub clusters_formed: u64,
    /// Clusters joined.
    pub clusters_joined: u64,
    /// Members declared offline.
    pub members_declared_offline: u64,
    /// Blocks fetched from other nodes.
    pub blocks_fetched: u64,
    /// Bytes of those.
    pub bytes_fetched: u64,
    /// Blocks that failed verification.
    pub blocks_rejected: u64,
    /// Fetches that failed.
    pub fetch_failures: u64,
    /// Messages the nodes dropped as making no sense.
    pub messages_ignored: u64,
    /// Views of their cluster the nodes refused for who sent them.
    pub views_refused: u64,
    /// Views further ahead than the core's step the nodes took one step at a time.
    pub view_epochs_capped: u64,
    /// Times a member left its cluster because a mate kept refusing its view.
    pub views_left_refused: u64,
    /// Spare copies deleted, each once its holders proved they hold it (issue 16).
    pub spares_evicted: u64,
    /// Challenges sent: "prove you hold this block".
    pub hold_challenges_sent: u64,
    /// Of those, passed.
    pub hold_proofs_passed: u64,
    /// Of those, failed (a wrong digest, or "not held" for a claimed block).
    pub hold_proofs_failed: u64,
    /// Audits started.
    pub hold_audits: u64,
    /// Mates found faulty by their own challenger (each drops it and tells the others).
    pub holders_found_faulty: u64,
    /// Mates dropped on another member's word that they are faulty.
    pub faulty_reports_taken: u64,
}

impl NodeStatTotals {
    fn add(&mut self, node: &Node) {
        let stats = node.stats();
        self.clusters_formed += stats.clusters_formed;
        self.clusters_joined += stats.clusters_joined;
        self.members_declared_offline += stats.members_declared_offline;
        self.blocks_fetched += stats.blocks_fetched;
        self.bytes_fetched += stats.bytes_fetched;
        self.blocks_rejected += stats.blocks_rejected;
        self.fetch_failures += stats.fetch_failures;
        self.messages_ignored += stats.messages_ignored;
        self.views_refused += stats.views_refused;
        self.view_epochs_capped += stats.view_epochs_capped;
        self.views_left_refused += stats.views_left_refused;
        self.spares_evicted += stats.spares_evicted;
        self.hold_challenges_sent += stats.hold_challenges_sent;
        self.hold_proofs_passed += stats.hold_proofs_passed;
        self.hold_proofs_failed += stats.hold_proofs_failed;
        self.hold_audits += stats.hold_audits;
        self.holders_found_faulty += stats.holders_found_faulty;
        self.faulty_reports_taken += stats.faulty_reports_taken;
    }
}

/// A whole simulated world. See the module docs.
pub struct World {
    config: SimConfig,
    node_config: NodeConfig,
    queue: EventQueue<SimEvent>,
    network: Network,
    churn: Churn,
    faults: StorageFaults,
    /// Faults of the key/value records.
    kv_faults: StorageFaults,
    rng: SimRng,
    hosts: Vec<Host>,
    /// Looked up, never iterated: its order cannot leak into a run.
    by_id: HashMap<NodeId, HostIdx, BuildHasherDefault<IdHasher>>,
    /// Online light hosts, for directory sampling (order is deterministic).
    online_light: Vec<HostIdx>,
    online_pos: Vec<Option<usize>>,
    chain: TrueChain<BlockHash>,
    blocks: Vec<SimBlock>,
    header_list: Arc<HeaderList>,
    headers: SharedHeaders,
    published: u32,
    replicas: ReplicaCounts,
    /// How long a lost write counts as a holder failure: until the holder's storage audit
    /// must have found it (the longest jittered interval), plus the repair window.
    silent_failure_ms: u64,
    cluster_index: BTreeMap<ClusterId, ClusterIdx>,
    log: InvariantLog,
    rate: RateLimitCheck,
    /// Per cluster index: when its membership last changed (it formed, or a member adopted a
    /// new view). Its repair deadline counts from then or from when churn stopped, whichever
    /// is later.
    cluster_changed_ms: Vec<u64>,
    /// After the run's repair deadline: the clusters whose own deadline is still to come.
    repair_pending: Option<Vec<ClusterIdx>>,
    /// Blocks whose last live holder in a cluster went, waiting for judgement.
    pending_losses: Vec<PendingLoss>,
    /// (cluster, member) pairs that have counted as cut off by the partition in force.
    cut_off: BTreeSet<(ClusterIdx, HostIdx)>,
    /// Per node id counted in two clusters: when that was first seen.
    two_cluster_since: BTreeMap<NodeId, u64>,
    quiet: bool,
    /// `SHOAL_SIM_TRACE` / `SHOAL_SIM_TRACE_EVENTS`, read once: diagnostics on stderr.
    trace: Trace,
    /// The world is booting its hosts: directory answers wait until all are online.
    starting: bool,
    counters: Counters,
    serving: serving::Serving,
    /// The buffer of [`Collected`] outputs, kept between steps.
    outputs: Vec<Output>,
    started: Instant,
}

/// Diagnostics the environment asked for.
#[derive(Debug, Clone, Copy)]
struct Trace {
    /// `SHOAL_SIM_TRACE`: print the members of a cluster that breaks a repair or query check.
    state: bool,
    /// `SHOAL_SIM_TRACE_EVENTS`: print every node event (but query results and jobs), and
    /// when each partition starts and ends.
    events: bool,
}

impl Trace {
    fn from_env() -> Trace {
        Trace {
            state: std::env::var_os("SHOAL_SIM_TRACE").is_some(),
            events: std::env::var_os("SHOAL_SIM_TRACE_EVENTS").is_some(),
        }
    }
}

impl World {
    /// Builds the world of `config`: generates the chain, creates the hosts and schedules
    /// their first events.
    pub fn new(config: SimConfig) -> Result<World, WorldError> {
        config.validate()?;
        let placement = parse_placement(&config.placement)?;
        let defaults = NodeConfig::default();
        let heartbeat_interval_ms = config
            .heartbeat_interval_ms
            .unwrap_or(defaults.heartbeat_interval_ms);
        let mut node_config = NodeConfig {
            heartbeat_mode: config
                .heartbeat_neighbours
                .map_or(defaults.heartbeat_mode, |per_side| {
                    HeartbeatMode::Neighbours { per_side }
                }),
            heartbeat_interval_ms,
            // Keep the core's ratio of silence to interval before declaring a member offline.
            offline_after_ms: defaults.offline_after_ms * heartbeat_interval_ms
                / defaults.heartbeat_interval_ms,
            cluster_size_max: config.cluster_size,
            cluster_size_target: defaults.cluster_size_target.min(config.cluster_size),
            form_with_accepts: defaults
                .form_with_accepts
                .max(config.replicas.saturating_sub(1))
                .min(config.cluster_size - 1),
            replicas: config.replicas,
            placement,
            ..defaults
        };
        node_config.serve.new_blocks.mode = match config.serving.new_blocks_mode {
            crate::serving::NewBlocksMode::Routed => StorageMode::Routed,
            crate::serving::NewBlocksMode::SelfSelected => StorageMode::SelfSelected,
        };
        node_config.serve.new_blocks.replicas = config.replicas;
        node_config.validate()?;
        // Detection is part of repair: a failure counts at least until it can be noticed.
        let repair_window_ms =
            (config.repair_window_s * 1_000).max(node_config.offline_after_ms + 100_000);

        let seed = config.seed;
        let blocks = chain::generate_regtest(config.blocks, config.txs_per_block, seed);
        let headers: Vec<Header> = blocks
            .iter()
            .map(|block| Header::decode(&block.header).expect("generated headers are 80 bytes"))
            .collect();
        let header_list = Arc::new(HeaderList::new(headers));
        let chain = TrueChain::new(
            blocks
                .iter()
                .map(|block| (BlockHash::from_byte_array(block.hash), block.bytes.clone()))
                .collect(),
        );
        let published = config.initial_blocks.clamp(1, config.blocks);
        let headers: SharedHeaders = Arc::new(HeaderPrefix::new(header_list.clone(), published));

        let host_count = config.nodes + config.archives;
        let serving = serving::Serving::new(
            config.serving.clone(),
            seed,
            &blocks,
            config.nodes,
            host_count,
        );
        let mut world = World {
            serving,
            network: Network::new(config.network.clone(), seed, Stream::Network.number()),
            churn: Churn::new(config.churn.clone(), seed, Stream::Churn.number()),
            faults: StorageFaults::new(config.storage.clone(), seed, Stream::Storage.number()),
            // The key/value records have a stream of their own, so that adding their faults
            // left every other draw as it was.
            kv_faults: StorageFaults::new(config.storage.clone(), seed, Stream::Kv.number()),
            rng: SimRng::stream(seed, Stream::World.number()),
            queue: EventQueue::new(config.max_pending_events),
            hosts: Vec::with_capacity(host_count),
            by_id: HashMap::default(),
            online_light: Vec::with_capacity(config.nodes),
            online_pos: vec![None; host_count],
            chain,
            blocks,
            header_list,
            headers,
            published,
            replicas: ReplicaCounts::new(config.replicas as u32, repair_window_ms),
            silent_failure_ms: node_config
                .storage_audit_interval_ms
                .map_or(u64::MAX, |interval| interval * 3 / 2 + repair_window_ms),
            cluster_index: BTreeMap::new(),
            log: InvariantLog::new(VIOLATIONS_KEPT),
            rate: RateLimitCheck::new(
                host_count,
                config.rate_window_s.max(1) * 1_000,
                config.max_messages_per_node_per_s,
            ),
            cluster_changed_ms: Vec::new(),
            repair_pending: None,
            pending_losses: Vec::new(),
            cut_off: BTreeSet::new(),
            two_cluster_since: BTreeMap::new(),
            quiet: false,
            trace: Trace::from_env(),
            starting: false,
            counters: Counters::default(),
            outputs: Vec::new(),
            started: Instant::now(),
            node_config,
            config,
        };
        for index in 0..host_count {
            let host = index as HostIdx;
            let archive = index >= world.config.nodes;
            let id = world.identity(host, 0);
            world.hosts.push(Host {
                running: None,
                id,
                incarnation: 0,
                archive,
                store: HostStore::default(),
                hollow: BTreeSet::new(),
                kv: BTreeMap::new(),
                cluster: None,
                wake: None,
                wakes_queued: 0,
                links: BTreeSet::new(),
                online_since_ms: 0,
            });
            world.by_id.insert(id, host);
        }
        let archives: Vec<(HostIdx, NodeId)> = (world.config.nodes..host_count)
            .map(|index| (index as HostIdx, world.hosts[index].id))
            .collect();
        world.serving.silence_archives(&archives);
        // Archives first, so that light nodes find a source when they start. The directory
        // answers once every host is online: answering each host as it booted offered the
        // first hosts to everyone after them, and at 10,000 nodes those few were dialled by
        // hundreds of peers at once (a node is told of at most `DIRECTORY_CANDIDATES` peers,
        // but nothing bounds how many are told of it).
        world.starting = true;
        for index in (world.config.nodes..host_count).chain(0..world.config.nodes) {
            world.boot(index as HostIdx)?;
        }
        world.starting = false;
        for index in 0..world.config.nodes {
            world.directory(index as HostIdx)?;
        }
        if world.published < world.config.blocks {
            let at_ms = world.config.block_interval_s * 1_000;
            world.queue.schedule(at_ms, SimEvent::Mine)?;
        }
        if let Some(partition) = world.network.next_partition(0) {
            world
                .queue
                .schedule(partition.start_ms, SimEvent::PartitionStart(partition))?;
        }
        let check_ms = world.config.check_interval_s.max(1) * 1_000;
        world.queue.schedule(check_ms, SimEvent::Check)?;
        world.serving_start()?;
        if let Some(attack) = world.config.forged_views {
            world
                .queue
                .schedule(attack.start_s * 1_000, SimEvent::ForgeViews)?;
        }
        let quiet_at_ms = world.config.quiet_at_ms();
        world.queue.schedule(quiet_at_ms, SimEvent::Quiet)?;
        let deadline_ms = quiet_at_ms + world.config.repair_bound_s * 1_000;
        if deadline_ms <= world.config.duration_ms() {
            world
                .queue
                .schedule(deadline_ms, SimEvent::RepairDeadline)?;
        } else {
            for invariant in [Invariant::RepairedToP, Invariant::ExactlyP] {
                world.log.not_checkable(
                    invariant,
                    format!(
                        "the run ends before churn stop + repair bound ({} s + {} s)",
                        quiet_at_ms / 1_000,
                        world.config.repair_bound_s
                    ),
                );
            }
        }
        Ok(world)
    }

    /// The node id of `host` in its `incarnation`-th life without data.
    fn identity(&self, host: HostIdx, generation: u32) -> NodeId {
        NodeId::from_seed(mix(&[
            self.config.seed,
            u64::from(host),
            u64::from(generation),
        ]))
    }

    /// The device `host` runs on as its node says it (issue 17): light nodes
    /// `hosts_per_device` to a device; 0 (a device of its own) for archives, and when every
    /// node has its own.
    fn device_of(&self, host: HostIdx) -> u64 {
        let per_device = self.config.devices.hosts_per_device as u64;
        if self.hosts[host as usize].archive || per_device <= 1 {
            0
        } else {
            u64::from(host) / per_device + 1
        }
    }

    /// The failure domain placement sees for `host`'s current node.
    pub(super) fn effective_device(&self, host: HostIdx) -> u64 {
        shoal_core::placement::device_of(&self.hosts[host as usize].id, self.device_of(host))
    }

    /// The other light nodes on `host`'s device (none when each has its own).
    fn device_mates(&self, host: HostIdx) -> Vec<HostIdx> {
        let device = self.device_of(host);
        if device == 0 {
            return Vec::new();
        }
        let per_device = self.config.devices.hosts_per_device as u64;
        let first = (device - 1) * per_device;
        (first..first + per_device)
            .filter_map(|h| HostIdx::try_from(h).ok())
            .filter(|&h| h != host && (h as usize) < self.config.nodes)
            .collect()
    }

    /// The capacity `host`'s node offers (see [`crate::config::DeviceConfig`]).
    pub(super) fn capacity_of(&self, host: HostIdx) -> u64 {
        let ratios = &self.config.devices.capacity_ratios;
        if ratios.is_empty() || self.hosts[host as usize].archive {
            return self.node_config.capacity_bytes;
        }
        let chain_bytes: usize = self.blocks.iter().map(|b| b.bytes.len()).sum();
        let share =
            chain_bytes as f64 * self.config.replicas as f64 / self.config.cluster_size as f64;
        let ratio = ratios[host as usize % ratios.len()];
        (share * ratio * self.config.devices.capacity_headroom) as u64
    }

    /// Starts a node on `host` (first boot or return).
    fn boot(&mut self, host: HostIdx) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let index = host as usize;
        let incarnation = self.hosts[index].incarnation;
        let node_seed = mix(&[
            self.config.seed,
            NODE_SEED_SALT,
            u64::from(host),
            u64::from(incarnation),
        ]);
        let node_config = NodeConfig {
            address: format!("sim://{host}"),
            segment: self.network.segment_of(host),
            archive: self.hosts[index].archive,
            device: self.device_of(host),
            capacity_bytes: self.capacity_of(host),
            ..self.node_config.clone()
        };
        let node = Node::new(node_config, self.hosts[index].id, node_seed)?;
        let archive = self.hosts[index].archive;
        self.serving.booted(host, self.hosts[index].id);
        {
            let record = &mut self.hosts[index];
            record.running = Some(Box::new(shoal_host::Host::new(node)));
            record.wake = None;
            record.cluster = None;
            record.online_since_ms = now_ms;
        }
        if !archive {
            self.online_pos[index] = Some(self.online_light.len());
            self.online_light.push(host);
        }
        self.feed(host, Input::Start)?;
        self.feed(host, Input::Headers(self.headers.clone()))?;
        if archive {
            // The block source: an archive holds the chain mined so far.
            for height in 0..self.published {
                let bytes = self.blocks[height as usize].bytes.clone();
                self.feed(host, Input::NewBlock { bytes })?;
            }
        }
        if !self.starting {
            self.directory(host)?;
        }
        if !archive {
            if let Some(session_ms) = self.churn.session_ms() {
                self.queue
                    .schedule(now_ms + session_ms, SimEvent::Leave { host, incarnation })?;
            }
        }
        Ok(())
    }

    /// Runs to the end and returns the report.
    pub fn run(mut self) -> Result<Report, WorldError> {
        self.run_until(self.config.duration_ms())?;
        Ok(self.finish())
    }

    /// Carries out every event due by `end_ms`.
    fn run_until(&mut self, end_ms: u64) -> Result<(), WorldError> {
        while let Some(at_ms) = self.queue.peek_ms() {
            if at_ms > end_ms {
                break;
            }
            let (_, event) = self.queue.pop().expect("peeked");
            self.counters.events += 1;
            self.step(event)?;
        }
        Ok(())
    }

    /// Carries out one event.
    fn step(&mut self, event: SimEvent) -> Result<(), WorldError> {
        *self
            .counters
            .events_by_kind
            .entry(event.kind())
            .or_default() += 1;
        match event {
            SimEvent::Deliver {
                to,
                incarnation,
                message,
            } => {
                if self.is_current(to, incarnation) {
                    let (from, message) = *message;
                    if let Some(message) = self.serving_intercept(to, from, message)? {
                        self.feed(to, Input::Message { from, message })?;
                    }
                } else {
                    self.counters.messages_to_offline += 1;
                }
            }
            SimEvent::Wake {
                host,
                incarnation,
                serial,
            } => {
                if self.is_current(host, incarnation)
                    && self.hosts[host as usize]
                        .wake
                        .is_some_and(|wake| wake.serial == serial)
                {
                    self.hosts[host as usize].wake = None;
                    self.wake(host)?;
                }
            }
            SimEvent::Storage {
                host,
                incarnation,
                result,
            } => {
                if self.is_current(host, incarnation) {
                    self.feed(host, Input::Storage(*result))?;
                }
            }
            SimEvent::Link {
                host,
                incarnation,
                peer,
                up,
            } => {
                if self.is_current(host, incarnation) {
                    let peer = *peer;
                    let linked = self
                        .by_id
                        .get(&peer)
                        .is_some_and(|p| self.hosts[host as usize].links.contains(p));
                    // A late "down" for a link that has since come back up is stale.
                    if up || !linked {
                        let input = if up {
                            Input::PeerConnected { peer }
                        } else {
                            Input::PeerDisconnected { peer }
                        };
                        self.feed(host, input)?;
                    }
                }
            }
            SimEvent::Directory { host, incarnation } => {
                if self.is_current(host, incarnation) {
                    self.directory(host)?;
                }
            }
            SimEvent::Leave { host, incarnation } => {
                if self.is_current(host, incarnation) && !self.quiet {
                    let departure = self.churn.departure();
                    self.leave(host, departure)?;
                    if self.config.devices.whole_device_crashes {
                        // The rest of its device goes down with it, without a word.
                        for mate in self.device_mates(host) {
                            if self.hosts[mate as usize].running.is_some() {
                                self.counters.device_crashes += 1;
                                self.leave(mate, Departure::Crash)?;
                            }
                        }
                    }
                }
            }
            // A return scheduled for after churn stopped already happened at that moment.
            SimEvent::Return { host } => {
                if self.hosts[host as usize].running.is_none() {
                    self.come_back(host)?;
                }
            }
            SimEvent::Mine => self.mine()?,
            SimEvent::PartitionStart(partition) => {
                if !self.quiet {
                    if self.trace.events {
                        eprintln!("{} ms partition starts: {partition:?}", self.queue.now_ms());
                    }
                    self.counters.partitions += 1;
                    self.network.set_partition(Some(partition));
                    self.note_partition_failures(partition);
                    self.queue
                        .schedule(partition.end_ms, SimEvent::PartitionEnd)?;
                }
            }
            SimEvent::PartitionEnd => {
                if self.trace.events {
                    eprintln!("{} ms partition ends", self.queue.now_ms());
                }
                self.network.set_partition(None);
                if !self.quiet {
                    let now_ms = self.queue.now_ms();
                    if let Some(next) = self.network.next_partition(now_ms) {
                        self.queue
                            .schedule(next.start_ms, SimEvent::PartitionStart(next))?;
                    }
                }
            }
            SimEvent::Quiet => {
                self.quiet = true;
                self.network.set_partition(None);
                self.faults.set_enabled(false);
                self.kv_faults.set_enabled(false);
                // Churn stops: no host leaves from now on, and every host away comes back
                // now (refilling clusters that shrank), so that the membership is fixed
                // from here and the repair bound measures settling, not further churn.
                for host in 0..self.hosts.len() as HostIdx {
                    if self.hosts[host as usize].running.is_none() {
                        self.come_back(host)?;
                    }
                }
            }
            SimEvent::Check => {
                self.periodic_checks();
                let next_ms = self.queue.now_ms() + self.config.check_interval_s.max(1) * 1_000;
                self.queue.schedule(next_ms, SimEvent::Check)?;
            }
            SimEvent::RepairDeadline => self.check_repaired(),
            SimEvent::Serving(event) => self.serving_step(event)?,
            SimEvent::ForgeViews => self.forge_views()?,
        }
        Ok(())
    }

    fn is_current(&self, host: HostIdx, incarnation: u32) -> bool {
        let record = &self.hosts[host as usize];
        record.running.is_some() && record.incarnation == incarnation
    }

    /// Feeds one input to the node on `host` and carries out everything it asks for.
    fn feed(&mut self, host: HostIdx, input: Input) -> Result<(), WorldError> {
        self.pump(host, |running, _| running.push(input))
    }

    /// `host`'s wake-up is due: every timer of its node due now fires.
    fn wake(&mut self, host: HostIdx) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        self.pump(host, |running, counters| {
            for (id, name) in TIMERS {
                if running.timer(id).is_some_and(|at_ms| at_ms <= now_ms) {
                    *counters.timers_fired.entry(name).or_default() += 1;
                }
            }
            running.handle_timeout(now_ms);
        })
    }

    /// If `host` is online: queues inputs for its node with `queue`, drains the node of them
    /// through its host, carries out the outputs in the order the node gave them, and makes
    /// sure a wake-up is queued for the node's next timer.
    fn pump(
        &mut self,
        host: HostIdx,
        queue: impl FnOnce(&mut shoal_host::Host, &mut Counters),
    ) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let Some(running) = self.hosts[host as usize].running.as_mut() else {
            return Ok(());
        };
        queue(running, &mut self.counters);
        let mut collected = Collected(std::mem::take(&mut self.outputs));
        running.drain(now_ms, &mut collected);
        let mut outputs = collected.0;
        for output in outputs.drain(..) {
            self.apply(host, output)?;
        }
        self.outputs = outputs;
        self.arm_wake(host)
    }

    /// Queues a wake-up for the next timer of the node on `host`, unless one at that time or
    /// earlier is queued already (an early wake-up finds nothing due and arms the next).
    fn arm_wake(&mut self, host: HostIdx) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let record = &mut self.hosts[host as usize];
        let Some(next_ms) = record.running.as_ref().and_then(|r| r.poll_timeout()) else {
            return Ok(());
        };
        let at_ms = next_ms.max(now_ms);
        if record.wake.is_some_and(|wake| wake.at_ms <= at_ms) {
            return Ok(());
        }
        record.wakes_queued += 1;
        let serial = record.wakes_queued;
        record.wake = Some(Wake { at_ms, serial });
        let incarnation = record.incarnation;
        self.queue.schedule(
            at_ms,
            SimEvent::Wake {
                host,
                incarnation,
                serial,
            },
        )?;
        Ok(())
    }

    /// Hands `host` candidate peers, as a relay's directory would, and asks again later if it
    /// is still not in a cluster.
    fn directory(&mut self, host: HostIdx) -> Result<(), WorldError> {
        let index = host as usize;
        if self.hosts[index].archive {
            // Archives are dialled; they dial no one.
            return Ok(());
        }
        // The relay answering is an archive the node is (or will be) connected to: it comes
        // first, as a browser's relay is its first connection. Then random ordinary peers,
        // then a second archive.
        let archives = self.config.archives;
        let relays: Vec<usize> = (0..ARCHIVES_PER_ANSWER.min(archives))
            .map(|k| self.config.nodes + (index + k) % archives)
            .filter(|archive| self.hosts[*archive].running.is_some())
            .collect();
        let mut candidates = Vec::with_capacity(DIRECTORY_CANDIDATES + ARCHIVES_PER_ANSWER);
        if let Some(home) = relays.first() {
            candidates.push(self.candidate(*home as HostIdx));
        }
        let pool = self.online_light.len();
        for _ in 0..DIRECTORY_CANDIDATES.min(pool) {
            let pick = self.online_light[self.rng.below(pool as u64) as usize];
            if pick != host
                && !candidates
                    .iter()
                    .any(|c: &Candidate| c.id == self.hosts[pick as usize].id)
            {
                candidates.push(self.candidate(pick));
            }
        }
        for archive in relays.iter().skip(1) {
            candidates.push(self.candidate(*archive as HostIdx));
        }
        self.feed(host, Input::CandidatePeers(candidates))?;
        if !self.hosts[index].archive && self.hosts[index].cluster.is_none() {
            let incarnation = self.hosts[index].incarnation;
            let at_ms = self.queue.now_ms() + DIRECTORY_INTERVAL_MS;
            self.queue
                .schedule(at_ms, SimEvent::Directory { host, incarnation })?;
        }
        Ok(())
    }

    fn candidate(&self, host: HostIdx) -> Candidate {
        Candidate {
            id: self.hosts[host as usize].id,
            address: format!("sim://{host}"),
        }
    }

    /// A session ends: the node stops, its links drop, its replicas stop counting.
    fn leave(&mut self, host: HostIdx, departure: Departure) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let index = host as usize;
        self.counters.leaves += 1;
        self.leave_cluster(host, Cause::Offline);
        if let Some(running) = self.hosts[index].running.take() {
            self.counters.node_stats.add(running.node());
        }
        self.counters.light_online_ms += now_ms - self.hosts[index].online_since_ms;
        if let Some(pos) = self.online_pos[index].take() {
            self.online_light.swap_remove(pos);
            if let Some(moved) = self.online_light.get(pos) {
                self.online_pos[*moved as usize] = Some(pos);
            }
        }
        let id = self.hosts[index].id;
        let links = std::mem::take(&mut self.hosts[index].links);
        for peer in links {
            self.hosts[peer as usize].links.remove(&host);
            let notice_ms = match departure {
                Departure::Close => self.network.base_latency_ms(host, peer),
                Departure::Crash => CRASH_TRANSPORT_TIMEOUT_MS,
            };
            let incarnation = self.hosts[peer as usize].incarnation;
            self.queue.schedule(
                now_ms + notice_ms,
                SimEvent::Link {
                    host: peer,
                    incarnation,
                    peer: Box::new(id),
                    up: false,
                },
            )?;
        }
        self.hosts[index].incarnation += 1;
        let back_ms = now_ms + self.churn.offline_ms();
        self.queue.schedule(back_ms, SimEvent::Return { host })?;
        Ok(())
    }

    /// A host returns, with its data and identity or empty with a new identity.
    fn come_back(&mut self, host: HostIdx) -> Result<(), WorldError> {
        let index = host as usize;
        match self.churn.return_kind() {
            Return::WithData => self.counters.returns_with_data += 1,
            Return::Fresh => {
                self.counters.returns_fresh += 1;
                let old = self.hosts[index].id;
                self.by_id.remove(&old);
                let id = self.identity(host, self.hosts[index].incarnation);
                self.hosts[index].id = id;
                self.hosts[index].store.clear();
                self.hosts[index].hollow.clear();
                self.hosts[index].kv.clear();
                self.by_id.insert(id, host);
            }
        }
        self.boot(host)
    }

    /// The next block is mined: every online node gets the new header view, and the block
    /// goes where the new-block mode says (some get a tampered copy, as from a byzantine
    /// relay).
    fn mine(&mut self) -> Result<(), WorldError> {
        let height = self.published;
        self.published += 1;
        self.headers = Arc::new(HeaderPrefix::new(self.header_list.clone(), self.published));
        let original = self.blocks[height as usize].bytes.clone();
        // Every node learns the longer header chain first; then the block source hands the
        // block out as the new-block mode says (S14: one member per cluster; S15: all).
        for index in 0..self.hosts.len() {
            if self.hosts[index].running.is_some() {
                self.feed(index as HostIdx, Input::Headers(self.headers.clone()))?;
            }
        }
        let recipients = self.serving_block_recipients();
        for (index, receives) in recipients.into_iter().enumerate() {
            if self.hosts[index].running.is_none() || !receives {
                continue;
            }
            let host = index as HostIdx;
            let archive = self.hosts[index].archive;
            let bytes = if !archive && self.rng.chance(self.config.tampered_block_rate) {
                self.counters.tampered_blocks_sent += 1;
                chain::tamper(&original, self.rng.next_u64())
            } else {
                original.clone()
            };
            self.feed(host, Input::NewBlock { bytes })?;
        }
        if self.published < self.config.blocks {
            let at_ms = self.queue.now_ms() + self.config.block_interval_s * 1_000;
            self.queue.schedule(at_ms, SimEvent::Mine)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
