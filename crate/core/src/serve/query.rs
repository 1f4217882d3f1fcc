//! Transaction queries (S16): answer from the local shard, else forward inside the cluster;
//! the first answer whose Merkle proof verifies against this node's own header chain wins.
//!
//! # Overview
//!
//! A query `{txid, block_hint?}` comes from this node's front end ([`Origin::Local`]) or from
//! another node ([`Origin::Peer`]). [`Queries`] runs each one as a small state machine:
//!
//! 1. **Local.** If the [`TxIndex`] has candidates for the txid (only in the hinted block when
//!    a hint is given), the node reads each candidate block from its store
//!    ([`QueryOutput::ReadBlock`] → [`Queries::handle_block_read`]); the block is re-hashed on
//!    read, the transaction confirmed at its position (short-key collisions fall through) and a
//!    [`MerkleProof`] built from it.
//! 2. **Forward** (scope [`Scope::Cluster`] only). Otherwise the query is sent
//!    ([`QueryOutput::Ask`]) to the hinted block's holders (from the placement function the
//!    node passes in) first and then the other members (which may keep the block from an
//!    earlier placement, or hold it under a newer view than ours), or without a hint to every
//!    other member, `fanout` at a time: the next
//!    wave goes out when the current one has answered without success or after
//!    `wave_interval_ms`. A query received from another member runs with [`Scope::LocalOnly`],
//!    so forwarding never cascades. With [`QueryConfig::ask_archives`], this node's own
//!    queries then ask the connected archives ([`Context::archives`]) in a last wave of their
//!    own: the fallback of a node whose cluster cannot answer (or that is in none).
//! 3. **Verify.** An answer counts only if it comes from the peer asked under that request id
//!    and its proof checks against *this* node's best chain: the block is on the best chain
//!    at the stated height and the branch leads from the txid, at the stated position, to that
//!    header's Merkle root ([`MerkleProof::verify_against_header`]: bounded branch, position
//!    bits, CVE-2012-2459 phantom positions); and the raw transaction it carries decodes, is
//!    not 64 bytes without witness (the inner-node ambiguity, see `chain::merkle`) and hashes to
//!    the txid asked for ([`check_transaction`]). A proof or transaction that fails is dropped
//!    and scored against its sender ([`QueryOutput::Misbehaved`]), and the next answerer is
//!    waited for; a proof for a block not on our best chain (the peer may be on another
//!    branch) is dropped without blame.
//! 4. **Result** ([`QueryResult`]): `Confirmed` (with the raw transaction) for the first
//!    verified answer; `NotFound` when
//!    every node asked answered "not found"; otherwise, when no proof verified: `InvalidProof`
//!    if some answer's proof failed the check, else `NotSynced` if some answer's block lies
//!    above this node's header tip (it cannot be checked yet), else `Unavailable` (the query
//!    timed out, or some node could not say).
//!
//! Reorgs: a proof counts only while its block is on the best chain; [`QueryResult::recheck`]
//! re-validates a stored result against a newer chain.
//!
//! Bounds: concurrent queries, local candidates per query, members asked, per-peer request rate
//! (token buckets on `now_ms`), misbehaviour table and output queue are all capped by
//! [`QueryConfig`].
//!
//! An answer carries the transaction itself, so a wallet gets what it needs (not only its
//! inclusion), and the 64-byte-transaction ambiguity of a bare proof is closed: a 64-byte
//! "transaction" is refused.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

use super::ratelimit::{RateLimitConfig, RateLimiter};
use super::txindex::TxIndex;
use super::{BestChain, PeerScores};
use crate::base::RequestIds;
use crate::chain::merkle::{MerkleProof, ProofError};
use crate::chain::{Block, BlockHash, Hash256, Transaction, Txid};
use crate::wire::TxAnswerBody;
use checked::{Checked, Lookup};

/// A query's id, local to this node.
pub type QueryId = u64;

