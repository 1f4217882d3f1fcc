//! The relay's HTTP server: the demo page (`www/`), the npm package (`dist/`) and the relay's
//! own addresses, so the demo needs no other server.
//!
//! `GET /relay-addrs.json` answers `{"peer_id": "...", "network": "regtest",
//! "addrs": ["/ip4/…/udp/…/webrtc-direct/certhash/…/p2p/…", "/ip4/…/tcp/…/ws/p2p/…"]}`:
//! a page served here dials the relay from it (S1: nodes find peers through relays).
//!
//! `GET /status.json` answers the relay's node: `{"role": "archive" | "member", "synced",
//! "tip_height", "cluster_id", "member_number", "members", "held_blocks", "chain_bytes",
//! "blocks_fetched", "bytes_fetched", "blocks_served"}` as of its last round (`chain_bytes`:
//! an archive's whole chain in bytes, `null` for a member), `"relayed_bytes"` (the bytes the
//! relay has forwarded through the circuits it serves since it started, both directions, each
//! byte once: see [`super::relayed`]; read at the time of the request), and for a member relay
//! `"held": [{"height", "block_hash"}]`, its shard as it is on disk at the time of the request,
//! and for an archive following a Bitcoin network `"bitcoin"`: its header and stored tips, its
//! counters and each `--bitcoin-peer` ([`super::follow::BitcoinStatus`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::services::ServeDir;

use super::address::AddressKey;
use super::follow::{BitcoinStatus, SharedBitcoinStatus};
use super::relayed::RelayedBytes;
use super::shard::ShardStore;

/// What `/relay-addrs.json` says.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RelayInfo {
    pub peer_id: String,
    pub network: String,
    /// Full multiaddrs, each ending in `/p2p/<peer_id>`.
    pub addrs: Vec<String>,
}

/// What `/status.json` says of the relay's node (see the module docs).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub role: String,
    pub synced: bool,
    pub tip_height: u32,
    /// Whether the node has been handed the header chain.
    pub has_headers: bool,
    pub cluster_id: Option<String>,
    pub member_number: Option<usize>,
    /// Peer ids, in member-number order.
    pub members: Vec<String>,
    pub held_blocks: usize,
    /// An archive's: bytes of every block of its chain (`None` for a member relay).
    pub chain_bytes: Option<u64>,
    pub blocks_fetched: u64,
    pub bytes_fetched: u64,
    pub blocks_served: u64,
    /// A member's: blocks its shard lacks (queued, in flight, or waiting for a source).
    pub missing_blocks: usize,
    /// A member's: blocks it keeps as spares (no longer its own under the view) until every
    /// holder proved it holds them (issue 16).
    pub spare_blocks: usize,
    /// A member's: challenges it sent, and the proofs that passed and failed.
    pub hold_challenges_sent: u64,
    pub hold_proofs_passed: u64,
    pub hold_proofs_failed: u64,
    /// A member's: its challenges that got no answer in time, and mates' it answered.
    pub hold_challenges_unanswered: u64,
    pub hold_challenges_answered: u64,
    /// A member's repair state in one line (for diagnosis).
    pub repair: Option<String>,
}

/// The node's status, written by its thread after each round.
pub type SharedStatus = Arc<RwLock<NodeStatus>>;

/// One block of a member relay's shard.
#[derive(Debug, Clone, Serialize)]
struct HeldBlock {
    height: u32,
    block_hash: String,
}

#[derive(Debug, Clone, Serialize)]
struct StatusAnswer {
    #[serde(flatten)]
    node: NodeStatus,
    /// Bytes forwarded through circuits ([`RelayedBytes`]).
    relayed_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<Vec<HeldBlock>>,
    /// An archive following a Bitcoin network: its peers and chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    bitcoin: Option<BitcoinStatus>,
}

/// The relay info shared between the swarm loop (writer) and the HTTP server (reader).
pub type SharedInfo = Arc<RwLock<RelayInfo>>;

/// Where the HTTP server finds its files.
#[derive(Debug, Clone)]
pub struct HttpDirs {
    pub www: PathBuf,
    pub dist: PathBuf,
}

