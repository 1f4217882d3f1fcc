//! Header chain benchmark: how many headers per second [`HeaderChain`] verifies and stores,
//! against a baseline measured in the same run — computing `sha256d` of each 80-byte header,
//! the least any verifier must do. Run with `cargo bench -p shoal-core --bench headers`.
//! Timings only: nothing here asserts speed.

use std::hint::black_box;
use std::time::Instant;

use shoal_core::chain::{sha256d, ChainParams, Hash256, Header, HeaderChain};

/// Headers in the benchmark chain.
const HEADERS: usize = 100_000;
/// Rounds per case; the median round is reported.
const ROUNDS: usize = 5;
/// A clock far after every header.
const NOW_S: u64 = 4_000_000_000;
/// The size of a P2P `headers` message.
const BATCH: usize = 2000;

/// A regtest chain of `n` headers on genesis, ten minutes apart.
fn regtest_chain(n: usize) -> Vec<Header> {
    let params = ChainParams::REGTEST;
    let mut out = Vec::with_capacity(n);
    let mut prev = params.genesis;
    for i in 0..n {
        let mut root = [0u8; 32];
        root[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let mut header = Header {
            version: 0x2000_0000,
            prev_blockhash: prev.block_hash(),
            merkle_root: Hash256(root),
            time: prev.time + 600,
            bits: 0x207fffff,
            nonce: 0,
        };
        while header.check_proof_of_work(params.pow_limit).is_err() {
            header.nonce += 1;
        }
        out.push(header);
        prev = header;
    }
    out
}

/// Median seconds of one call of `f`.
fn time_s(mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn report(name: &str, seconds: f64, baseline_s: f64) {
    println!(
        "{name:<52} {:>9.1} ms {:>12.0} headers/s   ratio to sha256d {:>5.2}",
        seconds * 1e3,
        HEADERS as f64 / seconds,
        seconds / baseline_s
    );
}

fn main() {
    let params = ChainParams::REGTEST;
    let headers = regtest_chain(HEADERS);
    let bytes: Vec<u8> = headers.iter().flat_map(|h| h.encode()).collect();
    println!("header chain: {HEADERS} regtest headers, median of {ROUNDS} rounds");

    let baseline_s = time_s(|| {
        for chunk in bytes.chunks_exact(80) {
            black_box(sha256d(black_box(chunk)));
        }
    });
    report(
        "baseline: sha256d of each 80-byte header",
        baseline_s,
        baseline_s,
    );

    let accept_s = time_s(|| {
        let mut chain = HeaderChain::new(params);
        for header in &headers {
            chain.accept(header, NOW_S).expect("valid header");
        }
        assert_eq!(chain.tip_height() as usize, HEADERS);
        black_box(chain);
    });
    report("HeaderChain::accept, one at a time", accept_s, baseline_s);

    let reserved_s = time_s(|| {
        let mut chain = HeaderChain::new(params);
        chain.reserve(HEADERS);
        for header in &headers {
            chain.accept(header, NOW_S).expect("valid header");
        }
        black_box(chain);
    });
    report(
        "HeaderChain::accept, one at a time, reserved",
        reserved_s,
        baseline_s,
    );

    let batch_s = time_s(|| {
        let mut chain = HeaderChain::new(params);
        for batch in headers.chunks(BATCH) {
            chain.accept_batch(batch, NOW_S).expect("valid batch");
        }
        black_box(chain);
    });
    report(
        "HeaderChain::accept_batch, 2000 per batch",
        batch_s,
        baseline_s,
    );

    let verify_s = time_s(|| {
        let summary = HeaderChain::verify_sequence(&params, &bytes, NOW_S).expect("valid");
        assert_eq!(summary.count, HEADERS);
        black_box(summary);
    });
    report(
        "HeaderChain::verify_sequence (80-byte records)",
        verify_s,
        baseline_s,
    );

    // A reorg of 1000 blocks on top of the full chain: a rival branch of 1001 headers off
    // height HEADERS - 1000, accepted as a side branch and then switched to.
    let fork_parent = headers[HEADERS - 1001];
    let mut rival = Vec::with_capacity(1001);
    let mut prev = fork_parent;
    for i in 0..1001u64 {
        let mut root = [0xffu8; 32];
        root[..8].copy_from_slice(&i.to_le_bytes());
        let mut header = Header {
            version: 0x2000_0000,
            prev_blockhash: prev.block_hash(),
            merkle_root: Hash256(root),
            time: prev.time + 601,
            bits: 0x207fffff,
            nonce: 0,
        };
        while header.check_proof_of_work(params.pow_limit).is_err() {
            header.nonce += 1;
        }
        rival.push(header);
        prev = header;
    }
    let mut base = HeaderChain::with_config(
        params,
        shoal_core::chain::HeaderChainConfig {
            max_side_headers: 2000,
            check_version: true,
            ..Default::default()
        },
    );
    for header in &headers {
        base.accept(header, NOW_S).expect("valid header");
    }
    let reorg_s = time_s(|| {
        let mut chain = base.clone();
        let outcome = chain.accept_batch(&rival, NOW_S).expect("valid rival");
        assert_eq!(outcome.disconnected.len(), 1000);
        black_box(chain);
    });
    let clone_s = time_s(|| {
        black_box(base.clone());
    });
    println!(
        "{:<52} {:>9.1} ms (1001 side headers, then a 1000-block reorg; chain clone {:.1} ms subtracted)",
        "reorg of depth 1000 on a 100k chain",
        (reorg_s - clone_s) * 1e3,
        clone_s * 1e3
    );
}
