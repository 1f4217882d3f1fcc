//! What `node.status()` reports: a snapshot the event loop keeps up to date, read by the API
//! without waiting for the loop. It crosses to JavaScript with serde-wasm-bindgen, field names
//! in camelCase (the `NodeStatus` of index.d.ts).

use std::cell::RefCell;

use serde::Serialize;
use wasm_bindgen::JsValue;

/// The transport of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Transport {
    #[serde(rename = "webrtc-direct")]
    WebRtcDirect,
    #[serde(rename = "websocket")]
    WebSocket,
    /// Through a relay's circuit (`/p2p-circuit`): another page.
    #[serde(rename = "circuit")]
    Circuit,
    /// Directly to another page over WebRTC (`/p2p-circuit/webrtc`: introduced through a
    /// relay, which carries none of its bytes).
    #[serde(rename = "webrtc")]
    WebRtc,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebRtcDirect => "webrtc-direct",
            Transport::WebSocket => "websocket",
            Transport::Circuit => "circuit",
            Transport::WebRtc => "webrtc",
        }
    }
}

/// What a connected peer is to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Its node greeted this one as an archive (a relay's archive node).
    Archive,
    /// One of the options' relays whose node has not (yet) said it is an archive.
    Relay,
    /// A member of this node's cluster.
    Member,
    /// Anyone else (a page met through a directory, not in the cluster).
    Peer,
}

/// A relay from the options this node is connected to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    pub peer_id: String,
    pub transport: Transport,
}

/// A peer whose core node greeted this one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePeer {
    pub peer_id: String,
    pub archive: bool,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub peer_id: String,
    pub transport: Transport,
    pub role: Role,
    /// The last ping's round trip over this connection, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// The peer's agent version, as its identify said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// The `connection` event: a direct connection to another page came up or went down.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionEvent {
    pub peer_id: String,
    pub transport: Transport,
    pub up: bool,
    /// Milliseconds from the first circuit to this peer to the direct connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_circuit_ms: Option<f64>,
    /// Milliseconds from this page's dial (signalling and ICE) to the direct connection; absent
    /// when the other page dialled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_ms: Option<f64>,
}

/// Bytes received from one kind of peer since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Received {
    /// `BlockData` and `NewBlock` messages' block bytes.
    pub blocks: u64,
    /// Header sync answers' bytes.
    pub headers: u64,
}

/// Bytes received since start, by who sent them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Downloaded {
    /// From the options' relays and from peers whose node greeted as an archive.
    pub from_relays: Received,
    /// From everyone else (other pages, member relays).
    pub from_members: Received,
}

impl Downloaded {
    /// The counters of a sender (`relay`: see [`Downloaded::from_relays`]).
    pub fn of(&mut self, relay: bool) -> &mut Received {
        if relay {
            &mut self.from_relays
        } else {
            &mut self.from_members
        }
    }
}

/// What a member's latest heartbeat said of its shard (`status().memberDetails[].report`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    pub held_blocks: u32,
    pub stored_bytes: u64,
    pub missing_blocks: u32,
}

/// One member of this node's view as this node sees it (`status().memberDetails`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberDetail {
    pub peer_id: String,
    pub number: u32,
    /// This node itself.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// A member relay (connected directly, not through a circuit).
    pub relay: bool,
    /// Connected to this node now (this node itself: `true`).
    pub connected: bool,
    /// When its last heartbeat reached this node (Unix milliseconds, as `Date.now()`); `None`
    /// for this node and for members it does not watch.
    pub last_heard_at: Option<u64>,
    /// It said it holds its whole shard under the current view.
    pub shard_held: bool,
    /// Its latest heartbeat's shard report (this node: its own figures).
    pub report: Option<ShardReport>,
}

/// The latest storage failure (`status().storageError`, the `storage-error` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageFailure {
    /// Always `"STORAGE"`, as the API's errors.
    pub code: &'static str,
    pub message: String,
    /// The browser's storage quota for this origin is exhausted.
    pub quota_exceeded: bool,
    /// When (Unix milliseconds).
    pub at: u64,
}