/// The HTTP server's limits: what one client, or all of them, can hold open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once, all clients together; one more is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address, an IPv4 address or an IPv6 /64 (so that one
    /// client cannot take them all).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers (each request's, on a kept-alive
    /// connection too): a slow client (slowloris) is closed when it runs out.
    pub header_timeout: Duration,
    /// Longest life of a connection, however busy: then it is closed once its request in
    /// flight is answered.
    pub max_connection_age: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 32,
            header_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(300),
        }
    }
}

/// Connections open per address ([`AddressKey`]); an entry goes when its last connection does.
#[derive(Default)]
struct PerIp(Mutex<HashMap<AddressKey, usize>>);

/// One connection counted in [`PerIp`] until dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: AddressKey,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: AddressKey, max: usize) -> Option<IpSlot> {
        let mut open = self.0.lock().expect("per-ip lock poisoned");
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.0.lock().expect("per-ip lock poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves until `shutdown` resolves, then finishes the requests in flight, within `limits`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: tokio::net::TcpListener,
    info: SharedInfo,
    status: SharedStatus,
    bitcoin: SharedBitcoinStatus,
    relayed: RelayedBytes,
    shard: Option<ShardStore>,
    dirs: HttpDirs,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/status.json",
            get(move || {
                let node = status.read().map(|s| s.clone()).unwrap_or_default();
                let bitcoin = bitcoin.read().ok().and_then(|b| b.clone());
                let relayed_bytes = relayed.total();
                let shard = shard.clone();
                async move {
                    let held = match shard {
                        // A redb read; off the async workers.
                        Some(shard) => {
                            match tokio::task::spawn_blocking(move || shard.held()).await {
                                Ok(Ok(held)) => Some(
                                    held.into_iter()
                                        .map(|(height, hash)| HeldBlock {
                                            height,
                                            block_hash: hash.to_string(),
                                        })
                                        .collect(),
                                ),
                                Ok(Err(error)) => {
                                    let text = format!("cannot read the shard: {error}");
                                    return (StatusCode::INTERNAL_SERVER_ERROR, text)
                                        .into_response();
                                }
                                Err(_) => {
                                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                                }
                            }
                        }
                        None => None,
                    };
                    let answer = StatusAnswer {
                        node,
                        relayed_bytes,
                        held,
                        bitcoin,
                    };
                    ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
                }
            }),
        )
        .route(
            "/relay-addrs.json",
            get(move || {
                let info = info.read().map(|info| info.clone()).unwrap_or_default();
                async move { ([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response() }
            }),
        )
        .nest_service("/dist", ServeDir::new(dirs.dist))
        .fallback_service(ServeDir::new(dirs.www));
    serve_limited(listener, app, limits, shutdown).await
}

/// The accept loop: every connection is counted against `limits` (one over a limit is closed
/// at once, and the log says so once a minute, not per connection), served over HTTP/1.1
/// with the header timeout and closed at its maximum age; on `shutdown` no new connection is
/// taken and those open finish their request in flight (at most 5 s).
async fn serve_limited(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let total = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut refused = RefusalLog::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(%error, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = total.clone().try_acquire_owned() else {
            refused.note("all connections in use", limits.max_connections);
            continue;
        };
        let Some(slot) = per_ip.take(AddressKey::of(remote.ip()), limits.max_connections_per_ip)
        else {
            refused.note(
                "too many connections from one address",
                limits.max_connections_per_ip,
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let (header_timeout, max_age) = (limits.header_timeout, limits.max_connection_age);
        connections.spawn(async move {
            let _held = (permit, slot);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let age = tokio::time::sleep(max_age);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = age => {}
                _ = stop.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        });
    }
    let _ = stop_tx.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(6), drained)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    Ok(())
}

/// Says in the log that connections are being refused: once per minute at most, with how
/// many since the last line.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RefusalLog {
    fn note(&mut self, why: &str, limit: usize) {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        tracing::warn!(
            refused = self.since,
            limit,
            "http: connection refused: {why}"
        );
        self.last = Some(std::time::Instant::now());
        self.since = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};

    use super::*;

    /// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 is all loopback
    /// on Linux: each address is another client to the server).
    async fn connect(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
        socket.connect(to).await.unwrap()
    }

    /// Whether the server closed `stream` (EOF or reset) within `within`.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("the server answered a request it never got whole"),
            Err(_) => false,
        }
    }

    async fn get(from: Ipv4Addr, to: SocketAddr, path: &str) -> String {
        let mut stream = connect(from, to).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .expect("answered in time")
            .unwrap();
        answer
    }

    /// Slowloris from one address: past the per-address limit its connections are closed at
    /// once; those let in are closed at the header timeout although they keep sending a byte
    /// at a time; meanwhile another client is served; afterwards that address can connect
    /// again (its count went back down).
    #[tokio::test]
    async fn slow_clients_are_capped_per_address_and_closed_at_the_header_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let info: SharedInfo = Arc::new(RwLock::new(RelayInfo {
            peer_id: "12D3KooWtest".into(),
            network: "regtest".into(),
            addrs: vec!["/ip4/127.0.0.1/tcp/1/ws".into()],
        }));
        let dir = tempfile::tempdir().unwrap();
        let dirs = HttpDirs {
            www: dir.path().into(),
            dist: dir.path().into(),
        };
        let limits = HttpLimits {
            max_connections: 64,
            max_connections_per_ip: 8,
            header_timeout: Duration::from_secs(3),
            max_connection_age: Duration::from_secs(60),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            info,
            SharedStatus::default(),
            SharedBitcoinStatus::default(),
            RelayedBytes::new(),
            None,
            dirs,
            limits,
            async move {
                let _ = stopped.await;
            },
        ));

        let attacker = Ipv4Addr::new(127, 0, 0, 2);
        let mut slow = Vec::new();
        for _ in 0..40 {
            let mut stream = connect(attacker, addr).await;
            // A request line, and then the headers never end.
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            slow.push(stream);
        }
        let started = Instant::now();
        // Past the 8th, each is closed at once.
        let mut open: Vec<TcpStream> = Vec::new();
        for mut stream in slow {
            if !closed_within(&mut stream, Duration::from_millis(100)).await {
                open.push(stream);
            }
        }
        assert_eq!(
            open.len(),
            8,
            "all but the per-address limit closed at once"
        );
        // The others keep trickling; another client is served meanwhile.
        let answer = get(Ipv4Addr::LOCALHOST, addr, "/relay-addrs.json").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("12D3KooWtest"), "{answer}");
        let mut closed = 0;
        for _ in 0..20 {
            for stream in open.iter_mut() {
                let _ = stream.write_all(b"-Trickle: y\r\n").await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            closed = 0;
            for stream in open.iter_mut() {
                if closed_within(stream, Duration::from_millis(10)).await {
                    closed += 1;
                }
            }
            if closed == open.len() {
                break;
            }
        }
        assert_eq!(closed, 8, "every slow client closed at the header timeout");
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "not before the timeout"
        );
        // Its slots are free again.
        let answer = get(attacker, addr, "/relay-addrs.json").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }

    /// The HTTP cap counts an IPv6 client by its /64 and a mapped IPv4 client (a dual-stack
    /// listener's `::ffff:a.b.c.d`) as its IPv4 address; a slot given back frees its place.
    #[test]
    fn http_connections_are_counted_per_ipv6_64_and_per_ipv4_address() {
        let per_ip = Arc::new(PerIp::default());
        let key = |ip: &str| AddressKey::of(ip.parse().unwrap());
        let held: Vec<IpSlot> = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::2"]
            .iter()
            .map(|ip| per_ip.take(key(ip), 2).expect("room"))
            .collect();
        assert!(per_ip.take(key("2001:db8:1:2:abcd::3"), 2).is_none());
        let next_door = per_ip.take(key("2001:db8:1:3::1"), 2);
        assert!(next_door.is_some());
        let v4 = per_ip.take(key("192.0.2.7"), 2).unwrap();
        let mapped = per_ip.take(key("::ffff:192.0.2.7"), 2).unwrap();
        assert!(per_ip.take(key("::ffff:192.0.2.7"), 2).is_none());
        assert!(per_ip.take(key("192.0.2.8"), 2).is_some());
        drop((held, v4, mapped, next_door));
        assert!(per_ip.0.lock().unwrap().is_empty(), "every slot given back");
    }
}
