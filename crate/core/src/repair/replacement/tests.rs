//! Replacement by invitation and by request (S12, S13), on small networks.

use crate::node::{Config, Event, NodeId, ReplacementChoice};
use crate::testnet::{all_replicated, fast_config, formed};

const BLOCKS: u32 = 120;

/// S12: after a member is lost the cluster invites an outsider (the invitation carries the
/// cluster id), takes it, renumbers, and the newcomer is filled.
#[test]
fn an_outsider_replaces_a_lost_member() {
    for choice in [ReplacementChoice::ReplyOrder, ReplacementChoice::Capacity] {
        let config = Config {
            cluster_size_max: 5,
            cluster_size_target: 5,
            replacement_choice: choice,
            ..fast_config()
        };
        // Six ordinary nodes: five form, one stays outside.
        let (mut net, members) = formed(6, config, 34, BLOCKS);
        assert_eq!(members.len(), 5);
        net.run_until(30_000);
        let outsider = (1..7).find(|i| !members.contains(i)).unwrap();
        assert!(net.nodes[outsider].cluster().is_none());
        let victim = members[2];
        net.crash(victim);
        net.run_until(70_000);
        let clusters = net.check_clusters();
        assert_eq!(clusters.len(), 1);
        let now: Vec<usize> = clusters.into_values().next().unwrap();
        assert!(now.contains(&outsider), "{choice:?}: the outsider joined");
        assert_eq!(now.len(), 5);
        all_replicated(&net, &now, 3);
        assert!(
            net.nodes[outsider].held_count() > 0,
            "the newcomer was filled"
        );
        assert!(net.events[outsider]
            .iter()
            .any(|e| matches!(e, Event::JoinedCluster { .. })));
    }
}

/// S13: a node that arrives later asks to join a cluster with room, is accepted and filled by
/// its numbered neighbours.
#[test]
fn a_late_node_asks_to_join() {
    let config = Config {
        cluster_size_max: 6,
        cluster_size_target: 4,
        ..fast_config()
    };
    let (mut net, members) = formed(4, config.clone(), 35, BLOCKS);
    net.run_until(30_000);
    let archive_served = net.nodes[0].stats().blocks_served;
    let late = net.add(config, 35);
    net.introduce_all();
    net.run_until(70_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1);
    let now: Vec<usize> = clusters.into_values().next().unwrap();
    assert!(now.contains(&late), "the late node joined by request");
    assert_eq!(now.len(), members.len() + 1);
    all_replicated(&net, &now, 3);
    assert!(net.nodes[late].held_count() > 0);
    assert_eq!(net.nodes[late].missing_count(), 0);
    // Filled by the members (nearest numbers first), not by the archive (node 0).
    assert_eq!(net.nodes[0].stats().blocks_served, archive_served);
    // Each member saw the newcomer enter its view, and the newcomer saw every member.
    let joined = |at: usize| -> Vec<NodeId> {
        net.events[at]
            .iter()
            .filter_map(|e| match e {
                Event::MemberJoined { member } => Some(*member),
                _ => None,
            })
            .collect()
    };
    let late_id = net.nodes[late].id();
    for m in &members {
        assert!(
            joined(*m).contains(&late_id),
            "member {m} saw the newcomer join"
        );
    }
    let mut seen = joined(late);
    seen.sort();
    let mut expected: Vec<NodeId> = members.iter().map(|m| net.nodes[*m].id()).collect();
    expected.sort();
    assert_eq!(seen, expected, "the newcomer saw each member once");
}

/// S13 at once: a node that cannot form a cluster asks a cluster with room to take it as soon
/// as it hears of the room (a member's `Hello`), before its first formation tick, and is in
/// the cluster by then.
#[test]
fn a_node_asks_to_join_as_soon_as_it_hears_of_room() {
    let config = Config {
        cluster_size_max: 6,
        cluster_size_target: 4,
        ..fast_config()
    };
    let (mut net, members) = formed(4, config.clone(), 35, BLOCKS);
    net.run_until(30_000);
    let asked_before = net.by_kind.get("join_request").copied().unwrap_or(0);
    let late = net.add(config.clone(), 35);
    net.introduce_all();
    // Its first formation tick is at least half a formation interval after its start.
    net.run_until(net.now_ms + config.formation_interval_ms / 2 - 1);
    let asked = net.by_kind.get("join_request").copied().unwrap_or(0) - asked_before;
    assert!(
        asked >= 1,
        "no join request before the first formation tick"
    );
    let clusters = net.check_clusters();
    let now = clusters.values().find(|m| m.contains(&late));
    assert_eq!(now.map(Vec::len), Some(members.len() + 1), "{clusters:?}");
}
