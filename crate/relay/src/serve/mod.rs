//! `shoal-relay serve`: the native relay and block source.
//!
//! # Overview
//!
//! One process that (a) listens for browsers and native nodes on WebRTC-direct and WebSocket,
//! relays circuits between them, keeps a per-chain peer directory and answers identify and
//! ping ([`network`]), every connection within its limits ([`limits`], [`http::HttpLimits`]); (b) holds the whole chain on disk ([`store`]) and runs a
//! core `Node` configured as an archive over it ([`archive`]), which answers every one of
//! Shoal's serving requests — header ranges, blocks, transaction queries with Merkle proofs
//! (S14–S16) — with the core's rate limits and peer scoring, and takes part in the cluster
//! protocol as the core expects of an archive; (c) is a block source: it generates a regtest
//! chain ([`source`]) or imports one ([`import`]); (d) serves the demo page, the package and
//! its own addresses over HTTP ([`http`]), with the bytes it forwarded through circuits
//! ([`relayed`]). Peers holding a circuit reservation are listed in
//! Shoal's directory protocol ([`directory`]).
//!
//! # Two threads
//!
//! The swarm's event loop runs here, on the tokio runtime. The archive node runs on a thread
//! of its own, with its `shoal_host::Host`, the chain store and the block source
//! ([`archive::spawn`]): block reads, proof work and block writes never hold up the swarm. The
//! two talk over bounded channels ([`link`]): every message on Shoal's message protocol goes to
//! the node (the convention is `shoal_net::node_link`'s); a `GetHeaders`, `TxQuery` or
//! `GetBlock` is held open until the node's answer with the same request id comes out, which
//! becomes the response; everything else is acknowledged at once.
//!
//! # Roles and peers
//!
//! `--role archive` (the default) is what the above describes. `--role member` runs a core
//! node that is *not* an archive instead ([`member`]): no block source, only its shard on disk
//! ([`shard`]), headers followed from its `--peer` relays through the core's header sync, and
//! a place in a cluster with pages, which reach it directly (it is one of their relays) and
//! reserve circuits on it like on any relay. Either role dials every `--peer` and keeps
//! dialling it with backoff ([`PeerDials`]); its status is on `/status.json`.
//!
//! Identity key and WebRTC certificate live in the data directory ([`identity`]), so the
//! relay's addresses survive restarts. SIGINT/SIGTERM stop it cleanly: the HTTP server finishes
//! requests in flight, the node's thread ends (every block was written in its own committed
//! transaction), then the database is closed.

// Store errors carry the block hashes they are about (a few hundred bytes); they are rare
// and leave the request path at once, so boxing them buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod address;
pub mod archive;
pub mod directory;
pub mod follow;
pub mod guard;
pub mod http;
pub mod identity;
pub mod import;
pub mod limits;
pub mod link;
pub mod member;
pub mod network;
pub mod relayed;
pub mod shard;
pub mod source;
pub mod store;
#[cfg(test)]
mod test_chains;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use shoal_net::node_link;

use self::archive::{ArchiveNode, FromNode, Generating, ToNode};
use self::guard::{Guard, GuardConfig, Offence, RequestKind, Service};
use self::http::{HttpDirs, HttpLimits, NodeStatus, RelayInfo, SharedInfo, SharedStatus};
use self::limits::ConnectionCaps;
use self::link::Link;
use self::member::MemberNode;
use self::network::{Behaviour, BehaviourEvent, CircuitLimits, RequestLimits};
use self::shard::{ShardStore, SHARD_DB_FILE};
use self::source::{BlockSource, SourceConfig};
use self::store::ChainStore;

/// File name of the chain database inside the data directory.
pub const CHAIN_DB_FILE: &str = "chain.redb";

/// What the relay's node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The whole chain on disk, a block source ([`archive`]).
    Archive,
    /// A shard on disk and a place in a cluster ([`member`]).
    Member(MemberSettings),
}

