//! A member relay's core [`Node`] (not an archive) on a thread of its own: it follows its peer
//! relays' headers and takes part in a cluster like a page, holding only its shard on disk.
//!
//! # Overview
//!
//! `shoal-relay serve --role member --peer <archive relay>` runs this instead of the archive
//! node ([`super::archive`]). Everything the node decides — formation, membership, placement,
//! heartbeats, repair, serving — is the core's, exactly as in a page; this module is the
//! relay's shell for it, and differs from the archive's in three ways:
//!
//! - **headers:** the core's [`HeaderSync`] fetches them from the `--peer` relays
//!   (`GetHeaders` over the message protocol, answered there by their nodes) into a verified
//!   [`HeaderChain`], persisted in the [`ShardStore`]; the node is handed the chain
//!   (`Input::Headers`) once the sync has caught up and after every later change — and at
//!   start from disk, so a restarted member serves its shard before its peers answer;
//! - **store:** the [`ShardStore`] keeps what the node puts and forgets what it deletes (the
//!   archive's store is the whole chain), every batch in one transaction; the node's block
//!   reads go to it through the host — a `GetBlock` served, and a mate's challenge to prove
//!   this relay holds a block (issue 16, `shoal_core::repair::holding`); a relay killed and
//!   started again on the same data directory has its identity ([`super::identity`]), its
//!   headers, every block whose batch committed and its membership (`Config::resume_membership`:
//!   the node's clock is Unix milliseconds), and downloads none of them again;
//! - **no block source:** blocks come from the cluster and the archives, as in a page.
//!
//! The swarm task's side is the archive's ([`super::link`]): the same [`ToNode`] /
//! [`FromNode`] channels and held requests, so pages ask a member relay for headers, blocks
//! and proofs as they ask an archive. The node's state (cluster, members, tip, counters) is
//! copied into a [`SharedStatus`] after each round, for the relay's `/status.json`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use shoal_core::chain::sync::{HeaderSync, RequestFailure, RequestId, SyncConfig, SyncEvent};
use shoal_core::chain::{HeaderChain, HeaderChainConfig, Network};
use shoal_core::node::{Config, ConfigError, Event, Input, Node, NodeId, Output};
use shoal_core::wire::{self, Message};
use shoal_host::{Host, Inputs, Io};
use shoal_net::node_link::{self, PeerBook, Reply};
use tokio::sync::mpsc;

use super::archive::{FromNode, ToNode, CHANNEL_CAPACITY};
use super::http::{NodeStatus, SharedStatus};
use super::shard::{ShardStore, MAX_HEADERS_PER_READ};
use super::store::StoreError;
use super::MemberSettings;

/// Header requests one peer relay may have unanswered at once (each asks for up to 2,000
/// headers; a native link is no slower than a page's WebSocket one, which is given 6).
pub const HEADER_REQUESTS_PER_PEER: usize = 6;

/// Most header requests remembered as on their way (the sync keeps far fewer in flight).
const MAX_SYNC_REQUESTS: usize = 256;

/// The member's configuration: the core's defaults with the cluster size and replicas asked
/// for (scaled as a page scales them, so that relays and pages of one setting agree), its
/// queries asking the archives last, its capacity, and `address` for invitations. Its device
/// is its own (`Config::device` 0: derived from its node id).
pub fn member_config(settings: &MemberSettings, address: String) -> Result<Config, ConfigError> {
    let config = Config {
        address,
        // A restarted member relay is the member it was (its node's clock, Unix
        // milliseconds, goes on across restarts).
        resume_membership: true,
        heartbeat_interval_ms: settings.heartbeat_interval_ms,
        offline_after_ms: settings.offline_after_ms,
        formation_interval_ms: settings.formation_interval_ms,
        capacity_bytes: settings.capacity_bytes,
        ..Config::for_cluster(settings.cluster_size as usize, settings.replicas as usize)
    };
    config.validate()?;
    Ok(config)
}

