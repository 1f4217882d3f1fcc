//! `LightNode.start(options)`: reading and checking the JavaScript options object.

use js_sys::Reflect;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use shoal_core::chain::Network;
use shoal_core::placement::PlacementRule;
use shoal_core::serve::newblock::StorageMode;
use wasm_bindgen::JsValue;

use crate::error::{ApiError, ErrorCode};
use crate::webrtc::IceServer;

/// Most relays one node dials.
pub const MAX_RELAYS: usize = 16;
/// Longest `database` base name.
pub const MAX_DATABASE_NAME_BYTES: usize = 64;

/// A relay to dial: its address and the peer id the address ends in.
#[derive(Clone, Debug)]
pub struct RelayAddr {
    pub addr: Multiaddr,
    pub peer: PeerId,
}

/// The checked options.
#[derive(Clone, Debug)]
pub struct Options {
    pub relays: Vec<RelayAddr>,
    pub network: Network,
    pub cluster_size: u32,
    pub replicas: u32,
    pub database: String,
    /// Time between the core node's heartbeats to its cluster's members (S9, S10).
    pub heartbeat_interval_ms: u32,
    /// A member not heard from for this long is declared offline (S9–S12).
    pub offline_after_ms: u32,
    /// Mean time between an ordinary node's formation rounds or requests to join (S1, S13),
    /// and between a short cluster's recruiting rounds (S12).
    pub formation_interval_ms: u32,
    /// `newBlocks`: how a new block reaches its holders in the cluster (S14, S15).
    pub new_blocks: StorageMode,
    /// `headerPollIntervalMs`: once synced, how often every relay is asked for new headers
    /// (new blocks come at once by the relays' announcements; the poll catches what those
    /// missed).
    pub header_poll_interval_ms: u32,
    /// `placement` (with `evenRangeBlocks`): which members hold which block (S6–S8).
    pub placement: PlacementRule,
    /// `clusterTtlMs`: how long a cluster id lives before the members re-form (S4).
    pub cluster_ttl_ms: u32,
    /// `segment`: this node's network segment, as the application knows it (S8).
    pub segment: u32,
    /// `heartbeatNeighbours`: 0 (the default) checks every member (S9); n checks the n members
    /// numbered on either side (S10).
    pub heartbeat_neighbours: u32,
    /// `capacityBytes`: the bytes this node offers its cluster, instead of its share of the
    /// origin's storage estimate ([`crate::origin`]); placement weighs members by it.
    pub capacity_bytes: Option<u64>,
    /// `iceServers`: STUN/TURN servers for direct connections to other pages, as
    /// `RTCConfiguration.iceServers` takes them (`[{ urls, username?, credential? }]`). None by
    /// default: host candidates connect pages on one machine or LAN.
    pub ice_servers: Vec<IceServer>,
    /// `directConnections` (default `true`): connect to other pages directly over WebRTC once
    /// introduced through a relay; `false` keeps every page-to-page connection on the relay's
    /// circuits.
    pub direct_connections: bool,
}

/// Most entries of `iceServers`.
pub const MAX_ICE_SERVERS: usize = 16;

/// Default of `heartbeatIntervalMs` (the core's default).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u32 = 5_000;
/// Default of `offlineAfterMs` (the core's default).
pub const DEFAULT_OFFLINE_AFTER_MS: u32 = 20_000;
/// Default of `formationIntervalMs` (the core's default).
pub const DEFAULT_FORMATION_INTERVAL_MS: u32 = 10_000;
/// Shortest heartbeat interval and formation interval accepted.
pub const MIN_INTERVAL_MS: u32 = 100;
/// Longest of any of the three timings accepted (one hour).
pub const MAX_INTERVAL_MS: u32 = 3_600_000;

/// The default `headerPollIntervalMs` (the core's `SyncConfig::resync_interval_ms`).
pub const DEFAULT_HEADER_POLL_INTERVAL_MS: u32 = 5_000;
/// The shortest and longest `headerPollIntervalMs`.
pub const HEADER_POLL_INTERVAL_MS_MIN: u32 = 1_000;
pub const HEADER_POLL_INTERVAL_MS_MAX: u32 = 3_600_000;

