//! The world's side of serving (S14–S17): issuing queries, playing outsider clients and
//! adversaries, and judging every result against the true chain. See [`crate::serving`].
//!
//! Every query *attempt* for a confirmed transaction is judged when it ends. If it did not end
//! with a proof that holds on the true chain, and at query time its cluster had a live honest
//! member holding the block, the failure must be excused by one of: the asked member is an
//! adversary; the asker left or changed cluster; every such holder left, changed cluster or
//! lost the block before the end; a message of the query was lost, cut by a partition or sent
//! to a departed node; a storage read was corrupted meanwhile; or the asker's view did not list
//! any such holder when the attempt started or when it ended (views converge within a heartbeat
//! round). Anything else is a violation of
//! [`Invariant::QueryAnswered`]. Excuses are counted by reason in the report.

use std::collections::{BTreeMap, HashMap};

use shoal_core::chain::{MerkleProof, Txid};
use shoal_core::node::{Event, Input, NodeId};
use shoal_core::serve::query::{check_transaction, QueryResult};
use shoal_core::wire::{Hash256, Message, TxAnswerBody};

use super::{HostIdx, SimEvent, World, WorldError};
use crate::invariants::Invariant;
use crate::replicas::{quantile, ClusterIdx};
use crate::rng::{SimRng, Stream};
use crate::serving::{
    adversary, Adversary, NewBlocksMode, Rewrite, ServingConfig, ServingReport, TxTruth,
    OUTSIDER_ATTEMPTS,
};
use crate::storage::Stored;

/// An outsider gives up on a member after this long (the core's query timeout is 10 s).
const OUTSIDER_TIMEOUT_MS: u64 = 12_000;
/// A member query with no `TxQueryDone` by then is a violation (if its asker is still there).
const MEMBER_QUERY_EXPIRY_MS: u64 = 30_000;
/// A job with no `JobReady`/`JobFailed` by then is a violation: the cache asks the P holders
/// one after another, 10 s each (the core's `fetch_timeout_ms`), so 60 s is ample.
const JOB_EXPIRY_MS: u64 = 60_000;

/// Serving's own events.
#[derive(Debug)]
pub(super) enum ServingEvent {
    /// Time for the next query.
    Query,
    /// An attempt's deadline.
    Expire { query: u64, attempt: u32 },
    /// A job's deadline.
    ExpireJob { job: u64 },
}

/// A job in flight (S17).
#[derive(Debug)]
struct OpenJob {
    host: HostIdx,
    incarnation: u32,
    height: u32,
    issued_ms: u64,
}

/// An outsider client's state.
#[derive(Debug)]
struct Outsider {
    /// The host the client sits at (its network location and id).
    location: HostIdx,
    location_incarnation: u32,
    request_id: u64,
    tried: Vec<HostIdx>,
}

/// A query in flight.
#[derive(Debug)]
struct OpenQuery {
    txid: Txid,
    /// The true height of its block (`None`: an unknown txid).
    height: Option<u32>,
    /// The member asked (runs the query).
    asker: HostIdx,
    asker_incarnation: u32,
    cluster: ClusterIdx,
    attempt: u32,
    outsider: Option<Outsider>,
    first_issued_ms: u64,
    /// Hops so far: one per member an outsider asked.
    hops: u64,
    /// Whether the current attempt's member forwarded the query.
    forwarded: bool,
    /// Whether the current attempt carried a block hint.
    hinted: bool,
    /// `TxQuery` messages sent for it (the outsider's and every forward).
    messages: u64,
    disturbed: bool,
    corrupt_reads_at_issue: u64,
    /// The asker's membership view when the attempt started.
    view_at_issue: Vec<NodeId>,
    /// Live honest holders of the block in the cluster when the attempt started.
    honest_holders: Vec<(HostIdx, u32)>,
    ask_keys: Vec<(HostIdx, HostIdx, u64)>,
}

/// How a query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Verified,
    NotFound,
    Unavailable,
}

/// Serving's part of the world.
#[derive(Debug)]
pub(super) struct Serving {
    config: ServingConfig,
    rng: SimRng,
    truth: TxTruth,
    /// Per host: its adversarial behaviour, if any.
    adversaries: Vec<Option<Adversary>>,
    /// Every id a hollow adversary has had (a fresh return gives it a new one).
    hollow_ids: std::collections::HashSet<NodeId>,
    next_query: u64,
    open: BTreeMap<u64, OpenQuery>,
    /// (client location, request id) → query. Looked up, never iterated.
    outsider_requests: HashMap<(HostIdx, u64), u64>,
    /// (asking member, txid) → query, to count its messages.
    by_asker: HashMap<(HostIdx, Txid), u64>,
    /// (asker, asked, request id) of a member's forward → query.
    asks: HashMap<(HostIdx, HostIdx, u64), u64>,
    hops: Vec<u64>,
    messages: Vec<u64>,
    latencies_ms: Vec<u64>,
    jobs: BTreeMap<u64, OpenJob>,
    job_latencies_ms: Vec<u64>,
    report: ServingReport,
}

