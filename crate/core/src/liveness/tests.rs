//! Liveness (S9, S10) and view convergence after crashes and partitions.

use crate::node::{Config, Event, HeartbeatMode, TimerId};
use crate::testnet::Net;
use crate::testnet::{fast_config, formed};

fn crashed_member_is_dropped(mode: HeartbeatMode) {
    let config = Config {
        heartbeat_mode: mode,
        cluster_size_target: 2,
        ..fast_config()
    };
    let (mut net, members) = formed(6, config, 11, 10);
    let victim = members[2];
    net.crash(victim);
    net.run_until(20_000);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1);
    let survivors = clusters.into_values().next().unwrap();
    assert_eq!(survivors.len(), members.len() - 1);
    assert!(!survivors.contains(&victim));
    let victim_id = net.id(victim);
    assert!(survivors.iter().all(|i| {
        net.nodes[*i]
            .cluster()
            .unwrap()
            .2
            .iter()
            .all(|id| *id != victim_id)
    }));
    let declared = survivors
        .iter()
        .filter(|i| net.events[**i].contains(&Event::MemberOffline { member: victim_id }))
        .count();
    assert!(declared >= 1);
}

/// S9: heartbeats to all members; a crashed member is declared offline and every survivor
/// converges on one view without it.
#[test]
fn heartbeat_all_detects_a_crash() {
    crashed_member_is_dropped(HeartbeatMode::All);
}

/// S10: heartbeats to numbered neighbours only, detection on the receiving side.
#[test]
fn heartbeat_neighbours_detects_a_crash() {
    crashed_member_is_dropped(HeartbeatMode::Neighbours { per_side: 1 });
}

/// S10: neighbour heartbeats send fewer pings than heartbeats to all.
#[test]
fn neighbour_heartbeats_send_fewer_pings() {
    let pings = |mode| {
        let config = Config {
            heartbeat_mode: mode,
            ..fast_config()
        };
        let (mut net, members) = formed(7, config, 12, 5);
        let before: u64 = members
            .iter()
            .map(|i| net.nodes[*i].stats().pings_sent)
            .sum();
        net.run_until(20_000);
        let after: u64 = members
            .iter()
            .map(|i| net.nodes[*i].stats().pings_sent)
            .sum();
        after - before
    };
    let all = pings(HeartbeatMode::All);
    let neighbours = pings(HeartbeatMode::Neighbours { per_side: 1 });
    assert!(neighbours * 2 < all, "neighbours {neighbours}, all {all}");
}

/// S9/S10: `Node::watched_members` names every other member, or the numbered neighbours on
/// either side, in member-number order.
#[test]
fn a_member_watches_every_member_or_its_numbered_neighbours() {
    for (mode, expected) in [
        (HeartbeatMode::All, 4),
        (HeartbeatMode::Neighbours { per_side: 1 }, 2),
    ] {
        let config = Config {
            heartbeat_mode: mode,
            ..fast_config()
        };
        let (net, members) = formed(5, config, 12, 5);
        for &i in &members {
            let node = &net.nodes[i];
            let (_, _, ids) = node.cluster().expect("a member");
            let number = node.member_number().unwrap();
            let watched = node.watched_members();
            assert_eq!(watched.len(), expected, "{mode:?}");
            assert!(!watched.contains(&node.id()));
            if expected == 2 {
                let k = ids.len();
                let mut neighbours = vec![ids[(number + 1) % k], ids[(number + k - 1) % k]];
                neighbours.sort_by_key(|id| ids.iter().position(|x| x == id));
                assert_eq!(watched, neighbours);
            }
        }
    }
}

