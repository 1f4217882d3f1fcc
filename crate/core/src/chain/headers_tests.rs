//! Tests of [`HeaderChain`]: real mainnet headers 1–5, regtest chains mined here, and
//! custom networks (easy proof-of-work limit, real rules) for retargeting and testnet's
//! minimum-difficulty rule.

use super::*;
use crate::chain::hash::Hash256;
use crate::chain::params::Network;
use proptest::prelude::*;

/// "Now" for tests: 2033, after every header made here.
const NOW_S: u64 = 2_000_000_000;

/// Mainnet blocks 1 to 5, the real headers.
const MAINNET_1_TO_5: [&str; 5] = [
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
    "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
    "01000000bddd99ccfda39da1b108ce1a5d70038d0a967bacb68b6b63065f626a0000000044f672226090d85db9a9f2fbfe5f0f9609b387af7be5b7fbb7a1767c831c9e995dbe6649ffff001d05e0ed6d",
    "010000004944469562ae1c2c74d9a535e00b6f3e40ffbad4f2fda3895501b582000000007a06ea98cd40ba2e3288262b28638cec5337c1456aaf5eedc8e9e5a20f062bdf8cc16649ffff001d2bfee0a9",
    "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477",
];

fn mainnet_1_to_5() -> Vec<Header> {
    MAINNET_1_TO_5
        .iter()
        .map(|h| Header::decode(&hex::decode(h).unwrap()).unwrap())
        .collect()
}

/// Finds a nonce meeting `header.bits`.
fn mine(mut header: Header, pow_limit: Target) -> Header {
    for nonce in 0..u32::MAX {
        header.nonce = nonce;
        if header.check_proof_of_work(pow_limit).is_ok() {
            return header;
        }
    }
    panic!("no nonce meets {:#010x}", header.bits);
}

/// Finds a nonce whose hash does *not* meet `header.bits`.
fn mine_badly(mut header: Header) -> Header {
    let target = Target::from_compact(header.bits).unwrap();
    for nonce in 0..u32::MAX {
        header.nonce = nonce;
        if !target.is_met_by(header.block_hash()) {
            return header;
        }
    }
    panic!("every nonce meets the target");
}

/// A mined child of `parent`, told apart from its siblings by `tag`.
fn child(params: &ChainParams, parent: &Header, time: u32, bits: u32, tag: u64) -> Header {
    let mut merkle_root = [0u8; 32];
    merkle_root[..8].copy_from_slice(&tag.to_le_bytes());
    mine(
        Header {
            version: 4,
            prev_blockhash: parent.block_hash(),
            merkle_root: Hash256(merkle_root),
            time,
            bits,
            nonce: 0,
        },
        params.pow_limit,
    )
}

/// `n` regtest headers on `parent`, ten minutes apart.
fn regtest_branch(parent: &Header, n: usize, tag: u64) -> Vec<Header> {
    let params = ChainParams::REGTEST;
    let mut out: Vec<Header> = Vec::with_capacity(n);
    let mut prev = *parent;
    for i in 0..n {
        let h = child(
            &params,
            &prev,
            prev.time + 600,
            0x207fffff,
            tag ^ (i as u64) << 32,
        );
        out.push(h);
        prev = h;
    }
    out
}

fn accept_all(chain: &mut HeaderChain, headers: &[Header]) -> Vec<Accepted> {
    headers
        .iter()
        .map(|h| chain.accept(h, NOW_S).unwrap())
        .collect()
}

/// A testnet-like network with regtest's easy limit, whose genesis is four times harder than
/// the limit so that minimum-difficulty blocks differ from ordinary ones.
fn easy_testnet() -> ChainParams {
    let mut params = ChainParams::TESTNET;
    params.pow_limit = ChainParams::REGTEST.pow_limit;
    params.genesis = mine(
        Header {
            bits: 0x201fffff,
            ..ChainParams::TESTNET.genesis
        },
        params.pow_limit,
    );
    params
}

/// A mainnet-like network (no minimum-difficulty rule) with 16-block retarget periods of
/// one-second blocks, and a genesis target small enough (below 2^250) that retargeting
/// cannot overflow, as Core requires of real networks.
fn easy_retargeting() -> ChainParams {
    let mut params = easy_testnet();
    params.pow_allow_min_difficulty_blocks = false;
    params.pow_target_spacing_s = 1;
    params.pow_target_timespan_s = 16;
    params.genesis = mine(
        Header {
            bits: 0x2003ffff,
            ..params.genesis
        },
        params.pow_limit,
    );
    params
}

