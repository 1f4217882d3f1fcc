//! Cluster forming (S1–S5): unit tests of the id and numbering, and runs of small networks.

use super::*;
use crate::node::{Config, Event};
use crate::testnet::Net;
use crate::wire::{ClusterGenesis, MemberInfo, View};

pub(crate) fn fast_config() -> Config {
    Config {
        formation_interval_ms: 1_000,
        invite_timeout_ms: 300,
        invite_collect_ms: 50,
        accept_timeout_ms: 1_000,
        heartbeat_interval_ms: 500,
        offline_after_ms: 2_000,
        repair_request_timeout_ms: 500,
        repair_retry_ms: 1_000,
        repair_interval_ms: 100,
        ..Config::default()
    }
}

fn archive_config() -> Config {
    Config {
        archive: true,
        ..fast_config()
    }
}

/// An archive (node 0, holding `blocks` blocks) and `n` ordinary nodes, all introduced.
pub(crate) fn network(n: usize, blocks: u32, config: Config, seed: u64) -> Net {
    let mut configs = vec![archive_config()];
    configs.extend(std::iter::repeat_n(config, n));
    let mut net = Net::new(configs, blocks, seed);
    net.feed_blocks(0);
    net.introduce_all();
    net
}

fn view_of(founders: &[u64], proposer: usize, generation: u64) -> View {
    let mut ids: Vec<NodeId> = founders.iter().map(|s| NodeId::from_seed(*s)).collect();
    ids.sort();
    let genesis = ClusterGenesis {
        proposer: ids[proposer],
        generation,
        founders: ids.clone(),
    };
    View {
        cluster: cluster_id(&genesis),
        genesis,
        epoch: 0,
        members: ids
            .iter()
            .map(|id| MemberInfo {
                id: *id,
                address: String::new(),
                segment: 0,
                capacity_bytes: 0,
            })
            .collect(),
        expires_in_ms: 1_000,
    }
}

/// S4: the id is a hash over members, generation and proposer; every member verifies it.
#[test]
fn cluster_id_is_checked_by_every_receiver() {
    let view = view_of(&[1, 2, 3], 0, 0);
    assert_eq!(check_view(&view, 8), Ok(()));
    let mut forged = view.clone();
    forged.genesis.generation = 1;
    assert_eq!(check_view(&forged, 8), Err(ViewError::IdMismatch));
    let mut forged = view.clone();
    forged.genesis.proposer = view.genesis.founders[1];
    assert_eq!(check_view(&forged, 8), Err(ViewError::IdMismatch));
    let mut forged = view.clone();
    forged.genesis.founders.swap(0, 1);
    assert_eq!(check_view(&forged, 8), Err(ViewError::NotSorted));
    assert!(matches!(
        check_view(&view, 2),
        Err(ViewError::TooLarge { .. })
    ));
    // A different member set gives a different id.
    assert_ne!(view.cluster, view_of(&[1, 2, 4], 0, 0).cluster);
}

/// S5: numbers follow from the cluster id and member ids alone, whatever order they come in,
/// and differ between clusters.
#[test]
fn numbering_is_deterministic() {
    let ids: Vec<NodeId> = (0..8).map(NodeId::from_seed).collect();
    let cluster = ClusterId([7; 32]);
    let order = numbering(&cluster, &ids);
    let numbered: Vec<NodeId> = order.iter().map(|i| ids[*i]).collect();
    let mut shuffled = ids.clone();
    shuffled.reverse();
    let again: Vec<NodeId> = numbering(&cluster, &shuffled)
        .iter()
        .map(|i| shuffled[*i])
        .collect();
    assert_eq!(numbered, again);
    let other: Vec<NodeId> = numbering(&ClusterId([8; 32]), &ids)
        .iter()
        .map(|i| ids[*i])
        .collect();
    assert_ne!(numbered, other);
}

