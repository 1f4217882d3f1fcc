//! Repair and filling (S11–S13, S18): every member fetches the blocks the placement rule says
//! it must hold and does not, from the members that have them, and serves blocks to others.
//!
//! # Overview
//!
//! After every view change (a member declared offline, a newcomer, a re-formation) and every
//! header-chain advance, a member rescans: for each height of the chain, if the placement rule
//! names it as a holder and it does not hold the block, the height is queued. Because every
//! member computes the same placement from the same view, they agree on who fetches what.
//!
//! Sources for a block are tried in order: its current holders, nearest member number first
//! (so a newcomer is filled by its numbered neighbours, S12/S13); then connected archive peers
//! (the relays, which hold the whole chain); then the other members, who may still keep it
//! from an earlier placement. The order goes by what this node observed of each source, never
//! by what a source claims (`crate::observed`): a holder or an archive that missed (answered
//! `BlockNotFound`, stayed silent, or sent bytes that failed the check) is *demoted* — asked
//! after every source in good standing, before the other members — for one request timeout,
//! doubling for each further round of misses; one that has served us before is forgiven a
//! first miss, and a fetch that timed out while its source served us other blocks is not held
//! against it (a congested link, not a missing block). In a cluster that
//! has just formed every holder is still filling itself, and asking each of them first cost
//! two wasted round trips per block (a third of all block requests at 2,000 nodes); a silent
//! peer claiming to be an archive costs one timeout, not one per block. Once our fetching is
//! done the members' misses are forgiven. A block nobody has waits `repair_retry_ms`,
//! doubling per failed pass up to 64 ×;
//! an archive saying hello ends the wait, and so does a view that adds a member (a newcomer,
//! or the other side of a healed partition, may bring the block). A source that
//! does not answer within `repair_request_timeout_ms`, answers `BlockNotFound`, or sends bytes
//! that fail the check against the header chain is skipped and the next one asked; when all
//! are exhausted the block waits `repair_retry_ms` and starts over.
//!
//! Transfers are bounded: at most `repair_parallel_max` requests in flight, at most
//! `repair_bytes_per_interval` bytes per `repair_interval_ms`, at most `repair_queue_max` queued
//! heights (a later rescan picks up the rest). They are resumable: the unit is one block, a
//! stored block is never fetched again, and after a restart [`StorageCommand::List`] tells the
//! node what it already has.
//!
//! A stored block that reads back corrupt (every read is re-checked against the header chain)
//! is never served, and never deleted on that account either: the fault may be transient, and
//! the copy may be the cluster's last. The height is marked *suspect* — still held, so no
//! placement or eviction decision changes, but queued for a refetch as if it were missing. A
//! verified copy from a replica is put over the bad entry (a put overwrites) and clears the
//! suspicion; so does a later read that passes the check (the fault was transient).
//!
//! Blocks no longer assigned to this member (after a renumbering, S12's third rule) are kept
//! as spare replicas while the cluster settles — the new holders may fetch them from here.
//! Each member tells the others of its view once it holds its whole shard under it
//! (`Message::ShardHeld`); a spare is deleted only once every one of its holders under the
//! view has *proved* it holds the block, by answering a challenge over a random byte range of
//! it with a fresh nonce, and this member's own fetching is idle (issue 16). Members also audit
//! each other's claims now and then, and a member that keeps failing is dropped from the view
//! like an offline one and kept out. See `spares` and [`holding`].

pub mod holding;
pub mod replacement;
mod spares;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::base::NodeId;
use crate::chain_seam::{check_block, sha256d, BlockHash, SharedHeaders};
use crate::io::{Event, Output, StorageCommand, StorageResult, TimerId};
use crate::shared::{Role, Shared};
use crate::wire::Message;

/// A set of heights.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeightSet {
    words: Vec<u64>,
    len: usize,
}

