//! The browser node's event loop: one task (`spawn_local`) that owns the swarm, the store and
//! the verified header chain, and serves the JavaScript API's commands.
//!
//! - Header sync from every connected relay with full verification: the core's [`HeaderSync`]
//!   decides what to ask whom (a window of batches at consecutive heights, late batches asked
//!   again, lying or stalling relays demoted) and verifies into the core's `HeaderChain` (proof
//!   of work, linkage, retargeting, median time past, most-work tip and reorgs); this shell
//!   sends its requests, feeds back answers and failures, and writes every change to IndexedDB
//!   ([`HeaderWriter`], while the next batch is verified), so a reloaded tab downloads nothing
//!   twice. Each relay may have [`max_unanswered_header_requests`] requests unanswered. Once
//!   the sync has caught up, every growth of the verified tip is a `new-block` event per new
//!   height; every header answer's bytes count in `status().downloadedBytes` by its sender.
//! - New blocks are announced by the relays (`Message::BlockAnnounce`, the header alone): the
//!   header sync accepts an announced header that extends the tip at once, so new blocks do not
//!   wait for the poll (`headerPollIntervalMs`, 5 s by default), which only catches what the
//!   announcements missed.
//! - Transaction queries (S16) are the core node's (`Input::TxQuery`, [`crate::cluster_node`]):
//!   answered from its own blocks, else asked of its cluster's members, then of the relays'
//!   archive nodes; every Merkle proof is checked against the node's own headers before the
//!   caller sees it.
//! - Relays that drop are dialled again with a bounded backoff.
//! - The core's cluster `Node` runs in the same loop ([`crate::cluster_node`]): its timers, its
//!   storage commands, its messages in and out; other pages are reached through the relays'
//!   circuits and directories ([`crate::circuits`]).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt as _, StreamExt as _};
use futures_timer::Delay;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use shoal_core::chain::sync::{
    HeaderSync, Progress, RequestFailure, RequestId, SyncConfig, SyncEvent,
};
use shoal_core::chain::{BlockHash, HeaderChain, HeaderChainConfig, Txid};
use shoal_core::wire::{self, Message};
use wasm_bindgen::JsValue;

use crate::circuits::Circuits;
use crate::cluster_node::ClusterNode;
use crate::direct::Direct;
use crate::error::{ApiError, ErrorCode};
use crate::options::{Options, RelayAddr};
use crate::status::{Shared, Transport};
use crate::store::{Store, StoreError, Write};
use crate::swarm::{Behaviour, BehaviourEvent};
use crate::tab_lock::SlotLock;
pub use crate::verify::Verified;

/// How often the loop wakes up without any event (redials, circuits).
const TICK: Duration = Duration::from_millis(100);
/// How often the origin's storage estimate is read again (issue 17: the capacity a node offers
/// follows the origin's free room and its live tabs).
pub const CAPACITY_CHECK: Duration = Duration::from_secs(15);
/// First and largest delay before dialling a lost relay again.
const REDIAL_MIN_MS: f64 = 500.0;
const REDIAL_MAX_MS: f64 = 10_000.0;
/// Most probes waiting for an answer at once (and most transaction queries, which the core
/// bounds further: `QueryConfig::max_active_queries`).
pub const MAX_PENDING_REQUESTS: usize = 256;
/// Most `new-block` events for one growth of the tip.
const MAX_NEW_BLOCK_EVENTS: u32 = 100;
/// Capacity of the command queue from the JavaScript API.
pub const COMMAND_QUEUE: usize = 64;
/// The header sync's requests a relay may have unanswered at once, by transport (each asks
/// for 2,000 headers, ~160 KB; the sync keeps at most `SyncConfig::max_batches_ahead`, 6,
/// batches ahead in all). Over WebRTC-direct every unanswered request lets the relay send
/// ~160 KB at once, and Chromium's UDP socket (212,992 B receive buffer on Linux, which a page
/// cannot raise) drops datagrams when its network thread waits for a CPU; a lost tail then
/// waits for the relay's SCTP retransmission timeout (≥ 1 s). Two requests on their way kept
/// the worst rounds at 21k instead of 12k headers/s and the median higher than six
/// (BENCHMARKS.md, issue 5); fewer or smaller ones left the page waiting for the next answer.
/// TCP recovers such loss in milliseconds: WebSocket keeps all six.
pub fn max_unanswered_header_requests(transport: Transport) -> usize {
    match transport {
        Transport::WebRtcDirect | Transport::Circuit | Transport::WebRtc => 2,
        Transport::WebSocket => 6,
    }
}

