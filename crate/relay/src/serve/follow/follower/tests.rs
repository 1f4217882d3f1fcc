//! The follower driven by hand: honest peers, reorganisations and hostile peers, each with the
//! messages a Bitcoin node would send.

use super::*;
use crate::serve::test_chains::{branch, chain, T0};
use shoal_core::chain::generate::{GenerateConfig, Generator};

/// The follower's clock, far past every block's time.
const NOW_S: u64 = T0 as u64 + 100_000_000;

/// `base[..=at]`, then `n` blocks of another branch (other times, other hashes).
fn fork(base: &[Block], at: u32, n: u32) -> Vec<Block> {
    branch(base, at as usize, n, 1)
}

fn rb_headers(blocks: &[Block]) -> Vec<bitcoin::block::Header> {
    blocks
        .iter()
        .map(|block| bitcoin::consensus::deserialize(&block.header.encode()).unwrap())
        .collect()
}

/// A follower that has stored genesis.
fn follower() -> Follower {
    let mut config = FollowerConfig::new(ChainParams::REGTEST);
    config.download_window = 8;
    config.blocks_per_peer = 4;
    Follower::new(config, HeaderChain::new(ChainParams::REGTEST), true)
}

fn drain(f: &mut Follower) -> Vec<Output> {
    std::iter::from_fn(|| f.poll_output()).collect()
}

fn peer_version(version: u32, services: ServiceFlags, start_height: i32) -> NetworkMessage {
    let addr = Address::new(&SocketAddr::from(([127, 0, 0, 1], 18444)), services);
    let mut message = VersionMessage::new(
        services,
        0,
        addr.clone(),
        addr,
        9,
        "/bcoin:v1.0.2/".into(),
        start_height,
    );
    message.version = version;
    NetworkMessage::Version(message)
}

fn message(f: &mut Follower, peer: PeerKey, message: NetworkMessage, now_ms: u64) -> Vec<Output> {
    f.on_message(peer, Incoming::Message(message), now_ms, NOW_S);
    drain(f)
}

/// Connects `peer` claiming `height` and ends its handshake; returns what the follower sent.
fn ready(f: &mut Follower, peer: PeerKey, height: i32) -> Vec<Output> {
    f.on_connected(peer, SocketAddr::from(([127, 0, 0, 1], 18444)), 0, NOW_S);
    let mut out = drain(f);
    let services = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    out.extend(message(f, peer, peer_version(70015, services, height), 0));
    out.extend(message(f, peer, NetworkMessage::Verack, 0));
    out
}

fn headers(f: &mut Follower, peer: PeerKey, blocks: &[Block]) -> Vec<Output> {
    message(f, peer, NetworkMessage::Headers(rb_headers(blocks)), 0)
}

fn block(f: &mut Follower, peer: PeerKey, block: &Block) -> Vec<Output> {
    f.on_message(peer, Incoming::Block(block.clone()), 0, NOW_S);
    drain(f)
}