/// Configuration of transaction queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryConfig {
    /// Members asked per wave.
    pub fanout: usize,
    /// Time after which the next wave goes out if no answer settled the query.
    pub wave_interval_ms: u64,
    /// Time after which a query gives up with `Unavailable`.
    pub query_timeout_ms: u64,
    /// Queries in flight at once (local and on behalf of peers).
    pub max_active_queries: usize,
    /// Local candidate blocks read per query (short-key collisions are rare).
    pub max_local_candidates: usize,
    /// Members asked per query, across all waves.
    pub max_targets: usize,
    /// Queries an outside node may send us (scope [`Scope::Cluster`]).
    pub peer_rate: RateLimitConfig,
    /// Queries a fellow member may forward to us (scope [`Scope::LocalOnly`]): members relay
    /// their front ends' and outsiders' queries, so they get more room.
    pub member_rate: RateLimitConfig,
    /// Misbehaviour points for an answer whose proof fails.
    pub invalid_answer_points: u32,
    /// Peers whose misbehaviour is remembered.
    pub max_scored_peers: usize,
    /// Most outputs queued before the node drains them.
    pub max_queued_outputs: usize,
    /// Whether this node's own queries ([`Origin::Local`]) ask the connected archives after
    /// the members, in a last wave (a browser node, whose relay is an archive). Off by
    /// default: a member's queries stay inside its cluster.
    pub ask_archives: bool,
    /// This node holds every block of its best chain (an archive): a query its own blocks do
    /// not answer and that it has nobody to forward to is answered [`QueryResult::NotFound`]
    /// — the transaction is not in the chain — instead of `Unavailable`. Off by default.
    pub holds_every_block: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            fanout: 3,
            wave_interval_ms: 2_000,
            query_timeout_ms: 10_000,
            max_active_queries: 64,
            max_local_candidates: 8,
            max_targets: 64,
            peer_rate: RateLimitConfig::default(),
            member_rate: RateLimitConfig {
                burst: 200,
                per_second: 50,
                max_peers: 64,
            },
            invalid_answer_points: 20,
            max_scored_peers: 256,
            max_queued_outputs: 1024,
            ask_archives: false,
            holds_every_block: false,
        }
    }
}

/// Who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<P> {
    /// This node's front end: the result comes out as [`QueryOutput::Done`].
    Local,
    /// Another node: the result goes back as [`QueryOutput::Reply`].
    Peer {
        /// The asking node.
        peer: P,
        /// Its request id, echoed in the reply.
        request_id: u64,
    },
}

/// How far a query may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Answer locally, else forward to members (front end, outside nodes).
    Cluster,
    /// Answer from this node's own blocks only (queries forwarded by another member).
    LocalOnly,
}

/// The outcome of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryResult {
    /// The transaction is in the best chain, proven against this node's headers.
    Confirmed {
        /// Its block.
        block_hash: BlockHash,
        /// The block's height.
        height: u32,
        /// Blocks from it to the tip, itself included.
        confirmations: u32,
        /// Its position in the block.
        pos: u32,
        /// The Merkle branch, leaf level first.
        merkle: Vec<Hash256>,
        /// The transaction's raw consensus bytes, checked to hash to the txid.
        transaction: Vec<u8>,
    },
    /// Every node asked said it is not in their blocks.
    NotFound,
    /// No verified answer, and an answer proved the transaction in a block above this node's
    /// header tip: it can be checked once the headers catch up.
    NotSynced,
    /// No verified answer, and an answer came with a proof that failed the check against this
    /// node's headers (its sender was scored, [`QueryOutput::Misbehaved`]).
    InvalidProof,
    /// No verified answer in time.
    Unavailable,
}

impl QueryResult {
    fn confirmed(proof: MerkleProof, transaction: Vec<u8>, chain: &dyn BestChain) -> Self {
        let tip = chain.tip_height().unwrap_or(proof.height);
        QueryResult::Confirmed {
            block_hash: proof.block_hash,
            height: proof.height,
            confirmations: tip.saturating_sub(proof.height) + 1,
            pos: proof.pos,
            merkle: proof.branch,
            transaction,
        }
    }

