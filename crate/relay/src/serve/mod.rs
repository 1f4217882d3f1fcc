//! `shoal-relay serve`: the native relay and block source.
//!
//! # Overview
//!
//! One process that (a) listens for browsers and native nodes on WebRTC-direct and WebSocket,
//! relays circuits between them, keeps a per-chain peer directory (rendezvous) and answers
//! identify and ping ([`network`]); (b) holds the whole chain on disk ([`store`]) and runs a
//! core `Node` configured as an archive over it ([`archive`]), which answers every one of
//! Shoal's serving requests — header ranges, blocks, transaction queries with Merkle proofs
//! (S14–S16) — with the core's rate limits and peer scoring, and takes part in the cluster
//! protocol as the core expects of an archive; (c) is a block source: it generates a regtest
//! chain ([`source`]) or imports one ([`import`]); (d) serves the demo page, the package and
//! its own addresses over HTTP ([`http`]). Peers holding a circuit reservation are listed in
//! Shoal's directory protocol ([`directory`]) besides rendezvous.
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
//! Identity key and WebRTC certificate live in the data directory ([`identity`]), so the
//! relay's addresses survive restarts. SIGINT/SIGTERM stop it cleanly: the HTTP server finishes
//! requests in flight, the node's thread ends (every block was written in its own committed
//! transaction), then the database is closed.

// Store errors carry the block hashes they are about (a few hundred bytes); they are rare
// and leave the request path at once, so boxing them buys nothing measurable.
#![allow(clippy::result_large_err)]

pub mod archive;
pub mod directory;
pub mod http;
pub mod identity;
pub mod import;
pub mod link;
pub mod network;
pub mod source;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use shoal_net::node_link;

use self::archive::{ArchiveNode, Generating};
use self::http::{HttpDirs, RelayInfo, SharedInfo};
use self::link::Link;
use self::network::{Behaviour, BehaviourEvent, CircuitLimits, RequestLimits};
use self::source::{BlockSource, SourceConfig};
use self::store::ChainStore;

/// File name of the chain database inside the data directory.
pub const CHAIN_DB_FILE: &str = "chain.redb";

