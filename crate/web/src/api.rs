//! The JavaScript API (wasm-bindgen). `crate/web/js/index.js` wraps [`WasmNode`] in the public
//! `LightNode` class (an `EventTarget`, wasm initialisation hidden); index.d.ts documents it.

use std::rc::Rc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::SinkExt as _;
use js_sys::{Promise, Reflect};
use libp2p::identity::Keypair;
use shoal_core::chain::{BlockHash, Txid};
use shoal_host::BlockStore as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::block_store::PageBlocks;
use crate::cluster_node::ClusterNode;
use crate::error::{ApiError, ErrorCode};
use crate::event_loop::{Command, EventLoop, COMMAND_QUEUE};
use crate::options::Options;
#[cfg(feature = "probes")]
use crate::probes::{ProbeCommand, Probed};
use crate::status::{to_js, Shared};
use crate::store::{Store, StoreError, Write};
use crate::tab_lock::SlotLock;

/// How long `start` waits for a first relay connection.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest probe accepted (the frame limit minus room).
#[cfg(feature = "probes")]
const MAX_PROBE_BYTES: usize = 4_000_000;

/// A running browser node (wrapped by `LightNode` in index.js).
#[wasm_bindgen]
pub struct WasmNode {
    commands: mpsc::Sender<Command>,
    shared: Rc<Shared>,
}

fn bad(message: impl Into<String>) -> JsValue {
    ApiError::new(ErrorCode::BadInput, message).into()
}

/// Loads this tab's identity from the store, or makes and stores a new one.
async fn identity(store: &Store) -> Result<Keypair, ApiError> {
    if let Some(bytes) = store.meta("identity").await? {
        if let Ok(key) = Keypair::from_protobuf_encoding(&bytes) {
            return Ok(key);
        }
    }
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| ApiError::new(ErrorCode::Storage, e.to_string()))?;
    store
        .write(&[Write::PutMeta {
            key: "identity",
            value: bytes,
        }])
        .await?;
    Ok(key)
}