    /// The proof of a `Confirmed` result.
    pub fn proof(&self) -> Option<MerkleProof> {
        match self {
            QueryResult::Confirmed {
                block_hash,
                height,
                pos,
                merkle,
                ..
            } => Some(MerkleProof {
                block_hash: *block_hash,
                height: *height,
                pos: *pos,
                branch: merkle.clone(),
            }),
            _ => None,
        }
    }

    /// Re-validates a result against a (possibly reorganised) chain: a `Confirmed` result with
    /// its confirmations updated if its proof still holds, `None` if its block left the best
    /// chain (query again). Other results are returned unchanged.
    pub fn recheck(&self, txid: &Txid, chain: &dyn BestChain) -> Option<QueryResult> {
        match self.proof() {
            Some(proof) => verify_answer(&proof, txid, chain).ok().map(|()| {
                let transaction = match self {
                    QueryResult::Confirmed { transaction, .. } => transaction.clone(),
                    _ => Vec::new(),
                };
                QueryResult::confirmed(proof, transaction, chain)
            }),
            None => Some(self.clone()),
        }
    }
}

/// Why a proof does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The proof's block is not on this node's best chain (the answerer may be on another
    /// branch; not counted as misbehaviour).
    #[error("block {0} is not on the best chain")]
    NotInBestChain(BlockHash),
    /// The block is on the best chain, but at another height than the proof says.
    #[error("block is at height {actual}, the proof says {claimed}")]
    WrongHeight {
        /// What the proof says.
        claimed: u32,
        /// Where the block is.
        actual: u32,
    },
    /// The branch does not prove the txid against the header.
    #[error("invalid Merkle proof: {0}")]
    Proof(#[from] ProofError),
    /// The proof's block is not in this node's chain and its height is above the tip: it
    /// cannot be checked yet (not counted as misbehaviour).
    #[error("the proof's height {0} is above this node's header tip")]
    AboveTip(u32),
    /// The answer's transaction bytes do not decode as one transaction.
    #[error("the transaction does not decode: {0}")]
    BadTransaction(String),
    /// The answer's transaction hashes to another txid than the one asked for.
    #[error("the transaction's txid is {actual}, not the {asked} asked for")]
    WrongTransaction {
        /// The txid asked for.
        asked: Txid,
        /// What the transaction hashes to.
        actual: Txid,
    },
}

/// Checks an answer's raw transaction for `txid`: it decodes as exactly one transaction, is not
/// 64 bytes without witness (such bytes could be an inner node of the Merkle tree, see
/// `chain::merkle`), and hashes to `txid`.
pub fn check_transaction(tx: &[u8], txid: &Txid) -> Result<(), AnswerError> {
    let decoded =
        Transaction::decode(tx).map_err(|e| AnswerError::BadTransaction(e.to_string()))?;
    if decoded.base_size() == crate::chain::merkle::AMBIGUOUS_TRANSACTION_SIZE {
        return Err(AnswerError::Proof(ProofError::AmbiguousTransaction));
    }
    let actual = decoded.txid();
    if actual != *txid {
        return Err(AnswerError::WrongTransaction {
            asked: *txid,
            actual,
        });
    }
    Ok(())
}

/// Checks an answer's proof for `txid` against `chain`: the block is on the best chain at the
/// proof's height and the branch leads to that header's Merkle root.
pub fn verify_answer(
    proof: &MerkleProof,
    txid: &Txid,
    chain: &dyn BestChain,
) -> Result<(), AnswerError> {
    let Some(height) = chain.height_of(&proof.block_hash) else {
        return Err(match chain.tip_height() {
            Some(tip) if proof.height <= tip => AnswerError::NotInBestChain(proof.block_hash),
            _ => AnswerError::AboveTip(proof.height),
        });
    };
    if height != proof.height {
        return Err(AnswerError::WrongHeight {
            claimed: proof.height,
            actual: height,
        });
    }
    let header = chain
        .header_at(height)
        .ok_or(AnswerError::NotInBestChain(proof.block_hash))?;
    proof.verify_against_header(*txid, &header)?;
    Ok(())
}

