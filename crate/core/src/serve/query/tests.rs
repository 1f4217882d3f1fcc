use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::serve::testutil::{block, chain_of, TestChain};
use crate::serve::txindex::TxIndexConfig;
use crate::wire::TxAnswerBody;

const MEMBERS: [u8; 6] = [1, 2, 3, 4, 5, 6];
const ME: u8 = 0;

/// Two holders per block, by the block hash's first byte.
fn holders(hash: &BlockHash) -> Vec<u8> {
    let start = usize::from(hash.0[0]);
    (0..2)
        .map(|k| MEMBERS[(start + k) % MEMBERS.len()])
        .collect()
}

struct World {
    blocks: Vec<Block>,
    chain: TestChain,
    index: TxIndex,
}

impl World {
    fn new() -> Self {
        let blocks = chain_of(6, 5, 1);
        let chain = TestChain::new(&blocks);
        Self {
            blocks,
            chain,
            index: TxIndex::new(TxIndexConfig::default()),
        }
    }

    fn cx(&self) -> Context<'_, u8> {
        Context {
            chain: &self.chain,
            index: &self.index,
            me: ME,
            members: &MEMBERS,
            archives: &[],
            holders: &holders,
            complete: true,
        }
    }
}

fn drain(q: &mut Queries<u8>) -> Vec<QueryOutput<u8>> {
    std::iter::from_fn(|| q.poll_output()).collect()
}

fn asks(outputs: &[QueryOutput<u8>]) -> Vec<(u8, u64)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            QueryOutput::Ask { to, request_id, .. } => Some((*to, *request_id)),
            _ => None,
        })
        .collect()
}