#[test]
fn a_new_chain_holds_genesis() {
    for network in Network::ALL {
        let params = network.params();
        let chain = HeaderChain::new(params);
        assert_eq!(chain.tip_height(), 0);
        assert_eq!(chain.tip_hash(), params.genesis_hash());
        assert_eq!(chain.hash_at(0), Some(params.genesis_hash()));
        assert_eq!(chain.header_at(0), Some(&params.genesis));
        assert_eq!(chain.height_of(&params.genesis_hash()), Some(0));
        assert_eq!(chain.locator(), vec![params.genesis_hash()]);
        assert_eq!(chain.hash_at(1), None);
    }
    // bitcoind's chainwork at genesis: 0x100010001 on mainnet, 2 on regtest.
    assert_eq!(
        HeaderChain::new(ChainParams::MAINNET).total_work(),
        U256::from_u64(0x1_0001_0001)
    );
    assert_eq!(
        HeaderChain::new(ChainParams::REGTEST).total_work(),
        U256::from_u64(2)
    );
}

#[test]
fn real_mainnet_headers_one_to_five_are_accepted() {
    let headers = mainnet_1_to_5();
    let mut chain = HeaderChain::new(ChainParams::MAINNET);
    for (i, header) in headers.iter().enumerate() {
        let height = i as u32 + 1;
        assert_eq!(
            chain.accept(header, NOW_S),
            Ok(Accepted::Extended {
                height,
                hash: header.block_hash()
            })
        );
    }
    assert_eq!(
        chain.tip_hash().to_hex(),
        "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc"
    );
    // bitcoind: chainwork of block 5 is 6 × 0x100010001.
    assert_eq!(chain.total_work(), U256::from_u64(6 * 0x1_0001_0001));
    // With a clock two hours behind block 3, block 4 is too new; nothing changes.
    let mut early = HeaderChain::new(ChainParams::MAINNET);
    let now_s = u64::from(headers[2].time) - 7200;
    early.accept_batch(&headers[..3], now_s).unwrap();
    let err = early.accept(&headers[3], now_s).unwrap_err();
    assert!(
        matches!(err, HeaderError::TimeTooNew { height: 4, .. }),
        "{err}"
    );
    assert_eq!(early.tip_height(), 3);
}

