//! Proofs of holding (issue 16): a member's word that it stored a block (`BlockStored`) or
//! holds its whole shard (`ShardHeld`) is a claim, and claims are checked with a challenge
//! that only the block's bytes answer — before a spare copy is deleted, and now and then to
//! find a member that claims blocks it does not keep.
//!
//! # The challenge
//!
//! A member that holds block B asks a mate that placement names as a holder of B:
//! [`Message::HoldChallenge`] with B's hash, a fresh random nonce and a byte range (a random
//! offset, [`RANGE_BYTES`] long). The mate reads B from its store — the storage read that
//! serves `GetBlock` (`StorageCommand::Get`), so the page and the member relay answer it
//! through their host like any block read — checks it against its header chain, and answers
//! [`Message::HoldProof`] with [`proof_digest`]: `sha256d("shoal/hold" ‖ nonce ‖ its own id ‖
//! offset ‖ length ‖ the range)`; or with no digest if it does not hold B (a copy that reads
//! back corrupt counts as not held, and the mate turns it suspect and fetches it again, as for
//! any read). The challenger read its own copy before it asked (checked against the header
//! chain, so a corrupt copy of its own judges nothing) and computed the digest it expects; the
//! answer passes only if it is that digest. The nonce is fresh, so no answer can be kept from
//! an earlier challenge; the answerer's id is in the digest, so a member cannot pass by handing
//! the challenge to another holder and returning its answer.
//!
//! Each challenge costs one storage read on each side and about 100 bytes on the wire. A
//! member has at most [`OUT_MAX`] challenges out at once, and answers at most [`ANSWERS_MAX`]
//! at once ([`ANSWERS_PER_PEER_MAX`] for one mate; beyond that a challenge is dropped, which
//! costs the challenger a timeout, not a verdict); it answers only members of its view.
//!
//! # Spare copies go only after proofs
//!
//! A block a member keeps as a spare (its view no longer assigns it there, `spares`) is
//! deleted only once **every holder of it under the view has passed a challenge on it under
//! that view** — P proofs (all holders, if placement gives fewer than P) — and this member's
//! own fetching is idle. A holder is challenged once it has claimed the block (`ShardHeld`
//! under the view covers every height up to our tip when it came; `BlockStored` covers its
//! block); once the view has held `Config::challenge_unclaimed_after_ms`, holders that have not
//! claimed are challenged too (a claim lost on the way). A challenge that does not pass — no
//! answer in time, "not held", or a wrong digest — is tried again `repair_retry_ms` later.
//! Confirmations without a passed challenge never delete anything: there is no timeout that
//! deletes unproved spares (the fallback the issue asked to settle is gone).
//!
//! # Audits
//!
//! Every `Config::hold_audit_interval_ms` (jittered ±50 %) a member picks one random block it
//! holds (and trusts), and one random mate that holds it under the view and has claimed it,
//! and challenges that mate. One read and one small message pair per member per interval:
//! with the default (one minute) and heartbeats every 5 s to each mate, audits were about 2 %
//! of all messages in the simulator's sweep world, and challenges of every kind 4.5 %
//! (BENCHMARKS.md).
//!
//! # Faulty holders
//!
//! A verdict is a *failure* when the answer is a wrong digest, or "not held" for a block the
//! mate claimed; a timeout is no verdict (the message may be lost or the mate cut off, which
//! heartbeats judge). What follows:
//!
//! - **Its claim stops counting.** Every proof the mate passed under the view is forgotten, so
//!   no spare goes on its account until it passes again; spares of its blocks are kept.
//! - **Follow-up.** The challenger challenges it again at once on another block it claimed
//!   (one it has not failed on), so that a member that stores nothing is found within seconds
//!   of its first failure, not over many audit rounds.
//! - **Faulty.** Failures on [`STRIKES_MAX`] different blocks in a row (a pass resets the
//!   count; asking again about a block it already failed on — it may have lost it and be
//!   fetching it again — adds nothing) make it a faulty holder, handled like an offline member
//!   (`node::holders`): the challenger drops it from its view, which moves its blocks to other
//!   members by placement — repair fetches them from the surviving copies, so every block is
//!   back on P proved copies — and a replacement is invited (S12); it tells its mates ([`Message::HolderFaulty`]), who drop it too, and every
//!   member that knows keeps it out for `Config::faulty_ban_ms`: its views are refused, its
//!   join requests denied, it is not invited. An honest member with a lost write or a corrupt
//!   read fails one challenge and passes the follow-ups.
//!
//! # Limits
//!
//! - A member that fetches a block from a mate each time it is challenged passes (this is a
//!   proof of retrievability, not of storage); it pays a block download per challenge.
//! - A member that claims nothing is not failed for lacking blocks: no spare goes for it
//!   (spares of its blocks stay), and its heartbeats' shard report shows what it misses.
//! - A member that never answers challenges is never failed either, only never proved: its
//!   blocks' spares stay.
//! - A member challenges only with a verified copy of its own: one that holds none (a
//!   newcomer whose only sources are liars) can prove nothing, and a cluster whose other
//!   members all lie keeps their word until an honest member with copies joins.
//! - `HolderFaulty` is a member's word, as a view is: a member may drop any mate (it may
//!   declare any mate offline already); the ban keeps the dropped node out for
//!   `faulty_ban_ms`, bounded to [`MAX_VIEW_MEMBERS`] nodes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;