/// A member relay's cluster settings (a page's `clusterSize` and `replicas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSettings {
    pub cluster_size: u32,
    pub replicas: u32,
    /// S9/S10: heartbeat interval and detection timeout, as a page's `heartbeatIntervalMs` and
    /// `offlineAfterMs` (members of one cluster should agree).
    pub heartbeat_interval_ms: u64,
    pub offline_after_ms: u64,
    /// How often formation and the S13 join look run, as a page's `formationIntervalMs`.
    pub formation_interval_ms: u64,
    /// The bytes of block storage the member offers its cluster (`Config::capacity_bytes`,
    /// which weighs placement), as a page's `capacityBytes`.
    pub capacity_bytes: u64,
}

/// A member relay's capacity unless `--capacity-bytes` says otherwise: 8 GiB, what a Chromium
/// tab alone on its origin offers (80 % of the 10 GiB free room Chromium reports to pages), so
/// that relays and tabs weigh alike in placement until an operator says what the disk holds.
pub const DEFAULT_MEMBER_CAPACITY_BYTES: u64 = 8 << 30;

impl MemberSettings {
    /// The core's (and a page's) default heartbeat interval, detection timeout and formation
    /// interval, and [`DEFAULT_MEMBER_CAPACITY_BYTES`].
    pub fn with_default_timings(cluster_size: u32, replicas: u32) -> MemberSettings {
        let defaults = shoal_core::node::Config::default();
        MemberSettings {
            cluster_size,
            replicas,
            heartbeat_interval_ms: defaults.heartbeat_interval_ms,
            offline_after_ms: defaults.offline_after_ms,
            formation_interval_ms: defaults.formation_interval_ms,
            capacity_bytes: DEFAULT_MEMBER_CAPACITY_BYTES,
        }
    }
}

/// Everything `serve` needs; the command line fills it.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub role: Role,
    /// Other relays to keep connected to, each ending in `/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
    pub network: String,
    pub data_dir: PathBuf,
    /// WebRTC-direct listens on this address over UDP, WebSocket on it over TCP.
    pub listen: SocketAddr,
    /// WebSocket port when it must differ from the WebRTC one (0: any free port).
    pub ws_port: Option<u16>,
    pub http: SocketAddr,
    pub import: Option<PathBuf>,
    /// Bitcoin nodes (`HOST:PORT`) whose network the archive follows ([`follow`]); the
    /// generator is off when there are any.
    pub bitcoin_peers: Vec<String>,
    pub addr_file: Option<PathBuf>,
    pub external_addrs: Vec<Multiaddr>,
    /// 0 disables generation (the relay then only serves what it has or imports).
    pub initial_blocks: u32,
    /// Seconds between generated blocks; 0: no new blocks after the initial ones. With
    /// `import`, blocks are mined on the imported regtest chain when it is not 0.
    pub block_interval_secs: u64,
    pub txs_per_block: u32,
    /// Generated blocks filled up to a target size drawn from this range (overrides
    /// `txs_per_block`).
    pub target_block_size_bytes: Option<std::ops::RangeInclusive<usize>>,
    pub seed: u64,
    pub http_dirs: HttpDirs,
    pub http_limits: HttpLimits,
    pub connections: ConnectionCaps,
    pub circuits: CircuitLimits,
    pub requests: RequestLimits,
    pub guard: GuardConfig,
    pub idle_connection_timeout_secs: u64,
}

/// Why the relay stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Import(#[from] import::ImportError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Transport(#[from] network::NetworkError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("following the Bitcoin network: {0}")]
    Follow(#[from] follow::FollowError),
    #[error(transparent)]
    Member(#[from] member::MemberError),
    #[error("unknown network {0}")]
    Network(String),
    #[error("--peer {0} does not end in /p2p/<peer id>")]
    PeerWithoutId(Multiaddr),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    #[error("only regtest can be generated; import blocks for network {0}")]
    CannotGenerate(String),
    #[error("cannot install the signal handler: {0}")]
    Signal(std::io::Error),
}

fn now_secs() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// How often the loop looks for requests held too long.
const HELD_TICK: Duration = Duration::from_secs(1);

/// What the event handler reads besides the swarm and the archive node.
struct Context<'a> {
    info: &'a SharedInfo,
    addr_file: Option<&'a Path>,
}

/// The relay's node on its thread: an archive or a member.
enum NodeThread {
    Archive(archive::ArchiveThread),
    Member(member::MemberThread),
}