fn done(outputs: &[QueryOutput<u8>]) -> Option<QueryResult> {
    outputs.iter().find_map(|o| match o {
        QueryOutput::Done { result, .. } => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn held_block_is_answered_locally_with_a_proof() {
    let mut world = World::new();
    world.index.add_block(&world.blocks[3]);
    let mut queries = Queries::new(QueryConfig::default());
    let txid = world.blocks[3].txdata[4].txid();
    let id = queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &world.cx())
        .unwrap();
    let out = drain(&mut queries);
    let hash = world.blocks[3].block_hash();
    assert_eq!(
        out,
        vec![QueryOutput::ReadBlock {
            query: id,
            block_hash: hash
        }]
    );
    let bytes = world.blocks[3].encode();
    queries.handle_block_read(1, id, hash, Some(&bytes), &world.cx());
    let result = done(&drain(&mut queries)).expect("answered");
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
        (hash, 3, 3, 4)
    );
    assert_eq!(
        verify_answer(&result.proof().unwrap(), &txid, &world.chain),
        Ok(())
    );
    assert_eq!(queries.active(), 0);
}

/// Issue 16 (costly work cached): a block of our own store checked whole once answers the
/// next queries from the one transaction they need, with the same proofs; a damaged read of it
/// is still found corrupt and proves nothing.
#[test]
fn a_block_checked_once_answers_again_from_its_kept_txids() {
    let mut world = World::new();
    world.index.add_block(&world.blocks[3]);
    let mut queries = Queries::new(QueryConfig::default());
    let hash = world.blocks[3].block_hash();
    let bytes = world.blocks[3].encode();
    let ask = |queries: &mut Queries<u8>, pos: usize, bytes: &[u8]| {
        let txid = world.blocks[3].txdata[pos].txid();
        let id = queries
            .start(0, Origin::Local, Scope::Cluster, txid, None, &world.cx())
            .unwrap();
        drain(queries);
        queries.handle_block_read(1, id, hash, Some(bytes), &world.cx());
        (txid, drain(queries))
    };
    let (_, first) = ask(&mut queries, 4, &bytes);
    assert!(queries
        .checked
        .lookup(&hash, &bytes, &world.blocks[3].txdata[4].txid(), 4)
        .is_found());
    for pos in [4, 0, 2] {
        let (txid, out) = ask(&mut queries, pos, &bytes);
        let result = done(&out).expect("answered");
        let QueryResult::Confirmed { transaction, .. } = &result else {
            panic!("expected a confirmation, got {result:?}");
        };
        assert_eq!(transaction, &world.blocks[3].txdata[pos].encode());
        assert_eq!(
            verify_answer(&result.proof().unwrap(), &txid, &world.chain),
            Ok(())
        );
        if pos == 4 {
            assert_eq!(
                Some(result),
                done(&first),
                "the same answer as the full check gave"
            );
        }
    }
    let mut damaged = bytes.clone();
    let last = damaged.len() - 5;
    damaged[last] ^= 1;
    let (_, out) = ask(&mut queries, world.blocks[3].txdata.len() - 1, &damaged);
    assert_eq!(out[0], QueryOutput::CorruptBlock { block_hash: hash });
    assert!(!matches!(done(&out), Some(QueryResult::Confirmed { .. })));
}

#[test]
fn corrupt_stored_block_is_reported_and_the_query_moves_on() {
    let mut world = World::new();
    world.index.add_block(&world.blocks[3]);
    let mut queries = Queries::new(QueryConfig::default());
    let txid = world.blocks[3].txdata[1].txid();
    let hint = world.blocks[3].block_hash();
    let id = queries
        .start(
            0,
            Origin::Local,
            Scope::Cluster,
            txid,
            Some(hint),
            &world.cx(),
        )
        .unwrap();
    drain(&mut queries);
    let mut bytes = world.blocks[3].encode();
    bytes[100] ^= 1;
    queries.handle_block_read(1, id, hint, Some(&bytes), &world.cx());
    let out = drain(&mut queries);
    assert_eq!(out[0], QueryOutput::CorruptBlock { block_hash: hint });
    // A corrupt copy proves nothing: the holders are asked instead (first).
    assert_eq!(done(&out), None);
    let asked: Vec<u8> = asks(&out).iter().map(|(to, _)| *to).collect();
    assert_eq!(asked[..2], holders(&hint));
}

#[test]
fn hint_asks_the_blocks_holders_first_then_the_other_members() {
    let world = World::new();
    let mut queries = Queries::new(QueryConfig::default());
    let hash = world.blocks[2].block_hash();
    let txid = world.blocks[2].txdata[2].txid();
    queries
        .start(
            0,
            Origin::Local,
            Scope::Cluster,
            txid,
            Some(hash),
            &world.cx(),
        )
        .unwrap();
    let mut wave = asks(&drain(&mut queries));
    assert_eq!(wave.len(), QueryConfig::default().fanout);
    assert_eq!(
        wave[..2].iter().map(|(to, _)| *to).collect::<Vec<u8>>(),
        holders(&hash)
    );
    // Every member says no (a stale view, a copy not fetched yet): each next wave goes out at
    // once, until every member was asked; then the answer is "not found".
    let mut asked = Vec::new();
    let mut result = None;
    for _ in 0..MEMBERS.len() {
        for (to, request_id) in std::mem::take(&mut wave) {
            asked.push(to);
            queries.handle_answer(1, to, request_id, TxAnswerBody::NotFound, &world.cx());
        }
        let out = drain(&mut queries);
        result = result.or(done(&out));
        wave = asks(&out);
    }
    asked.sort_unstable();
    assert_eq!(asked, MEMBERS.to_vec());
    assert_eq!(result, Some(QueryResult::NotFound));
}

#[test]
fn forged_answer_is_scored_and_an_honest_one_after_it_wins() {
    let world = World::new();
    let mut queries = Queries::new(QueryConfig::default());
    let b = &world.blocks[2];
    let txid = b.txdata[2].txid();
    queries
        .start(
            0,
            Origin::Local,
            Scope::Cluster,
            txid,
            Some(b.block_hash()),
            &world.cx(),
        )
        .unwrap();
    let sent = asks(&drain(&mut queries));
    let (liar, liar_req) = sent[0];
    let (honest, honest_req) = sent[1];
    // The liar proves a different transaction of the same block as ours.
    let forged = b.merkle_proof(2, 3).unwrap();
    queries.handle_answer(
        1,
        liar,
        liar_req,
        TxAnswerBody::found(forged, b.txdata[3].encode()),
        &world.cx(),
    );
    let out = drain(&mut queries);
    assert_eq!(
        out,
        vec![QueryOutput::Misbehaved {
            peer: liar,
            score: 20
        }]
    );
    // A stranger replaying the honest request id is ignored.
    let real = b.merkle_proof(2, 2).unwrap();
    queries.handle_answer(
        2,
        99,
        honest_req,
        TxAnswerBody::found(real.clone(), b.txdata[2].encode()),
        &world.cx(),
    );
    assert!(drain(&mut queries).is_empty());
    queries.handle_answer(
        3,
        honest,
        honest_req,
        TxAnswerBody::found(real, b.txdata[2].encode()),
        &world.cx(),
    );
    let result = done(&drain(&mut queries)).expect("answered");
    assert!(matches!(
        result,
        QueryResult::Confirmed {
            height: 2,
            pos: 2,
            ..
        }
    ));
    assert_eq!(queries.misbehaviour(&liar), 20);
    assert_eq!(queries.misbehaviour(&honest), 0);
}

/// A lying answerer sends a valid proof with another transaction (or bytes that are no
/// transaction): the answer is refused and scored like a forged proof, and the query waits for
/// the next answerer, whose transaction is handed out.
#[test]
fn a_wrong_transaction_beside_a_valid_proof_is_refused_and_scored() {
    let world = World::new();
    let mut queries = Queries::new(QueryConfig::default());
    let b = &world.blocks[3];
    let txid = b.txdata[1].txid();
    queries
        .start(
            0,
            Origin::Local,
            Scope::Cluster,
            txid,
            Some(b.block_hash()),
            &world.cx(),
        )
        .unwrap();
    let sent = asks(&drain(&mut queries));
    assert!(sent.len() >= 3);
    let real = b.merkle_proof(3, 1).unwrap();
    // Another transaction of the same block, then garbage, then a 64-byte "transaction".
    let lies = [b.txdata[2].encode(), vec![0xde, 0xad], vec![0x11; 64]];
    let mut next = Vec::new();
    for ((liar, request_id), tx) in sent.iter().zip(lies.clone()) {
        queries.handle_answer(
            1,
            *liar,
            *request_id,
            TxAnswerBody::found(real.clone(), tx),
            &world.cx(),
        );
        let out = drain(&mut queries);
        next.extend(asks(&out));
        assert_eq!(done(&out), None, "a wrong transaction confirms nothing");
        assert!(out.contains(&QueryOutput::Misbehaved {
            peer: *liar,
            score: 20
        }));
    }
    assert!(matches!(
        check_transaction(&lies[0], &txid),
        Err(AnswerError::WrongTransaction { actual, .. }) if actual == b.txdata[2].txid()
    ));
    assert!(matches!(
        check_transaction(&lies[1], &txid),
        Err(AnswerError::BadTransaction(_))
    ));
    assert!(check_transaction(&lies[2], &txid).is_err());
    // The next wave (sent once the liars' wave had answered) has an honest member, whose
    // answer wins and carries the transaction.
    let (honest, request_id) = next[0];
    let tx = b.txdata[1].encode();
    queries.handle_answer(
        3,
        honest,
        request_id,
        TxAnswerBody::found(real, tx.clone()),
        &world.cx(),
    );
    let result = done(&drain(&mut queries)).expect("answered");
    assert!(matches!(
        &result,
        QueryResult::Confirmed { height: 3, pos: 1, transaction, .. } if *transaction == tx
    ));
    assert_eq!(queries.misbehaviour(&honest), 0);
}

#[test]
fn not_found_only_after_every_member_said_no() {
    let world = World::new();
    let config = QueryConfig {
        fanout: 2,
        ..QueryConfig::default()
    };
    let mut queries = Queries::new(config);
    let txid = Txid([0xee; 32]);
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &world.cx())
        .unwrap();
    let mut pending = asks(&drain(&mut queries));
    let mut answered = 0;
    while let Some((to, req)) = pending.pop() {
        queries.handle_answer(answered, to, req, TxAnswerBody::NotFound, &world.cx());
        answered += 1;
        let out = drain(&mut queries);
        if answered < MEMBERS.len() as u64 {
            assert_eq!(done(&out), None, "{answered} of {} said no", MEMBERS.len());
        } else {
            assert_eq!(done(&out), Some(QueryResult::NotFound));
        }
        pending.extend(asks(&out));
    }
    assert_eq!(answered, MEMBERS.len() as u64);
}