#[wasm_bindgen]
impl WasmNode {
    /// Starts a node; `emit(type, detail)` receives its events.
    pub async fn start(options: JsValue, emit: js_sys::Function) -> Result<WasmNode, JsValue> {
        let options = Options::from_js(&options)?;
        let lock = SlotLock::claim(&options.prefix())
            .await
            .map_err(|e| ApiError::new(ErrorCode::Storage, e.to_string()))?;
        let name = format!("{}-{}", options.prefix(), lock.slot);
        let opened = async {
            let store = Store::open(&name).await?;
            let key = identity(&store).await?;
            Ok::<_, ApiError>((store, key))
        }
        .await;
        let (store, key) = match opened {
            Ok(v) => v,
            Err(err) => {
                lock.release();
                return Err(err.into());
            }
        };
        let device = match crate::origin::device_id().await {
            Ok(device) => device,
            Err(err) => {
                lock.release();
                return Err(ApiError::new(ErrorCode::Storage, err.to_string()).into());
            }
        };
        let store = Rc::new(store);
        // Listing the blocks learns their sizes (the node's own bytes count as free room); the
        // host's listing at start then reads none of them again.
        let mut blocks = PageBlocks::new(store.clone());
        let held_blocks = blocks.block_hashes().await.map(|h| h.len()).unwrap_or(0);
        let storage =
            crate::origin::storage_share(options.capacity_bytes, blocks.stored_bytes(), true).await;
        let capacity_bytes = storage.capacity_bytes;
        let shared = Rc::new(Shared::default());
        {
            let mut status = shared.status.borrow_mut();
            status.peer_id = key.public().to_peer_id().to_string();
            status.network = options.network.to_string();
            status.slot = lock.slot;
            status.device = format!("{device:016x}");
            status.storage = storage;
            status.held_blocks = held_blocks as u32;
            status.cluster_size = options.cluster_size;
            status.replicas = options.replicas;
            status.heartbeat_interval_ms = options.heartbeat_interval_ms;
            status.offline_after_ms = options.offline_after_ms;
        }
        let local = key.public().to_peer_id();
        let config = crate::cluster_node::config(&options, local, device, capacity_bytes);
        let core = match config.and_then(|config| {
            // The seed only breaks ties and jitters timers; it need not be secret.
            let seed = (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64;
            ClusterNode::new(config, &local, seed, blocks)
        }) {
            Ok(core) => core,
            Err(err) => {
                lock.release();
                return Err(ApiError::new(ErrorCode::BadInput, err.to_string()).into());
            }
        };
        let swarm = crate::swarm::build(key, options.ice_servers.clone())
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()))?;
        let driver = EventLoop::new(&options, swarm, store, emit, shared.clone(), lock, core)
            .await
            .map_err(ApiError::from)?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        wasm_bindgen_futures::spawn_local(driver.run(receiver, ready_tx, READY_TIMEOUT));
        let mut node = WasmNode { commands, shared };
        match ready_rx.await {
            Ok(Ok(())) => Ok(node),
            Ok(Err(err)) => {
                node.stop_inner().await;
                Err(err.into())
            }
            Err(_) => Err(ApiError::new(ErrorCode::Unavailable, "the node stopped").into()),
        }
    }

    /// `verifyTransaction(txid, { blockHint })`.
    #[wasm_bindgen(js_name = verifyTransaction)]
    pub fn verify_transaction(&self, txid: JsValue, options: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let txid = parse_txid(&txid)?;
            let hint = parse_hint(&options)?;
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Verify { txid, hint, reply })
                .await
                .map_err(|_| stopped())?;
            let verified = answer.await.map_err(|_| stopped())??;
            to_js(&verified.to_js_shape()).map_err(JsValue::from)
        })
    }

    /// `shard()`: the blocks this node holds, read from IndexedDB, by height.
    pub fn shard(&self) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Shard { reply })
                .await
                .map_err(|_| stopped())?;
            let (store, held) = answer.await.map_err(|_| stopped())?;
            let mut shard = Vec::with_capacity(held.len());
            for (height, hash) in held {
                match store.block(&hash).await {
                    Ok(Some(block)) => shard.push(ShardBlock {
                        height,
                        block_hash: hash.to_string(),
                        bytes: Bytes(block.encode()),
                    }),
                    // Not (or no longer) really stored: not part of the shard.
                    Ok(None) | Err(StoreError::Corrupt { .. }) => {}
                    Err(error) => return Err(ApiError::from(error).into()),
                }
            }
            to_js(&shard).map_err(JsValue::from)
        })
    }

    /// `shardMap(fromHeight, toHeight)`: which members the placement of the node's view gives
    /// each height of the range, and which of them this node holds.
    #[wasm_bindgen(js_name = shardMap)]
    pub fn shard_map(&self, from: JsValue, to: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let from = parse_height(&from, "fromHeight")?;
            let to = parse_height(&to, "toHeight")?;
            if to < from {
                return Err(bad(format!("toHeight {to} is below fromHeight {from}")));
            }
            if to - from >= crate::status::SHARD_MAP_MAX_HEIGHTS {
                return Err(bad(format!(
                    "at most {} heights per call, asked for {}",
                    crate::status::SHARD_MAP_MAX_HEIGHTS,
                    u64::from(to - from) + 1
                )));
            }
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::ShardMap { from, to, reply })
                .await
                .map_err(|_| stopped())?;
            let map = answer.await.map_err(|_| stopped())?;
            to_js(&map).map_err(JsValue::from)
        })
    }

    /// `getBlock(blockHash)`: the block's bytes, from this node's shard or fetched from a
    /// member into the core's bounded cache and checked against its header (S17).
    #[wasm_bindgen(js_name = getBlock)]
    pub fn get_block(&self, block_hash: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let hash: BlockHash = parse_hash(&block_hash, "blockHash")?;
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::GetBlock { hash, reply })
                .await
                .map_err(|_| stopped())?;
            let bytes = answer.await.map_err(|_| stopped())??;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// `probeTransfer(bytes, peerId?)`: sends the bytes on the transfer probe (to a relay, or
    /// to another page) and checks their digest
    /// (test and bench builds only: cargo feature `probes`).
    #[cfg(feature = "probes")]
    #[wasm_bindgen(js_name = probeTransfer)]
    pub fn probe_transfer(&self, bytes: JsValue, peer: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let array = bytes
                .dyn_into::<js_sys::Uint8Array>()
                .map_err(|_| bad("bytes must be a Uint8Array"))?;
            let peer = match peer.as_string() {
                None if peer.is_undefined() || peer.is_null() => None,
                Some(text) => Some(
                    text.parse::<libp2p::PeerId>()
                        .map_err(|_| bad("peerId must be a peer id"))?,
                ),
                None => return Err(bad("peerId must be a string")),
            };
            if array.length() as usize > MAX_PROBE_BYTES {
                return Err(bad(format!("at most {MAX_PROBE_BYTES} bytes")));
            }
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Probe(ProbeCommand::Transfer {
                    bytes: array.to_vec(),
                    peer,
                    reply,
                }))
                .await
                .map_err(|_| stopped())?;
            let probed: Probed = answer.await.map_err(|_| stopped())??;
            Ok(probed_to_js(&probed))
        })
    }

    /// `probeDial(multiaddr)`: dials an address (test builds only: cargo feature `probes`; the
    /// js-libp2p interop test dials a js page's `/webrtc` address with it).
    #[cfg(feature = "probes")]
    #[wasm_bindgen(js_name = probeDial)]
    pub fn probe_dial(&self, addr: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let addr: libp2p::Multiaddr = addr
                .as_string()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| bad("addr must be a multiaddr string"))?;
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Probe(ProbeCommand::Dial { addr, reply }))
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())??;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `probeDownload(blockHash)`: downloads one block from the relay and checks its hash
    /// (test and bench builds only: cargo feature `probes`).
    #[cfg(feature = "probes")]
    #[wasm_bindgen(js_name = probeDownload)]
    pub fn probe_download(&self, block_hash: JsValue) -> Promise {
        let mut commands = self.commands.clone();
        future_to_promise(async move {
            let hash: BlockHash = parse_hash(&block_hash, "blockHash")?;
            let (reply, answer) = oneshot::channel();
            commands
                .send(Command::Probe(ProbeCommand::Download { hash, reply }))
                .await
                .map_err(|_| stopped())?;
            let probed: Probed = answer.await.map_err(|_| stopped())??;
            Ok(probed_to_js(&probed))
        })
    }

    /// `probeTrace()`: the timing marks recorded since the last call, oldest first, as
    /// `{t, label, id}` (test and bench builds only: cargo feature `probes`; `crate::trace`).
    #[cfg(feature = "probes")]
    #[wasm_bindgen(js_name = probeTrace)]
    pub fn probe_trace(&self) -> Result<JsValue, JsValue> {
        Ok(serde_wasm_bindgen::to_value(&crate::trace::take())?)
    }

    /// `status()`: a snapshot (see `NodeStatus` in index.d.ts).
    pub fn status(&self) -> Result<JsValue, JsValue> {
        Ok(self.shared.status.borrow().to_js()?)
    }

    /// `stop()`: disconnects, closes the database and releases the tab's slot.
    pub fn stop(&self) -> Promise {
        let mut node = WasmNode {
            commands: self.commands.clone(),
            shared: self.shared.clone(),
        };
        future_to_promise(async move {
            node.stop_inner().await;
            Ok(JsValue::UNDEFINED)
        })
    }
}

