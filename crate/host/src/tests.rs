use std::sync::Arc;

use futures::executor::block_on;
use shoal_core::chain::generate::{generate_chain, GenerateConfig};
use shoal_core::chain::{Block, BlockHash};
use shoal_core::node::{
    Config, Event, HeaderList, Input, KvOp, KvRecord, Node, NodeId, Output, StorageCommand,
    StorageResult, TimerId, KV_VALUE_MAX,
};

use super::*;

/// Outputs a test shell saw, and inputs it answers with at once.
#[derive(Default)]
struct Seen {
    outputs: Vec<Output>,
    stored: Vec<StorageResult>,
    /// Answer every dial at once with "connected".
    connect_at_once: bool,
}

impl Io for Seen {
    fn carry_out(&mut self, output: Output, inputs: &mut Inputs) {
        if let (true, Output::Connect { peer, .. }) = (self.connect_at_once, &output) {
            inputs.push(Input::PeerConnected { peer: *peer });
        }
        self.outputs.push(output);
    }

    fn stored(&mut self, _command: &StorageCommand, result: &StorageResult) {
        self.stored.push(result.clone());
    }
}

fn chain(blocks: u32) -> (Vec<Block>, Arc<HeaderList>) {
    let blocks = generate_chain(&GenerateConfig {
        blocks,
        txs_per_block: 2,
        seed: 7,
        ..GenerateConfig::default()
    })
    .unwrap();
    let headers = HeaderList::new(blocks.iter().map(|b| b.header).collect());
    (blocks, Arc::new(headers))
}

fn archive() -> Node {
    let config = Config {
        archive: true,
        ..Config::default()
    };
    Node::new(config, NodeId::from_seed(1), 1).unwrap()
}

/// An archive started through the host stores every block of the source in the store, writes
/// an index record for each, and keeps the node's timers as one deadline.
#[test]
fn an_archive_runs_to_quiet_and_its_blocks_and_records_land_in_the_store() {
    let (blocks, headers) = chain(6);
    let mut host = Host::new(archive());
    let mut store = MemoryStore::default();
    let mut io = Seen::default();
    host.push(Input::Headers(headers));
    host.push(Input::Start);
    for block in &blocks {
        host.push(Input::NewBlock {
            bytes: block.encode(),
        });
    }
    assert_eq!(block_on(host.run(0, &mut store, &mut io)), None);
    assert!(
        !host.has_inputs(),
        "run returns only once the node is quiet"
    );
    assert_eq!(store.blocks.len(), blocks.len(), "every block stored");
    for block in &blocks {
        let (_, bytes) = &store.blocks[&block.block_hash()];
        assert_eq!(bytes, &block.encode());
    }
    assert_eq!(
        store.kv.len(),
        blocks.len(),
        "one index record per held block"
    );
    let stored_events = io
        .outputs
        .iter()
        .filter(|o| matches!(o, Output::Event(Event::BlockStored { .. })))
        .count();
    assert_eq!(stored_events, blocks.len());
    assert!(
        io.outputs
            .iter()
            .all(|o| !matches!(o, Output::SetTimer { .. } | Output::Storage(_))),
        "timers and storage are the host's own business"
    );
    assert!(io
        .stored
        .iter()
        .any(|r| matches!(r, StorageResult::Put { ok: true, .. })));
}

/// The node's timers are one deadline: nothing fires before it, the due timer fires once.
#[test]
fn timers_fire_when_due_and_only_once() {
    let mut host = Host::new(Node::new(Config::default(), NodeId::from_seed(5), 5).unwrap());
    let mut store = MemoryStore::default();
    host.push(Input::Start);
    block_on(host.run(0, &mut store, &mut Seen::default()));
    let deadline = host
        .poll_timeout()
        .expect("an ordinary node keeps its formation timer");
    assert_eq!(host.timer(TimerId::Formation), Some(deadline));
    assert!(deadline > 0);
    host.handle_timeout(deadline - 1);
    assert!(!host.has_inputs(), "nothing fires early");
    host.handle_timeout(deadline);
    assert!(host.has_inputs(), "the due timer is queued");
    block_on(host.run(deadline, &mut store, &mut Seen::default()));
    assert!(
        host.poll_timeout().is_some_and(|next| next > deadline),
        "the node set its next timer"
    );
    host.handle_timeout(deadline);
    assert!(!host.has_inputs(), "a fired timer does not fire twice");
}