/// Default of `clusterTtlMs` (the core's default, 6 hours).
pub const DEFAULT_CLUSTER_TTL_MS: u32 = 6 * 60 * 60 * 1000;
/// Shortest and longest `clusterTtlMs` (one second, thirty days).
pub const CLUSTER_TTL_MS_MIN: u32 = 1_000;
pub const CLUSTER_TTL_MS_MAX: u32 = 30 * 24 * 60 * 60 * 1000;
/// Most neighbours on either side a member may check (S10): a cluster has at most 64 members.
pub const HEARTBEAT_NEIGHBOURS_MAX: u32 = 32;

/// Default of `evenRangeBlocks`: consecutive heights in one range of the even rule (S7).
pub const DEFAULT_EVEN_RANGE_BLOCKS: u32 = 16;
/// Longest range of the even rule.
pub const EVEN_RANGE_BLOCKS_MAX: u32 = 1_000_000;

/// Largest `capacityBytes`: the largest integer a JavaScript number holds exactly (2^53 − 1).
pub const CAPACITY_BYTES_MAX: u64 = (1 << 53) - 1;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadInput, message)
}

fn field(object: &JsValue, name: &str) -> Result<Option<JsValue>, ApiError> {
    let value = Reflect::get(object, &JsValue::from_str(name))
        .map_err(|_| bad(format!("options.{name} cannot be read")))?;
    Ok((!value.is_undefined() && !value.is_null()).then_some(value))
}

/// An integer option from `min` to `max`, or `default` when absent.
fn integer_in(
    object: &JsValue,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ApiError> {
    let Some(value) = field(object, name)? else {
        return Ok(default);
    };
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (f64::from(min)..=f64::from(max)).contains(&n) => {
            Ok(n as u32)
        }
        _ => Err(bad(format!(
            "options.{name} must be an integer from {min} to {max}"
        ))),
    }
}

fn small_integer(object: &JsValue, name: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(value) = field(object, name)? else {
        return Ok(default);
    };
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (1.0..=f64::from(max)).contains(&n) => Ok(n as u32),
        _ => Err(bad(format!(
            "options.{name} must be an integer from 1 to {max}"
        ))),
    }
}

/// Parses one relay multiaddr; it must name WebRTC-direct or WebSocket and end in `/p2p/<id>`.
pub fn parse_relay(text: &str) -> Result<RelayAddr, ApiError> {
    let addr: Multiaddr = text
        .parse()
        .map_err(|e| bad(format!("relay address {text:?} is not a multiaddr: {e}")))?;
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        return Err(bad(format!(
            "relay address {text:?} must end in /p2p/<peer id>"
        )));
    };
    let transport_ok = addr.iter().any(|p| {
        matches!(
            p,
            Protocol::WebRTCDirect | Protocol::Ws(_) | Protocol::Wss(_)
        )
    });
    if !transport_ok {
        return Err(bad(format!(
            "relay address {text:?} names neither /webrtc-direct nor /ws or /wss"
        )));
    }
    Ok(RelayAddr { addr, peer })
}

