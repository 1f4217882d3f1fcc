//! `shoal-sim`: runs Shoal's deterministic simulator from the command line.
//!
//! ```text
//! shoal-sim --nodes 1000 --cluster-size 8 --replicas 3 --placement rendezvous --blocks 200 \
//!           --hours 24 --churn-median-session-min 60 --seed 7 --json
//! shoal-sim --nodes 60 --new-blocks-mode self-selected --new-block-interval-s 120 \
//!           --queries-per-s 2 --adversaries 0.2 --adversary-kind mixed --json
//! shoal-sim placement --cluster-size 8 --replicas 3 --blocks 2000
//! ```
//!
//! `SEED=n` in the environment overrides `--seed`. A run that violates an invariant prints the
//! command that replays it on standard error and exits with status 1.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use shoal_sim::churn::ChurnConfig;
use shoal_sim::config::SimConfig;
use shoal_sim::movement;
use shoal_sim::network::NetworkConfig;
use shoal_sim::serving::{AdversaryKind, NewBlocksMode, ServingConfig};
use shoal_sim::storage::StorageFaultConfig;
use shoal_sim::world::World;

#[derive(Parser, Debug)]
#[command(
    name = "shoal-sim",
    version,
    about = "Shoal's deterministic cluster simulator"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Bytes moved per member leave and join under each placement rule, against the optimum.
    Placement(PlacementArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Light nodes.
    #[arg(long, default_value_t = 60)]
    nodes: usize,
    /// Archive relays (block source; never churn).
    #[arg(long, default_value_t = 2)]
    archives: usize,
    /// K: the largest cluster.
    #[arg(long, default_value_t = 8)]
    cluster_size: usize,
    /// P: members holding each block.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// rendezvous | segment | hash-mod[:OFFSET] | even[:RANGE_BLOCKS]
    #[arg(long, default_value = "rendezvous")]
    placement: String,
    /// Blocks in the chain by the end of the run.
    #[arg(long, default_value_t = 50)]
    blocks: u32,
    /// Blocks that exist at the start (default: 80 % of --blocks).
    #[arg(long)]
    initial_blocks: Option<u32>,
    /// Seconds between new blocks after the initial ones.
    #[arg(long, alias = "new-block-interval-s", default_value_t = 600)]
    block_interval_s: u64,
    /// How the block source hands out new blocks: routed (S14, one member per cluster) or
    /// self-selected (S15, every member).
    #[arg(long, default_value = "routed")]
    new_blocks_mode: NewBlocksMode,
    /// Transaction queries per second over the whole world (0: none).
    #[arg(long, default_value_t = 0.2)]
    queries_per_s: f64,
    /// Fraction of queries from outsiders (clients outside the cluster asking any member).
    #[arg(long, default_value_t = 0.3)]
    outsider_fraction: f64,
    /// Fraction of queries for txids in no block.
    #[arg(long, default_value_t = 0.1)]
    unknown_txid_fraction: f64,
    /// Fraction of query events that are jobs instead (S17: run code on any block).
    #[arg(long, default_value_t = 0.1)]
    job_fraction: f64,
    /// Adversarial members: a count, or a fraction of --nodes when below 1 (e.g. 0.2).
    #[arg(long, default_value_t = 0.0)]
    adversaries: f64,
    /// What adversaries do: forge | corrupt | silent (their outgoing answers and blocks),
    /// hollow (claim to store blocks and store nothing), mixed (the first three in turn).
    #[arg(long, default_value = "mixed")]
    adversary_kind: AdversaryKind,
    /// Archives that greet as archives and answer nothing (issue 16), the lowest ids first.
    #[arg(long, default_value_t = 0)]
    silent_archives: usize,
    /// Light nodes per device (issue 17's failure domains; 1: each its own).
    #[arg(long, default_value_t = 1)]
    hosts_per_device: usize,
    /// A departure takes the rest of its device down with it (crashes).
    #[arg(long)]
    whole_device_crashes: bool,
    /// Capacities relative to a fair share, cycled over the light nodes (e.g. 1,1,0.5);
    /// omitted: every node offers the core's default.
    #[arg(long, value_delimiter = ',')]
    capacity_ratios: Vec<f64>,
    /// Simulated hours.
    #[arg(long, default_value_t = 1.0)]
    hours: f64,
    /// Median online session in minutes (omit for no churn).
    #[arg(long)]
    churn_median_session_min: Option<f64>,
    /// Median offline gap in minutes.
    #[arg(long, default_value_t = 10.0)]
    churn_median_offline_min: f64,
    /// Fraction of departures that are silent crashes.
    #[arg(long, default_value_t = 0.5)]
    crash_fraction: f64,
    /// Fraction of returns that keep data and identity.
    #[arg(long, default_value_t = 0.5)]
    return_with_data_fraction: f64,
    /// Partitions started per simulated hour (each cuts one network segment off).
    #[arg(long, default_value_t = 0.0)]
    partitions_per_hour: f64,
    /// Message loss probability.
    #[arg(long, default_value_t = 0.001)]
    loss_rate: f64,
    /// Probability a storage write is silently lost.
    #[arg(long, default_value_t = 0.001)]
    lost_write_rate: f64,
    /// Probability a storage read comes back with a bit flipped.
    #[arg(long, default_value_t = 0.001)]
    corrupt_read_rate: f64,
    /// Probability the block source hands a node a tampered block.
    #[arg(long, default_value_t = 0.01)]
    tampered_block_rate: f64,
    /// Hours at the end without churn, partitions or faults (repair is checked in them).
    #[arg(long)]
    quiet_tail_hours: Option<f64>,
    /// After churn stops, every block must be back at P within this many seconds.
    #[arg(long, default_value_t = 1_500)]
    repair_bound_s: u64,
    /// Per-node message budget (messages per second over a 10 s window).
    #[arg(long, default_value_t = 50.0)]
    max_messages_per_node_per_s: f64,
    /// Seconds between the periodic invariant checks.
    #[arg(long, default_value_t = 10)]
    check_interval_s: u64,
    /// Heartbeat only N numbered neighbours per side (S10) instead of every member (S9).
    #[arg(long)]
    heartbeat_neighbours: Option<usize>,
    /// Milliseconds between heartbeats (default: the core's).
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// An outsider sends every member a forged view of its cluster (epoch u64::MAX, members
    /// of its choosing) every this many seconds, from then on (issue 16)
    #[arg(long)]
    forged_views_every_s: Option<u64>,
    /// The seed (the SEED environment variable overrides it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as one JSON object (otherwise a readable summary).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PlacementArgs {
    /// K: members before a leave (a join goes from K-1 to K).
    #[arg(long, default_value_t = 8)]
    cluster_size: usize,
    /// P.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Blocks placed.
    #[arg(long, default_value_t = 2_000)]
    blocks: u32,
    /// Membership changes averaged over.
    #[arg(long, default_value_t = 50)]
    trials: u32,
    /// Seed of the chain and member ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl RunArgs {
    fn config(&self, seed: u64) -> SimConfig {
        let hours = self.hours;
        SimConfig {
            seed,
            nodes: self.nodes,
            archives: self.archives,
            cluster_size: self.cluster_size,
            replicas: self.replicas,
            placement: self.placement.clone(),
            blocks: self.blocks,
            initial_blocks: self
                .initial_blocks
                .unwrap_or_else(|| (self.blocks * 4 / 5).max(1)),
            block_interval_s: self.block_interval_s,
            hours,
            quiet_tail_hours: self.quiet_tail_hours.unwrap_or(hours / 4.0),
            repair_bound_s: self.repair_bound_s,
            max_messages_per_node_per_s: self.max_messages_per_node_per_s,
            check_interval_s: self.check_interval_s,
            tampered_block_rate: self.tampered_block_rate,
            heartbeat_neighbours: self.heartbeat_neighbours,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            network: NetworkConfig {
                loss_rate: self.loss_rate,
                partitions_per_hour: self.partitions_per_hour,
                ..NetworkConfig::default()
            },
            churn: ChurnConfig {
                median_session_min: self.churn_median_session_min,
                median_offline_min: self.churn_median_offline_min,
                crash_fraction: self.crash_fraction,
                return_with_data_fraction: self.return_with_data_fraction,
                ..ChurnConfig::default()
            },
            storage: StorageFaultConfig {
                lost_write_rate: self.lost_write_rate,
                corrupt_read_rate: self.corrupt_read_rate,
            },
            serving: ServingConfig {
                new_blocks_mode: self.new_blocks_mode,
                queries_per_s: self.queries_per_s,
                outsider_fraction: self.outsider_fraction,
                unknown_txid_fraction: self.unknown_txid_fraction,
                job_fraction: self.job_fraction,
                adversaries: if self.adversaries < 1.0 {
                    (self.adversaries.max(0.0) * self.nodes as f64).round() as usize
                } else {
                    self.adversaries as usize
                },
                adversary_kind: self.adversary_kind,
                silent_archives: self.silent_archives,
                ..ServingConfig::default()
            },
            forged_views: self
                .forged_views_every_s
                .map(|every| shoal_sim::config::ForgedViews {
                    start_s: every,
                    interval_s: every,
                }),
            devices: shoal_sim::config::DeviceConfig {
                hosts_per_device: self.hosts_per_device,
                whole_device_crashes: self.whole_device_crashes,
                capacity_ratios: self.capacity_ratios.clone(),
                ..shoal_sim::config::DeviceConfig::default()
            },
            ..SimConfig::default()
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(Command::Placement(args)) = cli.command {
        let rows = movement::measure_all(
            args.cluster_size,
            args.replicas,
            args.blocks,
            args.trials,
            args.seed,
        )?;
        println!("{}", movement::table(&rows));
        return Ok(ExitCode::SUCCESS);
    }
    let run = cli.run;
    let seed = match std::env::var("SEED") {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("SEED={value:?} is not a u64"))?,
        Err(_) => run.seed,
    };
    let report = World::new(run.config(seed))?.run()?;
    if run.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if report.invariant_violations > 0 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        eprintln!(
            "shoal-sim: {} invariant violation(s) with seed {seed}; replay with: SEED={seed} shoal-sim {}",
            report.invariant_violations,
            args.join(" ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