/// Most heights one `shardMap` call covers.
pub const SHARD_MAP_MAX_HEIGHTS: u32 = 10_000;

/// `shardMap(fromHeight, toHeight)`: where the cluster's placement puts each block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardMap {
    /// The node's verified header tip.
    pub tip_height: u32,
    pub from_height: u32,
    /// The last height covered: the one asked for, or the header tip if that is lower (then
    /// below `from_height` when nothing is covered).
    pub to_height: i64,
    /// The view's members (peer ids) in member-number order; empty outside a cluster.
    pub members: Vec<String>,
    /// Per height from `from_height`: the member numbers that placement gives it, most
    /// preferred first (empty outside a cluster).
    pub holders: Vec<Vec<u32>>,
    /// The heights in the range that this node holds (spare copies included).
    pub held: Vec<u32>,
}

/// How the node's cluster spreads over failure domains (`status().failureDomains`, the
/// `failure-domains` event; issue 17, S8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureDomains {
    /// Members of the view.
    pub members: u32,
    /// Distinct devices among them (the tabs of one browser profile and origin are one).
    pub devices: u32,
    /// Distinct network segments among them.
    pub segments: u32,
    /// Copies per block (P).
    pub replicas: u32,
    /// Every block's copies are on distinct devices; `false`: some block has two copies on
    /// one device (the cluster spans fewer devices than P).
    pub spread: bool,
}

impl From<shoal_core::cluster::FailureDomains> for FailureDomains {
    fn from(d: shoal_core::cluster::FailureDomains) -> Self {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        FailureDomains {
            members: count(d.members),
            devices: count(d.devices),
            segments: count(d.segments),
            replicas: count(d.replicas),
            spread: d.spread,
        }
    }
}

/// The best verified header chain's tip.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tip {
    pub height: i64,
    pub hash: String,
}

/// The snapshot.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub peer_id: String,
    pub network: String,
    pub slot: u32,
    /// This tab's device (its failure domain, shared by every tab of the browser profile and
    /// origin): 16 hex digits, as a 64-bit number does not fit a JavaScript number.
    pub device: String,
    /// The origin's storage at start and the capacity this node offers ([`crate::origin`]).
    pub storage: crate::origin::StorageShare,
    /// How the cluster spreads over devices and segments; `None` outside a cluster.
    pub failure_domains: Option<FailureDomains>,
    /// The cluster size and replica count this node was started with.
    pub cluster_size: u32,
    pub replicas: u32,
    /// From the core node: its cluster (hex), member number and members (peer ids).
    pub cluster_id: Option<String>,
    pub member_number: Option<u32>,
    pub members: Vec<String>,
    /// The members this one checks with heartbeats (every other member, or with
    /// `heartbeatNeighbours` its numbered neighbours: S9/S10), in member-number order.
    pub watching: Vec<String>,
    /// Every member of the view with what this node knows of it, in member-number order.
    pub member_details: Vec<MemberDetail>,
    /// The heartbeat interval and the silence after which a member is declared lost, as
    /// started (milliseconds).
    pub heartbeat_interval_ms: u32,
    pub offline_after_ms: u32,
    /// Peers whose core node greeted this one, and whether each is an archive.
    pub node_peers: Vec<NodePeer>,
    /// Whether the core node has been given the verified header chain.
    pub node_has_headers: bool,
    pub relays: Vec<RelayStatus>,
    /// Every connected peer.
    pub connections: Vec<Connection>,
    pub held_blocks: u32,
    /// Blocks the core node must hold under its current view and does not hold yet.
    pub missing_blocks: u32,
    pub stored_bytes: u64,
    pub tip: Tip,
    pub synced: bool,
    pub header_bytes_downloaded: u64,
    pub downloaded_bytes: Downloaded,
    /// Headers the header sync took at once from a relay's new-block announcement.
    pub announced_headers: u64,
    /// The latest storage failure, until a block write succeeds again.
    pub storage_error: Option<StorageFailure>,
    /// Proofs of holding (issue 16): blocks kept as spares until their holders prove they
    /// hold them, and the challenges this node sent and answered.
    pub holding: Holding,
}