/// Milliseconds since the Unix epoch: the clock of the header sync (it also bounds header
/// times) and of the node (a saved membership's expiry means the same after a restart).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The member node with its host, header sync and store. Driven by [`spawn`]'s thread; tests
/// drive it directly.
pub struct MemberNode {
    host: Host,
    store: ShardStore,
    chain: HeaderChain,
    sync: HeaderSync<PeerId>,
    /// The sync's requests on their way: wire request id → (peer asked, the sync's id).
    sync_requests: HashMap<u64, (PeerId, RequestId)>,
    /// The `--peer` relays: header sources while connected.
    relays: HashSet<PeerId>,
    /// Whether the node has been given the header chain.
    has_headers: bool,
    book: PeerBook,
    status: SharedStatus,
}

impl MemberNode {
    /// A member node with id `node_link::node_id(peer_id)` over `store`, with the headers the
    /// store holds (checked again; those that fail are dropped from the store), following
    /// `relays`' headers. Started with its first [`MemberNode::run`].
    pub fn start(
        store: ShardStore,
        peer_id: PeerId,
        config: Config,
        network: Network,
        seed: u64,
        relays: impl IntoIterator<Item = PeerId>,
        status: SharedStatus,
    ) -> Result<MemberNode, MemberError> {
        let node = Node::new(config, node_link::node_id(&peer_id), seed)?;
        let chain = load_headers(&store, network)?;
        let mut book = PeerBook::default();
        book.learn(peer_id); // so that this relay names itself among the members
        let mut host = Host::new(node);
        let has_headers = chain.tip_height() > 0 && chain.has_minimum_work();
        if has_headers {
            tracing::info!(height = chain.tip_height(), "headers on disk");
            host.push(Input::Headers(Arc::new(chain.clone())));
        }
        host.push(Input::Start);
        let sync = HeaderSync::new(SyncConfig::default())
            .expect("the default header sync configuration is valid");
        Ok(MemberNode {
            host,
            store,
            chain,
            sync,
            sync_requests: HashMap::new(),
            relays: relays.into_iter().collect(),
            has_headers,
            book,
            status,
        })
    }

    /// The core node (for tests).
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    /// The verified header chain.
    pub fn chain(&self) -> &HeaderChain {
        &self.chain
    }

    /// When the node or the header sync must next be run for its own sake.
    pub fn next_deadline(&self) -> Option<Instant> {
        let node = self
            .host
            .poll_timeout()
            .map(|at_ms| Instant::now() + Duration::from_millis(at_ms.saturating_sub(unix_ms())));
        let sync = self
            .sync
            .poll_timeout()
            .map(|at_ms| Instant::now() + Duration::from_millis(at_ms.saturating_sub(unix_ms())));
        [node, sync].into_iter().flatten().min()
    }

    /// Queues what the swarm task handed over: connections of the `--peer` relays also add
    /// and remove header sources; header answers go to the sync, block announcements to both,
    /// everything else to the node.
    pub fn push(&mut self, input: ToNode) {
        let (peer, input) = match input {
            ToNode::Connected(peer) => {
                if self.relays.contains(&peer) {
                    let window = HEADER_REQUESTS_PER_PEER;
                    if self
                        .sync
                        .handle_source_added(unix_ms(), peer, window)
                        .is_ok()
                    {
                        tracing::info!(%peer, "following the headers of peer relay");
                    }
                }
                let id = node_link::node_id(&peer);
                (peer, Input::PeerConnected { peer: id })
            }
            ToNode::Disconnected(peer) => {
                if self.relays.contains(&peer) {
                    self.sync
                        .handle_source_removed(unix_ms(), &self.chain, peer);
                    self.fail_requests_of(peer);
                }
                let id = node_link::node_id(&peer);
                (peer, Input::PeerDisconnected { peer: id })
            }
            ToNode::Message { peer, message } => {
                // A peer relay announced a new block by its header: the sync takes it at once
                // (the node, queued first, knows of the block when the longer chain reaches
                // it, as in a page).
                if let Message::BlockAnnounce { header } = &message {
                    if self.relays.contains(&peer) {
                        self.sync
                            .handle_announcement(unix_ms(), &mut self.chain, peer, *header);
                    }
                }
                let from = node_link::node_id(&peer);
                (peer, Input::Message { from, message })
            }
            ToNode::Reply { peer, bytes } => match node_link::decode_reply(&bytes) {
                Ok(Reply::Ack) => return,
                Ok(Reply::Message(message)) => {
                    if let Some(message) = self.sync_answer(peer, message) {
                        let from = node_link::node_id(&peer);
                        (peer, Input::Message { from, message })
                    } else {
                        return;
                    }
                }
                Err(error) => return tracing::debug!(%peer, %error, "undecodable reply"),
            },
            ToNode::Candidates(peers) => {
                let candidates = peers
                    .iter()
                    .map(|(peer, addr)| {
                        self.book.learn(*peer);
                        node_link::candidate(*peer, addr)
                    })
                    .collect();
                return self.host.push(Input::CandidatePeers(candidates));
            }
        };
        self.book.learn(peer);
        self.host.push(input);
    }