impl NodeThread {
    fn inbox(&self) -> tokio::sync::mpsc::Sender<ToNode> {
        match self {
            NodeThread::Archive(thread) => thread.inbox.clone(),
            NodeThread::Member(thread) => thread.inbox.clone(),
        }
    }

    async fn next_output(&mut self) -> Option<FromNode> {
        match self {
            NodeThread::Archive(thread) => thread.outbox.recv().await,
            NodeThread::Member(thread) => thread.outbox.recv().await,
        }
    }

    fn join(self) -> Result<(), ServeError> {
        match self {
            NodeThread::Archive(thread) => thread.join().map_err(ServeError::from),
            NodeThread::Member(thread) => thread.join().map_err(ServeError::from),
        }
    }
}

/// How long a member relay waits for its listeners' addresses (what its invitations carry)
/// before its node starts.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Runs the relay until SIGINT or SIGTERM.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    let network: shoal_core::chain::Network = config
        .network
        .parse()
        .map_err(|_| ServeError::Network(config.network.clone()))?;
    let mut dials = PeerDials::new(&config.peers, &config.network)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let identity = identity::load_or_create(&config.data_dir)?;
    let peer_id = identity.keypair.public().to_peer_id();

    let circuits = config.circuits.clone();
    let requests = config.requests.clone();
    let connections = config.connections.clone();
    let relayed = relayed::RelayedBytes::new();
    let transport =
        network::build_relay_transport(&identity.keypair, identity.certificate.clone(), &relayed)?;
    let Ok(builder) = libp2p::SwarmBuilder::with_existing_identity(identity.keypair)
        .with_tokio()
        .with_other_transport(|_| transport);
    let mut swarm = builder
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .map_err(network::NetworkError::from)?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, &circuits, &requests, &connections)
        })
        .expect("the behaviour constructor cannot fail")
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(config.idle_connection_timeout_secs))
        })
        .build();

    for addr in listen_addrs(config.listen, config.ws_port) {
        swarm
            .listen_on(addr.clone())
            .map_err(|error| ServeError::Listen {
                addr: addr.to_string(),
                reason: error.to_string(),
            })?;
    }
    for addr in &config.external_addrs {
        swarm.add_external_address(addr.clone());
    }
    let info: SharedInfo = Arc::new(RwLock::new(RelayInfo {
        peer_id: peer_id.to_string(),
        network: config.network.clone(),
        addrs: config
            .external_addrs
            .iter()
            .map(|a| with_peer(a, peer_id).to_string())
            .collect(),
    }));
    let status: SharedStatus = Arc::new(RwLock::new(NodeStatus::default()));
    let bitcoin_status: follow::SharedBitcoinStatus = Arc::new(RwLock::new(None));
    let context = Context {
        info: &info,
        addr_file: config.addr_file.as_deref(),
    };

    let (node_thread, shard) = match config.role {
        Role::Archive => {
            let thread = start_archive(&config, network, peer_id, status.clone(), &bitcoin_status)?;
            (NodeThread::Archive(thread), None)
        }
        Role::Member(settings) => {
            let store = ShardStore::open(&config.data_dir.join(SHARD_DB_FILE))?;
            // The node's address (what its invitations carry) is every address it listens
            // on, or the external ones: wait for the listeners.
            if config.external_addrs.is_empty() {
                await_listen_addrs(&mut swarm, &context).await;
            }
            let addrs: Vec<Multiaddr> = {
                let info = info.read().expect("relay info lock poisoned");
                // WebSocket first: the faster transport between a page and a relay.
                let mut addrs: Vec<Multiaddr> =
                    info.addrs.iter().filter_map(|a| a.parse().ok()).collect();
                addrs.sort_by_key(|a: &Multiaddr| !a.iter().any(|p| matches!(p, Protocol::Ws(_))));
                addrs
            };
            let address = node_link::join_addresses(&addrs);
            let node_config = member::member_config(&settings, address)
                .map_err(|error| ServeError::Member(member::MemberError::Config(error)))?;
            let node = MemberNode::start(
                store.clone(),
                peer_id,
                node_config,
                network,
                config.seed,
                dials.peer_ids(),
                status.clone(),
            )?;
            (NodeThread::Member(member::spawn(node)?), Some(store))
        }
    };
    let mut node_thread = node_thread;
    let mut link = Link::new(node_thread.inbox());
    let inbox = link.inbox();
    let mut directory = directory::Directory::new(&config.network);

    let http_listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(ServeError::Http)?;
    let http_addr = http_listener.local_addr().map_err(ServeError::Http)?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::serve(
        http_listener,
        info.clone(),
        status.clone(),
        bitcoin_status.clone(),
        relayed,
        shard,
        config.http_dirs.clone(),
        config.http_limits.clone(),
        async move {
            let _ = http_stopped.await;
        },
    ));
    // Both handlers are in place before the relay says it started: from then on, SIGINT and
    // SIGTERM stop it cleanly, however soon they come. (Before, during an import, the default
    // action ends it at once; every write commits whole, with quick repair.)
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    println!("http: http://{http_addr}/");
    tracing::info!(%peer_id, %http_addr, role = ?config.role, "relay started");

    let mut guard = Guard::new(config.guard.clone());
    let mut held_tick = tokio::time::interval(HELD_TICK);
    let result = loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                if let Some(candidates) = dials.on_event(&event) {
                    link.candidates(candidates);
                }
                let mut state = State { link: &mut link, directory: &mut directory, guard: &mut guard };
                handle_event(&mut swarm, &mut state, &context, event);
            }
            output = node_thread.next_output() => match output {
                Some(output) => link.from_node(&mut swarm, &mut guard, output),
                // The node's thread ended on its own: its error is the relay's.
                None => break Ok(()),
            },
            permit = inbox.clone().reserve_owned(), if link.has_backlog() => match permit {
                Ok(permit) => link.flush(permit),
                Err(_) => break Ok(()),
            },
            _ = held_tick.tick() => {
                let now = std::time::Instant::now();
                link.expire(&mut swarm, now);
                dials.tick(&mut swarm, now);
                for peer in guard.expired(now) {
                    tracing::info!(%peer, "ban over");
                    swarm.behaviour_mut().blocked.unblock_peer(peer);
                }
            }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); break Ok(()); }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break Ok(()); }
        }
    };
    let _ = http_stop.send(());
    match http_task.await {
        Ok(Err(error)) => tracing::warn!(%error, "HTTP server ended with an error"),
        Err(error) => tracing::warn!(%error, "HTTP task failed"),
        Ok(Ok(())) => {}
    }
    drop(swarm);
    // The swarm task's ends of the node's channels gone, its thread ends and closes the
    // database.
    drop((link, inbox));
    let stopped = tokio::task::spawn_blocking(move || node_thread.join())
        .await
        .unwrap_or(Err(ServeError::Archive(archive::ArchiveError::Panicked)));
    tracing::info!("relay stopped; database closed");
    result.and(stopped)
}