/// After a partition heals, every member ends on one view and views stop changing: no two
/// members keep repairing against each other's views.
#[test]
fn views_converge_after_a_partition() {
    for seed in 20..24 {
        let config = Config {
            cluster_size_target: 2,
            ..fast_config()
        };
        let (mut net, members) = formed(6, config, seed, 10);
        for (k, i) in members.iter().enumerate() {
            net.group[*i] = (k % 2) as u8;
        }
        net.group[0] = 0;
        net.run_until(20_000);
        for g in net.group.iter_mut() {
            *g = 0;
        }
        net.run_until(40_000);
        let clusters = net.check_clusters();
        let adopted =
            |net: &Net| -> u64 { net.nodes.iter().map(|n| n.stats().views_adopted).sum() };
        let settled = adopted(&net);
        net.run_until(60_000);
        assert_eq!(adopted(&net), settled, "seed {seed}: views still changing");
        // check_clusters asserted one view per cluster id: the two halves' views of the
        // original cluster were reconciled, and every former member is in exactly one cluster
        // or ordinary.
        assert!(!clusters.is_empty());
        let in_clusters: usize = clusters.values().map(Vec::len).sum();
        assert!(in_clusters <= members.len());
    }
}

/// A member that restarts without its cluster state (a reload) answers heartbeats as an
/// ordinary node; its old cluster drops it at once instead of listing it until a timeout.
#[test]
fn a_member_that_restarts_is_dropped_at_once() {
    let (mut net, members) = formed(5, fast_config(), 41, 10);
    let x = members[1];
    net.crash(x);
    net.run_until(10_300);
    net.restart(x, fast_config(), 77);
    // Well inside offline_after_ms (2 s) of the crash.
    net.run_until(11_500);
    let x_id = net.id(x);
    for i in members.iter().filter(|i| **i != x) {
        let (_, _, ids) = net.nodes[*i].cluster().unwrap();
        assert!(
            !ids.contains(&x_id),
            "node {i} still lists the restarted member"
        );
    }
    net.check_clusters();
    net.check_exclusive();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Hostile peers: any sequence of well-formed but arbitrary messages, from members or
    /// strangers, never panics a member, and never breaks the members' agreement on the view.
    #[test]
    fn arbitrary_messages_never_panic_a_member(
        messages in proptest::collection::vec(
            (0usize..3, crate::wire::tests::message()),
            1..40,
        ),
    ) {
        let (mut net, members) = formed(4, fast_config(), 40, 20);
        let stranger = crate::node::NodeId::from_seed(u64::MAX);
        for (k, (who, message)) in messages.into_iter().enumerate() {
            let to = members[k % members.len()];
            let from = match who {
                0 => stranger,
                1 => net.id(members[(k + 1) % members.len()]),
                _ => net.id(0),
            };
            net.inject(to, from, message);
        }
        net.run_until(20_000);
        net.check_clusters();
    }
}

/// Forms one cluster of six (seed `seed`), splits its members in two halves (the archive with
/// the first) from 10 s to `heal_ms`, checks that each side dropped the other, heals, and runs
/// `after_ms` more. Returns the network, the members and the cluster's id.
fn split_then_heal(
    seed: u64,
    heal_ms: u64,
    after_ms: u64,
) -> (Net, Vec<usize>, crate::cluster::ClusterId) {
    let config = Config {
        cluster_size_target: 2,
        ..fast_config()
    };
    let (mut net, members) = formed(6, config, seed, 10);
    let (cluster, _, _) = net.nodes[members[0]].cluster().unwrap();
    for (k, i) in members.iter().enumerate() {
        net.group[*i] = (k % 2) as u8;
    }
    net.group[0] = 0;
    net.run_until(heal_ms);
    let split = members
        .iter()
        .filter(|i| net.nodes[**i].cluster().unwrap().2.len() < members.len())
        .count();
    assert_eq!(split, members.len(), "seed {seed}: both sides shrank");
    for g in net.group.iter_mut() {
        *g = 0;
    }
    net.run_until(heal_ms + after_ms);
    (net, members, cluster)
}

/// A partition splits a cluster and each side declares the other offline; once it heals, the
/// members left out of the greater view add themselves back, so the cluster ends whole — one
/// view listing every member — instead of one side dropping the other.
#[test]
fn a_healed_partition_merges_both_sides_into_one_view() {
    for seed in 20..24 {
        let (net, members, cluster) = split_then_heal(seed, 20_000, 20_000);
        let clusters = net.check_clusters();
        assert_eq!(
            clusters.get(&cluster).map(Vec::len),
            Some(members.len()),
            "seed {seed}: {clusters:?}"
        );
        let rejoined: u64 = members
            .iter()
            .map(|i| net.nodes[*i].stats().views_rejoined)
            .sum();
        assert!(rejoined > 0, "seed {seed}");
    }
}

