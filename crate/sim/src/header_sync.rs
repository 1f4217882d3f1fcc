//! Header sync in virtual time: one node's [`HeaderSync`] (the core's `chain::sync`) against
//! several sources over the seeded [`Network`], some of them silent or lying.
//!
//! Host 0 is the syncing node, hosts `1..=n` its sources. Every request and every answer is a
//! message the network delays (latency per link, jitter, bandwidth: a 2,000-header answer is
//! 160 KB) or loses; a lost message is silence the sync must notice. A source's transport may
//! also reset a request (reported to the sync as [`RequestFailure::Transport`], as libp2p's
//! outbound failures are in the page). The honest chain grows by a block every
//! [`SyncWorldConfig::new_block_interval_ms`] for [`SyncWorldConfig::new_blocks`] blocks, so the
//! run also follows new headers once synced. Each source plays a [`Role`]:
//!
//! - [`Role::Honest`] serves the honest chain by height, as far as it has grown;
//! - [`Role::Silent`] never answers;
//! - [`Role::InvalidHeader`] serves the honest chain with the middle header of every answer
//!   spoilt (its `nBits` changed);
//! - [`Role::CheaperFork`] serves a fork with less work than the honest chain;
//! - [`Role::ClaimsMore`] serves the honest chain but claims a tip far above it.
//!
//! A run is a pure function of its configuration and seed ([`SyncWorldConfig::seed`]); the
//! sync's clock is the virtual clock plus [`EPOCH_MS`] (the chain bounds header times by it).

use shoal_core::chain::generate::{generate_chain, GenerateConfig, Generator};
use shoal_core::chain::sync::{
    Demotion, HeaderSync, HeaderSyncStats, HeadersRequest, RequestFailure, RequestId, SyncConfig,
    SyncEvent,
};
use shoal_core::chain::{Block, BlockHash, ChainParams, Header, HeaderChain};
use shoal_core::wire::Message;

use crate::network::{Delivery, HostIdx, Network, NetworkConfig};
use crate::queue::EventQueue;
use crate::rng::{mix, SimRng};

/// The sync's clock at virtual time zero: 2033, after every generated header's time.
pub const EPOCH_MS: u64 = 2_000_000_000_000;

/// The network stream of a run (see [`crate::rng`]).
const NETWORK_STREAM: u64 = 0x4844_5253_594e_4300;
/// The transport-reset stream.
const RESET_STREAM: u64 = 0x4844_5253_5253_5400;
/// Bytes of a `GetHeaders` and of a `Headers` answer besides its headers.
const REQUEST_BYTES: usize = 16;
const ANSWER_OVERHEAD_BYTES: usize = 16;
/// Most events pending at once.
const QUEUE_CAPACITY: usize = 100_000;

/// What a source does with the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves the honest chain.
    Honest,
    /// Never answers.
    Silent,
    /// Serves the honest chain with the middle header of every answer made invalid.
    InvalidHeader,
    /// Serves [`SyncChains::cheaper_fork`].
    CheaperFork,
    /// Serves the honest chain but claims a tip 100,000 blocks higher.
    ClaimsMore,
}

/// The chains sources serve; made once and shared by runs (generating is the slow part).
#[derive(Debug, Clone)]
pub struct SyncChains {
    /// The honest chain, blocks still to come included: `honest[i]` at height `i + 1`.
    pub honest: Vec<Header>,
    /// How much of it there is when a run starts.
    pub initial_len: u32,
    /// A fork of the initial honest chain with less work.
    pub cheaper_fork: Vec<Header>,
}

impl SyncChains {
    /// An honest chain of `len` regtest blocks from the core's generator and `to_come` more,
    /// and a fork of it that leaves it `fork_depth` blocks below `len` and ends
    /// `fork_depth / 2` blocks lower.
    pub fn generate(len: u32, to_come: u32, fork_depth: u32, seed: u64) -> Self {
        assert!(
            fork_depth >= 2 && fork_depth < len,
            "the fork must leave the chain"
        );
        let config = |seed| GenerateConfig {
            blocks: len + to_come,
            txs_per_block: 0,
            seed,
            ..GenerateConfig::default()
        };
        let honest: Vec<Block> = generate_chain(&config(seed)).expect("the generator works");
        let keep = (len - fork_depth) as usize;
        let fork_config = config(mix(&[seed, 1]));
        let mut generator =
            Generator::resume(&fork_config, &honest[..keep]).expect("the generator resumes");
        let mut cheaper_fork: Vec<Header> = honest[..keep].iter().map(|b| b.header).collect();
        for height in keep as u32 + 1..=len - fork_depth / 2 {
            let time = fork_config.block_time(height).expect("times fit");
            cheaper_fork.push(
                generator
                    .next_block(time)
                    .expect("the generator works")
                    .header,
            );
        }
        Self {
            honest: honest.iter().map(|b| b.header).collect(),
            initial_len: len,
            cheaper_fork,
        }
    }