#[test]
fn silence_ends_in_unavailable_at_the_timeout() {
    let world = World::new();
    let mut queries = Queries::new(QueryConfig::default());
    queries
        .start(
            0,
            Origin::Local,
            Scope::Cluster,
            Txid([1; 32]),
            None,
            &world.cx(),
        )
        .unwrap();
    let mut asked = asks(&drain(&mut queries)).len();
    let mut now_ms = 0;
    let mut result = None;
    for _ in 0..100 {
        let Some(at) = queries.poll_timeout() else {
            break;
        };
        assert!(at > now_ms);
        now_ms = at;
        queries.handle_timeout(now_ms);
        let out = drain(&mut queries);
        asked += asks(&out).len();
        result = result.or(done(&out));
    }
    assert_eq!(result, Some(QueryResult::Unavailable));
    assert_eq!(now_ms, 10_000);
    assert_eq!(
        asked,
        MEMBERS.len(),
        "waves reached every member before giving up"
    );
}

#[test]
fn proofs_for_blocks_that_left_the_best_chain_do_not_count() {
    let mut world = World::new();
    let b4 = world.blocks[4].clone();
    let txid = b4.txdata[1].txid();
    let proof = b4.merkle_proof(4, 1).unwrap();
    let confirmed = QueryResult::confirmed(proof.clone(), b4.txdata[1].encode(), &world.chain);
    assert!(matches!(
        confirmed.recheck(&txid, &world.chain),
        Some(QueryResult::Confirmed {
            confirmations: 2,
            ..
        })
    ));
    // Reorg: blocks 4 and 5 replaced by another branch.
    world.chain.truncate(4);
    let other = block(world.blocks[3].block_hash(), 4, 1, 77);
    world.chain.push(other.header);
    assert_eq!(confirmed.recheck(&txid, &world.chain), None);
    let mut queries = Queries::new(QueryConfig::default());
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &world.cx())
        .unwrap();
    let sent = asks(&drain(&mut queries));
    let (to, req) = sent[0];
    queries.handle_answer(
        1,
        to,
        req,
        TxAnswerBody::found(proof, b4.txdata[1].encode()),
        &world.cx(),
    );
    let out = drain(&mut queries);
    assert_eq!(done(&out), None, "a stale proof confirms nothing");
    assert_eq!(
        queries.misbehaviour(&to),
        0,
        "and is not held against its sender"
    );
}