use super::Repair;
use crate::base::NodeId;
use crate::chain::hash::Sha256dEngine;
use crate::chain_seam::{check_block, BlockHash, Hash256};
use crate::io::{Output, StorageCommand, TimerId};
use crate::shared::{Role, Shared};
use crate::wire::{Message, ViewStamp, MAX_CHALLENGE_RANGE_BYTES, MAX_VIEW_MEMBERS};

/// Bytes of the block a challenge covers.
pub const RANGE_BYTES: u32 = 256;
/// Most challenges this member has out (or reads of its own copy for them) at once.
pub const OUT_MAX: usize = 8;
/// Most challenges this member answers at once (each one storage read).
pub const ANSWERS_MAX: usize = 4 * OUT_MAX;
/// Most challenges of one mate this member answers at once: as many as an honest mate has out.
pub const ANSWERS_PER_PEER_MAX: usize = OUT_MAX;
/// Blocks a mate may fail its proofs on in a row (each counted once) before it is a faulty
/// holder.
pub const STRIKES_MAX: u8 = 3;
/// Most `BlockStored` claims remembered per view.
const STORED_CLAIMS_MAX: usize = 1024;
/// Random heights tried when picking a block to audit.
const AUDIT_TRIES: usize = 16;

/// The answer to a challenge: `sha256d("shoal/hold" ‖ nonce ‖ holder ‖ offset ‖ length ‖
/// range)`, integers little-endian, over the bytes of `block` [`challenged_range`] names.
pub fn proof_digest(
    nonce: u64,
    holder: &NodeId,
    offset: u32,
    length: u32,
    block: &[u8],
) -> Hash256 {
    let mut engine = Sha256dEngine::new();
    engine.update(b"shoal/hold");
    engine.update(&nonce.to_le_bytes());
    engine.update(&holder.0);
    engine.update(&offset.to_le_bytes());
    engine.update(&length.to_le_bytes());
    engine.update(&block[challenged_range(offset, length, block.len())]);
    Hash256(engine.finalize())
}

/// The bytes a challenge covers in a block of `len` bytes: from `offset` modulo `len`,
/// `length` bytes (at most [`MAX_CHALLENGE_RANGE_BYTES`]) or to the block's end.
pub fn challenged_range(offset: u32, length: u32, len: usize) -> Range<usize> {
    if len == 0 {
        return 0..0;
    }
    let start = offset as usize % len;
    let end = start
        .saturating_add(length.min(MAX_CHALLENGE_RANGE_BYTES) as usize)
        .min(len);
    start..end
}

/// A mate to challenge: who, why, and whether it claimed the block.
type Target = (NodeId, Purpose, bool);

/// Why a challenge was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// To delete a spare copy.
    Spare,
    /// An audit, or a follow-up after a failure.
    Audit,
}

/// A challenge out, waiting for its answer.
#[derive(Debug, Clone)]
struct Challenge {
    to: NodeId,
    height: u32,
    purpose: Purpose,
    /// The view it was sent under: a proof counts for a spare only under it.
    view: ViewStamp,
    expected: Hash256,
    /// Whether `to` had claimed the block when it was challenged.
    claimed: bool,
    deadline_ms: u64,
}