/// The two sides of a partition find each other again however long it lasted while the
/// cluster id lives: departed members are pinged on a back-off until the id lapses, not only
/// for a fixed window after they left (here the partition lasts 20 times that window).
#[test]
fn a_long_partition_still_heals_into_one_view() {
    let window_ms = 10 * fast_config().offline_after_ms;
    for seed in 20..23 {
        let (net, members, cluster) =
            split_then_heal(seed, 10_000 + 20 * window_ms, 20 * window_ms);
        let clusters = net.check_clusters();
        assert_eq!(
            clusters.get(&cluster).map(Vec::len),
            Some(members.len()),
            "seed {seed}: {clusters:?}"
        );
    }
}

/// A settled cluster's heartbeats are pings only: within one view heartbeat targets are
/// symmetric, so each member already hears every member it watches through that member's own
/// pings, and a pong would double the traffic. Only the coordinator of a cluster below its
/// target size (it recruits, S12) keeps a formation tick; the other members keep none.
#[test]
fn a_settled_cluster_sends_no_pongs_and_keeps_no_formation_tick() {
    for mode in [
        HeartbeatMode::All,
        HeartbeatMode::Neighbours { per_side: 1 },
    ] {
        let config = Config {
            heartbeat_mode: mode,
            ..fast_config()
        };
        let target = config.cluster_size_target;
        let (mut net, members) = formed(6, config, 13, 5);
        net.run_until(20_000);
        let count = |net: &Net, kind: &str| net.by_kind.get(kind).copied().unwrap_or(0);
        let ticks = |net: &Net, i: usize| {
            net.timers_set[i]
                .get(&TimerId::Formation)
                .copied()
                .unwrap_or(0)
        };
        let before: Vec<u64> = members.iter().map(|i| ticks(&net, *i)).collect();
        let (pings, pongs) = (count(&net, "ping"), count(&net, "pong"));
        net.run_until(40_000);
        assert!(
            count(&net, "ping") > pings + 20,
            "{mode:?}: heartbeats go on"
        );
        assert_eq!(
            count(&net, "pong"),
            pongs,
            "{mode:?}: pongs in a settled view"
        );
        for (k, i) in members.iter().enumerate() {
            let recruiting = net.nodes[*i].member_number() == Some(0) && members.len() < target;
            let set = ticks(&net, *i) - before[k];
            assert_eq!(set > 0, recruiting, "{mode:?}: member {i} set {set} ticks");
        }
    }
}

/// A view change tells peers outside the cluster of its room only when what they read from it
/// changes (room for a join request; at least P members), and never tells the members
/// themselves: a member lost from a cluster that still has room and P members sends no hello
/// at all, and the loss that takes it below P is told to the peers outside, not to the
/// survivors.
#[test]
fn a_view_change_announces_room_only_when_outsiders_read_it_differently() {
    let config = Config {
        cluster_size_target: 2,
        undersized_leave_after_ms: None,
        ..fast_config()
    };
    let replicas = config.replicas;
    let (mut net, members) = formed(6, config, 14, 5);
    net.run_until(15_000);
    assert!(members.len() > replicas, "{members:?}");
    let hellos = |net: &Net| net.hellos_to.iter().sum::<u64>();
    let mut alive = members.clone();
    while alive.len() > replicas {
        let before = hellos(&net);
        net.crash(alive.remove(1));
        let until = net.now_ms + 10_000;
        net.run_until(until);
        let survivors = net.check_clusters().into_values().next().unwrap();
        assert_eq!(survivors.len(), alive.len());
        assert_eq!(
            hellos(&net),
            before,
            "room and P unchanged: nobody needs a hello"
        );
    }
    let before = net.hellos_to.clone();
    net.crash(alive.remove(1));
    let until = net.now_ms + 10_000;
    net.run_until(until);
    let survivors = net.check_clusters().into_values().next().unwrap();
    assert_eq!(survivors.len(), replicas - 1);
    let told: Vec<usize> = (0..net.nodes.len())
        .filter(|i| net.hellos_to[*i] > before[*i])
        .collect();
    assert!(
        !told.is_empty(),
        "the peers outside hear that P is no longer kept"
    );
    assert!(
        told.iter().all(|i| !survivors.contains(i)),
        "{told:?} {survivors:?}"
    );
}

