//! Header sync: which headers to ask which source for, and what to make of the answers.
//!
//! # Overview
//!
//! Every node keeps the whole header chain ([`HeaderChain`]) and trusts none of its sources
//! ("nothing is trusted", SPEC.md): blocks are stored (S14, S15) and proofs accepted (S16) only
//! against it, and the members' blocks together form it (S18). [`HeaderSync`] fills it from any
//! number of *sources* (the page's relays, a relay's peers) with `GetHeaders { start_height,
//! max_count }` requests by height ([`crate::wire::Message::GetHeaders`]). It is a sans-IO state
//! machine like the rest of the core: no clock (time comes in as `now_ms`, milliseconds since
//! the Unix epoch, which also bounds header times), no I/O, no randomness; the same inputs give
//! the same requests and events.
//!
//! - **Catching up**, it keeps a window of batches at consecutive heights from the tip up
//!   ([`SyncConfig::max_batches_ahead`], asked or answered and waiting), spread over the sources,
//!   each source with at most as many unanswered requests as the shell allowed when adding it
//!   (a WebRTC-direct relay 2, a WebSocket one 6 in the page). Answers are verified strictly in
//!   height order, as soon as the batch before has been.
//! - **Late answers**: the batch next to verify is asked again when its answer is
//!   [`SyncConfig::late_answer_ms`] late, each wait twice the one before (150, 300, 600 ms), on
//!   another source when there is one. Whichever answer comes first is used; the others are
//!   ignored, and a source outrun that way counts one failure.
//! - **Synced** once the tip reaches the best height a source claims (every `Headers` answer
//!   carries its sender's tip height); from then on every source is polled every
//!   [`SyncConfig::resync_interval_ms`] for headers above the tip.
//! - **Announcements**: a source that is a block source announces each new block by its
//!   header ([`HeaderSync::handle_announcement`]); once synced, one that extends the tip is
//!   verified and accepted at once, one that does not makes that source due for a poll at
//!   once. New blocks then reach the chain in one message, not at the next poll.
//! - **Forks**: a source whose headers do not connect to the tip has another chain; it is asked
//!   from lower heights (16, 64, 256, … deeper, up to [`SyncConfig::max_fork_depth`]) until they
//!   connect, then along its branch until the branch has more work (the best chain switches: a
//!   reorganisation) or ends with less (a cheaper fork).
//! - **Minimum work**: until the best chain's total work reaches the network's minimum
//!   ([`HeaderChain::has_minimum_work`], Core's `nMinimumChainWork`), its headers are verified
//!   as any but trusted for nothing: no [`SyncEvent::HeadersChanged`] is reported (the shell
//!   persists nothing), the sync is not synced (the shell hands the chain to no one who places,
//!   stores or serves blocks or answers queries). Reaching it is reported once
//!   ([`SyncEvent::MinimumWorkReached`]: persist the whole chain), and every change after as
//!   usual. A source whose chain ends on the best chain below the minimum (it claims no
//!   header above its last one) is demoted ([`Demotion::BelowMinimumWork`]); once no source in
//!   standing claims a tip above that chain's, the chain is dropped
//!   ([`HeaderChain::reset_to_genesis`]) and synced from genesis again from whoever has more.
//!   A cheap chain from genesis thus costs a page a download, never its trust.
//! - **Lies and stalls**: a source that sends an invalid header, headers out of order or for
//!   heights not asked, something that is not a headers answer, fewer headers than asked while
//!   claiming a higher tip, a branch that connects nowhere or ends with less work than the best
//!   chain or than the minimum, or that fails [`SyncConfig::max_failures_in_a_row`] requests in a row (failures
//!   and timeouts), is *demoted*: not asked for [`SyncConfig::demotion_ms`] (doubling with each
//!   demotion, up to [`SyncConfig::max_demotion_ms`]), then only while no source in good
//!   standing can take its requests, until it answers well again.
//!
//! Everything is bounded: sources ([`SyncConfig::max_sources`]), unanswered requests per source
//! ([`SyncConfig::max_unanswered_per_source`]), batches ahead, re-asks, the depth of a fork
//! search, and the side branches the chain keeps (`HeaderChainConfig::max_side_headers`).
//!
//! # Usage
//!
//! The shell adds sources ([`HeaderSync::handle_source_added`]) and feeds every answer
//! ([`HeaderSync::handle_answer`]) and failure ([`HeaderSync::handle_failure`]) back with its
//! [`RequestId`], and calls [`HeaderSync::handle_timeout`] when [`HeaderSync::poll_timeout`] is
//! due. After each input it drains [`HeaderSync::poll_request`] (requests to send) and
//! [`HeaderSync::poll_event`] (the best chain reached the minimum work or changed: persist it;
//! progress; a source demoted).
//!
//! ```
//! use shoal_core::chain::generate::{generate_chain, GenerateConfig};
//! use shoal_core::chain::sync::{HeaderSync, SyncConfig, SyncEvent};
//! use shoal_core::chain::{ChainParams, HeaderChain};
//! use shoal_core::wire::Message;
//!
//! // A relay's chain: 5 blocks after genesis.
//! let blocks = generate_chain(&GenerateConfig { blocks: 5, txs_per_block: 0, ..Default::default() }).unwrap();
//! let relay_headers: Vec<_> = blocks.iter().map(|b| b.header).collect();
//!
//! let now_ms = 2_000_000_000_000; // milliseconds since the Unix epoch
//! let mut chain = HeaderChain::new(ChainParams::REGTEST);
//! let mut sync = HeaderSync::new(SyncConfig::default()).unwrap();
//! sync.handle_source_added(now_ms, "relay", 2).unwrap();
//! while let Some(request) = sync.poll_request(&chain) {
//!     // Send `request.message()` to `request.source`; here the relay answers at once.
//!     let from = request.start_height as usize - 1;
//!     let headers: Vec<_> = relay_headers.iter().skip(from).take(request.max_count as usize).copied().collect();
//!     let answer = Message::Headers { request_id: request.id.0, start_height: request.start_height, tip_height: 5, headers };
//!     sync.handle_answer(now_ms + 5, &mut chain, request.id, answer);
//! }
//! let mut changed = Vec::new();
//! while let Some(event) = sync.poll_event() {
//!     if let SyncEvent::HeadersChanged(change) = event {
//!         changed.extend(change.connected); // write these heights to the store
//!     }
//! }
//! assert_eq!(changed.len(), 5);
//! assert!(sync.is_synced());
//! assert_eq!(chain.tip_hash(), blocks[4].block_hash());
//! // Synced: the next poll for new headers is due in 5 s.
//! assert_eq!(sync.poll_timeout(), Some(now_ms + 5 + 5_000));
//! ```