/// A restarted node over the same store loads its index records instead of reading every
/// block back.
#[test]
fn a_restart_reads_records_not_blocks() {
    let (blocks, headers) = chain(4);
    let mut store = MemoryStore::default();
    let mut host = Host::new(archive());
    host.push(Input::Headers(headers.clone()));
    host.push(Input::Start);
    for block in &blocks {
        host.push(Input::NewBlock {
            bytes: block.encode(),
        });
    }
    block_on(host.run(0, &mut store, &mut Seen::default()));
    drop(host);
    let mut host = Host::new(archive());
    host.push(Input::Headers(headers));
    host.push(Input::Start);
    let mut io = Seen::default();
    block_on(host.run(0, &mut store, &mut io));
    let gets = io
        .stored
        .iter()
        .filter(|r| matches!(r, StorageResult::Got { .. }))
        .count();
    assert_eq!(gets, 0, "every block had its record: none is read back");
    assert_eq!(host.node().held_count(), blocks.len());
}

/// What an [`Io`] queues while carrying out an output is fed in the same drain.
#[test]
fn inputs_queued_by_the_shell_are_fed_before_the_drain_returns() {
    let mut host = Host::new(Node::new(Config::default(), NodeId::from_seed(2), 2).unwrap());
    let mut io = Seen {
        connect_at_once: true,
        ..Seen::default()
    };
    host.push(Input::Start);
    host.push(Input::CandidatePeers(vec![shoal_core::node::Candidate {
        id: NodeId::from_seed(3),
        address: "peer-3".into(),
    }]));
    host.drain(0, &mut io);
    assert!(!host.has_inputs());
    let dialled = io
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Connect { peer, .. } if *peer == NodeId::from_seed(3)));
    let greeted = io.outputs.iter().any(|o| {
        matches!(o, Output::Send { to, message: shoal_core::wire::Message::Hello { .. } } if *to == NodeId::from_seed(3))
    });
    assert!(dialled, "the candidate is dialled");
    assert!(
        greeted,
        "the connection the shell reported at once was fed: hello sent"
    );
}

/// A store whose writes fail, and which refuses one block.
#[derive(Default)]
struct Failing {
    inner: MemoryStore,
    fail_writes: bool,
    refuse: Option<BlockHash>,
}

impl BlockStore for Failing {
    type Error = &'static str;

    fn accepts(&mut self, hash: &BlockHash, bytes: &[u8]) -> bool {
        Some(*hash) != self.refuse && Block::decode(bytes).is_ok()
    }