/// The allocation-free membership test answers exactly like the list of watched members.
#[test]
fn watches_agrees_with_monitored() {
    for k in 1..12 {
        for per_side in 0..7 {
            for mode in [HeartbeatMode::All, HeartbeatMode::Neighbours { per_side }] {
                for number in 0..k {
                    let list = crate::liveness::Liveness::monitored(mode, number, k);
                    for other in 0..k + 1 {
                        assert_eq!(
                            crate::liveness::Liveness::watches(mode, number, k, other),
                            list.contains(&other),
                            "{mode:?} k {k} number {number} other {other}"
                        );
                    }
                }
            }
        }
    }
}

/// Whether the survivors (every member but `gone`) have all declared `victim` offline.
fn all_declared(net: &Net, members: &[usize], gone: &[usize], victim: usize) -> bool {
    let id = net.id(victim);
    members
        .iter()
        .filter(|i| !gone.contains(i))
        .all(|i| net.nodes[*i].cluster().is_some_and(|c| !c.2.contains(&id)))
}

/// A member that falls silent just before the view changes for another reason is declared
/// offline `offline_after_ms` after its last heartbeat: the view change does not restart the
/// clock of members that were already watched (repair may have made it a new holder meanwhile).
#[test]
fn a_view_change_does_not_restart_the_silence_of_a_watched_member() {
    for mode in [
        HeartbeatMode::All,
        HeartbeatMode::Neighbours { per_side: 2 },
    ] {
        let config = Config {
            heartbeat_mode: mode,
            ..fast_config()
        };
        let (mut net, members) = formed(6, config.clone(), 21, 5);
        let (first, second) = (members[1], members[3]);
        net.crash(first);
        net.run_until(11_000);
        // `first` is declared offline by 12 s; `second`, silent since 11 s, by 13 s, not before
        // 12.5 s (its last heartbeat may have left half an interval before it crashed).
        net.crash(second);
        net.run_until(12_400);
        assert!(
            all_declared(&net, &members, &[first, second], first),
            "{mode:?}"
        );
        assert!(
            !all_declared(&net, &members, &[first, second], second),
            "{mode:?}: too early"
        );
        // Its last heartbeat reached the others by 11 s: offline by 13 s plus the latency, not
        // 2 s after the view change that dropped `first`.
        net.run_until(11_000 + config.offline_after_ms + 100);
        assert!(
            all_declared(&net, &members, &[first, second], second),
            "{mode:?}"
        );
    }
}

/// Detection does not wait for the heartbeat tick: a silent member is declared offline when
/// its silence passes `offline_after_ms`, whatever the tick's phase.
#[test]
fn a_silent_member_is_declared_offline_on_time() {
    for seed in 30..36 {
        let config = Config {
            heartbeat_mode: HeartbeatMode::Neighbours { per_side: 1 },
            ..fast_config()
        };
        let (mut net, members) = formed(5, config.clone(), seed, 5);
        let victim = members[2];
        net.crash(victim);
        net.run_until(10_000 + config.offline_after_ms + 60);
        assert!(
            all_declared(&net, &members, &[victim], victim),
            "seed {seed}: not yet declared"
        );
    }
}

