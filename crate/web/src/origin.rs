//! What a tab shares with the other tabs of its browser profile and origin (issue 17): its
//! **device** (the failure domain of `shoal_core::node::Config::device`: the tabs of one
//! profile and origin crash, are closed and have their site data cleared together) and the
//! origin's **storage quota**, which the browser gives the origin once for all its tabs.
//!
//! - The device id is a random non-zero 64-bit number made once per origin and kept in an
//!   IndexedDB database of its own ([`DEVICE_DATABASE`]). Two tabs starting at once both try to
//!   `add` theirs under one key; the second `add` fails because the key exists, and both read
//!   back the one that was stored first.
//! - The capacity a node offers (`Config::capacity_bytes`, which weighs placement) is the
//!   origin's free room as `navigator.storage.estimate()` reports it (quota − usage, plus what
//!   this node stores already), divided among the origin's live Shoal nodes (the slot locks of
//!   [`crate::tab_lock`] that `navigator.locks.query()` lists), of which it takes
//!   [`CAPACITY_SHARE_PERCENT`] %. The page's `capacityBytes` option overrides it. A node asks for
//!   persistent storage (`navigator.storage.persist()`) and reports the answer.
//!
//! Chromium since version 138 reports an artificial quota to pages without unlimited storage:
//! usage + min(10 GiB, the disk rounded up to GiB) (the enforced quota is unchanged). The figure
//! here is then an upper bound; a write past the real quota still fails as `STORAGE`.

use std::str::FromStr as _;

use serde::{Deserialize, Serialize};
use shoal_core::chain::Network;
use wasm_bindgen::prelude::*;

/// The IndexedDB database that holds the origin's device id (one object store, one key).
pub const DEVICE_DATABASE: &str = "shoal-device";

/// The share of its part of the origin's free room a node offers: the rest is a safety margin
/// for the origin's other data and for the browser's own accounting.
pub const CAPACITY_SHARE_PERCENT: u64 = 80;

/// The capacity offered when the browser has no storage estimate (the core's default).
pub const DEFAULT_CAPACITY_BYTES: u64 = 1 << 30;

#[wasm_bindgen(inline_js = r#"
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
export async function deviceId(database) {
  const open = indexedDB.open(database, 1);
  open.onupgradeneeded = () => open.result.createObjectStore("device");
  const db = await done(open);
  db.onversionchange = () => db.close();
  try {
    const bytes = new Uint8Array(8);
    do crypto.getRandomValues(bytes); while (bytes.every((b) => b === 0));
    const mine = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    const tx = db.transaction("device", "readwrite");
    const store = tx.objectStore("device");
    const added = store.add(mine, "id");
    // The key exists (another tab, now or before, was first): keep the transaction going.
    added.onerror = (event) => {
      if (added.error?.name === "ConstraintError") {
        event.preventDefault();
        event.stopPropagation();
      }
    };
    const stored = store.get("id");
    let id = null;
    stored.onsuccess = () => { id = stored.result; };
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onabort = () => reject(tx.error ?? new Error("device id transaction aborted"));
    });
    if (typeof id === "string" && /^[0-9a-f]{16}$/.test(id) && !/^0+$/.test(id)) return id;
    // Not one of ours (a damaged database): replaced by this tab's.
    const fix = db.transaction("device", "readwrite");
    fix.objectStore("device").put(mine, "id");
    await new Promise((resolve, reject) => { fix.oncomplete = resolve; fix.onabort = () => reject(fix.error); });
    return mine;
  } finally {
    db.close();
  }
}
export async function originStorage(askPersist) {
  const storage = globalThis.navigator?.storage;
  const out = { quota: null, usage: null, persisted: false, heldLocks: [] };
  try {
    const estimate = await storage.estimate();
    out.quota = estimate.quota ?? null;
    out.usage = estimate.usage ?? null;
  } catch {}
  try {
    out.persisted = (await (askPersist ? storage.persist() : storage.persisted())) === true;
  } catch {}
  try { out.heldLocks = (await navigator.locks.query()).held.map((lock) => lock.name ?? ""); } catch {}
  return out;
}
"#)]
extern "C" {
    #[wasm_bindgen(catch, js_name = deviceId)]
    async fn device_id_js(database: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = originStorage)]
    async fn origin_storage_js(ask_persist: bool) -> Result<JsValue, JsValue>;
}

/// Why the device id could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OriginError {
    #[error("the device id database failed: {0}")]
    Database(String),
    #[error("the device id database holds {0:?}, not 16 hex digits")]
    Malformed(String),
}

/// This origin's device id: made and stored by the first tab, the same in every tab after it.
pub async fn device_id() -> Result<u64, OriginError> {
    let id = device_id_js(DEVICE_DATABASE)
        .await
        .map_err(|e| OriginError::Database(format!("{e:?}")))?;
    let text = id.as_string().unwrap_or_default();
    match u64::from_str_radix(&text, 16) {
        Ok(device) if device != 0 && text.len() == 16 => Ok(device),
        _ => Err(OriginError::Malformed(text)),
    }
}

/// What the browser says of the origin's storage.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Estimate {
    quota: Option<f64>,
    usage: Option<f64>,
    persisted: bool,
    held_locks: Vec<String>,
}