/// A read of this member's own copy, to challenge `targets` on it.
#[derive(Debug, Clone)]
struct OwnRead {
    height: u32,
    block_hash: BlockHash,
    view: ViewStamp,
    targets: Vec<Target>,
}

/// A challenge this member answers once its read is back.
#[derive(Debug, Clone, Copy)]
struct Answer {
    peer: NodeId,
    request_id: u64,
    block_hash: BlockHash,
    height: u32,
    nonce: u64,
    offset: u32,
    length: u32,
}

/// A spare height under the view, its holders and those that proved they hold it (member
/// numbers, one bit each).
#[derive(Debug, Clone, Copy)]
struct Spare {
    height: u32,
    holders: u64,
    proved: u64,
}

/// What a member keeps for proofs of holding. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Holding {
    /// Challenges out, by request id (ordered, so that timeouts come in a fixed order).
    out: BTreeMap<u64, Challenge>,
    /// Reads of our own copies for challenges, by storage request id.
    own_reads: HashMap<u64, OwnRead>,
    /// Challenges being answered, by storage request id.
    answers: HashMap<u64, Answer>,
    /// The view `spares` and `claims` are about.
    view: Option<ViewStamp>,
    /// (view, blocks held, tip) the spare list was computed for.
    spares_for: Option<(ViewStamp, usize, u32)>,
    /// Spare heights under `view`, ascending.
    spares: Vec<Spare>,
    /// (height, member number) → challenged again no earlier than this.
    retry_at: HashMap<(u32, usize), u64>,
    /// The earliest of `retry_at`, if any is still to come.
    next_retry_ms: Option<u64>,
    /// `BlockStored` claims under `view`: (member, height).
    claims: HashSet<(NodeId, u32)>,
    claims_order: VecDeque<(NodeId, u32)>,
    /// Per mate, the blocks it failed on since it last passed: distinct blocks, so that one
    /// block it lost (and is fetching again) counts once however often it is asked.
    strikes: Vec<(NodeId, Vec<u32>)>,
    /// When the next audit is due.
    next_audit_ms: Option<u64>,
    /// Mates found faulty, for the node to act on.
    pub(crate) found: Vec<NodeId>,
}

impl Holding {
    fn in_flight(&self) -> usize {
        self.out.len()
            + self
                .own_reads
                .values()
                .map(|r| r.targets.len())
                .sum::<usize>()
    }

    fn challenging(&self, to: &NodeId, height: u32) -> bool {
        self.out.values().any(|c| c.to == *to && c.height == height)
            || self
                .own_reads
                .values()
                .any(|r| r.height == height && r.targets.iter().any(|t| t.0 == *to))
    }

    /// Whether a storage read under `request_id` is ours.
    pub(crate) fn awaits_read(&self, request_id: u64) -> bool {
        self.own_reads.contains_key(&request_id) || self.answers.contains_key(&request_id)
    }

    /// The heights (ascending) this member keeps as spares under its current view, with how
    /// many of their holders proved they hold them: for tests and diagnostics.
    pub(crate) fn spare_proofs(&self) -> Vec<(u32, u32, u32)> {
        self.spares
            .iter()
            .map(|s| {
                (
                    s.height,
                    s.holders.count_ones(),
                    (s.proved & s.holders).count_ones(),
                )
            })
            .collect()
    }
}

impl Repair {
    /// After every repair step: brings the spare list up to date with the view and the shard,
    /// challenges the holders of spares that may be challenged, and deletes the spares whose
    /// holders all proved they hold them — all once this member's own fetching is idle (no
    /// spare goes before, and the list, one pass over the chain, is not rebuilt per block
    /// fetched).
    pub(super) fn prove_spares(&mut self, cx: &mut Shared) {
        let Some(stamp) = cx.stamp() else {
            self.holding_view(None);
            self.holding.next_audit_ms = None;
            return;
        };
        self.holding_view(Some(stamp));
        if self.holding.next_audit_ms.is_none() {
            self.schedule_hold_audit(cx);
        }
        let idle = self.queue.is_empty() && self.in_flight.is_empty() && self.parked.is_empty();
        if !idle {
            return;
        }
        self.refresh_spares(cx, stamp);
        self.challenge_spares(cx, stamp);
        self.evict_proved(cx);
    }