impl Serving {
    pub(super) fn new(
        config: ServingConfig,
        seed: u64,
        blocks: &[crate::chain::SimBlock],
        light_hosts: usize,
        host_count: usize,
    ) -> Self {
        let mut rng = SimRng::stream(seed, Stream::Serving.number());
        let mut order: Vec<usize> = (0..light_hosts).collect();
        rng.shuffle(&mut order);
        let mut adversaries = vec![None; host_count];
        for (i, host) in order
            .iter()
            .take(config.adversaries.min(light_hosts))
            .enumerate()
        {
            adversaries[*host] = Some(adversary(config.adversary_kind, i));
        }
        let report = ServingReport {
            new_blocks_mode: Some(config.new_blocks_mode),
            adversaries: config.adversaries.min(light_hosts),
            adversary_hosts: {
                let mut hosts: Vec<usize> = order
                    .iter()
                    .take(config.adversaries.min(light_hosts))
                    .copied()
                    .collect();
                hosts.sort_unstable();
                hosts
            },
            ..ServingReport::default()
        };
        Self {
            truth: TxTruth::new(blocks),
            config,
            rng,
            adversaries,
            hollow_ids: std::collections::HashSet::new(),
            next_query: 1,
            open: BTreeMap::new(),
            outsider_requests: HashMap::new(),
            by_asker: HashMap::new(),
            asks: HashMap::new(),
            hops: Vec::new(),
            messages: Vec::new(),
            jobs: BTreeMap::new(),
            job_latencies_ms: Vec::new(),
            latencies_ms: Vec::new(),
            report,
        }
    }

    /// Silences the `ServingConfig::silent_archives` archives of lowest id among `archives`
    /// (host, id).
    pub(super) fn silence_archives(&mut self, archives: &[(HostIdx, NodeId)]) {
        let mut by_id: Vec<(NodeId, HostIdx)> = archives.iter().map(|(h, id)| (*id, *h)).collect();
        by_id.sort();
        for (_, host) in by_id.into_iter().take(self.config.silent_archives) {
            self.adversaries[host as usize] =
                Some(Adversary(crate::serving::AdversaryKind::Silent));
            self.report.silent_archive_hosts.push(host as usize);
        }
        self.report.silent_archive_hosts.sort_unstable();
    }

    /// Whether `host` is a hollow adversary: its disk keeps nothing (see `world::disk`).
    pub(super) fn hollow(&self, host: HostIdx) -> bool {
        matches!(
            self.adversaries[host as usize],
            Some(Adversary(crate::serving::AdversaryKind::Hollow))
        )
    }

    /// `host` starts with `id`: remembered if it is hollow, so that a verdict about it is
    /// judged after it has gone too.
    pub(super) fn booted(&mut self, host: HostIdx, id: NodeId) {
        if self.hollow(host) {
            self.hollow_ids.insert(id);
        }
    }

    /// The new-block storage mode.
    pub(super) fn mode(&self) -> NewBlocksMode {
        self.config.new_blocks_mode
    }

    fn next_gap_ms(&mut self) -> Option<u64> {
        (self.config.queries_per_s > 0.0).then(|| {
            let mean_ms = 1_000.0 / self.config.queries_per_s;
            (self.rng.exponential(mean_ms) as u64).max(1)
        })
    }
}

impl World {
    /// Schedules the first query.
    pub(super) fn serving_start(&mut self) -> Result<(), WorldError> {
        if let Some(gap_ms) = self.serving.next_gap_ms() {
            self.queue
                .schedule(gap_ms, SimEvent::Serving(ServingEvent::Query))?;
        } else {
            for invariant in [Invariant::QueryAnswered, Invariant::NoForgedAnswerAccepted] {
                self.log
                    .not_checkable(invariant, "no queries (queries_per_s is 0)");
            }
        }
        Ok(())
    }