    /// Whether `chain`'s tip is on the honest chain at `height` or above.
    fn at_honest_tip(&self, chain: &HeaderChain, height: u32) -> bool {
        let tip = chain.tip_height();
        tip >= height
            && tip as usize <= self.honest.len()
            && self.honest[tip as usize - 1].block_hash() == chain.tip_hash()
    }
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct SyncWorldConfig {
    /// Every random choice of the run comes from it.
    pub seed: u64,
    /// The sources, with the most requests each may have unanswered.
    pub sources: Vec<(Role, usize)>,
    /// Latency, jitter, bandwidth and loss (partitions are not used here).
    pub network: NetworkConfig,
    /// Probability that a source's transport resets a request instead of answering it.
    pub reset_rate: f64,
    /// How often the honest chain grows by a block.
    pub new_block_interval_ms: u64,
    /// How many blocks it grows by (at most the chains' blocks to come).
    pub new_blocks: u32,
    /// The sync's configuration.
    pub sync: SyncConfig,
    /// How long the run lasts, in virtual milliseconds.
    pub duration_ms: u64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// When (virtual milliseconds) the sync was first synced on the honest chain, at its
    /// initial tip or above.
    pub synced_at_ms: Option<u64>,
    /// Whether it was synced at the honest chain's last tip at the end.
    pub synced_at_end: bool,
    /// The tip at the end.
    pub tip_height: u32,
    /// The tip's hash at the end.
    pub tip_hash: BlockHash,
    /// Every demotion: source index and why.
    pub demotions: Vec<(usize, Demotion)>,
    /// The sync's counters.
    pub stats: HeaderSyncStats,
    /// Messages the network lost.
    pub messages_lost: u64,
    /// Requests the transports reset.
    pub resets: u64,
    /// A digest of every request (when, to whom, from which height): equal runs, equal
    /// digests.
    pub trace_digest: u64,
}

#[derive(Debug)]
enum Event {
    /// A request reaches a source.
    Request(HeadersRequest<usize>),
    /// An answer reaches the node.
    Answer(RequestId, Message),
    /// A source's transport reset the request.
    Reset(RequestId),
    /// The sync's deadline.
    Timer,
}

/// Runs one world to its end.
pub fn run(config: &SyncWorldConfig, chains: &SyncChains) -> SyncReport {
    let mut world = SyncWorld {
        config,
        chains,
        sync: HeaderSync::new(config.sync.clone()).expect("a valid sync configuration"),
        chain: HeaderChain::new(ChainParams::REGTEST),
        network: Network::new(config.network.clone(), config.seed, NETWORK_STREAM),
        resets_rng: SimRng::stream(config.seed, RESET_STREAM),
        queue: EventQueue::new(QUEUE_CAPACITY),
        timer_at_ms: None,
        report: SyncReport {
            synced_at_ms: None,
            synced_at_end: false,
            tip_height: 0,
            tip_hash: ChainParams::REGTEST.genesis_hash(),
            demotions: Vec::new(),
            stats: HeaderSyncStats::default(),
            messages_lost: 0,
            resets: 0,
            trace_digest: 0,
        },
    };
    for (index, (_, window)) in config.sources.iter().enumerate() {
        world
            .sync
            .handle_source_added(EPOCH_MS, index, *window)
            .expect("room for every source");
    }
    world.pump();
    while let Some((now_ms, event)) = world.queue.pop() {
        if now_ms > config.duration_ms {
            break;
        }
        world.step(now_ms, event);
        world.pump();
    }
    let last = world.visible_len(config.duration_ms);
    world.report.synced_at_end = world.sync.is_synced() && chains.at_honest_tip(&world.chain, last);
    world.report.tip_height = world.chain.tip_height();
    world.report.tip_hash = world.chain.tip_hash();
    world.report.stats = world.sync.stats();
    world.report
}

struct SyncWorld<'a> {
    config: &'a SyncWorldConfig,
    chains: &'a SyncChains,
    sync: HeaderSync<usize>,
    chain: HeaderChain,
    network: Network,
    resets_rng: SimRng,
    queue: EventQueue<Event>,
    /// The deadline a `Timer` event is queued for (earlier ones are stale).
    timer_at_ms: Option<u64>,
    report: SyncReport,
}

