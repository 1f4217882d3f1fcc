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
//!
//! ## Virtual clusters
//!
//! Light nodes group themselves into small *virtual clusters* (S1–S5): an ordinary node
//! connected to enough other ordinary nodes invites the best of them, the confirming invitees
//! and the inviter form a cluster ([`formation`]) with a checkable id that lapses after a
//! while, and every member gets a number that follows from the id ([`cluster`]). Each member
//! stores only some blocks: a [`placement`] rule maps every block and the member list to its
//! `P` holders (S6–S8), so the members together hold the whole chain (S18). Members watch each
//! other with heartbeats and converge on one membership view ([`liveness`], S9–S10); when a
//! member is lost, the new holders of its blocks fetch them from surviving copies ([`repair`],
//! S11), and outsiders are invited or ask to join ([`repair::replacement`], S12–S13). A
//! member's word that it holds blocks is checked, not trusted: a copy is deleted only once the
//! block's holders answered a challenge only its bytes answer, members audit each other's
//! claims now and then, and one that keeps failing is dropped and kept out
//! ([`repair::holding`]).
//!
//! ## Serving
//!
//! Members store new blocks where placement puts them, answer transaction queries with Merkle
//! proofs, and run code on any block ([`serve`]'s components, S14–S17), bundled into one
//! serving layer that speaks the node's own messages and outputs ([`service`]).
//!
//! ## Driving a node
//!
//! [`node::Node`] is a sans-IO state machine: the shell feeds it [`node::Input`]s with the
//! current time and carries out the [`node::Output`]s it returns (messages, timers, storage
//! commands, events); [`wire`] gives messages their size-bounded byte form. The contract is in
//! the [`node`] module's docs. Inside, the node is the state its sub-protocols share and one
//! struct per sub-protocol, and it routes every input to the one it concerns; the basic types
//! all of them use ([`base`]: ids, request ids, seeded random numbers) import none of them.
#![forbid(unsafe_code)]

pub mod base;
pub mod chain;
pub mod chain_seam;
pub mod cluster;
mod config;
pub mod formation;
mod io;
pub mod liveness;
pub mod node;
mod observed;
pub mod placement;
pub mod repair;
pub mod serve;
pub mod service;
mod shared;
pub mod wire;

#[cfg(test)]
mod testnet;
