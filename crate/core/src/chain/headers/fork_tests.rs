//! Tests of forks: reorganisations and their reports, the side-branch cap, batches, byte
//! sequences, and random fork trees.

use super::tests::{
    accept_all, child, easy_testnet, mainnet_1_to_5, mine_badly, regtest_branch, NOW_S,
};
use super::*;
use proptest::prelude::*;

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

    // Away and back within one batch: from a1..a4, b2..b5 take over, then a5 and a6 bring
    // the a-branch back. On balance a2..a4 never left; a5 and a6 joined.
    let mut there_and_back = HeaderChain::new(params);
    accept_all(&mut there_and_back, &a);
    let a_more = regtest_branch(&a[3], 2, 0xd);
    let mut batch = b[..4].to_vec();
    batch.extend(&a_more);
    let outcome = there_and_back.accept_batch(&batch, NOW_S).unwrap();
    assert_eq!(there_and_back.stats().reorgs, 2);
    assert!(outcome.disconnected.is_empty(), "{outcome:?}");
    assert_eq!(
        outcome.connected,
        vec![(5, a_more[0].block_hash()), (6, a_more[1].block_hash())]
    );

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

    // Too many headers: refused before any is checked.
    assert_eq!(
        HeaderChain::verify_sequence_up_to(&params, &concat(&headers), NOW_S, 9),
        Err((
            0,
            HeaderError::TooMany {
                count: 10,
                limit: 9
            }
        ))
    );
    assert!(HeaderChain::verify_sequence_up_to(&params, &concat(&headers), NOW_S, 10).is_ok());

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
        let config = HeaderChainConfig { max_side_headers: 1000, ..HeaderChainConfig::default() };
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile bytes: any input gets an answer, never a panic.
    #[test]
    fn verify_sequence_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1000)) {
        let _ = HeaderChain::verify_sequence(&ChainParams::REGTEST, &bytes, NOW_S);
        let _ = HeaderChain::verify_sequence(&ChainParams::MAINNET, &bytes, NOW_S);
    }

    /// One changed byte in a valid sequence is caught at that header or the next (the only
    /// exception: the last header still meeting its target with another nonce or time).
    #[test]
    fn one_changed_byte_is_caught(index in 0usize..20, offset in 0usize..80, flip in 1u8..=255) {
        let headers = regtest_branch(&ChainParams::REGTEST.genesis, 20, 7);
        let mut bytes = concat(&headers);
        bytes[index * 80 + offset] ^= flip;
        let height = index as u32 + 1;
        match HeaderChain::verify_sequence(&ChainParams::REGTEST, &bytes, NOW_S) {
            Ok(summary) => {
                prop_assert_eq!(index, 19);
                prop_assert_ne!(summary.tip_hash, headers[19].block_hash());
            }
            Err((failing, _)) => prop_assert!(failing == height || failing == height + 1),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random fork trees under a tiny side-branch cap: the store never exceeds its cap, every
    /// stored side header still connects to the best chain, child counts are right, the tip
    /// has the most work of anything ever accepted, and a refusal leaves the store as it was.
    #[test]
    fn the_side_cap_holds_under_random_forks(
        cap in 0usize..6,
        steps in prop::collection::vec(tree_step(), 1..60),
    ) {
        let mut params = easy_testnet();
        params.pow_no_retargeting = true;
        let config = HeaderChainConfig { max_side_headers: cap, ..HeaderChainConfig::default() };
        let mut chain = HeaderChain::with_config(params, config);
        let mut known: Vec<Header> = vec![params.genesis];
        let mut max_work = chain.total_work();
        for (i, (pick, slow)) in steps.iter().enumerate() {
            let parent = known[pick.index(known.len())];
            let (time, bits) = if *slow {
                (parent.time + 1201, params.pow_limit_bits())
            } else {
                (parent.time + 600, params.genesis.bits)
            };
            let header = child(&params, &parent, time, bits, i as u64);
            let side_before = chain.side_len();
            match chain.accept(&header, NOW_S) {
                Ok(_) => {
                    known.push(header);
                    let info = chain.get(&header.block_hash()).unwrap();
                    max_work = max_work.max(info.chainwork);
                }
                // The parent was dropped from the store earlier.
                Err(HeaderError::Unconnected { .. }) => {}
                Err(HeaderError::SideBranchFull { limit, .. }) => {
                    prop_assert_eq!(limit, cap);
                    prop_assert_eq!(chain.side_len(), side_before);
                }
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            }
            prop_assert!(chain.side_len() <= cap);
            prop_assert_eq!(chain.total_work(), max_work);
            for (hash, entry) in &chain.side {
                let children = chain
                    .side
                    .values()
                    .filter(|e| e.header.prev_blockhash == *hash)
                    .count();
                prop_assert_eq!(entry.side_children as usize, children);
                let mut cursor = entry.header.prev_blockhash;
                while let Some(e) = chain.side.get(&cursor) {
                    cursor = e.header.prev_blockhash;
                }
                prop_assert!(chain.best_index.contains_key(&cursor));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A batch's net report, applied to the best chain before it, gives the best chain after,
    /// and no block is in both of its lists.
    #[test]
    fn a_batch_report_replays_exactly(
        steps in prop::collection::vec(tree_step(), 2..40),
        split in any::<prop::sample::Index>(),
    ) {
        let mut params = easy_testnet();
        params.pow_no_retargeting = true;
        let mut headers: Vec<Header> = vec![params.genesis];
        for (i, (pick, slow)) in steps.iter().enumerate() {
            let parent = headers[pick.index(headers.len())];
            let (time, bits) = if *slow {
                (parent.time + 1201, params.pow_limit_bits())
            } else {
                (parent.time + 600, params.genesis.bits)
            };
            headers.push(child(&params, &parent, time, bits, i as u64));
        }
        let headers = &headers[1..];
        let (before, batch) = headers.split_at(split.index(headers.len()));
        let mut chain = HeaderChain::new(params);
        accept_all(&mut chain, before);
        let best = |chain: &HeaderChain| -> Vec<(u32, BlockHash)> {
            (0..=chain.tip_height()).map(|h| (h, chain.hash_at(h).unwrap())).collect()
        };
        let mut replay = best(&chain);
        let outcome = chain.accept_batch(batch, NOW_S).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for block in &outcome.disconnected {
            prop_assert_eq!(replay.pop(), Some(*block));
        }
        for block in &outcome.connected {
            prop_assert_eq!(block.0 as usize, replay.len());
            replay.push(*block);
        }
        prop_assert_eq!(replay, best(&chain));
        // Net: nothing both left and joined.
        for block in &outcome.disconnected {
            prop_assert!(!outcome.connected.contains(block));
        }
    }
}