#[test]
fn real_mainnet_header_with_a_changed_nonce_fails_pow() {
    let mut header = mainnet_1_to_5()[0];
    header.nonce ^= 1;
    let mut chain = HeaderChain::new(ChainParams::MAINNET);
    let err = chain.accept(&header, NOW_S).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::BadPow {
                height: 1,
                source: PowError::HashAboveTarget { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(chain.tip_height(), 0);
    assert_eq!(chain.stats().rejected, 1);
}

#[test]
fn a_regtest_chain_extends_and_is_indexed() {
    let params = ChainParams::REGTEST;
    let headers = regtest_branch(&params.genesis, 300, 1);
    let mut chain = HeaderChain::new(params);
    let accepted = accept_all(&mut chain, &headers);
    for (i, (a, h)) in accepted.iter().zip(&headers).enumerate() {
        assert_eq!(
            *a,
            Accepted::Extended {
                height: i as u32 + 1,
                hash: h.block_hash()
            }
        );
    }
    assert_eq!(chain.tip_height(), 300);
    assert_eq!(chain.total_work(), U256::from_u64(2 * 301));
    for (i, h) in headers.iter().enumerate() {
        let height = i as u32 + 1;
        assert_eq!(chain.hash_at(height), Some(h.block_hash()));
        assert_eq!(chain.height_of(&h.block_hash()), Some(height));
        assert_eq!(chain.header_at(height), Some(h));
        assert_eq!(
            chain.chainwork_at(height),
            Some(U256::from_u64(2 * (u64::from(height) + 1)))
        );
    }
    let stats = chain.stats();
    assert_eq!((stats.accepted, stats.rejected, stats.reorgs), (300, 0, 0));

    // Core's locator: the tip and the ten below it, then doubling steps, then genesis.
    let locator = chain.locator();
    let heights: Vec<u32> = locator
        .iter()
        .map(|h| chain.height_of(h).unwrap())
        .collect();
    assert_eq!(
        heights,
        vec![
            300, 299, 298, 297, 296, 295, 294, 293, 292, 291, 290, 289, 287, 283, 275, 259, 227,
            163, 35, 0
        ]
    );

    // Rebuilt from its own headers, it is the same chain.
    let stored: Vec<Header> = chain.best_headers().copied().collect();
    let rebuilt =
        HeaderChain::from_headers(params, HeaderChainConfig::default(), &stored, NOW_S).unwrap();
    assert_eq!(rebuilt.tip_hash(), chain.tip_hash());
    assert_eq!(rebuilt.total_work(), chain.total_work());
}

#[test]
fn rebuilding_reports_the_first_bad_header() {
    let params = ChainParams::REGTEST;
    let mut headers = regtest_branch(&params.genesis, 5, 1);
    headers[3].time = 1; // breaks its hash, so its child no longer connects either
    let err = HeaderChain::from_headers(params, HeaderChainConfig::default(), &headers, NOW_S)
        .unwrap_err();
    assert_eq!(err.0, 3);
}

#[test]
fn duplicates_are_rejected_with_their_height() {
    let params = ChainParams::REGTEST;
    let headers = regtest_branch(&params.genesis, 3, 1);
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &headers);
    assert_eq!(
        chain.accept(&headers[1], NOW_S),
        Err(HeaderError::Duplicate {
            hash: headers[1].block_hash(),
            height: 2
        })
    );
    assert_eq!(
        chain.accept(&params.genesis, NOW_S),
        Err(HeaderError::Duplicate {
            hash: params.genesis_hash(),
            height: 0
        })
    );
    assert_eq!(chain.tip_height(), 3);
    assert_eq!(chain.stats().rejected, 2);
}

#[test]
fn unconnected_headers_are_rejected() {
    let params = ChainParams::REGTEST;
    let headers = regtest_branch(&params.genesis, 3, 1);
    let mut chain = HeaderChain::new(params);
    assert_eq!(
        chain.accept(&headers[1], NOW_S),
        Err(HeaderError::Unconnected {
            hash: headers[1].block_hash(),
            prev: headers[0].block_hash()
        })
    );
    assert_eq!(chain.tip_height(), 0);
    assert_eq!(chain.side_len(), 0);
}

#[test]
fn bad_proof_of_work_is_rejected() {
    let params = ChainParams::REGTEST;
    let good = child(
        &params,
        &params.genesis,
        params.genesis.time + 600,
        0x207fffff,
        1,
    );
    let mut chain = HeaderChain::new(params);

    let bad = mine_badly(good);
    let err = chain.accept(&bad, NOW_S).unwrap_err();
    assert_eq!(
        err,
        HeaderError::BadPow {
            hash: bad.block_hash(),
            height: 1,
            source: PowError::HashAboveTarget {
                hash: bad.block_hash(),
                bits: 0x207fffff
            }
        }
    );
    // A target easier than the network's limit.
    let too_easy = Header {
        bits: 0x2100ffff,
        ..good
    };
    assert!(matches!(
        chain.accept(&too_easy, NOW_S),
        Err(HeaderError::BadPow {
            source: PowError::AboveLimit { bits: 0x2100ffff },
            ..
        })
    ));
    // Malformed compact targets.
    for (bits, source) in [
        (0x04923456, PowError::Negative(0x04923456)),
        (0xff123456, PowError::Overflow(0xff123456)),
        (0x01003456, PowError::Zero(0x01003456)),
    ] {
        let header = Header { bits, ..good };
        let err = chain.accept(&header, NOW_S).unwrap_err();
        assert!(
            matches!(err, HeaderError::BadPow { source: s, .. } if s == source),
            "{err}"
        );
    }
    assert_eq!(chain.tip_height(), 0);
    chain.accept(&good, NOW_S).unwrap();
}

#[test]
fn wrong_bits_are_rejected_even_with_valid_pow() {
    let params = ChainParams::REGTEST;
    // Harder than required: its proof of work is fine, its nBits are not regtest's.
    let harder = child(
        &params,
        &params.genesis,
        params.genesis.time + 600,
        0x201fffff,
        1,
    );
    let mut chain = HeaderChain::new(params);
    assert_eq!(
        chain.accept(&harder, NOW_S),
        Err(HeaderError::BadDifficulty {
            hash: harder.block_hash(),
            height: 1,
            expected: 0x207fffff,
            got: 0x201fffff
        })
    );
    assert_eq!(chain.tip_height(), 0);
}

#[test]
fn time_must_exceed_the_median_of_the_last_eleven() {
    let params = ChainParams::REGTEST;
    let g = params.genesis.time;
    // Times out of order, as real chains have them; the median of the last eleven (genesis
    // included) is the sixth smallest.
    let offsets = [
        1000u32, 2000, 1500, 3000, 1600, 4000, 1700, 5000, 1800, 6000,
    ];
    let mut chain = HeaderChain::new(params);
    let mut prev = params.genesis;
    for (i, offset) in offsets.iter().enumerate() {
        let h = child(&params, &prev, g + offset, 0x207fffff, i as u64);
        chain.accept(&h, NOW_S).unwrap();
        prev = h;
    }
    let mut times: Vec<u32> = std::iter::once(g)
        .chain(offsets.iter().map(|o| g + o))
        .collect();
    times.sort_unstable();
    let median = times[5];
    assert_eq!(median, g + 1800);

    let at_median = child(&params, &prev, median, 0x207fffff, 100);
    assert_eq!(
        chain.accept(&at_median, NOW_S),
        Err(HeaderError::TimeTooOld {
            hash: at_median.block_hash(),
            height: 11,
            time: median,
            median_time_past: median
        })
    );
    let after = child(&params, &prev, median + 1, 0x207fffff, 101);
    assert!(matches!(
        chain.accept(&after, NOW_S),
        Ok(Accepted::Extended { height: 11, .. })
    ));
}

#[test]
fn time_may_be_at_most_two_hours_ahead() {
    let params = ChainParams::REGTEST;
    let now_s = u64::from(params.genesis.time) + 1_000_000;
    let max = (now_s + 7200) as u32;
    let mut chain = HeaderChain::new(params);
    let late = child(&params, &params.genesis, max + 1, 0x207fffff, 1);
    assert_eq!(
        chain.accept(&late, now_s),
        Err(HeaderError::TimeTooNew {
            hash: late.block_hash(),
            height: 1,
            time: max + 1,
            max_time_s: now_s + 7200
        })
    );
    let on_time = child(&params, &params.genesis, max, 0x207fffff, 2);
    chain.accept(&on_time, now_s).unwrap();
    // The same header is fine once the clock catches up.
    let next = child(&params, &on_time, max + 10, 0x207fffff, 3);
    assert!(chain.accept(&next, now_s).is_err());
    chain.accept(&next, now_s + 10).unwrap();
}

#[test]
fn versions_below_the_bip_floors_are_rejected_when_checked() {
    let params = ChainParams::REGTEST;
    let mut old = child(
        &params,
        &params.genesis,
        params.genesis.time + 600,
        0x207fffff,
        1,
    );
    old.version = 3;
    let old = mine(old, params.pow_limit);
    let mut chain = HeaderChain::new(params);
    assert_eq!(
        chain.accept(&old, NOW_S),
        Err(HeaderError::ObsoleteVersion {
            hash: old.block_hash(),
            height: 1,
            version: 3,
            minimum: 4
        })
    );
    let lenient = HeaderChainConfig {
        check_version: false,
        ..HeaderChainConfig::default()
    };
    let mut chain = HeaderChain::with_config(params, lenient);
    chain.accept(&old, NOW_S).unwrap();
}

#[test]
fn a_longer_side_branch_wins_and_the_report_is_exact() {
    let params = ChainParams::REGTEST;
    let a = regtest_branch(&params.genesis, 10, 0xa);
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &a);
    // Fork after height 5: b[0] is at height 6.
    let b = regtest_branch(&a[4], 6, 0xb);
    for (i, h) in b[..5].iter().enumerate() {
        assert_eq!(
            chain.accept(h, NOW_S),
            Ok(Accepted::SideBranch {
                height: 6 + i as u32,
                hash: h.block_hash()
            })
        );
    }
    // Equal work (both at height 10): the first seen stays best.
    assert_eq!(chain.tip_hash(), a[9].block_hash());
    assert_eq!(chain.side_len(), 5);

    let report = chain.accept(&b[5], NOW_S).unwrap();
    let expected = Reorg {
        fork_height: 5,
        disconnected: (6..=10)
            .rev()
            .map(|h| (h, a[h as usize - 1].block_hash()))
            .collect(),
        connected: (6..=11)
            .map(|h| (h, b[h as usize - 6].block_hash()))
            .collect(),
    };
    assert_eq!(report, Accepted::Reorg(expected));
    assert_eq!(chain.tip_height(), 11);
    assert_eq!(chain.tip_hash(), b[5].block_hash());
    assert_eq!(chain.total_work(), U256::from_u64(24));
    for h in 6..=11u32 {
        assert_eq!(chain.hash_at(h), Some(b[h as usize - 6].block_hash()));
    }
    for h in &a[5..] {
        let info = chain.get(&h.block_hash()).unwrap();
        assert!(!info.in_best_chain);
        assert_eq!(chain.height_of(&h.block_hash()), None);
    }
    assert_eq!(chain.side_len(), 5);
    assert_eq!(chain.stats().reorgs, 1);

    // The old branch comes back with two more headers: a second reorg, reported exactly.
    let a_more = regtest_branch(&a[9], 2, 0xc);
    assert!(matches!(
        chain.accept(&a_more[0], NOW_S),
        Ok(Accepted::SideBranch { height: 11, .. })
    ));
    let back = chain.accept(&a_more[1], NOW_S).unwrap();
    let Accepted::Reorg(back) = back else {
        panic!("expected a reorg, got {back:?}")
    };
    assert_eq!(back.fork_height, 5);
    assert_eq!(
        back.disconnected,
        (6..=11)
            .rev()
            .map(|h| (h, b[h as usize - 6].block_hash()))
            .collect::<Vec<_>>()
    );
    let mut a_all = a[5..].to_vec();
    a_all.extend(&a_more);
    assert_eq!(
        back.connected,
        (6..=12)
            .map(|h| (h, a_all[h as usize - 6].block_hash()))
            .collect::<Vec<_>>()
    );
    assert_eq!(chain.side_len(), 6);
}

