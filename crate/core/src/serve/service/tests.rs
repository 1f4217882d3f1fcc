//! A five-member cluster of serving layers with in-memory stores and a message queue: the
//! serving requirements end to end (S14–S17).

use std::collections::{HashMap, VecDeque};

use super::*;
use crate::chain::MerkleProof;
use crate::serve::reorg::diff;
use crate::serve::testutil::{block, chain_of, TestChain};

const MEMBERS: [u8; 5] = [0, 1, 2, 3, 4];
const OUTSIDER: u8 = 9;

/// Two holders per block, by the block hash's first byte.
fn holders(hash: &BlockHash, _height: u32) -> Vec<u8> {
    let start = usize::from(hash.0[0]);
    (0..2)
        .map(|k| MEMBERS[(start + k) % MEMBERS.len()])
        .collect()
}

struct Cluster {
    chain: TestChain,
    nodes: Vec<Serve<u8>>,
    stores: Vec<HashMap<BlockHash, Vec<u8>>>,
    kv: Vec<HashMap<Vec<u8>, Vec<u8>>>,
    queue: VecDeque<(u8, u8, ServeMessage)>,
    events: Vec<(u8, ServeEvent<u8>)>,
    outsider_inbox: Vec<ServeMessage>,
    /// A member whose transaction answers are replaced by forgeries.
    forger: Option<u8>,
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
            nodes: MEMBERS.iter().map(|m| Serve::new(config, *m)).collect(),
            stores: vec![HashMap::new(); MEMBERS.len()],
            kv: vec![HashMap::new(); MEMBERS.len()],
            queue: VecDeque::new(),
            events: Vec::new(),
            outsider_inbox: Vec::new(),
            forger: None,
            now_ms: 0,
        }
    }

    /// Carries out every node's outputs until nothing is left to do (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for n in 0..MEMBERS.len() {
                while let Some(out) = self.nodes[n].poll_output() {
                    progressed = true;
                    self.carry_out(n, out);
                }
            }
            if let Some((from, to, message)) = self.queue.pop_front() {
                let message = self.maybe_forge(from, message);
                let env = Env {
                    chain: &self.chain,
                    members: &MEMBERS,
                    archives: &[],
                    holders: &holders,
                };
                self.nodes[usize::from(to)].handle_message(self.now_ms, from, message, &env);
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

    fn carry_out(&mut self, n: usize, out: ServeOutput<u8>) {
        let me = MEMBERS[n];
        match out {
            ServeOutput::Send { to, message } if to == OUTSIDER => {
                self.outsider_inbox.push(message)
            }
            ServeOutput::Send { to, message } => self.queue.push_back((me, to, message)),
            ServeOutput::Storage(StorageIntent::PutBlock {
                request_id,
                block_hash,
                bytes,
                ..
            }) => {
                self.stores[n].insert(block_hash, bytes.to_vec());
                self.nodes[n].handle_put_result(request_id, true);
            }
            ServeOutput::Storage(StorageIntent::GetBlock {
                request_id,
                block_hash,
            }) => {
                let bytes = self.stores[n].get(&block_hash).cloned();
                let env = Env {
                    chain: &self.chain,
                    members: &MEMBERS,
                    archives: &[],
                    holders: &holders,
                };
                self.nodes[n].handle_get_result(self.now_ms, request_id, bytes.as_deref(), &env);
            }
            ServeOutput::Storage(StorageIntent::DeleteBlock { block_hash }) => {
                self.stores[n].remove(&block_hash);
            }
            ServeOutput::Storage(StorageIntent::WriteIndex { ops }) => {
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
            ServeOutput::Event(event) => self.events.push((me, event)),
        }
    }

    fn maybe_forge(&self, from: u8, message: ServeMessage) -> ServeMessage {
        match message {
            ServeMessage::TxAnswer { request_id, .. } if Some(from) == self.forger => {
                let b = self.some_block();
                let forged = b
                    .merkle_proof(self.chain.height_of(&b.block_hash()).unwrap(), 0)
                    .unwrap();
                ServeMessage::TxAnswer {
                    request_id,
                    answer: TxAnswer::Found(forged),
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

    fn results(&self, node: u8) -> Vec<QueryResult> {
        self.events
            .iter()
            .filter(|(n, _)| *n == node)
            .filter_map(|(_, e)| match e {
                ServeEvent::QueryDone { result, .. } => Some(result.clone()),
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
        let env = Env {
            chain: &cluster.chain,
            members: &MEMBERS,
            archives: &[],
            holders: &holders,
        };
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
            let holder = holders(&hash, 0).contains(&MEMBERS[n]);
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
        assert!(cluster.events.iter().any(|(n, e)| *n == 0
            && *e
                == ServeEvent::SafelyStored {
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
    let asker = *MEMBERS
        .iter()
        .find(|m| !holders(&b.block_hash(), 0).contains(m))
        .unwrap();
    for hint in [None, Some(b.block_hash())] {
        let env = Env {
            chain: &cluster.chain,
            members: &MEMBERS,
            archives: &[],
            holders: &holders,
        };
        cluster.nodes[usize::from(asker)]
            .query(cluster.now_ms, txid, hint, &env)
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
    let env = Env {
        chain: &cluster.chain,
        members: &MEMBERS,
        archives: &[],
        holders: &holders,
    };
    cluster.nodes[usize::from(asker)]
        .query(cluster.now_ms, Txid([3; 32]), None, &env)
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
    let entry = *MEMBERS
        .iter()
        .find(|m| !holders(&b.block_hash(), 0).contains(m))
        .unwrap();
    cluster.queue.push_back((
        OUTSIDER,
        entry,
        ServeMessage::TxQuery {
            request_id: 77,
            txid,
            block_hint: None,
        },
    ));
    cluster.settle();
    let [ServeMessage::TxAnswer {
        request_id: 77,
        answer: TxAnswer::Found(proof),
    }] = &cluster.outsider_inbox[..]
    else {
        panic!(
            "expected one answer with a proof, got {:?}",
            cluster.outsider_inbox
        );
    };
    // The outsider checks the proof against its own copy of the headers.
    let outsiders_chain = TestChain::new(&blocks);
    assert_eq!(query::verify_answer(proof, &txid, &outsiders_chain), Ok(()));
}

#[test]
fn s16_a_forging_member_is_outvoted_by_the_proof_check_and_scored() {
    let blocks = chain_of(8, 3, 2);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[6];
    let hs = holders(&b.block_hash(), 0);
    cluster.forger = Some(hs[0]);
    let asker = *MEMBERS.iter().find(|m| !hs.contains(m)).unwrap();
    let txid = b.txdata[3].txid();
    let env = Env {
        chain: &cluster.chain,
        members: &MEMBERS,
        archives: &[],
        holders: &holders,
    };
    cluster.nodes[usize::from(asker)]
        .query(cluster.now_ms, txid, Some(b.block_hash()), &env)
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
            && matches!(e, ServeEvent::Misbehaved { peer, .. } if *peer == hs[0])));
}

#[test]
fn s17_a_member_runs_code_on_a_block_it_does_not_hold() {
    let blocks = chain_of(6, 4, 3);
    let mut cluster = cluster_with(&blocks);
    let b = &blocks[4];
    let hash = b.block_hash();
    let runner = *MEMBERS
        .iter()
        .find(|m| !holders(&hash, 0).contains(m))
        .unwrap();
    let held = blocks
        .iter()
        .map(Block::block_hash)
        .find(|h| holders(h, 0).contains(&runner))
        .unwrap();
    for (job, target) in [(1, hash), (2, held)] {
        let env = Env {
            chain: &cluster.chain,
            members: &MEMBERS,
            archives: &[],
            holders: &holders,
        };
        cluster.nodes[usize::from(runner)]
            .run_job(cluster.now_ms, job, target, &env)
            .unwrap();
        cluster.settle();
        assert!(cluster.events.iter().any(|(n, e)| *n == runner
            && *e
                == ServeEvent::JobReady {
                    job,
                    block_hash: target
                }));
    }
    let node = &mut cluster.nodes[usize::from(runner)];
    assert_eq!(node.with_block(&hash, |blk| blk.txdata.len()), Some(5));
    assert!(node.with_block(&held, |blk| blk.block_hash()) == Some(held));
    assert!(
        !cluster.stores[usize::from(runner)].contains_key(&hash),
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
    let mut joined = Vec::new();
    for (height, tag) in (4..7).zip(90..) {
        let b = block(prev, height, 1, tag);
        prev = b.block_hash();
        cluster.chain.push(b.header);
        joined.push(b);
    }
    let change = diff(&old, &cluster.chain, 100);
    for n in 0..MEMBERS.len() {
        let env = Env {
            chain: &cluster.chain,
            members: &MEMBERS,
            archives: &[],
            holders: &holders,
        };
        cluster.nodes[n].handle_chain_change(&change, &env);
    }
    cluster.settle();
    for gone in &blocks[4..] {
        let hash = gone.block_hash();
        for n in 0..MEMBERS.len() {
            assert!(!cluster.stores[n].contains_key(&hash));
            assert!(!cluster.nodes[n].index().contains_block(&hash));
        }
    }
    let must_fetch = cluster
        .events
        .iter()
        .filter(|(_, e)| matches!(e, ServeEvent::MustFetch { .. }))
        .count();
    assert_eq!(
        must_fetch,
        2 * joined.len(),
        "each joined block's two holders are told to fetch it"
    );
    // A transaction of a block that left the chain no longer confirms.
    let txid = blocks[5].txdata[1].txid();
    let env = Env {
        chain: &cluster.chain,
        members: &MEMBERS,
        archives: &[],
        holders: &holders,
    };
    cluster.nodes[0]
        .query(cluster.now_ms, txid, None, &env)
        .unwrap();
    cluster.settle();
    assert_eq!(cluster.results(0).last(), Some(&QueryResult::NotFound));
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
    let n = usize::from(holder);
    let stored = cluster.stores[n].get_mut(&hash).expect("held");
    let last = stored.len() - 1;
    stored[last] ^= 1;
    let bad = stored.clone();
    let env = Env {
        chain: &cluster.chain,
        members: &MEMBERS,
        archives: &[],
        holders: &holders,
    };
    cluster.nodes[n]
        .query(cluster.now_ms, txid, Some(hash), &env)
        .unwrap();
    cluster.settle();
    assert_eq!(
        cluster.stores[n].get(&hash),
        Some(&bad),
        "the copy is kept until a verified one replaces it"
    );
    assert!(cluster
        .events
        .iter()
        .any(|(m, e)| *m == holder && *e == ServeEvent::BlockCorrupt { block_hash: hash }));
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