/// The blocks asked of `peer` in these outputs.
fn asked(out: &[Output], peer: PeerKey) -> Vec<BlockHash> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                peer: p,
                message: NetworkMessage::GetData(items),
            } if *p == peer => Some(items.iter().map(|item| match item {
                Inventory::WitnessBlock(hash) => hash_from(*hash),
                other => panic!("asked for {other:?}, not a witness block"),
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

fn stored(out: &[Output]) -> Vec<ChainUpdate> {
    out.iter()
        .filter_map(|o| match o {
            Output::Store(update) => Some(update.clone()),
            _ => None,
        })
        .collect()
}

fn dropped(out: &[Output], peer: PeerKey) -> Option<String> {
    out.iter().find_map(|o| match o {
        Output::Disconnect { peer: p, reason } if *p == peer => Some(reason.clone()),
        _ => None,
    })
}

fn connect(height: u32, block: &Block) -> ChainUpdate {
    ChainUpdate::Connect {
        height,
        block: block.clone(),
    }
}

#[test]
fn a_peer_is_greeted_then_asked_for_headers_then_for_witness_blocks_within_the_window() {
    let blocks = chain(20);
    let mut f = follower();
    let out = ready(&mut f, 1, 20);
    let sent: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send { message, .. } => Some(message.cmd()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, ["version", "verack", "sendheaders", "getheaders"]);
    let Some(Output::Send {
        message: NetworkMessage::Version(version),
        ..
    }) = out.first()
    else {
        panic!("{out:?}")
    };
    assert_eq!((version.version, version.relay), (PROTOCOL_VERSION, false));

    let out = headers(&mut f, 1, &blocks[1..]);
    assert_eq!(f.chain().tip_height(), 20);
    // One peer, four at a time.
    let first: Vec<BlockHash> = blocks[1..=4].iter().map(Block::block_hash).collect();
    assert_eq!(asked(&out, 1), first);
    // A second peer takes the rest of the window (8 above the stored tip).
    let out = ready(&mut f, 2, 20);
    let next: Vec<BlockHash> = blocks[5..=8].iter().map(Block::block_hash).collect();
    assert_eq!(asked(&out, 2), next);
}

#[test]
fn blocks_reach_the_store_in_height_order_whatever_order_they_arrive_in() {
    let blocks = chain(4);
    let mut f = follower();
    ready(&mut f, 1, 4);
    headers(&mut f, 1, &blocks[1..]);
    assert!(stored(&block(&mut f, 1, &blocks[3])).is_empty());
    assert!(stored(&block(&mut f, 1, &blocks[2])).is_empty());
    assert_eq!(
        stored(&block(&mut f, 1, &blocks[1])),
        [
            connect(1, &blocks[1]),
            connect(2, &blocks[2]),
            connect(3, &blocks[3])
        ]
    );
    assert_eq!(
        stored(&block(&mut f, 1, &blocks[4])),
        [connect(4, &blocks[4])]
    );
    assert_eq!(f.stored_tip(), Some((4, blocks[4].block_hash())));
    // A block nobody asked for is not stored.
    let out = block(&mut f, 1, &chain(5)[5]);
    assert!(stored(&out).is_empty() && dropped(&out, 1).is_none());
}

#[test]
fn an_empty_store_fetches_genesis_first() {
    let blocks = chain(2);
    let mut config = FollowerConfig::new(ChainParams::REGTEST);
    config.blocks_per_peer = 4;
    let mut f = Follower::new(config, HeaderChain::new(ChainParams::REGTEST), false);
    let out = ready(&mut f, 1, 2);
    assert_eq!(asked(&out, 1), [blocks[0].block_hash()]);
    let out = block(&mut f, 1, &blocks[0]);
    assert_eq!(stored(&out), [connect(0, &blocks[0])]);
}

#[test]
fn a_branch_with_more_work_rewinds_the_store_to_the_fork_then_connects_its_blocks() {
    let a = chain(6);
    let b = fork(&a, 3, 5); // forks above height 3, ends at 8
    let mut f = follower();
    ready(&mut f, 1, 6);
    headers(&mut f, 1, &a[1..]);
    for blk in &a[1..=6] {
        block(&mut f, 1, blk);
    }
    assert_eq!(f.stored_tip(), Some((6, a[6].block_hash())));

    // The new branch arrives from a second peer, announced by headers.
    ready(&mut f, 2, 8);
    let out = headers(&mut f, 2, &b[4..]);
    assert_eq!(stored(&out), [ChainUpdate::Rewind { to_height: 3 }]);
    assert_eq!(f.stored_tip(), Some((3, a[3].block_hash())));
    assert_eq!(f.stats().reorgs, 1);
    let mut updates = Vec::new();
    for height in 4..=8u32 {
        let hash = b[height as usize].block_hash();
        let from = if asked(&out, 1).contains(&hash) { 1 } else { 2 };
        updates.extend(stored(&block(&mut f, from, &b[height as usize])));
    }
    let expected: Vec<ChainUpdate> = (4..=8).map(|h| connect(h, &b[h as usize])).collect();
    assert_eq!(updates, expected);

    // And back: the first branch grows longer again.
    let a2 = branch(&a, 6, 4, 0);
    let out = headers(&mut f, 1, &a2[7..]);
    assert_eq!(stored(&out), [ChainUpdate::Rewind { to_height: 3 }]);
}

#[test]
fn a_block_whose_body_does_not_match_its_header_ends_its_sender_and_is_asked_of_another() {
    let blocks = chain(2);
    let mut f = follower();
    ready(&mut f, 1, 2);
    let out = headers(&mut f, 1, &blocks[1..]);
    assert_eq!(asked(&out, 1).len(), 2);
    let mut forged = blocks[1].clone();
    forged.txdata[0].output[0].value -= 1; // same header, other body
    let out = block(&mut f, 1, &forged);
    let reason = dropped(&out, 1).expect("the sender is dropped");
    assert!(reason.contains("does not match its header"), "{reason}");
    assert!(stored(&out).is_empty());
    // The honest peer gets both blocks asked of it, and they are stored.
    let out = ready(&mut f, 2, 2);
    assert_eq!(
        asked(&out, 2),
        [blocks[1].block_hash(), blocks[2].block_hash()]
    );
    assert_eq!(
        stored(&block(&mut f, 2, &blocks[1])),
        [connect(1, &blocks[1])]
    );
    assert_eq!(
        stored(&block(&mut f, 2, &blocks[2])),
        [connect(2, &blocks[2])]
    );
}

#[test]
fn a_header_at_the_wrong_difficulty_ends_its_sender_and_the_headers_before_it_stay() {
    let blocks = chain(5);
    let mut f = follower();
    ready(&mut f, 1, 5);
    let mut hostile = rb_headers(&blocks[1..]);
    hostile[2].bits = bitcoin::CompactTarget::from_consensus(0x1d00_ffff);
    let out = message(&mut f, 1, NetworkMessage::Headers(hostile), 0);
    let reason = dropped(&out, 1).expect("dropped");
    assert!(reason.contains("invalid header"), "{reason}");
    assert_eq!(
        f.chain().tip_height(),
        2,
        "the two valid headers before it stay"
    );
}

#[test]
fn a_header_from_the_future_is_refused() {
    let mut generator = Generator::new(&GenerateConfig::default());
    let future = generator.next_block((NOW_S + 3 * 3600) as u32).unwrap();
    let mut f = follower();
    ready(&mut f, 1, 1);
    let reason = dropped(&headers(&mut f, 1, &[future]), 1).expect("dropped");
    assert!(reason.contains("two hours ahead"), "{reason}");
    assert_eq!(f.chain().tip_height(), 0);
}

#[test]
fn a_low_work_fork_from_genesis_is_refused_once_the_kept_side_branches_are_full() {
    let honest = chain(1100);
    let fork = fork(&honest, 0, 1050);
    let mut f = follower();
    ready(&mut f, 1, 1100);
    for batch in honest[1..].chunks(MAX_HEADERS_PER_MESSAGE) {
        headers(&mut f, 1, batch);
    }
    assert_eq!(f.chain().tip_height(), 1100);
    let hostile = 2;
    ready(&mut f, hostile, 1050);
    let out = headers(&mut f, hostile, &fork[1..]);
    let reason = dropped(&out, hostile).expect("the fork's sender is dropped");
    assert!(reason.contains("less work"), "{reason}");
    assert!(stored(&out).is_empty(), "the store is not touched");
    assert_eq!(f.chain().tip_hash(), honest[1100].block_hash());
    // The honest peer is still asked for blocks.
    assert!(f
        .peers()
        .iter()
        .any(|p| p.key == 1 && p.blocks_in_flight > 0));
}

#[test]
fn peers_too_old_or_without_witness_blocks_are_refused_with_the_reason() {
    let mut f = follower();
    f.on_connected(1, SocketAddr::from(([127, 0, 0, 1], 1)), 0, NOW_S);
    let full = ServiceFlags::NETWORK | ServiceFlags::WITNESS;
    let out = message(&mut f, 1, peer_version(70001, full, 0), 0);
    assert!(dropped(&out, 1).unwrap().contains("below 70012"));
    f.on_connected(2, SocketAddr::from(([127, 0, 0, 1], 1)), 0, NOW_S);
    let out = message(&mut f, 2, peer_version(70016, ServiceFlags::NETWORK, 0), 0);
    assert!(dropped(&out, 2).unwrap().contains("witness"));
    assert!(f.peers().is_empty());
}

#[test]
fn a_peer_answering_getheaders_with_known_headers_for_ever_is_dropped() {
    let blocks = chain(2000);
    let mut f = follower();
    ready(&mut f, 1, 2000);
    let out = headers(&mut f, 1, &blocks[1..]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            message: NetworkMessage::GetHeaders(_),
            ..
        }
    )));
    let out = headers(&mut f, 1, &blocks[1..]);
    assert!(dropped(&out, 1).unwrap().contains("already known"));
}

