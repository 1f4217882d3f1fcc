//! Proofs of holding (issue 16): the challenge and its digest, answers through the storage
//! read, spares that stay for a liar, audits that find it, and what the cluster does with a
//! faulty holder.

use std::collections::HashSet;

use super::*;
use crate::node::{Config, Event};
use crate::testnet::{fast_config, formed, network, Net};

const BLOCKS: u32 = 60;

fn config() -> Config {
    Config {
        cluster_size_max: 5,
        cluster_size_target: 5,
        hold_audit_interval_ms: Some(2_000),
        challenge_unclaimed_after_ms: Some(20_000),
        ..fast_config()
    }
}

/// Node `i`'s view, as member ids.
fn view_ids(net: &Net, i: usize) -> Vec<NodeId> {
    net.nodes[i].cluster().map(|c| c.2).unwrap_or_default()
}

/// The block at `height`, and its hash.
fn block(net: &Net, height: u32) -> (BlockHash, Vec<u8>) {
    let bytes = net.blocks[height as usize].clone();
    (BlockHash(crate::chain_seam::sha256d(&bytes[..80])), bytes)
}

/// A height `i` must hold under its view.
fn assigned(net: &mut Net, i: usize) -> u32 {
    (0..BLOCKS)
        .find(|h| net.nodes[i].must_hold(*h))
        .expect("every member holds something")
}

#[test]
fn the_digest_covers_nonce_holder_and_range() {
    let block: Vec<u8> = (0..1_000u32).map(|i| (i * 7) as u8).collect();
    let (a, b) = (NodeId::from_seed(1), NodeId::from_seed(2));
    let d = proof_digest(5, &a, 100, 64, &block);
    assert_eq!(d, proof_digest(5, &a, 100, 64, &block), "deterministic");
    // Another answerer, nonce, offset, length or byte in the range gives another digest: a
    // member cannot pass with a mate's answer, nor with an old one.
    assert_ne!(d, proof_digest(5, &b, 100, 64, &block));
    assert_ne!(d, proof_digest(6, &a, 100, 64, &block));
    assert_ne!(d, proof_digest(5, &a, 101, 64, &block));
    assert_ne!(d, proof_digest(5, &a, 100, 63, &block));
    let mut flipped = block.clone();
    flipped[130] ^= 1;
    assert_ne!(d, proof_digest(5, &a, 100, 64, &flipped));
    // A byte outside the range does not matter: only the range is hashed.
    let mut outside = block.clone();
    outside[500] ^= 1;
    assert_eq!(d, proof_digest(5, &a, 100, 64, &outside));
    // The range: offset modulo the length, cut at the end, bounded.
    assert_eq!(challenged_range(100, 64, 1_000), 100..164);
    assert_eq!(challenged_range(1_100, 64, 1_000), 100..164);
    assert_eq!(challenged_range(990, 64, 1_000), 990..1_000);
    assert_eq!(challenged_range(7, u32::MAX, 1 << 20), 7..7 + 65_536);
    assert_eq!(challenged_range(7, 64, 0), 0..0);
    let _ = proof_digest(1, &a, u32::MAX, u32::MAX, &[]);
}

/// A challenge is answered through the storage read that serves `GetBlock`, with the digest of
/// the stored bytes; one for a block the member does not hold gets "not held" at once; one
/// from a node outside the view gets nothing.
#[test]
fn a_challenge_is_answered_from_the_store() {
    let (mut net, members) = formed(4, config(), 3, BLOCKS);
    net.run_until(20_000);
    let (a, b) = (members[0], members[1]);
    let held = assigned(&mut net, a);
    let not_held = (0..BLOCKS).find(|h| !net.nodes[a].holds(*h)).unwrap();
    net.keep_kind = Some("hold_proof");
    let (hash, bytes) = block(&net, held);
    let challenge = |request_id, block_hash| Message::HoldChallenge {
        request_id,
        block_hash,
        nonce: 77,
        offset: 5_000,
        length: 100,
    };
    let b_id = net.id(b);
    let answered = net.nodes[a].stats().hold_challenges_answered;
    net.inject(a, b_id, challenge(1, hash));
    net.inject(a, b_id, challenge(2, block(&net, not_held).0));
    net.inject(a, NodeId::from_seed(424_242), challenge(3, hash));
    net.run_until(net.now_ms + 5);
    let proofs: Vec<Message> = net
        .kept
        .iter()
        .filter(|(_, from, to, m)| {
            *from == a
                && *to == b
                && matches!(m, Message::HoldProof { request_id, .. } if *request_id < 4)
        })
        .map(|(_, _, _, m)| m.clone())
        .collect();
    let expected = proof_digest(77, &net.id(a), 5_000, 100, &bytes);
    assert_eq!(
        proofs,
        vec![
            Message::HoldProof {
                request_id: 2,
                proof: None
            },
            Message::HoldProof {
                request_id: 1,
                proof: Some(expected)
            },
        ]
    );
    assert_eq!(net.nodes[a].stats().hold_challenges_answered, answered + 2);
}