/// Why a query was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The asking peer exceeded its query rate.
    #[error("query rate limit exceeded")]
    RateLimited,
    /// Too many queries in flight.
    #[error("too many queries in flight (limit {0})")]
    Busy(usize),
}

/// What the node must do for its queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryOutput<P> {
    /// Read a block from this node's store and hand it to [`Queries::handle_block_read`].
    ReadBlock {
        /// The query.
        query: QueryId,
        /// The block.
        block_hash: BlockHash,
    },
    /// Send a `TxQuery` to a member.
    Ask {
        /// The member.
        to: P,
        /// Echoed in its answer.
        request_id: u64,
        /// The transaction.
        txid: Txid,
        /// The block it is believed to be in.
        block_hint: Option<BlockHash>,
    },
    /// Send a `TxAnswer` to the node that asked.
    Reply {
        /// The asking node.
        to: P,
        /// Its request id.
        request_id: u64,
        /// The answer.
        answer: TxAnswerBody,
    },
    /// A local query finished: tell the front end.
    Done {
        /// The query.
        query: QueryId,
        /// Its transaction.
        txid: Txid,
        /// The result.
        result: QueryResult,
        /// The node whose proof confirmed it; `None` when this node's own blocks did, or when
        /// nothing was confirmed.
        answered_by: Option<P>,
    },
    /// `peer` sent an answer whose proof failed; `score` is its misbehaviour total.
    Misbehaved {
        /// The peer.
        peer: P,
        /// Its score now.
        score: u32,
    },
    /// A stored block did not re-hash to its key: the node should drop it and re-fetch it.
    CorruptBlock {
        /// The block.
        block_hash: BlockHash,
    },
}

/// What the queries need of the node at each step.
pub struct Context<'a, P> {
    /// This node's best header chain.
    pub chain: &'a dyn BestChain,
    /// This node's transaction index.
    pub index: &'a TxIndex,
    /// This node's own id (never asked).
    pub me: P,
    /// The cluster's members (empty for an ordinary node).
    pub members: &'a [P],
    /// Connected archives, asked last by this node's own queries when
    /// [`QueryConfig::ask_archives`] is set.
    pub archives: &'a [P],
    /// Placement: who holds a block.
    pub holders: &'a dyn Fn(&BlockHash) -> Vec<P>,
    /// Whether this node's search of its own blocks is complete: its index is built and it
    /// holds every block placed on it. Only then does a search that finds nothing say
    /// "not found" for it; otherwise a peer is told "unavailable" (it keeps looking) — a node
    /// re-indexing after a restart, or still filling its shard, must not make a transaction
    /// of the chain look absent from it.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Response {
    NotFound,
    /// A proof for a block above our header tip (cannot be checked yet).
    AboveTip,
    /// A proof that failed the check (scored).
    Invalid,
    /// Unavailable, a failed proof, or a proof for a block off our chain.
    NoAnswer,
}

#[derive(Debug)]
struct Query<P> {
    txid: Txid,
    hint: Option<BlockHash>,
    origin: Origin<P>,
    scope: Scope,
    deadline_ms: u64,
    /// Local candidates still to read; the front one is being read.
    local: VecDeque<(BlockHash, u32)>,
    /// Whether this node holds the hinted block.
    hint_held: bool,
    /// Nodes to ask, in order; `targets[..next_target]` have been asked.
    targets: Vec<P>,
    next_target: usize,
    /// `targets[first_archive..]` are archives, asked in a wave of their own after the
    /// members.
    first_archive: usize,
    /// The node whose proof confirmed the query.
    answered_by: Option<P>,
    next_wave_ms: u64,
    responses: BTreeMap<P, Response>,
}