impl Options {
    /// Reads `object`; every problem is a `BAD_INPUT` error naming the field.
    pub fn from_js(object: &JsValue) -> Result<Options, ApiError> {
        if !object.is_object() {
            return Err(bad("options must be an object"));
        }
        let relays = field(object, "relays")?.ok_or_else(|| bad("options.relays is required"))?;
        let relays: js_sys::Array = relays
            .dyn_into_array()
            .ok_or_else(|| bad("options.relays must be an array of multiaddr strings"))?;
        if relays.length() == 0 || relays.length() as usize > MAX_RELAYS {
            return Err(bad(format!(
                "options.relays must list 1 to {MAX_RELAYS} addresses"
            )));
        }
        let relays = relays
            .iter()
            .map(|v| {
                v.as_string()
                    .ok_or_else(|| bad("options.relays must hold strings"))
                    .and_then(|s| parse_relay(&s))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let network = match field(object, "network")? {
            None => Network::Regtest,
            Some(v) => v
                .as_string()
                .and_then(|s| s.parse::<Network>().ok())
                .ok_or_else(|| {
                    bad("options.network must be \"regtest\", \"signet\", \"testnet\", \"testnet4\" or \"mainnet\"")
                })?,
        };
        let cluster_size = small_integer(object, "clusterSize", 8, 64)?;
        let replicas = small_integer(object, "replicas", 3, 64)?;
        if replicas >= cluster_size {
            return Err(bad(format!(
                "options.replicas ({replicas}) must be less than options.clusterSize ({cluster_size})"
            )));
        }
        let database = match field(object, "database")? {
            None => "shoal".to_owned(),
            Some(v) => v
                .as_string()
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= MAX_DATABASE_NAME_BYTES
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                })
                .ok_or_else(|| {
                    bad(format!(
                        "options.database must be 1 to {MAX_DATABASE_NAME_BYTES} characters of [A-Za-z0-9-_.]"
                    ))
                })?,
        };
        let heartbeat_interval_ms = integer_in(
            object,
            "heartbeatIntervalMs",
            DEFAULT_HEARTBEAT_INTERVAL_MS,
            MIN_INTERVAL_MS,
            MAX_INTERVAL_MS,
        )?;
        let offline_after_ms = integer_in(
            object,
            "offlineAfterMs",
            DEFAULT_OFFLINE_AFTER_MS.max(heartbeat_interval_ms + 1),
            MIN_INTERVAL_MS,
            MAX_INTERVAL_MS,
        )?;
        if offline_after_ms <= heartbeat_interval_ms {
            return Err(bad(format!(
                "options.offlineAfterMs ({offline_after_ms}) must exceed options.heartbeatIntervalMs ({heartbeat_interval_ms})"
            )));
        }
        let formation_interval_ms = integer_in(
            object,
            "formationIntervalMs",
            DEFAULT_FORMATION_INTERVAL_MS,
            MIN_INTERVAL_MS,
            MAX_INTERVAL_MS,
        )?;
        let new_blocks = match field(object, "newBlocks")? {
            None => StorageMode::Routed,
            Some(v) => match v.as_string().as_deref() {
                Some("routed") => StorageMode::Routed,
                Some("self-selected") => StorageMode::SelfSelected,
                _ => {
                    return Err(bad(
                        "options.newBlocks must be \"routed\" or \"self-selected\"",
                    ))
                }
            },
        };
        let header_poll_interval_ms = integer_in(
            object,
            "headerPollIntervalMs",
            DEFAULT_HEADER_POLL_INTERVAL_MS,
            HEADER_POLL_INTERVAL_MS_MIN,
            HEADER_POLL_INTERVAL_MS_MAX,
        )?;
        let even_range_blocks = integer_in(
            object,
            "evenRangeBlocks",
            DEFAULT_EVEN_RANGE_BLOCKS,
            1,
            EVEN_RANGE_BLOCKS_MAX,
        )?;
        let placement = match field(object, "placement")? {
            None => PlacementRule::Rendezvous,
            Some(v) => match v.as_string().as_deref() {
                Some("rendezvous") => PlacementRule::Rendezvous,
                Some("hash-mod") => PlacementRule::HashMod { offset: 0 },
                Some("even") => PlacementRule::Even {
                    range_blocks: even_range_blocks,
                },
                Some("segment") => PlacementRule::Segment,
                _ => {
                    return Err(bad(
                        "options.placement must be \"rendezvous\", \"hash-mod\", \"even\" or \"segment\"",
                    ))
                }
            },
        };
        if field(object, "evenRangeBlocks")?.is_some()
            && !matches!(placement, PlacementRule::Even { .. })
        {
            return Err(bad(
                "options.evenRangeBlocks applies only to options.placement \"even\"",
            ));
        }
        let cluster_ttl_ms = integer_in(
            object,
            "clusterTtlMs",
            DEFAULT_CLUSTER_TTL_MS,
            CLUSTER_TTL_MS_MIN,
            CLUSTER_TTL_MS_MAX,
        )?;
        let segment = integer_in(object, "segment", 0, 0, u32::MAX)?;
        let heartbeat_neighbours = integer_in(
            object,
            "heartbeatNeighbours",
            0,
            0,
            HEARTBEAT_NEIGHBOURS_MAX,
        )?;
        let capacity_bytes = match field(object, "capacityBytes")? {
            None => None,
            Some(v) => match v.as_f64() {
                Some(n) if n.fract() == 0.0 && (1.0..=CAPACITY_BYTES_MAX as f64).contains(&n) => {
                    Some(n as u64)
                }
                _ => {
                    return Err(bad(format!(
                        "options.capacityBytes must be an integer from 1 to {CAPACITY_BYTES_MAX}"
                    )))
                }
            },
        };
        let ice_servers = match field(object, "iceServers")? {
            None => Vec::new(),
            Some(value) => {
                let servers: Vec<IceServer> =
                    serde_wasm_bindgen::from_value(value).map_err(|error| {
                        bad(format!(
                            "options.iceServers must be an array of {{ urls: [string], username?, credential? }}: {error}"
                        ))
                    })?;
                if servers.len() > MAX_ICE_SERVERS
                    || servers
                        .iter()
                        .any(|s| s.urls.is_empty() || s.urls.len() > MAX_ICE_SERVERS)
                {
                    return Err(bad(format!(
                        "options.iceServers must list at most {MAX_ICE_SERVERS} servers, each with 1 to {MAX_ICE_SERVERS} urls"
                    )));
                }
                servers
            }
        };
        let direct_connections = match field(object, "directConnections")? {
            None => true,
            Some(value) => value
                .as_bool()
                .ok_or_else(|| bad("options.directConnections must be true or false"))?,
        };
        Ok(Options {
            ice_servers,
            direct_connections,
            relays,
            network,
            cluster_size,
            replicas,
            database,
            heartbeat_interval_ms,
            offline_after_ms,
            formation_interval_ms,
            new_blocks,
            header_poll_interval_ms,
            placement,
            cluster_ttl_ms,
            segment,
            heartbeat_neighbours,
            capacity_bytes,
        })
    }

