//! The relay's HTTP server: the demo page (`www/`), the npm package (`dist/`) and the relay's
//! own addresses, so the demo needs no other server.
//!
//! `GET /relay-addrs.json` answers `{"peer_id": "...", "network": "regtest",
//! "addrs": ["/ip4/…/udp/…/webrtc-direct/certhash/…/p2p/…", "/ip4/…/tcp/…/ws/p2p/…"]}`:
//! a page served here dials the relay from it (S1: nodes find peers through relays).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::services::ServeDir;

/// What `/relay-addrs.json` says.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RelayInfo {
    pub peer_id: String,
    pub network: String,
    /// Full multiaddrs, each ending in `/p2p/<peer_id>`.
    pub addrs: Vec<String>,
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
    dirs: HttpDirs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
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
