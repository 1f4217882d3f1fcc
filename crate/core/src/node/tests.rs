//! Single-node tests: the node's inputs fed by hand — views it must refuse, reorgs, blocks
//! off the header chain, configurations, peers — and its random stream. Invitations (S1, S3)
//! are tested in `formation::tests`.

use super::*;
use crate::chain_seam;
use crate::testnet::{fast_config, feed};
use crate::wire::Header;
use std::sync::Arc;

/// A view from someone we did not confirm, or a forged one, does not make us a member.
#[test]
fn unsolicited_or_forged_views_are_ignored() {
    let mut node = Node::new(fast_config(), NodeId::from_seed(1000), 5).unwrap();
    feed(&mut node, 0, Input::Start);
    let other = NodeId::from_seed(1);
    let mut founders = vec![node.id(), other];
    founders.sort();
    let genesis = crate::wire::ClusterGenesis {
        proposer: other,
        generation: 0,
        founders: founders.clone(),
    };
    let view = crate::wire::View {
        cluster: crate::cluster::cluster_id(&genesis),
        genesis,
        epoch: 0,
        members: founders
            .iter()
            .map(|id| crate::wire::MemberInfo {
                id: *id,
                address: String::new(),
                segment: 0,
                capacity_bytes: 0,
                device: crate::placement::own_device(id),
            })
            .collect(),
        expires_in_ms: 1_000,
    };
    feed(
        &mut node,
        1,
        Input::Message {
            from: other,
            message: Message::View(view),
        },
    );
    assert!(node.cluster().is_none());
}

/// A header reorganisation forgets stored blocks that left the best chain.
#[test]
fn a_reorganisation_forgets_blocks_off_the_best_chain() {
    let (list, blocks) = chain_seam::synthetic_chain(10, 10);
    let list = Arc::new(list);
    let config = Config {
        archive: true,
        ..fast_config()
    };
    let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
    feed(&mut node, 0, Input::Start);
    feed(&mut node, 0, Input::Headers(list.clone()));
    for bytes in blocks {
        for o in feed(&mut node, 1, Input::NewBlock { bytes }) {
            if let Output::Storage(StorageCommand::Put { request_id, .. }) = o {
                feed(
                    &mut node,
                    2,
                    Input::Storage(StorageResult::Put {
                        request_id,
                        ok: true,
                    }),
                );
            }
        }
    }
    assert_eq!(node.held_count(), 10);
    // A competing chain sharing the first 6 blocks.
    let (other, _) = chain_seam::synthetic_chain(12, 11);
    let mut headers: Vec<Header> = (0..6).map(|h| list.header_at(h).unwrap()).collect();
    headers.extend((6..12).map(|h| other.header_at(h).unwrap()));
    feed(
        &mut node,
        3,
        Input::Headers(Arc::new(HeaderList::new(headers))),
    );
    assert_eq!(node.held_count(), 6);
    assert!(node.holds(5) && !node.holds(6));
}

/// Blocks that do not match the header chain are never stored.
#[test]
fn blocks_off_the_header_chain_are_refused() {
    let (list, mut blocks) = chain_seam::synthetic_chain(3, 10);
    let config = Config {
        archive: true,
        ..fast_config()
    };
    let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
    feed(&mut node, 0, Input::Start);
    feed(&mut node, 0, Input::Headers(Arc::new(list)));
    let last = blocks[2].len() - 1;
    blocks[2][last] ^= 0xff; // body no longer matches the Merkle root
    for bytes in [blocks[2].clone(), vec![1, 2, 3], vec![0; 80]] {
        assert!(feed(&mut node, 1, Input::NewBlock { bytes })
            .iter()
            .all(|o| !matches!(o, Output::Storage(StorageCommand::Put { .. }))));
    }
    assert_eq!(node.stats().blocks_rejected, 3);
}

/// Bad configurations are refused with a reason.
#[test]
fn bad_configs_are_refused() {
    let bad = Config {
        form_with_accepts: 8,
        ..Config::default()
    };
    assert!(matches!(
        Node::new(bad, NodeId::from_seed(1), 1),
        Err(ConfigError::FormWithAccepts { .. })
    ));
    let bad = Config {
        offline_after_ms: 1,
        ..Config::default()
    };
    assert_eq!(bad.validate(), Err(ConfigError::OfflineBeforeHeartbeat));
    assert_eq!(Config::default().validate(), Ok(()));
}

/// The verified header chain from `chain::headers` plugs into the node as its header view.
#[test]
fn header_chain_is_a_header_view() {
    use crate::chain::generate::{generate_chain, GenerateConfig};
    use crate::chain::headers::HeaderChain;
    use crate::chain::params::ChainParams;
    let blocks = generate_chain(&GenerateConfig {
        blocks: 5,
        ..GenerateConfig::default()
    })
    .unwrap();
    let mut chain = HeaderChain::new(ChainParams::REGTEST);
    // generate_chain returns the blocks after genesis: blocks[i] is at height i + 1.
    for block in &blocks {
        chain.accept(&block.header, u64::from(u32::MAX)).unwrap();
    }
    let view: &dyn HeaderView = &chain;
    assert_eq!(view.tip_height(), Some(blocks.len() as u32));
    let hash = blocks[3].block_hash();
    assert_eq!(view.height_of(&hash), Some(4));
    assert_eq!(view.block_hash_at(4), Some(hash));
    assert!(chain_seam::check_block(&hash, &blocks[3].encode()).is_ok());
}

