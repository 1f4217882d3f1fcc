//! The relay's core [`Node`], configured as an archive: it holds the whole chain (the redb
//! [`ChainStore`]), says hello as an archive, answers `GetBlock` from the store and takes part
//! in the cluster protocol as the core expects of an archive (S11 repair source, S14–S15 new
//! blocks). All protocol decisions are the core's; this module only carries the node's inputs
//! and outputs:
//!
//! - time: milliseconds since the relay started (a monotonic clock);
//! - headers: a [`StoreHeaders`] view of the stored chain, renewed after each new block;
//! - storage commands: carried out on the redb store at once (see [`ArchiveNode::execute`]);
//!   the node's transaction index records go to the store's `node_kv` table, so a restarted
//!   relay loads its index instead of reading the whole chain back;
//! - messages: over Shoal's request-response protocol by the convention of
//!   [`shoal_net::node_link`]. A `GetBlock` request is held open until the node's
//!   `BlockData`/`BlockNotFound` with the same `request_id` comes out, which then becomes the
//!   response; every other message is acknowledged at once, and the node's messages to a peer
//!   go out as new requests.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::request_response::ResponseChannel;
use libp2p::{PeerId, Swarm};
use shoal_core::chain::{Block, BlockHash, Header};
use shoal_core::node::{
    Config, ConfigError, Event, HeaderView, Input, Node, Output, StorageCommand, StorageResult,
    Timers,
};
use shoal_core::wire::Message;
use shoal_net::node_link::{self, PeerBook, Reply};

use super::network::Behaviour;
use super::store::{ChainStore, StoreError};

/// How long a `GetBlock` request is held open for the node's answer before it is merely
/// acknowledged (the answer, if it still comes, then goes out as a request of its own).
pub const HELD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most `GetBlock` requests held open at once; beyond this they are acknowledged at once.
pub const HELD_REQUESTS_MAX: usize = 1024;

