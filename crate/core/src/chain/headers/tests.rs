//! Tests of [`HeaderChain`]: real mainnet headers 1–5, regtest chains mined here, and
//! custom networks (easy proof-of-work limit, real rules) for retargeting and testnet's
//! minimum-difficulty rule.

use super::*;
use crate::chain::hash::Hash256;
use crate::chain::params::Network;

/// "Now" for tests: 2033, after every header made here.
pub(super) const NOW_S: u64 = 2_000_000_000;

/// Mainnet blocks 1 to 5, the real headers.
const MAINNET_1_TO_5: [&str; 5] = [
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
    "010000004860eb18bf1b1620e37e9490fc8a427514416fd75159ab86688e9a8300000000d5fdcc541e25de1c7a5addedf24858b8bb665c9f36ef744ee42c316022c90f9bb0bc6649ffff001d08d2bd61",
    "01000000bddd99ccfda39da1b108ce1a5d70038d0a967bacb68b6b63065f626a0000000044f672226090d85db9a9f2fbfe5f0f9609b387af7be5b7fbb7a1767c831c9e995dbe6649ffff001d05e0ed6d",
    "010000004944469562ae1c2c74d9a535e00b6f3e40ffbad4f2fda3895501b582000000007a06ea98cd40ba2e3288262b28638cec5337c1456aaf5eedc8e9e5a20f062bdf8cc16649ffff001d2bfee0a9",
    "0100000085144a84488ea88d221c8bd6c059da090e88f8a2c99690ee55dbba4e00000000e11c48fecdd9e72510ca84f023370c9a38bf91ac5cae88019bee94d24528526344c36649ffff001d1d03e477",
];

pub(super) fn mainnet_1_to_5() -> Vec<Header> {
    MAINNET_1_TO_5
        .iter()
        .map(|h| Header::decode(&hex::decode(h).unwrap()).unwrap())
        .collect()
}

/// Finds a nonce meeting `header.bits`.
pub(super) fn mine(mut header: Header, pow_limit: Target) -> Header {
    for nonce in 0..u32::MAX {
        header.nonce = nonce;
        if header.check_proof_of_work(pow_limit).is_ok() {
            return header;
        }
    }
    panic!("no nonce meets {:#010x}", header.bits);
}

