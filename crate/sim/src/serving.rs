//! Serving in the simulator (S14–S17): new blocks handed out by the block source, transaction
//! queries from members and from outsiders, and adversarial members.
//!
//! # What the world does with this
//!
//! - **New blocks** ([`NewBlocksMode`]): every node gets the longer header list when a block is
//!   mined; the block itself goes to the archives and, per cluster, to one random online member
//!   (routed, S14) or to every online light node (self-selected, S15).
//! - **Queries** at `queries_per_s` (Poisson): a *member query* is an `Input::TxQuery` fed to a
//!   random honest member (its `Event::TxQueryDone` is the result); an *outsider query* is a
//!   client outside the cluster (placed at a random online host that is not a member of that
//!   cluster) that sends a `TxQuery` message to a random member — adversaries included — checks
//!   the answer's proof against the true chain and, on silence, "unavailable" or a proof that
//!   does not hold, asks another member (at most [`OUTSIDER_ATTEMPTS`] in all); "not found"
//!   from a member is the cluster's answer and is final. Txids are those of confirmed
//!   transactions, or (with `unknown_txid_fraction`) random ones.
//! - **Adversaries** ([`AdversaryKind`]): chosen light hosts whose *outgoing* messages are
//!   rewritten by the world ([`Adversary::rewrite`]); the core node on them is unmodified.
//!   Forgers answer every `TxAnswer` with a fabricated proof; corrupters flip a bit in every
//!   block they send (`BlockData`, `NewBlock`); the silent drop every answer and block. The
//!   hollow (issue 16) send what an honest member sends — `BlockStored` for every new block
//!   they "store", `ShardHeld` once their shard is "whole" — but their disk keeps nothing: it
//!   acknowledges every write and lists every block written, and has none to read (the
//!   world's disk, `world::disk`).
//!
//! The judgement of every query attempt, and the invariants it feeds, live in
//! `world::serving`.

use std::collections::HashMap;

use serde::Serialize;
use shoal_core::chain::{Block, MerkleProof, Txid};
use shoal_core::wire::{BlockHash, Hash256, Header, Message, TxAnswerBody};

use crate::chain::SimBlock;
use crate::rng::SimRng;

/// Members an outsider client asks, one after the other, before giving up.
pub const OUTSIDER_ATTEMPTS: u32 = 3;

/// How new blocks reach the cluster (the core's `StorageMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NewBlocksMode {
    /// S14: the block source hands each block to one member per cluster, which routes it.
    Routed,
    /// S15: every member gets every block and keeps what placement gives it.
    SelfSelected,
}

impl std::str::FromStr for NewBlocksMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "routed" => Ok(NewBlocksMode::Routed),
            "self-selected" => Ok(NewBlocksMode::SelfSelected),
            _ => Err(format!("expected routed or self-selected, got {s:?}")),
        }
    }
}

/// What adversarial members do to their outgoing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdversaryKind {
    /// Every `TxAnswer` becomes a `Found` with a fabricated proof.
    Forge,
    /// Every block sent (`BlockData`, `NewBlock`) has a bit flipped.
    Corrupt,
    /// Every `TxAnswer`, `BlockData`, `BlockNotFound` and `NewBlock` is dropped.
    Silent,
    /// Claims to store blocks (`BlockStored`, `ShardHeld`) and stores nothing: its disk
    /// acknowledges and lists every write and keeps none (issue 16).
    Hollow,
    /// Adversaries take the first three kinds (forge, corrupt, silent) in turn.
    Mixed,
}

impl std::str::FromStr for AdversaryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forge" => Ok(AdversaryKind::Forge),
            "corrupt" => Ok(AdversaryKind::Corrupt),
            "silent" => Ok(AdversaryKind::Silent),
            "hollow" => Ok(AdversaryKind::Hollow),
            "mixed" => Ok(AdversaryKind::Mixed),
            _ => Err(format!(
                "expected forge, corrupt, silent, hollow or mixed, got {s:?}"
            )),
        }
    }
}