/// A `GetBlock` request held open for the node's answer, and since when.
type HeldRequest = (ResponseChannel<Vec<u8>>, Instant);

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

    /// Appends the header of a block just stored on the tip.
    pub fn push(&mut self, header: Header) {
        let hash = header.block_hash();
        let height = self.base_height + self.headers.len() as u32;
        self.headers.push(header);
        self.hashes.push(hash);
        self.index.insert(hash, height);
    }

    /// Every stored block's hash.
    pub fn hashes(&self) -> &[BlockHash] {
        &self.hashes
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

/// The archive node and what the relay keeps to drive it.
pub struct ArchiveNode {
    node: Node,
    started: Instant,
    headers: StoreHeaders,
    book: PeerBook,
    timers: Timers,
    /// `GetBlock` requests waiting for the node's answer: (peer, request id) → channel.
    held: HashMap<(PeerId, u64), HeldRequest>,
    inputs: VecDeque<Input>,
}

impl ArchiveNode {
    /// An archive node with id `node_link::node_id(peer_id)` over `store`, started.
    pub fn start(
        store: &ChainStore,
        peer_id: PeerId,
        address: String,
        seed: u64,
    ) -> Result<ArchiveNode, ArchiveError> {
        let config = Config {
            archive: true,
            address,
            ..Config::default()
        };
        let node = Node::new(config, node_link::node_id(&peer_id), seed)?;
        let headers = StoreHeaders::load(store)?;
        let mut archive = ArchiveNode {
            node,
            started: Instant::now(),
            headers: headers.clone(),
            book: PeerBook::default(),
            timers: Timers::default(),
            held: HashMap::new(),
            inputs: VecDeque::new(),
        };
        archive.inputs.push_back(Input::Headers(Arc::new(headers)));
        archive.inputs.push_back(Input::Start);
        Ok(archive)
    }

    /// The core node (for status and tests).
    pub fn node(&self) -> &Node {
        &self.node
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// When the earliest timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let at_ms = self.timers.next_ms()?;
        Some(self.started + Duration::from_millis(at_ms))
    }

    /// Fires every due timer, acknowledges `GetBlock` requests held too long.
    pub fn on_tick(&mut self, swarm: &mut Swarm<Behaviour>, store: &ChainStore) {
        let now = self.now_ms();
        for id in self.timers.take_due(now) {
            self.inputs.push_back(Input::TimerFired(id));
        }
        let expired: Vec<(PeerId, u64)> = self
            .held
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= HELD_REQUEST_TIMEOUT)
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            if let Some((channel, _)) = self.held.remove(&key) {
                let _ = swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, node_link::ack());
            }
        }
        self.pump(swarm, store);
    }

    /// A connection to `peer` is up (its first).
    pub fn on_connected(&mut self, swarm: &mut Swarm<Behaviour>, store: &ChainStore, peer: PeerId) {
        let id = self.book.learn(peer);
        self.inputs.push_back(Input::PeerConnected { peer: id });
        self.pump(swarm, store);
    }

    /// The last connection to `peer` closed.
    pub fn on_disconnected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        store: &ChainStore,
        peer: PeerId,
    ) {
        let id = self.book.learn(peer);
        self.held.retain(|(p, _), _| *p != peer);
        self.inputs.push_back(Input::PeerDisconnected { peer: id });
        self.pump(swarm, store);
    }

    /// A request on the message protocol that is not a store query: hand it to the node.
    pub fn on_request(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        store: &ChainStore,
        peer: PeerId,
        message: Message,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let from = self.book.learn(peer);
        match &message {
            Message::GetBlock { request_id, .. } if self.held.len() < HELD_REQUESTS_MAX => {
                if let Some((old, _)) = self
                    .held
                    .insert((peer, *request_id), (channel, Instant::now()))
                {
                    // The peer reused a request id: the older request gets the acknowledgement.
                    let _ = swarm
                        .behaviour_mut()
                        .messages
                        .send_response(old, node_link::ack());
                }
            }
            _ => {
                let _ = swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, node_link::ack());
            }
        }
        self.inputs.push_back(Input::Message { from, message });
        self.pump(swarm, store);
    }

    /// The response to one of the node's own requests.
    pub fn on_response(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        store: &ChainStore,
        peer: PeerId,
        response: &[u8],
    ) {
        match node_link::decode_reply(response) {
            Ok(Reply::Ack) => {}
            Ok(Reply::Message(message)) => {
                let from = self.book.learn(peer);
                self.inputs.push_back(Input::Message { from, message });
                self.pump(swarm, store);
            }
            Err(error) => tracing::debug!(%peer, %error, "undecodable reply"),
        }
    }

    /// A block was just appended to the store (by the block source).
    pub fn on_new_block(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        store: &ChainStore,
        block: &Block,
    ) {
        self.headers.push(block.header);
        self.inputs
            .push_back(Input::Headers(Arc::new(self.headers.clone())));
        self.inputs.push_back(Input::NewBlock {
            bytes: block.encode(),
        });
        self.pump(swarm, store);
    }

    /// Feeds every queued input, draining the node's outputs after each (the drain contract).
    fn pump(&mut self, swarm: &mut Swarm<Behaviour>, store: &ChainStore) {
        while let Some(input) = self.inputs.pop_front() {
            let now = self.now_ms();
            self.node.handle_input(now, input);
            while let Some(output) = self.node.poll_output() {
                self.carry_out(swarm, store, output);
            }
        }
    }

    fn carry_out(&mut self, swarm: &mut Swarm<Behaviour>, store: &ChainStore, output: Output) {
        match output {
            Output::Send { to, message } => {
                let Some(peer) = self.book.peer(&to) else {
                    tracing::debug!(?to, "message to a peer never met: dropped");
                    return;
                };
                let answers = match &message {
                    Message::BlockData { request_id, .. }
                    | Message::BlockNotFound { request_id } => Some(*request_id),
                    _ => None,
                };
                let bytes = match node_link::encode_request(&message) {
                    Ok(bytes) => bytes,
                    Err(error) => return tracing::warn!(%error, "node message does not encode"),
                };
                if let Some((channel, _)) = answers.and_then(|id| self.held.remove(&(peer, id))) {
                    let _ = swarm.behaviour_mut().messages.send_response(channel, bytes);
                } else {
                    swarm.behaviour_mut().messages.send_request(&peer, bytes);
                }
            }
            Output::Connect { address, .. } => match node_link::parse_address(&address) {
                Some((peer, addr)) => {
                    self.book.learn(peer);
                    if let Err(error) = swarm.dial(addr) {
                        tracing::debug!(%peer, %error, "dial failed");
                        self.inputs.push_back(Input::PeerDisconnected {
                            peer: node_link::node_id(&peer),
                        });
                    }
                }
                None => tracing::debug!(%address, "node asked to dial an address without /p2p"),
            },
            Output::SetTimer { id, at_ms } => self.timers.set(id, at_ms),
            Output::Storage(command) => {
                let result = Self::execute(store, &self.headers, command);
                self.inputs.push_back(Input::Storage(result));
            }
            Output::Event(event) => log_event(&event),
        }
    }

    /// Carries out one storage command on the chain store. The store is the chain itself,
    /// written only by the block source and imports: a `Put` succeeds when the store already
    /// holds that block (it was appended before the node was told), and a `Delete` is refused
    /// by doing nothing (an archive keeps every block).
    pub fn execute(
        store: &ChainStore,
        headers: &StoreHeaders,
        command: StorageCommand,
    ) -> StorageResult {
        match command {
            StorageCommand::Put {
                request_id,
                block_hash,
                ..
            } => StorageResult::Put {
                request_id,
                ok: matches!(store.height_of(&block_hash), Ok(Some(_))),
            },
            StorageCommand::Get {
                request_id,
                block_hash,
            } => StorageResult::Got {
                request_id,
                bytes: match store.block_bytes(&block_hash) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        tracing::warn!(%error, "stored block unreadable");
                        None
                    }
                },
            },
            StorageCommand::Delete { request_id, .. } => StorageResult::Deleted { request_id },
            StorageCommand::List { request_id } => StorageResult::Listed {
                request_id,
                blocks: headers.hashes().to_vec(),
            },
            // The node's transaction index records, in the store's own table.
            StorageCommand::WriteKv { request_id, ops } => StorageResult::KvWritten {
                request_id,
                ok: match store.write_kv(&ops) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "index records not written");
                        false
                    }
                },
            },
            StorageCommand::ListKv { request_id } => StorageResult::KvListed {
                request_id,
                records: match store.kv_records() {
                    Ok(records) => records,
                    Err(error) => {
                        // The node then reads every block back into its index.
                        tracing::warn!(%error, "index records unreadable");
                        Vec::new()
                    }
                },
            },
        }
    }
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

