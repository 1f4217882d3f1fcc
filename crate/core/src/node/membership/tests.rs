//! Who may change a member's view (issue 16, hole 1): views from nodes that are not members
//! are refused, and no view moves a member more than `VIEW_EPOCH_STEP_MAX` epochs. Healing
//! after a partition whose sides ran epochs apart is tested in `liveness::tests`.

use crate::cluster::VIEW_EPOCH_STEP_MAX;
use crate::node::{Config, NodeId};
use crate::testnet::{all_replicated, fast_config, formed, Net};
use crate::wire::{MemberInfo, Message, View};

const BLOCKS: u32 = 60;
const EVICT_AFTER_MS: u64 = 20_000;

fn config() -> Config {
    Config {
        cluster_size_max: 8,
        cluster_size_target: 4,
        challenge_unclaimed_after_ms: Some(EVICT_AFTER_MS),
        ..fast_config()
    }
}

/// Node `i`'s current view.
fn view_of(net: &Net, i: usize) -> View {
    net.nodes[i].shared.membership().unwrap().view.clone()
}

fn info(id: NodeId) -> MemberInfo {
    MemberInfo {
        id,
        address: format!("/forged/{id:?}"),
        segment: 0,
        capacity_bytes: 1 << 30,
        device: crate::placement::own_device(&id),
    }
}

/// `view` with epoch `u64::MAX` and `extra` members added (sorted, as `check_view` wants):
/// what an attacker who learnt the view sends to make members renumber around ids of its own.
fn forged(view: &View, extra: &[NodeId]) -> View {
    let mut members = view.members.clone();
    members.extend(extra.iter().copied().map(info));
    members.sort_by_key(|m| m.id);
    View {
        epoch: u64::MAX,
        members,
        ..view.clone()
    }
}

/// An outsider that read the cluster's view sends every member a forged one with epoch
/// `u64::MAX` and members of its own, listing itself or not: every member refuses it (and
/// counts it), the view stays as it was, and every block is still on P members after the
/// spare-eviction delay.
#[test]
fn a_forged_view_from_an_outsider_moves_nobody() {
    let (mut net, members) = formed(4, config(), 7, BLOCKS);
    net.run_until(30_000);
    all_replicated(&net, &members, 3);
    let before = view_of(&net, members[0]);
    let outsider = NodeId::from_seed(900_001);
    let accomplices = [NodeId::from_seed(900_002), NodeId::from_seed(900_003)];
    let with_outsider = forged(&before, &[outsider, accomplices[0], accomplices[1]]);
    let without_outsider = forged(&before, &accomplices);
    let counted: Vec<(u64, u64)> = members
        .iter()
        .map(|i| {
            let s = net.nodes[*i].stats();
            (s.views_refused, s.messages_ignored)
        })
        .collect();
    for i in &members {
        net.inject(*i, outsider, Message::View(with_outsider.clone()));
        net.inject(*i, outsider, Message::View(without_outsider.clone()));
    }
    net.run_until(net.now_ms + 1_000);
    for (k, i) in members.iter().enumerate() {
        assert_eq!(view_of(&net, *i), before, "member {i} kept its view");
        let s = net.nodes[*i].stats();
        assert_eq!(s.views_refused, counted[k].0 + 2, "member {i}");
        assert!(s.messages_ignored >= counted[k].1 + 2, "member {i}");
    }
    // Past the spare-eviction delay, nothing was given up.
    net.run_until(net.now_ms + 2 * EVICT_AFTER_MS);
    net.check_clusters();
    for i in &members {
        assert_eq!(view_of(&net, *i).epoch, before.epoch, "member {i}");
    }
    all_replicated(&net, &members, 3);
}

/// A view of our cluster that does not list its sender is refused, even from a member: no
/// honest node sends a view it is not in.
#[test]
fn a_view_that_does_not_list_its_sender_is_refused() {
    let (mut net, members) = formed(4, config(), 8, BLOCKS);
    net.run_until(20_000);
    let (a, b) = (members[0], members[1]);
    let before = view_of(&net, a);
    let b_id = net.id(b);
    let without_b = View {
        epoch: before.epoch + 1,
        members: before
            .members
            .iter()
            .filter(|m| m.id != b_id)
            .cloned()
            .collect(),
        ..before.clone()
    };
    let refused = net.nodes[a].stats().views_refused;
    net.inject(a, b_id, Message::View(without_b));
    net.run_until(net.now_ms + 200);
    assert_eq!(net.nodes[a].stats().views_refused, refused + 1);
    assert_eq!(view_of(&net, a), before);
}