    /// The lock and database name prefix of this node: `<database>-<network>`.
    pub fn prefix(&self) -> String {
        format!("{}-{}", self.database, self.network)
    }
}

trait DynIntoArray {
    fn dyn_into_array(self) -> Option<js_sys::Array>;
}

impl DynIntoArray for JsValue {
    fn dyn_into_array(self) -> Option<js_sys::Array> {
        js_sys::Array::is_array(&self).then(|| js_sys::Array::from(&self))
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    fn options(json: &str) -> Result<Options, ApiError> {
        Options::from_js(&js_sys::JSON::parse(json).unwrap())
    }

    #[wasm_bindgen_test]
    fn relay_addresses_must_name_a_browser_transport_and_a_peer() {
        let webrtc = format!("/ip4/10.0.0.1/udp/9090/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g/p2p/{PEER}");
        assert!(parse_relay(&webrtc).is_ok());
        assert!(parse_relay(&format!("/ip4/10.0.0.1/tcp/9090/ws/p2p/{PEER}")).is_ok());
        for bad in [
            "/ip4/10.0.0.1/tcp/9090/ws".to_owned(),
            format!("/ip4/10.0.0.1/tcp/9090/p2p/{PEER}"),
            "not a multiaddr".to_owned(),
        ] {
            let err = parse_relay(&bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadInput, "{bad}");
        }
    }

    #[wasm_bindgen_test]
    fn defaults_and_bad_fields() {
        let relay = format!("\"/ip4/10.0.0.1/tcp/1/ws/p2p/{PEER}\"");
        let o = options(&format!("{{\"relays\": [{relay}]}}")).unwrap();
        assert_eq!(
            (o.network, o.cluster_size, o.replicas),
            (Network::Regtest, 8, 3)
        );
        assert_eq!(o.prefix(), "shoal-regtest");
        assert_eq!(
            (
                o.heartbeat_interval_ms,
                o.offline_after_ms,
                o.formation_interval_ms
            ),
            (5_000, 20_000, 10_000)
        );
        let o = options(&format!(
            "{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 500, \"offlineAfterMs\": 2000, \"formationIntervalMs\": 1000}}"
        ))
        .unwrap();
        assert_eq!(
            (
                o.heartbeat_interval_ms,
                o.offline_after_ms,
                o.formation_interval_ms
            ),
            (500, 2_000, 1_000)
        );
        // A heartbeat interval past the default detection timeout moves that default past it.
        let o = options(&format!(
            "{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 30000}}"
        ))
        .unwrap();
        assert!(o.offline_after_ms > o.heartbeat_interval_ms);
        for bad in [
            "{}".to_owned(),
            "{\"relays\": []}".to_owned(),
            format!("{{\"relays\": [{relay}], \"network\": \"moon\"}}"),
            format!("{{\"relays\": [{relay}], \"clusterSize\": 4, \"replicas\": 4}}"),
            format!("{{\"relays\": [{relay}], \"clusterSize\": 2.5}}"),
            format!("{{\"relays\": [{relay}], \"database\": \"a/b\"}}"),
            format!("{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 50}}"),
            format!(
                "{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 1000, \"offlineAfterMs\": 1000}}"
            ),
            format!("{{\"relays\": [{relay}], \"offlineAfterMs\": 1.5}}"),
            format!("{{\"relays\": [{relay}], \"formationIntervalMs\": 4000000}}"),
            format!("{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 50}}"),
            format!("{{\"relays\": [{relay}], \"heartbeatIntervalMs\": 1000, \"offlineAfterMs\": 1000}}"),
            format!("{{\"relays\": [{relay}], \"offlineAfterMs\": 1.5}}"),
            format!("{{\"relays\": [{relay}], \"formationIntervalMs\": 4000000}}"),
        ] {
            assert_eq!(
                options(&bad).unwrap_err().code,
                ErrorCode::BadInput,
                "{bad}"
            );
        }
        assert!(Options::from_js(&JsValue::from_str("x")).is_err());
    }

    #[wasm_bindgen_test]
    fn ice_servers_and_direct_connections_are_read_or_refused_with_a_reason() {
        let relay = format!("\"/ip4/10.0.0.1/tcp/1/ws/p2p/{PEER}\"");
        let o = options(&format!("{{\"relays\": [{relay}]}}")).unwrap();
        assert!(o.ice_servers.is_empty(), "no ICE servers unless asked");
        assert!(o.direct_connections);
        let o = options(&format!(
            "{{\"relays\": [{relay}], \"directConnections\": false, \"iceServers\": [{{\"urls\": \"stun:10.0.0.1:3478\"}}, {{\"urls\": [\"turn:10.0.0.2\"], \"username\": \"u\", \"credential\": \"p\"}}]}}"
        ))
        .unwrap();
        assert!(!o.direct_connections);
        assert_eq!(o.ice_servers.len(), 2);
        assert_eq!(o.ice_servers[0].urls, vec!["stun:10.0.0.1:3478".to_owned()]);
        assert_eq!(o.ice_servers[1].username.as_deref(), Some("u"));
        for (bad, says) in [
            ("\"iceServers\": 5", "options.iceServers must be an array"),
            (
                "\"iceServers\": [{\"url\": \"x\"}]",
                "options.iceServers must be an array",
            ),
            ("\"iceServers\": [{\"urls\": []}]", "at most 16 servers"),
            (
                "\"directConnections\": \"yes\"",
                "options.directConnections must be true or false",
            ),
        ] {
            let err = options(&format!("{{\"relays\": [{relay}], {bad}}}")).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadInput, "{bad}");
            assert!(err.message.contains(says), "{bad}: {}", err.message);
        }
    }

