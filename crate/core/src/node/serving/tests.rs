//! The node's serving seam end to end: queries, the index across restarts, reorgs, new
//! blocks (S14–S17).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::chain::{Block, BlockHash, Header, Txid};
use crate::chain_seam::synthetic_chain;
use crate::node::{
    Config, Event, HeaderList, HeaderView, Input, KvOp, Node, NodeId, Output, StorageCommand,
    StorageResult,
};
use crate::serve::query::QueryResult;
use crate::testnet::{fast_config, network};
use crate::wire::TxAnswerBody;

/// A shell's stores: blocks, index records, and how many block reads it served.
#[derive(Default)]
struct Disk {
    blocks: HashMap<BlockHash, Vec<u8>>,
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    gets: usize,
    /// When set, block reads are kept here unanswered (a slow disk) instead of served.
    held_gets: Option<Vec<Input>>,
}

/// Feeds an input and carries out storage commands against `disk` until quiet; returns
/// every other output.
fn feed(node: &mut Node, disk: &mut Disk, now_ms: u64, input: Input) -> Vec<Output> {
    let mut pending = vec![input];
    let mut rest = Vec::new();
    while let Some(input) = pending.pop() {
        node.handle_input(now_ms, input);
        while let Some(output) = node.poll_output() {
            match output {
                Output::Storage(StorageCommand::Put {
                    request_id,
                    block_hash,
                    bytes,
                    ..
                }) => {
                    disk.blocks.insert(block_hash, bytes);
                    pending.push(Input::Storage(StorageResult::Put {
                        request_id,
                        ok: true,
                    }));
                }
                Output::Storage(StorageCommand::Get {
                    request_id,
                    block_hash,
                }) => {
                    disk.gets += 1;
                    let bytes = disk.blocks.get(&block_hash).cloned();
                    let got = Input::Storage(StorageResult::Got { request_id, bytes });
                    match &mut disk.held_gets {
                        Some(held) => held.push(got),
                        None => pending.push(got),
                    }
                }
                Output::Storage(StorageCommand::Delete {
                    request_id,
                    block_hash,
                }) => {
                    disk.blocks.remove(&block_hash);
                    pending.push(Input::Storage(StorageResult::Deleted { request_id }));
                }
                Output::Storage(StorageCommand::List { request_id }) => {
                    let blocks = disk.blocks.keys().copied().collect();
                    pending.push(Input::Storage(StorageResult::Listed { request_id, blocks }));
                }
                Output::Storage(StorageCommand::WriteKv { request_id, ops }) => {
                    for op in ops {
                        match op {
                            KvOp::Put { key, value } => {
                                disk.kv.insert(key, value);
                            }
                            KvOp::Delete { key } => {
                                disk.kv.remove(&key);
                            }
                        }
                    }
                    pending.push(Input::Storage(StorageResult::KvWritten {
                        request_id,
                        ok: true,
                    }));
                }
                Output::Storage(StorageCommand::ListKv { request_id }) => {
                    let records = disk.kv.clone().into_iter().collect();
                    pending.push(Input::Storage(StorageResult::KvListed {
                        request_id,
                        records,
                    }));
                }
                other => rest.push(other),
            }
        }
    }
    rest
}

fn query_results(outputs: &[Output]) -> Vec<(u64, QueryResult)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::TxQueryDone {
                query_id, result, ..
            }) => Some((*query_id, result.clone())),
            _ => None,
        })
        .collect()
}

