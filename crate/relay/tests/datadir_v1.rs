//! A data directory written by the relay before it answered through its archive node
//! (`tests/data/datadir-v1`, see its README) keeps working: opened by today's code, its
//! identity is the same, its chain is all there, the archive node answers `GetHeaders`,
//! `GetBlock` and `TxQuery` (with proofs that check) for every block from the index records
//! the old relay wrote, and the chain grows by a generated block.

use std::path::{Path, PathBuf};

use libp2p::PeerId;
use shoal_core::chain::{Block, MerkleProof};
use shoal_core::wire::{Hash256, Message, TxAnswerBody};
use shoal_net::node_link;
use shoal_relay::serve::archive::{ArchiveNode, FromNode, ToNode};
use shoal_relay::serve::identity;
use shoal_relay::serve::link::{Key, Kind};
use shoal_relay::serve::source::{BlockSource, SourceConfig};
use shoal_relay::serve::store::ChainStore;
use shoal_relay::serve::CHAIN_DB_FILE;

const TIP_HEIGHT: u32 = 6;
const PEER_ID: &str = "12D3KooWRG5yL28y6DrwrWRWqDWVD2XRBsRY5aNL565RU4eMCE4L";
/// How the fixture's chain was generated (its README).
const SOURCE: SourceConfig = SourceConfig {
    initial_blocks: 6,
    txs_per_block: 4,
    target_block_size_bytes: None,
    seed: 11,
};

/// A copy of the fixture: the committed files are never written.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/datadir-v1");
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("data");
    std::fs::create_dir(&to).unwrap();
    for name in [CHAIN_DB_FILE, "identity.key", "webrtc-cert.pem"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    (dir, to)
}

fn run(node: &mut ArchiveNode) -> Vec<FromNode> {
    futures::executor::block_on(node.run())
}

/// Hands `message` from `peer` to the node; its one answer, which must name the held request.
fn ask(node: &mut ArchiveNode, peer: PeerId, message: Message, kind: Kind) -> Message {
    let Some(Key { request_id, .. }) = Key::of_request(peer, &message) else {
        panic!("{message:?} is not a request the node answers")
    };
    node.push(ToNode::Message { peer, message });
    let answers: Vec<Message> = run(node)
        .into_iter()
        .filter_map(|output| match output {
            FromNode::Send {
                peer: to,
                answers,
                bytes,
            } if to == peer => {
                assert_eq!(
                    answers,
                    Some(Key {
                        peer,
                        kind,
                        request_id
                    })
                );
                Some(node_link::decode_request(&bytes).unwrap())
            }
            _ => None,
        })
        .collect();
    let [answer] = <[Message; 1]>::try_from(answers).expect("one answer");
    answer
}

/// Every transaction of `block` (at `height`) is proven by the node against its header.
fn proves_every_transaction(node: &mut ArchiveNode, peer: PeerId, block: &Block, height: u32) {
    for (pos, tx) in block.txdata.iter().enumerate() {
        let txid = tx.txid();
        let query = Message::TxQuery {
            request_id: 100 + pos as u64,
            txid: Hash256(txid.0),
            block_hint: None,
        };
        let answer = ask(node, peer, query, Kind::Tx);
        let Message::TxAnswer {
            answer:
                TxAnswerBody::Found {
                    block_hash,
                    height: h,
                    pos: p,
                    branch,
                    header,
                    tx: raw_tx,
                },
            ..
        } = answer
        else {
            panic!("height {height} position {pos}: {answer:?}")
        };
        assert_eq!(
            (block_hash, h, p as usize),
            (block.block_hash(), height, pos)
        );
        assert_eq!(header, Some(block.header));
        assert_eq!(raw_tx, block.txdata[pos].encode());
        MerkleProof {
            block_hash,
            height: h,
            pos: p,
            branch,
        }
        .verify_against_header(txid, &block.header)
        .unwrap();
    }
}

#[test]
fn a_data_directory_of_the_old_relay_keeps_working() {
    let (_guard, data_dir) = fixture_copy();
    let identity = identity::load_or_create(&data_dir).unwrap();
    let peer_id = identity.keypair.public().to_peer_id();
    assert_eq!(peer_id.to_string(), PEER_ID, "the same identity");

    let store = ChainStore::open(&data_dir.join(CHAIN_DB_FILE)).unwrap();
    let tip = store.tip().unwrap().expect("the chain is there");
    assert_eq!(tip.height, TIP_HEIGHT);
    assert!(
        tip.hash.to_string().starts_with("6e6becd23022eb9a"),
        "{}",
        tip.hash
    );
    assert_eq!(store.len().unwrap(), u64::from(TIP_HEIGHT) + 1);
    assert_eq!(
        store.kv_records().unwrap().len(),
        TIP_HEIGHT as usize + 1,
        "the old archive node's index records"
    );
    // The generator resumes on the stored chain, as `serve` does before it starts the node.
    let mut source = BlockSource::open(&store, &SOURCE, 0).unwrap();
    assert_eq!(source.height(), TIP_HEIGHT);

    let mut node = ArchiveNode::start(store, peer_id, String::new(), 11).unwrap();
    assert!(run(&mut node).is_empty());
    assert_eq!(
        node.blocks_read(),
        0,
        "the index is loaded from the old records"
    );
    let page = PeerId::random();
    node.push(ToNode::Connected(page));
    run(&mut node);

    let get_headers = Message::GetHeaders {
        request_id: 1,
        start_height: 0,
        max_count: 2000,
    };
    let Message::Headers {
        tip_height,
        headers,
        ..
    } = ask(&mut node, page, get_headers, Kind::Headers)
    else {
        panic!("not a Headers answer")
    };
    assert_eq!(
        (tip_height, headers.len()),
        (TIP_HEIGHT, TIP_HEIGHT as usize + 1)
    );
    assert_eq!(headers.last().unwrap().block_hash(), tip.hash);
    for (height, header) in headers.iter().enumerate() {
        let get_block = Message::GetBlock {
            request_id: 2,
            block_hash: header.block_hash(),
        };
        let Message::BlockData { block, .. } = ask(&mut node, page, get_block, Kind::Block) else {
            panic!("block {height} not served")
        };
        let block = Block::decode(&block).unwrap();
        assert_eq!(block.block_hash(), header.block_hash());
        proves_every_transaction(&mut node, page, &block, height as u32);
    }
    let unknown = Message::TxQuery {
        request_id: 3,
        txid: Hash256([0x5a; 32]),
        block_hint: None,
    };
    assert!(matches!(
        ask(&mut node, page, unknown, Kind::Tx),
        Message::TxAnswer {
            answer: TxAnswerBody::NotFound,
            ..
        }
    ));

    // A new block is appended, indexed and served.
    let (height, block) = source.next(node.store(), 1_800_000_000).unwrap();
    assert_eq!(height, TIP_HEIGHT + 1);
    node.on_new_block(&block);
    run(&mut node);
    assert_eq!(
        node.store().tip().unwrap().unwrap().hash,
        block.block_hash()
    );
    proves_every_transaction(&mut node, page, &block, height);

    // Reopened, everything is still there, the new block's index record too.
    drop(node);
    let store = ChainStore::open(&data_dir.join(CHAIN_DB_FILE)).unwrap();
    assert_eq!(store.tip().unwrap().unwrap().height, TIP_HEIGHT + 1);
    assert_eq!(store.kv_records().unwrap().len(), TIP_HEIGHT as usize + 2);
}