    #[wasm_bindgen_test]
    fn capacity_bytes_is_a_positive_safe_integer_or_absent() {
        let relay = format!("\"/ip4/10.0.0.1/tcp/1/ws/p2p/{PEER}\"");
        let o = options(&format!("{{\"relays\": [{relay}]}}")).unwrap();
        assert_eq!(o.capacity_bytes, None, "the origin's estimate decides");
        for (json, bytes) in [
            ("1", 1),
            ("50000000", 50_000_000),
            ("9007199254740991", CAPACITY_BYTES_MAX),
        ] {
            let o = options(&format!(
                "{{\"relays\": [{relay}], \"capacityBytes\": {json}}}"
            ))
            .unwrap();
            assert_eq!(o.capacity_bytes, Some(bytes), "{json}");
        }
        for bad in ["0", "-5", "1.5", "9007199254740992", "\"1GB\"", "true"] {
            let err = options(&format!(
                "{{\"relays\": [{relay}], \"capacityBytes\": {bad}}}"
            ))
            .unwrap_err();
            assert_eq!(err.code, ErrorCode::BadInput, "{bad}");
            assert!(
                err.message.contains(
                    "options.capacityBytes must be an integer from 1 to 9007199254740991"
                ),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[wasm_bindgen_test]
    fn placement_cluster_ttl_and_segment() {
        let relay = format!("\"/ip4/10.0.0.1/tcp/1/ws/p2p/{PEER}\"");
        let o = options(&format!("{{\"relays\": [{relay}]}}")).unwrap();
        assert_eq!(
            (o.placement, o.cluster_ttl_ms, o.segment),
            (PlacementRule::Rendezvous, 21_600_000, 0)
        );
        for (json, rule) in [
            ("\"placement\": \"rendezvous\"", PlacementRule::Rendezvous),
            (
                "\"placement\": \"hash-mod\"",
                PlacementRule::HashMod { offset: 0 },
            ),
            (
                "\"placement\": \"even\"",
                PlacementRule::Even { range_blocks: 16 },
            ),
            (
                "\"placement\": \"even\", \"evenRangeBlocks\": 5",
                PlacementRule::Even { range_blocks: 5 },
            ),
            ("\"placement\": \"segment\"", PlacementRule::Segment),
        ] {
            let o = options(&format!("{{\"relays\": [{relay}], {json}}}")).unwrap();
            assert_eq!(o.placement, rule, "{json}");
        }
        let o = options(&format!(
            "{{\"relays\": [{relay}], \"clusterTtlMs\": 15000, \"segment\": 4294967295}}"
        ))
        .unwrap();
        assert_eq!((o.cluster_ttl_ms, o.segment), (15_000, u32::MAX));
        assert_eq!(
            o.heartbeat_neighbours, 0,
            "every member checked by default (S9)"
        );
        let o = options(&format!(
            "{{\"relays\": [{relay}], \"heartbeatNeighbours\": 1}}"
        ))
        .unwrap();
        assert_eq!(o.heartbeat_neighbours, 1);
        for bad in ["-1", "33", "1.5", "\"one\""] {
            let got = options(&format!(
                "{{\"relays\": [{relay}], \"heartbeatNeighbours\": {bad}}}"
            ));
            let message = format!("{:?}", got.unwrap_err());
            assert!(
                message.contains("options.heartbeatNeighbours must be an integer from 0"),
                "{bad}: {message}"
            );
        }
        for (json, says) in [
            ("\"placement\": \"modulo\"", "options.placement must be"),
            ("\"placement\": 1", "options.placement must be"),
            (
                "\"placement\": \"even\", \"evenRangeBlocks\": 0",
                "options.evenRangeBlocks must be an integer from 1",
            ),
            (
                "\"placement\": \"even\", \"evenRangeBlocks\": 2.5",
                "options.evenRangeBlocks must be an integer from 1",
            ),
            (
                "\"evenRangeBlocks\": 4",
                "options.evenRangeBlocks applies only to",
            ),
            (
                "\"clusterTtlMs\": 999",
                "options.clusterTtlMs must be an integer from 1000",
            ),
            (
                "\"clusterTtlMs\": 2592000001",
                "options.clusterTtlMs must be an integer from 1000",
            ),
            (
                "\"clusterTtlMs\": \"1h\"",
                "options.clusterTtlMs must be an integer",
            ),
            (
                "\"segment\": -1",
                "options.segment must be an integer from 0 to 4294967295",
            ),
            (
                "\"segment\": 4294967296",
                "options.segment must be an integer from 0",
            ),
            (
                "\"segment\": \"AS64500\"",
                "options.segment must be an integer",
            ),
        ] {
            let err = options(&format!("{{\"relays\": [{relay}], {json}}}")).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadInput, "{json}");
            assert!(err.message.contains(says), "{json}: {}", err.message);
        }
    }
}