    /// A new view (or none): spare proofs and claims start afresh.
    fn holding_view(&mut self, stamp: Option<ViewStamp>) {
        let h = &mut self.holding;
        if h.view == stamp {
            return;
        }
        h.view = stamp;
        h.spares_for = None;
        h.spares.clear();
        h.retry_at.clear();
        h.next_retry_ms = None;
        h.claims.clear();
        h.claims_order.clear();
    }

    /// Recomputes the spare list when the view, the shard or the tip changed (proofs already
    /// passed under the view are kept).
    fn refresh_spares(&mut self, cx: &mut Shared, stamp: ViewStamp) {
        let Some(headers) = cx.headers.clone() else {
            return;
        };
        let Some(tip) = headers.tip_height() else {
            return;
        };
        let key = (stamp, self.held.len(), tip);
        if self.holding.spares_for == Some(key) {
            return;
        }
        self.holding.spares_for = Some(key);
        let Role::Member(m) = &cx.role else { return };
        let old: HashMap<u32, u64> = self
            .holding
            .spares
            .iter()
            .map(|s| (s.height, s.proved))
            .collect();
        let mut holders = std::mem::take(&mut cx.scratch);
        let mut spares = Vec::new();
        for height in 0..=tip {
            if !self.held.contains(height) {
                continue;
            }
            let Some(block_hash) = headers.block_hash_at(height) else {
                continue;
            };
            cx.placer
                .holders(&block_hash, height, &m.slots, &mut holders);
            if holders.contains(&m.number) {
                continue;
            }
            let mask = holders.iter().fold(0u64, |mask, n| mask | 1 << n);
            spares.push(Spare {
                height,
                holders: mask,
                proved: old.get(&height).copied().unwrap_or(0),
            });
        }
        cx.scratch = holders;
        self.holding.spares = spares;
    }

    /// Whether member `number` (`id`) of the current view claimed the block at `height`:
    /// `ShardHeld` under the view, come when our tip had reached `height`, or `BlockStored`
    /// under it. A claim recorded under another view counts for nothing (its member numbers
    /// are another view's, and a member may have let a block go since).
    fn claimed(&self, cx: &Shared, number: usize, id: &NodeId, height: u32) -> bool {
        let stamp = cx.stamp();
        self.confirmations.covers(stamp, number, height)
            || (stamp.is_some()
                && self.holding.view == stamp
                && self.holding.claims.contains(&(*id, height)))
    }

    /// Challenges the holders of spares that have not proved they hold them yet: those that
    /// claimed the block, or, once the view has held `challenge_unclaimed_after_ms`, all of them.
    fn challenge_spares(&mut self, cx: &mut Shared, stamp: ViewStamp) {
        let now = cx.now_ms;
        if self.holding.next_retry_ms.is_some_and(|at| at <= now) {
            self.holding.next_retry_ms = None;
            self.holding.retry_at.retain(|_, at| *at > now);
            self.holding.next_retry_ms = self.holding.retry_at.values().min().copied();
        }
        let Role::Member(m) = &cx.role else { return };
        let unclaimed_too = cx
            .config
            .challenge_unclaimed_after_ms
            .is_some_and(|after| m.view_since_ms.saturating_add(after) <= now);
        let slots: Vec<NodeId> = m.slots.iter().map(|s| s.id).collect();
        let mut batches: Vec<(u32, Vec<Target>)> = Vec::new();
        let mut room = OUT_MAX.saturating_sub(self.holding.in_flight());
        for spare in &self.holding.spares {
            if room == 0 {
                break;
            }
            // A suspect copy is read again all the same: a read that passes the check clears
            // the suspicion (the fault was transient), one that fails judges nothing.
            let mut targets = Vec::new();
            for (number, id) in slots.iter().enumerate() {
                let bit = 1u64 << number;
                if spare.holders & bit == 0 || spare.proved & bit != 0 || room == 0 {
                    continue;
                }
                if self.holding.retry_at.contains_key(&(spare.height, number))
                    || self.holding.challenging(id, spare.height)
                {
                    continue;
                }
                let claimed = self.claimed(cx, number, id, spare.height);
                if claimed || unclaimed_too {
                    targets.push((*id, Purpose::Spare, claimed));
                    room -= 1;
                }
            }
            if !targets.is_empty() {
                batches.push((spare.height, targets));
            }
        }
        for (height, targets) in batches {
            self.read_own_copy(cx, stamp, height, targets);
        }
    }