mod source;

use std::collections::VecDeque;
use std::fmt::Debug;

use super::hash::BlockHash;
use super::header::Header;
use super::headers::{BatchOutcome, HeaderChain, HeaderError};
use crate::wire::{Message, MAX_HEADERS_PER_MESSAGE};

use source::{Source, Standing, Track};

/// How a sync paces itself and bounds its state. Every field has a default
/// ([`SyncConfig::default`]); the timings are the ones measured in the browser (BENCHMARKS.md,
/// issue 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Headers asked for per request, at most [`MAX_HEADERS_PER_MESSAGE`]; an answer with
    /// this many means more follow.
    pub headers_per_request: u32,
    /// While catching up, most batches at consecutive heights asked or answered and waiting
    /// to be verified.
    pub max_batches_ahead: usize,
    /// The batch next to verify is asked again when its answer has not come this long after
    /// its latest ask.
    pub late_answer_ms: u64,
    /// How often one batch is asked again, each time after twice the previous wait.
    pub max_reasks: u32,
    /// Once synced, every source is asked for new headers this often.
    pub resync_interval_ms: u64,
    /// A request without an answer after this long has failed.
    pub request_timeout_ms: u64,
    /// A source whose requests fail (or time out, or are outrun by a re-ask elsewhere) this
    /// many times in a row is demoted.
    pub max_failures_in_a_row: u32,
    /// How long a source is not asked after its first demotion; each further demotion
    /// doubles it.
    pub demotion_ms: u64,
    /// The longest a demotion lasts.
    pub max_demotion_ms: u64,
    /// Most sources at once.
    pub max_sources: usize,
    /// The most unanswered requests a source may be given, whatever the shell asks for.
    pub max_unanswered_per_source: usize,
    /// How far below the height where a source's headers stopped connecting its chain is
    /// looked for (a deeper fork is a lie). `HeaderChainConfig::max_side_headers` bounds the
    /// reorganisations the chain can follow anyway.
    pub max_fork_depth: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            headers_per_request: MAX_HEADERS_PER_MESSAGE as u32,
            max_batches_ahead: 6,
            late_answer_ms: 150,
            max_reasks: 3,
            resync_interval_ms: 5_000,
            request_timeout_ms: 10_000,
            max_failures_in_a_row: 3,
            demotion_ms: 1_000,
            max_demotion_ms: 60_000,
            max_sources: 16,
            max_unanswered_per_source: 16,
            max_fork_depth: 1_024,
        }
    }
}

impl SyncConfig {
    /// Checks that every bound can be met.
    pub fn validate(&self) -> Result<(), SyncError> {
        let bad = |what| Err(SyncError::BadConfig(what));
        if self.headers_per_request == 0
            || self.headers_per_request as usize > MAX_HEADERS_PER_MESSAGE
        {
            return bad("headers_per_request must be 1 to MAX_HEADERS_PER_MESSAGE");
        }
        if self.max_batches_ahead == 0 {
            return bad("max_batches_ahead must be at least 1");
        }
        if self.max_sources == 0 || self.max_unanswered_per_source == 0 {
            return bad("max_sources and max_unanswered_per_source must be at least 1");
        }
        if self.max_failures_in_a_row == 0 {
            return bad("max_failures_in_a_row must be at least 1");
        }
        if self.request_timeout_ms == 0 || self.resync_interval_ms == 0 {
            return bad("request_timeout_ms and resync_interval_ms must be positive");
        }
        Ok(())
    }
}

/// What went wrong with the sync's configuration or a source the shell added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A configuration field is out of range.
    #[error("bad header sync configuration: {0}")]
    BadConfig(&'static str),
    /// [`SyncConfig::max_sources`] sources are already there.
    #[error("the header sync already has its {limit} sources")]
    TooManySources {
        /// The configured limit.
        limit: usize,
    },
    /// The source was added before (and not removed since).
    #[error("the source was already added")]
    AlreadyAdded,
}

/// A request's id: it goes out in the `GetHeaders` message and comes back with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A `GetHeaders` request for the shell to send to `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersRequest<S> {
    /// Comes back with the answer ([`HeaderSync::handle_answer`]) or the failure.
    pub id: RequestId,
    /// Whom to ask.
    pub source: S,
    /// The height of the first header asked for.
    pub start_height: u32,
    /// How many headers at most.
    pub max_count: u32,
}

impl<S> HeadersRequest<S> {
    /// The message to send.
    pub fn message(&self) -> Message {
        Message::GetHeaders {
            request_id: self.id.0,
            start_height: self.start_height,
            max_count: self.max_count,
        }
    }
}

/// Why a request brought no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFailure {
    /// The transport gave up (stream reset, connection lost, its own timeout). Counts
    /// towards the source's failures in a row.
    Transport,
    /// An answer came but does not decode. The source is demoted at once.
    Malformed,
}

/// Why a source was demoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Demotion {
    /// It answered with bytes that do not decode, or with another message than `Headers`.
    #[error("it did not answer with headers")]
    NotHeaders,
    /// The answer names another request or start height than asked, holds more headers than
    /// asked, or its headers sit at other heights than their place in the answer says.
    #[error("it answered for heights not asked (asked from {asked})")]
    WrongHeights {
        /// The first height asked for.
        asked: u32,
    },
    /// Fewer headers than asked while claiming a tip above the last of them.
    #[error("it sent headers up to height {last_height} but claims a tip at {claimed_tip}")]
    ShortAnswer {
        /// The height of the last header sent (the height before the first asked, if none).
        last_height: u32,
        /// The tip it claimed.
        claimed_tip: u32,
    },
    /// A header failed the chain's checks (or did not build on the one before it).
    #[error("its header at height {height} is invalid: {error}")]
    InvalidHeader {
        /// The height the header would have had.
        height: u32,
        /// Why the chain refused it.
        error: HeaderError,
    },
    /// Its headers connect to no header of ours within [`SyncConfig::max_fork_depth`].
    #[error("its chain connects to ours nowhere below height {from}")]
    Unconnected {
        /// The height where its headers stopped connecting.
        from: u32,
    },
    /// Its chain ends with less work than the best chain.
    #[error("its chain ends at height {tip_height} with less work than ours")]
    CheaperFork {
        /// The height its branch ends at.
        tip_height: u32,
    },
    /// Its chain ends (it claims nothing above) with less total work than the network's
    /// minimum ([`HeaderChain::min_chain_work`]): valid headers, maybe, but a chain anyone
    /// could have made cheaply, or one far behind.
    #[error("its chain ends at height {tip_height} with less than the minimum chain work")]
    BelowMinimumWork {
        /// The height its chain ends at.
        tip_height: u32,
    },
    /// Its requests failed or timed out this many times in a row.
    #[error("{failures} of its requests in a row failed or timed out")]
    Stalled {
        /// Failures in a row.
        failures: u32,
    },
}

