//! A five-member cluster of serving layers with in-memory stores and a message queue: the
//! serving requirements end to end (S14–S17). The harness plays the rest of each node: it
//! carries out storage commands, answers `GetBlock` from the store (the node's repair does
//! that), and delivers messages.

use std::collections::{HashMap, VecDeque};

use super::*;
use crate::chain::MerkleProof;
use crate::serve::newblock::NewBlockConfig;
use crate::serve::query::QueryResult;
use crate::serve::reorg::diff;
use crate::serve::testutil::{block, chain_of, TestChain};

/// Member `n`'s id.
fn member(n: u8) -> NodeId {
    NodeId([n; 32])
}

/// The members, in index order.
fn members() -> [NodeId; 5] {
    [0, 1, 2, 3, 4].map(member)
}

/// The index of a member's id.
fn index_of(id: NodeId) -> usize {
    usize::from(id.0[0])
}

fn outsider() -> NodeId {
    member(9)
}

/// Two holders per block, by the block hash's first byte.
fn holders(hash: &BlockHash, _height: u32) -> Vec<NodeId> {
    let start = usize::from(hash.0[0]);
    (0..2).map(|k| member(((start + k) % 5) as u8)).collect()
}

/// What a member's serving layer is given: the chain, the members and placement.
fn env<'a>(chain: &'a TestChain, members: &'a [NodeId]) -> Env<'a> {
    Env {
        chain,
        members,
        archives: &[],
        holders: &holders,
        complete: true,
    }
}

struct Cluster {
    chain: TestChain,
    members: [NodeId; 5],
    nodes: Vec<Serve>,
    stores: Vec<HashMap<BlockHash, Vec<u8>>>,
    kv: Vec<HashMap<Vec<u8>, Vec<u8>>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    events: Vec<(NodeId, Event)>,
    outsider_inbox: Vec<Message>,
    /// Stored blocks a member's query read back corrupt.
    corrupt_reads: Vec<(NodeId, BlockHash)>,
    /// A member whose transaction answers are replaced by forgeries.
    forger: Option<NodeId>,
    now_ms: u64,
}

impl Cluster {
    fn new(chain: TestChain) -> Self {
        let config = ServeConfig {
            new_blocks: NewBlockConfig {
                replicas: 2,
                ..NewBlockConfig::default()
            },
            ..ServeConfig::default()
        };
        Self {
            chain,
            members: members(),
            nodes: members()
                .iter()
                .map(|m| Serve::new(config, *m, RequestIds::new()))
                .collect(),
            stores: vec![HashMap::new(); 5],
            kv: vec![HashMap::new(); 5],
            queue: VecDeque::new(),
            events: Vec::new(),
            outsider_inbox: Vec::new(),
            corrupt_reads: Vec::new(),
            forger: None,
            now_ms: 0,
        }
    }