#[test]
fn a_single_header_with_more_work_reorganises() {
    // On a minimum-difficulty network, one ordinary block outweighs two minimum ones.
    let params = easy_testnet();
    let g = params.genesis;
    let min1 = child(&params, &g, g.time + 1201, 0x207fffff, 1);
    let min2 = child(&params, &min1, min1.time + 1201, 0x207fffff, 2);
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &[min1, min2]);
    let heavy = child(&params, &g, g.time + 600, 0x201fffff, 3);
    let report = chain.accept(&heavy, NOW_S).unwrap();
    assert_eq!(
        report,
        Accepted::Reorg(Reorg {
            fork_height: 0,
            disconnected: vec![(2, min2.block_hash()), (1, min1.block_hash())],
            connected: vec![(1, heavy.block_hash())],
        })
    );
    assert!(chain.get(&min2.block_hash()).is_some());
}

#[test]
fn the_side_branch_store_is_capped() {
    let params = ChainParams::REGTEST;
    let config = HeaderChainConfig {
        max_side_headers: 3,
        ..HeaderChainConfig::default()
    };
    let main = regtest_branch(&params.genesis, 6, 0xa);
    let mut chain = HeaderChain::with_config(params, config);
    accept_all(&mut chain, &main);
    // Three one-header forks off genesis (chainwork 4 each) fill the store.
    let forks: Vec<Header> = (0..3)
        .map(|i| {
            child(
                &params,
                &params.genesis,
                params.genesis.time + 60 + i,
                0x207fffff,
                100 + u64::from(i),
            )
        })
        .collect();
    accept_all(&mut chain, &forks);
    assert_eq!(chain.side_len(), 3);
    // A fourth with no more work is refused, changing nothing.
    let fourth = child(
        &params,
        &params.genesis,
        params.genesis.time + 99,
        0x207fffff,
        200,
    );
    assert_eq!(
        chain.accept(&fourth, NOW_S),
        Err(HeaderError::SideBranchFull {
            hash: fourth.block_hash(),
            height: 1,
            limit: 3
        })
    );
    assert_eq!(chain.side_len(), 3);
    for f in &forks {
        assert!(chain.contains(&f.block_hash()));
    }
    // A header extending a fork has more work: it displaces the least-work leaf other than
    // its own parent.
    let longer = child(&params, &forks[2], forks[2].time + 600, 0x207fffff, 300);
    assert!(matches!(
        chain.accept(&longer, NOW_S),
        Ok(Accepted::SideBranch { height: 2, .. })
    ));
    assert_eq!(chain.side_len(), 3);
    assert!(chain.contains(&forks[2].block_hash()));
    assert_eq!(
        forks[..2]
            .iter()
            .filter(|f| chain.contains(&f.block_hash()))
            .count(),
        1
    );
    assert_eq!(chain.stats().side_evicted, 1);

    // A rival branch off height 3 fills the store, dropping the low forks first (least
    // work), then overtakes: the three headers it disconnects take the store's place.
    let rival = regtest_branch(&main[2], 4, 0xb);
    let results = accept_all(&mut chain, &rival);
    assert_eq!(
        results.last(),
        Some(&Accepted::Reorg(Reorg {
            fork_height: 3,
            disconnected: (4..=6)
                .rev()
                .map(|h| (h, main[h as usize - 1].block_hash()))
                .collect(),
            connected: (4..=7)
                .map(|h| (h, rival[h as usize - 4].block_hash()))
                .collect(),
        }))
    );
    assert_eq!(chain.side_len(), 3);
    for h in &main[3..] {
        assert!(chain.get(&h.block_hash()).is_some_and(|i| !i.in_best_chain));
    }
    assert_eq!(chain.stats().side_evicted, 4);
}