impl SyncWorld<'_> {
    fn now_ms(&self) -> u64 {
        self.queue.now_ms()
    }

    /// How many honest blocks there are at `now_ms`.
    fn visible_len(&self, now_ms: u64) -> u32 {
        let grown = now_ms
            .checked_div(self.config.new_block_interval_ms)
            .unwrap_or(0)
            .min(u64::from(self.config.new_blocks)) as u32;
        (self.chains.initial_len + grown).min(self.chains.honest.len() as u32)
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        self.queue
            .schedule(at_ms, event)
            .expect("the event queue has room");
    }

    fn step(&mut self, now_ms: u64, event: Event) {
        let clock_ms = EPOCH_MS + now_ms;
        match event {
            Event::Request(request) => self.serve(request),
            Event::Answer(id, message) => {
                self.sync
                    .handle_answer(clock_ms, &mut self.chain, id, message);
            }
            Event::Reset(id) => {
                self.sync
                    .handle_failure(clock_ms, &self.chain, id, RequestFailure::Transport);
            }
            Event::Timer => {
                // A timer queued for a deadline that has moved since is stale.
                if self.timer_at_ms.is_some_and(|at_ms| at_ms <= clock_ms) {
                    self.timer_at_ms = None;
                    self.sync.handle_timeout(clock_ms, &self.chain);
                }
            }
        }
    }

    /// Sends the sync's requests, takes its events, and queues its next deadline.
    fn pump(&mut self) {
        let now_ms = self.now_ms();
        while let Some(request) = self.sync.poll_request(&self.chain) {
            self.report.trace_digest = mix(&[
                self.report.trace_digest,
                now_ms,
                request.source as u64,
                u64::from(request.start_height),
            ]);
            let to = host_of(request.source);
            match self.network.transmit(now_ms, 0, to, REQUEST_BYTES) {
                Delivery::At(at_ms) => self.schedule(at_ms, Event::Request(request)),
                Delivery::Lost | Delivery::Partitioned => self.report.messages_lost += 1,
            }
        }
        while let Some(event) = self.sync.poll_event() {
            match event {
                SyncEvent::SourceDemoted { source, reason, .. } => {
                    self.report.demotions.push((source, reason));
                }
                SyncEvent::MinimumWorkReached { .. }
                | SyncEvent::HeadersChanged(_)
                | SyncEvent::Progress(_) => {}
            }
        }
        if self.report.synced_at_ms.is_none()
            && self.sync.is_synced()
            && self
                .chains
                .at_honest_tip(&self.chain, self.chains.initial_len)
        {
            self.report.synced_at_ms = Some(now_ms);
        }
        if let Some(at_ms) = self.sync.poll_timeout() {
            if self.timer_at_ms != Some(at_ms) {
                self.timer_at_ms = Some(at_ms);
                let virtual_ms = at_ms.saturating_sub(EPOCH_MS).max(now_ms);
                self.schedule(virtual_ms, Event::Timer);
            }
        }
    }

    /// A source answers a request, as its role says.
    fn serve(&mut self, request: HeadersRequest<usize>) {
        let now_ms = self.now_ms();
        let from = host_of(request.source);
        let role = self.config.sources[request.source].0;
        if role == Role::Silent {
            return;
        }
        if self.resets_rng.chance(self.config.reset_rate) {
            self.report.resets += 1;
            let at_ms = now_ms + self.network.base_latency_ms(from, 0);
            self.schedule(at_ms, Event::Reset(request.id));
            return;
        }
        let visible = self.visible_len(now_ms) as usize;
        let chain = match role {
            Role::CheaperFork => &self.chains.cheaper_fork[..],
            _ => &self.chains.honest[..visible],
        };
        let mut headers: Vec<Header> = chain
            .iter()
            .skip(request.start_height as usize - 1)
            .take(request.max_count as usize)
            .copied()
            .collect();
        let mut tip_height = chain.len() as u32;
        match role {
            Role::InvalidHeader => {
                let middle = headers.len() / 2;
                if let Some(header) = headers.get_mut(middle) {
                    header.bits ^= 1;
                }
            }
            Role::ClaimsMore => tip_height += 100_000,
            Role::Honest | Role::Silent | Role::CheaperFork => {}
        }
        let bytes = ANSWER_OVERHEAD_BYTES + 80 * headers.len();
        let answer = Message::Headers {
            request_id: request.id.0,
            start_height: request.start_height,
            tip_height,
            headers,
        };
        match self.network.transmit(now_ms, from, 0, bytes) {
            Delivery::At(at_ms) => self.schedule(at_ms, Event::Answer(request.id, answer)),
            Delivery::Lost | Delivery::Partitioned => self.report.messages_lost += 1,
        }
    }
}

/// The host of source `index` (host 0 is the syncing node).
fn host_of(index: usize) -> HostIdx {
    index as HostIdx + 1
}