/// S1–S3, S5: a handful of connected nodes form one cluster that every member agrees on.
#[test]
fn connected_nodes_form_one_cluster() {
    let mut net = network(5, 30, fast_config(), 1);
    net.run_until(10_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let members = clusters.values().next().unwrap();
    assert_eq!(members.len(), 5, "the archive never joins; the 5 others do");
    assert!(!members.contains(&0));
    // S5: every member has a distinct number 0..K.
    let mut numbers: Vec<usize> = members
        .iter()
        .map(|i| net.nodes[*i].member_number().unwrap())
        .collect();
    numbers.sort();
    assert_eq!(numbers, (0..5).collect::<Vec<_>>());
    // Exactly one formed it (S2); invitations were sent (S1).
    let formed: u64 = net.nodes.iter().map(|n| n.stats().clusters_formed).sum();
    assert_eq!(formed, 1);
    assert!(net.nodes.iter().any(|n| n.stats().invitations_sent > 0));
}

/// S2: never more than cluster_size_max members; many nodes make several clusters, and
/// crossing invitations never leave a node in two clusters.
#[test]
fn many_nodes_form_bounded_clusters_and_nobody_is_in_two() {
    for seed in 0..6 {
        let config = Config {
            cluster_size_max: 4,
            cluster_size_target: 3,
            ..fast_config()
        };
        let mut net = network(23, 20, config, 100 + seed);
        for t in 1..=40 {
            net.run_until(t * 500);
            net.check_clusters();
        }
        let clusters = net.check_clusters();
        net.check_exclusive();
        let in_cluster: usize = clusters.values().map(Vec::len).sum();
        assert!(
            clusters.len() >= 5,
            "seed {seed}: {} clusters",
            clusters.len()
        );
        assert!(
            in_cluster >= 20,
            "seed {seed}: only {in_cluster} of 23 in clusters"
        );
        for members in clusters.values() {
            assert!(members.len() <= 4);
        }
    }
}

/// S2: an inviter with fewer than form_with_accepts confirmations forms nothing.
#[test]
fn too_few_acceptances_form_nothing() {
    let config = Config {
        invite_after_peers: 1,
        form_with_accepts: 3,
        ..fast_config()
    };
    // Three ordinary nodes: each can get at most 2 confirmations.
    let mut net = network(3, 10, config, 7);
    net.run_until(20_000);
    assert!(net.check_clusters().is_empty());
}

/// S4: when the id lapses the members become ordinary and re-form, preferring the same
/// members; with the default placement re-forming with the same members moves no block.
#[test]
fn clusters_expire_and_re_form_with_the_same_members() {
    let config = Config {
        cluster_ttl_ms: 20_000,
        ..fast_config()
    };
    let mut net = network(4, 40, config, 3);
    net.run_until(15_000);
    let first = net.check_clusters();
    assert_eq!(first.len(), 1);
    let (first_id, first_members) = first.into_iter().next().unwrap();
    let fetched_before: u64 = net.nodes.iter().map(|n| n.stats().blocks_fetched).sum();
    assert!(
        fetched_before > 0,
        "members filled their shards from the archive"
    );
    net.run_until(30_000);
    let second = net.check_clusters();
    assert_eq!(second.len(), 1, "{second:?}");
    let (second_id, second_members) = second.into_iter().next().unwrap();
    assert_ne!(first_id, second_id, "a new id after expiry");
    let mut a = first_members.clone();
    let mut b = second_members.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "re-formed with the same members");
    assert!(net.events[a[0]]
        .iter()
        .any(|e| matches!(e, Event::LeftCluster { expired: true, .. })));
    let after_reform: u64 = net
        .nodes
        .iter()
        .map(|n| n.stats().blocks_fetched_after_reform)
        .sum();
    assert_eq!(
        after_reform, 0,
        "same members, rendezvous placement: nothing moves"
    );
}

