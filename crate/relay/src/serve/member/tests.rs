//! A member node and an archive node wired to each other in memory (no network): the member
//! follows the archive's headers through the core's header sync, hands them to its node, and
//! has them again from its disk after a restart.

use std::path::Path;

use shoal_core::chain::generate::{generate_chain, GenerateConfig};
use shoal_core::chain::BlockHash;

use super::*;
use crate::serve::archive::ArchiveNode;
use crate::serve::shard::SHARD_DB_FILE;
use crate::serve::source::{BlockSource, SourceConfig};
use crate::serve::store::ChainStore;

const BLOCKS: u32 = 5;
const SETTINGS: MemberSettings = MemberSettings {
    cluster_size: 4,
    replicas: 2,
    heartbeat_interval_ms: 5_000,
    offline_after_ms: 20_000,
    formation_interval_ms: 10_000,
    capacity_bytes: 1 << 30,
};

fn archive(dir: &Path, peer: PeerId) -> ArchiveNode {
    let store = ChainStore::open(&dir.join("chain.redb")).unwrap();
    let config = SourceConfig {
        initial_blocks: BLOCKS,
        txs_per_block: 2,
        target_block_size_bytes: None,
        seed: 5,
    };
    BlockSource::open(&store, &config, 1_700_000_000).unwrap();
    ArchiveNode::start(store, peer, String::new(), 1).unwrap()
}

fn member(dir: &Path, peer: PeerId, archive: PeerId, status: &SharedStatus) -> MemberNode {
    let store = ShardStore::open(&dir.join(SHARD_DB_FILE)).unwrap();
    let config = member_config(&SETTINGS, String::new()).unwrap();
    MemberNode::start(
        store,
        peer,
        config,
        Network::Regtest,
        2,
        [archive],
        status.clone(),
    )
    .unwrap()
}

/// What `from` sent, as `to`'s input: a held request's answer comes back as a reply, anything
/// else as a message.
fn deliver(from: PeerId, output: FromNode) -> ToNode {
    match output {
        FromNode::Send {
            answers: Some(_),
            bytes,
            ..
        } => ToNode::Reply { peer: from, bytes },
        FromNode::Send { bytes, .. } => ToNode::Message {
            peer: from,
            message: node_link::decode_request(&bytes).unwrap(),
        },
        FromNode::Dial { .. } => panic!("nobody else to dial"),
        FromNode::Misbehaved { peer, score } => panic!("{peer} scored {score}: nobody misbehaves"),
    }
}

#[test]
fn a_member_follows_an_archives_headers_and_keeps_them_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (archive_id, member_id) = (PeerId::random(), PeerId::random());
    let status = SharedStatus::default();
    let mut archive = archive(dir.path(), archive_id);
    let mut member = member(dir.path(), member_id, archive_id, &status);
    archive.push(ToNode::Connected(member_id));
    member.push(ToNode::Connected(archive_id));
    let mut rounds = 0;
    loop {
        let to_member = futures::executor::block_on(archive.run());
        let to_archive = futures::executor::block_on(member.run());
        if to_member.is_empty() && to_archive.is_empty() {
            break;
        }
        for output in to_member {
            member.push(deliver(archive_id, output));
        }
        for output in to_archive {
            archive.push(deliver(member_id, output));
        }
        rounds += 1;
        assert!(rounds < 100, "the two nodes never went quiet");
    }
    assert_eq!(member.chain().tip_height(), BLOCKS);
    assert_eq!(
        member.chain().tip_hash(),
        archive.store().tip().unwrap().unwrap().hash
    );
    let seen = status.read().unwrap().clone();
    assert!(seen.synced && seen.has_headers, "{seen:?}");
    assert_eq!((seen.role.as_str(), seen.tip_height), ("member", BLOCKS));
    assert_eq!(seen.held_blocks, 0, "no cluster: no shard");

    // A restart with nobody to ask: the headers come from disk, and the node has them.
    drop(member);
    let status = SharedStatus::default();
    let mut member = self::member(dir.path(), member_id, archive_id, &status);
    assert!(futures::executor::block_on(member.run()).is_empty());
    assert_eq!(member.chain().tip_height(), BLOCKS);
    let seen = status.read().unwrap().clone();
    assert!(seen.has_headers && !seen.synced, "{seen:?}");
}