/// The answer to [`Command::Shard`]: the store, and the held blocks' (height, hash) by height.
pub type HeldBlocks = (Rc<Store>, Vec<(u32, BlockHash)>);

/// What the JavaScript API asks of the loop.
pub enum Command {
    Verify {
        txid: Txid,
        hint: Option<BlockHash>,
        reply: oneshot::Sender<Result<Verified, ApiError>>,
    },
    /// `shard()`: the blocks the node holds, (height, hash) by height, and the store to read
    /// them from (read by the API, not the loop).
    Shard {
        reply: oneshot::Sender<HeldBlocks>,
    },
    /// `shardMap(from, to)`: placement under the node's view (range checked by the API).
    ShardMap {
        from: u32,
        to: u32,
        reply: oneshot::Sender<crate::status::ShardMap>,
    },
    /// `getBlock(hash)`: through the core's cache (S17).
    GetBlock {
        hash: BlockHash,
        reply: crate::cluster_node::BlockReply,
    },
    /// A transfer probe (test and bench builds only).
    #[cfg(feature = "probes")]
    Probe(crate::probes::ProbeCommand),
    Stop {
        reply: oneshot::Sender<()>,
    },
}

struct RelayState {
    target: RelayAddr,
    connected: Option<Transport>,
    dialling: bool,
    next_dial_ms: f64,
    backoff_ms: f64,
}

/// Writes verified headers to IndexedDB in a task of its own, so that the loop verifies (and
/// asks for) the next batch while the last one is written. Awaited in the loop, the writes
/// took 50-430 ms of a 20,000-header sync against 40-70 ms for verifying (one transaction per
/// batch, each first reading the chunk it starts in; BENCHMARKS.md, issue 5). Writes land in the order they were queued, each transaction holding everything queued
/// while the previous one ran, so the store always holds a prefix of the verified chain and
/// nothing unverified.
struct HeaderWriter {
    jobs: mpsc::UnboundedSender<WriterJob>,
}

enum WriterJob {
    Write(Write),
    /// Answered once every write queued before it has landed (or failed).
    Flush(oneshot::Sender<()>),
}