/// A node answers from its own blocks through the index; after a reorg the blocks that left
/// the best chain are deleted from its store and index, and their transactions no longer
/// confirm. A restarted node rebuilds its index from the blocks it lists.
#[test]
fn reorg_deletes_blocks_off_the_best_chain_and_the_index_is_rebuilt_at_start() {
    let (mut node, config, list, parsed, mut store) = running_archive();
    let txid = parsed[8].txdata[0].txid();
    let out = feed(
        &mut node,
        &mut store,
        2,
        Input::TxQuery {
            query_id: 1,
            txid,
            block_hint: None,
        },
    );
    assert!(
        matches!(
            query_results(&out)[..],
            [(
                1,
                QueryResult::Confirmed {
                    height: 8,
                    confirmations: 2,
                    ..
                }
            )]
        ),
        "{out:?}"
    );
    // A competing chain sharing the first 6 blocks.
    let (other, _) = synthetic_chain(12, 11);
    let mut headers: Vec<Header> = (0..6).map(|h| list.header_at(h).unwrap()).collect();
    headers.extend((6..12).map(|h| other.header_at(h).unwrap()));
    feed(
        &mut node,
        &mut store,
        3,
        Input::Headers(Arc::new(HeaderList::new(headers))),
    );
    for (height, b) in parsed.iter().enumerate() {
        assert_eq!(
            store.blocks.contains_key(&b.block_hash()),
            height < 6,
            "block {height}"
        );
    }
    let out = feed(
        &mut node,
        &mut store,
        4,
        Input::TxQuery {
            query_id: 2,
            txid,
            block_hint: None,
        },
    );
    let results = query_results(&out);
    assert_eq!(results.len(), 1);
    assert!(
        !matches!(results[0].1, QueryResult::Confirmed { .. }),
        "{results:?}"
    );
    // Restart: the index comes back from the listed blocks.
    let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
    feed(&mut node, &mut store, 10, Input::Start);
    feed(&mut node, &mut store, 10, Input::Headers(list.clone()));
    let txid = parsed[4].txdata[0].txid();
    let out = feed(
        &mut node,
        &mut store,
        11,
        Input::TxQuery {
            query_id: 3,
            txid,
            block_hint: None,
        },
    );
    assert!(
        matches!(
            query_results(&out)[..],
            [(3, QueryResult::Confirmed { height: 4, .. })]
        ),
        "{out:?}"
    );
}

/// An archive that stored `blocks`, with its disk.
fn archive_with_blocks() -> (Config, Arc<HeaderList>, Vec<Block>, Disk) {
    let (_, config, list, parsed, disk) = running_archive();
    (config, list, parsed, disk)
}

/// An archive node that stored a 10-block chain, still running, with its disk.
fn running_archive() -> (Node, Config, Arc<HeaderList>, Vec<Block>, Disk) {
    let (list, blocks) = synthetic_chain(10, 10);
    let list = Arc::new(list);
    let config = Config {
        archive: true,
        ..fast_config()
    };
    let mut node = Node::new(config.clone(), NodeId::from_seed(1), 1).unwrap();
    let mut disk = Disk::default();
    feed(&mut node, &mut disk, 0, Input::Start);
    feed(&mut node, &mut disk, 0, Input::Headers(list.clone()));
    for bytes in &blocks {
        feed(
            &mut node,
            &mut disk,
            1,
            Input::NewBlock {
                bytes: bytes.clone(),
            },
        );
    }
    let parsed = blocks.iter().map(|b| Block::decode(b).unwrap()).collect();
    (node, config, list, parsed, disk)
}

/// Starts a fresh node on `disk`; returns it and the block reads its start made.
fn restart(config: &Config, list: &Arc<HeaderList>, disk: &mut Disk) -> (Node, usize) {
    let mut node = Node::new(config.clone(), NodeId::from_seed(1), 1).unwrap();
    disk.gets = 0;
    feed(&mut node, disk, 10, Input::Start);
    feed(&mut node, disk, 10, Input::Headers(list.clone()));
    (node, disk.gets)
}

fn confirmed_height(node: &mut Node, disk: &mut Disk, txid: Txid) -> Option<u32> {
    let out = feed(
        node,
        disk,
        11,
        Input::TxQuery {
            query_id: 7,
            txid,
            block_hint: None,
        },
    );
    match query_results(&out)[..] {
        [(7, QueryResult::Confirmed { height, .. })] => Some(height),
        _ => None,
    }
}

