//! The relay's core [`Node`], configured as an archive, on a thread of its own.
//!
//! The node holds the whole chain (the redb [`ChainStore`]), says hello as an archive, answers
//! every serving request — header ranges (`GetHeaders`), transaction queries (`TxQuery`, from
//! its own transaction index, with the core's per-peer rate limit and peer scoring) and blocks
//! (`GetBlock`) — and takes part in the cluster protocol as the core expects of an archive
//! (S11 repair source, S14–S15 new blocks). All protocol decisions are the core's, and the
//! input queue, the drain-until-quiet pump, the node's next deadline and the execution of its
//! storage commands are [`shoal_host::Host`]'s. What this module adds is the relay's I/O:
//!
//! - **store:** the chain store is the node's [`shoal_host::BlockStore`] (see
//!   [`super::store`]): the chain itself, written only by the block source and imports; the
//!   node's transaction index records go to its `node_kv` table, so a restarted relay loads its
//!   index instead of reading the whole chain back;
//! - **clock:** milliseconds since the node started (a monotonic clock);
//! - **headers:** a [`StoreHeaders`] view of the stored chain, renewed after each new block;
//! - **block source:** the regtest generator, if the relay generates, appends its blocks on
//!   this thread and tells the node ([`ArchiveNode::on_new_block`]);
//! - **transport:** [`ToNode`] in from the swarm task, [`FromNode`] out to it, both over bounded
//!   channels ([`spawn`]); the swarm task holds a peer's request open until the node's answer
//!   with the same request id comes out ([`super::link`]). Node ids are turned back into peer
//!   ids through a bounded [`PeerBook`]. A proof the node gives carries no header; the relay
//!   adds the block's header to a `TxAnswer`, as it always has, for a client that lacks it.
//!
//! The thread ends when the swarm task drops its end of either channel (shutdown), or with the
//! block source's error; the store is closed when the thread ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use shoal_core::chain::{Block, BlockHash, Header};
use shoal_core::node::{
    Config, ConfigError, Event, HeaderView, Input, Node, Output, StorageCommand, StorageResult,
};
use shoal_core::serve::ratelimit::RateLimitConfig;
use shoal_core::wire::{Message, TxAnswerBody};
use shoal_host::{Host, Inputs, Io};
use shoal_net::node_link::{self, PeerBook, Reply, PEER_BOOK_MAX};
use tokio::sync::mpsc;

use super::follow::ChainUpdate;
use super::http::{NodeStatus, SharedStatus};
use super::link::Key;
use super::source::{BlockSource, SourceError};
use super::store::{ChainStore, StoreError};

/// Room in each of the channels between the swarm task and the node's thread.
pub const CHANNEL_CAPACITY: usize = 256;

/// Queries one outside node (a page) may send the archive: a burst of 256, then 64 a second.
/// The core's default for outsiders (20, then 5 a second) is sized for a cluster member
/// answering strangers; a page verifies through its relay, 50 proofs in a row in the e2e
/// tests and 200 in the benchmark. An outsider over its rate gets no answer.
pub const ARCHIVE_PEER_QUERY_RATE: RateLimitConfig = RateLimitConfig {
    burst: 256,
    per_second: 64,
    max_peers: PEER_BOOK_MAX,
};

/// The archive's configuration: the core's defaults, except that it is an archive, its
/// queries end at its own blocks with `NotFound` (it holds every block of its chain), and
/// pages may ask it [`ARCHIVE_PEER_QUERY_RATE`], and it announces every new block it stores
/// to the light nodes connected to it (`Message::BlockAnnounce`, S14/S15).
pub fn archive_config(address: String) -> Config {
    let mut config = Config {
        archive: true,
        address,
        ..Config::default()
    };
    config.serve.query.holds_every_block = true;
    config.serve.query.peer_rate = ARCHIVE_PEER_QUERY_RATE;
    // The relay is the block source: each new block is announced to its pages at once.
    config.serve.new_blocks.announce = true;
    config
}

/// What the swarm task hands the node.
#[derive(Debug)]
pub enum ToNode {
    /// A first connection to the peer is up.
    Connected(PeerId),
    /// The last connection to the peer closed, or a dial to it failed.
    Disconnected(PeerId),
    /// A message the peer sent as a request.
    Message { peer: PeerId, message: Message },
    /// The peer's response to one of the node's requests (undecoded).
    Reply { peer: PeerId, bytes: Vec<u8> },
    /// Peers a peer relay's directory named, each with its address through that relay's
    /// circuits: candidates for a member's cluster.
    Candidates(Vec<(PeerId, Multiaddr)>),
}