    /// Reads our own copy of the block at `height` to challenge `targets` on it.
    fn read_own_copy(
        &mut self,
        cx: &mut Shared,
        view: ViewStamp,
        height: u32,
        targets: Vec<Target>,
    ) {
        let Some(block_hash) = cx.headers.as_ref().and_then(|h| h.block_hash_at(height)) else {
            return;
        };
        let request_id = cx.fresh_id();
        self.holding.own_reads.insert(
            request_id,
            OwnRead {
                height,
                block_hash,
                view,
                targets,
            },
        );
        cx.push(Output::Storage(StorageCommand::Get {
            request_id,
            block_hash,
        }));
    }

    /// Deletes the spares whose holders all proved they hold them (this member's own fetching
    /// is idle: `prove_spares`).
    fn evict_proved(&mut self, cx: &mut Shared) {
        let done: Vec<u32> = self
            .holding
            .spares
            .iter()
            .filter(|s| s.holders & !s.proved == 0)
            .map(|s| s.height)
            .collect();
        if done.is_empty() {
            return;
        }
        self.holding.spares.retain(|s| s.holders & !s.proved != 0);
        for height in done {
            debug_assert!(!cx.must_hold(height), "only spares are evicted");
            let Some(block_hash) = cx.headers.as_ref().and_then(|h| h.block_hash_at(height)) else {
                continue;
            };
            self.forget(height);
            cx.stats.spares_evicted += 1;
            let request_id = cx.fresh_id();
            cx.push(Output::Storage(StorageCommand::Delete {
                request_id,
                block_hash,
            }));
        }
        // The shard changed: the list is recomputed at the next step.
        self.holding.spares_for = None;
    }

    /// `from` says it stored the block `block_hash` at `height` (`BlockStored`): a claim that
    /// makes it challengeable on that block under the current view.
    pub(crate) fn on_stored_claim(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        block_hash: &BlockHash,
        height: u32,
    ) {
        let ours = cx.headers.as_ref().and_then(|h| h.block_hash_at(height));
        if ours != Some(*block_hash) || cx.membership().and_then(|m| m.number_of(&from)).is_none() {
            return;
        }
        self.holding_view(cx.stamp());
        let h = &mut self.holding;
        if h.claims.insert((from, height)) {
            if h.claims_order.len() >= STORED_CLAIMS_MAX {
                if let Some(old) = h.claims_order.pop_front() {
                    h.claims.remove(&old);
                }
            }
            h.claims_order.push_back((from, height));
        }
    }

    /// A mate asks us to prove we hold a block: read it (the storage read that serves
    /// `GetBlock`), or say at once that we do not hold it.
    pub(crate) fn on_hold_challenge(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        request_id: u64,
        block_hash: BlockHash,
        (nonce, offset, length): (u64, u32, u32),
    ) {
        let mate = cx.membership().and_then(|m| m.number_of(&from)).is_some();
        if !mate || cx.is_banned(&from) {
            cx.stats.messages_ignored += 1;
            return;
        }
        let height = cx.headers.as_ref().and_then(|h| h.height_of(&block_hash));
        let Some(height) = height.filter(|h| self.held.contains(*h)) else {
            cx.stats.hold_challenges_answered += 1;
            return cx.send(
                from,
                Message::HoldProof {
                    request_id,
                    proof: None,
                },
            );
        };
        let of_peer = self
            .holding
            .answers
            .values()
            .filter(|a| a.peer == from)
            .count();
        if self.holding.answers.len() >= ANSWERS_MAX || of_peer >= ANSWERS_PER_PEER_MAX {
            cx.stats.messages_ignored += 1;
            return;
        }
        let storage_id = cx.fresh_id();
        self.holding.answers.insert(
            storage_id,
            Answer {
                peer: from,
                request_id,
                block_hash,
                height,
                nonce,
                offset,
                length,
            },
        );
        cx.push(Output::Storage(StorageCommand::Get {
            request_id: storage_id,
            block_hash,
        }));
    }

