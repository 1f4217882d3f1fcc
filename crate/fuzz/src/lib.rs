//! # shoal-fuzz: fuzz targets for every decoder of untrusted bytes, and for the node
//!
//! Shoal trusts no peer and no disk (SPEC.md, "nothing is trusted"; issue 16). Every decoder of
//! bytes that come from the network or from storage must give a clear error for bad input —
//! never panic, never allocate beyond a small multiple of the bytes it was given — and the core
//! [`Node`](shoal_core::node::Node) must keep its invariants whatever its peers, timers and
//! store do. This crate holds one plain function per *target* ([`TARGETS`]) that takes
//! arbitrary bytes and panics on a finding. Two drivers run them:
//!
//! - **cargo-fuzz** (`fuzz/` at the repository root, nightly, libFuzzer): one binary per target,
//!   each a one-line `fuzz_target!` around the function here. See FUZZING.md for the campaign,
//!   its numbers and how to run it.
//! - **`cargo test`** (stable, in `npm test`): `tests/targets.rs` runs every target over its
//!   checked-in seed corpus (`fuzz/seeds/<target>/`, written by [`seeds`]) and a fixed number
//!   of deterministic mutations of it ([`mutate`]), so the bodies cannot rot and every finding
//!   stays fixed.
//!
//! Both install a counting allocator ([`alloc`]), so the targets also check how much a decoder
//! allocates: a decoder that reserves memory for a count it has not seen the bytes of fails
//! here, not in production.
//!
//! | target | what it feeds | where |
//! |---|---|---|
//! | `block`, `transaction`, `header`, `merkle_proof` | Bitcoin's consensus formats | [`chain`] |
//! | `wire_message` | a Shoal wire message (every peer message, the membership record's view) | [`wire`] |
//! | `header_chain` | header batches into the header chain (trees, forks, reorganisations), and a header file | [`headers`] |
//! | `kv_records` | the node's key/value records read back from storage (transaction index, membership) | [`records`] |
//! | `net_codecs` | the relay's directory codec, frames, replies and peer addresses (`shoal-net`) | [`net`] |
//! | `webrtc_signaling` | the `/webrtc-signaling` messages another tab sends through a relay: streams, bodies, ICE candidates' JSON (`shoal-net`) | [`net`] |
//! | `block_file` | block files (raw, hex, `blk*.dat`) (`shoal-relay`) | [`relay`] |
//! | `relay_store` | hostile records read back from the relay's redb stores (archive and member) | [`relay`] |
//! | `relay_identity` | the relay's key and WebRTC certificate files | [`relay`] |
//! | `node` | a core node driven by arbitrary messages, timers and storage results | [`node`] |

pub mod alloc;
mod bytes;
pub mod chain;
pub mod headers;
pub mod hostile;
pub mod mutate;
pub mod net;
pub mod node;
pub mod records;
pub mod relay;
pub mod seeds;
pub mod wire;

pub use bytes::Bytes;

/// One fuzz target: a name (also the cargo-fuzz binary's and the seed folder's) and its body.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name, as `cargo fuzz run <name>` takes it.
    pub name: &'static str,
    /// The body: returns on any input, panics on a finding.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "block",
        run: chain::block,
    },
    Target {
        name: "transaction",
        run: chain::transaction,
    },
    Target {
        name: "header",
        run: chain::header,
    },
    Target {
        name: "merkle_proof",
        run: chain::merkle_proof,
    },
    Target {
        name: "wire_message",
        run: wire::wire_message,
    },
    Target {
        name: "header_chain",
        run: headers::header_chain,
    },
    Target {
        name: "kv_records",
        run: records::kv_records,
    },
    Target {
        name: "net_codecs",
        run: net::net_codecs,
    },
    Target {
        name: "webrtc_signaling",
        run: net::webrtc_signaling,
    },
    Target {
        name: "block_file",
        run: relay::block_file,
    },
    Target {
        name: "relay_store",
        run: relay::relay_store,
    },
    Target {
        name: "relay_identity",
        run: relay::relay_identity,
    },
    Target {
        name: "node",
        run: node::node,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
