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
//! an archive's whole chain in bytes, `null` for a member), and for a member relay `"held":
//! [{"height", "block_hash"}]`, its shard as it is on disk at the time of the request.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::services::ServeDir;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<Vec<HeldBlock>>,
}

/// The relay info shared between the swarm loop (writer) and the HTTP server (reader).
pub type SharedInfo = Arc<RwLock<RelayInfo>>;

/// Where the HTTP server finds its files.
#[derive(Debug, Clone)]
pub struct HttpDirs {
    pub www: PathBuf,
    pub dist: PathBuf,
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    info: SharedInfo,
    status: SharedStatus,
    shard: Option<ShardStore>,
    dirs: HttpDirs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/status.json",
            get(move || {
                let node = status.read().map(|s| s.clone()).unwrap_or_default();
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
                    let answer = StatusAnswer { node, held };
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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