/// Finds a nonce whose hash does *not* meet `header.bits`.
pub(super) fn mine_badly(mut header: Header) -> Header {
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
pub(super) fn child(
    params: &ChainParams,
    parent: &Header,
    time: u32,
    bits: u32,
    tag: u64,
) -> Header {
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
pub(super) fn regtest_branch(parent: &Header, n: usize, tag: u64) -> Vec<Header> {
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

pub(super) fn accept_all(chain: &mut HeaderChain, headers: &[Header]) -> Vec<Accepted> {
    headers
        .iter()
        .map(|h| chain.accept(h, NOW_S).unwrap())
        .collect()
}

/// A testnet-like network with regtest's easy limit, whose genesis is four times harder than
/// the limit so that minimum-difficulty blocks differ from ordinary ones.
pub(super) fn easy_testnet() -> ChainParams {
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
fn entries_stay_compact() {
    // A best-chain entry is the header and its chainwork, nothing else (module docs).
    assert_eq!(std::mem::size_of::<BestEntry>(), 112);
    assert_eq!(std::mem::size_of::<SideEntry>(), 128);
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
    // Deeper on the side branch: a slow block, then a quick one walks back over it.
    let side_min = child(&params, &side, side.time + 1201, minimum, 9);
    chain.accept(&side_min, NOW_S).unwrap();
    let side_quick_min = child(&params, &side_min, side_min.time + 1, minimum, 10);
    assert!(matches!(
        chain.accept(&side_quick_min, NOW_S),
        Err(HeaderError::BadDifficulty { expected, height: 4, .. }) if expected == normal
    ));
    let side_quick = child(&params, &side_min, side_min.time + 1, normal, 11);
    assert!(matches!(
        chain.accept(&side_quick, NOW_S),
        Ok(Accepted::Reorg(_))
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

    // On a side branch off height 10, the retarget at 16 reads block 0's time through the
    // branch (heights 11-15) and the best chain below it.
    let mut prev = headers[10];
    for i in 11..16u32 {
        let h = child(&params, &prev, prev.time + 3, bits, 200 + u64::from(i));
        assert!(matches!(
            chain.accept(&h, NOW_S),
            Ok(Accepted::SideBranch { height, .. }) if height == i
        ));
        prev = h;
    }
    let side_expected = params.calculate_next_work_required(bits, prev.time, headers[0].time);
    assert_ne!(
        side_expected, expected,
        "the branch's slower blocks give other bits"
    );
    let wrong = child(&params, &prev, prev.time + 1, expected, 300);
    assert!(matches!(
        chain.accept(&wrong, NOW_S),
        Err(HeaderError::BadDifficulty { expected: e, height: 16, .. }) if e == side_expected
    ));
    let side_boundary = child(&params, &prev, prev.time + 1, side_expected, 301);
    assert!(matches!(
        chain.accept(&side_boundary, NOW_S),
        Ok(Accepted::SideBranch { height: 16, .. })
    ));
}

/// [`easy_testnet`] with BIP94 on (testnet4's rules) and four-block retarget periods of
/// one-second blocks (so a block more than two seconds after its parent may be mined at the
/// minimum difficulty), and a genesis target small enough that retargeting cannot overflow.
fn easy_testnet4() -> ChainParams {
    let mut params = easy_testnet();
    params.enforce_bip94 = true;
    params.pow_target_spacing_s = 1;
    params.pow_target_timespan_s = 4;
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
fn testnet4_starts_from_its_own_genesis() {
    let chain = HeaderChain::new(ChainParams::TESTNET4);
    assert_eq!(
        chain.tip_hash().to_hex(),
        "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"
    );
    assert_eq!(chain.params().network, Network::Testnet4);
}

#[test]
fn bip94_retargets_from_the_period_first_block_bits() {
    // Period 0-3: two quick blocks, then a slow one mined at the minimum difficulty (the
    // 20-minute rule). Retargeting from that last block's bits would make height 4 as easy
    // as the minimum; BIP94 scales the first block's (genesis') real bits instead.
    let params = easy_testnet4();
    let normal = params.genesis.bits;
    let minimum = params.pow_limit_bits();
    assert_eq!((normal, minimum), (0x2003ffff, 0x207fffff));
    let g = params.genesis;
    let h1 = child(&params, &g, g.time + 1, normal, 1);
    let h2 = child(&params, &h1, h1.time + 1, normal, 2);
    let h3 = child(&params, &h2, h2.time + 3, minimum, 3);
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &[h1, h2, h3]);

    let from_first = params.calculate_next_work_required(normal, h3.time, g.time);
    let from_last = params.calculate_next_work_required(minimum, h3.time, g.time);
    assert_ne!(from_first, from_last);
    assert_eq!(
        from_last, minimum,
        "a slow period from the minimum stays at it"
    );

    let from_last_header = child(&params, &h3, h3.time + 1, from_last, 4);
    assert_eq!(
        chain.accept(&from_last_header, NOW_S),
        Err(HeaderError::BadDifficulty {
            hash: from_last_header.block_hash(),
            height: 4,
            expected: from_first,
            got: from_last,
        })
    );
    let h4 = child(&params, &h3, h3.time + 1, from_first, 5);
    chain.accept(&h4, NOW_S).unwrap();

    // Without BIP94 (testnet3) the same period retargets from its last block.
    let mut testnet3 = params;
    testnet3.enforce_bip94 = false;
    let mut chain = HeaderChain::new(testnet3);
    accept_all(&mut chain, &[h1, h2, h3]);
    assert!(matches!(
        chain.accept(&h4, NOW_S),
        Err(HeaderError::BadDifficulty { expected, .. }) if expected == from_last
    ));
    chain.accept(&from_last_header, NOW_S).unwrap();
}

#[test]
fn bip94_refuses_a_period_first_block_dated_over_600_s_before_its_parent() {
    // The period's last block is dated far ahead; the next period's first block goes back
    // in time, still after the median time past: the timewarp BIP94 forbids.
    let params = easy_testnet4();
    let normal = params.genesis.bits;
    let minimum = params.pow_limit_bits();
    let g = params.genesis;
    let h1 = child(&params, &g, g.time + 1, normal, 1);
    let h2 = child(&params, &h1, h1.time + 1, normal, 2);
    let h3 = child(&params, &h2, h2.time + 3000, minimum, 3);
    let mut chain = HeaderChain::new(params);
    accept_all(&mut chain, &[h1, h2, h3]);
    let bits = params.calculate_next_work_required(normal, h3.time, g.time);

    let warped = child(&params, &h3, h3.time - 601, bits, 4);
    assert!(warped.time > h2.time, "after the median time past");
    assert_eq!(
        chain.accept(&warped, NOW_S),
        Err(HeaderError::TimewarpAttack {
            hash: warped.block_hash(),
            height: 4,
            time: h3.time - 601,
            min_time: h3.time - 600,
        })
    );
    assert_eq!(chain.stats().rejected, 1);
    // Exactly 600 s before its parent is allowed.
    let h4 = child(&params, &h3, h3.time - 600, bits, 5);
    chain.accept(&h4, NOW_S).unwrap();
    // Inside a period, a block may still be dated before its parent (by the median rule
    // alone).
    let h5 = child(&params, &h4, h4.time - 1000, bits, 6);
    assert!(h5.time > h2.time);
    chain.accept(&h5, NOW_S).unwrap();

    // Without BIP94 the warped block is valid.
    let mut testnet3 = params;
    testnet3.enforce_bip94 = false;
    let bits3 = testnet3.calculate_next_work_required(minimum, h3.time, g.time);
    let warped3 = child(&testnet3, &h3, h3.time - 601, bits3, 7);
    let mut chain = HeaderChain::new(testnet3);
    accept_all(&mut chain, &[h1, h2, h3, warped3]);
}

#[test]
fn minimum_chain_work_is_the_networks_unless_configured() {
    let mainnet = HeaderChain::new(ChainParams::MAINNET);
    assert_eq!(
        mainnet.min_chain_work(),
        ChainParams::MAINNET.min_chain_work
    );
    assert!(!mainnet.has_minimum_work());
    // Regtest's minimum is zero: genesis alone is trusted (the demo and e2e tests).
    assert!(HeaderChain::new(ChainParams::REGTEST).has_minimum_work());

    // Each regtest header proves work 2: genesis and four headers make 10.
    let config = HeaderChainConfig {
        min_chain_work: Some(U256::from_u64(10)),
        ..HeaderChainConfig::default()
    };
    let mut chain = HeaderChain::with_config(ChainParams::REGTEST, config);
    let branch = regtest_branch(&ChainParams::REGTEST.genesis, 4, 1);
    accept_all(&mut chain, &branch[..3]);
    assert_eq!(chain.total_work(), U256::from_u64(8));
    assert!(!chain.has_minimum_work());
    accept_all(&mut chain, &branch[3..]);
    assert!(chain.has_minimum_work());

    chain.reset_to_genesis();
    assert_eq!(chain.tip_height(), 0);
    assert!(!chain.contains(&branch[0].block_hash()));
    assert!(!chain.has_minimum_work());
    assert_eq!(chain.config().min_chain_work, Some(U256::from_u64(10)));
    assert_eq!(chain.stats().accepted, 4, "counters survive a reset");
}