/// Opens the chain, imports or generates its blocks and starts the archive node's thread.
fn start_archive(
    config: &ServeConfig,
    network: shoal_core::chain::Network,
    peer_id: PeerId,
    status: SharedStatus,
    bitcoin_status: &follow::SharedBitcoinStatus,
) -> Result<archive::ArchiveThread, ServeError> {
    let store = ChainStore::open(&config.data_dir.join(CHAIN_DB_FILE))?;
    if let Some(path) = &config.import {
        let report = import::import_file(&store, path, network.params())?;
        tracing::info!(?report, file = %path.display(), "imported blocks");
    }
    // A generated chain, or blocks mined on an imported regtest chain (the generator
    // resumes on what the store holds).
    let generated = config.import.is_none() && config.initial_blocks > 0;
    let mined_on_import = config.import.is_some() && config.block_interval_secs > 0;
    let source = if generated || mined_on_import {
        if config.network != "regtest" {
            return Err(ServeError::CannotGenerate(config.network.clone()));
        }
        let source_config = SourceConfig {
            initial_blocks: config.initial_blocks,
            txs_per_block: config.txs_per_block,
            target_block_size_bytes: config.target_block_size_bytes.clone(),
            seed: config.seed,
        };
        Some(BlockSource::open(&store, &source_config, now_secs())?)
    } else {
        None
    };
    if let Some(tip) = store.tip()? {
        tracing::info!(height = tip.height, hash = %tip.hash, "chain on disk");
    }
    let generating = source
        .filter(|_| config.block_interval_secs > 0)
        .map(|source| Generating {
            source,
            interval: Duration::from_secs(config.block_interval_secs),
        });
    let feed = if config.bitcoin_peers.is_empty() {
        generating.map(|generating| archive::Feed::Generating(Box::new(generating)))
    } else {
        // The task ends when the archive's thread drops its end of the updates (shutdown).
        let (_task, updates) = follow::start(
            network,
            &store,
            config.bitcoin_peers.clone(),
            bitcoin_status.clone(),
        )?;
        Some(archive::Feed::Following(updates))
    };
    let node_address = config
        .external_addrs
        .first()
        .map(|a| with_peer(a, peer_id).to_string())
        .unwrap_or_default();
    let archive =
        ArchiveNode::start(store, peer_id, node_address, config.seed)?.with_status(status);
    Ok(archive::spawn(archive, feed)?)
}