#[test]
fn a_reorg_deeper_than_the_cap_keeps_the_cap() {
    // One ordinary block outweighs two minimum-difficulty ones; with room for one side
    // header, the disconnected tip (the leaf) goes and its parent stays.
    let params = easy_testnet();
    let config = HeaderChainConfig {
        max_side_headers: 1,
        ..HeaderChainConfig::default()
    };
    let g = params.genesis;
    let min1 = child(&params, &g, g.time + 1201, 0x207fffff, 1);
    let min2 = child(&params, &min1, min1.time + 1201, 0x207fffff, 2);
    let mut chain = HeaderChain::with_config(params, config);
    accept_all(&mut chain, &[min1, min2]);
    let heavy = child(&params, &g, g.time + 600, 0x201fffff, 3);
    assert!(matches!(
        chain.accept(&heavy, NOW_S),
        Ok(Accepted::Reorg(_))
    ));
    assert_eq!(chain.side_len(), 1);
    assert!(chain.contains(&min1.block_hash()));
    assert!(!chain.contains(&min2.block_hash()));
    // min2 can come back: its parent is still known.
    assert!(matches!(
        chain.accept(&min2, NOW_S),
        Err(HeaderError::SideBranchFull { .. })
    ));
}

#[test]
fn no_side_branches_when_the_cap_is_zero() {
    let params = ChainParams::REGTEST;
    let config = HeaderChainConfig {
        max_side_headers: 0,
        ..HeaderChainConfig::default()
    };
    let main = regtest_branch(&params.genesis, 2, 0xa);
    let mut chain = HeaderChain::with_config(params, config);
    accept_all(&mut chain, &main);
    let fork = regtest_branch(&main[0], 1, 0xb);
    assert!(matches!(
        chain.accept(&fork[0], NOW_S),
        Err(HeaderError::SideBranchFull { limit: 0, .. })
    ));
}

