//! The relay following a Bitcoin network (issue 15's targets), each against a baseline
//! measured in the same run, because these machines are noisy:
//!
//! - **headers**: `headers` frames from a peer through the follower (frame decoding, rust-bitcoin
//!   to Shoal headers, the core's header chain with regtest's rules) against the core's header
//!   chain alone on the same headers; the target is ≥ 100,000 headers/s;
//! - **blocks**: block frames answering the follower's `getdata`s, decoded, checked against their
//!   headers, handed over in height order and written to the chain store as the archive does (up
//!   to 64 a transaction), against plain redb writes of the same bytes in the same batches with
//!   the same durability (quick repair on); the target is ≥ 0.5 of that rate.
//!
//! Run with `cargo bench -p shoal-relay --bench follow` (`SHOAL_BENCH_HEADERS`,
//! `SHOAL_BENCH_BLOCKS` and `SHOAL_BENCH_BLOCK_BYTES` change the sizes). Timings only: nothing
//! here asserts speed.

use std::net::SocketAddr;
use std::time::Instant;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Address, Magic, ServiceFlags};
use redb::{Database, TableDefinition};
use shoal_core::chain::generate::{GenerateConfig, Generator};
use shoal_core::chain::{Block, ChainParams, Header, HeaderChain};
use shoal_relay::serve::follow::follower::{ChainUpdate, Follower, FollowerConfig, Output};
use shoal_relay::serve::follow::wire::{
    decode_frame, encode_frame, hash_from, read_frame_header, Incoming, FRAME_HEADER_BYTES,
};
use shoal_relay::serve::store::ChainStore;

const T0: u32 = 1_600_000_000;
const PEER: u64 = 1;
/// Blocks per store transaction, as the archive's thread takes them.
const BATCH: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn generate(blocks: usize, block_bytes: Option<usize>) -> Vec<Block> {
    let config = GenerateConfig {
        txs_per_block: 0,
        target_block_size_bytes: block_bytes.map(|n| n..=n),
        seed: 3,
        ..GenerateConfig::default()
    };
    let mut generator = Generator::new(&config);
    let mut chain = vec![shoal_core::chain::generate::regtest_genesis_block()];
    for height in 1..=blocks as u32 {
        chain.push(generator.next_block(T0 + height * 600).expect("a block"));
    }
    chain
}

fn magic() -> Magic {
    Magic::from_bytes(ChainParams::REGTEST.magic)
}

fn decode(frame: &[u8]) -> Incoming {
    let head: [u8; FRAME_HEADER_BYTES] = frame[..FRAME_HEADER_BYTES].try_into().expect("24");
    let header = read_frame_header(&head, magic()).expect("our frame");
    decode_frame(&header, frame).expect("our frame")
}

/// A follower with one peer through its handshake, genesis stored.
fn follower(now_s: u64) -> Follower {
    let mut f = Follower::new(
        FollowerConfig::new(ChainParams::REGTEST),
        HeaderChain::new(ChainParams::REGTEST),
        true,
    );
    let address = SocketAddr::from(([127, 0, 0, 1], 18444));
    f.on_connected(PEER, address, 0, now_s);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let addr = Address::new(&address, services);
    let mut version = VersionMessage::new(services, 0, addr.clone(), addr, 1, "/bench/".into(), 0);
    version.version = 70016;
    f.on_message(
        PEER,
        Incoming::Message(NetworkMessage::Version(version)),
        0,
        now_s,
    );
    f.on_message(PEER, Incoming::Message(NetworkMessage::Verack), 0, now_s);
    while f.poll_output().is_some() {}
    f
}

fn headers_frames(chain: &[Block]) -> Vec<Vec<u8>> {
    chain[1..]
        .chunks(2000)
        .map(|batch| {
            let headers = batch
                .iter()
                .map(|b| bitcoin::consensus::deserialize(&b.header.encode()).expect("80 bytes"))
                .collect();
            encode_frame(magic(), NetworkMessage::Headers(headers))
        })
        .collect()
}

fn bench_headers(count: usize) {
    let chain = generate(count, None);
    let now_s = u64::from(T0) + (count as u64 + 10) * 600;
    let frames = headers_frames(&chain);
    let headers: Vec<Header> = chain.iter().map(|b| b.header).collect();

    let start = Instant::now();
    let mut f = follower(now_s);
    for frame in &frames {
        f.on_message(PEER, decode(frame), 0, now_s);
        while f.poll_output().is_some() {}
    }
    let follower_s = start.elapsed().as_secs_f64();
    assert_eq!(f.chain().tip_height() as usize, count);

    let start = Instant::now();
    let mut core = HeaderChain::new(ChainParams::REGTEST);
    for batch in headers[1..].chunks(2000) {
        core.accept_batch(batch, now_s).expect("valid");
    }
    let core_s = start.elapsed().as_secs_f64();
    assert_eq!(core.tip_height() as usize, count);

    let rate = count as f64 / follower_s;
    println!(
        "headers: {count} through the follower in {follower_s:.3} s = {rate:.0} headers/s \
         (target >= 100000: {}); the core's header chain alone {:.0} headers/s; \
         follower / core = {:.2}",
        if rate >= 100_000.0 { "met" } else { "NOT met" },
        count as f64 / core_s,
        core_s / follower_s
    );
}