/// What the node asks of the swarm task.
#[derive(Debug, PartialEq, Eq)]
pub enum FromNode {
    /// Send one encoded message to `peer`: as the response to the held request it answers
    /// (`answers`), or as a request of its own if none is held.
    Send {
        peer: PeerId,
        answers: Option<Key>,
        bytes: Vec<u8>,
    },
    /// Dial `peer` at any of `addrs` (a page reachable through several relays gives one
    /// address per relay); if it is connected already, report it connected.
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    /// The node scored `peer` for sending data that failed its check (`score` is its total):
    /// the swarm task's guard may ban it (`super::guard`).
    Misbehaved { peer: PeerId, score: u32 },
}

/// The stored chain as the node reads it: every header from the store's base height up.
#[derive(Debug, Clone, Default)]
pub struct StoreHeaders {
    base_height: u32,
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    index: HashMap<BlockHash, u32>,
}

impl StoreHeaders {
    /// Reads every stored header.
    pub fn load(store: &ChainStore) -> Result<StoreHeaders, StoreError> {
        let mut view = StoreHeaders {
            base_height: store.base_height()?.unwrap_or(0),
            ..StoreHeaders::default()
        };
        let mut height = view.base_height;
        loop {
            let batch = store.headers(height, super::store::MAX_HEADERS_PER_READ)?;
            if batch.is_empty() {
                break;
            }
            height += batch.len() as u32;
            for header in batch {
                view.push(header);
            }
        }
        Ok(view)
    }

    /// Drops the headers above `height` (the store was rewound to it).
    pub fn truncate(&mut self, height: u32) {
        let keep = height.saturating_add(1).saturating_sub(self.base_height) as usize;
        if keep >= self.headers.len() {
            return;
        }
        for hash in self.hashes.drain(keep..) {
            self.index.remove(&hash);
        }
        self.headers.truncate(keep);
    }

    /// Appends the header of a block just stored on the tip.
    pub fn push(&mut self, header: Header) {
        let hash = header.block_hash();
        let height = self.base_height + self.headers.len() as u32;
        self.headers.push(header);
        self.hashes.push(hash);
        self.index.insert(hash, height);
    }
}

impl HeaderView for StoreHeaders {
    fn tip_height(&self) -> Option<u32> {
        (self.base_height + self.headers.len() as u32).checked_sub(1)
    }
    fn header_at(&self, height: u32) -> Option<Header> {
        let i = height.checked_sub(self.base_height)?;
        self.headers.get(i as usize).copied()
    }
    fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        let i = height.checked_sub(self.base_height)?;
        self.hashes.get(i as usize).copied()
    }
    fn height_of(&self, hash: &BlockHash) -> Option<u32> {
        self.index.get(hash).copied()
    }
}

/// The archive node with its host and the relay's I/O for it. Driven by [`spawn`]'s thread;
/// tests drive it directly.
pub struct ArchiveNode {
    host: Host,
    store: ChainStore,
    headers: StoreHeaders,
    book: PeerBook,
    started: Instant,
    blocks_read: u64,
    status: Option<SharedStatus>,
}

impl ArchiveNode {
    /// An archive node with id `node_link::node_id(peer_id)` over `store`, told the stored
    /// chain and started (the start runs with the first [`ArchiveNode::run`]).
    pub fn start(
        store: ChainStore,
        peer_id: PeerId,
        address: String,
        seed: u64,
    ) -> Result<ArchiveNode, ArchiveError> {
        let node = Node::new(archive_config(address), node_link::node_id(&peer_id), seed)?;
        let headers = StoreHeaders::load(&store)?;
        let mut host = Host::new(node);
        host.push(Input::Headers(Arc::new(headers.clone())));
        host.push(Input::Start);
        Ok(ArchiveNode {
            host,
            store,
            headers,
            book: PeerBook::default(),
            started: Instant::now(),
            blocks_read: 0,
            status: None,
        })
    }

    /// Copies the node's state into `status` after each round (for `/status.json`).
    pub fn with_status(mut self, status: SharedStatus) -> ArchiveNode {
        self.status = Some(status);
        self.publish();
        self
    }

