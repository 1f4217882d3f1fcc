//! # Shoal's simulator
//!
//! `shoal-sim` runs thousands of unmodified Shoal core nodes (`shoal_core::node::Node`) in
//! virtual time, on one thread, deterministically: a run is a pure function of its
//! configuration and one `u64` seed, so any failure is replayed exactly with `SEED=n`.
//!
//! The simulator plays every part of the world the core does not own:
//!
//! - [`queue`]: virtual time, a bounded queue of nodes' wake-ups, deliveries and churn events;
//! - [`network`]: latency (log-normal per link), jitter, bandwidth, loss and partitions that
//!   cut one network segment off;
//! - [`churn`]: sessions of log-normal length, crashes without goodbye, returns with or
//!   without stored data;
//! - [`storage`]: each node's block store, with lost writes and corrupted reads, and the check
//!   that every block a node stores is the true chain's block (the world's disk carries the
//!   node's storage commands out on it through `shoal_host::execute`);
//! - [`chain`]: the true chain, small valid blocks made from the seed, and tampered copies a
//!   byzantine block source hands out;
//! - [`serving`]: new blocks routed or self-selected, queries from members and outsiders,
//!   adversarial members that forge, corrupt, stay silent or store nothing while claiming
//!   they do (S14–S17, issue 16);
//! - [`replicas`] and [`invariants`]: ground-truth replica counts and the invariants checked
//!   after every step (see the table in [`invariants`]);
//! - [`world`]: the hosts, the event loop and the run report; [`config`]: a run's settings;
//! - [`movement`]: bytes moved per member leave and join under each placement rule (S6–S8);
//! - [`header_sync`]: one node's header sync (the core's `chain::sync`) against honest, silent
//!   and lying sources over the seeded network.
//!
//! Requirements exercised: S1–S5 (formation, ids, numbering) through the nodes' own protocol,
//! S6–S8 (placement, measured in [`movement`]), S9–S13 (liveness, repair, replacement: the
//! replica invariants), S14–S15 (new blocks from the block source), S18 (the whole chain
//! stays held: the live-holder invariant). Replay: `SEED=n shoal-sim …` or
//! `SEED=n cargo test -p shoal-sim --test sweep -- --include-ignored`.
//!
//! Every node runs in a `shoal_host::Host`, the one host the page and the relay use too: the
//! host feeds it, drains it after every input and keeps its timers, and the world supplies
//! only the I/O — the network, the clock (a wake-up at the host's `poll_timeout`) and the
//! disk. Beside that the core is only read, through its getters. Nothing in the core or the
//! host knows it is being simulated.
#![forbid(unsafe_code)]

pub mod chain;
pub mod churn;
pub mod config;
pub mod header_sync;
pub mod invariants;
pub mod movement;
pub mod network;
pub mod queue;
pub mod replicas;
pub mod rng;
pub mod serving;
pub mod storage;
pub mod world;