#[test]
fn headers_that_connect_to_nothing_are_answered_ten_times_then_end_the_peer() {
    let blocks = chain(30);
    let mut f = follower();
    ready(&mut f, 1, 30);
    for i in 0..10 {
        let out = headers(&mut f, 1, &blocks[20 + i..21 + i]);
        assert!(dropped(&out, 1).is_none());
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Send {
                message: NetworkMessage::GetHeaders(_),
                ..
            }
        )));
    }
    let out = headers(&mut f, 1, &blocks[30..]);
    assert!(dropped(&out, 1).unwrap().contains("connect to nothing"));
}

#[test]
fn a_block_not_sent_in_time_ends_its_peer_and_is_asked_of_another() {
    let blocks = chain(1);
    let mut f = follower();
    ready(&mut f, 1, 1);
    headers(&mut f, 1, &blocks[1..]);
    ready(&mut f, 2, 1);
    f.on_timer(59_999);
    assert!(dropped(&drain(&mut f), 1).is_none());
    f.on_timer(60_000);
    let out = drain(&mut f);
    assert!(dropped(&out, 1).unwrap().contains("in time"));
    assert_eq!(asked(&out, 2), [blocks[1].block_hash()]);
}

#[test]
fn silence_after_getheaders_is_a_fault_only_from_a_peer_that_has_more() {
    let blocks = chain(3);
    let mut f = follower();
    // At our tip: bcoin answers nothing; the peer stays.
    ready(&mut f, 1, 0);
    f.on_timer(60_000);
    let out = drain(&mut f);
    assert!(dropped(&out, 1).is_none());
    let Some(Output::Send {
        message: NetworkMessage::Ping(nonce),
        ..
    }) = out.first()
    else {
        panic!("{out:?}")
    };
    message(&mut f, 1, NetworkMessage::Pong(*nonce), 60_000);
    // Claims three blocks we lack and never sends their headers: dropped.
    ready(&mut f, 2, 3);
    f.on_timer(120_000);
    let out = drain(&mut f);
    assert!(dropped(&out, 2).unwrap().contains("getheaders"));
    // An inv of an unknown block is answered with getheaders even then.
    let inv = NetworkMessage::Inv(vec![Inventory::Block(hash_to(blocks[3].block_hash()))]);
    let out = message(&mut f, 1, inv, 120_000);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send {
            peer: 1,
            message: NetworkMessage::GetHeaders(_)
        }
    )));
}