/// The messages in `outputs` addressed to `to`.
fn sent_to(outputs: &[Output], to: NodeId) -> Vec<crate::wire::Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { to: t, message } if *t == to => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// A node with `ask_archives` (a browser page outside any cluster) asks the connected
/// archive for what it does not hold; the archive's proof is checked against the node's
/// own headers and the result names who answered. A node without the setting does not ask.
#[test]
fn an_ordinary_node_asks_its_archive_when_configured() {
    let (mut archive, _, list, parsed, mut archive_disk) = running_archive();
    let archive_id = NodeId::from_seed(1);
    for ask_archives in [true, false] {
        let mut config = fast_config();
        config.serve.query.ask_archives = ask_archives;
        let light_id = NodeId::from_seed(2);
        let mut light = Node::new(config, light_id, 2).unwrap();
        let mut disk = Disk::default();
        feed(&mut light, &mut disk, 0, Input::Start);
        feed(&mut light, &mut disk, 0, Input::Headers(list.clone()));
        feed(
            &mut light,
            &mut disk,
            0,
            Input::PeerConnected { peer: archive_id },
        );
        let hello = crate::wire::Message::Hello {
            record: crate::wire::NodeRecord {
                blocks_served: 0,
                capacity_bytes: 0,
                segment: 0,
                device: 1,
                archive: true,
            },
            cluster: None,
            open_slots: 0,
        };
        let from = archive_id;
        feed(
            &mut light,
            &mut disk,
            1,
            Input::Message {
                from,
                message: hello,
            },
        );
        let txid = parsed[6].txdata[0].txid();
        let query = Input::TxQuery {
            query_id: 5,
            txid,
            block_hint: None,
        };
        let out = feed(&mut light, &mut disk, 2, query);
        let asked = sent_to(&out, archive_id);
        if !ask_archives {
            assert!(asked.is_empty(), "{out:?}");
            assert_eq!(query_results(&out), [(5, QueryResult::Unavailable)]);
            continue;
        }
        assert_eq!(asked.len(), 1, "{out:?}");
        let message = asked[0].clone();
        let from = light_id;
        let answered = feed(
            &mut archive,
            &mut archive_disk,
            3,
            Input::Message { from, message },
        );
        let answer = sent_to(&answered, light_id);
        assert_eq!(answer.len(), 1, "{answered:?}");
        let message = answer[0].clone();
        let out = feed(
            &mut light,
            &mut disk,
            4,
            Input::Message {
                from: archive_id,
                message,
            },
        );
        let done: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::TxQueryDone {
                    query_id,
                    result: QueryResult::Confirmed { height, .. },
                    answered_by,
                    ..
                }) => Some((*query_id, *height, *answered_by)),
                _ => None,
            })
            .collect();
        assert_eq!(done, [(5, 6, Some(archive_id))], "{out:?}");
    }
}

/// Every stored block has its index record; a restarted node loads the records and reads
/// no block back, and still answers from its index. Without the records it reads them all.
#[test]
fn the_index_survives_a_restart_without_reading_blocks() {
    let (config, list, parsed, mut disk) = archive_with_blocks();
    assert_eq!(disk.kv.len(), parsed.len(), "one record per block");
    let (mut node, gets) = restart(&config, &list, &mut disk);
    assert_eq!(gets, 0, "no block read back");
    assert_eq!(
        node.shared.serving.serve.index().block_count(),
        parsed.len()
    );
    let txid = parsed[4].txdata[0].txid();
    assert_eq!(confirmed_height(&mut node, &mut disk, txid), Some(4));
    // Without records: the old path reads every block, and writes the records again.
    let records = std::mem::take(&mut disk.kv);
    let (_, gets) = restart(&config, &list, &mut disk);
    assert_eq!(gets, parsed.len());
    assert_eq!(disk.kv, records, "rebuilt records equal the lost ones");
}

