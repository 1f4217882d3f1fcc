//! # shoal-web: Shoal's browser node
//!
//! The wasm shell around `shoal-core`. It owns everything the core may not, and keeps only
//! I/O: the libp2p swarm that reaches relays ([`swarm`]) and other pages through their
//! circuits ([`circuits`]); the event loop that drives the swarm, the header sync (the core's
//! `chain::sync`) and the API's commands ([`event_loop`]); the core's cluster node in the one
//! host (`shoal-host`) with its messages and events ([`cluster_node`]); the IndexedDB database
//! ([`store`]) and the host's block store over it ([`block_store`]); the per-tab identity slot
//! ([`tab_lock`]); what the tab shares with its origin's other tabs, its device and storage
//! quota ([`origin`]); and the JavaScript API ([`api`], wrapped by `js/index.js` as `LightNode`).
//!
//! The crate is browser-only: on any other target it compiles to an empty library, so that
//! `cargo test --workspace` and clippy keep working on native. Build it with `npm run build`
//! (`scripts/build-web.sh`).
#![cfg(target_arch = "wasm32")]

pub mod api;
pub mod block_store;
pub mod circuits;
pub mod cluster_node;
pub mod direct;
pub mod error;
pub mod event_loop;
pub mod events;
pub mod options;
pub mod origin;
#[cfg(feature = "probes")]
pub mod probes;
pub mod status;
pub mod store;
pub mod swarm;
pub mod tab_lock;
pub mod trace;
pub mod verify;
pub mod webrtc;
