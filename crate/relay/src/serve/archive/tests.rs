use std::path::Path;

use shoal_core::chain::{MerkleProof, Txid};
use shoal_core::wire::Hash256;

use super::*;
use crate::serve::link::Kind;
use crate::serve::source::SourceConfig;

const BLOCKS: u32 = 5;

/// A store with the regtest genesis and `BLOCKS` generated blocks, every block of it, and the
/// generator that made them.
fn chain(dir: &Path) -> (ChainStore, Vec<Block>, BlockSource) {
    let store = ChainStore::open(&dir.join("chain.redb")).unwrap();
    let config = SourceConfig {
        initial_blocks: BLOCKS,
        txs_per_block: 3,
        target_block_size_bytes: None,
        seed: 5,
    };
    let source = BlockSource::open(&store, &config, 1_700_000_000).unwrap();
    let blocks = store
        .headers(0, BLOCKS + 1)
        .unwrap()
        .iter()
        .map(|header| store.block(&header.block_hash()).unwrap().unwrap())
        .collect();
    (store, blocks, source)
}

fn run(node: &mut ArchiveNode) -> Vec<FromNode> {
    futures::executor::block_on(node.run())
}

/// An archive node over `store`, started and run until quiet.
fn started(store: ChainStore) -> ArchiveNode {
    let mut node = ArchiveNode::start(store, PeerId::random(), String::new(), 1).unwrap();
    assert_eq!(run(&mut node), Vec::new(), "nobody to talk to yet");
    node
}

/// The messages in `out` for `peer`, each with the held request it answers.
fn sent(out: Vec<FromNode>, peer: PeerId) -> Vec<(Option<Key>, Message)> {
    out.into_iter()
        .filter_map(|output| match output {
            FromNode::Send {
                peer: to,
                answers,
                bytes,
            } if to == peer => Some((answers, node_link::decode_request(&bytes).unwrap())),
            _ => None,
        })
        .collect()
}

/// Hands `message` from `peer` to the node; what it sends `peer` in return.
fn ask(node: &mut ArchiveNode, peer: PeerId, message: Message) -> Vec<(Option<Key>, Message)> {
    node.push(ToNode::Message { peer, message });
    sent(run(node), peer)
}

fn connected(node: &mut ArchiveNode) -> PeerId {
    let page = PeerId::random();
    node.push(ToNode::Connected(page));
    let greeting = sent(run(node), page);
    assert!(
        matches!(greeting.first(), Some((None, Message::Hello { record, .. })) if record.archive),
        "{greeting:?}"
    );
    page
}

fn query(request_id: u64, txid: Txid) -> Message {
    Message::TxQuery {
        request_id,
        txid: Hash256(txid.0),
        block_hint: None,
    }
}

fn key(peer: PeerId, kind: Kind, request_id: u64) -> Option<Key> {
    Some(Key {
        peer,
        kind,
        request_id,
    })
}

/// `GetHeaders`, `TxQuery` and `GetBlock` are the node's: each answer names the held request
/// it answers, and carries what pages got from the relay before (the best height in
/// `Headers`, the header beside a proof, `NotFound` for a transaction not in the chain).
#[test]
fn the_node_answers_every_serving_request_under_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blocks, _) = chain(dir.path());
    let mut node = started(store);
    let page = connected(&mut node);

    let get_headers = Message::GetHeaders {
        request_id: 7,
        start_height: 1,
        max_count: 3,
    };
    assert_eq!(
        ask(&mut node, page, get_headers),
        vec![(
            key(page, Kind::Headers, 7),
            Message::Headers {
                request_id: 7,
                start_height: 1,
                tip_height: BLOCKS,
                headers: blocks[1..4].iter().map(|b| b.header).collect(),
            }
        )]
    );

    for (height, block) in blocks.iter().enumerate() {
        for (pos, tx) in block.txdata.iter().enumerate() {
            let txid = tx.txid();
            let answer = ask(&mut node, page, query(7, txid));
            let [(
                answers,
                Message::TxAnswer {
                    request_id: 7,
                    answer:
                        TxAnswerBody::Found {
                            block_hash,
                            height: h,
                            pos: p,
                            branch,
                            header,
                            tx: raw_tx,
                        },
                },
            )] = answer.as_slice()
            else {
                panic!("{height}/{pos}: {answer:?}")
            };
            assert_eq!(*answers, key(page, Kind::Tx, 7));
            assert_eq!(
                (*block_hash, *h as usize, *p as usize),
                (block.block_hash(), height, pos)
            );
            assert_eq!(*header, Some(block.header), "the header rides along");
            assert_eq!(
                *raw_tx,
                block.txdata[pos].encode(),
                "the transaction rides along"
            );
            let proof = MerkleProof {
                block_hash: *block_hash,
                height: *h,
                pos: *p,
                branch: branch.clone(),
            };
            proof.verify_against_header(txid, &block.header).unwrap();
        }
    }
    assert_eq!(
        ask(&mut node, page, query(8, Txid([0x5a; 32]))),
        vec![(
            key(page, Kind::Tx, 8),
            Message::TxAnswer {
                request_id: 8,
                answer: TxAnswerBody::NotFound
            }
        )]
    );

    let tip = blocks.last().unwrap();
    let get_block = |block_hash| Message::GetBlock {
        request_id: 9,
        block_hash,
    };
    assert_eq!(
        ask(&mut node, page, get_block(tip.block_hash())),
        vec![(
            key(page, Kind::Block, 9),
            Message::BlockData {
                request_id: 9,
                block: tip.encode()
            }
        )]
    );
    assert_eq!(
        ask(&mut node, page, get_block(BlockHash([0xab; 32]))),
        vec![(
            key(page, Kind::Block, 9),
            Message::BlockNotFound { request_id: 9 }
        )]
    );
}