#[test]
fn peers_are_rate_limited_and_local_only_queries_do_not_forward() {
    let world = World::new();
    let config = QueryConfig {
        member_rate: RateLimitConfig {
            burst: 2,
            per_second: 1,
            max_peers: 8,
        },
        peer_rate: RateLimitConfig {
            burst: 1,
            per_second: 1,
            max_peers: 8,
        },
        ..QueryConfig::default()
    };
    let mut queries = Queries::new(config);
    let origin = |request_id| Origin::Peer {
        peer: 7u8,
        request_id,
    };
    for request_id in 0..2 {
        queries
            .start(
                0,
                origin(request_id),
                Scope::LocalOnly,
                Txid([2; 32]),
                None,
                &world.cx(),
            )
            .unwrap();
        let out = drain(&mut queries);
        assert_eq!(
            out,
            vec![QueryOutput::Reply {
                to: 7,
                request_id,
                answer: TxAnswerBody::NotFound
            }],
            "local only: answered from own blocks, nothing forwarded"
        );
    }
    assert_eq!(
        queries.start(
            0,
            origin(2),
            Scope::LocalOnly,
            Txid([2; 32]),
            None,
            &world.cx()
        ),
        Err(QueryError::RateLimited)
    );
    assert!(queries
        .start(
            1_000,
            origin(3),
            Scope::LocalOnly,
            Txid([2; 32]),
            None,
            &world.cx()
        )
        .is_ok());
    // Queries as an outsider (scope Cluster) draw on a separate, smaller bucket.
    let outsider = |at_ms| {
        let mut q = Queries::new(config);
        let first = q.start(
            at_ms,
            origin(9),
            Scope::Cluster,
            Txid([2; 32]),
            None,
            &world.cx(),
        );
        let second = q.start(
            at_ms,
            origin(10),
            Scope::Cluster,
            Txid([2; 32]),
            None,
            &world.cx(),
        );
        (first.is_ok(), second)
    };
    assert_eq!(outsider(0), (true, Err(QueryError::RateLimited)));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    Silent,
    SaysNotFound,
    /// Proves another transaction of the right block.
    ForgeOtherTx,
    /// A branch of random hashes.
    ForgeBranch,
    /// The right proof with a wrong height.
    ForgeHeight,
    /// The right branch with the position flipped.
    ForgePos,
    /// The right proof with another transaction's bytes.
    ForgeTransaction,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        Just(Behaviour::Honest),
        Just(Behaviour::Silent),
        Just(Behaviour::SaysNotFound),
        Just(Behaviour::ForgeOtherTx),
        Just(Behaviour::ForgeBranch),
        Just(Behaviour::ForgeHeight),
        Just(Behaviour::ForgePos),
        Just(Behaviour::ForgeTransaction),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Against any mix of honest, silent, lying and forging members and any answer order:
    /// a forged proof never wins; an honest holder's answer always wins, even after forgeries;
    /// NotFound only when every member asked said no; otherwise Unavailable at the timeout.
    #[test]
    fn first_verified_answer_wins(
        behaviours in prop::collection::vec(behaviour(), 6),
        target in 0usize..7,
        tx_pos in 0u32..6,
        hint_kind in 0u8..3,
        order in prop::collection::vec(any::<u8>(), 20),
    ) {
        let world = World::new();
        let behaviours: BTreeMap<u8, Behaviour> = MEMBERS.iter().copied().zip(behaviours).collect();
        // target 6: a txid in no block.
        let located = (target < 6).then_some((target, tx_pos));
        let txid = match located {
            Some((b, p)) => world.blocks[b].txdata[p as usize].txid(),
            None => Txid([0xab; 32]),
        };
        let hint = match (hint_kind, located) {
            (1, Some((b, _))) => Some(world.blocks[b].block_hash()),
            (2, _) => Some(world.blocks[(target + 1) % 6].block_hash()),
            _ => None,
        };
        let config = QueryConfig { fanout: 2, ..QueryConfig::default() };
        let mut queries = Queries::new(config);
        queries.start(0, Origin::Local, Scope::Cluster, txid, hint, &world.cx()).unwrap();
        let answer_of = |member: u8| -> Option<TxAnswerBody> {
            let holds = |b: usize| holders(&world.blocks[b].block_hash()).contains(&member);
            let truth = match (hint, located) {
                (Some(h), _) if !holds(world.blocks.iter().position(|b| b.block_hash() == h).unwrap()) => TxAnswerBody::Unavailable,
                (Some(h), Some((b, p))) if world.blocks[b].block_hash() == h => {
                    TxAnswerBody::found(world.blocks[b].merkle_proof(b as u32, p).unwrap(), world.blocks[b].txdata[p as usize].encode())
                }
                (Some(_), _) => TxAnswerBody::NotFound,
                (None, Some((b, p))) if holds(b) => {
                    TxAnswerBody::found(world.blocks[b].merkle_proof(b as u32, p).unwrap(), world.blocks[b].txdata[p as usize].encode())
                }
                (None, _) => TxAnswerBody::NotFound,
            };
            let (b, p) = located.unwrap_or((1, 1));
            let real = world.blocks[b].merkle_proof(b as u32, p).unwrap();
            let real_tx = world.blocks[b].txdata[p as usize].encode();
            Some(match behaviours[&member] {
                Behaviour::Honest => truth,
                Behaviour::Silent => return None,
                Behaviour::SaysNotFound => TxAnswerBody::NotFound,
                Behaviour::ForgeOtherTx => {
                    TxAnswerBody::found(world.blocks[b].merkle_proof(b as u32, (p + 1) % 6).unwrap(), world.blocks[b].txdata[((p + 1) % 6) as usize].encode())
                }
                Behaviour::ForgeBranch => TxAnswerBody::found(MerkleProof {
                    branch: real.branch.iter().map(|h| Hash256([h.0[0] ^ 0x55; 32])).collect(),
                    ..real
                }, real_tx),
                Behaviour::ForgeHeight => TxAnswerBody::found(MerkleProof { height: real.height + 1, ..real }, real_tx),
                Behaviour::ForgePos => TxAnswerBody::found(MerkleProof { pos: real.pos ^ 1, ..real }, real_tx),
                Behaviour::ForgeTransaction => {
                    TxAnswerBody::found(real, world.blocks[b].txdata[((p + 1) % 6) as usize].encode())
                }
            })
        };
        let mut now_ms = 0;
        let mut pending: Vec<(u8, u64)> = Vec::new();
        let mut asked: Vec<u8> = Vec::new();
        let mut answers: BTreeMap<u8, TxAnswerBody> = BTreeMap::new();
        let mut result = None;
        let mut step = 0usize;
        for _ in 0..200 {
            let out = drain(&mut queries);
            for (to, req) in asks(&out) {
                prop_assert!(to != ME);
                asked.push(to);
                pending.push((to, req));
            }
            if let Some(r) = done(&out) {
                result = Some(r);
                break;
            }
            if pending.is_empty() {
                let Some(at) = queries.poll_timeout() else { break };
                now_ms = at;
                queries.handle_timeout(now_ms);
                continue;
            }
            let i = usize::from(order[step % order.len()]) % pending.len();
            step += 1;
            let (to, req) = pending.swap_remove(i);
            if let Some(answer) = answer_of(to) {
                answers.insert(to, answer.clone());
                queries.handle_answer(now_ms, to, req, answer, &world.cx());
            }
        }
        let result = result.expect("every query ends");
        let honest_finder = asked.iter().any(|m| {
            behaviours[m] == Behaviour::Honest && matches!(answers.get(m), Some(TxAnswerBody::Found { .. }))
        });
        match &result {
            QueryResult::Confirmed { block_hash, pos, .. } => {
                let (b, p) = located.expect("nothing to confirm for a txid in no block");
                prop_assert_eq!(*block_hash, world.blocks[b].block_hash());
                prop_assert_eq!(*pos, p);
                prop_assert!(verify_answer(&result.proof().unwrap(), &txid, &world.chain).is_ok());
                let QueryResult::Confirmed { transaction, .. } = &result else { unreachable!() };
                prop_assert_eq!(transaction, &world.blocks[b].txdata[p as usize].encode());
            }
            QueryResult::NotFound => {
                prop_assert!(!honest_finder);
                prop_assert!(!asked.is_empty());
                for m in &asked {
                    prop_assert_eq!(answers.get(m), Some(&TxAnswerBody::NotFound), "member {} did not say no", m);
                }
            }
            QueryResult::Unavailable | QueryResult::InvalidProof => {
                prop_assert!(!honest_finder, "an honest holder answered but the query gave up");
            }
            QueryResult::NotSynced => {
                prop_assert!(false, "every answer here names a block of the asker's chain");
            }
        }
        if honest_finder {
            let confirmed = matches!(result, QueryResult::Confirmed { .. });
            prop_assert!(confirmed, "an honest holder answered: {:?}", result);
        }
        // Forgers are scored; honest members never are.
        for (m, b) in &behaviours {
            if *b == Behaviour::Honest || *b == Behaviour::Silent || *b == Behaviour::SaysNotFound {
                prop_assert_eq!(queries.misbehaviour(m), 0);
            }
        }
    }
}