fn bench_blocks(count: usize, block_bytes: usize) {
    let chain = generate(count, Some(block_bytes));
    let now_s = u64::from(T0) + (count as u64 + 10) * 600;
    let frames: Vec<Vec<u8>> = chain
        .iter()
        .map(|block| {
            let rb: bitcoin::Block =
                bitcoin::consensus::deserialize(&block.encode()).expect("a block");
            encode_frame(magic(), NetworkMessage::Block(rb))
        })
        .collect();
    let by_hash: std::collections::HashMap<_, _> = chain
        .iter()
        .enumerate()
        .map(|(i, b)| (b.block_hash(), i))
        .collect();
    let bytes: u64 = chain[1..].iter().map(|b| b.encode().len() as u64).sum();

    // Through the follower into the chain store.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = ChainStore::open(&dir.path().join("chain.redb")).expect("a store");
    store.append(&chain[0]).expect("genesis");
    let mut f = follower(now_s);
    for frame in headers_frames(&chain) {
        f.on_message(PEER, decode(&frame), 0, now_s);
    }
    let start = Instant::now();
    let mut pending: Vec<Block> = Vec::new();
    let mut asked: Vec<usize> = Vec::new();
    let mut stored = 0;
    loop {
        while let Some(output) = f.poll_output() {
            match output {
                Output::Send {
                    message: NetworkMessage::GetData(items),
                    ..
                } => asked.extend(items.iter().map(|item| match item {
                    Inventory::WitnessBlock(hash) => by_hash[&hash_from(*hash)],
                    other => panic!("{other:?}"),
                })),
                Output::Store(ChainUpdate::Connect { block, .. }) => pending.push(block),
                other => panic!("{other:?}"),
            }
        }
        if pending.len() >= BATCH || (asked.is_empty() && !pending.is_empty()) {
            stored += store.append_all(&pending).expect("stored").len();
            pending.clear();
        }
        let Some(i) = asked.pop() else {
            break;
        };
        f.on_message(PEER, decode(&frames[i]), 0, now_s);
    }
    let follower_s = start.elapsed().as_secs_f64();
    assert_eq!(stored, count);

    // Baseline: the same bytes into plain redb tables, the same batches and durability.
    const BLOCKS: TableDefinition<'static, &'static [u8; 32], &'static [u8]> =
        TableDefinition::new("blocks");
    const HEADERS: TableDefinition<'static, u32, &'static [u8]> = TableDefinition::new("headers");
    let db = Database::create(dir.path().join("plain.redb")).expect("a database");
    /// Height, hash, block bytes, header bytes.
    type Encoded = (u32, [u8; 32], Vec<u8>, [u8; 80]);
    let encoded: Vec<Encoded> = chain[1..]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            (
                i as u32 + 1,
                b.block_hash().0,
                b.encode(),
                b.header.encode(),
            )
        })
        .collect();
    let start = Instant::now();
    for batch in encoded.chunks(BATCH) {
        let mut tx = db.begin_write().expect("a transaction");
        tx.set_quick_repair(true);
        {
            let mut blocks = tx.open_table(BLOCKS).expect("a table");
            let mut headers = tx.open_table(HEADERS).expect("a table");
            for (height, hash, bytes, header) in batch {
                blocks.insert(hash, &bytes[..]).expect("written");
                headers.insert(*height, &header[..]).expect("written");
            }
        }
        tx.commit().expect("committed");
    }
    let plain_s = start.elapsed().as_secs_f64();

    let ratio = plain_s / follower_s;
    println!(
        "blocks: {count} of {block_bytes} bytes ({:.1} MB) checked and stored through the \
         follower in {follower_s:.3} s = {:.0} blocks/s, {:.1} MB/s; plain redb writes of the \
         same bytes {:.1} MB/s; follower / redb = {ratio:.2} (target >= 0.50: {})",
        bytes as f64 / 1e6,
        count as f64 / follower_s,
        bytes as f64 / 1e6 / follower_s,
        bytes as f64 / 1e6 / plain_s,
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
}

fn main() {
    bench_headers(env("SHOAL_BENCH_HEADERS", 100_000));
    bench_blocks(
        env("SHOAL_BENCH_BLOCKS", 1_000),
        env("SHOAL_BENCH_BLOCK_BYTES", 100_000),
    );
}
