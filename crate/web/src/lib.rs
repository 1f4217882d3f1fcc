//! # shoal-web: Shoal's browser node
//!
//! The wasm shell around `shoal-core`. It owns everything the core may not: the libp2p swarm
//! that reaches relays ([`swarm`]), the IndexedDB store ([`store`]), the per-tab identity slot
//! ([`tab_lock`]), timers and the event loop ([`node`]), and the JavaScript API ([`api`],
//! wrapped by `js/index.js` as `LightNode`).
//!
//! The crate is browser-only: on any other target it compiles to an empty library, so that
//! `cargo test --workspace` and clippy keep working on native. Build it with `npm run build`
//! (`scripts/build-web.sh`).
#![cfg(target_arch = "wasm32")]

pub mod api;
pub mod circuits;
pub mod core_node;
pub mod error;
pub mod node;
pub mod options;
pub mod status;
pub mod storage;
pub mod store;
pub mod swarm;
pub mod tab_lock;
pub mod verify;