/// Where a node's capacity comes from (`status().storage.capacityFrom`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CapacityFrom {
    /// Its share of the origin's free room.
    Estimate,
    /// The page's `capacityBytes` option.
    Option,
    /// The browser gave no estimate: [`DEFAULT_CAPACITY_BYTES`].
    #[default]
    Default,
}

/// The origin's storage as this node saw it at start, and the capacity it offers
/// (`status().storage`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageShare {
    /// `navigator.storage.estimate()`'s quota and usage (`None` without an estimate).
    pub quota_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// Live Shoal nodes of the origin, this one included (their slot locks).
    pub live_tabs: u32,
    /// The bytes this node offers its cluster (`Config::capacity_bytes`).
    pub capacity_bytes: u64,
    pub capacity_from: CapacityFrom,
    /// `navigator.storage.persist()`'s answer: the browser will not evict the origin's data
    /// under storage pressure.
    pub persisted: bool,
}

/// This node's share of `free_bytes` when `live_tabs` nodes share it (at least 1 byte).
pub fn share_of(free_bytes: u64, live_tabs: u32) -> u64 {
    let per_tab = free_bytes / u64::from(live_tabs.max(1));
    (per_tab / 100 * CAPACITY_SHARE_PERCENT + per_tab % 100 * CAPACITY_SHARE_PERCENT / 100).max(1)
}

/// Whether `name` is a slot lock of [`crate::tab_lock`] (`<database>-<network>:<slot>`): one
/// live Shoal node of this origin.
pub fn is_slot_lock(name: &str) -> bool {
    let Some((prefix, slot)) = name.rsplit_once(':') else {
        return false;
    };
    let network = prefix.rsplit_once('-').map(|(_, n)| n).unwrap_or("");
    !slot.is_empty()
        && slot.bytes().all(|b| b.is_ascii_digit())
        && Network::from_str(network).is_ok()
}

/// Reads the origin's storage estimate and live nodes (call it once this node holds its slot)
/// and decides the capacity: `option` if given, else this node's share of the free room, where
/// `own_bytes` (what this node stores already) counts as free. With `ask_persist` it asks for
/// persistent storage (`navigator.storage.persist()`, at start); otherwise it reads whether it
/// has it (`persisted()`).
pub async fn storage_share(option: Option<u64>, own_bytes: u64, ask_persist: bool) -> StorageShare {
    let estimate: Estimate = match origin_storage_js(ask_persist).await {
        Ok(value) => serde_wasm_bindgen::from_value(value).unwrap_or_default(),
        Err(_) => Estimate::default(),
    };
    let bytes = |v: Option<f64>| v.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64);
    let (quota_bytes, usage_bytes) = (bytes(estimate.quota), bytes(estimate.usage));
    let live_tabs = (estimate.held_locks.iter())
        .filter(|name| is_slot_lock(name))
        .count()
        .max(1) as u32;
    let (capacity_bytes, capacity_from) = match (option, quota_bytes) {
        (Some(bytes), _) => (bytes, CapacityFrom::Option),
        (None, Some(quota)) => {
            let usage = usage_bytes.unwrap_or(0);
            let free = quota.saturating_sub(usage) + own_bytes.min(usage);
            (share_of(free, live_tabs), CapacityFrom::Estimate)
        }
        (None, None) => (DEFAULT_CAPACITY_BYTES, CapacityFrom::Default),
    };
    StorageShare {
        quota_bytes,
        usage_bytes,
        live_tabs,
        capacity_bytes,
        capacity_from,
        persisted: estimate.persisted,
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn one_device_id_per_origin_also_when_asked_at_once() {
        let (a, b) = futures::join!(device_id(), device_id());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a, 0);
        assert_eq!(a, b, "two tabs starting at once agree");
        assert_eq!(device_id().await.unwrap(), a, "and every later tab");
    }

    #[wasm_bindgen_test]
    fn the_share_is_80_percent_of_the_free_room_per_live_tab() {
        assert_eq!(share_of(1_000_000, 1), 800_000);
        assert_eq!(share_of(1_000_000, 4), 200_000);
        assert_eq!(share_of(1_000_000, 0), 800_000, "at least this node");
        assert_eq!(share_of(0, 3), 1);
        assert_eq!(share_of(u64::MAX, 1), u64::MAX / 100 * 80 + 12);
    }

    #[wasm_bindgen_test]
    fn slot_locks_are_told_from_other_locks() {
        assert!(is_slot_lock("shoal-regtest:0"));
        assert!(is_slot_lock("my-wallet-mainnet:63"));
        assert!(!is_slot_lock("shoal-regtest:"));
        assert!(!is_slot_lock("shoal-regtest"));
        assert!(!is_slot_lock("shoal-moon:1"));
        assert!(!is_slot_lock("some-app-lock"));
    }

    #[wasm_bindgen_test]
    async fn the_option_overrides_the_estimate_and_the_node_counts_itself() {
        let share = storage_share(Some(12_345), 0, true).await;
        assert_eq!(
            (share.capacity_bytes, share.capacity_from),
            (12_345, CapacityFrom::Option)
        );
        assert!(share.live_tabs >= 1);
        let share = storage_share(None, 0, false).await;
        assert_eq!(share.capacity_from, CapacityFrom::Estimate);
        let free = share.quota_bytes.unwrap() - share.usage_bytes.unwrap();
        assert_eq!(share.capacity_bytes, share_of(free, share.live_tabs));
    }
}
