//! # Shoal's core
//!
//! Everything Shoal decides, and nothing it does. This crate holds the whole protocol of a
//! Shoal light node as pure, deterministic code: it performs no I/O, reads no clock and owns no
//! random number generator. The shells — the browser node (`shoal-web`), the native relay
//! (`shoal-relay`) and the simulator (`shoal-sim`) — feed it inputs and carry out its outputs.
//!
//! ## The chain
//!
//! [`chain`] implements Bitcoin's consensus formats: 80-byte headers, transactions with and
//! without witness, blocks, double-SHA-256 hashes, Merkle roots and inclusion proofs, proof of
//! work and the header chain. Every block a node stores or serves, and every proof it accepts,
//! is checked against the node's own header chain: nothing a peer says is trusted.
#![forbid(unsafe_code)]

pub mod chain;
pub mod cluster;
pub mod liveness;
pub mod node;
pub mod placement;
pub mod repair;
pub mod wire;