/// Members that join the asker's view while a query runs (a merge, a newcomer) are asked too
/// once the members it started with said no.
#[test]
fn members_that_join_during_a_query_are_asked_too() {
    let world = World::new();
    let mut queries = Queries::new(QueryConfig::default());
    let txid = world.blocks[2].txdata[2].txid();
    let small = [1u8, 2];
    let cx_small = Context {
        members: &small,
        archives: &[],
        ..world.cx()
    };
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &cx_small)
        .unwrap();
    let first = asks(&drain(&mut queries));
    assert_eq!(
        first.iter().map(|(to, _)| *to).collect::<Vec<u8>>(),
        vec![1, 2]
    );
    for (to, request_id) in first {
        queries.handle_answer(1, to, request_id, TxAnswerBody::NotFound, &world.cx());
    }
    let out = drain(&mut queries);
    assert_eq!(
        done(&out),
        None,
        "not finished while new members are unasked"
    );
    let mut asked: Vec<u8> = asks(&out).iter().map(|(to, _)| *to).collect();
    asked.sort_unstable();
    assert_eq!(asked, vec![3, 4, 5]);
}

const ARCHIVE: u8 = 9;

/// A finished local query: its result and who answered.
type Finished = Option<(QueryResult, Option<u8>)>;

/// Answers every ask in `wave` with `answer`; returns the next wave and the result, if any.
fn answer_all(
    queries: &mut Queries<u8>,
    wave: &[(u8, u64)],
    answer: &TxAnswerBody,
    cx: &Context<'_, u8>,
) -> (Vec<(u8, u64)>, Finished) {
    for (to, request_id) in wave {
        queries.handle_answer(1, *to, *request_id, answer.clone(), cx);
    }
    let out = drain(queries);
    let finished = out.iter().find_map(|o| match o {
        QueryOutput::Done {
            result,
            answered_by,
            ..
        } => Some((result.clone(), *answered_by)),
        _ => None,
    });
    (asks(&out), finished)
}

