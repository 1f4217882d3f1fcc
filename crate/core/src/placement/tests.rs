//! Property tests for placement (S6–S8, S18): holder counts, agreement, segments, movement.

use super::*;
use proptest::prelude::*;

fn slots(seeds: &[u64], segments: u32) -> Vec<Slot> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| Slot::alone(NodeId::from_seed(*s), i as u32 % segments.max(1)))
        .collect()
}

/// How many distinct values `values` has.
fn distinct<T: Ord>(values: impl Iterator<Item = T>) -> usize {
    values.collect::<std::collections::BTreeSet<T>>().len()
}

fn block(seed: u64) -> (BlockHash, u32) {
    let hash = crate::chain::sha256d(&seed.to_le_bytes());
    (BlockHash(hash), seed as u32)
}

fn rules() -> Vec<PlacementRule> {
    vec![
        PlacementRule::HashMod { offset: 0 },
        PlacementRule::HashMod { offset: 977 },
        PlacementRule::Even { range_blocks: 4 },
        PlacementRule::Segment,
        PlacementRule::Rendezvous,
    ]
}

fn rule() -> impl Strategy<Value = PlacementRule> {
    prop::sample::select(rules())
}

proptest! {
    /// S6: exactly P distinct holders when K >= P (min(P, K) otherwise), all valid numbers.
    #[test]
    fn exactly_p_distinct_holders(rule in rule(), k in 1usize..24, p in 1usize..6, b in any::<u64>()) {
        let members = slots(&(0..k as u64).collect::<Vec<_>>(), 3);
        let mut placer = Placer::new(rule, p);
        let (hash, height) = block(b);
        let mut out = Vec::new();
        placer.holders(&hash, height, &members, &mut out);
        prop_assert_eq!(out.len(), p.min(k));
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), out.len());
        prop_assert!(out.iter().all(|n| *n < k));
    }

    /// Every member computes the same holders (placement is a pure function of its inputs),
    /// and S18: with P >= 1 every block has a holder in the cluster.
    #[test]
    fn every_member_agrees(rule in rule(), k in 1usize..16, b in any::<u64>()) {
        let members = slots(&(100..100 + k as u64).collect::<Vec<_>>(), 4);
        let (hash, height) = block(b);
        let mut first = Vec::new();
        Placer::new(rule, 3).holders(&hash, height, &members, &mut first);
        for _member in 0..k {
            let mut mine = Vec::new();
            Placer::new(rule, 3).holders(&hash, height, &members, &mut mine);
            prop_assert_eq!(&mine, &first);
        }
        prop_assert!(!first.is_empty());
    }

    /// S8: the segment rule spreads replicas over min(P, segments) distinct segments.
    #[test]
    fn segment_rule_spreads_over_segments(k in 1usize..20, segs in 1u32..6, p in 1usize..5, b in any::<u64>()) {
        let members = slots(&(0..k as u64).collect::<Vec<_>>(), segs);
        let distinct_segments = distinct(members.iter().map(|m| m.segment));
        let (hash, height) = block(b);
        let mut out = Vec::new();
        Placer::new(PlacementRule::Segment, p).holders(&hash, height, &members, &mut out);
        let used = distinct(out.iter().map(|i| members[*i].segment));
        prop_assert_eq!(used, p.min(k).min(distinct_segments));
    }

    /// Issue 17: under the rendezvous rules a block's holders are on min(P, K, devices)
    /// distinct devices — P distinct devices whenever the cluster spans that many.
    #[test]
    fn copies_go_to_distinct_devices(rule in prop::sample::select(vec![PlacementRule::Rendezvous, PlacementRule::Segment]), k in 1usize..16, devices in 1u64..6, p in 1usize..5, b in any::<u64>()) {
        let mut members = slots(&(0..k as u64).collect::<Vec<_>>(), 2);
        for (i, m) in members.iter_mut().enumerate() {
            m.device = 1 + (i as u64 * 7919) % devices;
        }
        let spanned = distinct(members.iter().map(|m| m.device));
        let (hash, height) = block(b);
        let mut out = Vec::new();
        Placer::new(rule, p).holders(&hash, height, &members, &mut out);
        prop_assert_eq!(out.len(), p.min(k));
        let used = distinct(out.iter().map(|i| members[*i].device));
        prop_assert_eq!(used, p.min(k).min(spanned));
    }

    /// Minimal movement: with rendezvous hashing a member leaving moves exactly its own blocks
    /// (the optimum), and a member joining moves only blocks onto the newcomer.
    #[test]
    fn rendezvous_moves_only_what_it_must(k in 4usize..16, leaver in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let before = slots(&(seed..seed + k as u64).collect::<Vec<_>>(), 1);
        let blocks: Vec<_> = (0..300).map(|i| block(seed.wrapping_add(i))).collect();
        let gone = leaver.index(k);
        let after: Vec<Slot> = before.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, s)| *s).collect();
        let m = movement(PlacementRule::Rendezvous, 3, &blocks, &before, &after);
        prop_assert_eq!(m.moved, m.optimum);
        // Join: every moved pair lands on the newcomer.
        let newcomer = Slot::alone(NodeId::from_seed(seed ^ 0xdead_beef), 0);
        let mut joined = before.clone();
        joined.push(newcomer);
        let mut placer = Placer::new(PlacementRule::Rendezvous, 3);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (hash, height) in &blocks {
            placer.holders(hash, *height, &before, &mut a);
            placer.holders(hash, *height, &joined, &mut b);
            for n in &b {
                let id = joined[*n].id;
                prop_assert!(id == newcomer.id || a.iter().any(|m| before[*m].id == id));
            }
        }
    }

    /// Every rule moves at least the optimum on a leave (nothing can move less than the lost
    /// replicas); measured ratios for each rule are printed by the `placement_movement` example.
    #[test]
    fn no_rule_beats_the_optimum_on_leave(rule in rule(), k in 4usize..12, seed in any::<u64>()) {
        let before = slots(&(seed..seed + k as u64).collect::<Vec<_>>(), 3);
        let after = before[1..].to_vec();
        let blocks: Vec<_> = (0..200).map(|i| block(seed.wrapping_add(i))).collect();
        let m = movement(rule, 3, &blocks, &before, &after);
        prop_assert!(m.moved >= m.optimum, "{:?} moved {} < optimum {}", rule, m.moved, m.optimum);
    }
}