/// Headers on disk that no longer verify (a damaged file) are dropped from the first bad one
/// on when the member starts; the ones below are kept.
#[test]
fn stored_headers_that_no_longer_verify_are_dropped_from_the_first_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = generate_chain(&GenerateConfig {
        blocks: 6,
        txs_per_block: 0,
        ..Default::default()
    })
    .unwrap();
    let mut headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
    headers[3].prev_blockhash = BlockHash([7; 32]); // height 4 no longer links to height 3
    let store = ShardStore::open(&dir.path().join(SHARD_DB_FILE)).unwrap();
    store.put_headers(1, &headers, false).unwrap();
    drop(store);
    let status = SharedStatus::default();
    let member = member(dir.path(), PeerId::random(), PeerId::random(), &status);
    assert_eq!(member.chain().tip_height(), 3);
    assert_eq!(member.store.headers(1, 100).unwrap(), headers[..3]);
}

/// Runs both nodes, delivering what each sends the other, until neither sends anything.
fn exchange(archive: &mut ArchiveNode, member: &mut MemberNode, ids: (PeerId, PeerId)) {
    let (archive_id, member_id) = ids;
    for _ in 0..100 {
        let to_member = futures::executor::block_on(archive.run());
        let to_archive = futures::executor::block_on(member.run());
        if to_member.is_empty() && to_archive.is_empty() {
            return;
        }
        for output in to_member {
            member.push(deliver(archive_id, output));
        }
        for output in to_archive {
            archive.push(deliver(member_id, output));
        }
    }
    panic!("the two nodes never went quiet");
}

/// The archive announces a new block by its header; the member's sync takes the header the
/// moment the announcement arrives, before it asks anything (S14, S15).
#[test]
fn a_block_the_archive_announces_extends_the_members_chain_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (archive_id, member_id) = (PeerId::random(), PeerId::random());
    let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
    let config = SourceConfig {
        initial_blocks: BLOCKS,
        txs_per_block: 2,
        target_block_size_bytes: None,
        seed: 5,
    };
    let mut source = BlockSource::open(&store, &config, 1_700_000_000).unwrap();
    let mut archive = ArchiveNode::start(store, archive_id, String::new(), 1).unwrap();
    let status = SharedStatus::default();
    let mut member = member(dir.path(), member_id, archive_id, &status);
    archive.push(ToNode::Connected(member_id));
    member.push(ToNode::Connected(archive_id));
    exchange(&mut archive, &mut member, (archive_id, member_id));
    assert_eq!(member.chain().tip_height(), BLOCKS);

    let (height, block) = source
        .next(archive.store(), crate::serve::now_secs())
        .unwrap();
    archive.on_new_block(&block);
    let to_member = futures::executor::block_on(archive.run());
    let announced = to_member
        .into_iter()
        .map(|o| deliver(archive_id, o))
        .find(|input| {
            matches!(input, ToNode::Message { message: Message::BlockAnnounce { header }, .. }
            if *header == block.header)
        });
    member.push(announced.expect("the archive announced the block"));
    assert_eq!(member.chain().tip_height(), height);
    assert_eq!(member.chain().tip_hash(), block.block_hash());
    assert_eq!(member.sync.stats().announcements_accepted, 1);
}

