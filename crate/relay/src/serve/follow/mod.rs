//! The relay as a follower of a real Bitcoin network (`serve --bitcoin-peer HOST:PORT`):
//! Bitcoin's P2P protocol to one or more nodes, every header checked with the network's rules,
//! every block checked against its header, and the best chain written to the store, switching
//! branches when the network does (S14: new blocks enter the network through the block source).
//!
//! Browsers cannot open TCP connections to Bitcoin nodes, so the relay is the bridge, and
//! nothing it bridges is trusted: the header chain is the core's [`HeaderChain`] (the one every
//! page runs), a peer that breaks a rule is dropped with the rule as the reason, and blocks are
//! kept only when their bodies match their headers.
//!
//! - [`wire`]: the frames, bounded, with rust-bitcoin's message encoding;
//! - [`follower`]: what to ask and what to store, a state machine without I/O;
//! - [`driver`]: the TCP connections, redialled with back-off, and the clock.
//!
//! The store's updates go to the archive's thread in order ([`ChainUpdate`]), which appends
//! or rewinds the chain store and tells its node, which tells the pages.

pub mod driver;
pub mod follower;
pub mod wire;

use serde::Serialize;
use shoal_core::chain::{ChainParams, HeaderChain, HeaderChainConfig, Network};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use driver::SharedBitcoinStatus;
pub use follower::{ChainUpdate, Follower, FollowerConfig, FollowerStats};

use super::store::{ChainStore, StoreError, MAX_HEADERS_PER_READ};

/// Store updates waiting for the archive's thread.
const UPDATE_QUEUE: usize = 64;

/// What `/status.json` says of the followed network (`"bitcoin"`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BitcoinStatus {
    /// The best header chain's tip, from every peer's headers.
    pub header_height: u32,
    pub header_hash: String,
    /// The stored chain's tip (`None`: not even genesis yet).
    pub stored_height: Option<u32>,
    pub stats: FollowerStats,
    /// What stopped the block download, if anything did.
    pub stuck: Option<String>,
    pub peers: Vec<PeerStatus>,
}

/// One `--bitcoin-peer`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: String,
    /// Connected, handshake done.
    pub connected: bool,
    pub user_agent: Option<String>,
    pub start_height: Option<i32>,
    pub blocks_in_flight: usize,
    /// Why the last connection ended.
    pub last_error: Option<String>,
}

/// Why following could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored chain starts at height {0}; following a network needs it from genesis (start with an empty data directory)")]
    NotFromGenesis(u32),
    #[error(
        "the stored chain is not {network}'s: its header at height {height} is refused: {reason}"
    )]
    WrongChain {
        network: Network,
        height: u32,
        reason: String,
    },
}

/// The core's header chain holding every stored header, each checked again with `params`' rules
/// (a store written for another network, or with headers that break its rules, is refused).
pub fn chain_from_store(
    params: ChainParams,
    store: &ChainStore,
    now_s: u64,
) -> Result<HeaderChain, FollowError> {
    let mut chain = HeaderChain::with_config(params, HeaderChainConfig::default());
    match store.base_height()? {
        None | Some(0) => {}
        Some(base) => return Err(FollowError::NotFromGenesis(base)),
    }
    let mut height = 0u32;
    loop {
        let headers = store.headers(height, MAX_HEADERS_PER_READ)?;
        if headers.is_empty() {
            return Ok(chain);
        }
        if height == 0 && headers[0] != params.genesis {
            return Err(FollowError::WrongChain {
                network: params.network,
                height: 0,
                reason: format!(
                    "genesis {} is not {}",
                    headers[0].block_hash(),
                    params.genesis_hash()
                ),
            });
        }
        chain.reserve(headers.len());
        if let Err(error) = chain.accept_batch(&headers, now_s) {
            return Err(FollowError::WrongChain {
                network: params.network,
                height: height + error.index as u32,
                reason: error.error.to_string(),
            });
        }
        height += headers.len() as u32;
    }
}

/// Starts following `network` through `peers` on the current runtime: the follower's task and
/// the archive's end of its updates.
pub fn start(
    network: Network,
    store: &ChainStore,
    peers: Vec<String>,
    status: SharedBitcoinStatus,
) -> Result<(JoinHandle<()>, mpsc::Receiver<ChainUpdate>), FollowError> {
    let params = network.params();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let chain = chain_from_store(params, store, now_s)?;
    let stored_any = store.tip()?.is_some();
    tracing::info!(
        %network,
        stored_height = chain.tip_height(),
        stored_any,
        peers = ?peers,
        "following a Bitcoin network"
    );
    let follower = Follower::new(FollowerConfig::new(params), chain, stored_any);
    let magic = bitcoin::p2p::Magic::from_bytes(params.magic);
    let (updates, receiver) = mpsc::channel(UPDATE_QUEUE);
    let task = driver::spawn(follower, peers, magic, updates, status);
    Ok((task, receiver))
}
