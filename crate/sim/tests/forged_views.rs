//! Issue 16, hole 1, end to end in the simulator: an outsider that read each cluster's view
//! sends every member, every five minutes, a forged view of its cluster — epoch `u64::MAX`,
//! its own id and made-up members added, a real member dropped when the cluster is full —
//! over the sweep's world (churn, partitions, loss, storage faults). Members refuse every one,
//! and every invariant holds: in particular every block is back on exactly P members at the
//! repair deadline, 25 minutes after churn stops and well past the core's 10-minute
//! spare-eviction delay, so no spare went because of a forged view.
//!
//! `cargo test -p shoal-sim --test forged_views` runs 3 seeds; `SHOAL_SIM_FORGED_SEEDS=n`
//! runs n; `SEED=n` replays one (the binary: `SEED=n shoal-sim <the sweep's flags>
//! --forged-views-every-s 300`).

mod common;

use shoal_sim::config::{ForgedViews, SimConfig};
use shoal_sim::world::Report;

fn run(seed: u64) -> Report {
    let config = SimConfig {
        forged_views: Some(ForgedViews {
            start_s: 300,
            interval_s: 300,
        }),
        ..SimConfig::sweep_world(seed)
    };
    common::run(config)
}

#[test]
fn forged_views_from_an_outsider_are_refused_and_nothing_is_lost() {
    for seed in common::seeds("SHOAL_SIM_FORGED_SEEDS") {
        let report = run(seed);
        common::assert_invariants_held(&report, seed, "forged_views", true);
        assert!(
            report.forged_views_sent > 100,
            "seed {seed}: the attack ran"
        );
        // Every forged view reached a member of the cluster it names, or a node that left it
        // or went offline on the way (20 ms): nearly all are refused for their sender.
        let refused = report.node_stats.views_refused;
        assert!(
            refused * 10 >= report.forged_views_sent * 9,
            "seed {seed}: {refused} of {} forged views refused",
            report.forged_views_sent
        );
        assert_eq!(report.lost_blocks, 0, "seed {seed}");
        assert_eq!(report.blocks_below_p_at_deadline, 0, "seed {seed}");
    }
}