/// The archive's rate for outsiders lets a page ask its burst of proofs in a row (the e2e
/// tests ask 50, the benchmark 200); beyond the rate the core stays silent (the relay then
/// acknowledges the held request when it times out).
#[test]
fn a_page_gets_a_burst_of_proofs_in_a_row_and_silence_beyond_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blocks, _) = chain(dir.path());
    let mut node = started(store);
    let page = connected(&mut node);
    let txids: Vec<Txid> = blocks
        .iter()
        .flat_map(|b| b.txdata.iter().map(|tx| tx.txid()))
        .collect();
    let burst = u64::from(ARCHIVE_PEER_QUERY_RATE.burst);
    for request_id in 0..burst {
        let txid = txids[request_id as usize % txids.len()];
        let answer = ask(&mut node, page, query(request_id, txid));
        assert!(
            matches!(
                answer.as_slice(),
                [(
                    _,
                    Message::TxAnswer {
                        answer: TxAnswerBody::Found { .. },
                        ..
                    }
                )]
            ),
            "query {request_id}: {answer:?}"
        );
    }
    let answered = (0..400)
        .filter(|i| !ask(&mut node, page, query(burst + i, txids[0])).is_empty())
        .count();
    assert!(answered < 400, "a page's rate is limited");
    // Another page has its own bucket.
    let other = connected(&mut node);
    assert_eq!(ask(&mut node, other, query(1, txids[0])).len(), 1);
}

/// The archive's index records go to the store: the first start reads every block back and
/// writes their records, a restart loads the records and reads nothing.
#[test]
fn a_restarted_archive_loads_its_index_instead_of_reading_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blocks, _) = chain(dir.path());
    let node = started(store);
    let stored = blocks.len() as u64;
    assert_eq!(
        node.blocks_read(),
        stored,
        "no records yet: every block is read back"
    );
    assert_eq!(node.store().kv_records().unwrap().len() as u64, stored);
    drop(node);
    let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
    let mut node = started(store);
    assert_eq!(node.blocks_read(), 0, "the records are loaded");
    let page = connected(&mut node);
    let txid = blocks[2].txdata[1].txid();
    assert!(matches!(
        ask(&mut node, page, query(1, txid)).as_slice(),
        [(
            _,
            Message::TxAnswer {
                answer: TxAnswerBody::Found { height: 2, .. },
                ..
            }
        )]
    ));
}

/// The node's own thread: fed and answering over its channels, appending the generator's
/// blocks and telling the node, and ending when the swarm task's ends of the channels go.
#[tokio::test]
async fn the_node_thread_answers_over_its_channels_and_ends_with_the_swarm_task() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, source) = chain(dir.path());
    let node = ArchiveNode::start(store, PeerId::random(), String::new(), 1).unwrap();
    let generating = Generating {
        source,
        interval: Duration::from_millis(50),
    };
    let mut thread = spawn(node, Some(Feed::Generating(Box::new(generating)))).unwrap();
    let page = PeerId::random();
    thread.inbox.send(ToNode::Connected(page)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut request_id = 0;
    let tip_height = loop {
        request_id += 1;
        let get_headers = Message::GetHeaders {
            request_id,
            start_height: 0,
            max_count: 2000,
        };
        let message = ToNode::Message {
            peer: page,
            message: get_headers,
        };
        thread.inbox.send(message).await.unwrap();
        let headers = loop {
            let output = tokio::time::timeout_at(deadline, thread.outbox.recv())
                .await
                .expect("the node answers in time")
                .expect("the node's thread runs");
            if let FromNode::Send {
                answers: Some(answers),
                bytes,
                ..
            } = output
            {
                assert_eq!(answers, key(page, Kind::Headers, request_id).unwrap());
                break node_link::decode_request(&bytes).unwrap();
            }
        };
        let Message::Headers {
            tip_height,
            headers,
            ..
        } = headers
        else {
            panic!("{headers:?}")
        };
        assert_eq!(headers.len() as u32, tip_height + 1);
        if tip_height > BLOCKS {
            break tip_height;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(tip_height > BLOCKS, "a generated block reached the node");
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .expect("the thread ends cleanly");
    // The database is closed: it opens again.
    let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
    assert!(store.tip().unwrap().unwrap().height >= tip_height);
}