    pub(super) fn serving_step(&mut self, event: ServingEvent) -> Result<(), WorldError> {
        match event {
            ServingEvent::Query => {
                if let Some(gap_ms) = self.serving.next_gap_ms() {
                    let at_ms = self.queue.now_ms() + gap_ms;
                    self.queue
                        .schedule(at_ms, SimEvent::Serving(ServingEvent::Query))?;
                }
                if self.serving.rng.chance(self.serving.config.job_fraction) {
                    self.issue_job()
                } else {
                    self.issue_query()
                }
            }
            ServingEvent::ExpireJob { job } => {
                let Some(open) = self.serving.jobs.remove(&job) else {
                    return Ok(());
                };
                if self.is_current(open.host, open.incarnation) {
                    let now_ms = self.queue.now_ms();
                    self.log.violate(
                        now_ms,
                        Invariant::JobOnTrueBlock,
                        format!(
                            "member host {} never finished job {job} (no JobReady/JobFailed in {} s)",
                            open.host,
                            JOB_EXPIRY_MS / 1_000
                        ),
                    );
                }
                self.serving.report.jobs_abandoned += 1;
                Ok(())
            }
            ServingEvent::Expire { query, attempt } => {
                let Some(q) = self.serving.open.get(&query) else {
                    return Ok(());
                };
                if q.attempt != attempt {
                    return Ok(());
                }
                if q.outsider.is_some() {
                    self.end_attempt(query, Outcome::Unavailable)
                } else {
                    let asker_here = self.is_current(q.asker, q.asker_incarnation);
                    let q = self.close(query).expect("open");
                    if asker_here {
                        let now_ms = self.queue.now_ms();
                        self.log.checked(Invariant::QueryAnswered, 1);
                        self.log.violate(
                            now_ms,
                            Invariant::QueryAnswered,
                            format!(
                                "member host {} never finished query {query} (no TxQueryDone in {} s)",
                                q.asker,
                                MEMBER_QUERY_EXPIRY_MS / 1_000
                            ),
                        );
                        self.serving.report.query_failures_unexcused += 1;
                    }
                    self.serving.report.queries_abandoned += 1;
                    Ok(())
                }
            }
        }
    }

    /// Online light hosts in a cluster, in host order.
    fn members_by_cluster(&self) -> BTreeMap<ClusterIdx, Vec<HostIdx>> {
        let mut clusters: BTreeMap<ClusterIdx, Vec<HostIdx>> = BTreeMap::new();
        for host in &self.online_light {
            if let Some(cluster) = self.hosts[*host as usize].cluster {
                clusters.entry(cluster).or_default().push(*host);
            }
        }
        for members in clusters.values_mut() {
            members.sort_unstable();
        }
        clusters
    }