/// All queries of one node. See the module docs.
#[derive(Debug)]
pub struct Queries<P> {
    config: QueryConfig,
    queries: BTreeMap<QueryId, Query<P>>,
    /// Request id of an `Ask` → (query, member asked).
    asks: HashMap<u64, (QueryId, P)>,
    /// The next query id (local to this table).
    next_id: u64,
    /// Where the asks' request ids come from (the node's, when the node runs the queries).
    request_ids: RequestIds,
    limiter: RateLimiter<P>,
    member_limiter: RateLimiter<P>,
    scores: PeerScores<P>,
    outputs: VecDeque<QueryOutput<P>>,
    /// Blocks of our own store checked whole, kept as txids and offsets (`checked`).
    checked: Checked,
}

impl<P: Copy + Eq + Hash + Ord> Queries<P> {
    /// No queries yet; asks are numbered by a counter of their own.
    pub fn new(config: QueryConfig) -> Self {
        Self::with_request_ids(config, RequestIds::new())
    }

    /// No queries yet; asks take their request ids from `request_ids` (the node's allocator).
    pub fn with_request_ids(config: QueryConfig, request_ids: RequestIds) -> Self {
        Self {
            config,
            queries: BTreeMap::new(),
            asks: HashMap::new(),
            next_id: 1,
            request_ids,
            limiter: RateLimiter::new(config.peer_rate),
            member_limiter: RateLimiter::new(config.member_rate),
            scores: PeerScores::new(config.max_scored_peers),
            outputs: VecDeque::new(),
            checked: Checked::default(),
        }
    }

    /// Starts a query. Peers are rate limited; a refused query produces no output (the node
    /// may answer `Unavailable` or stay silent).
    pub fn start(
        &mut self,
        now_ms: u64,
        origin: Origin<P>,
        scope: Scope,
        txid: Txid,
        block_hint: Option<BlockHash>,
        cx: &Context<'_, P>,
    ) -> Result<QueryId, QueryError> {
        if let Origin::Peer { peer, .. } = origin {
            let limiter = match scope {
                Scope::Cluster => &mut self.limiter,
                Scope::LocalOnly => &mut self.member_limiter,
            };
            if !limiter.try_take(now_ms, peer) {
                return Err(QueryError::RateLimited);
            }
        }
        if self.queries.len() >= self.config.max_active_queries {
            return Err(QueryError::Busy(self.config.max_active_queries));
        }
        // A hint off our best chain cannot lead to a confirmation: search without it.
        let hint = block_hint.filter(|h| cx.chain.height_of(h).is_some());
        let hint_held = hint.is_some_and(|h| cx.index.contains_block(&h));
        let local: VecDeque<(BlockHash, u32)> = cx
            .index
            .candidates(&txid)
            .filter(|(h, _)| hint.is_none_or(|hint| hint == *h))
            .filter(|(h, _)| cx.chain.height_of(h).is_some())
            .take(self.config.max_local_candidates)
            .collect();
        let id = self.next_id();
        self.queries.insert(
            id,
            Query {
                txid,
                hint,
                origin,
                scope,
                deadline_ms: now_ms.saturating_add(self.config.query_timeout_ms),
                local,
                hint_held,
                targets: Vec::new(),
                next_target: 0,
                first_archive: 0,
                answered_by: None,
                next_wave_ms: u64::MAX,
                responses: BTreeMap::new(),
            },
        );
        self.advance_local(now_ms, id, cx);
        Ok(id)
    }

