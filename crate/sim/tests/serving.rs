//! Seed sweeps of serving (S14–S17) over the real core node, with churn, partitions, faults
//! and adversarial members.
//!
//! `cargo test -p shoal-sim --test serving` runs a few seeds in each new-block mode (a few
//! seconds). `SHOAL_SIM_SERVING_SEEDS=100 cargo test --release -p shoal-sim --test serving`
//! runs 100 seeds per mode; `SEED=n cargo test -p shoal-sim --test serving` replays one. A
//! failure names its seed and the command line that replays it.
//!
//! Known failures of the large sweep (40 seeds per mode, against the core at this commit): a
//! member deletes a stored block after one corrupted *read* (the copy on disk is intact in the
//! simulator's fault model), which loses the cluster's last live copy now and then
//! (`LiveHolder`, self-selected seeds 4 and 28; gone with `--corrupt-read-rate 0`); and
//! repair leaves a block on P-1 holders past the bound (`RepairedToP`, and `NewBlockReachesP`
//! when the block is a new one: routed seed 10), as the churn sweep's ignored test records.

use shoal_sim::config::SimConfig;
use shoal_sim::invariants::Invariant;
use shoal_sim::serving::{AdversaryKind, NewBlocksMode, ServingConfig};
use shoal_sim::world::{Report, World};

/// The same world from the command line (with `SEED=n` in front and the mode added).
const SERVING_CLI: &str = "--nodes 24 --archives 1 --blocks 30 --initial-blocks 20 --new-block-interval-s 150 --hours 1 --quiet-tail-hours 0.4 --repair-bound-s 900 --partitions-per-hour 2 --loss-rate 0.005 --churn-median-session-min 15 --churn-median-offline-min 5 --queries-per-s 1 --adversaries 4 --adversary-kind mixed --json";

/// Serving's sweep world: the churn sweep's world with blocks mined during the run, a query
/// a second and four adversarial members of every kind.
fn config(seed: u64, mode: NewBlocksMode, kind: AdversaryKind) -> SimConfig {
    SimConfig {
        blocks: 30,
        block_interval_s: 150,
        quiet_tail_hours: 0.4,
        repair_bound_s: 900,
        serving: ServingConfig {
            new_blocks_mode: mode,
            queries_per_s: 1.0,
            adversaries: 4,
            adversary_kind: kind,
            ..ServingConfig::default()
        },
        ..SimConfig::sweep_world(seed)
    }
}

fn run(config: SimConfig) -> Report {
    World::new(config)
        .expect("valid configuration")
        .run()
        .expect("run completes")
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("SEED") {
        return vec![seed.trim().parse().expect("SEED must be a u64")];
    }
    let count = std::env::var("SHOAL_SIM_SERVING_SEEDS")
        .ok()
        .map_or(default, |n| {
            n.trim()
                .parse()
                .expect("SHOAL_SIM_SERVING_SEEDS must be a count")
        });
    (0..count).collect()
}

const SERVING_INVARIANTS: [Invariant; 4] = [
    Invariant::QueryAnswered,
    Invariant::NoForgedAnswerAccepted,
    Invariant::NewBlockReachesP,
    Invariant::JobOnTrueBlock,
];

fn mode_flag(mode: NewBlocksMode) -> &'static str {
    match mode {
        NewBlocksMode::Routed => "routed",
        NewBlocksMode::SelfSelected => "self-selected",
    }
}

/// Runs every seed in `mode`; returns the seeds that broke a serving or safety invariant,
/// after printing each with its replay command.
fn sweep(mode: NewBlocksMode) -> (Vec<u64>, Vec<Report>) {
    let safety = [
        Invariant::NoUnverifiedStore,
        Invariant::LiveHolder,
        Invariant::MessageRateBounded,
    ];
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for seed in seeds(2) {
        let report = run(config(seed, mode, AdversaryKind::Mixed));
        let violated: Vec<Invariant> = report
            .invariants
            .iter()
            .filter(|s| s.violations > 0)
            .map(|s| s.invariant)
            .filter(|i| SERVING_INVARIANTS.contains(i) || safety.contains(i))
            .collect();
        if !violated.is_empty() || report.serving.forged_answers_accepted > 0 {
            eprintln!(
                "seed {seed} ({mode:?}): violated {violated:?}; violations: {:#?}\n  replay: SEED={seed} cargo test -p shoal-sim --test serving\n  or:     SEED={seed} shoal-sim {SERVING_CLI} --new-blocks-mode {}",
                report.violations,
                mode_flag(mode)
            );
            failed.push(seed);
        }
        reports.push(report);
    }
    (failed, reports)
}