#[test]
fn testnet_minimum_difficulty_rule() {
    let params = easy_testnet();
    let normal = 0x201fffff;
    let minimum = params.pow_limit_bits();
    assert_eq!(minimum, 0x207fffff);
    let g = params.genesis;
    let mut chain = HeaderChain::new(params);

    // Within twenty minutes: the ordinary difficulty, not the minimum.
    let quick_min = child(&params, &g, g.time + 1200, minimum, 1);
    assert_eq!(
        chain.accept(&quick_min, NOW_S),
        Err(HeaderError::BadDifficulty {
            hash: quick_min.block_hash(),
            height: 1,
            expected: normal,
            got: minimum
        })
    );
    // More than twenty minutes: exactly the minimum.
    let slow_normal = child(&params, &g, g.time + 1201, normal, 2);
    assert!(matches!(
        chain.accept(&slow_normal, NOW_S),
        Err(HeaderError::BadDifficulty { expected, .. }) if expected == minimum
    ));
    let min1 = child(&params, &g, g.time + 1201, minimum, 3);
    chain.accept(&min1, NOW_S).unwrap();
    let min2 = child(&params, &min1, min1.time + 1300, minimum, 4);
    chain.accept(&min2, NOW_S).unwrap();
    // Back to a quick block: the walk back skips both minimum blocks to genesis' bits.
    let quick_min = child(&params, &min2, min2.time + 600, minimum, 5);
    assert!(matches!(
        chain.accept(&quick_min, NOW_S),
        Err(HeaderError::BadDifficulty { expected, .. }) if expected == normal
    ));
    let quick = child(&params, &min2, min2.time + 600, normal, 6);
    chain.accept(&quick, NOW_S).unwrap();

    // The same rule on a side branch (not the cached tip path): fork off min1.
    let side = child(&params, &min1, min1.time + 60, minimum, 7);
    assert!(matches!(
        chain.accept(&side, NOW_S),
        Err(HeaderError::BadDifficulty { expected, .. }) if expected == normal
    ));
    let side = child(&params, &min1, min1.time + 60, normal, 8);
    assert!(matches!(
        chain.accept(&side, NOW_S),
        Ok(Accepted::SideBranch { height: 2, .. })
    ));
}

#[test]
fn the_walk_back_stops_at_a_period_boundary() {
    // Difficulty held at the limit for a whole period: the walk back stops at the period's
    // first block even though its bits are the minimum.
    let mut params = easy_testnet();
    params.pow_target_timespan_s = 4 * 600; // four-block periods
    let minimum = params.pow_limit_bits();
    let g = params.genesis;
    let mut chain = HeaderChain::new(params);
    let mut prev = g;
    // Heights 1-3 at minimum difficulty (slow), height 4 retargets from a slow period.
    for i in 0..3 {
        let h = child(&params, &prev, prev.time + 1300, minimum, i);
        chain.accept(&h, NOW_S).unwrap();
        prev = h;
    }
    let expected = params.calculate_next_work_required(minimum, prev.time, g.time);
    assert_eq!(expected, minimum, "a slow period retargets to the limit");
    let boundary = child(&params, &prev, prev.time + 600, expected, 10);
    chain.accept(&boundary, NOW_S).unwrap();
    // Height 5, quick: walk back from height 4, a boundary, whose bits are the minimum.
    let quick = child(&params, &boundary, boundary.time + 600, minimum, 11);
    chain.accept(&quick, NOW_S).unwrap();
}