#[test]
fn hash_mod_matches_the_patent_rule_on_a_known_hash() {
    // Hash = 1000 (little-endian); K = 7, P = 2: constants 7 and 6.
    let mut bytes = [0u8; 32];
    bytes[0] = 0xe8;
    bytes[1] = 0x03;
    let hash = BlockHash(bytes);
    assert_eq!(hash_mod(&hash, 7), 1000 % 7);
    let members = slots(&[1, 2, 3, 4, 5, 6, 7], 1);
    let mut out = Vec::new();
    Placer::new(PlacementRule::HashMod { offset: 0 }, 2).holders(&hash, 0, &members, &mut out);
    assert_eq!(out, vec![(1000 % 7) as usize, (1000 % 6) as usize]);
    // Header hash plus a fixed value.
    Placer::new(PlacementRule::HashMod { offset: 5 }, 2).holders(&hash, 0, &members, &mut out);
    assert_eq!(out, vec![(1005 % 7) as usize, (1005 % 6) as usize]);
}

#[test]
fn even_rule_spreads_ranges_evenly() {
    let members = slots(&[1, 2, 3, 4, 5], 1);
    let mut placer = Placer::new(PlacementRule::Even { range_blocks: 10 }, 2);
    let mut counts = [0usize; 5];
    let mut out = Vec::new();
    for height in 0..500u32 {
        placer.holders(&BlockHash::default(), height, &members, &mut out);
        for n in &out {
            counts[*n] += 1;
        }
    }
    assert_eq!(counts, [200; 5]);
}