/// Queries of a node configured to ask archives last (a page's node, S16).
fn asking_archives() -> Queries<u8> {
    Queries::new(QueryConfig {
        ask_archives: true,
        ..QueryConfig::default()
    })
}

#[test]
fn own_queries_ask_the_archives_last_when_configured() {
    let world = World::new();
    let b = &world.blocks[4];
    let txid = b.txdata[3].txid();
    let proof = b.merkle_proof(4, 3).unwrap();
    let cx = Context {
        archives: &[ARCHIVE],
        ..world.cx()
    };
    let mut queries = asking_archives();
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &cx)
        .unwrap();
    // The members in waves of `fanout`; the archive only after every member said no.
    let mut wave = asks(&drain(&mut queries));
    let mut asked = Vec::new();
    while !wave.iter().any(|(to, _)| *to == ARCHIVE) {
        asked.extend(wave.iter().map(|(to, _)| *to));
        let (next, finished) = answer_all(&mut queries, &wave, &TxAnswerBody::NotFound, &cx);
        assert_eq!(finished, None);
        wave = next;
    }
    asked.sort_unstable();
    assert_eq!(asked, MEMBERS.to_vec());
    assert_eq!(wave.len(), 1, "the archives' wave is their own");
    let (_, finished) = answer_all(
        &mut queries,
        &wave,
        &TxAnswerBody::found(proof, b.txdata[3].encode()),
        &cx,
    );
    let (result, answered_by) = finished.expect("answered");
    assert!(matches!(
        result,
        QueryResult::Confirmed {
            height: 4,
            pos: 3,
            ..
        }
    ));
    assert_eq!(answered_by, Some(ARCHIVE));

    // A query on a peer's behalf never goes to the archives, nor one without the setting.
    for (mut queries, origin) in [
        (
            asking_archives(),
            Origin::Peer {
                peer: 7,
                request_id: 1,
            },
        ),
        (Queries::new(QueryConfig::default()), Origin::Local),
    ] {
        queries
            .start(0, origin, Scope::Cluster, txid, None, &cx)
            .unwrap();
        let mut wave = asks(&drain(&mut queries));
        let mut finished = None;
        while finished.is_none() {
            assert!(wave.iter().all(|(to, _)| *to != ARCHIVE), "{origin:?}");
            (wave, finished) = answer_all(&mut queries, &wave, &TxAnswerBody::NotFound, &cx);
            if wave.is_empty() && finished.is_none() {
                break; // a peer's query ends in a Reply
            }
        }
    }
}