/// The serving part of a run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServingConfig {
    /// Routed (S14) or self-selected (S15) storage of new blocks.
    pub new_blocks_mode: NewBlocksMode,
    /// Queries per second over the whole world (0: none).
    pub queries_per_s: f64,
    /// Fraction of queries that come from outsiders rather than members' front ends.
    pub outsider_fraction: f64,
    /// Fraction of queries for txids in no block.
    pub unknown_txid_fraction: f64,
    /// Fraction of known-txid member queries that carry the right block as a hint.
    pub hint_fraction: f64,
    /// Fraction of query events that are jobs instead (S17: run code on any block).
    pub job_fraction: f64,
    /// Light hosts that are adversarial members.
    pub adversaries: usize,
    /// What they do.
    pub adversary_kind: AdversaryKind,
    /// Archive relays that greet as archives and answer nothing: every block, `BlockNotFound`,
    /// `TxAnswer` and `NewBlock` they would send is dropped (issue 16: a silent peer claiming
    /// to be an archive). The archives with the lowest ids are chosen: those every node asks
    /// first among archives of equal standing.
    pub silent_archives: usize,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            new_blocks_mode: NewBlocksMode::Routed,
            queries_per_s: 0.2,
            outsider_fraction: 0.3,
            unknown_txid_fraction: 0.1,
            hint_fraction: 0.3,
            job_fraction: 0.1,
            adversaries: 0,
            adversary_kind: AdversaryKind::Mixed,
            silent_archives: 0,
        }
    }
}

impl ServingConfig {
    /// The fields that must be probabilities, by name.
    pub fn probabilities(&self) -> [(&'static str, f64); 4] {
        [
            ("job_fraction", self.job_fraction),
            ("outsider_fraction", self.outsider_fraction),
            ("unknown_txid_fraction", self.unknown_txid_fraction),
            ("hint_fraction", self.hint_fraction),
        ]
    }
}

/// The serving figures of a run (flattened into the report's JSON object).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServingReport {
    /// New-block storage mode.
    pub new_blocks_mode: Option<NewBlocksMode>,
    /// Adversarial light hosts.
    pub adversaries: usize,
    /// Which light hosts they are.
    pub adversary_hosts: Vec<usize>,
    /// Queries issued (member and outsider).
    pub queries: u64,
    /// Of which by outsiders.
    pub queries_outsider: u64,
    /// Of which for txids in no block.
    pub queries_unknown_txid: u64,
    /// Queries whose final result was a proof that checks against the true chain.
    pub queries_verified: u64,
    /// Final result "not found".
    pub queries_not_found: u64,
    /// Final result "unavailable" (an outsider's silence counts here).
    pub queries_unavailable: u64,
    /// Queries whose asker left before the result (not judged).
    pub queries_abandoned: u64,
    /// Confirmed results (of honest nodes) whose proof does not hold on the true chain.
    pub forged_answers_accepted: u64,
    /// Forged proofs outsider clients received from adversaries and refused.
    pub forged_answers_refused: u64,
    /// `PeerMisbehaved` events nodes reported.
    pub misbehaviour_reports: u64,
    /// Query attempts for a confirmed txid that had a live honest holder at query time.
    pub query_attempts_with_honest_holder: u64,
    /// Failed attempts (not verified) excused, by reason.
    pub query_failures_excused: std::collections::BTreeMap<&'static str, u64>,
    /// Failed attempts that should have been verified (each is a violation).
    pub query_failures_unexcused: u64,
    /// Hops per query: 0 = answered from the asked member's own shard; +1 if that member
    /// forwarded it to other members; +1 per member an outsider client asked.
    pub query_hops_p50: Option<u64>,
    /// 99th percentile of that.
    pub query_hops_p99: Option<u64>,
    /// `TxQuery` messages per query (the outsider's own and every member's forward, all
    /// waves).
    pub query_messages_p50: Option<u64>,
    /// 99th percentile of that.
    pub query_messages_p99: Option<u64>,
    /// Virtual time from issuing a query to its final result (verified queries only).
    pub query_latency_p50_ms: Option<u64>,
    /// 99th percentile of that.
    pub query_latency_p99_ms: Option<u64>,
    /// Jobs run on a random block at a random honest member (S17).
    pub jobs: u64,
    /// Jobs whose block was ready (and checked against the true chain).
    pub jobs_ready: u64,
    /// Jobs that failed (no holder answered with a valid block in time).
    pub jobs_failed: u64,
    /// Jobs whose asker left before the end.
    pub jobs_abandoned: u64,
    /// Virtual time from a job to its block being ready.
    pub job_latency_p50_ms: Option<u64>,
    /// 99th percentile of that.
    pub job_latency_p99_ms: Option<u64>,
    /// Blocks mined during the run (after the initial ones).
    pub new_blocks: u32,
    /// `BlockSafelyStored` events nodes reported.
    pub new_block_safely_stored_events: u64,
    /// `BlockUnderreplicated` events nodes reported.
    pub new_block_underreplicated_events: u64,
    /// (cluster, new block) pairs below P live holders at the repair deadline.
    pub new_blocks_under_replicated: u64,
    /// Answers adversaries forged.
    pub adversary_forged: u64,
    /// Blocks adversaries corrupted.
    pub adversary_corrupted: u64,
    /// Messages adversaries dropped.
    pub adversary_dropped: u64,
    /// Silent archives (`ServingConfig::silent_archives`), by host.
    pub silent_archive_hosts: Vec<usize>,
    /// Fetches (`GetBlock`) that reached a silent archive and went unanswered.
    pub silent_archive_fetches: u64,
    /// Members found to be faulty holders by their own challenger (`Event::HolderFaulty`
    /// with `by_us`) that were hollow adversaries (issue 16).
    pub hollow_found: u64,
    /// … that were honest: each is a false accusation (lost writes and corrupt reads must
    /// not add up to one).
    pub honest_found_faulty: u64,
}

