//! Resuming membership after a restart (`node::resume`): the record's codec against hostile
//! bytes, and restarted members on the small test network.

use super::*;
use crate::node::{Config, Event};
use crate::testnet::{all_replicated, fast_config, formed};

const BLOCKS: u32 = 60;

fn resuming() -> Config {
    Config {
        resume_membership: true,
        ..fast_config()
    }
}

/// A formed, filled cluster of 3 with P = 2 whose members save their membership.
fn filled(config: Config, seed: u64) -> (crate::testnet::Net, Vec<usize>) {
    let config = Config {
        replicas: 2,
        cluster_size_max: 3,
        cluster_size_target: 3,
        invite_after_peers: 2,
        ..config
    };
    let (mut net, members) = formed(3, config, seed, BLOCKS);
    net.run_until(30_000);
    all_replicated(&net, &members, 2);
    (net, members)
}

fn saved_record(net: &crate::testnet::Net, i: usize) -> Option<Vec<u8>> {
    net.kv[i].get(MEMBERSHIP_KEY).cloned()
}

/// A reloaded member (restarted within the detection timeout over its old store) is a member
/// of the same view again at once: nobody declares it offline, it fetches no block, and the
/// cluster's view does not change.
#[test]
fn a_restarted_member_resumes_its_view_and_fetches_nothing() {
    let (mut net, members) = filled(resuming(), 51);
    let i = members[1];
    let (cluster, epoch, ids) = net.nodes[i].cluster().expect("a member");
    assert!(saved_record(&net, i).is_some(), "the membership is saved");
    let held = net.nodes[i].held_count();
    let offline_before: u64 = members
        .iter()
        .map(|m| net.nodes[*m].stats().members_declared_offline)
        .sum();
    net.crash(i);
    let config = net.nodes[i].config().clone();
    net.run_until(net.now_ms + 500);
    net.restart(i, config, 99);
    net.run_until(net.now_ms + 20);
    assert_eq!(
        net.nodes[i].cluster(),
        Some((cluster, epoch, ids.clone())),
        "a member of its view from the start"
    );
    net.run_until(net.now_ms + 10_000);
    assert_eq!(net.nodes[i].cluster(), Some((cluster, epoch, ids)));
    net.check_clusters();
    assert_eq!(net.nodes[i].held_count(), held);
    assert_eq!(
        net.nodes[i].stats().blocks_fetched,
        0,
        "nothing fetched again"
    );
    assert_eq!(net.nodes[i].missing_count(), 0);
    let offline_after: u64 = members
        .iter()
        .map(|m| net.nodes[*m].stats().members_declared_offline)
        .sum();
    assert_eq!(offline_after, offline_before, "nobody was declared offline");
    assert!(net.events[i]
        .iter()
        .any(|e| matches!(e, Event::JoinedCluster { cluster: c, .. } if *c == cluster)));
}

/// Without `resume_membership` nothing is saved and a restarted member starts as an ordinary
/// node.
#[test]
fn without_resume_nothing_is_saved_and_a_restarted_member_starts_ordinary() {
    let (mut net, members) = filled(fast_config(), 52);
    let i = members[0];
    assert!(saved_record(&net, i).is_none());
    net.crash(i);
    let config = net.nodes[i].config().clone();
    net.restart(i, config, 99);
    net.run_until(net.now_ms + 20);
    assert_eq!(net.nodes[i].cluster(), None);
}

/// A member that was away long enough to be declared offline and replaced comes back on an
/// older view: the greater view leaves it out and the cluster is full, so it becomes an
/// ordinary node (keeping its blocks), and its record is deleted.
#[test]
fn a_member_replaced_while_away_becomes_ordinary_and_forgets_its_record() {
    let config = Config {
        replicas: 2,
        cluster_size_max: 3,
        cluster_size_target: 3,
        invite_after_peers: 2,
        ..resuming()
    };
    // Four ordinary nodes for a cluster of three: one stays outside to replace a member.
    let (mut net, members) = formed(4, config.clone(), 53, BLOCKS);
    net.run_until(30_000);
    assert_eq!(members.len(), 3);
    let i = members[2];
    let (cluster, _, _) = net.nodes[i].cluster().unwrap();
    net.crash(i);
    net.run_until(net.now_ms + 30_000);
    let clusters = net.check_clusters();
    let now = &clusters[&cluster];
    assert_eq!(now.len(), 3, "replaced: {now:?}");
    assert!(!now.contains(&i));
    net.restart(i, config, 98);
    net.run_until(net.now_ms + 10_000);
    net.check_clusters();
    net.check_exclusive();
    assert_ne!(net.nodes[i].cluster().map(|c| c.0), Some(cluster));
    assert!(saved_record(&net, i).is_none(), "the record is deleted");
}

/// A corrupt record is deleted at start and the node starts as an ordinary node.
#[test]
fn a_corrupt_record_is_deleted_and_the_node_starts_ordinary() {
    let (mut net, members) = filled(resuming(), 54);
    let i = members[0];
    let mut record = saved_record(&net, i).unwrap();
    let at = record.len() / 2;
    record[at] ^= 0x40;
    net.crash(i);
    net.kv[i].insert(MEMBERSHIP_KEY.to_vec(), record);
    let config = net.nodes[i].config().clone();
    net.restart(i, config, 97);
    net.run_until(net.now_ms + 20);
    assert_eq!(net.nodes[i].cluster(), None);
    assert!(saved_record(&net, i).is_none());
    // The index records survived: they are not the membership's.
    assert!(net.kv[i].keys().any(|k| k.starts_with(b"txi/")));
}

fn sample() -> SavedMembership {
    let (net, members) = filled(resuming(), 55);
    decode_record(&saved_record(&net, members[0]).unwrap()).unwrap()
}

#[test]
fn records_round_trip() {
    let saved = sample();
    assert_eq!(
        decode_record(&encode_record(&saved).unwrap()).unwrap(),
        saved
    );
}

/// Hostile bytes: every truncation, every flipped bit, oversize, another version and a message
/// that is not a view are refused with an error, never a panic or a wrong view.
#[test]
fn hostile_records_are_refused() {
    let saved = sample();
    let good = encode_record(&saved).unwrap();
    for len in 0..good.len() {
        assert!(decode_record(&good[..len]).is_err(), "truncated to {len}");
    }
    for at in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            assert!(decode_record(&bad).is_err(), "byte {at} bit {bit:#x}");
        }
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(decode_record(&trailing).is_err());
    let huge = vec![VERSION; MAX_MEMBERSHIP_RECORD_BYTES + 1];
    assert!(matches!(
        decode_record(&huge),
        Err(ResumeError::TooLarge { .. })
    ));
    // A well-formed record of a later version.
    let mut later = good[..good.len() - CHECK_BYTES].to_vec();
    later[0] = VERSION + 1;
    let check = sha256d(&later);
    later.extend_from_slice(&check[..CHECK_BYTES]);
    assert_eq!(
        decode_record(&later),
        Err(ResumeError::Version(VERSION + 1))
    );
    // A checksummed record around another message.
    let mut other = vec![VERSION];
    other.extend_from_slice(&[0; 16]);
    other.extend_from_slice(&wire::encode(&Message::InviteWithdrawn { invite_id: 1 }).unwrap());
    let check = sha256d(&other);
    other.extend_from_slice(&check[..CHECK_BYTES]);
    assert_eq!(decode_record(&other), Err(ResumeError::NotAView));
}