/// Where sync stands: the `sync-progress` of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The verified tip's height.
    pub height: u32,
    /// The height sync is heading for: the best tip a source in standing claims (never below
    /// `height`), `height` once synced, `None` before any source has answered. A claim, not a
    /// proof: only the headers themselves are checked.
    pub target: Option<u32>,
    /// Whether the tip has reached every tip claimed, with at least the minimum chain work.
    pub synced: bool,
}

/// Blocks that left and joined the best chain, as one answer changed it: what the shell
/// persists (drop from the lowest height on, write the best chain from there to the tip).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainChange {
    /// Blocks that left the best chain, highest first.
    pub disconnected: Vec<(u32, BlockHash)>,
    /// Blocks that joined it, lowest first.
    pub connected: Vec<(u32, BlockHash)>,
}

impl ChainChange {
    /// The lowest height whose block changed.
    pub fn lowest_height(&self) -> Option<u32> {
        self.disconnected
            .iter()
            .chain(&self.connected)
            .map(|(height, _)| *height)
            .min()
    }
}

/// What the sync tells the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent<S> {
    /// The best chain reached the minimum chain work: it is trusted from now on. Nothing of
    /// it was reported before (and none of it may have been persisted): persist it whole,
    /// heights 1 to `tip_height`. Later changes come as [`SyncEvent::HeadersChanged`].
    MinimumWorkReached {
        /// The best chain's tip height when it got there.
        tip_height: u32,
    },
    /// The best chain changed (only ever once it has the minimum work).
    HeadersChanged(ChainChange),
    /// The tip, the target or whether synced changed.
    Progress(Progress),
    /// A source was demoted: not asked before `until_ms`, then only as a last resort.
    SourceDemoted {
        /// The source.
        source: S,
        /// Why.
        reason: Demotion,
        /// When it may be asked again.
        until_ms: u64,
    },
}

/// A source's standing, as [`HeaderSync::source_standing`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStanding {
    /// Asked like any other.
    Good,
    /// Demoted and not asked before `until_ms`.
    Demoted {
        /// When it may be asked again.
        until_ms: u64,
    },
    /// Demoted before; asked only while no source in good standing can take a request, until
    /// it answers well.
    Probation,
}

/// Counters since the sync was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderSyncStats {
    /// Requests handed to the shell.
    pub requests: u64,
    /// Of those, asks again of a late batch.
    pub reasks: u64,
    /// Answers verified.
    pub answers_used: u64,
    /// Answers not used: to requests no longer awaited (outrun, timed out, given up).
    pub answers_ignored: u64,
    /// Headers in the answers verified (what the chain was built from).
    pub headers_used: u64,
    /// Requests that failed (transport or malformed).
    pub failures: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Demotions.
    pub demotions: u64,
    /// Times the window of batches was dropped and started again from the tip.
    pub window_resets: u64,
    /// Times a chain below the minimum work was dropped for one from genesis again.
    pub chains_dropped: u64,
    /// Block announcements from sources ([`HeaderSync::handle_announcement`]).
    pub announcements: u64,
    /// Of those, headers that extended the tip and were accepted at once.
    pub announcements_accepted: u64,
}

/// The first depth a fork is looked for at; each further ask goes [`FORK_DEPTH_FACTOR`]
/// times deeper.
const FORK_FIRST_DEPTH: u32 = 16;
const FORK_DEPTH_FACTOR: u32 = 4;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A batch of the window.
    Batch,
    /// A poll for headers above the tip, once synced.
    Poll,
    /// Along a source's own chain (a fork search or its side branch).
    Probe,
}

/// A request without an answer yet.
#[derive(Debug, Clone)]
struct Open<S> {
    id: RequestId,
    source: S,
    start_height: u32,
    max_count: u32,
    sent_ms: u64,
    purpose: Purpose,
}

/// An answer waiting for its turn.
#[derive(Debug, Clone)]
struct Arrived<S> {
    source: S,
    headers: Vec<Header>,
    full: bool,
}

/// One batch of the window.
#[derive(Debug, Clone)]
struct Slot<S> {
    start_height: u32,
    answer: Option<Arrived<S>>,
    /// When it was last asked.
    last_asked_ms: u64,
    /// How often it was asked again for being late.
    reasks: u32,
    /// A re-ask is due and waits for a source.
    reask_wanted: bool,
    /// The source whose answer or request failed last: asked last.
    avoid: Option<S>,
}

/// What one answer's headers turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// No headers: the source's chain ends below the first height asked.
    Empty,
    /// Its last header is on the best chain; more follow if it was full.
    OnBest { full: bool },
    /// Its first header builds on no header we know.
    Unconnected,
    /// A side branch with less work so far, going on from `next`.
    Side { next: u32 },
    /// The source lied and was demoted.
    Lied,
}

/// The header sync state machine. See the [module documentation](self).
///
/// `S` names a source: any small copyable id the shell chooses (a peer id).
#[derive(Debug, Clone)]
pub struct HeaderSync<S> {
    config: SyncConfig,
    now_ms: u64,
    sources: Vec<Source<S>>,
    /// Requests without an answer, oldest first.
    open: Vec<Open<S>>,
    /// The window: batches from the tip up, at most `max_batches_ahead`.
    slots: VecDeque<Slot<S>>,
    /// The block the window builds on (height, hash): the tip when it started or last moved.
    /// `None` while no window runs.
    base: Option<(u32, BlockHash)>,
    synced: bool,
    /// When synced: when every source is polled next.
    next_poll_ms: Option<u64>,
    next_id: u64,
    events: VecDeque<SyncEvent<S>>,
    last_progress: Option<Progress>,
    stats: HeaderSyncStats,
}