/// Failed dials (reported as PeerDisconnected) are replaced one for one: no fan-out.
#[test]
fn failed_dials_do_not_fan_out() {
    let config = Config {
        max_peers: 3,
        ..fast_config()
    };
    let mut node = Node::new(config, NodeId::from_seed(1000), 5).unwrap();
    feed(&mut node, 0, Input::Start);
    let candidates: Vec<Candidate> = (0..40)
        .map(|i| Candidate {
            id: NodeId::from_seed(i),
            address: format!("/c/{i}"),
        })
        .collect();
    let dials = |outputs: &[Output]| {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Connect { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut pending = dials(&feed(&mut node, 1, Input::CandidatePeers(candidates)));
    assert_eq!(pending.len(), 3);
    let mut total = pending.len();
    for t in 2..20 {
        let failed = pending.remove(0);
        let more = dials(&feed(
            &mut node,
            t,
            Input::PeerDisconnected { peer: failed },
        ));
        assert_eq!(more.len(), 1, "one failure, one replacement");
        total += more.len();
        pending.extend(more);
    }
    assert_eq!(total, 21);
}

/// The shells' timer table: one deadline per id, setting replaces, due timers are taken once.
#[test]
fn timer_table_keeps_one_deadline_per_id_and_hands_out_due_ones_once() {
    let mut timers = crate::node::Timers::default();
    assert_eq!(timers.next_ms(), None);
    timers.set(TimerId::Repair, 500);
    timers.set(TimerId::Heartbeat, 300);
    timers.set(TimerId::Repair, 200);
    assert_eq!(timers.next_ms(), Some(200));
    assert_eq!(timers.take_due(250), vec![TimerId::Repair]);
    assert_eq!(timers.take_due(250), vec![]);
    assert_eq!(timers.next_ms(), Some(300));
    assert_eq!(timers.take_due(1_000), vec![TimerId::Heartbeat]);
    assert_eq!(timers.next_ms(), None);
}

/// Golden values of the node's random stream (the one generator's stream of its seed and id):
/// heartbeat nonces, RTT pings and every jittered deadline come from it, and the simulator's
/// seeded results with them. Changed on purpose once (issue 11: the node moved from its own
/// SplitMix64 to the one generator, `base::rng::Rng`).
#[test]
fn the_nodes_random_stream_is_unchanged() {
    let id = NodeId::from_seed(3);
    let mut rng = super::node_rng(99, id);
    let draws: Vec<u64> = (0..4).map(|_| rng.next_u64()).collect();
    let jitters: Vec<u64> = (0..4).map(|_| rng.jitter(10_000)).collect();
    assert_eq!(
        draws,
        [
            13294558968870339147,
            12787086408808532415,
            11405249792058903294,
            14859411467847932987
        ]
    );
    assert_eq!(jitters, [9190, 13142, 8592, 13877]);
    // Every jitter lies within ±50 % of its base.
    assert!(jitters.iter().all(|j| (5_000..=15_000).contains(j)));
}

/// S13 at once, but not at every room: an ordinary node asks a cluster with room to take it
/// the moment a hello tells it of the room, and again on hearing of room only once a
/// formation interval has passed (under churn rooms open all the time).
#[test]
fn an_ordinary_node_asks_to_join_on_hearing_of_room_at_most_once_per_formation_interval() {
    let config = Config::default();
    let interval = config.formation_interval_ms;
    let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
    feed(&mut node, 0, Input::Start);
    let join_requests = |outputs: &[Output]| {
        outputs
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        message: Message::JoinRequest { .. },
                        ..
                    }
                )
            })
            .count()
    };
    let room_from = |node: &mut Node, now_ms: u64, seed: u64, cluster: u8| {
        let peer = NodeId::from_seed(seed);
        let mut outputs = feed(node, now_ms, Input::PeerConnected { peer });
        outputs.extend(feed(
            node,
            now_ms,
            Input::Message {
                from: peer,
                message: Message::Hello {
                    record: crate::wire::NodeRecord::default(),
                    cluster: Some(crate::base::ClusterId([cluster; 32])),
                    open_slots: 2,
                },
            },
        ));
        join_requests(&outputs)
    };
    assert_eq!(room_from(&mut node, 10, 2, 1), 1, "asks at once");
    assert_eq!(
        room_from(&mut node, 20, 3, 2),
        0,
        "not again within the interval"
    );
    assert_eq!(
        room_from(&mut node, 10 + interval, 4, 3),
        1,
        "again after it"
    );
}