/// S4: re-formation under a rule that depends on member numbers (the patent's hash rule)
/// moves blocks, because the new cluster id renumbers the members; the counters measure it.
#[test]
fn re_forming_under_the_hash_rule_moves_blocks_and_is_counted() {
    let config = Config {
        cluster_ttl_ms: 20_000,
        placement: crate::placement::PlacementRule::HashMod { offset: 0 },
        ..fast_config()
    };
    let mut net = network(5, 60, config, 4);
    net.run_until(35_000);
    assert_eq!(net.check_clusters().len(), 1);
    let moved: u64 = net
        .nodes
        .iter()
        .map(|n| n.stats().bytes_fetched_after_reform)
        .sum();
    assert!(moved > 0, "renumbering after re-formation moves blocks");
}

/// Not a test: a timing probe of the node at scale (`cargo test --release -- --ignored
/// scale_probe --nocapture`). Timings belong in benchmarks; this prints, it asserts nothing
/// about speed.
#[test]
#[ignore]
fn scale_probe() {
    let n: usize = std::env::var("PROBE_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let hours: u64 = std::env::var("PROBE_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let config = Config {
        heartbeat_interval_ms: 30_000,
        offline_after_ms: 120_000,
        max_peers: 8,
        ..Config::default()
    };
    let archive = Config {
        peer_table_max: n + 1,
        max_peers: 0,
        ..archive_config()
    };
    let mut configs = vec![archive];
    configs.extend(std::iter::repeat_n(config, n));
    let mut net = Net::new(configs, 200, 9);
    net.count_bytes = false;
    net.feed_blocks(0);
    // A directory that hands each node 12 random-ish candidates.
    let ids: Vec<_> = (0..=n).map(|i| net.id(i)).collect();
    net.introduce_some(&ids, 12);
    let start = std::time::Instant::now();
    net.run_until(hours * 3_600_000);
    let clusters = net.check_clusters();
    let in_clusters: usize = clusters.values().map(Vec::len).sum();
    println!(
        "{n} nodes, {hours} h: {:?} wall, {} messages, {} clusters holding {in_clusters} nodes",
        start.elapsed(),
        net.messages,
        clusters.len()
    );
    println!("{:?}", net.by_kind);
}

/// Two clusters of four (P = 3) from eight nodes and an archive: nobody is left to recruit.
fn two_clusters(config: Config, seed: u64) -> (Net, Vec<usize>, Vec<usize>) {
    let config = Config {
        cluster_size_max: 4,
        cluster_size_target: 4,
        ..config
    };
    let mut net = network(8, 20, config, seed);
    net.run_until(10_000);
    let mut clusters: Vec<Vec<usize>> = net.check_clusters().into_values().collect();
    for members in clusters.iter_mut() {
        members.sort();
    }
    clusters.sort();
    let sizes: Vec<usize> = clusters.iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4], "seed {seed}: {clusters:?}");
    let second = clusters.pop().expect("two");
    let first = clusters.pop().expect("two");
    (net, first, second)
}

/// Two clusters of four (seed `seed`, undersized clusters dissolve after 5 s); at 20 s two
/// members of the first crash, leaving it below P. Returns the network, the two survivors and
/// the other cluster's members.
fn one_cluster_below_p(seed: u64) -> (Net, Vec<usize>, Vec<usize>) {
    let config = Config {
        undersized_leave_after_ms: Some(5_000),
        ..fast_config()
    };
    let (mut net, shrinking, other) = two_clusters(config, seed);
    net.run_until(20_000);
    let (survivors, victims) = shrinking.split_at(2);
    for v in victims {
        net.crash(*v);
    }
    (net, survivors.to_vec(), other)
}