/// The true chain as serving needs it: every transaction's place, every header.
#[derive(Debug)]
pub struct TxTruth {
    /// Txids per height.
    txids: Vec<Vec<Txid>>,
    /// Txid → (height, position). Looked up, never iterated.
    place: HashMap<Txid, (u32, u32)>,
    hashes: Vec<BlockHash>,
    headers: Vec<Header>,
}

impl TxTruth {
    /// Indexes the run's chain.
    pub fn new(blocks: &[SimBlock]) -> Self {
        let mut txids = Vec::with_capacity(blocks.len());
        let mut place = HashMap::new();
        let mut hashes = Vec::with_capacity(blocks.len());
        let mut headers = Vec::with_capacity(blocks.len());
        for (height, sim) in blocks.iter().enumerate() {
            let block = Block::decode(&sim.bytes).expect("generated blocks decode");
            let ids = block.txids();
            for (pos, txid) in ids.iter().enumerate() {
                place.entry(*txid).or_insert((height as u32, pos as u32));
            }
            txids.push(ids);
            hashes.push(BlockHash::from_byte_array(sim.hash));
            headers.push(block.header);
        }
        Self {
            txids,
            place,
            hashes,
            headers,
        }
    }

    /// A confirmed transaction among the first `published` blocks: (txid, height).
    pub fn pick(&self, rng: &mut SimRng, published: u32) -> Option<(Txid, u32)> {
        let heights = published.min(self.txids.len() as u32);
        if heights == 0 {
            return None;
        }
        let height = rng.below(u64::from(heights)) as u32;
        let ids = &self.txids[height as usize];
        if ids.is_empty() {
            return None;
        }
        let txid = ids[rng.below(ids.len() as u64) as usize];
        Some((txid, self.place[&txid].0))
    }

    /// The height of the block holding `txid`, if it is among the first `published`.
    pub fn height_of(&self, txid: &Txid, published: u32) -> Option<u32> {
        self.place
            .get(txid)
            .map(|(height, _)| *height)
            .filter(|height| *height < published)
    }

    /// The txids of the block at `height`.
    pub fn txids_at(&self, height: u32) -> &[Txid] {
        self.txids.get(height as usize).map_or(&[], Vec::as_slice)
    }

    /// The hash of the block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.hashes.get(height as usize).copied()
    }

    /// Whether `proof` shows `txid` where the true chain has it (among the first `published`
    /// blocks), checked against the true header.
    pub fn proof_holds(&self, txid: &Txid, proof: &MerkleProof, published: u32) -> bool {
        let Some(&(height, pos)) = self.place.get(txid) else {
            return false;
        };
        height < published
            && proof.height == height
            && proof.pos == pos
            && self.hashes.get(height as usize) == Some(&proof.block_hash)
            && proof
                .verify_against_header(*txid, &self.headers[height as usize])
                .is_ok()
    }
}

/// What an adversary did to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Left alone.
    Untouched,
    /// An answer replaced by a forged proof.
    Forged,
    /// A block's bytes corrupted.
    Corrupted,
    /// Dropped.
    Dropped,
}

/// One adversarial host's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adversary(pub AdversaryKind);