impl HeaderWriter {
    fn start(store: Rc<Store>) -> HeaderWriter {
        let (jobs, mut queued) = mpsc::unbounded::<WriterJob>();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(first) = queued.next().await {
                let mut writes: Vec<Write> = Vec::new();
                let mut flushed = Vec::new();
                let mut next = Some(first);
                while let Some(job) = next {
                    match job {
                        WriterJob::Write(write) => append_write(&mut writes, write),
                        WriterJob::Flush(done) => flushed.push(done),
                    }
                    next = queued.try_recv().ok();
                }
                if let Err(err) = store.write(&writes).await {
                    web_sys::console::error_1(&JsValue::from_str(&format!("shoal: {err}")));
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        HeaderWriter { jobs }
    }

    fn queue(&self, write: Write) {
        let _ = self.jobs.unbounded_send(WriterJob::Write(write));
    }

    /// Waits until every write queued so far has landed.
    async fn flush(&self) {
        let (done, landed) = oneshot::channel();
        if self.jobs.unbounded_send(WriterJob::Flush(done)).is_ok() {
            let _ = landed.await;
        }
    }
}

/// Appends `write` to `writes`, merging headers that follow on (or replace the tail of) the
/// last `PutHeaders` into it: one chunk plan and one put per chunk instead of one per batch.
fn append_write(writes: &mut Vec<Write>, write: Write) {
    if let (
        Some(Write::PutHeaders {
            first_height,
            headers,
        }),
        Write::PutHeaders {
            first_height: next_first,
            headers: next_headers,
        },
    ) = (writes.last_mut(), &write)
    {
        let end = *first_height as u64 + headers.len() as u64;
        if *next_first >= *first_height && u64::from(*next_first) <= end {
            headers.truncate((*next_first - *first_height) as usize);
            headers.extend_from_slice(next_headers);
            return;
        }
    }
    writes.push(write);
}

/// The loop's state.
pub struct EventLoop {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) store: Rc<Store>,
    /// Verified headers on their way to `store` (off the verification path).
    header_writes: HeaderWriter,
    pub(crate) chain: HeaderChain,
    relays: Vec<RelayState>,
    /// Header sync from every connected relay (the core's state machine; this shell does its
    /// I/O).
    sync: HeaderSync<PeerId>,
    /// The header sync's requests on their way, by the swarm's id for them.
    header_requests: HashMap<OutboundRequestId, RequestId>,
    /// Transfer probes waiting for their answer (test and bench builds only).
    #[cfg(feature = "probes")]
    pub(crate) probes: crate::probes::Probes,
    emit: js_sys::Function,
    pub(crate) shared: Rc<Shared>,
    lock: SlotLock,
    /// The core's cluster node and what the shell keeps to drive it (`cluster_node`).
    pub(crate) core: ClusterNode,
    /// Circuits through relays and their directories (`circuits`).
    pub(crate) circuits: Circuits,
    /// Direct connections to other pages (`direct`).
    pub(crate) direct: Direct,
    /// The highest tip a `new-block` event named (set without events when the sync first
    /// catches up: the chain it downloaded is not news).
    announced_tip: Option<u32>,
    /// Swarm events that arrived while the core node's storage commands ran (the swarm is
    /// polled meanwhile, so that the node's messages leave at once), handled in order before
    /// anything else; at most [`DEFERRED_EVENTS_MAX`].
    pub(crate) deferred: std::collections::VecDeque<SwarmEvent<BehaviourEvent>>,
}

/// Most swarm events kept while the node's storage commands run; beyond this the swarm is not
/// polled until they are done.
pub const DEFERRED_EVENTS_MAX: usize = 256;

pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn now_s() -> u64 {
    (now_ms() / 1000.0) as u64
}

/// The header sync's clock: milliseconds since the Unix epoch.
fn sync_now_ms() -> u64 {
    now_ms() as u64
}

/// The transport a connection's address names.
pub fn transport_of(addr: &Multiaddr) -> Transport {
    if crate::webrtc::is_webrtc(addr) {
        Transport::WebRtc
    } else if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        Transport::Circuit
    } else if addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect)) {
        Transport::WebRtcDirect
    } else {
        Transport::WebSocket
    }
}

impl EventLoop {
    /// Loads the header chain from `store` (checking every header again), then sets up the
    /// loop. Stored headers that no longer verify are dropped from the store.
    pub async fn new(
        options: &Options,
        swarm: Swarm<Behaviour>,
        store: Rc<Store>,
        emit: js_sys::Function,
        shared: Rc<Shared>,
        lock: SlotLock,
        mut core: ClusterNode,
    ) -> Result<EventLoop, StoreError> {
        core.capacity_option = options.capacity_bytes;
        let params = options.network.params();
        let mut chain = HeaderChain::with_config(params, HeaderChainConfig::default());
        let mut height = 1u32;
        loop {
            let batch = store
                .headers(height, crate::store::MAX_HEADERS_PER_READ)
                .await?;
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u32;
            if let Err(err) = chain.accept_batch(&batch, now_s()) {
                let bad_height = height + err.index as u32;
                store
                    .write(&[Write::TruncateHeaders {
                        from_height: bad_height,
                    }])
                    .await?;
                break;
            }
            height += n;
        }
        if chain.tip_height() > 0 && !chain.has_minimum_work() {
            // Stored before the minimum-work rule: kept in memory to build on, but an
            // untrusted chain is not kept in the store (the sync writes it whole once it has
            // the minimum work).
            store
                .write(&[Write::TruncateHeaders { from_height: 1 }])
                .await?;
        }
        let relays = options
            .relays
            .iter()
            .map(|target| RelayState {
                target: target.clone(),
                connected: None,
                dialling: false,
                next_dial_ms: 0.0,
                backoff_ms: REDIAL_MIN_MS,
            })
            .collect();
        let driver = EventLoop {
            swarm,
            header_writes: HeaderWriter::start(store.clone()),
            store,
            chain,
            relays,
            sync: HeaderSync::new(SyncConfig {
                resync_interval_ms: u64::from(options.header_poll_interval_ms),
                ..SyncConfig::default()
            })
            .expect("the options keep the header sync configuration valid"),
            header_requests: HashMap::new(),
            #[cfg(feature = "probes")]
            probes: crate::probes::Probes::default(),
            emit,
            shared,
            lock,
            core,
            circuits: Circuits::new(&options.network.to_string()),
            direct: Direct::new(
                options.direct_connections,
                options.relays.iter().map(|relay| relay.peer),
            ),
            announced_tip: None,
            deferred: std::collections::VecDeque::new(),
        };
        driver.publish_tip();
        Ok(driver)
    }