/// A member relay proves it holds a block (issue 16) from its disk: a mate's `HoldChallenge`
/// becomes the host's storage read — the read that serves `GetBlock` — and the answer is the
/// digest over the nonce, the relay's own node id and the bytes its shard store gives.
#[test]
fn a_member_relay_answers_a_hold_challenge_from_its_disk() {
    use shoal_core::cluster::cluster_id;
    use shoal_core::node::resume::{encode_record, SavedMembership, MEMBERSHIP_KEY};
    use shoal_core::node::KvOp;
    use shoal_core::repair::holding::proof_digest;
    use shoal_core::wire::{ClusterGenesis, MemberInfo, View};
    use shoal_host::{BlockStore, Write};

    let dir = tempfile::tempdir().unwrap();
    let (archive_id, member_id, mate_id) = (PeerId::random(), PeerId::random(), PeerId::random());
    let (me, mate) = (node_link::node_id(&member_id), node_link::node_id(&mate_id));
    // A saved membership: a cluster of this relay and one mate, P = 2, so the relay holds
    // every block.
    let mut founders = vec![me, mate];
    founders.sort();
    let genesis = ClusterGenesis {
        proposer: founders[0],
        generation: 0,
        founders: founders.clone(),
    };
    let members = founders
        .iter()
        .map(|id| MemberInfo {
            id: *id,
            address: String::new(),
            segment: 0,
            capacity_bytes: 1 << 30,
            device: shoal_core::placement::own_device(id),
        })
        .collect();
    let view = View {
        cluster: cluster_id(&genesis),
        genesis,
        epoch: 1,
        members,
        expires_in_ms: 3_600_000,
    };
    let record = encode_record(&SavedMembership {
        view,
        saved_at_ms: unix_ms(),
        expires_at_ms: unix_ms() + 3_600_000,
    })
    .unwrap();
    {
        let mut store = ShardStore::open(&dir.path().join(SHARD_DB_FILE)).unwrap();
        let op = KvOp::Put {
            key: MEMBERSHIP_KEY.to_vec(),
            value: record,
        };
        futures::executor::block_on(store.write(&[Write::Kv(&op)])).unwrap();
    }
    let status = SharedStatus::default();
    let mut archive = archive(dir.path(), archive_id);
    let mut member = member(dir.path(), member_id, archive_id, &status);
    archive.push(ToNode::Connected(member_id));
    member.push(ToNode::Connected(archive_id));
    member.push(ToNode::Connected(mate_id));
    // Runs both nodes; the mate has no block to give, and whatever else the relay sends it is
    // kept.
    let mut to_mate = Vec::new();
    let run = |archive: &mut ArchiveNode, member: &mut MemberNode, to_mate: &mut Vec<_>| {
        for _ in 0..200 {
            let to_member = futures::executor::block_on(archive.run());
            let from_member = futures::executor::block_on(member.run());
            if to_member.is_empty() && from_member.is_empty() {
                return;
            }
            for output in to_member {
                member.push(deliver(archive_id, output));
            }
            for output in from_member {
                match output {
                    FromNode::Send { peer, bytes, .. } if peer == mate_id => {
                        let message = node_link::decode_request(&bytes).unwrap();
                        if let Message::GetBlock { request_id, .. } = message {
                            member.push(ToNode::Message {
                                peer: mate_id,
                                message: Message::BlockNotFound { request_id },
                            });
                        } else {
                            to_mate.push(message);
                        }
                    }
                    FromNode::Dial { .. } => {}
                    other => archive.push(deliver(member_id, other)),
                }
            }
        }
        panic!("the nodes never went quiet");
    };
    run(&mut archive, &mut member, &mut to_mate);
    assert!(
        member.node().member_number().is_some(),
        "resumed its membership"
    );
    let held = member.store.held().unwrap();
    assert_eq!(held.len() as u32, BLOCKS + 1, "the relay holds every block");
    let (_, block_hash) = held[2];
    let bytes = member.store.block_bytes(&block_hash).unwrap().unwrap();

    to_mate.clear();
    member.push(ToNode::Message {
        peer: mate_id,
        message: Message::HoldChallenge {
            request_id: 7,
            block_hash,
            nonce: 0xfeed,
            offset: 100,
            length: 256,
        },
    });
    run(&mut archive, &mut member, &mut to_mate);
    let proof = to_mate
        .iter()
        .find_map(|m| match m {
            Message::HoldProof {
                request_id: 7,
                proof,
            } => Some(*proof),
            _ => None,
        })
        .expect("the relay answered the challenge");
    assert_eq!(proof, Some(proof_digest(0xfeed, &me, 100, 256, &bytes)));
    assert_eq!(member.node().stats().hold_challenges_answered, 1);
}