    fn publish(&self) {
        let Some(status) = &self.status else {
            return;
        };
        let node = self.host.node();
        let stats = node.stats();
        let snapshot = NodeStatus {
            role: "archive".into(),
            synced: true,
            tip_height: self.headers.tip_height().unwrap_or(0),
            has_headers: true,
            cluster_id: None,
            member_number: None,
            members: Vec::new(),
            held_blocks: node.held_count(),
            chain_bytes: self.store.chain_bytes().ok(),
            blocks_fetched: stats.blocks_fetched,
            bytes_fetched: stats.bytes_fetched,
            blocks_served: stats.blocks_served,
            missing_blocks: 0,
            spare_blocks: 0,
            hold_challenges_sent: 0,
            hold_proofs_passed: 0,
            hold_proofs_failed: 0,
            hold_challenges_unanswered: 0,
            hold_challenges_answered: 0,
            repair: None,
        };
        *status.write().expect("status lock poisoned") = snapshot;
    }

    /// The core node (for status and tests).
    pub fn node(&self) -> &Node {
        self.host.node()
    }

    /// The chain store.
    pub fn store(&self) -> &ChainStore {
        &self.store
    }

    /// Blocks the node has read from the store (to answer, or to rebuild its index).
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read
    }

    /// When the node must next be run for its own sake (its next timer).
    pub fn next_deadline(&self) -> Option<Instant> {
        let at_ms = self.host.poll_timeout()?;
        Some(self.started + Duration::from_millis(at_ms))
    }

    /// Queues what the swarm task handed over.
    pub fn push(&mut self, input: ToNode) {
        let (peer, input) = match input {
            ToNode::Connected(peer) => (
                peer,
                Input::PeerConnected {
                    peer: node_id(peer),
                },
            ),
            ToNode::Disconnected(peer) => (
                peer,
                Input::PeerDisconnected {
                    peer: node_id(peer),
                },
            ),
            ToNode::Message { peer, message } => (
                peer,
                Input::Message {
                    from: node_id(peer),
                    message,
                },
            ),
            ToNode::Reply { peer, bytes } => match node_link::decode_reply(&bytes) {
                Ok(Reply::Ack) => return,
                Ok(Reply::Message(message)) => (
                    peer,
                    Input::Message {
                        from: node_id(peer),
                        message,
                    },
                ),
                Err(error) => return tracing::debug!(%peer, %error, "undecodable reply"),
            },
            // An archive forms no cluster.
            ToNode::Candidates(_) => return,
        };
        self.book.learn(peer);
        self.host.push(input);
    }

    /// A block was just appended to the store (by the block source): the node gets the longer
    /// header view and the block.
    pub fn on_new_block(&mut self, block: &Block) {
        self.on_new_blocks(std::slice::from_ref(block));
    }

    /// Blocks were just appended to the store, in order: the node gets the longer header view
    /// once (it is copied whole for the node: once per batch, not once per block), then each
    /// block.
    pub fn on_new_blocks(&mut self, blocks: &[Block]) {
        for block in blocks {
            self.headers.push(block.header);
        }
        self.host
            .push(Input::Headers(Arc::new(self.headers.clone())));
        for block in blocks {
            self.host.push(Input::NewBlock {
                bytes: block.encode(),
            });
        }
    }

    /// The store was rewound to `height` (a reorganisation): the node gets the shorter header
    /// view at once (its index forgets the blocks that left), the new branch's blocks follow.
    pub fn on_rewind(&mut self, height: u32) {
        self.headers.truncate(height);
        self.host
            .push(Input::Headers(Arc::new(self.headers.clone())));
    }

    /// Fires the timers that are due and runs the node until it is quiet, its storage
    /// commands on the chain store; returns what the swarm task must carry out.
    pub async fn run(&mut self) -> Vec<FromNode> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.host.handle_timeout(now_ms);
        let mut io = Carrier {
            book: &mut self.book,
            headers: &self.headers,
            blocks_read: &mut self.blocks_read,
            out: Vec::new(),
        };
        if let Some(error) = self.host.run(now_ms, &mut self.store, &mut io).await {
            tracing::warn!(%error, "archive node's storage command failed");
        }
        let out = io.out;
        self.publish();
        out
    }
}

fn node_id(peer: PeerId) -> shoal_core::node::NodeId {
    node_link::node_id(&peer)
}

/// The node's outputs that are not the host's: messages and dials for the swarm task, events
/// for the log.
struct Carrier<'a> {
    book: &'a mut PeerBook,
    headers: &'a StoreHeaders,
    blocks_read: &'a mut u64,
    out: Vec<FromNode>,
}