    /// A storage read for a challenge came back: ours to answer one, or our own copy to
    /// challenge mates on.
    pub(crate) fn on_holding_read(
        &mut self,
        cx: &mut Shared,
        request_id: u64,
        bytes: Option<Vec<u8>>,
    ) {
        if let Some(answer) = self.holding.answers.remove(&request_id) {
            return self.answer_challenge(cx, answer, bytes);
        }
        let Some(read) = self.holding.own_reads.remove(&request_id) else {
            return;
        };
        match bytes {
            Some(bytes) if check_block(&read.block_hash, &bytes).is_ok() => {
                if self.held.contains(read.height) {
                    self.confirm(read.height);
                }
                return self.send_challenges(cx, read, &bytes);
            }
            // Our copy is bad: it judges nothing (and is fetched again if we must hold it).
            Some(_) => self.suspect_block(cx, read.height),
            None => {
                if self.held.contains(read.height) {
                    self.forget(read.height);
                    self.rescan_shard(cx);
                }
            }
        }
        // Spares whose challenges could not go out are tried again later.
        let numbers: Vec<usize> = match cx.membership() {
            Some(m) if cx.stamp() == Some(read.view) => read
                .targets
                .iter()
                .filter(|t| t.1 == Purpose::Spare)
                .filter_map(|t| m.number_of(&t.0))
                .collect(),
            _ => Vec::new(),
        };
        for number in numbers {
            self.retry_later(cx, read.height, number);
        }
    }

    /// Challenges member `number` on the spare at `height` again no earlier than
    /// `repair_retry_ms` from now.
    fn retry_later(&mut self, cx: &mut Shared, height: u32, number: usize) {
        let at = cx.now_ms + cx.config.repair_retry_ms;
        let h = &mut self.holding;
        h.retry_at.insert((height, number), at);
        h.next_retry_ms = Some(h.next_retry_ms.map_or(at, |n| n.min(at)));
        cx.set_timer_no_later(TimerId::Repair, at);
    }

    /// Answers a challenge from the bytes our store gave.
    fn answer_challenge(&mut self, cx: &mut Shared, answer: Answer, bytes: Option<Vec<u8>>) {
        cx.stats.hold_challenges_answered += 1;
        let proof = match bytes {
            Some(bytes) if check_block(&answer.block_hash, &bytes).is_ok() => {
                if self.held.contains(answer.height) {
                    // A transient fault, if it was suspect: the copy is good again.
                    self.confirm(answer.height);
                }
                Some(proof_digest(
                    answer.nonce,
                    &cx.id,
                    answer.offset,
                    answer.length,
                    &bytes,
                ))
            }
            Some(_) => {
                self.suspect_block(cx, answer.height);
                None
            }
            None => {
                if self.held.contains(answer.height) {
                    self.forget(answer.height);
                    self.rescan_shard(cx);
                }
                None
            }
        };
        cx.send(
            answer.peer,
            Message::HoldProof {
                request_id: answer.request_id,
                proof,
            },
        );
    }

    /// Challenges each target on the block we just read, expecting the digest only these
    /// bytes give.
    fn send_challenges(&mut self, cx: &mut Shared, read: OwnRead, bytes: &[u8]) {
        let len = bytes.len().max(1) as u64;
        let deadline_ms = cx.now_ms + cx.config.repair_request_timeout_ms;
        for (to, purpose, claimed) in read.targets {
            let nonce = cx.rng.next_u64();
            let offset = cx.rng.below(len) as u32;
            let length = RANGE_BYTES;
            let request_id = cx.fresh_id();
            self.holding.out.insert(
                request_id,
                Challenge {
                    to,
                    height: read.height,
                    purpose,
                    view: read.view,
                    expected: proof_digest(nonce, &to, offset, length, bytes),
                    claimed,
                    deadline_ms,
                },
            );
            cx.stats.hold_challenges_sent += 1;
            cx.send(
                to,
                Message::HoldChallenge {
                    request_id,
                    block_hash: read.block_hash,
                    nonce,
                    offset,
                    length,
                },
            );
        }
        self.rearm_repair_timer(cx);
    }

