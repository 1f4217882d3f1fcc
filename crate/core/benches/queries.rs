//! Transaction queries answered from a node's own store (issue 16: costly work cached): the
//! first answer from a block checks it whole (decodes and hashes every transaction); later
//! answers from it use the txids kept from that check and check only the header and the one
//! transaction. Printed as ratios to a baseline measured in the same run — one `sha256d` pass
//! over the block's bytes — because these machines are noisy. Run with
//! `cargo bench -p shoal-core --bench queries`. Timings only: nothing here asserts speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shoal_core::chain::generate::{generate_chain, GenerateConfig};
use shoal_core::chain::{sha256d, ChainParams, HeaderChain, HeaderChainConfig};
use shoal_core::serve::query::{
    Context, Origin, Queries, QueryConfig, QueryOutput, QueryResult, Scope,
};
use shoal_core::serve::txindex::{TxIndex, TxIndexConfig};

const ROUNDS: usize = 7;
const ROUND_TIME: Duration = Duration::from_millis(300);

/// Seconds per call of `f`, the median of the rounds.
fn time_s(mut f: impl FnMut()) -> f64 {
    f();
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < ROUND_TIME {
                f();
                n += 1;
            }
            start.elapsed().as_secs_f64() / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let blocks = generate_chain(&GenerateConfig {
        blocks: 3,
        seed: 7,
        target_block_size_bytes: Some(1_000_000..=1_000_000),
        ..GenerateConfig::default()
    })
    .expect("generated");
    let now_s = u64::from(blocks.last().expect("blocks").header.time) + 3_600;
    let headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
    let chain = HeaderChain::from_headers(
        ChainParams::REGTEST,
        HeaderChainConfig::default(),
        &headers,
        now_s,
    )
    .expect("valid headers");
    let block = blocks.last().expect("a block");
    let bytes = block.encode();
    let hash = block.block_hash();
    let mut index = TxIndex::new(TxIndexConfig::default());
    index.add_block(block);
    let txids: Vec<_> = block.txdata.iter().map(|tx| tx.txid()).collect();
    let holders = |_: &_| Vec::new();
    let cx = Context {
        chain: &chain,
        index: &index,
        me: 0u8,
        members: &[],
        archives: &[],
        holders: &holders,
        complete: true,
    };
    let mut i = 0usize;
    // One query through the table, its block read handed back; returns the proof's height.
    let mut answer = |queries: &mut Queries<u8>| {
        i = (i + 7) % txids.len();
        let txid = txids[i];
        let id = queries
            .start(0, Origin::Local, Scope::LocalOnly, txid, None, &cx)
            .expect("started");
        while queries.poll_output().is_some() {}
        queries.handle_block_read(0, id, hash, Some(&bytes), &cx);
        let mut confirmed = false;
        while let Some(output) = queries.poll_output() {
            if let QueryOutput::Done {
                result: QueryResult::Confirmed { .. },
                ..
            } = output
            {
                confirmed = true;
            }
        }
        assert!(confirmed, "answered");
    };
    println!(
        "queries from a node's own {} kB block of {} transactions, median of {ROUNDS} rounds",
        bytes.len() / 1000,
        txids.len()
    );
    let baseline = time_s(|| {
        black_box(sha256d(black_box(&bytes)));
    });
    let cold = time_s(|| {
        // A fresh table: nothing kept, the block checked whole.
        let mut queries = Queries::new(QueryConfig::default());
        answer(&mut queries);
    });
    let mut warm_table = Queries::new(QueryConfig::default());
    answer(&mut warm_table);
    let warm = time_s(|| answer(&mut warm_table));
    for (name, s) in [
        ("baseline: sha256d over the block's bytes", baseline),
        ("a query, the block checked whole (first answer)", cold),
        ("a query, the block's txids kept (later answers)", warm),
    ] {
        println!(
            "{name:<52} {:>9.3} ms   ratio to baseline {:>6.2}",
            s * 1e3,
            s / baseline
        );
    }
    println!("later answers / first answer: {:.3}", warm / cold);
}