/// Handles the swarm's events until a WebRTC-direct and a WebSocket listen address are known
/// (or [`LISTEN_WAIT`] passed). Nobody can have connected yet: nothing else is expected.
async fn await_listen_addrs(swarm: &mut Swarm<Behaviour>, context: &Context<'_>) {
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    loop {
        let known = context
            .info
            .read()
            .expect("relay info lock poisoned")
            .addrs
            .clone();
        let has = |needle: &str| known.iter().any(|a| a.contains(needle));
        if has("/webrtc-direct/") && has("/ws/") {
            return;
        }
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                on_new_listen_addr(swarm, context, address)
            }
            Ok(other) => tracing::debug!(?other, "swarm event before the node started"),
            Err(_) => {
                tracing::warn!(?known, "not every listener reported its address in time");
                return;
            }
        }
    }
}

/// Most time between two dials of a `--peer` that is not connected.
pub const PEER_REDIAL_MAX: Duration = Duration::from_secs(30);
/// Time before the first redial of a `--peer`; doubled after each failure.
pub const PEER_REDIAL_MIN: Duration = Duration::from_millis(500);
/// How often a connected `--peer`'s directory is asked who holds a reservation there.
pub const PEER_DIRECTORY_INTERVAL: Duration = Duration::from_secs(3);

/// The `--peer` relays. Each is dialled at start and again, with exponential backoff, whenever
/// it is not connected; once connected, this relay holds a circuit reservation on it (so that
/// it is listed in the peer's directory: pages there find it) and asks its directory every
/// [`PEER_DIRECTORY_INTERVAL`] who else is there — the node's candidates, reached through the
/// peer's circuits.
#[derive(Debug)]
pub struct PeerDials {
    peers: Vec<PeerDial>,
    /// The directory lookup for this relay's chain.
    lookup: Option<Vec<u8>>,
    /// Directory lookups on their way → the peer asked.
    lookups: std::collections::HashMap<request_response::OutboundRequestId, PeerId>,
}

#[derive(Debug)]
struct PeerDial {
    peer: PeerId,
    addr: Multiaddr,
    connected: bool,
    dialling: bool,
    next_dial: std::time::Instant,
    backoff: Duration,
    /// The listener of our reservation on it, while it lasts.
    reservation: Option<libp2p::core::transport::ListenerId>,
    next_lookup: std::time::Instant,
}

impl PeerDials {
    /// The peers of `addrs` (each must end in `/p2p/<peer id>`) for the chain called
    /// `network`; all due at once.
    pub fn new(addrs: &[Multiaddr], network: &str) -> Result<PeerDials, ServeError> {
        let now = std::time::Instant::now();
        let peers = addrs
            .iter()
            .map(|addr| match addr.iter().last() {
                Some(Protocol::P2p(peer)) => Ok(PeerDial {
                    peer,
                    addr: addr.clone(),
                    connected: false,
                    dialling: false,
                    next_dial: now,
                    backoff: PEER_REDIAL_MIN,
                    reservation: None,
                    next_lookup: now,
                }),
                _ => Err(ServeError::PeerWithoutId(addr.clone())),
            })
            .collect::<Result<_, _>>()?;
        Ok(PeerDials {
            peers,
            lookup: shoal_net::directory::encode_lookup(network),
            lookups: std::collections::HashMap::new(),
        })
    }