    /// Hands an answer to one of the sync's requests to the sync; returns any other message.
    fn sync_answer(&mut self, peer: PeerId, message: Message) -> Option<Message> {
        let Message::Headers { request_id, .. } = &message else {
            return Some(message);
        };
        match self.sync_requests.get(request_id) {
            Some((asked, id)) if *asked == peer => {
                let id = *id;
                self.sync_requests.remove(request_id);
                self.sync
                    .handle_answer(unix_ms(), &mut self.chain, id, message);
                None
            }
            // Headers nobody asked this peer for: the node ignores them.
            _ => Some(message),
        }
    }

    /// The peer is gone: its requests will not be answered.
    fn fail_requests_of(&mut self, peer: PeerId) {
        let failed: Vec<u64> = self
            .sync_requests
            .iter()
            .filter(|(_, (asked, _))| *asked == peer)
            .map(|(wire_id, _)| *wire_id)
            .collect();
        for wire_id in failed {
            if let Some((_, id)) = self.sync_requests.remove(&wire_id) {
                let failure = RequestFailure::Transport;
                self.sync
                    .handle_failure(unix_ms(), &self.chain, id, failure);
            }
        }
    }

    /// Fires what is due, drives the header sync (its requests, persisting its changes,
    /// handing the node the chain) and runs the node until it is quiet, its storage commands
    /// on the shard store; returns what the swarm task must carry out.
    pub async fn run(&mut self) -> Vec<FromNode> {
        let mut out = Vec::new();
        self.sync.handle_timeout(unix_ms(), &self.chain);
        self.drive_sync(&mut out);
        let now_ms = unix_ms();
        self.host.handle_timeout(now_ms);
        let stored_bytes = self.store.stored_bytes();
        self.host.node_mut().set_stored_bytes(stored_bytes);
        let mut io = MemberIo {
            book: &mut self.book,
            out,
        };
        if let Some(error) = self.host.run(now_ms, &mut self.store, &mut io).await {
            tracing::warn!(%error, "member node's storage command failed");
        }
        let out = io.out;
        self.publish();
        out
    }

    /// Sends the sync's requests, persists each change of the best chain and hands the node
    /// the chain once caught up.
    fn drive_sync(&mut self, out: &mut Vec<FromNode>) {
        while let Some(request) = self.sync.poll_request(&self.chain) {
            match wire::encode(&request.message()) {
                Ok(bytes) => {
                    self.sync_requests
                        .insert(request.id.0, (request.source, request.id));
                    // The sync times requests out itself; the oldest ids (they only grow) of
                    // those never answered are forgotten beyond the bound.
                    while self.sync_requests.len() > MAX_SYNC_REQUESTS {
                        let oldest = *self.sync_requests.keys().min().expect("not empty");
                        self.sync_requests.remove(&oldest);
                    }
                    out.push(FromNode::Send {
                        peer: request.source,
                        answers: None,
                        bytes,
                    });
                }
                Err(_) => {
                    let failure = RequestFailure::Transport;
                    self.sync
                        .handle_failure(unix_ms(), &self.chain, request.id, failure);
                }
            }
        }
        let mut lowest_changed: Option<u32> = None;
        let mut disconnected = false;
        while let Some(event) = self.sync.poll_event() {
            match event {
                SyncEvent::MinimumWorkReached { tip_height } => {
                    // The chain is trusted from now on: all of it is written (over anything
                    // stored from before).
                    tracing::info!(tip_height, "header chain reached the minimum work");
                    disconnected = true;
                    lowest_changed = Some(1);
                }
                SyncEvent::HeadersChanged(change) => {
                    disconnected |= !change.disconnected.is_empty();
                    if let Some(height) = change.lowest_height() {
                        lowest_changed = Some(lowest_changed.map_or(height, |h| h.min(height)));
                    }
                }
                SyncEvent::Progress(progress) => {
                    tracing::debug!(?progress, "header sync");
                }
                SyncEvent::SourceDemoted { source, reason, .. } => {
                    tracing::warn!(%source, %reason, "peer relay not asked for headers for a while");
                }
            }
        }
        if let Some(from_height) = lowest_changed {
            let headers: Vec<_> = (from_height..=self.chain.tip_height())
                .filter_map(|h| self.chain.header_at(h).copied())
                .collect();
            if let Err(error) = self.store.put_headers(from_height, &headers, disconnected) {
                tracing::warn!(%error, "cannot write headers");
            }
        }
        let caught_up = self.sync.is_synced();
        if caught_up && (lowest_changed.is_some() || !self.has_headers) {
            // Copying the chain for every batch while catching up would be quadratic.
            self.has_headers = true;
            tracing::info!(height = self.chain.tip_height(), "headers synced");
            self.host.push(Input::Headers(Arc::new(self.chain.clone())));
        }
    }