#[test]
fn renumbering_rules_move_more_than_rendezvous() {
    let before = slots(&(0..9).collect::<Vec<_>>(), 3);
    let after = before[..4]
        .iter()
        .chain(&before[5..])
        .copied()
        .collect::<Vec<_>>();
    let blocks: Vec<_> = (0..1000).map(block).collect();
    let rendezvous = movement(PlacementRule::Rendezvous, 3, &blocks, &before, &after);
    let hash_mod = movement(
        PlacementRule::HashMod { offset: 0 },
        3,
        &blocks,
        &before,
        &after,
    );
    assert_eq!(rendezvous.moved, rendezvous.optimum);
    assert!(hash_mod.moved > 2 * hash_mod.optimum, "{hash_mod:?}");
}

/// Members of equal capacity, each on its own device, are placed exactly as by the plain
/// rendezvous rule (highest weight first): what browsers computed before failure domains and
/// capacities existed, and what `tests/e2e/formation.test.mjs` recomputes in JavaScript.
#[test]
fn equal_capacities_on_own_devices_are_the_plain_rule() {
    let members: Vec<Slot> = slots(&(0..9).collect::<Vec<_>>(), 1)
        .into_iter()
        .map(|s| Slot {
            weight: 5 << 30,
            ..s
        })
        .collect();
    let mut placer = Placer::new(PlacementRule::Rendezvous, 3);
    let mut out = Vec::new();
    for b in 0..500 {
        let (hash, height) = block(b);
        placer.holders(&hash, height, &members, &mut out);
        let key = u64::from_le_bytes(hash.0[..8].try_into().unwrap());
        let mut plain: Vec<(u64, usize)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (rendezvous_weight(key, &m.id), i))
            .collect();
        plain.sort_by_key(|p| std::cmp::Reverse(p.0));
        let want: Vec<usize> = plain.iter().take(3).map(|(_, i)| *i).collect();
        assert_eq!(out, want, "block {b}");
    }
}

/// The fixed-point logarithm: exact at powers of two, monotone, within 10^-8 of the true
/// value elsewhere; and the comparison of scores is the plain rule for equal weights.
#[test]
fn the_weighted_score_is_exact_enough_and_the_plain_rule_for_equal_weights() {
    let one = 1u64 << 32;
    assert_eq!(neg_log2(u64::MAX), 1, "h = 1: the least, never 0");
    assert_eq!(neg_log2((1 << 63) - 1), one, "h = 1/2");
    assert_eq!(neg_log2(0), 64 * one, "h = 2^-64");
    for i in 0..10_000u64 {
        let draw = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let l = neg_log2(draw);
        let want = -(((draw as f64) + 1.0) / 2f64.powi(64)).log2();
        assert!(
            (l as f64 / one as f64 - want).abs() < 1e-8,
            "draw {draw}: {l} vs {want}"
        );
    }
    let mut draws: Vec<u64> = (0..1000u64)
        .map(|i| i.wrapping_mul(0x2545_f491_4f6c_dd1d))
        .collect();
    draws.sort_unstable();
    for w in draws.windows(2) {
        assert!(neg_log2(w[0]) >= neg_log2(w[1]), "monotone");
        let (a, b) = ((7, w[0], neg_log2(w[0])), (7, w[1], neg_log2(w[1])));
        assert_eq!(
            beats(a, b),
            std::cmp::Ordering::Less,
            "equal weights: by draw"
        );
    }
    // Twice the weight beats a draw whose logarithm is less than twice as small.
    let half = (1u64 << 63) - 1; // −log2 = 1
    let quarter = (1u64 << 62) - 1; // −log2 = 2
    assert_eq!(
        beats((2, quarter, neg_log2(quarter)), (1, half, neg_log2(half))),
        std::cmp::Ordering::Equal.then(quarter.cmp(&half)),
        "2 / 2 = 1 / 1: equal scores, then the draw"
    );
    assert_eq!(
        beats((3, quarter, neg_log2(quarter)), (1, half, neg_log2(half))),
        std::cmp::Ordering::Greater
    );
}