/// A node restarted with blocks whose index records were lost reads them back a few at a
/// time. Until it has, a peer asking for a transaction it cannot find is told "unavailable"
/// (the asker keeps looking), never "not found" — final for the asker, and wrong for a
/// transaction in a block not yet read back. Once the index is complete: the proof for one,
/// "not found" for a transaction in none of its blocks.
#[test]
fn a_node_re_indexing_after_a_restart_answers_unavailable_until_its_index_is_complete() {
    let (mut config, list, parsed, mut disk) = archive_with_blocks();
    config.serve.query.holds_every_block = true;
    disk.kv.clear();
    let mut node = Node::new(config, NodeId::from_seed(1), 1).unwrap();
    disk.held_gets = Some(Vec::new());
    feed(&mut node, &mut disk, 10, Input::Start);
    feed(&mut node, &mut disk, 10, Input::Headers(list.clone()));
    let asker = NodeId::from_seed(9);
    feed(
        &mut node,
        &mut disk,
        10,
        Input::PeerConnected { peer: asker },
    );
    let ask = |node: &mut Node, disk: &mut Disk, request_id: u64, txid: Txid| {
        let message = crate::wire::Message::TxQuery {
            request_id,
            txid: crate::chain::Hash256(txid.0),
            block_hint: None,
        };
        let out = feed(
            node,
            disk,
            11,
            Input::Message {
                from: asker,
                message,
            },
        );
        match &sent_to(&out, asker)[..] {
            [crate::wire::Message::TxAnswer { answer, .. }] => answer.clone(),
            other => panic!("one answer expected: {other:?}"),
        }
    };
    let reading = disk.held_gets.as_ref().map_or(0, Vec::len);
    assert!(
        reading > 0 && reading < parsed.len(),
        "a few blocks read back at a time: {reading}"
    );
    let unknown = Txid([0xcd; 32]);
    let last = parsed.last().unwrap().txdata[0].txid();
    assert_eq!(
        ask(&mut node, &mut disk, 1, unknown),
        TxAnswerBody::Unavailable
    );
    assert_eq!(
        ask(&mut node, &mut disk, 2, last),
        TxAnswerBody::Unavailable
    );
    // The disk answers: the rest of the blocks are read back and indexed.
    let held = disk.held_gets.take().unwrap_or_default();
    for got in held {
        feed(&mut node, &mut disk, 12, got);
    }
    assert_eq!(
        node.shared.serving.serve.index().block_count(),
        parsed.len()
    );
    assert_eq!(
        ask(&mut node, &mut disk, 3, unknown),
        TxAnswerBody::NotFound
    );
    assert!(matches!(
        ask(&mut node, &mut disk, 4, last),
        TxAnswerBody::Found { .. }
    ));
}

/// A record that fails to decode is dropped and its block re-indexed from its bytes; a
/// record under a key that is no record key is deleted.
#[test]
fn a_corrupt_record_is_dropped_and_its_block_reindexed() {
    let (config, list, parsed, mut disk) = archive_with_blocks();
    let key = crate::serve::txindex::record_key(&parsed[3].block_hash());
    let good = disk.kv[&key].clone();
    // One bit flipped in a short key: only the checksum tells.
    let mut flipped = good.clone();
    flipped[5] ^= 0x10;
    disk.kv.insert(key.clone(), flipped);
    disk.kv.insert(b"txi/short".to_vec(), vec![1, 0, 0, 0]);
    // A hostile count: far more keys than any block holds.
    let other = crate::serve::txindex::record_key(&parsed[5].block_hash());
    disk.kv
        .insert(other.clone(), u32::MAX.to_le_bytes().to_vec());
    let (mut node, gets) = restart(&config, &list, &mut disk);
    assert_eq!(
        gets, 2,
        "only the two blocks with bad records are read back"
    );
    assert_eq!(disk.kv[&key], good, "the record is written again");
    assert!(
        !disk.kv.contains_key(b"txi/short".as_slice()),
        "bad key deleted"
    );
    assert_eq!(disk.kv.len(), parsed.len());
    for h in [3, 5] {
        let txid = parsed[h].txdata[0].txid();
        assert_eq!(confirmed_height(&mut node, &mut disk, txid), Some(h as u32));
    }
}

/// A record whose block is no longer stored is deleted, and its transactions are not
/// indexed.
#[test]
fn a_record_without_its_block_is_removed() {
    let (config, list, parsed, mut disk) = archive_with_blocks();
    let gone = parsed[6].block_hash();
    disk.blocks.remove(&gone);
    let key = crate::serve::txindex::record_key(&gone);
    assert!(disk.kv.contains_key(&key));
    let (node, gets) = restart(&config, &list, &mut disk);
    assert_eq!(gets, 0);
    assert!(!disk.kv.contains_key(&key), "orphan record deleted");
    assert!(!node.shared.serving.serve.index().contains_block(&gone));
    assert_eq!(
        node.shared.serving.serve.index().block_count(),
        parsed.len() - 1
    );
}