/// Why the archive node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("archive node configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shoal_core::chain::Block;
    use shoal_core::node::{Config, Input, Node, NodeId, Output, StorageCommand};

    use super::{ArchiveNode, ChainStore, StoreHeaders};

    /// Starts an archive node over `store` and runs its storage commands there until quiet;
    /// returns how many blocks it read back.
    fn start(store: &ChainStore) -> usize {
        let config = Config {
            archive: true,
            ..Config::default()
        };
        let mut node = Node::new(config, NodeId::from_seed(3), 3).unwrap();
        let headers = StoreHeaders::load(store).unwrap();
        let mut inputs = vec![Input::Headers(Arc::new(headers.clone())), Input::Start];
        let mut gets = 0;
        while !inputs.is_empty() {
            let input = inputs.remove(0);
            node.handle_input(0, input);
            while let Some(output) = node.poll_output() {
                if let Output::Storage(command) = output {
                    gets += usize::from(matches!(command, StorageCommand::Get { .. }));
                    inputs.push(Input::Storage(ArchiveNode::execute(
                        store, &headers, command,
                    )));
                }
            }
        }
        gets
    }

    /// The archive's index records go to the store: the first start reads the block back and
    /// writes its record, a restart loads the record and reads nothing.
    #[test]
    fn a_restarted_archive_loads_its_index_instead_of_reading_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.redb");
        let block = Block::decode(bitcoin_test_data::blocks::mainnet_702861()).unwrap();
        {
            let store = ChainStore::open(&path).unwrap();
            store.append(&block).unwrap();
            assert_eq!(start(&store), 1, "no records yet: the block is read back");
            assert_eq!(
                store.kv_records().unwrap().len(),
                1,
                "its record is written"
            );
        }
        let store = ChainStore::open(&path).unwrap();
        assert_eq!(start(&store), 0, "the record is loaded");
    }
}