impl<S: Copy + Eq + Debug> HeaderSync<S> {
    /// A sync with no source yet.
    pub fn new(config: SyncConfig) -> Result<Self, SyncError> {
        config.validate()?;
        Ok(Self {
            config,
            now_ms: 0,
            sources: Vec::new(),
            open: Vec::new(),
            slots: VecDeque::new(),
            base: None,
            synced: false,
            next_poll_ms: None,
            next_id: 1,
            events: VecDeque::new(),
            last_progress: None,
            stats: HeaderSyncStats::default(),
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Whether the tip has reached the best tip a source claims and the chain has the
    /// minimum work (false until a source has answered; kept while no source in standing is
    /// left). Only a synced chain may be handed to what places, stores or serves blocks.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Where sync stands, against `chain`.
    pub fn progress(&self, chain: &HeaderChain) -> Progress {
        let height = chain.tip_height();
        let target = if self.synced {
            Some(height)
        } else {
            self.best_claim().map(|claim| claim.max(height))
        };
        Progress {
            height,
            target,
            synced: self.synced,
        }
    }

    /// Counters since the sync was made.
    pub fn stats(&self) -> HeaderSyncStats {
        self.stats
    }

    /// The sources, in the order they were added.
    pub fn sources(&self) -> impl Iterator<Item = S> + '_ {
        self.sources.iter().map(|s| s.id)
    }

    /// A source's standing.
    pub fn source_standing(&self, source: S) -> Option<SourceStanding> {
        self.source(source).map(|s| match s.standing {
            Standing::Good => SourceStanding::Good,
            Standing::Benched { until_ms } => SourceStanding::Demoted { until_ms },
            Standing::Probation => SourceStanding::Probation,
        })
    }

    /// The tip a source claimed in its latest answer.
    pub fn claimed_tip(&self, source: S) -> Option<u32> {
        self.source(source).and_then(|s| s.claimed_tip)
    }

    /// How many requests to `source` are awaited.
    pub fn unanswered(&self, source: S) -> usize {
        self.open.iter().filter(|o| o.source == source).count()
    }

    /// How many requests are awaited in all.
    pub fn open_requests(&self) -> usize {
        self.open.len()
    }

    /// How many batches the window holds (asked, or answered and waiting).
    pub fn batches_ahead(&self) -> usize {
        self.slots.len()
    }

    // ----- inputs -----

    /// A source to ask, with the most requests it may have unanswered at once (capped at
    /// [`SyncConfig::max_unanswered_per_source`], at least 1).
    pub fn handle_source_added(
        &mut self,
        now_ms: u64,
        source: S,
        max_unanswered: usize,
    ) -> Result<(), SyncError> {
        self.now_ms = now_ms;
        if self.source(source).is_some() {
            return Err(SyncError::AlreadyAdded);
        }
        if self.sources.len() >= self.config.max_sources {
            return Err(SyncError::TooManySources {
                limit: self.config.max_sources,
            });
        }
        let window = max_unanswered.clamp(1, self.config.max_unanswered_per_source);
        let mut added = Source::new(source, window);
        // Once synced, a newcomer is asked at once what it has above the tip.
        added.poll_wanted = self.synced;
        self.sources.push(added);
        Ok(())
    }

    /// A source is gone: its requests are no longer awaited (their batches are asked of
    /// others), its claim no longer counts.
    pub fn handle_source_removed(&mut self, now_ms: u64, chain: &HeaderChain, source: S) {
        self.now_ms = now_ms;
        let Some(index) = self.sources.iter().position(|s| s.id == source) else {
            return;
        };
        self.sources.remove(index);
        self.open.retain(|o| o.source != source);
        self.update_synced(chain);
        self.push_progress(chain);
    }

    /// The answer to request `id`. Headers are verified into `chain` in height order, now or
    /// once the batches before them are; whatever was not asked for, or lies, demotes its
    /// source.
    pub fn handle_answer(
        &mut self,
        now_ms: u64,
        chain: &mut HeaderChain,
        id: RequestId,
        answer: Message,
    ) {
        self.now_ms = now_ms;
        self.observe(chain);
        let Some(position) = self.open.iter().position(|o| o.id == id) else {
            self.stats.answers_ignored += 1;
            return;
        };
        let open = self.open.remove(position);
        match self.check_form(&open, answer) {
            Err(reason) => {
                self.lost(&open);
                self.demote(open.source, reason);
            }
            Ok((claim, headers)) => {
                let full = headers.len() == open.max_count as usize;
                if let Some(source) = self.source_mut(open.source) {
                    source.claimed_tip = Some(claim);
                    source.failures_in_a_row = 0;
                }
                match open.purpose {
                    Purpose::Batch => self.arrived(chain, &open, headers, full),
                    Purpose::Poll | Purpose::Probe => {
                        self.probe_answered(chain, &open, headers, full)
                    }
                }
            }
        }
        self.drop_chain_below_minimum_work(chain);
        self.update_synced(chain);
        self.push_progress(chain);
    }

    /// Request `id` brought no answer. Returns whether it was still awaited (an answer
    /// already taken from elsewhere, or a timeout, ends the wait for it earlier).
    pub fn handle_failure(
        &mut self,
        now_ms: u64,
        chain: &HeaderChain,
        id: RequestId,
        failure: RequestFailure,
    ) -> bool {
        self.now_ms = now_ms;
        let Some(position) = self.open.iter().position(|o| o.id == id) else {
            return false;
        };
        let open = self.open.remove(position);
        self.stats.failures += 1;
        self.lost(&open);
        match failure {
            RequestFailure::Transport => self.count_failure(open.source),
            RequestFailure::Malformed => self.demote(open.source, Demotion::NotHeaders),
        }
        self.update_synced(chain);
        self.push_progress(chain);
        true
    }

    /// A source announced a new block by its header ([`Message::BlockAnnounce`]), so new
    /// blocks need not wait for the next poll. Once synced, a header that extends the tip is
    /// verified and accepted at once, as a one-header answer would be: if it fails the chain's
    /// checks its source is demoted like a source that lied. A header already known changes
    /// nothing. Any other (it builds on a header we lack, or we are still catching up) makes
    /// that source due to be asked what it has above the tip at once (once synced; while
    /// catching up the window asks anyway).
    pub fn handle_announcement(
        &mut self,
        now_ms: u64,
        chain: &mut HeaderChain,
        source: S,
        header: Header,
    ) {
        self.now_ms = now_ms;
        self.observe(chain);
        if self.source(source).is_none() {
            self.stats.answers_ignored += 1;
            return;
        }
        self.stats.announcements += 1;
        if chain.get(&header.block_hash()).is_some() {
            return;
        }
        let tip_height = chain.tip_height();
        if self.synced && header.prev_blockhash == chain.tip_hash() {
            let height = tip_height + 1;
            let verdict = self.verify(chain, source, height, vec![header], false);
            if let Verdict::OnBest { .. } = verdict {
                self.stats.announcements_accepted += 1;
                if let Some(s) = self.source_mut(source) {
                    s.claimed_tip = Some(s.claimed_tip.unwrap_or(0).max(height));
                    s.failures_in_a_row = 0;
                }
            }
        } else if let Some(s) = self.source_mut(source) {
            s.poll_wanted = true;
        }
        self.update_synced(chain);
        self.push_progress(chain);
    }

    /// Time passed: requests time out, demotions end, late batches and polls fall due. Call
    /// it when [`HeaderSync::poll_timeout`] is due (earlier is harmless).
    pub fn handle_timeout(&mut self, now_ms: u64, chain: &HeaderChain) {
        self.now_ms = now_ms;
        let timeout_ms = self.config.request_timeout_ms;
        let mut expired = Vec::new();
        self.open.retain(|o| {
            let due = o.sent_ms.saturating_add(timeout_ms) <= now_ms;
            if due {
                expired.push(o.clone());
            }
            !due
        });
        for open in expired {
            self.stats.timeouts += 1;
            self.lost(&open);
            self.count_failure(open.source);
        }
        for source in &mut self.sources {
            if let Standing::Benched { until_ms } = source.standing {
                if until_ms <= now_ms {
                    source.standing = Standing::Probation;
                }
            }
        }
        if let Some(at_ms) = self.reask_due_ms() {
            if at_ms <= now_ms {
                if let Some(slot) = self.slots.front_mut() {
                    slot.reask_wanted = true;
                }
            }
        }
        if self.synced && self.next_poll_ms.is_some_and(|at| at <= now_ms) {
            for source in &mut self.sources {
                source.poll_wanted = true;
            }
            self.next_poll_ms = Some(now_ms.saturating_add(self.config.resync_interval_ms));
        }
        self.update_synced(chain);
        self.push_progress(chain);
    }

    // ----- outputs -----

    /// The next request to send, if any. Drain it after every input.
    pub fn poll_request(&mut self, chain: &HeaderChain) -> Option<HeadersRequest<S>> {
        self.observe(chain);
        if self.sources.is_empty() {
            return None;
        }
        if !self.synced && self.base.is_none() {
            self.base = Some((chain.tip_height(), chain.tip_hash()));
        }
        self.reask_late()
            .or_else(|| self.ask_missing())
            .or_else(|| self.probe())
            .or_else(|| self.extend())
            .or_else(|| self.poll(chain))
    }

    /// The next event, if any. Drain it after every input.
    pub fn poll_event(&mut self) -> Option<SyncEvent<S>> {
        self.events.pop_front()
    }

    /// When [`HeaderSync::handle_timeout`] is due next, in the shell's milliseconds.
    pub fn poll_timeout(&self) -> Option<u64> {
        let timeout_ms = self.config.request_timeout_ms;
        let requests = self
            .open
            .iter()
            .map(|o| o.sent_ms.saturating_add(timeout_ms));
        let benched = self.sources.iter().filter_map(|s| match s.standing {
            Standing::Benched { until_ms } => Some(until_ms),
            _ => None,
        });
        let poll = self.next_poll_ms.filter(|_| self.synced);
        requests
            .chain(benched)
            .chain(self.reask_due_ms())
            .chain(poll)
            .min()
    }

    // ----- answers -----

    /// Checks that `answer` is a headers answer to `open` and consistent with the tip it
    /// claims; returns that claim (raised to the last header sent) and the headers.
    fn check_form(&self, open: &Open<S>, answer: Message) -> Result<(u32, Vec<Header>), Demotion> {
        let Message::Headers {
            request_id,
            start_height,
            tip_height,
            headers,
        } = answer
        else {
            return Err(Demotion::NotHeaders);
        };
        let wrong = Demotion::WrongHeights {
            asked: open.start_height,
        };
        if request_id != open.id.0
            || start_height != open.start_height
            || headers.len() > open.max_count as usize
        {
            return Err(wrong);
        }
        // The height of the last header sent (the one before the first asked, if none).
        let last_height = open.start_height - 1 + headers.len() as u32;
        if headers.len() < open.max_count as usize && tip_height > last_height {
            return Err(Demotion::ShortAnswer {
                last_height,
                claimed_tip: tip_height,
            });
        }
        Ok((tip_height.max(last_height), headers))
    }

    /// A batch of the window was answered: keep it for its turn, then verify every batch
    /// whose turn it is.
    fn arrived(
        &mut self,
        chain: &mut HeaderChain,
        open: &Open<S>,
        headers: Vec<Header>,
        full: bool,
    ) {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.start_height == open.start_height && s.answer.is_none())
        else {
            self.stats.answers_ignored += 1;
            return;
        };
        slot.answer = Some(Arrived {
            source: open.source,
            headers,
            full,
        });
        self.verify_window(chain);
        self.end_outrun_requests(open.source);
    }

    /// Verifies the window's batches in height order while the next one has arrived.
    fn verify_window(&mut self, chain: &mut HeaderChain) {
        while self.slots.front().is_some_and(|s| s.answer.is_some()) {
            let Some(mut slot) = self.slots.pop_front() else {
                break;
            };
            let Some(Arrived {
                source,
                headers,
                full,
            }) = slot.answer.take()
            else {
                break;
            };
            let start = slot.start_height;
            let end = start - 1 + headers.len() as u32;
            let verdict = self.verify(chain, source, start, headers, full);
            let tip = (chain.tip_height(), chain.tip_hash());
            if verdict == (Verdict::OnBest { full: true }) && tip.0 == end {
                self.base = Some(tip);
                continue;
            }
            self.set_track(source, start, end, tip.0, verdict);
            if Some(tip) == self.base {
                // Nothing changed (no headers, a lie at the first one, another chain): the
                // batch is asked again, of someone else first.
                slot.avoid = Some(source);
                slot.reasks = 0;
                slot.reask_wanted = false;
                self.slots.push_front(slot);
            } else {
                // The source's chain ended inside the batch, or the tip moved elsewhere:
                // the batches above no longer follow on.
                self.reset_window();
            }
            return;
        }
    }

    /// A poll or probe was answered: verify it at once (it starts at or below the tip).
    fn probe_answered(
        &mut self,
        chain: &mut HeaderChain,
        open: &Open<S>,
        headers: Vec<Header>,
        full: bool,
    ) {
        let start = open.start_height;
        let end = start - 1 + headers.len() as u32;
        let verdict = self.verify(chain, open.source, start, headers, full);
        self.set_track(open.source, start, end, chain.tip_height(), verdict);
    }

    /// Moves a source along its own chain after its answer for `start..=end` (`tip_height`
    /// being ours after it): where its chain meets ours is looked for deeper while its
    /// headers do not connect, then its chain is followed up from there.
    fn set_track(&mut self, source: S, start: u32, end: u32, tip_height: u32, verdict: Verdict) {
        let max_depth = self.config.max_fork_depth.max(1);
        let Some(index) = self.sources.iter().position(|s| s.id == source) else {
            return;
        };
        let track = self.sources[index].track;
        let asked_next = match track {
            Track::Main => None,
            Track::Searching { from, depth } => Some(fork_probe_start(from, depth)),
            Track::Branch { next } => Some(next),
        };
        let next = match verdict {
            // Demoting reset it.
            Verdict::Lied => return,
            // Its chain is shorter than where it was asked along it: nothing to follow.
            Verdict::Empty if asked_next == Some(start) => Track::Main,
            Verdict::Empty => return,
            // The same as ours up to a height below our tip: follow it further up.
            Verdict::OnBest { full: true } if track != Track::Main && end < tip_height => {
                Track::Branch { next: end + 1 }
            }
            Verdict::OnBest { .. } => Track::Main,
            Verdict::Side { next } => Track::Branch { next },
            Verdict::Unconnected => match track {
                Track::Searching { from, depth } => {
                    if asked_next != Some(start) {
                        return; // an answer from before the search: it goes on
                    }
                    if start <= 1 || depth >= max_depth {
                        self.demote(source, Demotion::Unconnected { from });
                        return;
                    }
                    Track::Searching {
                        from,
                        depth: depth.saturating_mul(FORK_DEPTH_FACTOR).min(max_depth),
                    }
                }
                Track::Main | Track::Branch { .. } => Track::Searching {
                    from: start,
                    depth: FORK_FIRST_DEPTH.min(max_depth),
                },
            },
        };
        self.sources[index].track = next;
    }

    /// Verifies one answer's headers, which start at `start` (at most one above the tip),
    /// into `chain`, reports what changed, and demotes a source that lied.
    fn verify(
        &mut self,
        chain: &mut HeaderChain,
        source: S,
        start: u32,
        headers: Vec<Header>,
        full: bool,
    ) -> Verdict {
        self.stats.answers_used += 1;
        self.stats.headers_used += headers.len() as u64;
        let (Some(first), Some(last)) = (headers.first(), headers.last()) else {
            // Nothing at or above `start`: its chain ends below.
            if let Some(s) = self.source_mut(source) {
                s.answered_well();
            }
            return Verdict::Empty;
        };
        match chain.get(&first.prev_blockhash) {
            None => return Verdict::Unconnected,
            Some(parent) if parent.height + 1 != start => {
                self.demote(source, Demotion::WrongHeights { asked: start });
                return Verdict::Lied;
            }
            Some(_) => {}
        }
        let now_s = self.now_ms / 1_000;
        let trusted_before = chain.has_minimum_work();
        match chain.accept_batch(&headers, now_s) {
            Ok(outcome) => self.report(chain, trusted_before, outcome),
            Err(err) => {
                self.report(chain, trusted_before, err.partial);
                let height = start + err.index as u32;
                self.demote(
                    source,
                    Demotion::InvalidHeader {
                        height,
                        error: err.error,
                    },
                );
                return Verdict::Lied;
            }
        }
        let end = start - 1 + headers.len() as u32;
        // One hash per answer: every header built on the one before it, so the last one's
        // height says whether they sat where the answer put them.
        let Some(info) = chain.get(&last.block_hash()) else {
            // Accepted, then evicted from a full side-branch store at once: less work.
            self.demote(source, Demotion::CheaperFork { tip_height: end });
            return Verdict::Lied;
        };
        if info.height != end {
            self.demote(source, Demotion::WrongHeights { asked: start });
            return Verdict::Lied;
        }
        let verdict = match (info.in_best_chain, full) {
            (true, _) => Verdict::OnBest { full },
            (false, true) => Verdict::Side { next: end + 1 },
            (false, false) => {
                self.demote(source, Demotion::CheaperFork { tip_height: end });
                return Verdict::Lied;
            }
        };
        let claims_more = self
            .source(source)
            .and_then(|s| s.claimed_tip)
            .is_some_and(|claim| claim > end);
        if info.in_best_chain && !claims_more && !chain.has_minimum_work() {
            // Its chain ends here, on ours, and ours is not worth trusting yet.
            self.demote(source, Demotion::BelowMinimumWork { tip_height: end });
            return Verdict::Lied;
        }
        if let Some(s) = self.source_mut(source) {
            s.answered_well();
        }
        verdict
    }

    /// Reports a change of the best chain: nothing while it lacks the minimum work, the
    /// whole chain when it first has it (`trusted_before` is whether it had before the
    /// change), the change after.
    fn report(&mut self, chain: &HeaderChain, trusted_before: bool, outcome: BatchOutcome) {
        if !chain.has_minimum_work() {
            return;
        }
        if !trusted_before {
            self.events.push_back(SyncEvent::MinimumWorkReached {
                tip_height: chain.tip_height(),
            });
            return;
        }
        if outcome.connected.is_empty() && outcome.disconnected.is_empty() {
            return;
        }
        self.events
            .push_back(SyncEvent::HeadersChanged(ChainChange {
                disconnected: outcome.disconnected,
                connected: outcome.connected,
            }));
    }

    /// A request ended without a usable answer: its batch, if any, is asked of another
    /// source first.
    fn lost(&mut self, open: &Open<S>) {
        if open.purpose != Purpose::Batch {
            return;
        }
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.start_height == open.start_height)
        {
            slot.avoid = Some(open.source);
        }
    }