/// S14 and S15 in a running cluster: a block the archive never had arrives at members;
/// exactly its holders store it, announce it, and it is declared safely stored.
#[test]
fn new_blocks_reach_their_holders_routed_and_self_selected() {
    use crate::serve::newblock::StorageMode;
    use crate::testnet::Net;
    for mode in [StorageMode::Routed, StorageMode::SelfSelected] {
        let mut config = fast_config();
        config.serve.new_blocks.mode = mode;
        config.serve.new_blocks.redrive_after_ms = 1_000;
        let mut configs = vec![Config {
            archive: true,
            ..fast_config()
        }];
        configs.extend(std::iter::repeat_n(config, 5));
        let blocks = 20;
        let mut net = Net::new(configs, blocks, 11);
        let last = net.blocks.len() - 1;
        let known: Vec<Vec<u8>> = net.blocks[..last].to_vec();
        for bytes in known {
            net.input(0, Input::NewBlock { bytes });
        }
        net.introduce_all();
        net.run_until(30_000);
        let members: Vec<usize> = (1..net.nodes.len())
            .filter(|i| net.nodes[*i].cluster().is_some())
            .collect();
        assert!(members.len() >= 3, "a cluster formed: {members:?}");
        let new_block = net.blocks[last].clone();
        let hash = Block::decode(&new_block).unwrap().block_hash();
        let learners: Vec<usize> = match mode {
            StorageMode::Routed => vec![members[0]],
            StorageMode::SelfSelected => members.clone(),
        };
        for i in learners {
            net.input(
                i,
                Input::NewBlock {
                    bytes: new_block.clone(),
                },
            );
        }
        let now = net.now_ms;
        net.run_until(now + 10_000);
        let holders: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| net.stores[*i].contains_key(&hash))
            .collect();
        let p = 3.min(members.len());
        assert_eq!(holders.len(), p, "{mode:?}: exactly P members store it");
        for i in &holders {
            assert!(
                net.nodes[*i].holds(last as u32),
                "{mode:?}: holder {i} knows it holds it"
            );
        }
        let safe: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| {
                net.events[*i].iter().any(|e| {
                    *e == Event::BlockSafelyStored {
                        block_hash: hash,
                        height: last as u32,
                    }
                })
            })
            .collect();
        match mode {
            StorageMode::Routed => {
                assert!(safe.contains(&members[0]), "the router saw P announcements")
            }
            StorageMode::SelfSelected => {
                assert_eq!(safe, members, "every member saw P announcements")
            }
        }
    }
}

/// S16 and S17 in a running cluster: a member answers queries for blocks it does not hold
/// by asking the holders, checks their proofs against its own headers, and runs code on a
/// block it does not hold after fetching it.
#[test]
fn members_answer_queries_and_run_jobs_for_any_block() {
    let blocks = 30;
    let mut net = network(5, blocks, fast_config(), 7);
    net.run_until(30_000);
    let member = (1..net.nodes.len())
        .find(|i| net.nodes[*i].cluster().is_some())
        .expect("a cluster formed");
    assert!(
        net.nodes[member].held_count() > 0,
        "repair filled the shard"
    );
    let parsed: Vec<Block> = net
        .blocks
        .iter()
        .map(|b| Block::decode(b).unwrap())
        .collect();
    let not_held = parsed
        .iter()
        .position(|b| !net.stores[member].contains_key(&b.block_hash()))
        .expect("a member holds only part of the chain");
    let held = parsed
        .iter()
        .position(|b| net.stores[member].contains_key(&b.block_hash()))
        .unwrap();
    let queries = [
        (1, parsed[not_held].txdata[0].txid(), None),
        (2, parsed[held].txdata[0].txid(), None),
        (
            3,
            parsed[not_held].txdata[0].txid(),
            Some(parsed[not_held].block_hash()),
        ),
        (4, Txid([7; 32]), None),
    ];
    for (query_id, txid, block_hint) in queries {
        net.input(
            member,
            Input::TxQuery {
                query_id,
                txid,
                block_hint,
            },
        );
    }
    let job_block = parsed[not_held].block_hash();
    net.input(
        member,
        Input::RunJob {
            job: 9,
            block_hash: job_block,
        },
    );
    let now = net.now_ms;
    net.run_until(now + 15_000);
    let results: Vec<(u64, QueryResult)> = net.events[member]
        .iter()
        .filter_map(|e| match e {
            Event::TxQueryDone {
                query_id, result, ..
            } => Some((*query_id, result.clone())),
            _ => None,
        })
        .collect();
    let height_of = |q: u64| {
        results
            .iter()
            .find(|(id, _)| *id == q)
            .map(|(_, r)| match r {
                QueryResult::Confirmed { height, .. } => Some(*height),
                _ => None,
            })
    };
    assert_eq!(height_of(1), Some(Some(not_held as u32)), "{results:?}");
    assert_eq!(height_of(2), Some(Some(held as u32)), "{results:?}");
    assert_eq!(height_of(3), Some(Some(not_held as u32)), "{results:?}");
    assert!(results.contains(&(4, QueryResult::NotFound)), "{results:?}");
    assert!(net.events[member].contains(&Event::JobReady {
        job: 9,
        block_hash: job_block
    }));
    let count = net.nodes[member].with_block(&job_block, |b| b.txdata.len());
    assert_eq!(count, Some(1));
    assert!(
        !net.stores[member].contains_key(&job_block),
        "cached, not stored"
    );
}