    /// Runs until a `Stop` command or until the API side is dropped. `ready` is answered once
    /// a relay is connected (or with the failure if none could be reached in time).
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        ready: oneshot::Sender<Result<(), ApiError>>,
        ready_timeout: Duration,
    ) {
        let mut ready = Some(ready);
        let mut ready_deadline = Delay::new(ready_timeout).fuse();
        let mut tick = Delay::new(Duration::ZERO).fuse();
        let mut capacity_check = Delay::new(CAPACITY_CHECK).fuse();
        let (shares_tx, mut shares) = mpsc::unbounded();
        self.pump_node().await;
        let relays = self
            .relays
            .iter()
            .map(|r| (r.target.peer, r.target.addr.clone()))
            .collect();
        self.node_candidates(relays).await;
        loop {
            if let Some(event) = self.deferred.pop_front() {
                self.on_swarm_event(event).await;
                continue;
            }
            let node_wait = self
                .core
                .next_timer_in_ms()
                .map_or(TICK, |ms| Duration::from_millis(ms).min(TICK));
            let mut node_wake = Delay::new(node_wait).fuse();
            let sync_wait = self.sync.poll_timeout().map_or(TICK, |at_ms| {
                Duration::from_millis(at_ms.saturating_sub(sync_now_ms()))
            });
            let mut sync_wake = Delay::new(sync_wait).fuse();
            futures::select! {
                _ = node_wake => self.on_node_timers().await,
                _ = sync_wake => self.on_sync_timeout().await,
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                command = commands.next() => match command {
                    Some(Command::Stop { reply }) => {
                        self.header_writes.flush().await;
                        self.shutdown();
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                    None => {
                        self.header_writes.flush().await;
                        self.shutdown();
                        return;
                    }
                },
                _ = tick => {
                    self.on_tick();
                    tick = Delay::new(TICK).fuse();
                    if self.core.capacity_check_due {
                        self.check_capacity(&shares_tx);
                    }
                }
                _ = capacity_check => {
                    self.check_capacity(&shares_tx);
                    capacity_check = Delay::new(CAPACITY_CHECK).fuse();
                }
                share = shares.select_next_some() => self.on_storage_share(share).await,
                _ = ready_deadline => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(ApiError::new(
                            ErrorCode::Unavailable,
                            format!("no relay could be reached within {} s", ready_timeout.as_secs()),
                        )));
                    }
                }
            }
            if ready.is_some() && self.relays.iter().any(|r| r.connected.is_some()) {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
        }
    }

    fn shutdown(&mut self) {
        for relay in &self.relays {
            let _ = self.swarm.disconnect_peer_id(relay.target.peer);
        }
        self.store.close();
        self.lock.release();
        let stopped = || ApiError::new(ErrorCode::Unavailable, "the node was stopped");
        #[cfg(feature = "probes")]
        self.probes.stop(stopped);
        for reply in self.core.take_queries() {
            let _ = reply.send(Err(stopped()));
        }
        for reply in self.core.take_jobs() {
            let _ = reply.send(Err(stopped()));
        }
    }

    pub(crate) fn emit(&self, event: &str, detail: JsValue) {
        let _ = self
            .emit
            .call2(&JsValue::NULL, &JsValue::from_str(event), &detail);
    }

    /// Dispatches `event` with `detail` (a struct of [`crate::events`]) as its detail.
    pub(crate) fn emit_detail<T: serde::Serialize>(&self, event: &str, detail: &T) {
        match crate::status::to_js(detail) {
            Ok(detail) => self.emit(event, detail),
            Err(error) => web_sys::console::error_1(&JsValue::from_str(&format!(
                "shoal: the {event} event's detail: {error}"
            ))),
        }
    }

    /// Whether header sync has caught up with the relays (the node then gets the chain).
    pub(crate) fn sync_caught_up(&self) -> bool {
        self.sync.is_synced()
    }

    fn publish_tip(&self) {
        let mut status = self.shared.status.borrow_mut();
        status.tip.height = i64::from(self.chain.tip_height());
        status.tip.hash = self.chain.tip_hash().to_string();
        status.synced = self.sync.is_synced();
    }

    fn publish_relays(&self) {
        let mut status = self.shared.status.borrow_mut();
        status.relays.clear();
        for relay in &self.relays {
            let Some(transport) = relay.connected else {
                continue;
            };
            let peer_id = relay.target.peer.to_string();
            // Several addresses of one relay share its connection: list the relay once.
            if !status.relays.iter().any(|r| r.peer_id == peer_id) {
                status
                    .relays
                    .push(crate::status::RelayStatus { peer_id, transport });
            }
        }
    }

    /// The peer ids of the relays from the options.
    pub(crate) fn relays(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.relays.iter().map(|r| r.target.peer)
    }

    /// The first connected relay and its transport (where a probe goes).
    #[cfg(feature = "probes")]
    pub(crate) fn connected_relay(&self) -> Option<(PeerId, Transport)> {
        self.relays
            .iter()
            .find_map(|r| r.connected.map(|t| (r.target.peer, t)))
    }
    /// Whether `peer` is one of the relays from the options.
    pub(crate) fn is_relay(&self, peer: &PeerId) -> bool {
        self.relays.iter().any(|r| r.target.peer == *peer)
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        // Queries the node did not answer in time are acknowledged; a late answer goes as a
        // request of its own.
        for channel in self.core.held_queries.expired(now) {
            let _ = self
                .swarm
                .behaviour_mut()
                .msg
                .send_response(channel, shoal_net::node_link::ack());
        }
        for i in 0..self.relays.len() {
            let relay = &mut self.relays[i];
            if relay.connected.is_none() && !relay.dialling && now >= relay.next_dial_ms {
                relay.dialling = true;
                let addr = relay.target.addr.clone();
                if self.swarm.dial(addr).is_err() {
                    let relay = &mut self.relays[i];
                    relay.dialling = false;
                    relay.next_dial_ms = now + relay.backoff_ms;
                    relay.backoff_ms = (relay.backoff_ms * 2.0).min(REDIAL_MAX_MS);
                }
            }
        }
        self.circuits_tick();
        self.direct_tick();
    }

    /// The header sync's deadline passed (late batches, timeouts, the next poll).
    /// A relay announced a new block by its header: the header sync takes it at once (if it
    /// extends the tip) or asks that relay what it has above the tip; a header that fails the
    /// checks counts against the relay like a bad answer.
    pub(crate) async fn on_block_announce(
        &mut self,
        peer: PeerId,
        header: shoal_core::chain::Header,
    ) {
        if !self.is_relay(&peer) {
            return;
        }
        self.sync
            .handle_announcement(sync_now_ms(), &mut self.chain, peer, header);
        self.shared.status.borrow_mut().announced_headers =
            self.sync.stats().announcements_accepted;
        self.drive_sync().await;
    }

    async fn on_sync_timeout(&mut self) {
        self.sync.handle_timeout(sync_now_ms(), &self.chain);
        self.drive_sync().await;
    }

    /// Sends the header sync's requests and carries out its events; after every input to it.
    /// Every change of the best chain is queued for IndexedDB (from the lowest changed height
    /// to the tip, once per round); a `synced` progress is reported only once those writes have
    /// landed, so that a reload downloads nothing again.
    async fn drive_sync(&mut self) {
        while let Some(request) = self.sync.poll_request(&self.chain) {
            match wire::encode(&request.message()) {
                Ok(bytes) => {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .msg
                        .send_request(&request.source, bytes);
                    self.header_requests.insert(id, request.id);
                }
                Err(_) => {
                    // A `GetHeaders` always encodes; should it not, the relay is not asked.
                    let failure = RequestFailure::Transport;
                    self.sync
                        .handle_failure(sync_now_ms(), &self.chain, request.id, failure);
                }
            }
        }
        let mut lowest_changed: Option<u32> = None;
        let mut disconnected = false;
        let mut progress: Vec<Progress> = Vec::new();
        while let Some(event) = self.sync.poll_event() {
            match event {
                SyncEvent::MinimumWorkReached { .. } => {
                    // Trusted from now on: the whole chain is written (the store held none of
                    // it: an untrusted chain is never written, and one loaded was trusted or
                    // dropped from the store).
                    disconnected = true;
                    lowest_changed = Some(1);
                }
                SyncEvent::HeadersChanged(change) => {
                    disconnected |= !change.disconnected.is_empty();
                    if let Some(height) = change.lowest_height() {
                        lowest_changed = Some(lowest_changed.map_or(height, |h| h.min(height)));
                    }
                }
                SyncEvent::Progress(p) => progress.push(p),
                SyncEvent::SourceDemoted { source, reason, .. } => {
                    web_sys::console::warn_1(&JsValue::from_str(&format!(
                        "shoal: relay {source} is not asked for headers for a while: {reason}"
                    )));
                }
            }
        }
        if let Some(from_height) = lowest_changed {
            if disconnected {
                self.header_writes
                    .queue(Write::TruncateHeaders { from_height });
            }
            let headers = (from_height..=self.chain.tip_height())
                .filter_map(|h| self.chain.header_at(h).copied())
                .collect();
            self.header_writes.queue(Write::PutHeaders {
                first_height: from_height,
                headers,
            });
        }
        // `headerBytesDownloaded` is what the chain was built from: answers outrun by a
        // re-ask elsewhere are not counted.
        self.shared.status.borrow_mut().header_bytes_downloaded =
            80 * self.sync.stats().headers_used;
        let reports_synced = progress.iter().any(|p| p.synced);
        if reports_synced {
            // Everything verified is on disk before the node says so (a reload then
            // downloads nothing again).
            self.header_writes.flush().await;
        }
        if lowest_changed.is_some() || !progress.is_empty() {
            self.publish_tip();
        }
        if self.sync.is_synced() {
            self.announce_new_blocks();
        }
        for p in progress {
            // While catching up, the target is the best tip a relay claims (never below what
            // is verified); once synced, the tip itself.
            let detail = crate::events::SyncProgress {
                height: p.height,
                target: p.target,
                synced: p.synced,
            };
            self.emit_detail("sync-progress", &detail);
        }
        if lowest_changed.is_some() || reports_synced {
            self.node_headers_changed().await;
        }
    }

    /// `new-block` for every height the verified tip grew by since the last one (at most
    /// [`MAX_NEW_BLOCK_EVENTS`] at once: a longer jump names only its last heights).
    fn announce_new_blocks(&mut self) {
        let tip = self.chain.tip_height();
        let Some(announced) = self.announced_tip.replace(tip) else {
            return; // the first catch-up
        };
        let first = (announced + 1).max((tip + 1).saturating_sub(MAX_NEW_BLOCK_EVENTS));
        for height in first..=tip {
            let Some(hash) = self.chain.hash_at(height) else {
                continue;
            };
            crate::trace::mark("new-block-event", crate::cluster_node::block_id(&hash.0));
            let detail = crate::events::NewBlock {
                height,
                block_hash: hash.to_string(),
            };
            self.emit_detail("new-block", &detail);
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Verify { txid, hint, reply } => self.node_query(txid, hint, reply).await,
            Command::Shard { reply } => {
                let mut held: Vec<(u32, BlockHash)> = self
                    .core
                    .stored_blocks()
                    .filter_map(|hash| {
                        let height = self.chain.height_of(hash)?;
                        self.core.node().holds(height).then_some((height, *hash))
                    })
                    .collect();
                held.sort_unstable();
                let _ = reply.send((self.store.clone(), held));
            }
            Command::ShardMap { from, to, reply } => {
                let _ = reply.send(self.shard_map(from, to));
            }
            Command::GetBlock { hash, reply } => self.node_get_block(hash, reply).await,
            #[cfg(feature = "probes")]
            Command::Probe(probe) => self.on_probe_command(probe),
            Command::Stop { .. } => unreachable!("handled by the loop"),
        }
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let transport = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => transport_of(address),
                    // A page reached through a circuit listens on its `/p2p-circuit` address;
                    // the dialler's address may not name the circuit.
                    ConnectedPoint::Listener {
                        local_addr,
                        send_back_addr,
                    } => match transport_of(local_addr) {
                        Transport::Circuit => Transport::Circuit,
                        Transport::WebRtc => Transport::WebRtc,
                        _ => transport_of(send_back_addr),
                    },
                };
                self.direct_connection_up(peer_id, connection_id, transport);
                if num_established.get() == 1 {
                    self.node_peer_connected(peer_id).await;
                }
                if self.relays.iter().any(|r| r.target.peer == peer_id) {
                    if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                        self.circuits_relay_connected(peer_id, address.clone());
                    }
                }
                let mut changed = false;
                for relay in self.relays.iter_mut().filter(|r| r.target.peer == peer_id) {
                    if relay.connected.is_none() {
                        relay.connected = Some(transport);
                        relay.dialling = false;
                        relay.backoff_ms = REDIAL_MIN_MS;
                        changed = true;
                    }
                }
                if changed {
                    self.publish_relays();
                    self.emit_detail("relay", &relay_detail(peer_id, true, Some(transport)));
                    let window = max_unanswered_header_requests(transport);
                    // Already a source when the relay is reached at a second address.
                    if self
                        .sync
                        .handle_source_added(sync_now_ms(), peer_id, window)
                        .is_ok()
                    {
                        self.drive_sync().await;
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                connection_id,
                num_established,
                ..
            } if num_established > 0 => self.direct_connection_down(connection_id),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                self.direct_connection_down(connection_id);
                let now = now_ms();
                let mut changed = false;
                for relay in self.relays.iter_mut().filter(|r| r.target.peer == peer_id) {
                    changed |= relay.connected.take().is_some();
                    relay.dialling = false;
                    relay.next_dial_ms = now + relay.backoff_ms;
                }
                if changed {
                    self.publish_relays();
                    self.emit_detail("relay", &relay_detail(peer_id, false, None));
                }
                if changed {
                    // Its requests go to the other relays.
                    self.sync
                        .handle_source_removed(sync_now_ms(), &self.chain, peer_id);
                    self.drive_sync().await;
                }
                self.circuits_relay_lost(&peer_id);
                self.node_peer_gone(peer_id).await;
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                self.direct_dial_failed(connection_id, &error.to_string());
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    self.node_peer_gone(peer).await;
                }
                let now = now_ms();
                for relay in self
                    .relays
                    .iter_mut()
                    .filter(|r| Some(r.target.peer) == peer_id && r.connected.is_none())
                {
                    relay.dialling = false;
                    relay.next_dial_ms = now + relay.backoff_ms;
                    relay.backoff_ms = (relay.backoff_ms * 2.0).min(REDIAL_MAX_MS);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Msg(event)) => self.on_msg_event(event).await,
            #[cfg(feature = "probes")]
            SwarmEvent::Behaviour(BehaviourEvent::Probe(event)) => self.on_probe_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client_event(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Directory(event)) => {
                self.on_directory_event(event).await
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                connection,
                result: Err(_),
                ..
            })) => {
                self.swarm.close_connection(connection);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                connection,
                result: Ok(rtt),
                ..
            })) => self.direct.pinged(connection, rtt.as_secs_f64() * 1000.0),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => self.direct_identified(peer_id, &info),
            _ => {}
        }
    }

    async fn on_msg_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if self.core.owns_request(&request_id) {
                    crate::trace::mark("response-event", response.len() as u64);
                    self.node_response(peer, request_id, &response).await;
                    return;
                }
                let decoded = wire::decode(&response);
                let Some(id) = self.header_requests.remove(&request_id) else {
                    #[cfg(feature = "probes")]
                    self.on_download_answer(request_id, decoded);
                    return;
                };
                let relay = self.counts_as_relay(&peer);
                self.shared
                    .status
                    .borrow_mut()
                    .downloaded_bytes
                    .of(relay)
                    .headers += response.len() as u64;
                let now = sync_now_ms();
                match decoded {
                    Ok(answer) => self.sync.handle_answer(now, &mut self.chain, id, answer),
                    Err(_) => {
                        let failure = RequestFailure::Malformed;
                        self.sync.handle_failure(now, &self.chain, id, failure);
                    }
                }
                self.drive_sync().await;
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // One-way messages for the core node (shoal_net::node_link): acknowledge, then
                // hand over; a query is held open for the node's answer (`HeldQueries`).
                // Undecodable bytes get no answer (the stream closes).
                crate::trace::mark("request-event", request.len() as u64);
                if let Ok(message) = shoal_net::node_link::decode_request(&request) {
                    let unheld = match &message {
                        Message::TxQuery { request_id, .. } => self
                            .core
                            .held_queries
                            .hold(peer, *request_id, channel, now_ms())
                            .err(),
                        _ => Some(channel),
                    };
                    if let Some(channel) = unheld {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .msg
                            .send_response(channel, shoal_net::node_link::ack());
                    }
                    self.node_message(peer, message).await;
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if self.core.owns_request(&request_id) {
                    self.node_request_failed(&request_id);
                    return;
                }
                let Some(id) = self.header_requests.remove(&request_id) else {
                    #[cfg(feature = "probes")]
                    self.on_download_failure(request_id, &error);
                    return;
                };
                let failure = RequestFailure::Transport;
                if self
                    .sync
                    .handle_failure(sync_now_ms(), &self.chain, id, failure)
                {
                    // Said on the console so that stalls can be told apart (bench.mjs counts
                    // transport resets from these lines).
                    web_sys::console::warn_1(&JsValue::from_str(&format!(
                        "shoal: a header request failed: {error}"
                    )));
                }
                self.drive_sync().await;
            }
            _ => {}
        }
    }
}