    /// Stops waiting for requests whose batch has been answered (or left the window). A
    /// late one, to another source than the one that answered, counts a failure for its
    /// source: a silent source would otherwise never be found out.
    fn end_outrun_requests(&mut self, answered_by: S) {
        let slots = &self.slots;
        let late_ms = self.config.late_answer_ms;
        let now_ms = self.now_ms;
        let mut outrun = Vec::new();
        self.open.retain(|o| {
            let awaited = o.purpose != Purpose::Batch
                || slots
                    .iter()
                    .any(|s| s.start_height == o.start_height && s.answer.is_none());
            if !awaited && o.source != answered_by && o.sent_ms.saturating_add(late_ms) <= now_ms {
                outrun.push(o.source);
            }
            awaited
        });
        for source in outrun {
            self.count_failure(source);
        }
    }

    // ----- sources -----

    fn source(&self, id: S) -> Option<&Source<S>> {
        self.sources.iter().find(|s| s.id == id)
    }

    fn source_mut(&mut self, id: S) -> Option<&mut Source<S>> {
        self.sources.iter_mut().find(|s| s.id == id)
    }

    /// One more failure in a row for `source`; too many demote it.
    fn count_failure(&mut self, source: S) {
        let limit = self.config.max_failures_in_a_row;
        let Some(s) = self.source_mut(source) else {
            return;
        };
        s.failures_in_a_row += 1;
        let failures = s.failures_in_a_row;
        if failures >= limit {
            self.demote(source, Demotion::Stalled { failures });
        }
    }