/// Proofs of holding, from the core node's counters.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holding {
    /// Blocks this member keeps that its view gives to others, until each of their holders
    /// proved it holds them.
    pub spare_blocks: u32,
    pub challenges_sent: u64,
    pub proofs_passed: u64,
    pub proofs_failed: u64,
    /// Challenges that got no answer in time.
    pub unanswered: u64,
    /// Challenges of other members this node answered.
    pub answered: u64,
}

/// Shared between the loop (writer) and the API (reader); both run on the page's one thread.
#[derive(Debug, Default)]
pub struct Shared {
    pub status: RefCell<Status>,
}

/// Turns an API object into its JavaScript form: plain objects (not `Map`s), numbers (every
/// count here stays far below 2^53), byte strings as `Uint8Array`.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, serde_wasm_bindgen::Error> {
    const SERIALIZER: serde_wasm_bindgen::Serializer =
        serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);
    value.serialize(&SERIALIZER)
}

impl Status {
    /// The `NodeStatus` object of index.d.ts.
    pub fn to_js(&self) -> Result<JsValue, serde_wasm_bindgen::Error> {
        to_js(self)
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn get(object: &JsValue, path: &[&str]) -> JsValue {
        path.iter().fold(object.clone(), |o, key| {
            js_sys::Reflect::get(&o, &JsValue::from_str(key)).unwrap()
        })
    }

    #[wasm_bindgen_test]
    fn the_status_crosses_in_camel_case_with_plain_objects_and_numbers() {
        let mut status = Status {
            peer_id: "12D3".into(),
            cluster_size: 5,
            replicas: 2,
            stored_bytes: 1 << 40,
            ..Status::default()
        };
        status.downloaded_bytes.of(true).headers = 800;
        status.downloaded_bytes.of(false).blocks = 12_345;
        status.connections.push(Connection {
            peer_id: "relay".into(),
            transport: Transport::WebRtcDirect,
            role: Role::Archive,
            rtt_ms: Some(1.5),
            agent: None,
        });
        let js = status.to_js().unwrap();
        assert_eq!(get(&js, &["peerId"]), "12D3");
        assert_eq!(get(&js, &["clusterSize"]), 5);
        assert_eq!(get(&js, &["replicas"]), 2);
        assert!(get(&js, &["clusterId"]).is_null());
        assert_eq!(
            get(&js, &["storedBytes"]).as_f64(),
            Some((1u64 << 40) as f64)
        );
        assert_eq!(get(&js, &["downloadedBytes", "fromRelays", "headers"]), 800);
        assert_eq!(get(&js, &["downloadedBytes", "fromRelays", "blocks"]), 0);
        assert_eq!(
            get(&js, &["downloadedBytes", "fromMembers", "blocks"]),
            12_345
        );
        let connection = get(&js, &["connections", "0"]);
        assert_eq!(get(&connection, &["transport"]), "webrtc-direct");
        assert_eq!(get(&connection, &["role"]), "archive");
        assert_eq!(get(&js, &["tip", "height"]), 0);
        assert!(get(&js, &["failureDomains"]).is_null());
        assert!(get(&js, &["storage", "quotaBytes"]).is_null());
        assert_eq!(get(&js, &["storage", "capacityFrom"]), "default");
        status.device = "00000000000000ff".into();
        status.failure_domains = Some(FailureDomains {
            members: 4,
            devices: 2,
            segments: 1,
            replicas: 2,
            spread: true,
        });
        status.storage.capacity_bytes = 3 << 30;
        status.storage.live_tabs = 2;
        let js = status.to_js().unwrap();
        assert_eq!(get(&js, &["device"]), "00000000000000ff");
        assert_eq!(get(&js, &["failureDomains", "devices"]), 2);
        assert_eq!(get(&js, &["failureDomains", "spread"]), true);
        assert_eq!(
            get(&js, &["storage", "capacityBytes"]).as_f64(),
            Some((3u64 << 30) as f64)
        );
        assert_eq!(get(&js, &["storage", "liveTabs"]), 2);
    }
}