#[test]
fn retargeting_uses_the_period_first_block_time() {
    let params = easy_retargeting();
    assert_eq!(params.difficulty_adjustment_interval(), 16);
    let bits = params.genesis.bits;
    let g = params.genesis;
    let mut chain = HeaderChain::new(params);
    let mut prev = g;
    let mut headers = vec![g];
    // Heights 1-15: a long first gap, then quick blocks.
    for i in 1..16u32 {
        let gap = if i == 1 { 5 } else { 1 };
        let h = child(&params, &prev, prev.time + gap, bits, u64::from(i));
        // Not a boundary: the previous block's bits, nothing else.
        let wrong = child(
            &params,
            &prev,
            prev.time + gap,
            0x207fffff,
            1000 + u64::from(i),
        );
        assert!(matches!(
            chain.accept(&wrong, NOW_S),
            Err(HeaderError::BadDifficulty { expected, .. }) if expected == bits
        ));
        chain.accept(&h, NOW_S).unwrap();
        headers.push(h);
        prev = h;
    }
    // Height 16 retargets from block 0's time to block 15's (2015 blocks, Core's off-by-one).
    let actual_s = u64::from(headers[15].time - headers[0].time);
    assert_eq!(actual_s, 5 + 14);
    let by_hand = Target(
        Target::from_compact(bits)
            .unwrap()
            .0
            .checked_mul_u64(actual_s)
            .unwrap()
            .div_u64(16),
    )
    .to_compact();
    let expected = params.calculate_next_work_required(bits, headers[15].time, headers[0].time);
    assert_eq!(expected, by_hand);
    assert_ne!(expected, bits);
    let stale = child(&params, &prev, prev.time + 1, bits, 99);
    assert_eq!(
        chain.accept(&stale, NOW_S),
        Err(HeaderError::BadDifficulty {
            hash: stale.block_hash(),
            height: 16,
            expected,
            got: bits
        })
    );
    let retargeted = child(&params, &prev, prev.time + 1, expected, 100);
    chain.accept(&retargeted, NOW_S).unwrap();
    // Its work is the new target's.
    assert_eq!(
        chain.total_work(),
        chain
            .chainwork_at(15)
            .unwrap()
            .saturating_add(Target::from_compact(expected).unwrap().work())
    );
    // The next block keeps the new bits.
    let after = child(&params, &retargeted, retargeted.time + 1, bits, 101);
    assert!(matches!(
        chain.accept(&after, NOW_S),
        Err(HeaderError::BadDifficulty { expected: e, .. }) if e == expected
    ));
}

#[test]
fn a_batch_reports_the_net_change() {
    let params = ChainParams::REGTEST;
    let a = regtest_branch(&params.genesis, 4, 0xa);
    let b = regtest_branch(&a[0], 5, 0xb);
    let mut chain = HeaderChain::new(params);
    // a1..a4 join; b2..b5 stay aside until b6 overtakes: a2..a4 leave again.
    let mut batch = a.clone();
    batch.extend(&b);
    batch.push(a[2]); // a duplicate is skipped
    let outcome = chain.accept_batch(&batch, NOW_S).unwrap();
    assert_eq!(outcome.accepted, 9);
    assert_eq!(outcome.duplicates, 1);
    assert!(outcome.disconnected.is_empty());
    let mut expected = vec![(1, a[0].block_hash())];
    expected.extend(
        b.iter()
            .enumerate()
            .map(|(i, h)| (i as u32 + 2, h.block_hash())),
    );
    assert_eq!(outcome.connected, expected);

    // From a chain already at a4, the same reorg is reported as a4..a2 leaving.
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &a);
    let outcome = chain.accept_batch(&b, NOW_S).unwrap();
    assert_eq!(
        outcome.disconnected,
        vec![
            (4, a[3].block_hash()),
            (3, a[2].block_hash()),
            (2, a[1].block_hash())
        ]
    );
    assert_eq!(outcome.connected.len(), 5);

    // A bad header stops the batch; those before it stay accepted and are reported.
    let c = regtest_branch(&b[4], 3, 0xc);
    let mut bad = c.clone();
    bad[1].nonce ^= 0xffff;
    let bad1 = mine_badly(bad[1]);
    bad[1] = bad1;
    let err = chain.accept_batch(&bad, NOW_S).unwrap_err();
    assert_eq!(err.index, 1);
    assert!(matches!(err.error, HeaderError::BadPow { height: 8, .. }));
    assert_eq!(err.partial.connected, vec![(7, c[0].block_hash())]);
    assert_eq!(chain.tip_hash(), c[0].block_hash());
}

fn concat(headers: &[Header]) -> Vec<u8> {
    headers.iter().flat_map(|h| h.encode()).collect()
}

#[test]
fn verify_sequence_from_genesis_or_height_one() {
    let params = ChainParams::REGTEST;
    let headers = regtest_branch(&params.genesis, 50, 1);
    let mut with_genesis = vec![params.genesis];
    with_genesis.extend(&headers);

    let summary = HeaderChain::verify_sequence(&params, &concat(&with_genesis), NOW_S).unwrap();
    assert_eq!(
        summary,
        SequenceSummary {
            count: 51,
            tip_hash: headers[49].block_hash(),
            tip_height: 50,
            total_work: U256::from_u64(102),
        }
    );
    let summary = HeaderChain::verify_sequence(&params, &concat(&headers), NOW_S).unwrap();
    assert_eq!(summary.count, 50);
    assert_eq!(summary.tip_height, 50);
    assert_eq!(summary.tip_hash, headers[49].block_hash());

    let empty = HeaderChain::verify_sequence(&params, &[], NOW_S).unwrap();
    assert_eq!((empty.count, empty.tip_height), (0, 0));

    // Real mainnet headers.
    let mainnet =
        HeaderChain::verify_sequence(&ChainParams::MAINNET, &concat(&mainnet_1_to_5()), NOW_S)
            .unwrap();
    assert_eq!(mainnet.tip_height, 5);
    assert_eq!(
        mainnet.tip_hash.to_hex(),
        "000000009b7262315dbf071787ad3656097b892abffd1f95a1a022f896f533fc"
    );
}