    /// Benches `source` for its back-off; its other requests and waiting answers are
    /// dropped (their batches go to others).
    fn demote(&mut self, source: S, reason: Demotion) {
        let now_ms = self.now_ms;
        let (base_ms, max_ms) = (self.config.demotion_ms, self.config.max_demotion_ms);
        let Some(s) = self.source_mut(source) else {
            return;
        };
        s.strikes = s.strikes.saturating_add(1);
        let backoff_ms = base_ms
            .saturating_mul(1u64 << (s.strikes - 1).min(32))
            .min(max_ms);
        let until_ms = now_ms.saturating_add(backoff_ms);
        s.standing = Standing::Benched { until_ms };
        s.failures_in_a_row = 0;
        s.track = Track::Main;
        s.poll_wanted = false;
        self.stats.demotions += 1;
        self.open.retain(|o| o.source != source);
        for slot in &mut self.slots {
            if slot.answer.as_ref().is_some_and(|a| a.source == source) {
                slot.answer = None;
            }
        }
        self.events.push_back(SyncEvent::SourceDemoted {
            source,
            reason,
            until_ms,
        });
    }

    /// The best tip claimed by a source that is not benched.
    fn best_claim(&self) -> Option<u32> {
        self.sources
            .iter()
            .filter(|s| !s.is_benched())
            .filter_map(|s| s.claimed_tip)
            .max()
    }