fn check_sweep(mode: NewBlocksMode) {
    let (failed, reports) = sweep(mode);
    assert!(
        failed.is_empty(),
        "{mode:?}: serving invariants violated on seeds {failed:?} (replay: SEED={} cargo test -p shoal-sim --test serving)",
        failed[0]
    );
    for report in &reports {
        let seed = report.seed;
        // The sweep must actually exercise what it claims to.
        assert!(
            report.serving.queries > 100,
            "seed {seed}: {} queries",
            report.serving.queries
        );
        assert!(
            report.serving.queries_verified > 0,
            "seed {seed}: nothing verified"
        );
        assert!(report.serving.queries_outsider > 0 && report.serving.queries_unknown_txid > 0);
        assert!(report.serving.query_attempts_with_honest_holder > 0);
        assert!(
            report.serving.jobs_ready > 0,
            "seed {seed}: no job ran (S17)"
        );
        assert!(
            report.serving.adversary_forged > 0 && report.serving.adversary_dropped > 0,
            "seed {seed}: adversaries never acted"
        );
        assert_eq!(report.serving.forged_answers_accepted, 0, "seed {seed}");
        assert!(report.serving.new_blocks > 0 && report.serving.new_block_safely_stored_events > 0);
        assert_eq!(report.serving.new_blocks_under_replicated, 0, "seed {seed}");
        for invariant in SERVING_INVARIANTS {
            let status = report
                .invariants
                .iter()
                .find(|s| s.invariant == invariant)
                .expect("every invariant has a status");
            assert!(
                status.not_checked.is_none() && status.checks > 0,
                "seed {seed}: {status:?}"
            );
        }
    }
}

/// S14 (routed new blocks), S16 (queries) and S17 (jobs on any block) under churn, partitions, loss and adversaries:
/// every query with a live honest holder is answered with a verified proof (or excused), no
/// forged proof is accepted, every new block reaches P live holders once churn stops.
#[test]
fn routed_sweep_answers_queries_and_stores_new_blocks() {
    check_sweep(NewBlocksMode::Routed);
}

/// S15 (self-selected new blocks), S16 and S17, same world.
#[test]
fn self_selected_sweep_answers_queries_and_stores_new_blocks() {
    check_sweep(NewBlocksMode::SelfSelected);
}

/// Forgers alone, without churn: every forged proof is refused and scored; members still
/// answer every query whose block has an honest holder.
#[test]
fn forgers_are_refused_and_scored() {
    let mut config = config(seeds(1)[0], NewBlocksMode::Routed, AdversaryKind::Forge);
    config.churn.median_session_min = None;
    config.network.partitions_per_hour = 0.0;
    let report = run(config);
    assert!(report.serving.adversary_forged > 0, "{report:?}");
    assert_eq!(report.serving.forged_answers_accepted, 0);
    assert!(
        report.serving.forged_answers_refused > 0,
        "outsiders met forgers"
    );
    assert!(
        report.serving.misbehaviour_reports > 0,
        "members scored forgers"
    );
    assert_eq!(
        report.serving.query_failures_unexcused, 0,
        "{:?}",
        report.violations
    );
    assert!(
        report.serving.queries_verified * 10 >= report.serving.queries * 8,
        "{report:?}"
    );
}

/// Without adversaries or churn, nearly every query for a known txid is verified, and a
/// query's path is short: the asked member's own shard, or one forward.
#[test]
fn calm_queries_are_verified_in_at_most_one_forward() {
    let mut config = config(seeds(1)[0], NewBlocksMode::Routed, AdversaryKind::Mixed);
    config.serving.adversaries = 0;
    config.churn.median_session_min = None;
    config.network.partitions_per_hour = 0.0;
    config.network.loss_rate = 0.0;
    let report = run(config);
    let known = report.serving.queries - report.serving.queries_unknown_txid;
    assert!(report.serving.queries_verified + 5 >= known, "{report:?}");
    assert_eq!(
        report.serving.query_failures_unexcused, 0,
        "{:?}",
        report.violations
    );
    assert!(
        report.serving.query_hops_p99.is_some_and(|h| h <= 2),
        "{report:?}"
    );
    assert_eq!(report.serving.new_block_underreplicated_events, 0);
}