/// A cluster left with fewer than P members and nobody to recruit dissolves once it has been
/// undersized for `undersized_leave_after_ms` while another cluster with P members is
/// reachable: every member becomes ordinary (free to join a cluster with room) and keeps its
/// stored blocks; the other cluster is untouched.
#[test]
fn an_undersized_cluster_without_recruits_dissolves_and_keeps_its_blocks() {
    let (mut net, survivors, other) = one_cluster_below_p(51);
    let stored: Vec<usize> = survivors.iter().map(|s| net.stores[*s].len()).collect();
    net.run_until(25_000);
    for s in &survivors {
        let (_, _, ids) = net.nodes[*s].cluster().expect("still a member, undersized");
        assert_eq!(ids.len(), 2);
    }
    net.run_until(45_000);
    for (k, s) in survivors.iter().enumerate() {
        assert!(net.nodes[*s].cluster().is_none(), "node {s} left");
        assert!(net.events[*s]
            .iter()
            .any(|e| matches!(e, Event::LeftCluster { .. })));
        assert!(
            net.stores[*s].len() >= stored[k],
            "node {s} kept its blocks"
        );
    }
    let leaves: u64 = survivors
        .iter()
        .map(|s| net.nodes[*s].stats().undersized_leaves)
        .sum();
    assert!(leaves >= 1);
    let (_, _, ids) = net.nodes[other[0]]
        .cluster()
        .expect("the other cluster stays");
    assert_eq!(ids.len(), 4);
}

/// An undersized remnant cut off by a partition keeps its blocks — they may be the only
/// copies — however long the partition lasts, although its peer table still lists the other
/// cluster as connected: it dissolves only once a member of that cluster answers its ping,
/// after the partition heals.
#[test]
fn an_undersized_cluster_cut_off_from_the_others_dissolves_only_once_it_reaches_one() {
    let (mut net, survivors, _) = one_cluster_below_p(51);
    for s in &survivors {
        net.group[*s] = 1;
    }
    net.run_until(60_000);
    for s in &survivors {
        let (_, _, ids) = net.nodes[*s].cluster().expect("still a member, undersized");
        assert_eq!(ids.len(), 2);
        assert_eq!(net.nodes[*s].stats().undersized_leaves, 0);
    }
    for s in &survivors {
        net.group[*s] = 0;
    }
    net.run_until(90_000);
    let leaves: u64 = survivors
        .iter()
        .map(|s| net.nodes[*s].stats().undersized_leaves)
        .sum();
    assert!(leaves >= 1, "it dissolved once the other cluster answered");
}

/// The undersized clock runs from when the cluster first fell below P, across the views that
/// follow while it stays below: here the second survivor's link flaps (cut off 3 s of every
/// 4 s), so it is declared offline and adds itself back again and again, and no view lasts
/// `undersized_leave_after_ms`. The cluster still dissolves (before, the clock restarted with
/// every view and it never did).
#[test]
fn an_undersized_cluster_dissolves_even_while_its_view_keeps_changing() {
    let (mut net, survivors, _) = one_cluster_below_p(52);
    let flapper = survivors[1];
    let views_before = net.events[survivors[0]].len();
    let mut at = 23_000;
    while at < 43_000 {
        net.group[flapper] = 1;
        net.run_until(at + 3_000);
        net.group[flapper] = 0;
        net.run_until(at + 4_000);
        at += 4_000;
    }
    let view_changes = net.events[survivors[0]][views_before..]
        .iter()
        .filter(|e| matches!(e, Event::ViewChanged { .. }))
        .count();
    let leaves: u64 = survivors
        .iter()
        .map(|s| net.nodes[*s].stats().undersized_leaves)
        .sum();
    assert!(
        leaves >= 1,
        "the undersized cluster never dissolved ({view_changes} view changes)"
    );
}

/// … but an undersized cluster with no other cluster of P members in reach stays (and keeps
/// recruiting): dissolving would leave its blocks in no cluster at all.
#[test]
fn an_undersized_cluster_with_no_other_cluster_in_reach_stays() {
    let config = Config {
        undersized_leave_after_ms: Some(5_000),
        ..fast_config()
    };
    let (mut net, members) = crate::liveness::tests::formed(5, config, 51, 20);
    net.run_until(20_000);
    let (survivors, victims) = members.split_at(2);
    for v in victims {
        net.crash(*v);
    }
    net.run_until(60_000);
    for s in survivors {
        let (_, _, ids) = net.nodes[*s].cluster().expect("still a member, undersized");
        assert_eq!(ids.len(), 2);
        assert_eq!(net.nodes[*s].stats().undersized_leaves, 0);
    }
}