    /// The peers' ids.
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.peers.iter().map(|p| p.peer).collect()
    }

    /// Dials every peer that is neither connected nor being dialled and whose wait is over;
    /// reserves a circuit slot on every connected one without a reservation, and asks the
    /// directory of each whose lookup is due.
    pub fn tick(&mut self, swarm: &mut Swarm<Behaviour>, now: std::time::Instant) {
        for dial in &mut self.peers {
            if !dial.connected && swarm.is_connected(&dial.peer) {
                dial.connected = true;
            }
            if dial.connected {
                if dial.reservation.is_none() {
                    match swarm.listen_on(dial.addr.clone().with(Protocol::P2pCircuit)) {
                        Ok(id) => dial.reservation = Some(id),
                        Err(error) => {
                            tracing::debug!(peer = %dial.peer, %error, "cannot reserve on peer relay")
                        }
                    }
                }
                let asking = self.lookups.values().any(|p| *p == dial.peer);
                if let (Some(lookup), false, true) = (&self.lookup, asking, now >= dial.next_lookup)
                {
                    dial.next_lookup = now + PEER_DIRECTORY_INTERVAL;
                    let id = swarm
                        .behaviour_mut()
                        .directory
                        .send_request(&dial.peer, lookup.clone());
                    self.lookups.insert(id, dial.peer);
                }
                continue;
            }
            if dial.dialling || now < dial.next_dial {
                continue;
            }
            let opts = DialOpts::peer_id(dial.peer)
                .addresses(vec![dial.addr.clone()])
                .build();
            match swarm.dial(opts) {
                Ok(()) => dial.dialling = true,
                Err(error) => {
                    tracing::debug!(peer = %dial.peer, %error, "cannot dial peer relay");
                    dial.wait_longer(now);
                }
            }
        }
    }

    /// Follows the swarm's connections to, dials of and reservations on the peers; returns
    /// the peers a peer's directory named (with their address through its circuits).
    pub fn on_event(
        &mut self,
        event: &SwarmEvent<BehaviourEvent>,
    ) -> Option<Vec<(PeerId, Multiaddr)>> {
        let now = std::time::Instant::now();
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                for dial in self.peers.iter_mut().filter(|d| d.peer == *peer_id) {
                    if !dial.connected {
                        tracing::info!(peer = %dial.peer, "peer relay connected");
                    }
                    dial.connected = true;
                    dial.dialling = false;
                    dial.backoff = PEER_REDIAL_MIN;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                for dial in self.peers.iter_mut().filter(|d| d.peer == *peer_id) {
                    tracing::info!(peer = %dial.peer, "peer relay disconnected");
                    dial.connected = false;
                    dial.dialling = false;
                    dial.next_dial = now + dial.backoff;
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer_id),
                error,
                ..
            } => {
                for dial in self
                    .peers
                    .iter_mut()
                    .filter(|d| d.peer == *peer_id && !d.connected)
                {
                    tracing::debug!(peer = %dial.peer, %error, "peer relay not reached");
                    dial.dialling = false;
                    dial.wait_longer(now);
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                for dial in self
                    .peers
                    .iter_mut()
                    .filter(|d| d.reservation == Some(*listener_id))
                {
                    tracing::debug!(peer = %dial.peer, "reservation on peer relay ended");
                    dial.reservation = None;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                libp2p::relay::client::Event::ReservationReqAccepted { relay_peer_id, .. },
            )) => tracing::info!(peer = %relay_peer_id, "reserved a circuit slot on peer relay"),
            SwarmEvent::Behaviour(BehaviourEvent::Directory(
                request_response::Event::OutboundFailure { request_id, .. },
            )) => {
                self.lookups.remove(request_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Directory(
                request_response::Event::Message {
                    message:
                        RrMessage::Response {
                            request_id,
                            response,
                        },
                    ..
                },
            )) => {
                let asked = self.lookups.remove(request_id)?;
                let dial = self.peers.iter().find(|d| d.peer == asked)?;
                let through = dial.addr.clone().with(Protocol::P2pCircuit);
                let peers = shoal_net::directory::decode_peers(response).ok()?;
                return Some(
                    peers
                        .into_iter()
                        .map(|peer| (peer, node_link::address_of(&through, peer)))
                        .collect(),
                );
            }
            _ => {}
        }
        None
    }
}