fn relay_detail(
    peer: PeerId,
    connected: bool,
    transport: Option<Transport>,
) -> crate::events::RelayChanged {
    crate::events::RelayChanged {
        peer_id: peer.to_string(),
        connected,
        transport: transport.map(|t| t.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::Header;
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    /// `n` distinct headers from `first` on (the store does not check linkage).
    fn numbered(first: u32, n: u32) -> Vec<Header> {
        (first..first + n)
            .map(|i| Header {
                nonce: i,
                ..Header::default()
            })
            .collect()
    }

    #[wasm_bindgen_test]
    fn header_writes_that_follow_on_are_merged_and_others_kept_apart() {
        let put = |first_height, headers| Write::PutHeaders {
            first_height,
            headers,
        };
        let mut writes = Vec::new();
        append_write(&mut writes, put(1, numbered(1, 2_000)));
        append_write(&mut writes, put(2_001, numbered(2_001, 2_000)));
        // A reorganisation's batch replaces the tail from 3,500 on.
        append_write(&mut writes, put(3_500, numbered(90_000, 10)));
        append_write(&mut writes, Write::TruncateHeaders { from_height: 3_000 });
        append_write(&mut writes, put(3_000, numbered(3_000, 5)));
        // A gap is not merged.
        append_write(&mut writes, put(3_100, numbered(3_100, 5)));
        let mut expected = numbered(1, 3_499);
        expected.extend(numbered(90_000, 10));
        assert!(matches!(
            &writes[..],
            [
                Write::PutHeaders { first_height: 1, headers },
                Write::TruncateHeaders { from_height: 3_000 },
                Write::PutHeaders { first_height: 3_000, headers: h3000 },
                Write::PutHeaders { first_height: 3_100, .. },
            ] if *headers == expected && *h3000 == numbered(3_000, 5)
        ));
    }

    #[wasm_bindgen_test]
    async fn the_header_writer_lands_every_queued_batch_in_order_before_a_flush_returns() {
        let name = "shoal-test-header-writer";
        Store::delete_database(name).await.unwrap();
        let store = Rc::new(Store::open(name).await.unwrap());
        let writer = HeaderWriter::start(store.clone());
        for first in (1..10_000).step_by(2_000) {
            writer.queue(Write::PutHeaders {
                first_height: first,
                headers: numbered(first, 2_000),
            });
        }
        writer.queue(Write::TruncateHeaders { from_height: 9_001 });
        writer.flush().await;
        assert_eq!(store.headers(1, 20_000).await.unwrap(), numbered(1, 9_000));
        store.close();
        Store::delete_database(name).await.unwrap();
    }
}