impl Io for Carrier<'_> {
    fn carry_out(&mut self, output: Output, _inputs: &mut Inputs) {
        match output {
            Output::Send { to, mut message } => {
                let Some(peer) = self.book.peer(&to) else {
                    return tracing::debug!(?to, "message to a peer never met: dropped");
                };
                add_header(&mut message, self.headers);
                log_block_sent(&message, peer, self.headers);
                match node_link::encode_request(&message) {
                    Ok(bytes) => self.out.push(FromNode::Send {
                        peer,
                        answers: Key::of_answer(peer, &message),
                        bytes,
                    }),
                    Err(error) => tracing::warn!(%error, "node message does not encode"),
                }
            }
            Output::Connect { address, .. } => match node_link::parse_addresses(&address) {
                Some((peer, addrs)) => {
                    self.book.learn(peer);
                    self.out.push(FromNode::Dial { peer, addrs });
                }
                None => tracing::debug!(%address, "node asked to dial an address without /p2p"),
            },
            Output::Event(event) => {
                log_event(&event);
                if let Some(misbehaved) = misbehaved(&event, self.book) {
                    self.out.push(misbehaved);
                }
            }
            // The host's own: it keeps the timers and runs the storage commands.
            Output::SetTimer { .. } | Output::Storage(_) => {}
        }
    }

    fn stored(&mut self, command: &StorageCommand, _result: &StorageResult) {
        if matches!(command, StorageCommand::Get { .. }) {
            *self.blocks_read += 1;
        }
    }
}

/// Says in the log which block's bytes left the archive for whom (one line per block sent,
/// at `info`): how often a new block's bytes leave the block source, per cluster or per
/// holder (S14, S15), is read from these lines (tests/e2e/cluster-growth.test.mjs).
fn log_block_sent(message: &Message, peer: PeerId, headers: &StoreHeaders) {
    if let Message::BlockData { block, .. } = message {
        let height = block
            .get(..80)
            .map(|header| BlockHash(shoal_core::chain::sha256d(header)))
            .and_then(|hash| headers.height_of(&hash));
        if let Some(height) = height {
            tracing::info!(height, %peer, bytes = block.len(), "archive node: sent block");
        }
    }
}

/// Adds the header of the proof's block to a `TxAnswer` that found the transaction.
fn add_header(message: &mut Message, headers: &StoreHeaders) {
    if let Message::TxAnswer {
        answer:
            TxAnswerBody::Found {
                block_hash,
                height,
                header: header @ None,
                ..
            },
        ..
    } = message
    {
        if headers.block_hash_at(*height) == Some(*block_hash) {
            *header = headers.header_at(*height);
        }
    }
}

/// What the swarm task must know of `event`: a peer the node scored, if it is one.
pub(super) fn misbehaved(event: &Event, book: &PeerBook) -> Option<FromNode> {
    let Event::PeerMisbehaved { peer, score } = event else {
        return None;
    };
    let peer = book.peer(peer)?;
    Some(FromNode::Misbehaved {
        peer,
        score: *score,
    })
}

fn log_event(event: &Event) {
    match event {
        Event::BlockStored { height, .. } => tracing::debug!(height, "archive node: block stored"),
        Event::PeerMisbehaved { peer, score } => {
            tracing::info!(?peer, score, "archive node: peer misbehaved")
        }
        other => tracing::debug!(?other, "archive node event"),
    }
}

/// The relay's regtest generator, run on the node's thread.
pub struct Generating {
    pub source: BlockSource,
    /// Time between blocks.
    pub interval: Duration,
}

/// Where the archive's new blocks come from.
pub enum Feed {
    /// The regtest generator, on the node's thread.
    Generating(Box<Generating>),
    /// A Bitcoin network, followed by [`super::follow`] on the swarm's runtime: its updates,
    /// in order.
    Following(mpsc::Receiver<ChainUpdate>),
}

/// The node's thread and the swarm task's ends of its channels.
pub struct ArchiveThread {
    /// Where the swarm task hands the node its inputs.
    pub inbox: mpsc::Sender<ToNode>,
    /// What the node asks of the swarm task.
    pub outbox: mpsc::Receiver<FromNode>,
    thread: std::thread::JoinHandle<Result<(), ArchiveError>>,
}

impl ArchiveThread {
    /// Ends the thread and waits for it: with this end of both channels gone (drop every
    /// clone of `inbox` first), the node stops at its next input or output.
    pub fn join(self) -> Result<(), ArchiveError> {
        let ArchiveThread {
            inbox,
            outbox,
            thread,
        } = self;
        drop((inbox, outbox));
        thread.join().unwrap_or(Err(ArchiveError::Panicked))
    }
}

