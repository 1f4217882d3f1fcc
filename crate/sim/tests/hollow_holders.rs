//! Issue 16, the test it names, end to end in the simulator: members that announce
//! `BlockStored` (and `ShardHeld`) but store nothing — hollow adversaries, whose disk
//! acknowledges and lists every write and keeps none — in the sweep's world, where honest
//! holders crash (half of all departures are crashes), leave, return and are cut off. The liars
//! are found by their mates' audits and challenges, dropped and kept out, their blocks
//! re-replicated, and every invariant holds: in particular every block is back on exactly P
//! members that really store it at the repair deadline (no spare deleted on a liar's word, none
//! left over), and no block is lost.
//!
//! `cargo test -p shoal-sim --test hollow_holders` runs 3 seeds; `SHOAL_SIM_HOLLOW_SEEDS=n`
//! runs n; `SEED=n` replays one (the binary: `SEED=n shoal-sim <the sweep's flags>
//! --adversaries 2 --adversary-kind hollow`).

mod common;

use shoal_sim::config::SimConfig;
use shoal_sim::serving::{AdversaryKind, ServingConfig};
use shoal_sim::world::Report;

/// Hollow members among the 24.
const LIARS: usize = 2;

fn run(seed: u64) -> Report {
    let config = SimConfig {
        serving: ServingConfig {
            adversaries: LIARS,
            adversary_kind: AdversaryKind::Hollow,
            ..ServingConfig::default()
        },
        ..SimConfig::sweep_world(seed)
    };
    common::run(config)
}

#[test]
fn members_that_store_nothing_are_found_and_every_block_is_back_on_p_copies() {
    for seed in common::seeds("SHOAL_SIM_HOLLOW_SEEDS") {
        let report = run(seed);
        common::assert_invariants_held(&report, seed, "hollow_holders", true);
        let stats = &report.node_stats;
        assert_eq!(report.serving.adversaries, LIARS, "seed {seed}");
        assert!(
            report.leaves > 0,
            "seed {seed}: honest members left and crashed"
        );
        assert!(
            stats.holders_found_faulty > 0 && stats.hold_proofs_failed > 0,
            "seed {seed}: the liars were found: {stats:?}"
        );
        assert!(
            stats.hold_proofs_passed > stats.hold_proofs_failed,
            "seed {seed}"
        );
        // Every member found faulty by its challenger was a liar: honest members' lost
        // writes and corrupt reads never add up to a verdict.
        assert!(report.serving.hollow_found > 0, "seed {seed}");
        assert_eq!(report.serving.honest_found_faulty, 0, "seed {seed}");
        assert_eq!(report.lost_blocks, 0, "seed {seed}");
        assert_eq!(report.blocks_below_p_at_deadline, 0, "seed {seed}");
        assert_eq!(report.blocks_above_p_at_deadline, 0, "seed {seed}");
    }
}