#[test]
fn pings_are_answered_and_a_peer_that_never_pongs_is_dropped() {
    let mut f = follower();
    ready(&mut f, 1, 0);
    let out = message(&mut f, 1, NetworkMessage::Ping(77), 0);
    assert_eq!(
        out,
        [Output::Send {
            peer: 1,
            message: NetworkMessage::Pong(77)
        }]
    );
    f.on_timer(60_000);
    let nonce = match drain(&mut f).as_slice() {
        [Output::Send {
            message: NetworkMessage::Ping(nonce),
            ..
        }] => *nonce,
        other => panic!("{other:?}"),
    };
    message(&mut f, 1, NetworkMessage::Pong(nonce), 61_000);
    f.on_timer(120_000);
    let nonce = match drain(&mut f).as_slice() {
        [Output::Send {
            message: NetworkMessage::Ping(nonce),
            ..
        }] => *nonce,
        other => panic!("{other:?}"),
    };
    message(&mut f, 1, NetworkMessage::Pong(nonce ^ 1), 121_000);
    f.on_timer(180_000);
    assert!(dropped(&drain(&mut f), 1).unwrap().contains("ping"));
}

#[test]
fn chain_data_before_the_handshake_ends_the_peer() {
    let blocks = chain(1);
    let mut f = follower();
    f.on_connected(1, SocketAddr::from(([127, 0, 0, 1], 1)), 0, NOW_S);
    let out = headers(&mut f, 1, &blocks[1..]);
    assert!(dropped(&out, 1).unwrap().contains("before the handshake"));
    assert_eq!(f.chain().tip_height(), 0);
}

#[test]
fn no_block_is_fetched_until_the_header_chain_has_the_networks_minimum_work() {
    let blocks = chain(8);
    let full = HeaderChain::from_headers(
        ChainParams::REGTEST,
        Default::default(),
        blocks.iter().map(|b| &b.header),
        NOW_S,
    )
    .unwrap();
    let mut config = FollowerConfig::new(ChainParams::REGTEST);
    assert_eq!(config.min_chain_work, U256::ZERO, "regtest's");
    config.min_chain_work = full.chainwork_at(6).unwrap();
    let mut f = Follower::new(config, HeaderChain::new(ChainParams::REGTEST), true);
    ready(&mut f, 1, 8);
    let out = headers(&mut f, 1, &blocks[1..=5]);
    assert!(asked(&out, 1).is_empty(), "below the minimum: {out:?}");
    let out = headers(&mut f, 1, &blocks[6..]);
    assert_eq!(asked(&out, 1).len(), 8);
    assert_eq!(
        FollowerConfig::new(ChainParams::MAINNET).min_chain_work,
        ChainParams::MAINNET.min_chain_work
    );
}