    /// A mate's answer to one of our challenges.
    pub(crate) fn on_hold_proof(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        request_id: u64,
        proof: Option<Hash256>,
    ) {
        let ours = self
            .holding
            .out
            .get(&request_id)
            .is_some_and(|c| c.to == from);
        if !ours {
            cx.stats.messages_ignored += 1;
            return;
        }
        let challenge = self.holding.out.remove(&request_id).expect("just found");
        // "Not held" fails only a claim of the view it was asked under, which is still ours
        // (under another, the mate may have let the block go): claimed when asked, or since (a
        // `ShardHeld` on the way).
        let same_view = cx.stamp() == Some(challenge.view);
        let claimed = same_view
            && (challenge.claimed
                || cx
                    .membership()
                    .and_then(|m| m.number_of(&from))
                    .is_some_and(|number| self.claimed(cx, number, &from, challenge.height)));
        let verdict = match proof {
            Some(digest) => Some(digest == challenge.expected),
            None if claimed => Some(false),
            None => None,
        };
        self.verdict(cx, &challenge, verdict);
        self.settle_spares(cx);
    }

    /// Challenges past their deadline end without a verdict.
    pub(super) fn expire_challenges(&mut self, cx: &mut Shared) {
        let now = cx.now_ms;
        let expired: Vec<u64> = self
            .holding
            .out
            .iter()
            .filter(|(_, c)| c.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(challenge) = self.holding.out.remove(&id) {
                cx.stats.hold_challenges_unanswered += 1;
                self.verdict(cx, &challenge, None);
            }
        }
    }

    /// What a challenge's end means: `Some(true)` passed, `Some(false)` failed, `None` no
    /// verdict.
    fn verdict(&mut self, cx: &mut Shared, challenge: &Challenge, passed: Option<bool>) {
        let Some(m) = cx.membership() else { return };
        let Some(number) = m.number_of(&challenge.to) else {
            return;
        };
        let same_view = cx.stamp() == Some(challenge.view);
        let h = &mut self.holding;
        let strikes = match h.strikes.iter().position(|(id, _)| *id == challenge.to) {
            Some(i) => i,
            None => {
                if h.strikes.len() >= MAX_VIEW_MEMBERS {
                    h.strikes.remove(0);
                }
                h.strikes.push((challenge.to, Vec::new()));
                h.strikes.len() - 1
            }
        };
        if passed == Some(true) {
            cx.stats.hold_proofs_passed += 1;
            h.strikes[strikes].1.clear();
            if same_view {
                if let Some(spare) = h.spares.iter_mut().find(|s| s.height == challenge.height) {
                    spare.proved |= 1 << number;
                }
            }
            return;
        }
        if challenge.purpose == Purpose::Spare && same_view {
            // Try again later: it may still be fetching, or the answer was lost.
            self.retry_later(cx, challenge.height, number);
        }
        if passed.is_none() {
            return;
        }
        cx.stats.hold_proofs_failed += 1;
        let h = &mut self.holding;
        // Its claims stop counting: every proof it passed under the view is forgotten.
        for spare in h.spares.iter_mut() {
            spare.proved &= !(1 << number);
        }
        let failed = &mut h.strikes[strikes].1;
        if !failed.contains(&challenge.height) {
            failed.push(challenge.height);
        }
        if failed.len() >= usize::from(STRIKES_MAX) {
            h.strikes.remove(strikes);
            if !h.found.contains(&challenge.to) {
                h.found.push(challenge.to);
            }
            return;
        }
        self.audit_member(cx, challenge.to);
    }

    /// Challenges `member` on a random block we hold that it must hold and claimed, other than
    /// those it failed on already: the follow-up after a failure (none if there is no other).
    fn audit_member(&mut self, cx: &mut Shared, member: NodeId) {
        let Some(stamp) = cx.stamp() else { return };
        let Some(tip) = cx.headers.as_ref().and_then(|h| h.tip_height()) else {
            return;
        };
        if self.holding.in_flight() >= OUT_MAX {
            return;
        }
        let Some(number) = cx.membership().and_then(|m| m.number_of(&member)) else {
            return;
        };
        let failed: Vec<u32> = self
            .holding
            .strikes
            .iter()
            .find(|(id, _)| *id == member)
            .map(|(_, failed)| failed.clone())
            .unwrap_or_default();
        for _ in 0..AUDIT_TRIES {
            let height = cx.rng.below(u64::from(tip) + 1) as u32;
            if failed.contains(&height)
                || !self.held_good(height)
                || !self.claimed(cx, number, &member, height)
                || self.holding.challenging(&member, height)
            {
                continue;
            }
            if !self.holders_of(cx, height).contains(&number) {
                continue;
            }
            return self.read_own_copy(cx, stamp, height, vec![(member, Purpose::Audit, true)]);
        }
    }