/// A member that sends its mates a view with epoch `u64::MAX` moves them at most
/// `VIEW_EPOCH_STEP_MAX` epochs; the next honest change (a member crashes and is declared
/// offline) still wins, and every member ends on it.
#[test]
fn a_huge_epoch_from_a_member_moves_at_most_one_step() {
    let (mut net, members) = formed(5, config(), 9, BLOCKS);
    net.run_until(20_000);
    let (a, b, gone) = (members[0], members[1], members[4]);
    let before = view_of(&net, a);
    let huge = View {
        epoch: u64::MAX,
        ..before.clone()
    };
    let b_id = net.id(b);
    net.inject(a, b_id, Message::View(huge));
    net.run_until(net.now_ms + 200);
    let capped = view_of(&net, a);
    assert_eq!(capped.epoch, before.epoch + VIEW_EPOCH_STEP_MAX);
    assert_eq!(capped.members, before.members);
    assert_eq!(net.nodes[a].stats().view_epochs_capped, 1);
    // The others learn it from `a` (one step ahead of them), never more.
    net.run_until(net.now_ms + 5_000);
    net.check_clusters();
    let after = view_of(&net, b);
    assert_eq!(after.epoch, before.epoch + VIEW_EPOCH_STEP_MAX);
    // An honest change wins over it.
    net.crash(gone);
    net.run_until(net.now_ms + 10_000);
    net.check_clusters();
    let last = view_of(&net, a);
    assert!(
        last.epoch > capped.epoch && last.epoch < u64::MAX / 2,
        "{}",
        last.epoch
    );
    assert!(!last.members.iter().any(|m| m.id == net.id(gone)));
}

/// An invitee takes the founding view its confirmed invitation waits for only if it lists the
/// inviter that sends it, as every honest founding view does.
#[test]
fn an_invitee_refuses_a_founding_view_that_leaves_out_its_inviter() {
    use crate::node::{Input, Node, TimerId};
    use crate::testnet::{feed, record};
    use crate::wire::ClusterGenesis;

    let mut node = Node::new(fast_config(), NodeId::from_seed(1000), 5).unwrap();
    feed(&mut node, 0, Input::Start);
    let inviter = NodeId::from_seed(1);
    let invite = Message::Invite {
        invite_id: 10,
        address: String::new(),
        record: record(3, 3),
        cluster: None,
    };
    feed(
        &mut node,
        1,
        Input::Message {
            from: inviter,
            message: invite,
        },
    );
    feed(&mut node, 1_000, Input::TimerFired(TimerId::Invitation));
    // A founding view by someone else, naming the invitee and not the inviter.
    let other = NodeId::from_seed(2);
    let view = |members: Vec<NodeId>| {
        let mut founders = members.clone();
        founders.sort();
        let genesis = ClusterGenesis {
            proposer: founders[0],
            generation: 0,
            founders: founders.clone(),
        };
        View {
            cluster: crate::cluster::cluster_id(&genesis),
            genesis,
            epoch: 0,
            members: founders.into_iter().map(info).collect(),
            expires_in_ms: 60_000,
        }
    };
    let ignored = node.stats().messages_ignored;
    let without = view(vec![node.id(), other]);
    let message = Message::View(without);
    feed(
        &mut node,
        1_001,
        Input::Message {
            from: inviter,
            message,
        },
    );
    assert!(node.cluster().is_none());
    assert_eq!(node.stats().messages_ignored, ignored + 1);
    // The honest one is taken.
    let message = Message::View(view(vec![node.id(), inviter, other]));
    feed(
        &mut node,
        1_002,
        Input::Message {
            from: inviter,
            message,
        },
    );
    assert!(node.cluster().is_some());
}

/// A member whose view lists mates that do not know it (here a node made a member of a view
/// of the cluster that only it holds, one epoch ahead) keeps sending them its view, and they
/// keep refusing it. `offline_after_ms` later it gives up that view and joins the cluster
/// through its members (S13); the others never took its view.
#[test]
fn a_member_whose_view_its_mates_refuse_leaves_and_joins_through_them() {
    // Below its target size, the cluster takes join requests.
    let config = || Config {
        cluster_size_target: 6,
        ..config()
    };
    let (mut net, members) = formed(4, config(), 11, BLOCKS);
    assert_eq!(members.len(), 4);
    net.run_until(20_000);
    let before = view_of(&net, members[0]);
    let z = net.add(config(), 11);
    let z_id = net.id(z);
    let mut listed = before.members.clone();
    listed.push(info(z_id));
    listed.sort_by_key(|m| m.id);
    let foreign = View {
        epoch: before.epoch + 1,
        members: listed,
        ..before.clone()
    };
    // z starts knowing nobody (not introduced), so it stays ordinary until made a member.
    net.run_until(net.now_ms + 10);
    assert!(net.nodes[z].cluster().is_none());
    let now = net.now_ms;
    net.nodes[z].shared.now_ms = now;
    net.nodes[z].become_member(foreign, now + 3_600_000);
    net.flush(z);
    net.introduce_all();
    let offline_after_ms = config().offline_after_ms;
    net.run_until(now + offline_after_ms / 2);
    for i in &members {
        assert_eq!(view_of(&net, *i), before, "member {i} took no view from z");
        assert!(net.nodes[*i].stats().views_refused > 0, "member {i}");
    }
    assert_eq!(net.nodes[z].stats().views_left_refused, 0, "not yet");
    net.run_until(now + 20 * offline_after_ms);
    assert_eq!(net.nodes[z].stats().views_left_refused, 1);
    let clusters = net.check_clusters();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    let (cluster, epoch, ids) = net.nodes[members[0]].cluster().unwrap();
    assert_eq!(cluster, before.cluster);
    assert!(epoch > before.epoch);
    assert!(ids.contains(&z_id), "z joined through the members");
}