/// Runs `node` on a thread of its own (with `feed`'s blocks, if any), fed and answering over
/// bounded channels.
pub fn spawn(node: ArchiveNode, feed: Option<Feed>) -> Result<ArchiveThread, ArchiveError> {
    let (inbox, inputs) = mpsc::channel(CHANNEL_CAPACITY);
    let (outputs, outbox) = mpsc::channel(CHANNEL_CAPACITY);
    let thread = std::thread::Builder::new()
        .name("archive-node".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(ArchiveError::Thread)?;
            runtime.block_on(drive(node, feed, inputs, outputs))
        })
        .map_err(ArchiveError::Thread)?;
    Ok(ArchiveThread {
        inbox,
        outbox,
        thread,
    })
}

/// The node's thread: run the node, hand its outputs over, wait for the next input, timer or
/// block; until the swarm task is gone.
async fn drive(
    mut node: ArchiveNode,
    feed: Option<Feed>,
    mut inputs: mpsc::Receiver<ToNode>,
    outputs: mpsc::Sender<FromNode>,
) -> Result<(), ArchiveError> {
    let (mut generating, mut following) = match feed {
        Some(Feed::Generating(generating)) => (Some(*generating), None),
        Some(Feed::Following(updates)) => (None, Some(updates)),
        None => (None, None),
    };
    let mut next_block = generating.as_ref().map(|g| Instant::now() + g.interval);
    loop {
        for output in node.run().await {
            if outputs.send(output).await.is_err() {
                return Ok(());
            }
        }
        let wake = [node.next_deadline(), next_block]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => node.push(input),
                None => return Ok(()),
            },
            update = next_update(&mut following), if following.is_some() => match update {
                Some(update) => apply(&mut node, update, following.as_mut().expect("checked"))?,
                // The follower stopped (the relay is stopping): serve what is stored.
                None => following = None,
            },
            _ = tokio::time::sleep_until(wake.unwrap_or_else(far_future).into()), if wake.is_some() => {}
        }
        if let (Some(at), Some(generating)) = (next_block, generating.as_mut()) {
            if Instant::now() >= at {
                let (height, block) = generating.source.next(node.store(), super::now_secs())?;
                tracing::info!(height, hash = %block.block_hash(), "new block");
                node.on_new_block(&block);
                // Behind (a slow store)? The next block is due at once, as a tokio interval bursts.
                next_block = Some((at + generating.interval).max(Instant::now()));
            }
        }
    }
}

async fn next_update(following: &mut Option<mpsc::Receiver<ChainUpdate>>) -> Option<ChainUpdate> {
    following.as_mut()?.recv().await
}

/// Most blocks written in one transaction while catching up.
const CONNECT_BATCH: usize = 64;

/// Writes a followed network's update, and those queued behind it, to the store and tells the
/// node: blocks in a row go to disk in one transaction ([`ChainStore::append_all`]).
fn apply(
    node: &mut ArchiveNode,
    first: ChainUpdate,
    updates: &mut mpsc::Receiver<ChainUpdate>,
) -> Result<(), ArchiveError> {
    let mut batch: Vec<(u32, Block)> = Vec::new();
    let mut next = Some(first);
    while let Some(update) = next.take() {
        match update {
            ChainUpdate::Connect { height, block } => batch.push((height, block)),
            ChainUpdate::Rewind { to_height } => {
                connect(node, std::mem::take(&mut batch))?;
                let removed = node.store().rewind(to_height)?;
                tracing::info!(
                    to_height,
                    blocks = removed.len(),
                    "reorganisation: blocks above the fork taken off the chain"
                );
                node.on_rewind(to_height);
            }
        }
        if batch.len() < CONNECT_BATCH {
            next = updates.try_recv().ok();
        }
    }
    connect(node, batch)
}

fn connect(node: &mut ArchiveNode, batch: Vec<(u32, Block)>) -> Result<(), ArchiveError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (heights, blocks): (Vec<u32>, Vec<Block>) = batch.into_iter().unzip();
    let stored = node.store().append_all(&blocks)?;
    for ((height, block), stored) in heights.iter().zip(&blocks).zip(stored) {
        if stored != *height {
            return Err(ArchiveError::Store(StoreError::Corrupt {
                what: format!(
                    "the chain: block {} stored at {stored}, expected {height}",
                    block.block_hash()
                ),
            }));
        }
        tracing::info!(height, hash = %block.block_hash(), "new block");
    }
    node.on_new_blocks(&blocks);
    Ok(())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Why the archive node could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("archive node configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("block source: {0}")]
    Source(#[from] SourceError),
    #[error("archive node thread: {0}")]
    Thread(std::io::Error),
    #[error("archive node thread panicked")]
    Panicked,
}

#[cfg(test)]
mod tests;