impl WasmNode {
    async fn stop_inner(&mut self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Stop { reply }).await.is_ok() {
            let _ = done.await;
        }
    }
}

fn stopped() -> JsValue {
    ApiError::new(ErrorCode::Unavailable, "the node is stopped").into()
}

fn parse_hash<T: std::str::FromStr>(value: &JsValue, what: &str) -> Result<T, JsValue> {
    let text = value
        .as_string()
        .ok_or_else(|| bad(format!("{what} must be a string of 64 hex digits")))?;
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("{what} must be 64 hex digits, got {text:?}")));
    }
    text.parse::<T>()
        .map_err(|_| bad(format!("{what} is not a valid hash: {text:?}")))
}

/// A block height: an integer from 0 to 2^32 − 1.
fn parse_height(value: &JsValue, what: &str) -> Result<u32, JsValue> {
    let number = value
        .as_f64()
        .ok_or_else(|| bad(format!("{what} must be a number")))?;
    if number.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&number) {
        return Err(bad(format!(
            "{what} must be an integer from 0 to {}, got {number}",
            u32::MAX
        )));
    }
    Ok(number as u32)
}

fn parse_txid(value: &JsValue) -> Result<Txid, JsValue> {
    parse_hash(value, "txid")
}

fn parse_hint(options: &JsValue) -> Result<Option<BlockHash>, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    let hint = Reflect::get(options, &JsValue::from_str("blockHint"))
        .map_err(|_| bad("options.blockHint cannot be read"))?;
    if hint.is_undefined() || hint.is_null() {
        return Ok(None);
    }
    parse_hash(&hint, "options.blockHint").map(Some)
}

#[cfg(feature = "probes")]
fn probed_to_js(probed: &Probed) -> JsValue {
    #[derive(serde::Serialize)]
    struct Detail {
        bytes: usize,
        millis: f64,
        transport: &'static str,
    }
    let detail = Detail {
        bytes: probed.bytes,
        millis: probed.millis,
        transport: probed.transport.as_str(),
    };
    to_js(&detail).unwrap_or(JsValue::NULL)
}

/// One block of `shard()`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ShardBlock {
    height: u32,
    block_hash: String,
    bytes: Bytes,
}

/// Bytes that cross to JavaScript as a `Uint8Array` (serde-wasm-bindgen's form of a byte
/// string).
struct Bytes(Vec<u8>);

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}