    /// The node read a block a [`QueryOutput::ReadBlock`] asked for (`None`: not stored). The
    /// bytes are checked like any peer's: they must decode, hash to the block and match its
    /// header's Merkle root; otherwise [`QueryOutput::CorruptBlock`] is reported.
    pub fn handle_block_read(
        &mut self,
        now_ms: u64,
        query: QueryId,
        block_hash: BlockHash,
        bytes: Option<&[u8]>,
        cx: &Context<'_, P>,
    ) {
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        let Some(&(expected, pos)) = q.local.front() else {
            return;
        };
        if expected != block_hash {
            return;
        }
        q.local.pop_front();
        let txid = q.txid;
        if let Some(bytes) = bytes {
            match self.checked.lookup(&block_hash, bytes, &txid, pos) {
                Lookup::Unknown => {}
                Lookup::NotThere => return self.advance_local(now_ms, query, cx),
                Lookup::Corrupt => {
                    self.push(QueryOutput::CorruptBlock { block_hash });
                    return self.advance_local(now_ms, query, cx);
                }
                Lookup::Found { txids, tx } => {
                    if let Some(proof) = verified_proof(block_hash, txids, &txid, pos, cx.chain) {
                        let result = QueryResult::confirmed(proof, tx, cx.chain);
                        return self.finish(query, result);
                    }
                    return self.advance_local(now_ms, query, cx);
                }
            }
            // The checks hash every transaction once; the proof is built from those txids.
            let checked = Block::decode(bytes).ok().and_then(|block| {
                if block.block_hash() != block_hash {
                    return None;
                }
                let (_, txids) = block.check_with_txids().ok()?;
                Some((block, txids))
            });
            match checked {
                Some((block, txids)) => {
                    self.checked.insert(block_hash, &block, bytes.len(), &txids);
                    if let Some((proof, tx)) = local_proof(&block, &txids, &txid, pos, cx.chain) {
                        let result = QueryResult::confirmed(proof, tx, cx.chain);
                        self.finish(query, result);
                        return;
                    }
                }
                None => {
                    // A corrupt copy proves nothing either way: ask the other holders.
                    if q.hint == Some(block_hash) {
                        q.hint_held = false;
                    }
                    self.push(QueryOutput::CorruptBlock { block_hash });
                }
            }
        } else if q.hint == Some(block_hash) {
            q.hint_held = false;
        }
        self.advance_local(now_ms, query, cx);
    }

    /// A member answered an [`QueryOutput::Ask`]. Answers under unknown request ids or from
    /// another peer than the one asked are ignored.
    pub fn handle_answer(
        &mut self,
        now_ms: u64,
        from: P,
        request_id: u64,
        answer: TxAnswerBody,
        cx: &Context<'_, P>,
    ) {
        match self.asks.get(&request_id) {
            Some((_, asked)) if *asked == from => {}
            _ => return,
        }
        let (query, _) = self.asks.remove(&request_id).expect("just looked up");
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        let txid = q.txid;
        let not_found = answer == TxAnswerBody::NotFound;
        let response = match answer.into_proof() {
            Some((proof, tx)) => match verify_answer(&proof, &txid, cx.chain)
                .and_then(|()| check_transaction(&tx, &txid))
            {
                Ok(()) => {
                    q.answered_by = Some(from);
                    let result = QueryResult::confirmed(proof, tx, cx.chain);
                    self.finish(query, result);
                    return;
                }
                Err(AnswerError::NotInBestChain(_)) => Response::NoAnswer,
                Err(AnswerError::AboveTip(_)) => Response::AboveTip,
                Err(_) => {
                    let score = self.scores.add(from, self.config.invalid_answer_points);
                    self.push(QueryOutput::Misbehaved { peer: from, score });
                    Response::Invalid
                }
            },
            None if not_found => Response::NotFound,
            None => Response::NoAnswer,
        };
        let q = self.queries.get_mut(&query).expect("still active");
        q.responses.insert(from, response);
        // Members that joined our view since the query started are asked too (a cluster that
        // just merged or took in a newcomer), within the bound on targets.
        if q.scope == Scope::Cluster && !q.targets.is_empty() {
            for member in cx.members {
                if q.targets.len() >= self.config.max_targets {
                    break;
                }
                if *member != cx.me && !q.targets.contains(member) {
                    // Before the archives, unless their wave went out already.
                    if q.next_target <= q.first_archive {
                        q.targets.insert(q.first_archive, *member);
                        q.first_archive += 1;
                    } else {
                        q.targets.push(*member);
                    }
                }
            }
        }
        self.after_response(now_ms, query);
    }