    /// Copies the node's state into the status snapshot.
    fn publish(&self) {
        let node = self.host.node();
        let name = |id: &NodeId| {
            self.book
                .peer(id)
                .map(|p| p.to_string())
                .unwrap_or_else(|| hex::encode(id.0))
        };
        let (cluster_id, members) = match node.cluster() {
            Some((cluster, _epoch, ids)) => {
                (Some(hex::encode(cluster.0)), ids.iter().map(name).collect())
            }
            None => (None, Vec::new()),
        };
        let stats = node.stats();
        let status = NodeStatus {
            role: "member".into(),
            synced: self.sync.is_synced(),
            tip_height: self.chain.tip_height(),
            has_headers: self.has_headers,
            cluster_id,
            member_number: node.member_number(),
            members,
            held_blocks: node.held_count(),
            chain_bytes: None,
            blocks_fetched: stats.blocks_fetched,
            bytes_fetched: stats.bytes_fetched,
            blocks_served: stats.blocks_served,
            missing_blocks: node.missing_count(),
            spare_blocks: node.spare_proofs().len(),
            hold_challenges_sent: stats.hold_challenges_sent,
            hold_proofs_passed: stats.hold_proofs_passed,
            hold_proofs_failed: stats.hold_proofs_failed,
            hold_challenges_unanswered: stats.hold_challenges_unanswered,
            hold_challenges_answered: stats.hold_challenges_answered,
            repair: Some(node.repair_summary()),
        };
        *self.status.write().expect("status lock poisoned") = status;
    }
}

/// The header chain the store holds, each header checked again; from the first that fails
/// on, the stored headers are dropped.
fn load_headers(store: &ShardStore, network: Network) -> Result<HeaderChain, StoreError> {
    let mut chain = HeaderChain::with_config(network.params(), HeaderChainConfig::default());
    let now_s = unix_ms() / 1000;
    let mut height = 1u32;
    loop {
        let batch = store.headers(height, MAX_HEADERS_PER_READ)?;
        if batch.is_empty() {
            break;
        }
        if let Err(error) = chain.accept_batch(&batch, now_s) {
            let bad = height + error.index as u32;
            tracing::warn!(
                height = bad,
                "stored header no longer verifies: dropped from there"
            );
            store.truncate_headers(bad)?;
            break;
        }
        height += batch.len() as u32;
    }
    if chain.tip_height() > 0 && !chain.has_minimum_work() {
        // Written before the minimum-work rule: not trusted, so not kept on disk (the sync
        // writes it again once it has the minimum work).
        tracing::warn!(
            height = chain.tip_height(),
            "stored headers have less than the minimum chain work: dropped from the store"
        );
        store.truncate_headers(1)?;
    }
    Ok(chain)
}

/// The node's outputs that are not the host's: messages and dials for the swarm task, events
/// for the log.
struct MemberIo<'a> {
    book: &'a mut PeerBook,
    out: Vec<FromNode>,
}

