//! Spare replicas deleted once their holders proved they hold them (S12, third rule; issue
//! 16): confirmations make holders challengeable, unclaimed ones are challenged after
//! `challenge_unclaimed_after_ms`.

use crate::base::{ClusterId, NodeId};
use crate::node::Config;
use crate::testnet::{fast_config, formed, Net};
use crate::wire::{Message, ViewStamp};

const BLOCKS: u32 = 120;
/// The default: ten minutes.
const UNCLAIMED_AFTER_MS: u64 = 600_000;

fn config() -> Config {
    Config {
        cluster_size_max: 6,
        cluster_size_target: 4,
        challenge_unclaimed_after_ms: Some(UNCLAIMED_AFTER_MS),
        ..fast_config()
    }
}

/// Four members fill their shards, then a fifth node joins: the old members keep spares.
/// Returns the network, the old members, the newcomer and when it joined (the last view).
fn grown(seed: u64, prepare: impl FnOnce(&mut Net, &[usize], usize)) -> (Net, Vec<usize>, usize) {
    let (mut net, members) = formed(4, config(), seed, BLOCKS);
    net.run_until(30_000);
    for i in &members {
        assert_eq!(net.nodes[*i].missing_count(), 0, "member {i} filled");
    }
    let late = net.add(config(), seed);
    prepare(&mut net, &members, late);
    net.introduce_all();
    net.run_until(80_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let now = clusters.into_values().next().unwrap();
    assert!(now.contains(&late) && now.len() == 5, "{now:?}");
    assert_eq!(net.nodes[late].missing_count(), 0, "the newcomer filled");
    (net, members, late)
}

/// The member ids holding `height` under node `i`'s view.
fn holders(net: &mut Net, i: usize, height: u32) -> Vec<NodeId> {
    let shared = &mut net.nodes[i].shared;
    let m = shared.membership().unwrap();
    let slots = m.slots.clone();
    let hash = shared
        .headers
        .as_ref()
        .unwrap()
        .block_hash_at(height)
        .unwrap();
    let mut out = Vec::new();
    shared.placer.holders(&hash, height, &slots, &mut out);
    out.into_iter().map(|n| slots[n].id).collect()
}

/// Heights node `i` holds but its view does not assign to it.
fn spares(net: &mut Net, i: usize) -> Vec<u32> {
    (0..BLOCKS)
        .filter(|h| net.nodes[i].holds(*h) && !net.nodes[i].must_hold(*h))
        .collect()
}

fn view_since_ms(net: &Net, i: usize) -> u64 {
    net.nodes[i].shared.membership().unwrap().view_since_ms
}

/// Every block is on exactly P members, and each member's store is what it says it holds.
fn exactly_p(net: &Net, members: &[usize]) {
    let copies = net.copies(members);
    assert!(copies.iter().all(|c| *c == 3), "{copies:?}");
    for i in members {
        assert_eq!(
            net.stores[*i].len(),
            net.nodes[*i].held_count(),
            "store of {i}"
        );
    }
}

/// The spares go as soon as their holders confirm and prove they hold them, well inside the
/// view's first minute: every block is then on exactly P members, what the old members deleted
/// is what the newcomer took, and each deleted copy cost P passed challenges.
#[test]
fn spares_go_once_their_holders_confirm_and_prove_it() {
    let (net, members, late) = grown(42, |_, _, _| {});
    let mut all = members.clone();
    all.push(late);
    assert!(net.now_ms < view_since_ms(&net, late) + UNCLAIMED_AFTER_MS / 10);
    exactly_p(&net, &all);
    let evicted: u64 = members
        .iter()
        .map(|i| net.nodes[*i].stats().spares_evicted)
        .sum();
    for i in &members {
        let s = net.nodes[*i].stats();
        assert!(
            s.hold_proofs_passed >= 3 * s.spares_evicted,
            "member {i}: {s:?}"
        );
        assert_eq!(s.hold_proofs_failed, 0, "member {i}");
        assert!(net.nodes[*i].spare_proofs().is_empty(), "member {i}");
    }
    assert_eq!(
        evicted as usize,
        net.nodes[late].held_count(),
        "what the newcomer took"
    );
}

/// A spare stays while one of its holders has not confirmed (its confirmations are lost on the
/// way); the spares whose holders all did go. Once the view has held
/// `challenge_unclaimed_after_ms`, the silent holder is challenged all the same, proves it
/// holds its blocks, and the rest go.
#[test]
fn a_spare_stays_while_one_holder_has_not_confirmed() {
    let mut silent = 0;
    let (mut net, members, late) = grown(42, |net, members, _| {
        silent = members[1];
        net.muted.push((silent, "shard_held"));
    });
    let silent_id = net.id(silent);
    let mut kept = 0;
    let mut all = members.clone();
    all.push(late);
    for &i in members.iter().filter(|i| **i != silent) {
        let left = spares(&mut net, i);
        for &h in &left {
            assert!(
                holders(&mut net, i, h).contains(&silent_id),
                "member {i} keeps block {h}, whose holders all confirmed"
            );
        }
        kept += left.len();
        assert!(net.nodes[i].stats().spares_evicted > 0, "member {i}");
    }
    assert!(kept > 0, "some spares wait for the silent holder");
    assert!(net.copies(&all).iter().any(|c| *c > 3));
    // Not a moment before the view has held `challenge_unclaimed_after_ms`.
    let due = view_since_ms(&net, late) + UNCLAIMED_AFTER_MS;
    net.run_until(due - 1_000);
    assert!(net.copies(&all).iter().any(|c| *c > 3));
    net.run_until(due + 10_000);
    exactly_p(&net, &all);
}

/// Confirmations that name a stale epoch, another cluster or another member list, or that
/// come from a node outside the view, do not count; the members' own do.
#[test]
fn confirmations_of_another_view_or_from_an_outsider_do_not_count() {
    let (mut net, members, _) = grown(42, |net, members, late| {
        for i in members.iter().chain([&late]) {
            net.muted.push((*i, "shard_held"));
        }
    });
    let a = members[0];
    let before = spares(&mut net, a);
    assert!(
        !before.is_empty(),
        "member {a} keeps spares: nobody confirmed"
    );
    let view: ViewStamp = net.nodes[a].shared.stamp().unwrap();
    let others: Vec<NodeId> = net.nodes[a]
        .cluster()
        .unwrap()
        .2
        .into_iter()
        .filter(|id| *id != net.id(a))
        .collect();
    let wrong = [
        ViewStamp {
            epoch: view.epoch - 1,
            ..view
        },
        ViewStamp {
            cluster: ClusterId([9; 32]),
            ..view
        },
        ViewStamp {
            digest: view.digest ^ 1,
            ..view
        },
        ViewStamp {
            members: view.members + 1,
            ..view
        },
    ];
    let ignored = net.nodes[a].stats().messages_ignored;
    for from in &others {
        for stamp in wrong {
            net.inject(a, *from, Message::ShardHeld { view: stamp });
        }
    }
    // Right view, wrong sender.
    let outsider = NodeId::from_seed(999_999);
    net.inject(a, outsider, Message::ShardHeld { view });
    net.run_until(net.now_ms + 1_000);
    assert_eq!(spares(&mut net, a), before);
    assert_eq!(net.nodes[a].stats().spares_evicted, 0);
    let expected = ignored + (others.len() * wrong.len()) as u64 + 1;
    assert_eq!(net.nodes[a].stats().messages_ignored, expected);
    // The right view from every other member: the spares go.
    for from in &others {
        net.inject(a, *from, Message::ShardHeld { view });
    }
    net.run_until(net.now_ms + 1_000);
    assert!(
        spares(&mut net, a).is_empty(),
        "{:?}",
        net.nodes[a].spare_proofs()
    );
    assert_eq!(net.nodes[a].stats().spares_evicted as usize, before.len());
}

/// A confirmation naming a newer view of our cluster than ours (its sender adopted it first)
/// counts once this member adopts exactly that view, not before.
#[test]
fn a_confirmation_of_the_next_view_counts_once_that_view_is_adopted() {
    let (mut net, members) = formed(4, config(), 42, BLOCKS);
    net.run_until(30_000);
    let a = members[0];
    let m = net.nodes[a].shared.membership().unwrap();
    let (view, number) = (m.view.clone(), m.number);
    let next = crate::wire::View {
        epoch: view.epoch + 1,
        ..view.clone()
    };
    let next_stamp = ViewStamp {
        epoch: next.epoch,
        ..net.nodes[a].shared.stamp().unwrap()
    };
    let from = net.id(members[1]);
    // Its own confirmation of the next view cannot come by any other way.
    net.muted.push((members[1], "shard_held"));
    let ignored = net.nodes[a].stats().messages_ignored;
    net.inject(a, from, Message::ShardHeld { view: next_stamp });
    net.run_until(net.now_ms + 100);
    assert_eq!(net.nodes[a].stats().messages_ignored, ignored, "kept");
    let early = &net.nodes[a].repair.confirmations.early;
    assert_eq!(early.len(), 1);
    assert_eq!(early[0], (from, next_stamp));
    net.inject(a, from, Message::View(next));
    net.run_until(net.now_ms + 100);
    let m = net.nodes[a].shared.membership().unwrap();
    assert_eq!((m.view.epoch, m.number), (view.epoch + 1, number));
    let sender = m.number_of(&from).unwrap();
    let confirmations = &net.nodes[a].repair.confirmations;
    assert_eq!(confirmations.view, Some(next_stamp));
    assert_ne!(confirmations.members & (1 << sender), 0);
    assert!(confirmations.early.is_empty());
}

/// Each member confirms once per view, to every other member and only once it holds its whole
/// shard; after the newcomer's view, every member confirms again under it — the newcomer once
/// its fill is done.
#[test]
fn a_member_confirms_once_per_view_once_its_shard_is_whole() {
    let (mut net, members) = formed(4, config(), 42, BLOCKS);
    net.keep_kind = Some("shard_held");
    // Step through the newcomer's fill, watching when it confirms.
    let late = net.add(config(), 42);
    net.introduce_all();
    let mut t = net.now_ms;
    let mut confirmed_at = None;
    while t < 80_000 {
        t += 50;
        net.run_until(t);
        let sent = net.kept.iter().any(|(_, from, _, _)| *from == late);
        if sent && confirmed_at.is_none() {
            confirmed_at = Some(t);
            // Whole when it said so: nothing missing, every block it must hold held.
            assert_eq!(net.nodes[late].missing_count(), 0);
            for h in 0..BLOCKS {
                let node = &mut net.nodes[late];
                assert!(!node.must_hold(h) || node.holds(h), "block {h}");
            }
            assert!(net.nodes[late].held_count() > 0);
        }
    }
    assert!(confirmed_at.is_some(), "the newcomer confirmed");
    let mut all = members.clone();
    all.push(late);
    let (_, final_epoch, ids) = net.nodes[late].cluster().unwrap();
    assert_eq!(ids.len(), 5);
    assert!(net.views_agree());
    for &i in &all {
        let mine: Vec<&(u64, usize, usize, Message)> = net
            .kept
            .iter()
            .filter(|(_, from, _, _)| *from == i)
            .collect();
        let mut views: Vec<ViewStamp> = mine
            .iter()
            .map(|(_, _, _, m)| match m {
                Message::ShardHeld { view } => *view,
                other => panic!("{other:?}"),
            })
            .collect();
        views.sort_by_key(|v| (v.epoch, v.members, v.digest));
        views.dedup();
        // Once per view: to each other member of it, once.
        for view in &views {
            let mut to: Vec<usize> = mine
                .iter()
                .filter(|(_, _, _, m)| matches!(m, Message::ShardHeld { view: v } if v == view))
                .map(|(_, _, to, _)| *to)
                .collect();
            let sent = to.len();
            to.sort();
            to.dedup();
            assert_eq!(
                to.len(),
                sent,
                "member {i} confirmed {view:?} twice to one member"
            );
            assert_eq!(sent, view.members as usize - 1, "member {i}: {view:?}");
        }
        // The last view it confirmed is the final one, five members.
        let last = views.last().copied().unwrap();
        assert_eq!((last.epoch, last.members), (final_epoch, 5), "member {i}");
        if i == late {
            assert_eq!(views.len(), 1, "the newcomer confirmed only its one view");
        }
    }
}
