//! A relay killed with SIGKILL at random moments of an import (issue 16: "the relay killed
//! with SIGKILL at random points of a 300-block import → it reopens promptly, its tip is a
//! prefix of the file, every stored block and proof checks, the next import completes").
//!
//! Each round starts the real relay importing the same 300-block file into one data
//! directory, kills it by its pid after a random delay, then opens the chain store itself and
//! checks it: the stored chain is the file's first blocks, every block decodes, hashes to its
//! key and matches its header's Merkle root; the round after goes on from there. A last run
//! imports to the end. `SHOAL_CRASH_ROUNDS` sets the rounds (CI: 5; `npm run test:long`: 50);
//! how long each reopen took is printed (redb's quick repair keeps it short), never asserted.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_core::chain::Block;
use shoal_relay::blockfile;
use shoal_relay::serve::store::ChainStore;

const BLOCKS: u32 = 300;

fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_shoal-relay")
}

/// `shoal-relay serve --import FILE` on `dir`, its log on a pipe.
fn start(dir: &Path, file: &Path) -> Child {
    Command::new(relay_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--initial-blocks", "0", "--block-interval-secs", "0"])
        .arg("--import")
        .arg(file)
        .arg("--data-dir")
        .arg(dir)
        .arg("--www")
        .arg(dir)
        .arg("--dist")
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shoal-relay")
}

fn sigkill(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A small deterministic generator for the kill delays.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Opens the store as the relay left it and checks it against the file's chain; returns its
/// tip height (`None`: empty) and how long the open took.
fn check_store(dir: &Path, chain: &[Block]) -> (Option<u32>, Duration) {
    let opened = Instant::now();
    let store = ChainStore::open(&dir.join("chain.redb")).expect("the store reopens");
    let took = opened.elapsed();
    let tip = store.tip().expect("tip readable");
    if let Some(tip) = tip {
        assert!(tip.height <= BLOCKS);
        assert_eq!(
            tip.hash,
            chain[tip.height as usize].block_hash(),
            "a prefix of the file"
        );
        let headers = store.headers(0, tip.height + 1).expect("headers readable");
        assert_eq!(headers.len() as u32, tip.height + 1, "no gap below the tip");
        for (height, header) in headers.iter().enumerate() {
            let block = &chain[height];
            assert_eq!(*header, block.header, "header {height}");
            let bytes = store
                .block_bytes(&block.block_hash())
                .expect("block readable")
                .unwrap_or_else(|| panic!("block {height} is stored with its header"));
            let stored = Block::decode(&bytes).expect("the stored block decodes");
            assert_eq!(stored.block_hash(), block.block_hash());
            assert!(stored.check_merkle_root(), "block {height}'s transactions");
        }
        let total: u64 = chain[..=tip.height as usize]
            .iter()
            .map(|b| b.encode().len() as u64)
            .sum();
        assert_eq!(
            store.chain_bytes().unwrap(),
            total,
            "the byte total committed with each block"
        );
    }
    (tip.map(|t| t.height), took)
}

/// Starts the relay on `dir` importing `file`, waits until it is up (the import done), stops it
/// with SIGTERM and checks it stopped cleanly; returns how long the start took.
fn run_to_completion(dir: &Path, file: &Path) -> Duration {
    let started = Instant::now();
    let mut child = start(dir, file);
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut imported = None;
    for line in lines.by_ref() {
        let line = line.expect("relay log");
        if line.contains("imported blocks") {
            imported = Some(started.elapsed());
        }
        if line.contains("relay started") {
            break;
        }
        assert!(Instant::now() < deadline, "the relay did not start in time");
    }
    // Keep draining its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "the relay stopped cleanly: {status}");
    imported.expect("the relay said it imported")
}

#[test]
fn a_relay_killed_during_an_import_reopens_with_a_prefix_of_the_chain_and_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chain.dat");
    let out = Command::new(relay_bin())
        .args([
            "chain",
            "generate",
            "--blocks",
            &BLOCKS.to_string(),
            "--seed",
            "5",
        ])
        .args(["--target-block-size", "2000-20000", "--out"])
        .arg(&file)
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chain: Vec<Block> = (blockfile::read_blocks(&file).expect("read back").blocks)
        .into_iter()
        .map(|b| b.block)
        .collect();
    assert_eq!(chain.len() as u32, BLOCKS + 1);
    let rounds: u32 = std::env::var("SHOAL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // How long a whole import takes here: the kills are spread over that time.
    let import = run_to_completion(&dir.path().join("timing"), &file);
    let spread_ms = (import.as_millis() as u64 * 6 / 5).max(50);
    println!("a whole import takes {import:?} here; kills spread over {spread_ms} ms");
    let mut seed = 0x5eed_u64;
    let mut tips = Vec::new();
    for round in 0..rounds {
        let data = dir.path().join(format!("round-{round}"));
        let mut child = start(&data, &file);
        std::thread::sleep(Duration::from_millis(next(&mut seed) % spread_ms));
        sigkill(&mut child);
        let (tip, took) = check_store(&data, &chain);
        println!("round {round}: killed at tip {tip:?}; reopened in {took:?}");
        tips.push(tip);
        // The next import completes the chain from where the killed one stopped.
        run_to_completion(&data, &file);
        let (tip, _) = check_store(&data, &chain);
        assert_eq!(
            tip,
            Some(BLOCKS),
            "round {round}: the whole file imported after the kill"
        );
    }
    let partial = tips
        .iter()
        .filter(|t| t.is_some_and(|h| h < BLOCKS))
        .count();
    println!("tips at the kills: {tips:?} ({partial} of {rounds} mid-import)");
}