impl Io for MemberIo<'_> {
    fn carry_out(&mut self, output: Output, inputs: &mut Inputs) {
        match output {
            Output::Send { to, message } => {
                let Some(peer) = self.book.peer(&to) else {
                    return tracing::debug!(?to, "message to a peer never met: dropped");
                };
                match node_link::encode_request(&message) {
                    Ok(bytes) => self.out.push(FromNode::Send {
                        peer,
                        answers: super::link::Key::of_answer(peer, &message),
                        bytes,
                    }),
                    Err(error) => tracing::warn!(%error, "node message does not encode"),
                }
            }
            Output::Connect { peer, address } => match node_link::parse_addresses(&address) {
                Some((peer_id, addrs)) => {
                    self.book.learn(peer_id);
                    self.out.push(FromNode::Dial {
                        peer: peer_id,
                        addrs,
                    });
                }
                None => {
                    tracing::debug!(%address, "node asked to dial an address without /p2p");
                    inputs.push(Input::PeerDisconnected { peer });
                }
            },
            Output::Event(event) => {
                log_event(&event);
                if let Some(misbehaved) = super::archive::misbehaved(&event, self.book) {
                    self.out.push(misbehaved);
                }
            }
            Output::SetTimer { .. } | Output::Storage(_) => {}
        }
    }
}

fn log_event(event: &Event) {
    match event {
        Event::JoinedCluster {
            cluster,
            epoch,
            members,
            number,
        } => tracing::info!(
            cluster = %hex::encode(cluster.0),
            epoch,
            members,
            number,
            "member node: joined a cluster"
        ),
        Event::BlockStored { height, .. } => tracing::debug!(height, "member node: block stored"),
        Event::PeerMisbehaved { peer, score } => {
            tracing::info!(?peer, score, "member node: peer misbehaved")
        }
        Event::HolderFaulty { member, by_us } => tracing::warn!(
            ?member,
            by_us,
            "member node: a mate failed its proofs of holding; dropped and kept out"
        ),
        other => tracing::debug!(?other, "member node event"),
    }
}

/// The member's thread and the swarm task's ends of its channels.
pub struct MemberThread {
    /// Where the swarm task hands the node its inputs.
    pub inbox: mpsc::Sender<ToNode>,
    /// What the node asks of the swarm task.
    pub outbox: mpsc::Receiver<FromNode>,
    thread: std::thread::JoinHandle<Result<(), MemberError>>,
}

impl MemberThread {
    /// Ends the thread and waits for it (drop every clone of `inbox` first).
    pub fn join(self) -> Result<(), MemberError> {
        let MemberThread {
            inbox,
            outbox,
            thread,
        } = self;
        drop((inbox, outbox));
        thread.join().unwrap_or(Err(MemberError::Panicked))
    }
}

/// Runs `node` on a thread of its own, fed and answering over bounded channels.
pub fn spawn(node: MemberNode) -> Result<MemberThread, MemberError> {
    let (inbox, inputs) = mpsc::channel(CHANNEL_CAPACITY);
    let (outputs, outbox) = mpsc::channel(CHANNEL_CAPACITY);
    let thread = std::thread::Builder::new()
        .name("member-node".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(MemberError::Thread)?;
            runtime.block_on(drive(node, inputs, outputs));
            Ok(())
        })
        .map_err(MemberError::Thread)?;
    Ok(MemberThread {
        inbox,
        outbox,
        thread,
    })
}

/// The node's thread: run the node, hand its outputs over, wait for the next input or
/// deadline; until the swarm task is gone.
async fn drive(
    mut node: MemberNode,
    mut inputs: mpsc::Receiver<ToNode>,
    outputs: mpsc::Sender<FromNode>,
) {
    loop {
        for output in node.run().await {
            if outputs.send(output).await.is_err() {
                return;
            }
        }
        let wake = node.next_deadline();
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => node.push(input),
                None => return,
            },
            _ = tokio::time::sleep_until(wake.unwrap_or_else(far_future).into()), if wake.is_some() => {}
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Why the member node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    #[error("member node configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("member node thread: {0}")]
    Thread(std::io::Error),
    #[error("member node thread panicked")]
    Panicked,
}

#[cfg(test)]
mod tests;