    async fn write(&mut self, writes: &[Write<'_>]) -> Result<(), Self::Error> {
        if self.fail_writes {
            return Err("disk full");
        }
        let Ok(()) = self.inner.write(writes).await;
        Ok(())
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, Self::Error> {
        let Ok(block) = self.inner.block(hash).await;
        Ok(block)
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, Self::Error> {
        Err("index unreadable")
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, Self::Error> {
        let Ok(records) = self.inner.kv_records().await;
        Ok(records)
    }
}

fn put(id: u64, block: &Block, height: u32) -> StorageCommand {
    StorageCommand::Put {
        request_id: id,
        block_hash: block.block_hash(),
        height,
        bytes: block.encode(),
    }
}

/// Results come in the order of the commands; the writes of a batch land together; a refused
/// block, a record over the limit and undecodable bytes fail alone; a failed write fails every
/// write of the batch and changes nothing stored.
#[test]
fn the_executor_keeps_order_and_writes_each_batch_atomically() {
    let (blocks, _) = chain(3);
    let mut store = Failing {
        refuse: Some(blocks[2].block_hash()),
        ..Failing::default()
    };
    let commands = vec![
        put(1, &blocks[0], 0),
        StorageCommand::Put {
            request_id: 2,
            block_hash: blocks[1].block_hash(),
            height: 1,
            bytes: vec![0xff; 10],
        },
        put(3, &blocks[2], 2),
        StorageCommand::WriteKv {
            request_id: 4,
            ops: vec![KvOp::Put {
                key: b"k".to_vec(),
                value: vec![1],
            }],
        },
        StorageCommand::WriteKv {
            request_id: 5,
            ops: vec![KvOp::Put {
                key: b"big".to_vec(),
                value: vec![0; KV_VALUE_MAX + 1],
            }],
        },
        StorageCommand::Get {
            request_id: 6,
            block_hash: blocks[0].block_hash(),
        },
        StorageCommand::List { request_id: 7 },
        StorageCommand::ListKv { request_id: 8 },
    ];
    let (results, error) = block_on(execute(&mut store, &commands));
    assert_eq!(
        error,
        Some("index unreadable"),
        "the failed read is reported"
    );
    assert_eq!(
        results,
        vec![
            StorageResult::Put {
                request_id: 1,
                ok: true
            },
            StorageResult::Put {
                request_id: 2,
                ok: false
            },
            StorageResult::Put {
                request_id: 3,
                ok: false
            },
            StorageResult::KvWritten {
                request_id: 4,
                ok: true
            },
            StorageResult::KvWritten {
                request_id: 5,
                ok: false
            },
            StorageResult::Got {
                request_id: 6,
                bytes: Some(blocks[0].encode())
            },
            // A listing that failed is not an empty store.
            StorageResult::ListFailed { request_id: 7 },
            StorageResult::KvListed {
                request_id: 8,
                records: vec![(b"k".to_vec(), vec![1])]
            },
        ]
    );
    assert_eq!(store.inner.writes, 1, "one atomic write for the batch");
    assert_eq!(store.inner.blocks.len(), 1);

    store.fail_writes = true;
    let (results, error) = block_on(execute(
        &mut store,
        &[
            put(9, &blocks[1], 1),
            StorageCommand::Delete {
                request_id: 10,
                block_hash: blocks[0].block_hash(),
            },
            StorageCommand::WriteKv {
                request_id: 11,
                ops: vec![KvOp::Delete { key: b"k".to_vec() }],
            },
        ],
    ));
    assert_eq!(error, Some("disk full"));
    assert_eq!(
        results,
        vec![
            StorageResult::Put {
                request_id: 9,
                ok: false
            },
            StorageResult::Deleted { request_id: 10 },
            StorageResult::KvWritten {
                request_id: 11,
                ok: false
            },
        ]
    );
    assert_eq!(
        store.inner.blocks.len(),
        1,
        "nothing of the failed batch landed"
    );
    assert_eq!(store.inner.kv.len(), 1);
}

/// Records a store hands back over the limits are left out (the node re-indexes those
/// blocks), whatever the store.
#[test]
fn oversized_records_read_back_are_left_out() {
    let mut store = MemoryStore::default();
    store.kv.insert(b"ok".to_vec(), vec![1]);
    store.kv.insert(b"huge".to_vec(), vec![0; KV_VALUE_MAX + 1]);
    store.kv.insert(vec![b'k'; 1000], vec![1]);
    let (results, error) = block_on(execute(
        &mut store,
        &[StorageCommand::ListKv { request_id: 1 }],
    ));
    assert_eq!(error, None);
    assert_eq!(
        results,
        vec![StorageResult::KvListed {
            request_id: 1,
            records: vec![(b"ok".to_vec(), vec![1])]
        }]
    );
}