impl HeightSet {
    pub(crate) fn contains(&self, height: u32) -> bool {
        let (w, b) = (height as usize / 64, height % 64);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }
    pub(crate) fn insert(&mut self, height: u32) -> bool {
        let (w, b) = (height as usize / 64, height % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let fresh = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        self.len += fresh as usize;
        fresh
    }
    pub(crate) fn remove(&mut self, height: u32) {
        let (w, b) = (height as usize / 64, height % 64);
        if let Some(word) = self.words.get_mut(w) {
            if *word & (1 << b) != 0 {
                *word &= !(1 << b);
                self.len -= 1;
            }
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[derive(Debug, Clone, Copy)]
struct Job {
    height: u32,
    /// Sources already tried in this pass, counted in the order `order` names.
    attempts: u16,
    /// A digest of the order of sources `attempts` counts in. When the order changes (a
    /// holder missed and moved behind the archives, an archive came or went, the view
    /// changed) the pass starts over on the new order: counting on in the old one skipped
    /// sources, the archive among them, and parked blocks the archive had.
    order: u64,
    /// Passes over all sources that found nobody with the block (backs off the retry).
    rounds: u8,
}

#[derive(Debug, Clone, Copy)]
struct Flight {
    job: Job,
    peer: NodeId,
    sent_ms: u64,
    deadline_ms: u64,
}

#[derive(Debug, Clone, Copy)]
enum PutOrigin {
    Fetched,
    Source,
}

#[derive(Debug, Clone, Copy)]
struct PendingPut {
    height: u32,
    bytes: u64,
    origin: PutOrigin,
    /// Back-off rounds of the job that brought the block (0 for a new block).
    rounds: u8,
}

#[derive(Debug, Clone, Copy)]
struct PendingGet {
    peer: NodeId,
    peer_request_id: u64,
    block_hash: BlockHash,
    height: u32,
}

/// Repair state: what is held, what is wanted, what is in flight.
#[derive(Debug, Default)]
pub(crate) struct Repair {
    /// Heights stored (confirmed by storage).
    pub(crate) held: HeightSet,
    /// Held heights whose last read failed the check: kept, but refetched and not trusted
    /// until a verified copy is put over them or a later read passes.
    suspect: HeightSet,
    /// The start-up `List` request.
    pub(crate) list_request: Option<u64>,
    /// The start-up `List` failed: when to ask again (`list_request` stays set meanwhile, so
    /// that nothing is fetched before this node knows what it holds).
    list_retry_at: Option<u64>,
    /// A storage audit's `List` request in flight.
    pub(crate) audit_request: Option<u64>,
    /// What was held when the audit's `List` was issued: only these heights can be judged by
    /// its answer (a write confirmed later may not be in the listing).
    audit_held: HeightSet,
    /// When the next storage audit is due.
    next_audit_ms: Option<u64>,
    /// Listed hashes not yet found in the header chain (headers may come later).
    unresolved: Vec<BlockHash>,
    queue: VecDeque<Job>,
    /// Heights queued, in flight, parked or being stored.
    busy: HeightSet,
    in_flight: HashMap<u64, Flight>,
    /// Blocks no source had: (retry at, height, rounds so far), soonest first.
    parked: BTreeSet<(u64, u32, u8)>,
    puts: HashMap<u64, PendingPut>,
    gets: HashMap<u64, PendingGet>,
    window_start_ms: u64,
    window_bytes: u64,
    /// Size of the last block received: what each request in flight is assumed to bring.
    block_bytes_estimate: u64,
    /// The members that confirmed they hold their shards under our view (`spares`).
    confirmations: spares::Confirmations,
    /// Challenges, proofs, audits and strikes (`holding`).
    pub(crate) holding: holding::Holding,
    /// The queue overflowed: rescan once it drains.
    rescan_needed: bool,
    /// Heights the new-block path is bringing in (an announced block this member fetches
    /// from the block source, or waits for from the member routing it): the rescan leaves
    /// them alone until the given time, so the same block is not downloaded twice at once.
    /// At most [`DEFERRED_MAX`] entries.
    deferred: BTreeMap<u32, u64>,
}

/// Most heights left to the new-block path at once.
const DEFERRED_MAX: usize = 256;

impl Repair {
    pub(crate) fn missing_count(&self) -> usize {
        self.queue.len() + self.in_flight.len() + self.parked.len()
    }

    /// The height is no longer stored here (deleted, or off the best chain).
    pub(crate) fn forget(&mut self, height: u32) {
        self.held.remove(height);
        self.suspect.remove(height);
    }

    /// The height holds a verified copy (just stored, or read back intact).
    pub(crate) fn confirm(&mut self, height: u32) {
        self.held.insert(height);
        self.suspect.remove(height);
    }

    /// Whether this member holds a copy it still trusts at `height`.
    fn held_good(&self, height: u32) -> bool {
        self.held.contains(height) && !self.suspect.contains(height)
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "held {} suspect {} queued {} in flight {} parked {:?} busy {}",
            self.held.len(),
            self.suspect.len(),
            self.queue.len(),
            self.in_flight.len(),
            self.parked,
            self.busy.len()
        )
    }

    #[cfg(test)]
    pub(crate) fn is_suspect(&self, height: u32) -> bool {
        self.suspect.contains(height)
    }
}

/// Most storage reads for serving in progress at once.
const SERVE_READS_MAX: usize = 64;

impl Repair {
    /// Before switching to a new header view: heights whose block changed (a reorganisation)
    /// are no longer held — the stored block is not on the best chain any more.
    pub(crate) fn forget_reorganised(&mut self, cx: &mut Shared, next: &SharedHeaders) {
        let Some(old) = &cx.headers else { return };
        let (Some(old_tip), Some(new_tip)) = (old.tip_height(), next.tip_height()) else {
            return;
        };
        let mut height = old_tip.min(new_tip);
        loop {
            if old.block_hash_at(height) == next.block_hash_at(height) {
                break;
            }
            self.forget(height);
            if height == 0 {
                break;
            }
            height -= 1;
        }
        for stale in new_tip.saturating_add(1)..=old_tip {
            self.forget(stale);
        }
    }

    /// Recomputes what this member must fetch and starts fetching.
    pub(crate) fn rescan_shard(&mut self, cx: &mut Shared) {
        self.resolve_listed(cx);
        if !matches!(cx.role, Role::Member(_)) {
            // An ordinary node holds what it has and fetches nothing.
            for (_, flight) in self.in_flight.drain() {
                self.busy.remove(flight.job.height);
            }
            for job in self.queue.drain(..) {
                self.busy.remove(job.height);
            }
            for (_, height, _) in std::mem::take(&mut self.parked) {
                self.busy.remove(height);
            }
            return;
        }
        if self.list_request.is_some() {
            // What this node holds is not known until the start-up listing answers (a member
            // that resumed its membership at start, `node::resume`): that answer rescans.
            return;
        }
        let Some(tip) = cx.headers.as_ref().and_then(|h| h.tip_height()) else {
            return;
        };
        // Heights waiting (queued, or parked after a failed write or fetch) that placement no
        // longer gives this member — its view changed, its capacity shrank — are not missing
        // any more.
        for (at, height, rounds) in std::mem::take(&mut self.parked) {
            if cx.must_hold(height) {
                self.parked.insert((at, height, rounds));
            } else {
                self.busy.remove(height);
            }
        }
        for job in std::mem::take(&mut self.queue) {
            if cx.must_hold(job.height) {
                self.queue.push_back(job);
            } else {
                self.busy.remove(job.height);
            }
        }
        self.rescan_needed = false;
        let now = cx.now_ms;
        self.deferred.retain(|_, until| *until > now);
        for height in 0..=tip {
            if self.held_good(height) || self.busy.contains(height) {
                continue;
            }
            if self.deferred.contains_key(&height) {
                continue;
            }
            if !cx.must_hold(height) {
                continue;
            }
            if self.queue.len() >= cx.config.repair_queue_max {
                self.rescan_needed = true;
                break;
            }
            self.busy.insert(height);
            self.queue.push_back(Job {
                height,
                attempts: 0,
                order: 0,
                rounds: 0,
            });
        }
        self.pump_repair(cx);
    }

    fn resolve_listed(&mut self, cx: &mut Shared) {
        let Some(headers) = &cx.headers else { return };
        let headers = headers.clone();
        self.unresolved
            .retain(|hash| match headers.height_of(hash) {
                Some(height) => {
                    self.held.insert(height);
                    false
                }
                None => true,
            });
    }

    /// Where to fetch `height` from, best first (see the module docs): holders in good
    /// standing (numbered neighbours first), archives in good standing (those that served us
    /// most first), demoted holders and archives (the demotion that ends first first), the
    /// other members. Standing is what this node observed (`crate::observed`), never what a
    /// peer claims.
    fn sources(&mut self, cx: &mut Shared, height: u32, hash: &BlockHash) -> Vec<NodeId> {
        let now = cx.now_ms;
        let mut archives = cx.connected_archives();
        archives.sort_by_key(|id| std::cmp::Reverse(cx.observed.served_by(id)));
        let (mut out, mut demoted): (Vec<NodeId>, Vec<NodeId>) = match &cx.role {
            Role::Member(m) => {
                let k = m.slots.len();
                let distance = |n: usize| {
                    let d = (n + k - m.number) % k;
                    d.min(k - d)
                };
                let mut holders = std::mem::take(&mut cx.scratch);
                cx.placer.holders(hash, height, &m.slots, &mut holders);
                let mut current: Vec<usize> =
                    holders.iter().copied().filter(|n| *n != m.number).collect();
                current.sort_by_key(|n| distance(*n));
                cx.scratch = holders;
                current
                    .into_iter()
                    .map(|n| m.slots[n].id)
                    .partition(|id| !cx.observed.demoted(id, now))
            }
            Role::Ordinary => (Vec::new(), Vec::new()),
        };
        for archive in archives {
            if cx.observed.demoted(&archive, now) {
                demoted.push(archive);
            } else {
                out.push(archive);
            }
        }
        // Stable: among equal ends, holders before archives, each in its order above.
        demoted.sort_by_key(|id| cx.observed.demoted_until(id, now));
        out.extend(demoted);
        if let Role::Member(m) = &cx.role {
            let k = m.slots.len();
            let distance = |n: usize| {
                let d = (n + k - m.number) % k;
                d.min(k - d)
            };
            let mut others: Vec<usize> = (0..k)
                .filter(|n| *n != m.number && !out.contains(&m.slots[*n].id))
                .collect();
            others.sort_by_key(|n| distance(*n));
            out.extend(others.into_iter().map(|n| m.slots[n].id));
        }
        out
    }

    /// A fetch sent to `peer` at `sent_ms` came back without the block (not found, no answer
    /// in time, or bytes that failed the check): noted against it (`crate::observed`).
    fn note_miss(&mut self, cx: &mut Shared, peer: NodeId, sent_ms: u64) {
        let demotion_ms = cx.config.repair_request_timeout_ms;
        cx.observed.missed(peer, sent_ms, cx.now_ms, demotion_ms);
    }

    /// Sends fetches while the bounds allow.
    fn pump_repair(&mut self, cx: &mut Shared) {
        if cx.now_ms >= self.window_start_ms + cx.config.repair_interval_ms {
            self.window_start_ms = cx.now_ms;
            self.window_bytes = 0;
        }
        while self.in_flight.len() < cx.config.repair_parallel_max
            && self.window_bytes + (self.in_flight.len() as u64 + 1) * self.block_bytes_estimate
                <= cx.config.repair_bytes_per_interval
        {
            let Some(mut job) = self.queue.pop_front() else {
                break;
            };
            let hash = cx
                .headers
                .as_ref()
                .and_then(|h| h.block_hash_at(job.height));
            let Some(hash) = hash.filter(|_| !self.held_good(job.height)) else {
                self.busy.remove(job.height);
                continue;
            };
            if !cx.must_hold(job.height) {
                self.busy.remove(job.height);
                continue;
            }
            let sources = self.sources(cx, job.height, &hash);
            let order = order_digest(&sources);
            if order != job.order {
                job.order = order;
                job.attempts = 0;
            }
            let Some(peer) = sources.get(job.attempts as usize).copied() else {
                // Nobody had it: back off, doubling up to 64 × repair_retry_ms.
                let at = cx.now_ms + (cx.config.repair_retry_ms << job.rounds.min(6));
                self.parked
                    .insert((at, job.height, job.rounds.saturating_add(1)));
                continue;
            };
            job.attempts += 1;
            let request_id = cx.fresh_id();
            let sent_ms = cx.now_ms;
            let deadline_ms = sent_ms + cx.config.repair_request_timeout_ms;
            self.in_flight.insert(
                request_id,
                Flight {
                    job,
                    peer,
                    sent_ms,
                    deadline_ms,
                },
            );
            cx.send(
                peer,
                Message::GetBlock {
                    request_id,
                    block_hash: hash,
                },
            );
            let in_flight = self.in_flight.len() as u64;
            debug_assert!(in_flight <= cx.config.repair_parallel_max as u64);
            cx.stats.fetches_in_flight_peak = cx.stats.fetches_in_flight_peak.max(in_flight);
        }
        if self.queue.is_empty() && self.in_flight.is_empty() && self.rescan_needed {
            self.rescan_needed = false;
            // The queue overflowed earlier; pick up the rest now that it drained.
            return self.rescan_shard(cx);
        }
        if self.missing_count() == 0 {
            // Filled: what the members lacked then says nothing of the next repair.
            if let Role::Member(m) = &cx.role {
                cx.observed.forgive(m.slots.iter().map(|slot| &slot.id));
            }
        }
        self.settle_spares(cx);
        self.rearm_repair_timer(cx);
    }

    fn rearm_repair_timer(&mut self, cx: &mut Shared) {
        let mut next = self.in_flight.values().map(|f| f.deadline_ms).min();
        if let Some(&(at, _, _)) = self.parked.first() {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        let throttled =
            !self.queue.is_empty() && self.in_flight.len() < cx.config.repair_parallel_max;
        if throttled {
            let at = self.window_start_ms + cx.config.repair_interval_ms;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(at) = self.next_audit_ms {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(at) = self.list_retry_at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(&at) = self.deferred.values().min() {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(at) = self.holding_due(cx) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(at) = next {
            cx.set_timer_no_later(TimerId::Repair, at.max(cx.now_ms));
        }
    }

    pub(crate) fn on_repair_timer(&mut self, cx: &mut Shared) {
        self.on_holding_timer(cx);
        let now = cx.now_ms;
        if self.list_retry_at.is_some_and(|at| at <= now) {
            self.list_retry_at = None;
            let request_id = cx.fresh_id();
            self.list_request = Some(request_id);
            cx.push(Output::Storage(StorageCommand::List { request_id }));
        }
        if self.next_audit_ms.is_some_and(|at| at <= now) {
            self.start_audit(cx);
        }
        let mut expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        // The map's order is random per process: sort, so outputs are reproducible.
        expired.sort_unstable();
        for id in expired {
            if let Some(flight) = self.in_flight.remove(&id) {
                cx.stats.fetch_failures += 1;
                self.note_miss(cx, flight.peer, flight.sent_ms);
                self.queue.push_back(flight.job);
            }
        }
        // Heights the new-block path did not bring in in time are repair's now.
        let deferred_due = self.deferred.values().any(|until| *until <= now);
        while let Some(&(at, height, rounds)) = self.parked.first() {
            if at > now {
                break;
            }
            self.parked.pop_first();
            self.queue.push_back(Job {
                height,
                attempts: 0,
                order: 0,
                rounds,
            });
        }
        if deferred_due {
            // Rescans (and pumps): the heights whose deferral ended are queued if still missing.
            return self.rescan_shard(cx);
        }
        self.pump_repair(cx);
    }

    /// Schedules the next storage audit, if audits are on.
    fn schedule_audit(&mut self, cx: &mut Shared) {
        self.next_audit_ms = cx
            .config
            .storage_audit_interval_ms
            .map(|interval| cx.now_ms + cx.rng.jitter(interval));
    }

    /// Lists the storage to compare it with the held set (see `on_audit_listed`).
    fn start_audit(&mut self, cx: &mut Shared) {
        self.schedule_audit(cx);
        if self.audit_request.is_some() || self.list_request.is_some() {
            return;
        }
        let request_id = cx.fresh_id();
        self.audit_request = Some(request_id);
        self.audit_held = self.held.clone();
        cx.push(Output::Storage(StorageCommand::List { request_id }));
    }

    /// The audit's listing: a held block the storage does not list was lost after its write
    /// was acknowledged. It is no longer held (nor indexed), and repair fetches it again if
    /// placement assigns it here. Only blocks held when the listing was asked for are judged.
    fn on_audit_listed(&mut self, cx: &mut Shared, blocks: Vec<BlockHash>) {
        let Some(headers) = cx.headers.clone() else {
            return;
        };
        let mut listed = HeightSet::default();
        for hash in &blocks {
            if let Some(height) = headers.height_of(hash) {
                listed.insert(height);
            }
        }
        let audit_held = std::mem::take(&mut self.audit_held);
        let mut lost = false;
        for height in 0..=headers.tip_height().unwrap_or(0) {
            if !(self.held.contains(height) && audit_held.contains(height))
                || listed.contains(height)
            {
                continue;
            }
            self.forget(height);
            cx.stats.lost_writes_found += 1;
            if let Some(block_hash) = headers.block_hash_at(height) {
                cx.serving.serve.block_removed(&block_hash);
            }
            lost = true;
        }
        if lost {
            self.rescan_shard(cx);
        }
    }

    /// The store refused to write the block at `height` (a full disk, an exhausted quota):
    /// fetching it again at once would only download it to be refused again, so the height
    /// waits its turn, doubling from `repair_retry_ms` up to 64 × as repair's misses do.
    pub(crate) fn put_failed(&mut self, cx: &mut Shared, height: u32, rounds: u8) {
        cx.stats.put_failures += 1;
        if self.busy.contains(height) || self.held.contains(height) {
            return;
        }
        let at = cx.now_ms + (cx.config.repair_retry_ms << rounds.min(6));
        self.busy.insert(height);
        self.parked.insert((at, height, rounds.saturating_add(1)));
        self.rearm_repair_timer(cx);
    }

    /// A new source appeared (an archive said hello): retry every parked block now.
    pub(crate) fn unpark_all(&mut self, cx: &mut Shared) {
        if self.parked.is_empty() {
            return;
        }
        for (_, height, _) in std::mem::take(&mut self.parked) {
            self.queue.push_back(Job {
                height,
                attempts: 0,
                order: 0,
                rounds: 0,
            });
        }
        self.pump_repair(cx);
    }

    /// Another node asks for a block: read it if we hold it.
    pub(crate) fn on_get_block(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        request_id: u64,
        block_hash: BlockHash,
    ) {
        let height = cx.headers.as_ref().and_then(|h| h.height_of(&block_hash));
        match height {
            Some(height) if self.held.contains(height) && self.gets.len() < SERVE_READS_MAX => {
                let storage_id = cx.fresh_id();
                self.gets.insert(
                    storage_id,
                    PendingGet {
                        peer: from,
                        peer_request_id: request_id,
                        block_hash,
                        height,
                    },
                );
                cx.push(Output::Storage(StorageCommand::Get {
                    request_id: storage_id,
                    block_hash,
                }));
            }
            _ => cx.send(from, Message::BlockNotFound { request_id }),
        }
    }

    /// A held block read back corrupt: keep the copy (the fault may be transient, and it may
    /// be the cluster's last), stop trusting it, and fetch a verified copy to put over it.
    pub(crate) fn suspect_block(&mut self, cx: &mut Shared, height: u32) {
        if !self.held.contains(height) {
            return;
        }
        cx.stats.blocks_suspect += 1;
        self.suspect.insert(height);
        if self.busy.insert(height) {
            self.queue.push_back(Job {
                height,
                attempts: 0,
                order: 0,
                rounds: 0,
            });
        }
        self.pump_repair(cx);
    }

    /// The fetch `request_id` if `from` is the peer it went to; it is no longer in flight.
    /// An answer from anyone else, or to no fetch of ours, is counted and ignored.
    fn take_flight(&mut self, cx: &mut Shared, from: NodeId, request_id: u64) -> Option<Flight> {
        match self.in_flight.get(&request_id) {
            Some(flight) if flight.peer == from => self.in_flight.remove(&request_id),
            _ => {
                cx.stats.messages_ignored += 1;
                None
            }
        }
    }

    pub(crate) fn on_block_data(
        &mut self,
        cx: &mut Shared,
        from: NodeId,
        request_id: u64,
        block: Vec<u8>,
    ) {
        let Some(flight) = self.take_flight(cx, from, request_id) else {
            return;
        };
        self.window_bytes += block.len() as u64;
        self.block_bytes_estimate = block.len() as u64;
        let height = flight.job.height;
        let expected = cx.headers.as_ref().and_then(|h| h.block_hash_at(height));
        match expected.map(|hash| (hash, check_block(&hash, &block))) {
            Some((block_hash, Ok(checked))) => {
                cx.observed.served(from, cx.now_ms);
                cx.serving.checked = Some(checked);
                let storage_id = cx.fresh_id();
                self.puts.insert(
                    storage_id,
                    PendingPut {
                        height,
                        bytes: block.len() as u64,
                        origin: PutOrigin::Fetched,
                        rounds: flight.job.rounds,
                    },
                );
                cx.push(Output::Storage(StorageCommand::Put {
                    request_id: storage_id,
                    block_hash,
                    height,
                    bytes: block,
                }));
            }
            Some((_, Err(_))) => {
                cx.stats.blocks_rejected += 1;
                cx.stats.fetch_failures += 1;
                self.note_miss(cx, from, flight.sent_ms);
                cx.event(Event::BlockRejected { from, height });
                self.queue.push_back(flight.job);
            }
            // The header chain moved under us: drop it, the next rescan decides.
            None => self.busy.remove(height),
        }
        self.pump_repair(cx);
    }

    pub(crate) fn on_block_not_found(&mut self, cx: &mut Shared, from: NodeId, request_id: u64) {
        let Some(flight) = self.take_flight(cx, from, request_id) else {
            return;
        };
        cx.stats.fetch_failures += 1;
        self.note_miss(cx, from, flight.sent_ms);
        self.queue.push_front(flight.job);
        self.pump_repair(cx);
    }

    /// Whether `height` is held (and trusted), or queued, in flight or being stored: the
    /// new-block path then leaves it to repair.
    pub(crate) fn has_or_fetches(&self, height: u32) -> bool {
        self.held_good(height) || self.busy.contains(height)
    }

    /// The new-block path brings `height` in (see [`Repair::deferred`]): the rescan leaves it
    /// until `until_ms`, then fetches it if it is still missing.
    pub(crate) fn defer(&mut self, cx: &mut Shared, height: u32, until_ms: u64) {
        if self.deferred.len() >= DEFERRED_MAX && !self.deferred.contains_key(&height) {
            return;
        }
        self.deferred.insert(height, until_ms);
        self.rearm_repair_timer(cx);
    }

    /// The new-block path gave up on `height` (the source did not have it, or sent a bad
    /// block): repair fetches it now.
    pub(crate) fn undefer(&mut self, cx: &mut Shared, height: u32) {
        if self.deferred.remove(&height).is_some() {
            self.rescan_shard(cx);
        }
    }

    /// A block from the block source: store it if we must hold it (or are an archive).
    pub(crate) fn on_new_block(&mut self, cx: &mut Shared, bytes: Vec<u8>) {
        let Some(header) = bytes.get(..80) else {
            cx.stats.blocks_rejected += 1;
            return;
        };
        let hash = BlockHash(sha256d(header));
        let Some(height) = cx.headers.as_ref().and_then(|h| h.height_of(&hash)) else {
            // Not (yet) on our header chain: refuse rather than store unchecked bytes.
            cx.stats.blocks_rejected += 1;
            return;
        };
        let Ok(checked) = check_block(&hash, &bytes) else {
            cx.stats.blocks_rejected += 1;
            return;
        };
        let wanted = cx.config.archive || cx.must_hold(height);
        if !wanted || self.held.contains(height) {
            return;
        }
        cx.serving.checked = Some(checked);
        let storage_id = cx.fresh_id();
        self.busy.insert(height);
        self.puts.insert(
            storage_id,
            PendingPut {
                height,
                bytes: bytes.len() as u64,
                origin: PutOrigin::Source,
                rounds: 0,
            },
        );
        cx.push(Output::Storage(StorageCommand::Put {
            request_id: storage_id,
            block_hash: hash,
            height,
            bytes,
        }));
    }

    pub(crate) fn on_storage(&mut self, cx: &mut Shared, result: StorageResult) {
        match result {
            StorageResult::Put { request_id, ok } => {
                let Some(put) = self.puts.remove(&request_id) else {
                    return;
                };
                // A repair job for the same height may still be queued; it is dropped when
                // popped because the height is held.
                if !ok {
                    self.busy.remove(put.height);
                    return self.put_failed(cx, put.height, put.rounds);
                }
                // A verified copy; it overwrote a suspect entry, if there was one.
                self.confirm(put.height);
                self.busy.remove(put.height);
                match put.origin {
                    PutOrigin::Fetched => {
                        cx.stats.blocks_fetched += 1;
                        cx.stats.bytes_fetched += put.bytes;
                        if matches!(&cx.role, Role::Member(m) if m.reformed) {
                            cx.stats.blocks_fetched_after_reform += 1;
                            cx.stats.bytes_fetched_after_reform += put.bytes;
                        }
                    }
                    PutOrigin::Source => {
                        cx.stats.blocks_from_source += 1;
                        if cx.config.archive && cx.config.serve.new_blocks.announce {
                            cx.announce_block(put.height);
                        }
                    }
                }
                if let Some(block_hash) = cx
                    .headers
                    .as_ref()
                    .and_then(|h| h.block_hash_at(put.height))
                {
                    cx.event(Event::BlockStored {
                        block_hash,
                        height: put.height,
                    });
                }
                // The last block of the shard may be the one just stored.
                self.settle_spares(cx);
            }
            StorageResult::Got { request_id, bytes } if self.holding.awaits_read(request_id) => {
                self.on_holding_read(cx, request_id, bytes);
            }
            StorageResult::Got { request_id, bytes } => {
                let Some(get) = self.gets.remove(&request_id) else {
                    return;
                };
                // Every stored block is re-checked on read. A corrupt one is never served and
                // never deleted: it turns suspect and a verified copy is fetched over it.
                match bytes {
                    Some(bytes) if check_block(&get.block_hash, &bytes).is_ok() => {
                        // A transient fault, if it was suspect: the copy is good again.
                        if self.held.contains(get.height) {
                            self.confirm(get.height);
                        }
                        cx.stats.blocks_served += 1;
                        cx.stats.bytes_served += bytes.len() as u64;
                        cx.send(
                            get.peer,
                            Message::BlockData {
                                request_id: get.peer_request_id,
                                block: bytes,
                            },
                        );
                    }
                    Some(_) => {
                        cx.send(
                            get.peer,
                            Message::BlockNotFound {
                                request_id: get.peer_request_id,
                            },
                        );
                        self.suspect_block(cx, get.height);
                    }
                    None => {
                        // Storage no longer has it: fetch it again.
                        self.forget(get.height);
                        cx.send(
                            get.peer,
                            Message::BlockNotFound {
                                request_id: get.peer_request_id,
                            },
                        );
                        self.rescan_shard(cx);
                    }
                }
            }
            // The serving layer's index records (taken by the serving glue).
            StorageResult::Deleted { .. }
            | StorageResult::KvWritten { .. }
            | StorageResult::KvListed { .. } => {}
            StorageResult::ListFailed { request_id } => {
                cx.stats.list_failures += 1;
                if self.audit_request == Some(request_id) {
                    // Judge nothing: the next audit lists again.
                    self.audit_request = None;
                    self.audit_held = HeightSet::default();
                } else if self.list_request == Some(request_id) {
                    self.list_retry_at = Some(cx.now_ms + cx.config.repair_retry_ms);
                    self.rearm_repair_timer(cx);
                }
            }
            StorageResult::Listed { request_id, blocks } => {
                if self.audit_request == Some(request_id) {
                    self.audit_request = None;
                    return self.on_audit_listed(cx, blocks);
                }
                if self.list_request != Some(request_id) {
                    return;
                }
                self.list_request = None;
                self.unresolved = blocks;
                self.schedule_audit(cx);
                self.rescan_shard(cx);
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// A digest of an order of sources (which, and in what order).
fn order_digest(sources: &[NodeId]) -> u64 {
    let words: Vec<u64> = sources
        .iter()
        .map(|id| u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")))
        .collect();
    crate::base::rng::mix(&words)
}