#[test]
fn weights_keep_a_capacitys_four_leading_bits() {
    assert_eq!(weight_of(0), 1);
    assert_eq!(weight_of(1), 1);
    assert_eq!(weight_of(15), 15);
    assert_eq!(weight_of(0b1_0111), 0b1_0110);
    assert_eq!(weight_of(8 << 30), 8 << 30);
    // A tab's estimate a little above the relay's 8 GiB weighs the same.
    assert_eq!(weight_of((8 << 30) + 123_456_789), 8 << 30);
    assert_eq!(weight_of(u64::MAX), 0xf << 60);
}

/// Issue 17: one member's capacity changing moves blocks only to or from that member — the
/// others' order among themselves is untouched.
#[test]
fn a_capacity_change_moves_blocks_only_to_or_from_that_member() {
    let before = slots(&(0..6).collect::<Vec<_>>(), 1)
        .into_iter()
        .map(|s| Slot {
            weight: 8 << 30,
            ..s
        })
        .collect::<Vec<_>>();
    let mut after = before.clone();
    after[2].weight = 1 << 30;
    let mut placer = Placer::new(PlacementRule::Rendezvous, 2);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut moved_off = 0;
    for n in 0..5_000 {
        let (hash, height) = block(n);
        placer.holders(&hash, height, &before, &mut a);
        placer.holders(&hash, height, &after, &mut b);
        for m in &b {
            assert!(
                a.contains(m) || *m != 2,
                "block {n}: nothing moves to the shrunk member"
            );
        }
        for m in &a {
            if !b.contains(m) {
                assert_eq!(*m, 2, "block {n}: only the shrunk member loses blocks");
                moved_off += 1;
            }
        }
    }
    assert!(moved_off > 1_000, "{moved_off}");
}

/// How many of blocks `0..blocks` each of `members` holds under the rendezvous rule with `p`
/// copies.
fn held_by(members: &[Slot], p: usize, blocks: u64) -> Vec<u64> {
    let mut placer = Placer::new(PlacementRule::Rendezvous, p);
    let mut held = vec![0u64; members.len()];
    let mut out = Vec::new();
    for b in 0..blocks {
        let (hash, height) = block(b);
        placer.holders(&hash, height, members, &mut out);
        for i in &out {
            held[*i] += 1;
        }
    }
    held
}

/// Issue 17's target: a member's share of the copies follows its capacity. With one copy per
/// block (P = 1) the share is exactly w / Σw in expectation; with P = 2 a member with half the
/// room of the others holds about half as many blocks as each of them.
#[test]
fn members_hold_blocks_in_proportion_to_their_capacity() {
    const BLOCKS: u64 = 20_000;
    let capacities = [1u64 << 30, 2 << 30, 2 << 30, 4 << 30, 8 << 30];
    let mut members = slots(&(0..5).collect::<Vec<_>>(), 1);
    for (m, c) in members.iter_mut().zip(capacities) {
        m.weight = c;
    }
    let total: u64 = capacities.iter().sum();
    let one = held_by(&members, 1, BLOCKS);
    for (i, c) in capacities.iter().enumerate() {
        let share = one[i] as f64 / BLOCKS as f64;
        let want = *c as f64 / total as f64;
        assert!(
            (share - want).abs() <= 0.1 * want,
            "member {i}: share {share:.3}, capacity share {want:.3}"
        );
    }
    // P = 2, four members, one with half the room of the other three.
    let capacities = [1u64 << 30, 2 << 30, 2 << 30, 2 << 30];
    let mut members = slots(&(10..14).collect::<Vec<_>>(), 1);
    for (m, c) in members.iter_mut().zip(capacities) {
        m.weight = c;
    }
    let held = held_by(&members, 2, BLOCKS);
    let others = (held[1] + held[2] + held[3]) as f64 / 3.0;
    let ratio = held[0] as f64 / others;
    assert!((0.45..=0.65).contains(&ratio), "{held:?}: ratio {ratio:.3}");
}