/// S14 and S15 by announcement, as in the browser: the block source (an archive with
/// `announce`) stores a new block and announces its header to its light nodes; each member
/// learns of it before its header chain has it, then gets the longer chain. Routed, only the
/// block's first holder asks the source for it and sends it to the other holders (the bytes
/// leave the source once per cluster); self-selected, every holder asks the source itself
/// (once per holder). Either way exactly P members store it, nobody fetches it twice, and
/// repair's rescan does not fetch it beside the new-block path.
#[test]
fn announced_new_blocks_leave_the_source_once_per_cluster_routed_and_once_per_holder_self_selected()
{
    use crate::chain_seam::HeaderPrefix;
    use crate::serve::newblock::StorageMode;
    use crate::testnet::Net;
    for mode in [StorageMode::Routed, StorageMode::SelfSelected] {
        let mut config = fast_config();
        config.serve.new_blocks.mode = mode;
        let mut source = Config {
            archive: true,
            ..fast_config()
        };
        source.serve.new_blocks.announce = true;
        let mut configs = vec![source];
        configs.extend(std::iter::repeat_n(config, 5));
        let mut net = Net::new(configs, 20, 12);
        let last = net.blocks.len() - 1;
        let before = Arc::new(HeaderPrefix::new(net.chain.clone(), last as u32));
        for i in 0..net.nodes.len() {
            net.input(i, Input::Headers(before.clone()));
        }
        let known = net.blocks[..last].to_vec();
        for bytes in known {
            net.input(0, Input::NewBlock { bytes });
        }
        net.introduce_all();
        net.run_until(30_000);
        let members: Vec<usize> = (1..net.nodes.len())
            .filter(|i| net.nodes[*i].cluster().is_some())
            .collect();
        assert_eq!(members.len(), 5, "{mode:?}: one cluster of five formed");
        assert!(
            members.iter().all(|i| net.nodes[*i].missing_count() == 0),
            "{mode:?}: the shards are full"
        );
        let kinds = net.by_kind.clone();
        let failures: Vec<u64> = members
            .iter()
            .map(|i| net.nodes[*i].stats().fetch_failures)
            .collect();
        let count = |net: &Net, kind: &str| {
            net.by_kind.get(kind).copied().unwrap_or(0) - kinds.get(kind).copied().unwrap_or(0)
        };
        // The source gets the block and announces it.
        let full = net.chain.clone();
        let new_block = net.blocks[last].clone();
        let hash = Block::decode(&new_block).unwrap().block_hash();
        net.input(0, Input::Headers(full.clone()));
        net.input(0, Input::NewBlock { bytes: new_block });
        let now = net.now_ms;
        net.run_until(now + 50);
        assert_eq!(
            count(&net, "block_announce"),
            5,
            "{mode:?}: one per light node"
        );
        assert_eq!(
            count(&net, "get_block"),
            0,
            "{mode:?}: nobody asks before it has the header"
        );
        // Each member's header sync accepts the header: the node gets the longer chain.
        for i in &members {
            net.input(*i, Input::Headers(full.clone()));
        }
        let now = net.now_ms;
        net.run_until(now + 5_000);
        let holders: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| net.stores[*i].contains_key(&hash))
            .collect();
        assert_eq!(holders.len(), 3, "{mode:?}: exactly P members store it");
        let requested: u64 = members
            .iter()
            .map(|i| net.nodes[*i].stats().new_blocks_requested)
            .sum();
        match mode {
            StorageMode::Routed => {
                assert_eq!(requested, 1, "routed: one member asks the source");
                assert_eq!(count(&net, "get_block"), 1, "routed: no other fetch");
                assert_eq!(
                    count(&net, "new_block"),
                    2,
                    "routed: sent to the two other holders"
                );
            }
            StorageMode::SelfSelected => {
                assert_eq!(requested, 3, "self-selected: every holder asks the source");
                assert_eq!(count(&net, "get_block"), 3, "self-selected: no other fetch");
                assert_eq!(count(&net, "new_block"), 0, "self-selected: nobody routes");
            }
        }
        assert_eq!(
            count(&net, "block_data"),
            count(&net, "get_block"),
            "{mode:?}: every fetch answered"
        );
        for (i, before) in members.iter().zip(failures) {
            let failed = net.nodes[*i].stats().fetch_failures - before;
            assert_eq!(failed, 0, "{mode:?}: member {i}");
            assert_eq!(net.nodes[*i].missing_count(), 0, "{mode:?}: member {i}");
        }
        assert!(
            count(&net, "block_stored") >= 3 * 4,
            "{mode:?}: each holder told the other members"
        );
    }
}