    fn issue_query(&mut self) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let published = self.published;
        let rng = &mut self.serving.rng;
        let unknown = rng.chance(self.serving.config.unknown_txid_fraction);
        let outsider = rng.chance(self.serving.config.outsider_fraction);
        let (txid, height) = if unknown {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            (Txid(bytes), None)
        } else {
            match self.serving.truth.pick(rng, published) {
                Some((txid, height)) => (txid, Some(height)),
                None => return Ok(()),
            }
        };
        let clusters = self.members_by_cluster();
        let candidates: Vec<(ClusterIdx, HostIdx)> = clusters
            .iter()
            .flat_map(|(c, members)| members.iter().map(move |m| (*c, *m)))
            .filter(|(_, m)| outsider || self.serving.adversaries[*m as usize].is_none())
            .filter(|(_, m)| !self.serving.by_asker.contains_key(&(*m, txid)))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let (cluster, asker) = candidates[self.serving.rng.below(candidates.len() as u64) as usize];
        let location = if outsider {
            // Outside the cluster, and not listed by the asked member's view either (a stale
            // view would make the member answer it as a fellow member: from its shard only).
            let view = self.view_of(asker);
            let outside: Vec<HostIdx> = self
                .online_light
                .iter()
                .copied()
                .filter(|h| self.hosts[*h as usize].cluster != Some(cluster))
                .filter(|h| !view.contains(&self.hosts[*h as usize].id))
                .collect();
            if outside.is_empty() {
                return Ok(());
            }
            let mut sorted = outside;
            sorted.sort_unstable();
            Some(sorted[self.serving.rng.below(sorted.len() as u64) as usize])
        } else {
            None
        };
        let query = self.serving.next_query;
        self.serving.next_query += 1;
        self.serving.report.queries += 1;
        if unknown {
            self.serving.report.queries_unknown_txid += 1;
        }
        if outsider {
            self.serving.report.queries_outsider += 1;
        }
        let outsider = location.map(|location| Outsider {
            location,
            location_incarnation: self.hosts[location as usize].incarnation,
            request_id: 0,
            tried: Vec::new(),
        });
        let q = OpenQuery {
            txid,
            height,
            asker,
            asker_incarnation: 0,
            cluster,
            attempt: 0,
            outsider,
            first_issued_ms: now_ms,
            hops: 0,
            forwarded: false,
            hinted: false,
            messages: 0,
            disturbed: false,
            corrupt_reads_at_issue: 0,
            view_at_issue: Vec::new(),
            honest_holders: Vec::new(),
            ask_keys: Vec::new(),
        };
        self.serving.open.insert(query, q);
        self.start_attempt(query, asker)
    }

    /// A job (S17) on a random published block at a random honest member.
    fn issue_job(&mut self) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let members: Vec<HostIdx> = self
            .members_by_cluster()
            .into_values()
            .flatten()
            .filter(|m| self.serving.adversaries[*m as usize].is_none())
            .collect();
        if members.is_empty() || self.published == 0 {
            return Ok(());
        }
        let host = members[self.serving.rng.below(members.len() as u64) as usize];
        let height = self.serving.rng.below(u64::from(self.published)) as u32;
        let Some(block_hash) = self.serving.truth.hash_at(height) else {
            return Ok(());
        };
        let job = self.serving.next_query;
        self.serving.next_query += 1;
        self.serving.report.jobs += 1;
        self.serving.jobs.insert(
            job,
            OpenJob {
                host,
                incarnation: self.hosts[host as usize].incarnation,
                height,
                issued_ms: now_ms,
            },
        );
        self.queue.schedule(
            now_ms + JOB_EXPIRY_MS,
            SimEvent::Serving(ServingEvent::ExpireJob { job }),
        )?;
        self.feed(host, Input::RunJob { job, block_hash })
    }

    /// A job's block is ready on `host`: it must be the true block.
    fn job_ready(&mut self, host: HostIdx, job: u64, block_hash: &shoal_core::wire::BlockHash) {
        let Some(open) = self.serving.jobs.remove(&job) else {
            return;
        };
        let now_ms = self.queue.now_ms();
        self.log.checked(Invariant::JobOnTrueBlock, 1);
        let txids = self.hosts[host as usize]
            .running
            .as_mut()
            .and_then(|running| {
                running
                    .node_mut()
                    .with_block(block_hash, |block| block.txids())
            });
        let truth = self.serving.truth.txids_at(open.height);
        if txids.as_deref() == Some(truth)
            && self.serving.truth.hash_at(open.height) == Some(*block_hash)
        {
            self.serving.report.jobs_ready += 1;
            self.serving.job_latencies_ms.push(now_ms - open.issued_ms);
        } else {
            self.log.violate(
                now_ms,
                Invariant::JobOnTrueBlock,
                format!(
                    "job {job} at host {host} ran on a block that is not the true block {} ({:?})",
                    open.height,
                    txids.map(|t| t.len())
                ),
            );
        }
    }

    /// The members `host`'s node lists in its view (empty if it is not a member).
    fn view_of(&self, host: HostIdx) -> Vec<NodeId> {
        self.hosts[host as usize]
            .node()
            .and_then(|n| n.cluster())
            .map(|(_, _, members)| members)
            .unwrap_or_default()
    }

    /// Live honest members of `cluster` whose store holds the block at `height`.
    fn honest_holders(&self, cluster: ClusterIdx, height: u32) -> Vec<(HostIdx, u32)> {
        let Some(hash) = self.serving.truth.hash_at(height) else {
            return Vec::new();
        };
        self.online_light
            .iter()
            .copied()
            .filter(|h| {
                let host = &self.hosts[*h as usize];
                host.cluster == Some(cluster)
                    && self.serving.adversaries[*h as usize].is_none()
                    && matches!(host.store.get(&hash), Some(Stored::Block(x)) if *x == height)
            })
            .map(|h| (h, self.hosts[h as usize].incarnation))
            .collect()
    }

    /// Starts an attempt of `query` at member `asker`.
    fn start_attempt(&mut self, query: u64, asker: HostIdx) -> Result<(), WorldError> {
        let now_ms = self.queue.now_ms();
        let corrupt_reads = self.counters.corrupt_reads;
        let (txid, height, cluster) = {
            let q = &self.serving.open[&query];
            (q.txid, q.height, q.cluster)
        };
        let honest = height.map_or(Vec::new(), |h| self.honest_holders(cluster, h));
        let asker_incarnation = self.hosts[asker as usize].incarnation;
        let view_at_issue = self.view_of(asker);
        let q = self.serving.open.get_mut(&query).expect("open");
        q.view_at_issue = view_at_issue;
        q.attempt += 1;
        q.asker = asker;
        q.asker_incarnation = asker_incarnation;
        q.disturbed = false;
        q.forwarded = false;
        q.corrupt_reads_at_issue = corrupt_reads;
        q.honest_holders = honest;
        let attempt = q.attempt;
        self.serving.by_asker.insert((asker, txid), query);
        let expiry_ms;
        if let Some(outsider) = q.outsider.as_mut() {
            outsider.tried.push(asker);
            let location = outsider.location;
            // The client sends in the name of the node it sits at (online: an attempt starts
            // only at a current location): its request id comes from that node's allocator,
            // so no request of the node carries it.
            let request_id = self.hosts[location as usize]
                .node_mut()
                .expect("an outsider's location is online")
                .request_id();
            outsider.request_id = request_id;
            q.hops += 1;
            q.messages += 1;
            self.serving
                .outsider_requests
                .insert((location, request_id), query);
            expiry_ms = OUTSIDER_TIMEOUT_MS;
            let to = self.hosts[asker as usize].id;
            self.send(
                location,
                to,
                Message::TxQuery {
                    request_id,
                    txid: Hash256(txid.0),
                    block_hint: None,
                },
            )?;
        } else {
            expiry_ms = MEMBER_QUERY_EXPIRY_MS;
            let hint = match height {
                Some(h) if self.serving.rng.chance(self.serving.config.hint_fraction) => {
                    self.serving.truth.hash_at(h)
                }
                _ => None,
            };
            if let Some(q) = self.serving.open.get_mut(&query) {
                q.hinted = hint.is_some();
            }
            self.feed(
                asker,
                Input::TxQuery {
                    query_id: query,
                    txid,
                    block_hint: hint,
                },
            )?;
        }
        if self.serving.open.contains_key(&query) {
            self.queue.schedule(
                now_ms + expiry_ms,
                SimEvent::Serving(ServingEvent::Expire { query, attempt }),
            )?;
        }
        Ok(())
    }

    /// Forgets the bookkeeping of `query`'s current attempt.
    fn close_attempt(&mut self, query: u64) {
        let Some(q) = self.serving.open.get_mut(&query) else {
            return;
        };
        self.serving.by_asker.remove(&(q.asker, q.txid));
        for key in q.ask_keys.drain(..) {
            self.serving.asks.remove(&key);
        }
        if let Some(outsider) = &q.outsider {
            self.serving
                .outsider_requests
                .remove(&(outsider.location, outsider.request_id));
        }
    }

    fn close(&mut self, query: u64) -> Option<OpenQuery> {
        self.close_attempt(query);
        self.serving.open.remove(&query)
    }

    /// An attempt ended with `outcome`: judge it, then retry (outsiders) or finish.
    fn end_attempt(&mut self, query: u64, outcome: Outcome) -> Result<(), WorldError> {
        self.judge_attempt(query, outcome);
        self.close_attempt(query);
        let q = &self.serving.open[&query];
        let retry = match (&q.outsider, outcome) {
            (Some(outsider), Outcome::Unavailable)
                if q.attempt < OUTSIDER_ATTEMPTS
                    && self.is_current(outsider.location, outsider.location_incarnation) =>
            {
                let mut others: Vec<HostIdx> = self
                    .members_by_cluster()
                    .remove(&q.cluster)
                    .unwrap_or_default();
                others.retain(|m| !outsider.tried.contains(m));
                (!others.is_empty())
                    .then(|| others[self.serving.rng.below(others.len() as u64) as usize])
            }
            _ => None,
        };
        match retry {
            Some(next) => self.start_attempt(query, next),
            None => {
                let q = self.close(query).expect("open");
                let now_ms = self.queue.now_ms();
                let report = &mut self.serving.report;
                match outcome {
                    Outcome::Verified => {
                        report.queries_verified += 1;
                        self.serving.latencies_ms.push(now_ms - q.first_issued_ms);
                    }
                    Outcome::NotFound => report.queries_not_found += 1,
                    Outcome::Unavailable => report.queries_unavailable += 1,
                }
                self.serving.hops.push(q.hops + u64::from(q.forwarded));
                self.serving.messages.push(q.messages);
                Ok(())
            }
        }
    }

    /// Judges one attempt (see the module docs).
    fn judge_attempt(&mut self, query: u64, outcome: Outcome) {
        let now_ms = self.queue.now_ms();
        let q = &self.serving.open[&query];
        let Some(height) = q.height else {
            return;
        };
        if q.honest_holders.is_empty() {
            if outcome != Outcome::Verified {
                *self
                    .serving
                    .report
                    .query_failures_excused
                    .entry("no_live_honest_holder")
                    .or_default() += 1;
            }
            return;
        }
        self.serving.report.query_attempts_with_honest_holder += 1;
        self.log.checked(Invariant::QueryAnswered, 1);
        if outcome == Outcome::Verified {
            return;
        }
        let still: Vec<(HostIdx, u32)> = self
            .honest_holders(q.cluster, height)
            .into_iter()
            .filter(|h| q.honest_holders.contains(h))
            .collect();
        let view = self.view_of(q.asker);
        let reason = if self.serving.adversaries[q.asker as usize].is_some() {
            Some("asked_an_adversary")
        } else if q
            .outsider
            .as_ref()
            .is_some_and(|o| view.contains(&self.hosts[o.location as usize].id))
        {
            // The member takes the outsider for a fellow member (stale view) and answers
            // from its own shard only.
            Some("outsider_listed_as_member")
        } else if q
            .outsider
            .as_ref()
            .is_some_and(|o| !self.is_current(o.location, o.location_incarnation))
        {
            Some("outsider_left")
        } else if !self.is_current(q.asker, q.asker_incarnation)
            || self.hosts[q.asker as usize].cluster != Some(q.cluster)
        {
            Some("asker_left")
        } else if still.is_empty() {
            Some("holders_left")
        } else if q.disturbed {
            Some("message_lost")
        } else if self.counters.corrupt_reads != q.corrupt_reads_at_issue {
            Some("corrupt_read")
        } else if [&view, &q.view_at_issue].iter().any(|view| {
            !still
                .iter()
                .any(|(h, _)| view.contains(&self.hosts[*h as usize].id))
        }) {
            // When the query started or when it ended, the asker's view listed none of the
            // holders (it had just merged, or not yet learned of a newcomer).
            Some("view_lag")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                *self
                    .serving
                    .report
                    .query_failures_excused
                    .entry(reason)
                    .or_default() += 1;
            }
            None => {
                self.serving.report.query_failures_unexcused += 1;
                let detail = format!(
                    "query {query} (attempt {}, {}) for a transaction of block {height} ended {outcome:?} at member host {} although honest members {:?} of its cluster held the block throughout (it asked hosts {:?}; its view: hosts {:?})",
                    q.attempt,
                    if q.outsider.is_some() { "outsider" } else { "member" },
                    q.asker,
                    still.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
                    q.ask_keys.iter().map(|(_, to, _)| *to).collect::<Vec<_>>(),
                    view.iter().filter_map(|id| self.by_id.get(id)).collect::<Vec<_>>()
                );
                if self.trace.state {
                    if let Some(node) = self.hosts[q.asker as usize].node() {
                        eprintln!(
                            "  asker host {}: {}; {:?}",
                            q.asker,
                            node.repair_summary(),
                            node.stats()
                        );
                    }
                }
                self.log.violate(now_ms, Invariant::QueryAnswered, detail);
            }
        }
    }

    /// Checks a proof an honest node accepted against the true chain.
    fn check_accepted(&mut self, txid: &Txid, proof: &MerkleProof, who: HostIdx) -> bool {
        self.log.checked(Invariant::NoForgedAnswerAccepted, 1);
        if self.serving.truth.proof_holds(txid, proof, self.published) {
            return true;
        }
        self.serving.report.forged_answers_accepted += 1;
        let now_ms = self.queue.now_ms();
        self.log.violate(
            now_ms,
            Invariant::NoForgedAnswerAccepted,
            format!(
                "host {who} accepted a proof that {txid:?} is in block {} at position {}, which the true chain does not show",
                proof.height, proof.pos
            ),
        );
        false
    }

    /// An outgoing message of `host`: an adversary rewrites it (`None`: dropped); a query's
    /// forwards are counted.
    pub(super) fn serving_outgoing(
        &mut self,
        host: HostIdx,
        to: &NodeId,
        message: Message,
    ) -> Option<Message> {
        let message = match self.serving.adversaries[host as usize] {
            Some(adversary) => {
                let kind = message.kind();
                let (message, what) = adversary.rewrite(
                    message,
                    &self.serving.truth,
                    self.published,
                    &mut self.serving.rng,
                );
                let report = &mut self.serving.report;
                if self.hosts[host as usize].archive
                    && matches!(kind, "block_data" | "block_not_found")
                {
                    report.silent_archive_fetches += 1;
                }
                match what {
                    Rewrite::Untouched => {}
                    Rewrite::Forged => report.adversary_forged += 1,
                    Rewrite::Corrupted => report.adversary_corrupted += 1,
                    Rewrite::Dropped => report.adversary_dropped += 1,
                }
                message?
            }
            None => message,
        };
        if let Message::TxQuery {
            request_id, txid, ..
        } = &message
        {
            if let Some(query) = self.serving.by_asker.get(&(host, Txid(txid.0))).copied() {
                if let (Some(q), Some(target)) =
                    (self.serving.open.get_mut(&query), self.by_id.get(to))
                {
                    if q.outsider.as_ref().is_none_or(|o| o.location != host) {
                        q.messages += 1;
                        q.forwarded = true;
                        let key = (host, *target, *request_id);
                        q.ask_keys.push(key);
                        self.serving.asks.insert(key, query);
                    }
                }
            }
        }
        Some(message)
    }

    /// A message from `host` to `to` never arrives: the query it belongs to is disturbed.
    pub(super) fn serving_dropped(&mut self, host: HostIdx, to: &NodeId, message: &Message) {
        let query = match message {
            Message::TxQuery {
                request_id, txid, ..
            } => self
                .serving
                .outsider_requests
                .get(&(host, *request_id))
                .or_else(|| self.serving.by_asker.get(&(host, Txid(txid.0)))),
            Message::TxAnswer { request_id, .. } => self.by_id.get(to).and_then(|target| {
                self.serving
                    .outsider_requests
                    .get(&(*target, *request_id))
                    .or_else(|| self.serving.asks.get(&(*target, host, *request_id)))
            }),
            _ => None,
        };
        if let Some(q) = query.copied().and_then(|q| self.serving.open.get_mut(&q)) {
            q.disturbed = true;
        }
    }

    /// A message arrives at `to`: an answer to an outsider client sitting there is the
    /// client's, not the node's (`None`: consumed).
    pub(super) fn serving_intercept(
        &mut self,
        to: HostIdx,
        from: NodeId,
        message: Message,
    ) -> Result<Option<Message>, WorldError> {
        let Message::TxAnswer { request_id, answer } = &message else {
            return Ok(Some(message));
        };
        let Some(query) = self
            .serving
            .outsider_requests
            .get(&(to, *request_id))
            .copied()
        else {
            return Ok(Some(message));
        };
        let q = &self.serving.open[&query];
        if self.by_id.get(&from) != Some(&q.asker) {
            return Ok(Some(message));
        }
        let (asker, txid) = (q.asker, q.txid);
        let outcome = if let Some((proof, tx)) = answer.clone().into_proof() {
            if self.serving.adversaries[asker as usize].is_some() {
                if self
                    .serving
                    .truth
                    .proof_holds(&txid, &proof, self.published)
                {
                    Outcome::Verified
                } else {
                    self.serving.report.forged_answers_refused += 1;
                    Outcome::Unavailable
                }
            } else if self.check_accepted(&txid, &proof, asker)
                && check_transaction(&tx, &txid).is_ok()
            {
                Outcome::Verified
            } else {
                Outcome::Unavailable
            }
        } else if *answer == TxAnswerBody::NotFound {
            Outcome::NotFound
        } else {
            Outcome::Unavailable
        };
        self.end_attempt(query, outcome)?;
        Ok(None)
    }

    /// An event of the node on `host` that serving cares about.
    pub(super) fn serving_event(&mut self, host: HostIdx, event: &Event) -> Result<(), WorldError> {
        match event {
            Event::TxQueryDone {
                query_id,
                txid,
                result,
                ..
            } => {
                let Some(q) = self.serving.open.get(query_id) else {
                    return Ok(());
                };
                if q.asker != host || q.outsider.is_some() {
                    return Ok(());
                }
                let outcome = match result {
                    QueryResult::Confirmed { transaction, .. } => {
                        let proof = result.proof().expect("confirmed has a proof");
                        if self.check_accepted(txid, &proof, host)
                            && check_transaction(transaction, txid).is_ok()
                        {
                            Outcome::Verified
                        } else {
                            Outcome::Unavailable
                        }
                    }
                    QueryResult::NotFound => Outcome::NotFound,
                    // No verified answer: none came, one was forged (scored apart), or one was
                    // above the asker's header tip.
                    QueryResult::NotSynced
                    | QueryResult::InvalidProof
                    | QueryResult::Unavailable => Outcome::Unavailable,
                };
                self.end_attempt(*query_id, outcome)?;
            }
            Event::JobReady { job, block_hash } => self.job_ready(host, *job, block_hash),
            Event::JobFailed { job, .. } if self.serving.jobs.remove(job).is_some() => {
                self.serving.report.jobs_failed += 1;
            }
            Event::PeerMisbehaved { .. } => self.serving.report.misbehaviour_reports += 1,
            Event::HolderFaulty {
                member,
                by_us: true,
            } => {
                if self.serving.hollow_ids.contains(member) {
                    self.serving.report.hollow_found += 1;
                } else {
                    self.serving.report.honest_found_faulty += 1;
                }
            }
            Event::BlockSafelyStored { .. } => {
                self.serving.report.new_block_safely_stored_events += 1
            }
            Event::BlockUnderreplicated { .. } => {
                self.serving.report.new_block_underreplicated_events += 1
            }
            _ => {}
        }
        Ok(())
    }

    /// Which hosts the block source hands a new block to: archives always; per cluster one
    /// random online member (routed) or every online light node (self-selected).
    pub(super) fn serving_block_recipients(&mut self) -> Vec<bool> {
        let mut receives: Vec<bool> = self.hosts.iter().map(|h| h.archive).collect();
        match self.serving.mode() {
            NewBlocksMode::SelfSelected => {
                for host in &self.online_light {
                    receives[*host as usize] = true;
                }
            }
            NewBlocksMode::Routed => {
                for members in self.members_by_cluster().values() {
                    let pick = members[self.serving.rng.below(members.len() as u64) as usize];
                    receives[pick as usize] = true;
                }
            }
        }
        receives
    }

    /// Whenever clusters are held to exactly P at their repair deadline: every new block
    /// (mined during the run) of `..published` is on P live holders in each of them
    /// ([`Invariant::NewBlockReachesP`]). A run in which no cluster was checked with a new
    /// block reports the invariant as never evaluated.
    pub(super) fn serving_check_new_blocks(&mut self, clusters: &[ClusterIdx], published: u32) {
        let now_ms = self.queue.now_ms();
        let first_new = self.config.initial_blocks.clamp(1, self.config.blocks);
        if published <= first_new || clusters.is_empty() {
            return;
        }
        let replicas = self.config.replicas as u32;
        // A cluster with fewer live members than P cannot hold P copies of anything.
        let clusters: Vec<ClusterIdx> = clusters
            .iter()
            .copied()
            .filter(|c| self.replicas.live_members(*c) >= replicas as usize)
            .collect();
        for cluster in &clusters {
            let below: Vec<(u32, u32)> = (first_new..published)
                .map(|h| (h, self.replicas.live(*cluster, h)))
                .filter(|(_, live)| *live < replicas)
                .collect();
            self.log.checked(
                Invariant::NewBlockReachesP,
                u64::from(published - first_new),
            );
            self.serving.report.new_blocks_under_replicated += below.len() as u64;
            if let Some((height, live)) = below.first() {
                let detail = format!(
                    "at the repair deadline cluster #{cluster} has {} new blocks below {replicas} live holders (block {height}: {live})",
                    below.len()
                );
                self.log
                    .violate(now_ms, Invariant::NewBlockReachesP, detail);
            }
        }
    }

    /// The serving figures, at the end of the run.
    pub(super) fn serving_report(&mut self) -> ServingReport {
        let mut report = self.serving.report.clone();
        report.new_blocks = self
            .published
            .saturating_sub(self.config.initial_blocks.clamp(1, self.config.blocks));
        report.query_hops_p50 = quantile(&self.serving.hops, 0.5);
        report.query_hops_p99 = quantile(&self.serving.hops, 0.99);
        report.query_messages_p50 = quantile(&self.serving.messages, 0.5);
        report.query_messages_p99 = quantile(&self.serving.messages, 0.99);
        report.query_latency_p50_ms = quantile(&self.serving.latencies_ms, 0.5);
        report.query_latency_p99_ms = quantile(&self.serving.latencies_ms, 0.99);
        report.job_latency_p50_ms = quantile(&self.serving.job_latencies_ms, 0.5);
        report.job_latency_p99_ms = quantile(&self.serving.job_latencies_ms, 0.99);
        if report.jobs_ready == 0 {
            self.log
                .not_checkable(Invariant::JobOnTrueBlock, "no job's block became ready");
        }
        if report.query_attempts_with_honest_holder == 0 {
            self.log.not_checkable(
                Invariant::QueryAnswered,
                "no query attempt had a live honest holder",
            );
        }
        report
    }
}
