//! The details of the events a `LightNode` dispatches (`LightNodeEventMap` in index.d.ts), one
//! Rust struct each, handed to JavaScript through serde-wasm-bindgen ([`crate::status::to_js`]:
//! `None` becomes `null`, field names camelCase) rather than assembled field by field.

use serde::Serialize;

/// `cluster`: the node joined a cluster, its view changed, or it left (`cluster_id: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterChanged {
    pub cluster_id: Option<String>,
    pub member_number: Option<u32>,
    pub members: Vec<String>,
}

/// `member-joined` and `member-lost`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub peer_id: String,
}

/// `holder-faulty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HolderFaulty {
    pub peer_id: String,
    pub by_us: bool,
}

/// `block-stored`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStored {
    pub block_hash: String,
    pub height: u32,
    pub bytes: u64,
    /// The peer the block came from, if known.
    pub from: Option<String>,
}

/// `sync-progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    pub height: u32,
    /// While catching up, the best tip a relay claims; once synced, the tip itself.
    pub target: Option<u32>,
    pub synced: bool,
}

/// `new-block`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBlock {
    pub height: u32,
    pub block_hash: String,
}

/// `relay`: a relay connected (over `transport`) or disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayChanged {
    pub peer_id: String,
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use wasm_bindgen::JsValue;
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn get(object: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap()
    }

    #[wasm_bindgen_test]
    fn details_cross_as_plain_objects_with_nulls_and_camel_case() {
        let stored = crate::status::to_js(&BlockStored {
            block_hash: "00ff".into(),
            height: 7,
            bytes: 31_000,
            from: None,
        })
        .unwrap();
        assert_eq!(
            get(&stored, "blockHash").as_string().as_deref(),
            Some("00ff")
        );
        assert_eq!(get(&stored, "height").as_f64(), Some(7.0));
        assert_eq!(get(&stored, "bytes").as_f64(), Some(31_000.0));
        assert!(get(&stored, "from").is_null());
        let left = crate::status::to_js(&ClusterChanged {
            cluster_id: None,
            member_number: None,
            members: Vec::new(),
        })
        .unwrap();
        assert!(get(&left, "clusterId").is_null() && get(&left, "memberNumber").is_null());
        assert!(js_sys::Array::is_array(&get(&left, "members")));
        let gone = crate::status::to_js(&RelayChanged {
            peer_id: "12D3".into(),
            connected: false,
            transport: None,
        })
        .unwrap();
        assert!(!js_sys::Reflect::has(&gone, &JsValue::from_str("transport")).unwrap());
        assert_eq!(get(&gone, "connected").as_bool(), Some(false));
    }
}
