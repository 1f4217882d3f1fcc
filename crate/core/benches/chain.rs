//! Chain benchmarks: shoal-core against the `bitcoin` crate in the same run, printed as
//! ratios (shoal time / bitcoin time: below 1 is faster). Run with
//! `cargo bench -p shoal-core --bench chain`. Timings only: nothing here asserts speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash as _;
use shoal_core::chain::{sha256d, Block};

/// Rounds per case; shoal-core and bitcoin rounds alternate, so that a change in machine load
/// hits both; the medians are reported, and the median of the per-round ratios.
const ROUNDS: usize = 9;
/// Time spent in one round.
const ROUND_TIME: Duration = Duration::from_millis(200);
/// A bound on iterations per round, whatever the speed.
const MAX_ITERATIONS_PER_ROUND: u64 = 50_000_000;

/// Nanoseconds per call of `f` over one round.
fn round_ns(f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut iterations = 0u64;
    while start.elapsed() < ROUND_TIME && iterations < MAX_ITERATIONS_PER_ROUND {
        f();
        iterations += 1;
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn compare(
    name: &str,
    bytes_per_call: Option<usize>,
    mut ours: impl FnMut(),
    mut theirs: impl FnMut(),
) {
    ours();
    theirs();
    let (mut ours_ns, mut theirs_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let o = round_ns(&mut ours);
        let t = round_ns(&mut theirs);
        ours_ns.push(o);
        theirs_ns.push(t);
        ratios.push(o / t);
    }
    let (ours, theirs, ratio) = (median(ours_ns), median(theirs_ns), median(ratios));
    let rate = |ns: f64| match bytes_per_call {
        Some(n) => format!(" ({:.0} MB/s)", n as f64 / ns * 1e3),
        None => String::new(),
    };
    println!(
        "{name:<44} shoal {:>10}{:<14} bitcoin {:>10}{:<14} ratio {:.2}",
        human(ours),
        rate(ours),
        human(theirs),
        rate(theirs),
        ratio
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    if quick {
        println!("not under `cargo bench`: skipping timings");
        return;
    }
    let raw = bitcoin_test_data::blocks::mainnet_702861();
    let block = Block::decode(raw).unwrap();
    let theirs: bitcoin::Block = deserialize(raw).unwrap();
    println!(
        "block 702861: {} bytes, {} transactions",
        raw.len(),
        block.txdata.len()
    );
    compare(
        "block 702861: decode + Merkle root",
        Some(raw.len()),
        || {
            let block = Block::decode(black_box(raw)).unwrap();
            black_box(block.compute_merkle_root());
        },
        || {
            let block: bitcoin::Block = deserialize(black_box(raw)).unwrap();
            black_box(block.compute_merkle_root());
        },
    );
    compare(
        "block 702861: decode only",
        Some(raw.len()),
        || {
            black_box(Block::decode(black_box(raw)).unwrap());
        },
        || {
            black_box(deserialize::<bitcoin::Block>(black_box(raw)).unwrap());
        },
    );
    compare(
        "block 702861: Merkle root of decoded block",
        None,
        || {
            black_box(black_box(&block).compute_merkle_root());
        },
        || {
            black_box(black_box(&theirs).compute_merkle_root());
        },
    );
    compare(
        "block 702861: witness commitment check",
        None,
        || {
            black_box(black_box(&block).check_witness_commitment().unwrap());
        },
        || {
            black_box(black_box(&theirs).check_witness_commitment());
        },
    );
    let small = [0x5au8; 64];
    compare(
        "sha256d, 64 bytes",
        Some(small.len()),
        || {
            black_box(sha256d(black_box(&small)));
        },
        || {
            black_box(bitcoin::hashes::sha256d::Hash::hash(black_box(&small)));
        },
    );
    let big = vec![0xa5u8; 1 << 20];
    compare(
        "sha256d, 1 MiB",
        Some(big.len()),
        || {
            black_box(sha256d(black_box(&big)));
        },
        || {
            black_box(bitcoin::hashes::sha256d::Hash::hash(black_box(&big)));
        },
    );
}