impl Adversary {
    /// Rewrites an outgoing message of this adversary. `None`: the message is dropped.
    pub fn rewrite(
        &self,
        message: Message,
        truth: &TxTruth,
        published: u32,
        rng: &mut SimRng,
    ) -> (Option<Message>, Rewrite) {
        match (self.0, message) {
            (AdversaryKind::Forge, Message::TxAnswer { request_id, .. }) => {
                // A fabricated proof that the transaction is in some published block.
                let height = rng.below(u64::from(published.max(1))) as u32;
                let block_hash = truth
                    .hash_at(height)
                    .unwrap_or(BlockHash::from_byte_array([0; 32]));
                let depth = 1 + rng.below(3) as usize;
                let branch = (0..depth)
                    .map(|_| {
                        let mut bytes = [0u8; 32];
                        for chunk in bytes.chunks_mut(8) {
                            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
                        }
                        Hash256(bytes)
                    })
                    .collect();
                let forged = Message::TxAnswer {
                    request_id,
                    answer: TxAnswerBody::Found {
                        block_hash,
                        height,
                        pos: rng.below(1 << depth) as u32,
                        branch,
                        header: None,
                        tx: Vec::new(),
                    },
                };
                (Some(forged), Rewrite::Forged)
            }
            (AdversaryKind::Corrupt, Message::BlockData { request_id, block }) => (
                Some(Message::BlockData {
                    request_id,
                    block: crate::chain::tamper(&block, rng.next_u64()),
                }),
                Rewrite::Corrupted,
            ),
            (AdversaryKind::Corrupt, Message::NewBlock { block }) => (
                Some(Message::NewBlock {
                    block: crate::chain::tamper(&block, rng.next_u64()),
                }),
                Rewrite::Corrupted,
            ),
            (
                AdversaryKind::Silent,
                Message::TxAnswer { .. }
                | Message::BlockData { .. }
                | Message::BlockNotFound { .. }
                | Message::NewBlock { .. },
            ) => (None, Rewrite::Dropped),
            (_, message) => (Some(message), Rewrite::Untouched),
        }
    }
}

/// The behaviour of the `i`-th adversary under `kind`.
pub fn adversary(kind: AdversaryKind, i: usize) -> Adversary {
    Adversary(match kind {
        AdversaryKind::Mixed => [
            AdversaryKind::Forge,
            AdversaryKind::Corrupt,
            AdversaryKind::Silent,
        ][i % 3],
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> TxTruth {
        TxTruth::new(&crate::chain::generate_regtest(6, 3, 5))
    }

    #[test]
    fn true_proofs_hold_and_forged_ones_do_not() {
        let truth = truth();
        let blocks = crate::chain::generate_regtest(6, 3, 5);
        let block = Block::decode(&blocks[4].bytes).unwrap();
        let txid = block.txids()[2];
        let proof = block.merkle_proof(4, 2).unwrap();
        assert!(truth.proof_holds(&txid, &proof, 6));
        assert!(!truth.proof_holds(&txid, &proof, 4), "not yet published");
        let mut rng = SimRng::new(1);
        for _ in 0..50 {
            let answer = Message::TxAnswer {
                request_id: 7,
                answer: TxAnswerBody::NotFound,
            };
            let (out, what) = Adversary(AdversaryKind::Forge).rewrite(answer, &truth, 6, &mut rng);
            assert_eq!(what, Rewrite::Forged);
            let Some(Message::TxAnswer {
                request_id: 7,
                answer:
                    TxAnswerBody::Found {
                        block_hash,
                        height,
                        pos,
                        branch,
                        ..
                    },
            }) = out
            else {
                panic!("a forged Found answer");
            };
            let forged = MerkleProof {
                block_hash,
                height,
                pos,
                branch,
            };
            assert!(!truth.proof_holds(&txid, &forged, 6));
        }
    }

    #[test]
    fn adversaries_touch_only_their_messages() {
        let truth = truth();
        let mut rng = SimRng::new(2);
        let block = vec![1u8; 200];
        let (out, what) = Adversary(AdversaryKind::Corrupt).rewrite(
            Message::BlockData {
                request_id: 1,
                block: block.clone(),
            },
            &truth,
            6,
            &mut rng,
        );
        assert_eq!(what, Rewrite::Corrupted);
        assert!(matches!(out, Some(Message::BlockData { block: b, .. }) if b != block));
        let (out, what) = Adversary(AdversaryKind::Silent).rewrite(
            Message::BlockNotFound { request_id: 1 },
            &truth,
            6,
            &mut rng,
        );
        assert_eq!((out, what), (None, Rewrite::Dropped));
        let ping = Message::BlockStored {
            block_hash: BlockHash::from_byte_array([3; 32]),
            height: 2,
        };
        let (out, what) =
            Adversary(AdversaryKind::Forge).rewrite(ping.clone(), &truth, 6, &mut rng);
        assert_eq!((out, what), (Some(ping), Rewrite::Untouched));
        assert_eq!(adversary(AdversaryKind::Mixed, 4).0, AdversaryKind::Corrupt);
    }
}