#[test]
fn an_ordinary_node_asks_its_archive_and_tells_not_found_from_not_synced() {
    let world = World::new();
    let cx = Context {
        members: &[],
        archives: &[ARCHIVE],
        ..world.cx()
    };
    let mut queries = asking_archives();
    let unknown = Txid([0xab; 32]);
    queries
        .start(0, Origin::Local, Scope::Cluster, unknown, None, &cx)
        .unwrap();
    let wave = asks(&drain(&mut queries));
    assert_eq!(
        wave.iter().map(|(to, _)| *to).collect::<Vec<_>>(),
        [ARCHIVE]
    );
    let (_, finished) = answer_all(&mut queries, &wave, &TxAnswerBody::NotFound, &cx);
    assert_eq!(finished, Some((QueryResult::NotFound, None)));

    // A proof in a block above this node's tip cannot be checked yet: NotSynced, no blame.
    let longer = chain_of(9, 5, 1);
    assert_eq!(longer[5].block_hash(), world.blocks[5].block_hash());
    let ahead = &longer[8];
    let txid = ahead.txdata[1].txid();
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &cx)
        .unwrap();
    let wave = asks(&drain(&mut queries));
    let found = TxAnswerBody::found(ahead.merkle_proof(8, 1).unwrap(), ahead.txdata[1].encode());
    let (_, finished) = answer_all(&mut queries, &wave, &found, &cx);
    assert_eq!(finished, Some((QueryResult::NotSynced, None)));
    assert_eq!(queries.misbehaviour(&ARCHIVE), 0);
    // A node with no header chain at all is not synced either.
    let empty = TestChain::new(&[]);
    let bare = Context {
        chain: &empty,
        ..cx
    };
    queries
        .start(0, Origin::Local, Scope::Cluster, txid, None, &bare)
        .unwrap();
    let wave = asks(&drain(&mut queries));
    let (_, finished) = answer_all(&mut queries, &wave, &found, &bare);
    assert_eq!(finished, Some((QueryResult::NotSynced, None)));
}