impl PeerDial {
    fn wait_longer(&mut self, now: std::time::Instant) {
        self.next_dial = now + self.backoff;
        self.backoff = (self.backoff * 2).min(PEER_REDIAL_MAX);
    }
}

/// The WebRTC-direct (UDP) and WebSocket (TCP) listen addresses for `listen`.
pub fn listen_addrs(listen: SocketAddr, ws_port: Option<u16>) -> [Multiaddr; 2] {
    let ip = Multiaddr::from(listen.ip());
    let webrtc = ip
        .clone()
        .with(Protocol::Udp(listen.port()))
        .with(Protocol::WebRTCDirect);
    let ws = ip
        .with(Protocol::Tcp(ws_port.unwrap_or(listen.port())))
        .with(Protocol::Ws("/".into()));
    [webrtc, ws]
}

fn with_peer(addr: &Multiaddr, peer_id: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.clone()
    } else {
        addr.clone().with(Protocol::P2p(peer_id))
    }
}

/// A listener is up at `address`: it becomes an external address, `/relay-addrs.json` and the
/// address file list it.
fn on_new_listen_addr(swarm: &mut Swarm<Behaviour>, context: &Context<'_>, address: Multiaddr) {
    if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
        // A reservation on a peer relay: how pages on that relay reach this one, not one of
        // this relay's own addresses.
        return tracing::info!(%address, "reachable through a peer relay");
    }
    let full = with_peer(&address, *swarm.local_peer_id());
    swarm.add_external_address(address);
    println!("listening: {full}");
    let addrs = {
        let mut info = context.info.write().expect("relay info lock poisoned");
        if !info.addrs.contains(&full.to_string()) {
            info.addrs.push(full.to_string());
        }
        info.addrs.clone()
    };
    if let Some(path) = context.addr_file {
        let mut text = addrs.join("\n");
        text.push('\n');
        if let Err(error) = identity::write_atomically(path, text.as_bytes()) {
            tracing::warn!(%error, "cannot write the address file");
        }
    }
}

/// The swarm task's state that its events change.
struct State<'a> {
    link: &'a mut Link,
    directory: &'a mut directory::Directory,
    guard: &'a mut Guard,
}

fn handle_event(
    swarm: &mut Swarm<Behaviour>,
    state: &mut State<'_>,
    context: &Context<'_>,
    event: SwarmEvent<BehaviourEvent>,
) {
    let Context { info, .. } = *context;
    let now = std::time::Instant::now();
    match event {
        SwarmEvent::NewListenAddr { address, .. } => on_new_listen_addr(swarm, context, address),
        SwarmEvent::ExpiredListenAddr { address, .. } => {
            let full = with_peer(&address, *swarm.local_peer_id()).to_string();
            info.write()
                .expect("relay info lock poisoned")
                .addrs
                .retain(|a| *a != full);
            swarm.remove_external_address(&address);
        }
        SwarmEvent::ConnectionEstablished {
            peer_id,
            endpoint,
            num_established,
            ..
        } => {
            tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
            state
                .guard
                .connected(peer_id, endpoint.get_remote_address());
            if num_established.get() == 1 {
                state.link.connected(peer_id);
            }
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            cause,
            num_established,
            ..
        } => {
            tracing::debug!(%peer_id, ?cause, "disconnected");
            state.guard.disconnected(peer_id, num_established);
            if num_established == 0 {
                state.directory.on_disconnected(&peer_id);
                state.link.disconnected(peer_id);
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Messages(event)) => {
            on_service_event(swarm, state, Service::Messages, event, now)
        }
        SwarmEvent::Behaviour(BehaviourEvent::Probe(event)) => {
            on_service_event(swarm, state, Service::Probe, event, now)
        }
        SwarmEvent::Behaviour(BehaviourEvent::Directory(event)) => {
            on_service_event(swarm, state, Service::Directory, event, now)
        }
        SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
            state.directory.on_relay_event(&event);
            tracing::info!(?event, "relay");
        }
        _ => {}
    }
}