/// Every member's heartbeats carry its shard report: once the shards are filled, each member
/// sees every other's held blocks and stored bytes as that member counts them, that it
/// confirmed its shard (`ShardHeld`), and when it last heard from it; the placement a member
/// computes for a height names exactly the members that hold it.
#[test]
fn members_see_each_others_shard_reports_confirmations_and_placement() {
    let config = Config {
        cluster_size_target: 4,
        replicas: 2,
        ..fast_config()
    };
    let (mut net, members) = formed(4, config, 21, 40);
    for &i in &members {
        let held = net.nodes[i].held_count() as u64;
        net.nodes[i].set_stored_bytes(1_000 * held + i as u64);
    }
    net.run_until(30_000);
    let now = 30_000;
    for &i in &members {
        let details = net.nodes[i].member_details();
        assert_eq!(details.len(), members.len());
        for d in &details {
            let j = *members.iter().find(|&&j| net.id(j) == d.id).unwrap();
            let report = d.report.expect("every member reports");
            assert_eq!(report.held_blocks as usize, net.nodes[j].held_count());
            assert_eq!(report.missing_blocks, 0);
            assert!(d.shard_held, "member {j} confirmed its shard to {i}");
            if j == i {
                assert_eq!(d.last_heard_ms, None);
                assert_eq!(d.number, net.nodes[i].member_number().unwrap());
            } else {
                // The stored bytes set above reached the others by a later heartbeat.
                assert_eq!(
                    report.stored_bytes,
                    1_000 * report.held_blocks as u64 + j as u64
                );
                let heard = d.last_heard_ms.expect("a watched member");
                assert!(now - heard <= 2 * 500, "heard from {j} at {heard}");
            }
        }
        for height in 0..40 {
            let mut holders = net.nodes[i].placement_holders(height).unwrap();
            assert_eq!(holders.len(), 2);
            holders.sort_unstable();
            let mut actual: Vec<usize> = members
                .iter()
                .filter(|&&j| net.nodes[j].holds(height))
                .map(|&j| net.nodes[j].member_number().unwrap())
                .collect();
            actual.sort_unstable();
            assert_eq!(holders, actual, "height {height} as member {i} places it");
        }
        assert_eq!(net.nodes[i].placement_holders(40), None, "above the tip");
    }
    // An ordinary node (the archive) has no view: no details, no placement.
    assert!(net.nodes[0].member_details().is_empty());
    assert_eq!(net.nodes[0].placement_holders(1), None);
}

/// The two sides of a partition may run many epochs apart (here one side is pushed
/// `5 × VIEW_EPOCH_STEP_MAX` ahead); no view moves a member more than that step, yet once the
/// partition heals the side behind catches up step by step and the cluster ends whole, on one
/// view.
#[test]
fn a_partition_whose_sides_ran_epochs_apart_still_heals() {
    use crate::cluster::VIEW_EPOCH_STEP_MAX;
    for seed in 20..23 {
        let config = Config {
            cluster_size_target: 2,
            ..fast_config()
        };
        let (mut net, members) = formed(6, config, seed, 10);
        let (cluster, start_epoch, _) = net.nodes[members[0]].cluster().unwrap();
        let sides: Vec<Vec<usize>> = (0..2)
            .map(|g| {
                members
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| k % 2 == g)
                    .map(|(_, i)| *i)
                    .collect()
            })
            .collect();
        for (k, i) in members.iter().enumerate() {
            net.group[*i] = (k % 2) as u8;
        }
        net.group[0] = 0;
        net.run_until(20_000);
        // Side 0 runs ahead: a member of it sends another its view at a far greater epoch,
        // five times; each moves the side one step.
        let (a, b) = (sides[0][0], sides[0][1]);
        for _ in 0..5 {
            let view = net.nodes[b].shared.membership().unwrap().view.clone();
            let ahead = crate::wire::View {
                epoch: view.epoch + 10 * VIEW_EPOCH_STEP_MAX,
                ..view
            };
            let b_id = net.id(b);
            net.inject(a, b_id, crate::wire::Message::View(ahead));
            net.run_until(net.now_ms + 3_000);
        }
        let epoch = |net: &Net, i: usize| net.nodes[i].cluster().unwrap().1;
        let gap = epoch(&net, a) - epoch(&net, sides[1][0]);
        assert!(
            gap >= 4 * VIEW_EPOCH_STEP_MAX,
            "seed {seed}: sides {gap} epochs apart"
        );
        for g in net.group.iter_mut() {
            *g = 0;
        }
        net.run_until(net.now_ms + 30_000);
        let clusters = net.check_clusters();
        assert_eq!(
            clusters.get(&cluster).map(Vec::len),
            Some(members.len()),
            "seed {seed}: {clusters:?}"
        );
        let capped: u64 = sides[1]
            .iter()
            .map(|i| net.nodes[*i].stats().view_epochs_capped)
            .sum();
        assert!(
            capped > 0,
            "seed {seed}: the side behind caught up in steps"
        );
        assert!(epoch(&net, a) < start_epoch + 20 * VIEW_EPOCH_STEP_MAX);
    }
}