#[test]
fn verify_sequence_names_the_failing_height() {
    let params = ChainParams::REGTEST;
    let headers = regtest_branch(&params.genesis, 10, 1);
    let mut bytes = concat(&headers);

    // Trailing partial header.
    bytes.extend_from_slice(&[0u8; 79]);
    assert_eq!(
        HeaderChain::verify_sequence(&params, &bytes, NOW_S),
        Err((11, HeaderError::Truncated { len: 79 }))
    );

    // A gap: header 6 missing, so header 7 does not connect.
    let mut gapped = headers.clone();
    gapped.remove(5);
    let (height, err) = HeaderChain::verify_sequence(&params, &concat(&gapped), NOW_S).unwrap_err();
    assert_eq!(height, 6);
    assert!(matches!(err, HeaderError::Unconnected { .. }), "{err}");

    // A repeated header builds on a known one, not on the previous.
    let mut repeated = headers.clone();
    repeated.insert(5, headers[3]);
    let (height, err) =
        HeaderChain::verify_sequence(&params, &concat(&repeated), NOW_S).unwrap_err();
    assert_eq!(height, 6);
    assert!(matches!(err, HeaderError::OutOfSequence { .. }), "{err}");

    // Bad proof of work in the middle.
    let mut broken = headers.clone();
    broken[7] = mine_badly(broken[7]);
    let (height, err) = HeaderChain::verify_sequence(&params, &concat(&broken), NOW_S).unwrap_err();
    assert_eq!(height, 8);
    assert!(
        matches!(err, HeaderError::BadPow { height: 8, .. }),
        "{err}"
    );

    // Another network's genesis.
    let (height, err) =
        HeaderChain::verify_sequence(&params, &ChainParams::MAINNET.genesis.encode(), NOW_S)
            .unwrap_err();
    assert_eq!(height, 0);
    assert_eq!(
        err,
        HeaderError::GenesisMismatch {
            expected: params.genesis_hash(),
            got: ChainParams::MAINNET.genesis_hash()
        }
    );
    // Regtest headers checked as mainnet do not connect.
    let (height, err) =
        HeaderChain::verify_sequence(&ChainParams::MAINNET, &concat(&headers), NOW_S).unwrap_err();
    assert_eq!(height, 1);
    assert!(matches!(err, HeaderError::Unconnected { .. }));
}

/// One step of a random fork tree: a parent (index into the headers so far, genesis = 0)
/// and whether the child is slow (a minimum-difficulty block, less work) or quick.
fn tree_step() -> impl Strategy<Value = (prop::sample::Index, bool)> {
    (any::<prop::sample::Index>(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random fork trees with unequal work: the best tip is always the first-seen leaf of
    /// maximal cumulative work, and the best chain is linked from it down to genesis.
    #[test]
    fn the_best_tip_is_the_max_work_leaf(steps in prop::collection::vec(tree_step(), 1..40)) {
        let mut params = easy_testnet();
        params.pow_no_retargeting = true;
        let config = HeaderChainConfig { max_side_headers: 1000, check_version: true };
        let mut chain = HeaderChain::with_config(params, config);
        // (header, chainwork) of every header accepted, genesis first.
        let mut known: Vec<(Header, U256)> = vec![(params.genesis, chain.total_work())];
        let mut best = 0usize;
        for (i, (pick, slow)) in steps.iter().enumerate() {
            let (parent, parent_work) = known[pick.index(known.len())];
            // Slow: minimum difficulty. Quick: the walk back always finds genesis' bits
            // (every quick block carries them, and trees stay inside one period).
            let (time, bits) = if *slow {
                (parent.time + 1201, params.pow_limit_bits())
            } else {
                (parent.time + 600, params.genesis.bits)
            };
            let header = child(&params, &parent, time, bits, i as u64);
            chain.accept(&header, NOW_S).map_err(|e| TestCaseError::fail(e.to_string()))?;
            known.push((header, parent_work.saturating_add(header.work())));
            if known.last().unwrap().1 > known[best].1 {
                best = known.len() - 1;
            }
            prop_assert_eq!(chain.tip_hash(), known[best].0.block_hash());
        }
        prop_assert_eq!(chain.total_work(), known[best].1);
        prop_assert_eq!(chain.best_len() + chain.side_len(), known.len());
        for h in 1..=chain.tip_height() {
            prop_assert_eq!(chain.header_at(h).unwrap().prev_blockhash, chain.hash_at(h - 1).unwrap());
        }
    }
}