    /// Carries out every node's outputs until nothing is left to do (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for n in 0..self.nodes.len() {
                while let Some(out) = self.nodes[n].poll_output() {
                    progressed = true;
                    self.carry_out(n, out);
                }
            }
            if let Some((from, to, message)) = self.queue.pop_front() {
                let message = self.maybe_forge(from, message);
                self.deliver(from, to, message);
                continue;
            }
            if progressed {
                continue;
            }
            let Some(at) = self.nodes.iter().filter_map(Serve::poll_timeout).min() else {
                return;
            };
            self.now_ms = self.now_ms.max(at);
            for node in &mut self.nodes {
                node.handle_timeout(self.now_ms);
            }
        }
        panic!("the cluster did not settle");
    }

    /// A message arrives at `to`: a `GetBlock` is answered from the store (the node's repair
    /// does that in a real node), the rest goes to the serving layer.
    fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        let n = index_of(to);
        if let Message::GetBlock {
            request_id,
            block_hash,
        } = message
        {
            let answer = match self.stores[n].get(&block_hash) {
                Some(bytes) => Message::BlockData {
                    request_id,
                    block: bytes.clone(),
                },
                None => Message::BlockNotFound { request_id },
            };
            self.queue.push_back((to, from, answer));
            return;
        }
        let env = env(&self.chain, &self.members);
        let _ = self.nodes[n].handle_message(self.now_ms, from, &message, &env);
    }

    fn carry_out(&mut self, n: usize, out: Output) {
        let me = self.members[n];
        match out {
            Output::Send { to, message } if to == outsider() => self.outsider_inbox.push(message),
            Output::Send { to, message } => self.queue.push_back((me, to, message)),
            Output::Storage(StorageCommand::Put {
                request_id,
                block_hash,
                bytes,
                ..
            }) => {
                self.stores[n].insert(block_hash, bytes);
                self.nodes[n].handle_put_result(request_id, true);
            }
            Output::Storage(StorageCommand::Get {
                request_id,
                block_hash,
            }) => {
                let bytes = self.stores[n].get(&block_hash).cloned();
                let env = env(&self.chain, &self.members);
                for corrupt in
                    self.nodes[n].handle_get_result(self.now_ms, request_id, bytes.as_deref(), &env)
                {
                    self.corrupt_reads.push((me, corrupt));
                }
            }
            Output::Storage(StorageCommand::Delete { block_hash, .. }) => {
                self.stores[n].remove(&block_hash);
            }
            Output::Storage(StorageCommand::WriteKv { ops, .. }) => {
                for op in ops {
                    match op {
                        KvOp::Put { key, value } => {
                            self.kv[n].insert(key, value);
                        }
                        KvOp::Delete { key } => {
                            self.kv[n].remove(&key);
                        }
                    }
                }
            }
            Output::Event(event) => self.events.push((me, event)),
            other => panic!("the serving layer asked for {other:?}"),
        }
    }

    fn maybe_forge(&self, from: NodeId, message: Message) -> Message {
        match message {
            Message::TxAnswer { request_id, .. } if Some(from) == self.forger => {
                let b = self.some_block();
                let forged = b
                    .merkle_proof(self.chain.height_of(&b.block_hash()).unwrap(), 0)
                    .unwrap();
                Message::TxAnswer {
                    request_id,
                    answer: TxAnswerBody::found(forged, b.txdata[0].encode()),
                }
            }
            other => other,
        }
    }

    fn some_block(&self) -> Block {
        let hash = self
            .stores
            .iter()
            .flat_map(|s| s.keys())
            .next()
            .copied()
            .unwrap();
        let bytes = self.stores.iter().find_map(|s| s.get(&hash)).unwrap();
        Block::decode(bytes).unwrap()
    }

    fn results(&self, node: NodeId) -> Vec<QueryResult> {
        self.events
            .iter()
            .filter(|(n, _)| *n == node)
            .filter_map(|(_, e)| match e {
                Event::TxQueryDone { result, .. } => Some(result.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A cluster that received `blocks` from the block source through member 0 (routed storage).
fn cluster_with(blocks: &[Block]) -> Cluster {
    let mut cluster = Cluster::new(TestChain::new(blocks));
    for b in blocks {
        let bytes = b.encode();
        let env = env(&cluster.chain, &cluster.members);
        cluster.nodes[0]
            .handle_new_block(cluster.now_ms, &bytes, &env)
            .unwrap();
        cluster.settle();
    }
    cluster
}

#[test]
fn s14_new_blocks_reach_their_holders_are_indexed_and_safely_stored() {
    let blocks = chain_of(8, 3, 1);
    let cluster = cluster_with(&blocks);
    for b in &blocks {
        let hash = b.block_hash();
        for (n, store) in cluster.stores.iter().enumerate() {
            let holder = holders(&hash, 0).contains(&member(n as u8));
            assert_eq!(
                store.contains_key(&hash),
                holder,
                "block {hash} on member {n}"
            );
            assert_eq!(cluster.nodes[n].index().contains_block(&hash), holder);
            assert_eq!(
                cluster.kv[n].contains_key(&crate::serve::txindex::record_key(&hash)),
                holder
            );
        }
        assert!(cluster.events.iter().any(|(n, e)| *n == member(0)
            && *e
                == Event::BlockSafelyStored {
                    block_hash: hash,
                    height: cluster.chain.height_of(&hash).unwrap()
                }));
    }
    // Together the members hold the whole chain (S18), each block on P = 2 members.
    let copies: usize = cluster.stores.iter().map(HashMap::len).sum();
    assert_eq!(copies, 2 * blocks.len());
}

#[test]
fn s16_any_member_answers_by_forwarding_with_a_verified_proof() {
    let blocks = chain_of(8, 3, 1);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[5];
    let txid = b.txdata[2].txid();
    let asker = *members()
        .iter()
        .find(|m| !holders(&b.block_hash(), 0).contains(m))
        .unwrap();
    for hint in [None, Some(b.block_hash())] {
        let env = env(&cluster.chain, &cluster.members);
        cluster.nodes[index_of(asker)]
            .query(cluster.now_ms, 1, txid, hint, &env)
            .unwrap();
        cluster.settle();
    }
    let results = cluster.results(asker);
    assert_eq!(results.len(), 2);
    for result in results {
        let QueryResult::Confirmed {
            block_hash,
            height,
            confirmations,
            pos,
            ..
        } = &result
        else {
            panic!("expected a confirmation, got {result:?}");
        };
        assert_eq!(
            (*block_hash, *height, *confirmations, *pos),
            (b.block_hash(), 5, 3, 2)
        );
    }
    // A transaction in no block: every member says no.
    let env = env(&cluster.chain, &cluster.members);
    cluster.nodes[index_of(asker)]
        .query(cluster.now_ms, 1, Txid([3; 32]), None, &env)
        .unwrap();
    cluster.settle();
    assert_eq!(cluster.results(asker).last(), Some(&QueryResult::NotFound));
}

#[test]
fn s16_an_outside_querier_gets_a_proof_it_can_check() {
    let blocks = chain_of(6, 2, 4);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[3];
    let txid = b.txdata[1].txid();
    let entry = *members()
        .iter()
        .find(|m| !holders(&b.block_hash(), 0).contains(m))
        .unwrap();
    cluster.queue.push_back((
        outsider(),
        entry,
        Message::TxQuery {
            request_id: 77,
            txid: Hash256(txid.0),
            block_hint: None,
        },
    ));
    cluster.settle();
    let [Message::TxAnswer {
        request_id: 77,
        answer,
    }] = &cluster.outsider_inbox[..]
    else {
        panic!("expected one answer, got {:?}", cluster.outsider_inbox);
    };
    let Some((proof, tx)) = answer.clone().into_proof() else {
        panic!("expected a proof, got {answer:?}");
    };
    // The outsider checks the proof against its own copy of the headers, and the transaction
    // against the txid.
    let outsiders_chain = TestChain::new(&blocks);
    assert_eq!(
        query::verify_answer(&proof, &txid, &outsiders_chain),
        Ok(())
    );
    assert_eq!(query::check_transaction(&tx, &txid), Ok(()));
}

#[test]
fn s16_a_forging_member_is_outvoted_by_the_proof_check_and_scored() {
    let blocks = chain_of(8, 3, 2);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[6];
    let hs = holders(&b.block_hash(), 0);
    cluster.forger = Some(hs[0]);
    let asker = *members().iter().find(|m| !hs.contains(m)).unwrap();
    let txid = b.txdata[3].txid();
    let env = env(&cluster.chain, &cluster.members);
    cluster.nodes[index_of(asker)]
        .query(cluster.now_ms, 1, txid, Some(b.block_hash()), &env)
        .unwrap();
    cluster.settle();
    assert!(matches!(
        cluster.results(asker)[..],
        [QueryResult::Confirmed {
            height: 6,
            pos: 3,
            ..
        }]
    ));
    assert!(cluster
        .events
        .iter()
        .any(|(n, e)| *n == asker
            && matches!(e, Event::PeerMisbehaved { peer, .. } if *peer == hs[0])));
}

#[test]
fn s17_a_member_runs_code_on_a_block_it_does_not_hold() {
    let blocks = chain_of(6, 4, 3);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[4];
    let hash = b.block_hash();
    let runner = *members()
        .iter()
        .find(|m| !holders(&hash, 0).contains(m))
        .unwrap();
    let held = blocks
        .iter()
        .map(Block::block_hash)
        .find(|h| holders(h, 0).contains(&runner))
        .unwrap();
    for (job, target) in [(1, hash), (2, held)] {
        let env = env(&cluster.chain, &cluster.members);
        cluster.nodes[index_of(runner)]
            .run_job(cluster.now_ms, job, target, &env)
            .unwrap();
        cluster.settle();
        assert!(cluster.events.iter().any(|(n, e)| *n == runner
            && *e
                == Event::JobReady {
                    job,
                    block_hash: target
                }));
    }
    let node = &mut cluster.nodes[index_of(runner)];
    assert_eq!(node.with_block(&hash, |blk| blk.txdata.len()), Some(5));
    assert!(node.with_block(&held, |blk| blk.block_hash()) == Some(held));
    assert!(
        !cluster.stores[index_of(runner)].contains_key(&hash),
        "fetched into the cache, not the shard"
    );
}

#[test]
fn reorg_drops_blocks_from_shard_and_index_and_proofs_stop_confirming() {
    let blocks = chain_of(6, 2, 5);
    let mut cluster = cluster_with(&blocks);
    let old = cluster.chain.clone();
    cluster.chain.truncate(4);
    let mut prev = blocks[3].block_hash();
    for (height, tag) in (4..7).zip(90..) {
        let b = block(prev, height, 1, tag);
        prev = b.block_hash();
        cluster.chain.push(b.header);
    }
    let change = diff(&old, &cluster.chain, 100);
    for n in 0..cluster.nodes.len() {
        let env = env(&cluster.chain, &cluster.members);
        cluster.nodes[n].handle_chain_change(&change, &env);
    }
    cluster.settle();
    for gone in &blocks[4..] {
        let hash = gone.block_hash();
        for n in 0..cluster.nodes.len() {
            assert!(!cluster.stores[n].contains_key(&hash));
            assert!(!cluster.nodes[n].index().contains_block(&hash));
        }
    }
    // A transaction of a block that left the chain no longer confirms.
    let txid = blocks[5].txdata[1].txid();
    let env = env(&cluster.chain, &cluster.members);
    cluster.nodes[0]
        .query(cluster.now_ms, 1, txid, None, &env)
        .unwrap();
    cluster.settle();
    assert_eq!(
        cluster.results(member(0)).last(),
        Some(&QueryResult::NotFound)
    );
    let stale = MerkleProof {
        block_hash: blocks[5].block_hash(),
        height: 5,
        pos: 1,
        branch: vec![],
    };
    assert!(query::verify_answer(&stale, &txid, &cluster.chain).is_err());
}

/// A holder whose stored copy reads back corrupt serves none of it and deletes none of it: it
/// reports `BlockCorrupt` (the node refetches a verified copy over it), keeps it indexed (the
/// next read is checked again) and the query moves on to the other holder, which proves the
/// transaction.
#[test]
fn a_corrupt_local_copy_is_reported_kept_and_the_query_asks_the_other_holder() {
    let blocks = chain_of(8, 3, 1);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[4];
    let hash = b.block_hash();
    let txid = b.txdata[1].txid();
    let holder = holders(&hash, 0)[0];
    let n = index_of(holder);
    let stored = cluster.stores[n].get_mut(&hash).expect("held");
    let last = stored.len() - 1;
    stored[last] ^= 1;
    let bad = stored.clone();
    let env = env(&cluster.chain, &cluster.members);
    cluster.nodes[n]
        .query(cluster.now_ms, 1, txid, Some(hash), &env)
        .unwrap();
    cluster.settle();
    assert_eq!(
        cluster.stores[n].get(&hash),
        Some(&bad),
        "the copy is kept until a verified one replaces it"
    );
    assert!(cluster.corrupt_reads.contains(&(holder, hash)));
    assert!(
        cluster.nodes[n].index().contains_block(&hash),
        "the copy stays indexed: every read is checked again, a transient fault may pass"
    );
    let results = cluster.results(holder);
    assert!(
        matches!(results.last(), Some(QueryResult::Confirmed { block_hash, .. }) if *block_hash == hash),
        "the other holder proves it: {results:?}"
    );
}