    /// Sends due waves and ends overdue queries with `Unavailable`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let ids: Vec<QueryId> = self.queries.keys().copied().collect();
        for id in ids {
            let q = &self.queries[&id];
            if q.deadline_ms <= now_ms {
                let result = q.unanswered();
                self.finish(id, result);
            } else if q.next_wave_ms <= now_ms {
                self.send_wave(now_ms, id);
            }
        }
    }

    /// The earliest time [`Queries::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.queries
            .values()
            .map(|q| q.deadline_ms.min(q.next_wave_ms))
            .min()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<QueryOutput<P>> {
        self.outputs.pop_front()
    }

    /// Queries in flight.
    pub fn active(&self) -> usize {
        self.queries.len()
    }

    /// `peer`'s misbehaviour score.
    pub fn misbehaviour(&self, peer: &P) -> u32 {
        self.scores.get(peer)
    }

    /// Reads the next local candidate, or moves on to forwarding (or to the local answer).
    fn advance_local(&mut self, now_ms: u64, id: QueryId, cx: &Context<'_, P>) {
        let q = self.queries.get_mut(&id).expect("active query");
        if let Some(&(block_hash, _)) = q.local.front() {
            self.push(QueryOutput::ReadBlock {
                query: id,
                block_hash,
            });
            return;
        }
        if q.hint_held {
            // We hold the hinted block, and the transaction is not in it.
            self.finish(id, QueryResult::NotFound);
            return;
        }
        if q.scope == Scope::LocalOnly {
            let result = if q.hint.is_some() || !cx.complete {
                QueryResult::Unavailable
            } else {
                QueryResult::NotFound
            };
            self.finish(id, result);
            return;
        }
        // The hinted block's holders first; then every other member, which may still keep it
        // from an earlier placement or know a newer view.
        let mut targets = match q.hint {
            Some(hint) => (cx.holders)(&hint),
            None => Vec::new(),
        };
        targets.retain(|p| *p != cx.me);
        let mut seen = std::collections::BTreeSet::new();
        targets.retain(|p| seen.insert(*p));
        targets.extend(
            cx.members
                .iter()
                .filter(|p| **p != cx.me && seen.insert(**p)),
        );
        targets.truncate(self.config.max_targets);
        q.first_archive = targets.len();
        if self.config.ask_archives && q.origin == Origin::Local {
            targets.extend(
                cx.archives
                    .iter()
                    .filter(|p| **p != cx.me && seen.insert(**p)),
            );
            // At least one archive even when the members filled `max_targets`.
            targets.truncate(self.config.max_targets.max(q.first_archive + 1));
        }
        if targets.is_empty() {
            let result = if self.config.holds_every_block && cx.complete {
                QueryResult::NotFound
            } else {
                QueryResult::Unavailable
            };
            self.finish(id, result);
            return;
        }
        q.targets = targets;
        self.send_wave(now_ms, id);
    }

    fn send_wave(&mut self, now_ms: u64, id: QueryId) {
        let q = self.queries.get_mut(&id).expect("active query");
        let mut end = (q.next_target + self.config.fanout.max(1)).min(q.targets.len());
        if q.next_target < q.first_archive {
            end = end.min(q.first_archive); // the archives' wave comes after the members'
        }
        let wave: Vec<P> = q.targets[q.next_target..end].to_vec();
        q.next_target = end;
        q.next_wave_ms = if end < q.targets.len() {
            now_ms.saturating_add(self.config.wave_interval_ms)
        } else {
            u64::MAX
        };
        let (txid, hint) = (q.txid, q.hint);
        for to in wave {
            let request_id = self.request_ids.next_id();
            self.asks.insert(request_id, (id, to));
            self.push(QueryOutput::Ask {
                to,
                request_id,
                txid,
                block_hint: hint,
            });
        }
    }

    fn after_response(&mut self, now_ms: u64, id: QueryId) {
        let q = &self.queries[&id];
        let asked = q.next_target;
        let answered = q.targets[..asked]
            .iter()
            .filter(|p| q.responses.contains_key(p))
            .count();
        if answered < asked {
            return;
        }
        if asked < q.targets.len() {
            // This wave is done without success: do not wait for the interval.
            self.send_wave(now_ms, id);
            return;
        }
        let all_not_found = q.responses.values().all(|r| *r == Response::NotFound);
        let result = if all_not_found {
            QueryResult::NotFound
        } else {
            q.unanswered()
        };
        self.finish(id, result);
    }

    fn finish(&mut self, id: QueryId, result: QueryResult) {
        let Some(q) = self.queries.remove(&id) else {
            return;
        };
        self.asks.retain(|_, (query, _)| *query != id);
        match q.origin {
            Origin::Local => self.push(QueryOutput::Done {
                query: id,
                txid: q.txid,
                result,
                answered_by: q.answered_by,
            }),
            Origin::Peer { peer, request_id } => {
                let answer = match result {
                    QueryResult::Confirmed {
                        ref transaction, ..
                    } => TxAnswerBody::found(
                        result.proof().expect("confirmed has a proof"),
                        transaction.clone(),
                    ),
                    QueryResult::NotFound => TxAnswerBody::NotFound,
                    QueryResult::NotSynced
                    | QueryResult::InvalidProof
                    | QueryResult::Unavailable => TxAnswerBody::Unavailable,
                };
                self.push(QueryOutput::Reply {
                    to: peer,
                    request_id,
                    answer,
                });
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn push(&mut self, output: QueryOutput<P>) {
        if self.outputs.len() >= self.config.max_queued_outputs.max(1) {
            self.outputs.pop_front();
        }
        self.outputs.push_back(output);
    }
}

impl<P> Query<P> {
    /// The result of a query that got no verified answer and not only "not found".
    fn unanswered(&self) -> QueryResult {
        let any = |kind| self.responses.values().any(|r| *r == kind);
        if any(Response::Invalid) {
            QueryResult::InvalidProof
        } else if any(Response::AboveTip) {
            QueryResult::NotSynced
        } else {
            QueryResult::Unavailable
        }
    }
}

/// The proof for `txid` at `pos` of a block this node read from its own store (and checked,
/// which gave `txids`, the block's transaction ids in order), and the transaction's raw bytes,
/// if the block has it there and is on the best chain.
fn local_proof(
    block: &Block,
    txids: &[Txid],
    txid: &Txid,
    pos: u32,
    chain: &dyn BestChain,
) -> Option<(MerkleProof, Vec<u8>)> {
    let proof = verified_proof(block.block_hash(), txids, txid, pos, chain)?;
    let tx = block.txdata.get(pos as usize)?.encode();
    Some((proof, tx))
}

/// The proof for `txid` at `pos` of the block `block_hash` whose transaction ids are `txids`,
/// if it is there and the block is on the best chain; checked like anyone else's answer.
fn verified_proof(
    block_hash: BlockHash,
    txids: &[Txid],
    txid: &Txid,
    pos: u32,
    chain: &dyn BestChain,
) -> Option<MerkleProof> {
    if txids.get(pos as usize) != Some(txid) {
        return None;
    }
    let height = chain.height_of(&block_hash)?;
    let proof = MerkleProof::build(block_hash, height, txids, pos).ok()?;
    verify_answer(&proof, txid, chain).ok()?;
    Some(proof)
}

mod checked;
#[cfg(test)]
mod tests;