/// Everything `serve` needs; the command line fills it.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub network: String,
    pub data_dir: PathBuf,
    /// WebRTC-direct listens on this address over UDP, WebSocket on it over TCP.
    pub listen: SocketAddr,
    /// WebSocket port when it must differ from the WebRTC one (0: any free port).
    pub ws_port: Option<u16>,
    pub http: SocketAddr,
    pub import: Option<PathBuf>,
    pub addr_file: Option<PathBuf>,
    pub external_addrs: Vec<Multiaddr>,
    /// 0 disables generation (the relay then only serves what it has or imports).
    pub initial_blocks: u32,
    /// Seconds between generated blocks; 0: no new blocks after the initial ones.
    pub block_interval_secs: u64,
    pub txs_per_block: u32,
    pub seed: u64,
    pub http_dirs: HttpDirs,
    pub circuits: CircuitLimits,
    pub requests: RequestLimits,
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
    Network(#[from] network::NetworkError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
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

/// Runs the relay until SIGINT or SIGTERM.
pub async fn run(config: ServeConfig) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let identity = identity::load_or_create(&config.data_dir)?;
    let peer_id = identity.keypair.public().to_peer_id();
    let store = ChainStore::open(&config.data_dir.join(CHAIN_DB_FILE))?;

    if let Some(path) = &config.import {
        let report = import::import_file(&store, path)?;
        tracing::info!(?report, file = %path.display(), "imported blocks");
    }
    let source = if config.import.is_none() && config.initial_blocks > 0 {
        if config.network != "regtest" {
            return Err(ServeError::CannotGenerate(config.network.clone()));
        }
        let source_config = SourceConfig {
            initial_blocks: config.initial_blocks,
            txs_per_block: config.txs_per_block,
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

    let circuits = config.circuits.clone();
    let requests = config.requests.clone();
    let transport = network::build_transport(&identity.keypair, identity.certificate.clone())?;
    let Ok(builder) = libp2p::SwarmBuilder::with_existing_identity(identity.keypair)
        .with_tokio()
        .with_other_transport(|_| transport);
    let mut swarm = builder
        .with_behaviour(|key| Behaviour::new(key, &circuits, &requests))
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
    let node_address = config
        .external_addrs
        .first()
        .map(|a| with_peer(a, peer_id).to_string())
        .unwrap_or_default();
    let archive = ArchiveNode::start(store, peer_id, node_address, config.seed)?;
    let mut archive = archive::spawn(archive, generating)?;
    let mut link = Link::new(archive.inbox.clone());
    let inbox = link.inbox();
    let mut directory = directory::Directory::new(&config.network);

    let info: SharedInfo = Arc::new(RwLock::new(RelayInfo {
        peer_id: peer_id.to_string(),
        network: config.network.clone(),
        addrs: config
            .external_addrs
            .iter()
            .map(|a| with_peer(a, peer_id).to_string())
            .collect(),
    }));
    let http_listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(ServeError::Http)?;
    let http_addr = http_listener.local_addr().map_err(ServeError::Http)?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::serve(
        http_listener,
        info.clone(),
        config.http_dirs.clone(),
        async move {
            let _ = http_stopped.await;
        },
    ));
    println!("http: http://{http_addr}/");
    tracing::info!(%peer_id, %http_addr, "relay started");

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signal)?;
    let mut held_tick = tokio::time::interval(HELD_TICK);
    let context = Context {
        info: &info,
        addr_file: config.addr_file.as_deref(),
    };
    let result = loop {
        tokio::select! {
            event = swarm.select_next_some() => {
                handle_event(&mut swarm, &mut link, &mut directory, &context, event);
            }
            output = archive.outbox.recv() => match output {
                Some(output) => link.from_node(&mut swarm, output),
                // The node's thread ended on its own: its error is the relay's.
                None => break Ok(()),
            },
            permit = inbox.clone().reserve_owned(), if link.has_backlog() => match permit {
                Ok(permit) => link.flush(permit),
                Err(_) => break Ok(()),
            },
            _ = held_tick.tick() => link.expire(&mut swarm, std::time::Instant::now()),
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break Ok(()); }
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
    let stopped = tokio::task::spawn_blocking(move || archive.join())
        .await
        .unwrap_or(Err(archive::ArchiveError::Panicked));
    tracing::info!("relay stopped; chain database closed");
    result.and(stopped.map_err(ServeError::from))
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

fn handle_event(
    swarm: &mut Swarm<Behaviour>,
    link: &mut Link,
    directory: &mut directory::Directory,
    context: &Context<'_>,
    event: SwarmEvent<BehaviourEvent>,
) {
    let Context { info, addr_file } = *context;
    match event {
        SwarmEvent::NewListenAddr { address, .. } => {
            let full = with_peer(&address, *swarm.local_peer_id());
            swarm.add_external_address(address);
            println!("listening: {full}");
            let addrs = {
                let mut info = info.write().expect("relay info lock poisoned");
                if !info.addrs.contains(&full.to_string()) {
                    info.addrs.push(full.to_string());
                }
                info.addrs.clone()
            };
            if let Some(path) = addr_file {
                let mut text = addrs.join("\n");
                text.push('\n');
                if let Err(error) = identity::write_atomically(path, text.as_bytes()) {
                    tracing::warn!(%error, "cannot write the address file");
                }
            }
        }
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
            if num_established.get() == 1 {
                link.connected(peer_id);
            }
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            cause,
            num_established,
            ..
        } => {
            tracing::debug!(%peer_id, ?cause, "disconnected");
            if num_established == 0 {
                directory.on_disconnected(&peer_id);
                link.disconnected(peer_id);
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Messages(request_response::Event::Message {
            peer,
            message: RrMessage::Request {
                request, channel, ..
            },
            ..
        })) => match node_link::decode_request(&request) {
            Ok(message) => link.request(swarm, peer, message, channel),
            Err(error) => tracing::debug!(%peer, %error, "undecodable request"),
        },
        SwarmEvent::Behaviour(BehaviourEvent::Messages(request_response::Event::Message {
            peer,
            message: RrMessage::Response { response, .. },
            ..
        })) => link.response(peer, response),
        SwarmEvent::Behaviour(BehaviourEvent::Messages(
            request_response::Event::OutboundFailure { peer, error, .. },
        )) => tracing::debug!(%peer, %error, "archive node's message not delivered"),
        SwarmEvent::Behaviour(BehaviourEvent::Probe(request_response::Event::Message {
            peer,
            message: RrMessage::Request {
                request, channel, ..
            },
            ..
        })) => {
            let digest = Sha256::digest(&request).to_vec();
            tracing::info!(%peer, bytes = request.len(), "probe received");
            if swarm
                .behaviour_mut()
                .probe
                .send_response(channel, digest)
                .is_err()
            {
                tracing::debug!(%peer, "peer left before the probe answer");
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Messages(
            request_response::Event::InboundFailure { peer, error, .. },
        ))
        | SwarmEvent::Behaviour(BehaviourEvent::Probe(request_response::Event::InboundFailure {
            peer,
            error,
            ..
        })) => tracing::debug!(%peer, %error, "inbound request failed"),
        SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => {
            directory.on_relay_event(&event);
            tracing::info!(?event, "relay");
        }
        SwarmEvent::Behaviour(BehaviourEvent::Directory(request_response::Event::Message {
            peer,
            message: RrMessage::Request {
                request, channel, ..
            },
            ..
        })) => {
            let answer = directory.answer(&peer, &request);
            if swarm
                .behaviour_mut()
                .directory
                .send_response(channel, answer)
                .is_err()
            {
                tracing::debug!(%peer, "peer left before the directory answer");
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(event)) => {
            tracing::debug!(?event, "directory")
        }
        _ => {}
    }
}