    /// The member numbers placement gives the block at `height` under the current view.
    fn holders_of(&mut self, cx: &mut Shared, height: u32) -> Vec<usize> {
        let Role::Member(m) = &cx.role else {
            return Vec::new();
        };
        let Some(hash) = cx.headers.as_ref().and_then(|h| h.block_hash_at(height)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        cx.placer.holders(&hash, height, &m.slots, &mut out);
        out
    }

    /// Schedules the next audit, if audits are on and this node is a member.
    pub(super) fn schedule_hold_audit(&mut self, cx: &mut Shared) {
        self.holding.next_audit_ms = match (&cx.role, cx.config.hold_audit_interval_ms) {
            (Role::Member(_), Some(interval)) => Some(cx.now_ms + cx.rng.jitter(interval)),
            _ => None,
        };
        if let Some(at) = self.holding.next_audit_ms {
            cx.set_timer_no_later(TimerId::Repair, at);
        }
    }

    /// An audit: one random block we hold and trust, one random mate that must hold it and
    /// claimed it.
    fn hold_audit(&mut self, cx: &mut Shared) {
        self.schedule_hold_audit(cx);
        let Some(stamp) = cx.stamp() else { return };
        let Some(tip) = cx.headers.as_ref().and_then(|h| h.tip_height()) else {
            return;
        };
        if self.holding.in_flight() >= OUT_MAX {
            return;
        }
        let Some(me) = cx.membership().map(|m| m.number) else {
            return;
        };
        for _ in 0..AUDIT_TRIES {
            let height = cx.rng.below(u64::from(tip) + 1) as u32;
            if !self.held_good(height) {
                continue;
            }
            let slots: Vec<NodeId> = match &cx.role {
                Role::Member(m) => m.slots.iter().map(|s| s.id).collect(),
                Role::Ordinary => return,
            };
            let candidates: Vec<usize> = self
                .holders_of(cx, height)
                .into_iter()
                .filter(|n| *n != me && self.claimed(cx, *n, &slots[*n], height))
                .filter(|n| !self.holding.challenging(&slots[*n], height))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let pick = candidates[cx.rng.index(candidates.len())];
            cx.stats.hold_audits += 1;
            return self.read_own_copy(
                cx,
                stamp,
                height,
                vec![(slots[pick], Purpose::Audit, true)],
            );
        }
    }

    /// The repair timer: audits and challenge deadlines that are due.
    pub(super) fn on_holding_timer(&mut self, cx: &mut Shared) {
        self.expire_challenges(cx);
        if self.holding.next_audit_ms.is_some_and(|at| at <= cx.now_ms) {
            self.hold_audit(cx);
        }
    }

    /// When the repair timer must fire for proofs of holding: the next challenge deadline,
    /// audit, retry, or the time unclaimed holders of spares are challenged too.
    pub(super) fn holding_due(&self, cx: &Shared) -> Option<u64> {
        let h = &self.holding;
        let unclaimed = match (&cx.role, cx.config.challenge_unclaimed_after_ms) {
            (Role::Member(m), Some(after)) if !h.spares.is_empty() => {
                Some(m.view_since_ms.saturating_add(after)).filter(|at| *at > cx.now_ms)
            }
            _ => None,
        };
        // A retry already due waits for the next pass over the spares, which comes when this
        // member's fetching is idle (every repair step ends with one): a timer for it now
        // would fire again and again while the fetching goes on.
        let retry = h.next_retry_ms.filter(|at| *at > cx.now_ms);
        [
            h.out.values().map(|c| c.deadline_ms).min(),
            h.next_audit_ms,
            retry,
            unclaimed,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests;
