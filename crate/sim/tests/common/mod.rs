//! What the simulator's seed tests share: running a world, the seeds to run, and the check
//! that every invariant held.

#![allow(dead_code)] // each test file uses its part

use shoal_sim::config::SimConfig;
use shoal_sim::world::{Report, World};

/// Runs `config` to the end.
pub fn run(config: SimConfig) -> Report {
    World::new(config)
        .expect("valid configuration")
        .run()
        .expect("run completes")
}

/// `SEED=n` replays one seed; otherwise seeds 0 to the count in `count_var` (3 unless set).
pub fn seeds(count_var: &str) -> Vec<u64> {
    if let Ok(seed) = std::env::var("SEED") {
        return vec![seed.trim().parse().expect("SEED must be a u64")];
    }
    let count = std::env::var(count_var)
        .ok()
        .map_or(3, |n| n.trim().parse().expect("a count"));
    (0..count).collect()
}

/// Asserts that no invariant was violated in `report` (the run of `seed` by the test `test`)
/// and, with `every_checked`, that every invariant was checked.
pub fn assert_invariants_held(report: &Report, seed: u64, test: &str, every_checked: bool) {
    let violated: Vec<_> = report
        .invariants
        .iter()
        .filter(|status| status.violations > 0)
        .map(|status| status.invariant)
        .collect();
    assert!(
        violated.is_empty(),
        "seed {seed}: violated {violated:?}; first: {:?}\n  replay: SEED={seed} cargo test -p shoal-sim --test {test}",
        report.violations.first()
    );
    if every_checked {
        for status in &report.invariants {
            assert!(
                status.not_checked.is_none() && status.checks > 0,
                "seed {seed}: {status:?}"
            );
        }
    }
}