/// A mate has at most `ANSWERS_PER_PEER_MAX` challenges answered at once; the rest are
/// dropped (a timeout for the challenger, not a verdict), so a mate cannot make a member read
/// its whole shard at once.
#[test]
fn answers_to_one_mate_are_bounded() {
    let (mut net, members) = formed(4, config(), 4, BLOCKS);
    net.run_until(20_000);
    let (a, b) = (members[0], members[1]);
    let held = assigned(&mut net, a);
    let hash = block(&net, held).0;
    net.keep_kind = Some("hold_proof");
    let ignored = net.nodes[a].stats().messages_ignored;
    for request_id in 0..20 {
        net.inject(
            a,
            net.id(b),
            Message::HoldChallenge {
                request_id,
                block_hash: hash,
                nonce: request_id,
                offset: 0,
                length: 32,
            },
        );
    }
    net.run_until(net.now_ms + 5);
    let answered = net.kept.iter().filter(|(_, from, _, _)| *from == a).count();
    assert_eq!(answered, ANSWERS_PER_PEER_MAX);
    assert_eq!(
        net.nodes[a].stats().messages_ignored,
        ignored + 20 - ANSWERS_PER_PEER_MAX as u64
    );
}

/// An honest member that lost one block (a lost write) fails the challenge on it once, is
/// followed up on another block at once, passes, and stays: its strikes are reset. It fetches
/// the lost block again.
#[test]
fn an_honest_member_that_lost_a_block_fails_once_and_stays() {
    let mut config = config();
    config.hold_audit_interval_ms = None;
    let (mut net, members) = formed(4, config, 5, BLOCKS);
    net.run_until(20_000);
    let (a, x) = (members[0], members[1]);
    // A block both hold, that x confirmed (its ShardHeld is in).
    let lost = (0..BLOCKS)
        .find(|h| net.nodes[a].must_hold(*h) && net.nodes[x].must_hold(*h))
        .expect("members share blocks");
    let lost_hash = block(&net, lost).0;
    net.stores[x].remove(&lost_hash);
    let x_id = net.id(x);
    let node = &mut net.nodes[a];
    let stamp = node.shared.stamp().unwrap();
    node.repair.read_own_copy(
        &mut node.shared,
        stamp,
        lost,
        vec![(x_id, Purpose::Audit, true)],
    );
    net.flush(a);
    net.run_until(net.now_ms + 2_000);
    let s = net.nodes[a].stats();
    assert_eq!(
        (s.hold_proofs_failed, s.holders_found_faulty),
        (1, 0),
        "{s:?}"
    );
    assert!(s.hold_proofs_passed >= 1, "the follow-up passed: {s:?}");
    assert!(net.nodes[a]
        .repair
        .holding
        .strikes
        .iter()
        .all(|(_, failed)| failed.is_empty()));
    assert!(view_ids(&net, a).contains(&x_id));
    assert!(net.nodes[x].holds(lost), "x fetched it again");
    assert!(net.stores[x].contains_key(&lost_hash));
}

/// Failures count by block: a block a member lost (and is fetching again) counts once however
/// often it is asked about; failures on three different blocks in a row make it faulty, and a
/// pass in between starts the count again.
#[test]
fn strikes_count_distinct_blocks_and_a_pass_resets_them() {
    let (mut net, members) = formed(4, config(), 6, BLOCKS);
    net.run_until(20_000);
    let (a, x) = (members[0], members[1]);
    let x_id = net.id(x);
    let node = &mut net.nodes[a];
    let view = node.shared.stamp().unwrap();
    let challenge = |height| Challenge {
        to: x_id,
        height,
        purpose: Purpose::Audit,
        view,
        expected: Hash256([0; 32]),
        claimed: true,
        deadline_ms: u64::MAX,
    };
    let failed = |node: &crate::node::Node| {
        node.repair
            .holding
            .strikes
            .iter()
            .find(|(id, _)| *id == x_id)
            .map(|(_, failed)| failed.clone())
            .unwrap_or_default()
    };
    for _ in 0..5 {
        node.repair
            .verdict(&mut node.shared, &challenge(7), Some(false));
    }
    assert_eq!(failed(node), vec![7]);
    node.repair
        .verdict(&mut node.shared, &challenge(8), Some(false));
    node.repair
        .verdict(&mut node.shared, &challenge(9), Some(true));
    assert!(failed(node).is_empty(), "a pass starts the count again");
    for height in [7, 8] {
        node.repair
            .verdict(&mut node.shared, &challenge(height), Some(false));
    }
    assert!(node.repair.holding.found.is_empty());
    node.repair
        .verdict(&mut node.shared, &challenge(9), Some(false));
    assert_eq!(node.repair.holding.found, vec![x_id]);
    assert!(failed(node).is_empty());
}