    // ----- the window -----

    /// Drops the window if the chain's tip is no longer what it builds on (a reorganisation,
    /// or the shell changed the chain).
    fn observe(&mut self, chain: &HeaderChain) {
        if let Some(base) = self.base {
            if base != (chain.tip_height(), chain.tip_hash()) {
                self.reset_window();
            }
        }
    }

    /// Drops a best chain below the minimum work once no source in standing can take it
    /// further (each has answered and claims no tip above it): whatever built it has ended
    /// below the minimum, and others' chains are verified from genesis again rather than as
    /// forks of it (a fork from genesis longer than `HeaderChainConfig::max_side_headers`
    /// could never overtake it). Nothing of it was reported, so the shell has nothing to
    /// undo. Every request is forgotten: they were all about the dropped chain.
    fn drop_chain_below_minimum_work(&mut self, chain: &mut HeaderChain) {
        let tip_height = chain.tip_height();
        if tip_height == 0 || chain.has_minimum_work() {
            return;
        }
        let stuck = self
            .sources
            .iter()
            .filter(|s| !s.is_benched())
            .all(|s| s.claimed_tip.is_some_and(|claim| claim <= tip_height));
        if !stuck {
            return;
        }
        chain.reset_to_genesis();
        self.stats.chains_dropped += 1;
        self.reset_window();
        self.open.clear();
        for source in &mut self.sources {
            source.track = Track::Main;
        }
    }

    /// Drops the window: its requests are no longer awaited.
    fn reset_window(&mut self) {
        self.base = None;
        if self.slots.is_empty() {
            return;
        }
        self.stats.window_resets += 1;
        self.slots.clear();
        self.open.retain(|o| o.purpose != Purpose::Batch);
    }

    /// Whether the sync is synced, after any change. Without a claim (no source has answered,
    /// or none is left in standing) nothing is known and nothing changes.
    fn update_synced(&mut self, chain: &HeaderChain) {
        let Some(claim) = self.best_claim() else {
            return;
        };
        let synced = claim <= chain.tip_height() && chain.has_minimum_work();
        if synced && !self.synced {
            self.reset_window();
            self.next_poll_ms = Some(self.now_ms.saturating_add(self.config.resync_interval_ms));
            for source in &mut self.sources {
                source.poll_wanted = false;
            }
        }
        if !synced {
            self.next_poll_ms = None;
        }
        self.synced = synced;
    }

    /// Reports progress when it changed (once any source has answered).
    fn push_progress(&mut self, chain: &HeaderChain) {
        let progress = self.progress(chain);
        if progress.target.is_some() && self.last_progress != Some(progress) {
            self.last_progress = Some(progress);
            self.events.push_back(SyncEvent::Progress(progress));
        }
    }

    /// When the batch next to verify falls due to be asked again.
    fn reask_due_ms(&self) -> Option<u64> {
        let slot = self.slots.front()?;
        let asked = self
            .open
            .iter()
            .any(|o| o.purpose == Purpose::Batch && o.start_height == slot.start_height);
        if slot.answer.is_some()
            || slot.reask_wanted
            || slot.reasks >= self.config.max_reasks
            || !asked
        {
            return None;
        }
        let wait_ms = self
            .config
            .late_answer_ms
            .saturating_mul(1u64 << slot.reasks.min(32));
        Some(slot.last_asked_ms.saturating_add(wait_ms))
    }

