//! What `node.status()` reports: a snapshot the event loop keeps up to date, read by the API
//! without waiting for the loop.

use std::cell::RefCell;

use wasm_bindgen::JsValue;

use crate::event_loop::set;

/// The transport of a relay connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebRtcDirect,
    WebSocket,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebRtcDirect => "webrtc-direct",
            Transport::WebSocket => "websocket",
        }
    }
}

/// The snapshot.
#[derive(Debug, Default)]
pub struct Status {
    pub peer_id: String,
    pub network: String,
    pub slot: u32,
    pub relays: Vec<(String, Transport)>,
    /// From the core node: its cluster (hex), member number and members (peer ids).
    pub cluster_id: Option<String>,
    pub member_number: Option<u32>,
    pub members: Vec<String>,
    /// Peers whose core node greeted this one, and whether each is an archive.
    pub node_peers: Vec<(String, bool)>,
    /// Whether the core node has been given the verified header chain.
    pub node_has_headers: bool,
    pub held_blocks: u32,
    pub stored_bytes: u64,
    pub tip_height: i64,
    pub tip_hash: String,
    pub synced: bool,
    pub whole_chain_bytes: u64,
    pub header_bytes_downloaded: u64,
}

/// Shared between the loop (writer) and the API (reader); both run on the page's one thread.
#[derive(Debug, Default)]
pub struct Shared {
    pub status: RefCell<Status>,
}

impl Status {
    /// The `NodeStatus` object of index.d.ts.
    pub fn to_js(&self) -> JsValue {
        let o = js_sys::Object::new();
        set(&o, "peerId", self.peer_id.as_str().into());
        set(&o, "network", self.network.as_str().into());
        set(&o, "slot", self.slot.into());
        // From the core node: null / empty while it is in no cluster.
        set(
            &o,
            "clusterId",
            self.cluster_id
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
        set(
            &o,
            "memberNumber",
            self.member_number.map_or(JsValue::NULL, JsValue::from),
        );
        let members = js_sys::Array::new();
        for member in &self.members {
            members.push(&member.as_str().into());
        }
        set(&o, "members", members.into());
        let peers = js_sys::Array::new();
        for (peer, archive) in &self.node_peers {
            let p = js_sys::Object::new();
            set(&p, "peerId", peer.as_str().into());
            set(&p, "archive", (*archive).into());
            peers.push(&p);
        }
        set(&o, "nodePeers", peers.into());
        set(&o, "nodeHasHeaders", self.node_has_headers.into());
        let relays = js_sys::Array::new();
        for (peer, transport) in &self.relays {
            let r = js_sys::Object::new();
            set(&r, "peerId", peer.as_str().into());
            set(&r, "transport", transport.as_str().into());
            relays.push(&r);
        }
        set(&o, "relays", relays.into());
        set(&o, "heldBlocks", self.held_blocks.into());
        set(&o, "storedBytes", (self.stored_bytes as f64).into());
        let tip = js_sys::Object::new();
        set(&tip, "height", (self.tip_height as f64).into());
        set(&tip, "hash", self.tip_hash.as_str().into());
        set(&o, "tip", tip.into());
        set(&o, "synced", self.synced.into());
        set(
            &o,
            "wholeChainBytes",
            (self.whole_chain_bytes as f64).into(),
        );
        set(
            &o,
            "headerBytesDownloaded",
            (self.header_bytes_downloaded as f64).into(),
        );
        o.into()
    }
}
