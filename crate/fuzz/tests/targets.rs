//! Every fuzz target on its checked-in seed corpus (`fuzz/seeds/<target>/`, findings included)
//! and a fixed number of deterministic mutations of it, with the counting allocator installed
//! so that the targets' allocation bounds are checked too. One test, so that nothing else
//! allocates while a target is measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use shoal_fuzz::{alloc, mutate, TARGETS};

#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &alloc::COUNTING;

/// Mutants per target: a few seconds for all of them on two cores in the test profile.
const MUTANTS: usize = 1_500;
/// Fewer for the targets whose runs are long (a whole node run, a redb store).
const MUTANTS_SLOW: usize = 300;

fn seed_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target)
}

/// The files of a target's seed corpus.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seed_dir(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("a seed file"))
        })
        .collect();
    files.sort();
    files
}

fn run(name: &str, body: fn(&[u8]), what: &str, input: &[u8]) {
    if let Err(panic) = std::panic::catch_unwind(|| body(input)) {
        let shown: String = input.iter().take(512).map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "target {name} failed on {what} ({} bytes): {shown}",
            input.len()
        );
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn every_target_runs_on_its_seeds_and_their_mutations() {
    assert!(alloc::installed(), "the counting allocator is installed");
    for target in TARGETS {
        let started = Instant::now();
        let files = corpus(target.name);
        assert!(!files.is_empty(), "{} has seeds", target.name);
        for (file, bytes) in &files {
            run(target.name, target.run, file, bytes);
        }
        let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, bytes)| bytes).collect();
        let count = match target.name {
            "node" | "relay_store" | "header_chain" => MUTANTS_SLOW,
            _ => MUTANTS,
        };
        for (i, input) in mutate::mutants(&seeds, count, 0x5eed).iter().enumerate() {
            run(target.name, target.run, &format!("mutant {i}"), input);
        }
        eprintln!(
            "{}: {} seeds, {count} mutants, {:.2} s",
            target.name,
            seeds.len(),
            started.elapsed().as_secs_f64()
        );
    }
    shoal_fuzz::relay::remove_identity_dir();
}
