//! Issue 17, in the simulator: failure domains and capacities. The sweep's world (24 light
//! nodes with churn, partitions, loss; see `SimConfig::sweep_world`) with its light nodes
//! three to a device — tabs of one browser — and every departure taking its whole device down
//! at once (the rest of the device crashes without a word: a closed lid, cleared site data),
//! and members of two capacities, one half the other's (placement weighs them; that a member
//! holds in proportion to its capacity is the core's `placement::tests::members_hold_blocks_
//! in_proportion_to_their_capacity`). Placement puts a block's P copies on P distinct devices,
//! so a whole-device crash takes at most one copy of a block: every invariant holds, among
//! them `DistinctDevices` (at each cluster's repair deadline every block's copies are on
//! `min(P, devices)` devices), and no block is lost.
//!
//! `cargo test -p shoal-sim --test failure_domains` runs 3 seeds; `SHOAL_SIM_DEVICE_SEEDS=n`
//! runs n; `SEED=n` replays one.

mod common;

use shoal_sim::config::{DeviceConfig, SimConfig};
use shoal_sim::invariants::Invariant;

#[test]
fn whole_devices_crash_and_no_block_is_lost() {
    for seed in common::seeds("SHOAL_SIM_DEVICE_SEEDS") {
        let config = SimConfig {
            devices: DeviceConfig {
                hosts_per_device: 3,
                whole_device_crashes: true,
                capacity_ratios: vec![1.0, 1.0, 0.5],
                capacity_headroom: 2.0,
            },
            ..SimConfig::sweep_world(seed)
        };
        let report = common::run(config);
        common::assert_invariants_held(&report, seed, "failure_domains", false);
        let status = report
            .invariants
            .iter()
            .find(|s| s.invariant == Invariant::DistinctDevices)
            .expect("reported");
        assert!(
            status.checks > 0 && status.not_checked.is_none(),
            "seed {seed}: {status:?}"
        );
        assert!(
            report.device_crashes > 0,
            "seed {seed}: no device went down whole"
        );
        assert_eq!(report.lost_blocks, 0, "seed {seed}");
        eprintln!(
            "seed {seed}: {} departures, {} of them device mates crashing along; lost {}",
            report.leaves, report.device_crashes, report.lost_blocks
        );
    }
}