/// An event of one of the relay's request-response services. Every request passes the guard
/// first, which follows it until its response is sent or fails.
fn on_service_event(
    swarm: &mut Swarm<Behaviour>,
    state: &mut State<'_>,
    service: Service,
    event: request_response::Event<Vec<u8>, Vec<u8>>,
    now: std::time::Instant,
) {
    let State {
        link,
        directory,
        guard,
    } = state;
    match event {
        request_response::Event::Message {
            peer,
            message:
                RrMessage::Request {
                    request_id,
                    request,
                    channel,
                },
            ..
        } => {
            let key = (service, request_id);
            if service == Service::Messages {
                let message = match node_link::decode_request(&request) {
                    Ok(message) => message,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "undecodable request");
                        return strike(swarm, guard, peer, Offence::Undecodable, now);
                    }
                };
                if link.holds(peer, &message) {
                    let refused = Offence::Refused(guard::Refusal::ReusedId);
                    tracing::debug!(%peer, "request refused: reused id");
                    return strike(swarm, guard, peer, refused, now);
                }
                let kind = match message {
                    shoal_core::wire::Message::GetBlock { .. } => RequestKind::Block,
                    _ => RequestKind::Other,
                };
                if admit(swarm, guard, peer, key, kind, now) {
                    let ip = guard.address_of(&peer);
                    link.request(swarm, peer, ip, message, (channel, request_id));
                }
                return;
            }
            if !admit(swarm, guard, peer, key, RequestKind::Other, now) {
                return;
            }
            let (answer, behaviour) = if service == Service::Probe {
                tracing::info!(%peer, bytes = request.len(), "probe received");
                let digest = Sha256::digest(&request).to_vec();
                (digest, &mut swarm.behaviour_mut().probe)
            } else {
                let answer = directory.answer(&peer, &request);
                (answer, &mut swarm.behaviour_mut().directory)
            };
            let len = answer.len();
            match behaviour.send_response(channel, answer) {
                Ok(()) => guard.responding(key, len),
                Err(_) => tracing::debug!(%peer, ?service, "peer left before the answer"),
            }
        }
        // The directory's answers to this relay's lookups are `PeerDials`' (it saw them first).
        request_response::Event::Message {
            peer,
            message:
                RrMessage::Response {
                    request_id,
                    response,
                },
            ..
        } if service == Service::Messages => {
            guard.push_finished(request_id);
            link.response(peer, guard.address_of(&peer), response);
        }
        request_response::Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } if service == Service::Messages => {
            guard.push_finished(request_id);
            tracing::debug!(%peer, %error, "archive node's message not delivered");
        }
        request_response::Event::ResponseSent { request_id, .. } => {
            guard.finished((service, request_id))
        }
        request_response::Event::InboundFailure {
            peer,
            request_id,
            error,
            ..
        } => {
            tracing::debug!(%peer, ?service, %error, "inbound request failed");
            guard.finished((service, request_id));
        }
        _ => {}
    }
}

/// Whether the guard lets `peer`'s request through; a refused request's stream is dropped
/// (the caller drops its channel), and a ban it brings is carried out.
fn admit(
    swarm: &mut Swarm<Behaviour>,
    guard: &mut Guard,
    peer: PeerId,
    key: guard::RequestKey,
    kind: RequestKind,
    now: std::time::Instant,
) -> bool {
    match guard.admit(peer, key, kind, now) {
        Ok(()) => true,
        Err((refusal, ban)) => {
            tracing::debug!(%peer, %refusal, "request refused");
            if let Some(ban) = ban {
                link::enforce(swarm, &ban);
            }
            false
        }
    }
}

fn strike(
    swarm: &mut Swarm<Behaviour>,
    guard: &mut Guard,
    peer: PeerId,
    offence: Offence,
    now: std::time::Instant,
) {
    if let Some(ban) = guard.strike(peer, offence, now) {
        link::enforce(swarm, &ban);
    }
}