/// An announcement is a hint from a block source only: from a member (not an archive) it is
/// ignored; a source that does not have the block (`BlockNotFound`) hands it to repair, which
/// fetches it elsewhere.
#[test]
fn announcements_from_non_sources_are_ignored_and_a_failed_fetch_falls_back_to_repair() {
    use crate::chain_seam::HeaderPrefix;
    use crate::serve::newblock::StorageMode;
    use crate::testnet::Net;
    let mut config = fast_config();
    config.serve.new_blocks.mode = StorageMode::SelfSelected;
    let mut configs = vec![archive_config_announcing()];
    configs.extend(std::iter::repeat_n(config, 4));
    let mut net = Net::new(configs, 12, 13);
    let last = net.blocks.len() - 1;
    let before = Arc::new(HeaderPrefix::new(net.chain.clone(), last as u32));
    for i in 0..net.nodes.len() {
        net.input(i, Input::Headers(before.clone()));
    }
    let known = net.blocks[..last].to_vec();
    for bytes in known {
        net.input(0, Input::NewBlock { bytes });
    }
    net.introduce_all();
    net.run_until(30_000);
    let members: Vec<usize> = (1..net.nodes.len())
        .filter(|i| net.nodes[*i].cluster().is_some())
        .collect();
    assert!(members.len() >= 3);
    let header = net.chain.header_at(last as u32).unwrap();
    // From a member: ignored.
    let member_id = net.id(members[0]);
    let target = members[1];
    let ignored = net.nodes[target].stats().messages_ignored;
    net.inject(
        target,
        member_id,
        crate::wire::Message::BlockAnnounce { header },
    );
    let now = net.now_ms;
    net.run_until(now + 20);
    assert_eq!(net.nodes[target].stats().announcements_received, 0);
    assert_eq!(net.nodes[target].stats().messages_ignored, ignored + 1);
    // From the archive, which has not stored the block: every holder asks, is told
    // `BlockNotFound`, and repair takes over (the block is nowhere yet, so it waits).
    let archive = net.id(0);
    let full = net.chain.clone();
    for i in &members {
        net.inject(*i, archive, crate::wire::Message::BlockAnnounce { header });
    }
    let now = net.now_ms;
    net.run_until(now + 5);
    for i in &members {
        net.input(*i, Input::Headers(full.clone()));
    }
    let now = net.now_ms;
    net.run_until(now + 200);
    let requested: u64 = members
        .iter()
        .map(|i| net.nodes[*i].stats().new_blocks_requested)
        .sum();
    assert_eq!(requested, 3, "the holders asked the source");
    // Now the source gets it: repair's retry brings it to P holders.
    net.input(0, Input::Headers(full.clone()));
    net.input(
        0,
        Input::NewBlock {
            bytes: net.blocks[last].clone(),
        },
    );
    let now = net.now_ms;
    net.run_until(now + 10_000);
    let hash = net.chain.block_hash_at(last as u32).unwrap();
    let holders = members
        .iter()
        .filter(|i| net.stores[**i].contains_key(&hash))
        .count();
    assert_eq!(holders, 3);
}

fn archive_config_announcing() -> Config {
    let mut config = Config {
        archive: true,
        ..fast_config()
    };
    config.serve.new_blocks.announce = true;
    config
}