/// An archive (no cluster, every block of its chain held) answers a peer's query for a
/// transaction it does not index `NotFound`; a node without the setting and with nobody to ask
/// can only say `Unavailable`.
#[test]
fn a_node_that_holds_every_block_answers_not_found_for_what_it_lacks() {
    let mut world = World::new();
    for block in &world.blocks {
        world.index.add_block(block);
    }
    let alone = Context {
        members: &[],
        ..world.cx()
    };
    let unknown = Txid([0xcd; 32]);
    let peer = Origin::Peer {
        peer: 7,
        request_id: 9,
    };
    let reply = |holds_every_block: bool, hint: Option<BlockHash>| {
        let mut queries = Queries::new(QueryConfig {
            holds_every_block,
            ..QueryConfig::default()
        });
        queries
            .start(0, peer, Scope::Cluster, unknown, hint, &alone)
            .unwrap();
        let out = drain(&mut queries);
        assert_eq!(queries.active(), 0, "answered at once");
        out.into_iter()
            .find_map(|o| match o {
                QueryOutput::Reply {
                    to: 7,
                    request_id: 9,
                    answer,
                } => Some(answer),
                _ => None,
            })
            .expect("a reply")
    };
    assert_eq!(reply(true, None), TxAnswerBody::NotFound);
    assert_eq!(reply(false, None), TxAnswerBody::Unavailable);
    // A hint off the chain is dropped: still "not in the chain".
    assert_eq!(
        reply(true, Some(BlockHash([0x77; 32]))),
        TxAnswerBody::NotFound
    );
}

/// A member whose own search is not complete (its index still being rebuilt after a restart,
/// or blocks of its shard still missing) must not tell a fellow member "not found": that is
/// final for the asker once every member said it. It says "unavailable" until its search is
/// complete; an archive that holds every block likewise.
#[test]
fn a_node_whose_search_is_incomplete_answers_unavailable_not_not_found() {
    let world = World::new();
    let unknown = Txid([0xcd; 32]);
    let reply = |complete: bool, scope: Scope, holds_every_block: bool| {
        let mut queries = Queries::new(QueryConfig {
            holds_every_block,
            ..QueryConfig::default()
        });
        let cx = Context {
            members: &[],
            complete,
            ..world.cx()
        };
        let peer = Origin::Peer {
            peer: 7,
            request_id: 9,
        };
        queries.start(0, peer, scope, unknown, None, &cx).unwrap();
        drain(&mut queries)
            .into_iter()
            .find_map(|o| match o {
                QueryOutput::Reply { answer, .. } => Some(answer),
                _ => None,
            })
            .expect("a reply at once")
    };
    assert_eq!(reply(true, Scope::LocalOnly, false), TxAnswerBody::NotFound);
    assert_eq!(
        reply(false, Scope::LocalOnly, false),
        TxAnswerBody::Unavailable
    );
    assert_eq!(reply(true, Scope::Cluster, true), TxAnswerBody::NotFound);
    assert_eq!(
        reply(false, Scope::Cluster, true),
        TxAnswerBody::Unavailable
    );
}