/// The case: a member that says it stores blocks (`ShardHeld`) but stores nothing,
/// and then an honest holder crashes. Audits find the liar: it fails its proofs, is dropped
/// from every honest member's view and kept out (its views refused, its request to join
/// denied), a replacement is taken in, and every block is back on P members that really have
/// it — proved, not claimed — with no spare left over.
#[test]
fn a_member_that_stores_nothing_is_found_and_every_block_is_back_on_p_proved_copies() {
    let mut quiet = config();
    quiet.hold_audit_interval_ms = None;
    quiet.challenge_unclaimed_after_ms = None;
    // Five form the cluster; the sixth is left over, an ordinary node a replacement can be.
    let mut net = network(6, BLOCKS, quiet, 11);
    let nodes: Vec<usize> = (1..=6).collect();
    let liar = 2;
    net.hollow[liar] = Some(HashSet::new());
    net.run_until(20_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let members: Vec<usize> = clusters.into_values().next().unwrap();
    assert!(members.contains(&liar) && members.len() == 5, "{members:?}");
    let liar_id = net.id(liar);
    // The liar's claims are in, and its blocks are on P − 1 copies only.
    assert_eq!(net.nodes[liar].missing_count(), 0);
    assert!(net.stores[liar].is_empty());
    let short = net.true_copies(&members).iter().filter(|c| **c < 3).count();
    assert!(short > 0, "the liar's share is short");

    // An honest holder crashes; audits start.
    let crashed = *members.iter().find(|i| **i != liar).unwrap();
    net.crash(crashed);
    for i in &nodes {
        net.nodes[*i].shared.config.hold_audit_interval_ms = Some(2_000);
        net.nodes[*i].shared.config.challenge_unclaimed_after_ms = Some(20_000);
    }
    net.run_until(net.now_ms + 60_000);

    let honest: Vec<usize> = nodes
        .iter()
        .copied()
        .filter(|i| *i != liar && *i != crashed)
        .collect();
    let found: u64 = honest
        .iter()
        .map(|i| net.nodes[*i].stats().holders_found_faulty)
        .sum();
    assert!(found >= 1, "the liar was found");
    for i in &honest {
        let ids = view_ids(&net, *i);
        assert!(!ids.contains(&liar_id), "node {i} dropped the liar");
        assert!(
            net.nodes[*i].shared.is_banned(&liar_id),
            "node {i} keeps it out"
        );
        assert!(net.events[*i]
            .iter()
            .any(|e| matches!(e, Event::HolderFaulty { member, .. } if *member == liar_id)));
    }
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let now: Vec<usize> = clusters.into_values().next().unwrap();
    assert!(!now.contains(&liar), "{now:?}");
    assert_eq!(now.len(), 4, "a replacement was taken in: {now:?}");
    // Every block is on exactly P members that have it, and each member's store is what it
    // says it holds.
    let copies = net.true_copies(&now);
    assert!(copies.iter().all(|c| *c == 3), "{copies:?}");
    for i in &now {
        assert_eq!(net.stores[*i].len(), net.nodes[*i].held_count(), "node {i}");
    }
    // The liar asks to join and is refused; its views moved nobody.
    let refused: u64 = now
        .iter()
        .map(|i| net.nodes[*i].stats().views_refused)
        .sum();
    assert!(refused > 0);
}

/// While a holder that claimed blocks does not prove it holds them (it stores nothing and
/// never answers a challenge, so it fails none either), the spare copies of its blocks stay,
/// however long: every block it took from an old member is still there.
#[test]
fn spares_stay_while_a_holder_does_not_prove_it_holds_them() {
    let mut cfg = config();
    cfg.hold_audit_interval_ms = None;
    cfg.cluster_size_max = 6;
    let (mut net, members) = formed(4, cfg.clone(), 12, BLOCKS);
    net.run_until(20_000);
    let late = net.add(cfg, 12);
    net.hollow[late] = Some(HashSet::new());
    net.muted.push((late, "hold_proof"));
    net.introduce_all();
    net.run_until(net.now_ms + 120_000);
    let late_id = net.id(late);
    assert!(view_ids(&net, members[0]).contains(&late_id));
    let mut kept = 0;
    for &i in &members {
        let spares = net.nodes[i].spare_proofs();
        for (height, holders, proved) in &spares {
            assert!(proved < holders, "block {height} of member {i}");
            assert!(
                net.nodes[late].must_hold(*height),
                "block {height} waits for the liar"
            );
        }
        kept += spares.len();
        assert_eq!(net.nodes[i].stats().spares_evicted, 0, "member {i}");
    }
    let taken = (0..BLOCKS)
        .filter(|h| net.nodes[late].must_hold(*h))
        .count();
    assert!(taken > 0);
    assert_eq!(
        kept, taken,
        "each block the newcomer took stays where it was"
    );
    let unanswered: u64 = members
        .iter()
        .map(|i| net.nodes[*i].stats().hold_challenges_unanswered)
        .sum();
    assert!(unanswered > 0);
    // Every block is still on P members that have it.
    let mut all = members.clone();
    all.push(late);
    assert!(net.true_copies(&all).iter().all(|c| *c >= 3));
}

/// A `HolderFaulty` from a mate drops the member it names and keeps it out: its views are
/// refused and its join requests denied. One from outside the view changes nothing.
#[test]
fn a_faulty_report_from_a_mate_drops_and_keeps_out() {
    let (mut net, members) = formed(4, config(), 13, BLOCKS);
    net.run_until(20_000);
    let (a, b, c) = (members[0], members[1], members[2]);
    let cluster = net.nodes[a].cluster().unwrap().0;
    let (b_id, c_id) = (net.id(b), net.id(c));
    let before = view_ids(&net, a);
    net.inject(
        a,
        NodeId::from_seed(515_151),
        Message::HolderFaulty {
            cluster,
            member: c_id,
        },
    );
    net.run_until(net.now_ms + 10);
    assert_eq!(
        view_ids(&net, a),
        before,
        "an outsider's word changes nothing"
    );
    net.inject(
        a,
        b_id,
        Message::HolderFaulty {
            cluster,
            member: c_id,
        },
    );
    net.run_until(net.now_ms + 10);
    assert!(!view_ids(&net, a).contains(&c_id));
    assert!(net.nodes[a].shared.is_banned(&c_id));
    assert_eq!(net.nodes[a].stats().faulty_reports_taken, 1);
    // The others follow a's view; c, left out, re-adds itself to it and is refused by all.
    net.run_until(net.now_ms + 10_000);
    for i in [a, b, members[3]] {
        assert!(!view_ids(&net, i).contains(&c_id), "node {i}");
    }
    let refused_before = net.nodes[a].stats().views_refused;
    let view = net.nodes[a].view().unwrap().clone();
    let mut members_with_c = view.members.clone();
    members_with_c.push(crate::wire::MemberInfo {
        id: c_id,
        address: String::new(),
        segment: 0,
        capacity_bytes: 0,
        device: crate::placement::own_device(&c_id),
    });
    members_with_c.sort_by_key(|m| m.id);
    net.inject(
        a,
        c_id,
        Message::View(crate::wire::View {
            epoch: view.epoch + 1,
            members: members_with_c,
            ..view
        }),
    );
    net.keep_kind = Some("join_denied");
    net.inject(
        a,
        c_id,
        Message::JoinRequest {
            request_id: 9,
            address: String::new(),
            record: crate::testnet::record(0, 0),
        },
    );
    net.run_until(net.now_ms + 10);
    assert_eq!(net.nodes[a].stats().views_refused, refused_before + 1);
    assert!(net
        .kept
        .iter()
        .any(|(_, from, to, _)| *from == a && *to == c));
}

/// A spare's retry that falls due while this member is still fetching waits for the fetching
/// to end: it does not set the repair timer to now, which would fire it again and again at the
/// same moment (a livelock the simulator's sweep found).
#[test]
fn a_retry_due_while_fetching_leaves_the_timer_alone() {
    let mut config = config();
    config.hold_audit_interval_ms = None;
    let (mut net, members) = formed(4, config, 21, BLOCKS);
    net.run_until(20_000);
    assert!(net.nodes[members[0]].repair.holding.out.is_empty());
    let node = &mut net.nodes[members[0]];
    node.repair.retry_later(&mut node.shared, 5, 1);
    node.shared.now_ms += 10 * node.shared.config.repair_retry_ms;
    // Busy: a fetch is queued.
    node.repair.queue.push_back(super::super::Job {
        height: 0,
        attempts: 0,
        order: 0,
        rounds: 0,
    });
    node.repair.settle_spares(&mut node.shared);
    let now = node.shared.now_ms;
    let due = node.repair.holding_due(&node.shared);
    assert!(due.is_none_or(|at| at > now), "{due:?} at {now}");
}