    /// Asks again for the batch next to verify, when it is late: of a source not asked for
    /// it yet if there is one.
    fn reask_late(&mut self) -> Option<HeadersRequest<S>> {
        let slot = self.slots.front()?;
        if !slot.reask_wanted || slot.answer.is_some() {
            return None;
        }
        let start = slot.start_height;
        let asked: Vec<S> = self
            .open
            .iter()
            .filter(|o| o.purpose == Purpose::Batch && o.start_height == start)
            .map(|o| o.source)
            .collect();
        let index = self
            .pick(start, |s| !asked.contains(&s), false)
            .or_else(|| self.pick(start, |_| true, false))?;
        let slot = self.slots.front_mut()?;
        slot.reask_wanted = false;
        slot.reasks += 1;
        slot.last_asked_ms = self.now_ms;
        self.stats.reasks += 1;
        Some(self.send(index, start, Purpose::Batch))
    }

    /// Asks for a batch of the window that has neither an answer nor a request (its request
    /// failed, timed out or was answered by a liar). The batch next to verify goes out even
    /// past the source's window.
    fn ask_missing(&mut self) -> Option<HeadersRequest<S>> {
        let (position, start, avoid) = self.slots.iter().enumerate().find_map(|(i, slot)| {
            let asked = self
                .open
                .iter()
                .any(|o| o.purpose == Purpose::Batch && o.start_height == slot.start_height);
            (slot.answer.is_none() && !asked).then_some((i, slot.start_height, slot.avoid))
        })?;
        let need_room = position > 0;
        let index = self
            .pick(start, |s| Some(s) != avoid, need_room)
            .or_else(|| self.pick(start, |_| true, need_room))?;
        let slot = &mut self.slots[position];
        slot.last_asked_ms = self.now_ms;
        slot.reask_wanted = false;
        Some(self.send(index, start, Purpose::Batch))
    }

    /// Adds a batch to the window, if it has room and a source does.
    fn extend(&mut self) -> Option<HeadersRequest<S>> {
        if self.synced || self.slots.len() >= self.config.max_batches_ahead {
            return None;
        }
        let (base_height, _) = self.base?;
        let start = match self.slots.back() {
            Some(last) => last
                .start_height
                .checked_add(self.config.headers_per_request)?,
            None => base_height.checked_add(1)?,
        };
        let index = self.pick(start, |_| true, true)?;
        self.slots.push_back(Slot {
            start_height: start,
            answer: None,
            last_asked_ms: self.now_ms,
            reasks: 0,
            reask_wanted: false,
            avoid: None,
        });
        Some(self.send(index, start, Purpose::Batch))
    }

    /// Asks a source that left the best chain along its own chain: deeper for where it
    /// forked, or further along its side branch.
    fn probe(&mut self) -> Option<HeadersRequest<S>> {
        let best_tier = self
            .sources
            .iter()
            .filter(|s| !s.is_benched())
            .map(Source::tier)
            .min()?;
        let index = self.sources.iter().position(|s| {
            s.track != Track::Main
                && !s.is_benched()
                && s.tier() == best_tier
                && !self
                    .open
                    .iter()
                    .any(|o| o.source == s.id && o.purpose == Purpose::Probe)
                && self.room(s) > 0
        })?;
        let start = match self.sources[index].track {
            Track::Searching { from, depth } => fork_probe_start(from, depth),
            Track::Branch { next } => next,
            Track::Main => return None,
        };
        Some(self.send(index, start, Purpose::Probe))
    }

    /// Once synced, asks every source that is due what it has above the tip.
    fn poll(&mut self, chain: &HeaderChain) -> Option<HeadersRequest<S>> {
        if !self.synced {
            return None;
        }
        let eligible = |s: &Source<S>| s.track == Track::Main && !s.is_benched();
        let best_tier = self
            .sources
            .iter()
            .filter(|s| eligible(s))
            .map(Source::tier)
            .min()?;
        let index = self.sources.iter().position(|s| {
            s.poll_wanted
                && eligible(s)
                && s.tier() == best_tier
                && !self.open.iter().any(|o| o.source == s.id)
        })?;
        self.sources[index].poll_wanted = false;
        Some(self.send(index, chain.tip_height() + 1, Purpose::Poll))
    }

    /// The source to ask for the batch at `start`: of the sources that can have it (not
    /// benched, following the best chain, claiming it or not having answered yet), those in
    /// the best standing; of them the one with the most room (first added on a tie) that
    /// `allowed` lets through and, if `need_room`, has room.
    fn pick(&self, start: u32, allowed: impl Fn(S) -> bool, need_room: bool) -> Option<usize> {
        let can_have = |s: &Source<S>| {
            !s.is_benched() && s.track == Track::Main && s.claimed_tip.is_none_or(|c| c >= start)
        };
        let best_tier = self
            .sources
            .iter()
            .filter(|s| can_have(s))
            .map(Source::tier)
            .min()?;
        let mut best: Option<(usize, usize)> = None;
        for (index, s) in self.sources.iter().enumerate() {
            if !can_have(s) || s.tier() != best_tier || !allowed(s.id) {
                continue;
            }
            let room = self.room(s);
            if need_room && room == 0 {
                continue;
            }
            if best.is_none_or(|(_, best_room)| room > best_room) {
                best = Some((index, room));
            }
        }
        best.map(|(index, _)| index)
    }

    /// How many more requests `source` may be given.
    fn room(&self, source: &Source<S>) -> usize {
        let unanswered = self.open.iter().filter(|o| o.source == source.id).count();
        source.max_unanswered.saturating_sub(unanswered)
    }

    /// Records a request to the source at `index` and hands it out.
    fn send(&mut self, index: usize, start_height: u32, purpose: Purpose) -> HeadersRequest<S> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let source = self.sources[index].id;
        let max_count = self.config.headers_per_request;
        self.open.push(Open {
            id,
            source,
            start_height,
            max_count,
            sent_ms: self.now_ms,
            purpose,
        });
        self.stats.requests += 1;
        debug_assert!(
            self.open.len()
                <= self.sources.len() * self.config.max_unanswered_per_source
                    + self.config.max_batches_ahead
                    + self.config.max_reasks as usize
        );
        HeadersRequest {
            id,
            source,
            start_height,
            max_count,
        }
    }
}

/// Where a fork search from `from`, `depth` deep, asks from (never below height 1).
fn fork_probe_start(from: u32, depth: u32) -> u32 {
    from.saturating_sub(depth).max(1)
}

#[cfg(test)]
mod tests;
