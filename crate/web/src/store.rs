//! The browser node's IndexedDB store: identity key, header chain, blocks and the core node's
//! records (its transaction index), in one database per node identity slot (see
//! [`crate::tab_lock`]).
//!
//! Implements the browser side of the product's persistence ("a reloaded tab resumes its
//! place") and the storage half of S11/S14/S15: the core decides *what* to store; this module
//! carries the writes out in batched transactions, one IndexedDB transaction per [`Store::write`].
//!
//! Every block is checked again when it is read. [`Store::block`] (for the API's `shard()`)
//! checks it here: its header must hash to the key it is stored under and its transactions to
//! the header's Merkle root, or it is reported as [`StoreError::Corrupt`], never returned.
//! [`Store::block_bytes`] (the core node's reads) hands the raw bytes over for the core to check,
//! once: the core's rule is that a corrupt block is never served and never deleted — it turns
//! suspect and a verified copy is fetched over it — so nothing here deletes a block because a
//! read found it corrupt.
//!
//! # Layout
//! | object store | key                         | value                                    |
//! |--------------|-----------------------------|------------------------------------------|
//! | `meta`       | name (`identity`, `state`)  | bytes                                    |
//! | `header_chunks` | chunk number `h / HEADERS_PER_CHUNK` | first height (u32 LE) ‖ consecutive 80-byte headers of that chunk |
//! | `blocks`     | block hash (display hex)    | raw block                                |
//! | `node_kv`    | the core's record key (hex) | the core's record value (its transaction index, one record per held block) |
//!
//! Headers are stored in chunks of [`HEADERS_PER_CHUNK`] heights (one record per chunk, not
//! one per header): a header sync batch costs two or three puts instead of thousands.
//! Schema version 1 kept one record per header in `headers`; opening such a database deletes
//! that store (the node then downloads its headers once more, nothing else is lost). Version 3
//! adds `node_kv`; opening a version 2 database creates it and keeps everything else (the core
//! then rebuilds its index records from the stored blocks once). Version 4 drops the shell's
//! own transaction index (`txindex`, txid → block and position): queries go through the core,
//! whose index lives in `node_kv`; everything else is kept.

use idb::{Database, DatabaseEvent as _, Factory, ObjectStoreParams, Query, TransactionMode};
use js_sys::Uint8Array;
use shoal_core::chain::{Block, BlockHash, Header};
use shoal_core::node::{KvRecord, KV_KEY_MAX, KV_VALUE_MAX};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{DomException, IdbTransaction};

const SCHEMA_VERSION: u32 = 4;
const META: &str = "meta";
const HEADERS: &str = "header_chunks";
/// Schema version 1's one-record-per-header store, dropped on upgrade.
const OLD_HEADERS: &str = "headers";
const BLOCKS: &str = "blocks";
/// Schema versions 1 to 3's transaction index of the shell, dropped on upgrade (the core's
/// index is in `node_kv`).
const OLD_TXINDEX: &str = "txindex";
/// The core's key/value records (schema version 3).
const NODE_KV: &str = "node_kv";
const ALL_STORES: [&str; 4] = [META, HEADERS, BLOCKS, NODE_KV];

/// The largest block this store accepts or returns (Bitcoin's 4 MWU limit bounds a serialised
/// block at 4,000,000 bytes).
pub const MAX_BLOCK_BYTES: usize = 4_000_000;
/// The largest `meta` value (identity keys and node state are small).
pub const MAX_META_BYTES: usize = 1 << 20;
/// How many headers one [`Store::headers`] read returns at most.
pub const MAX_HEADERS_PER_READ: u32 = 50_000;
/// Heights per stored header chunk: chunk `k` holds heights `k * HEADERS_PER_CHUNK` up to
/// `(k + 1) * HEADERS_PER_CHUNK - 1`.
pub const HEADERS_PER_CHUNK: u32 = 2_000;
/// The largest stored header chunk: the first height and a full chunk of headers.
const MAX_CHUNK_BYTES: usize = 4 + 80 * HEADERS_PER_CHUNK as usize;

/// What went wrong in the store. Every variant surfaces to JavaScript as code `STORAGE`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("IndexedDB is not available in this context: {0}")]
    Unavailable(String),
    #[error("the browser's storage quota is exhausted: {0}")]
    QuotaExceeded(String),
    #[error("IndexedDB {operation} failed: {detail}")]
    Idb {
        operation: &'static str,
        detail: String,
    },
    #[error("stored block {hash} is corrupt ({why})")]
    Corrupt { hash: BlockHash, why: &'static str },
    #[error(
        "database {name} was written by a newer version of Shoal (schema version {found}; this \
         version reads up to {SCHEMA_VERSION}) and is left as it is: use that newer version, or \
         start this one with another `database` name"
    )]
    NewerVersion { name: String, found: u32 },
    #[error("stored {what} is malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("{what} of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        len: usize,
        limit: usize,
    },
}

impl StoreError {
    fn idb(operation: &'static str, err: impl std::fmt::Display) -> Self {
        StoreError::Idb {
            operation,
            detail: err.to_string(),
        }
    }

    /// Maps an IndexedDB `DOMException` to a store error, recognising an exhausted quota.
    pub fn from_dom_exception(operation: &'static str, exception: &DomException) -> Self {
        let detail = format!("{}: {}", exception.name(), exception.message());
        if exception.name() == "QuotaExceededError" {
            StoreError::QuotaExceeded(detail)
        } else {
            StoreError::Idb { operation, detail }
        }
    }
}

/// One write of a batch. A batch is applied all-or-nothing in one IndexedDB transaction.
#[derive(Clone, Debug)]
pub enum Write {
    /// A small named value: the identity key, the node's state.
    PutMeta {
        key: &'static str,
        value: Vec<u8>,
    },
    /// Consecutive headers starting at `first_height`, replacing every stored header at or
    /// above it.
    PutHeaders {
        first_height: u32,
        headers: Vec<Header>,
    },
    /// Removes headers at `from_height` and above (a reorganisation).
    TruncateHeaders {
        from_height: u32,
    },
    /// A verified block, stored under its hash.
    PutBlock {
        hash: BlockHash,
        raw: Vec<u8>,
    },
    DeleteBlock {
        hash: BlockHash,
    },
    /// One of the core's key/value records (`StorageCommand::WriteKv`).
    PutKv {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    DeleteKv {
        key: Vec<u8>,
    },
}

/// The IndexedDB database of one node identity.
pub struct Store {
    db: Database,
    name: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.name).finish()
    }
}

impl Store {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Store, StoreError> {
        let factory = Factory::new().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut request = factory
            .open(name, Some(SCHEMA_VERSION))
            .map_err(|e| StoreError::idb("open", e))?;
        request.on_upgrade_needed(|event| {
            let Ok(db) = event.database() else { return };
            let existing = db.store_names();
            for old in [OLD_HEADERS, OLD_TXINDEX] {
                if existing.iter().any(|s| s == old) {
                    let _ = db.delete_object_store(old);
                }
            }
            for store in ALL_STORES {
                if !existing.iter().any(|s| s == store) {
                    // A failure here aborts the upgrade, which fails the open request below.
                    let _ = db.create_object_store(store, ObjectStoreParams::new());
                }
            }
        });
        let db = match request.await {
            Ok(db) => db,
            Err(idb::Error::DomException(e)) if e.name() == "VersionError" => {
                return Err(Store::newer_version(&factory, name).await);
            }
            Err(e) => return Err(StoreError::idb("open", e)),
        };
        Ok(Store {
            db,
            name: name.to_owned(),
        })
    }

    /// The error for a database whose schema is newer than this code's: its version read by
    /// opening it without asking for one (which changes nothing).
    async fn newer_version(factory: &Factory, name: &str) -> StoreError {
        let found = match factory.open(name, None) {
            Ok(request) => match request.await {
                Ok(db) => {
                    let version = db.version().unwrap_or(0);
                    db.close();
                    version
                }
                Err(_) => 0,
            },
            Err(_) => 0,
        };
        StoreError::NewerVersion {
            name: name.to_owned(),
            found,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the connection (the data stays).
    pub fn close(&self) {
        self.db.close();
    }

    /// Deletes the whole database `name` (tests and "forget this node").
    pub async fn delete_database(name: &str) -> Result<(), StoreError> {
        let factory = Factory::new().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        factory
            .delete(name)
            .map_err(|e| StoreError::idb("delete database", e))?
            .await
            .map_err(|e| StoreError::idb("delete database", e))
    }

    /// Applies `batch` in one read-write transaction: either every write lands or none does.
    pub async fn write(&self, batch: &[Write]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        for write in batch {
            check_write_size(write)?;
        }
        let chunks = self.plan_header_chunks(batch).await?;
        let tx = self
            .db
            .transaction(&ALL_STORES, TransactionMode::ReadWrite)
            .map_err(|e| StoreError::idb("begin write", e))?;
        let raw: IdbTransaction = tx.into();
        let tx = idb::Transaction::from(raw.clone());
        if let Err(err) = queue_writes(&tx, batch, &chunks) {
            let _ = raw.abort();
            return Err(err);
        }
        let result = tx.await;
        match (result, raw.error()) {
            (Ok(idb::TransactionResult::Committed), _) => Ok(()),
            (_, Some(exception)) => Err(StoreError::from_dom_exception("write", &exception)),
            (Ok(idb::TransactionResult::Aborted), None) => Err(StoreError::Idb {
                operation: "write",
                detail: "transaction aborted".into(),
            }),
            (Err(e), None) => Err(StoreError::idb("write", e)),
        }
    }

    /// A named small value, if present.
    pub async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.get(META, JsValue::from_str(key)).await?;
        value
            .map(|v| bytes_of(&v, "meta value", MAX_META_BYTES))
            .transpose()
    }

    /// Up to `limit` (at most [`MAX_HEADERS_PER_READ`]) consecutive headers from `first_height`.
    pub async fn headers(&self, first_height: u32, limit: u32) -> Result<Vec<Header>, StoreError> {
        let limit = limit.min(MAX_HEADERS_PER_READ);
        let chunks = self
            .chunks_from(
                first_height / HEADERS_PER_CHUNK,
                limit / HEADERS_PER_CHUNK + 2,
            )
            .await?;
        let mut headers = Vec::with_capacity(limit as usize);
        let mut next = first_height;
        for chunk in chunks {
            if chunk.first > next || headers.len() >= limit as usize {
                break; // a gap (or enough): only consecutive headers are returned
            }
            let end = chunk.first + chunk.headers.len() as u32;
            for (height, header) in (chunk.first..end).zip(chunk.headers) {
                if height >= next && headers.len() < limit as usize {
                    headers.push(header);
                    next = height + 1;
                }
            }
            if next != end {
                break;
            }
        }
        Ok(headers)
    }

    /// How many headers are stored.
    pub async fn header_count(&self) -> Result<u32, StoreError> {
        let chunks = self.chunks_from(0, u32::MAX).await?;
        Ok(chunks.iter().map(|c| c.headers.len() as u32).sum())
    }

    /// Up to `count` stored header chunks from chunk number `first_chunk` on, in order.
    async fn chunks_from(&self, first_chunk: u32, count: u32) -> Result<Vec<Chunk>, StoreError> {
        let tx = self
            .db
            .transaction(&[HEADERS], TransactionMode::ReadOnly)
            .map_err(|e| StoreError::idb("begin read", e))?;
        let store = tx
            .object_store(HEADERS)
            .map_err(|e| StoreError::idb("headers", e))?;
        let range = idb::KeyRange::lower_bound(&JsValue::from(first_chunk), Some(false))
            .map_err(|e| StoreError::idb("headers", e))?;
        let keys = store
            .get_all_keys(Some(Query::KeyRange(range.clone())), Some(count))
            .map_err(|e| StoreError::idb("headers", e))?
            .await
            .map_err(|e| StoreError::idb("headers", e))?;
        let values = store
            .get_all(Some(Query::KeyRange(range)), Some(count))
            .map_err(|e| StoreError::idb("headers", e))?
            .await
            .map_err(|e| StoreError::idb("headers", e))?;
        keys.iter()
            .zip(values.iter())
            .map(|(key, value)| {
                let number = key
                    .as_f64()
                    .filter(|k| k.fract() == 0.0 && *k >= 0.0 && *k <= f64::from(u32::MAX))
                    .ok_or_else(|| StoreError::Malformed {
                        what: "header chunk key",
                        detail: format!("{key:?}"),
                    })? as u32;
                Chunk::decode(number, &bytes_of(value, "header chunk", MAX_CHUNK_BYTES)?)
            })
            .collect()
    }

    /// Works out the header chunk records that `batch`'s header writes leave behind: reads the
    /// chunks the writes start in, then applies the writes to them in order.
    async fn plan_header_chunks(&self, batch: &[Write]) -> Result<ChunkPlan, StoreError> {
        let mut plan = ChunkPlan::default();
        for write in batch {
            let from_height = match write {
                Write::PutHeaders { first_height, .. } => *first_height,
                Write::TruncateHeaders { from_height } => *from_height,
                _ => continue,
            };
            let number = from_height / HEADERS_PER_CHUNK;
            let stored = if plan.dirty.contains_key(&number)
                || plan.deleted_from.is_some_and(|d| number >= d)
            {
                None // already decided by an earlier write of this batch
            } else {
                self.chunks_from(number, 1)
                    .await?
                    .into_iter()
                    .find(|c| c.number == number)
            };
            plan.truncate(from_height, stored);
            if let Write::PutHeaders {
                first_height,
                headers,
            } = write
            {
                plan.append(*first_height, headers)?;
            }
        }
        Ok(plan)
    }

    /// The raw bytes stored under `hash`, unchecked: for the core node, which checks every block
    /// it reads (and turns a corrupt one suspect, never deleting it). A value that is not a byte
    /// array, or one longer than a block may be, reads as no bytes at all, which fails the
    /// core's check the same way.
    pub async fn block_bytes(&self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(value) = self
            .get(BLOCKS, JsValue::from_str(&hash.to_string()))
            .await?
        else {
            return Ok(None);
        };
        crate::trace::mark("read-got", crate::cluster_node::block_id(&hash.0));
        Ok(Some(
            bytes_of(&value, "block", MAX_BLOCK_BYTES).unwrap_or_default(),
        ))
    }

    /// The block stored under `hash`, checked against its hash and Merkle root. A block that
    /// fails the check is reported as [`StoreError::Corrupt`] and left as it is (the core node
    /// fetches a verified copy over it).
    pub async fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let Some(value) = self
            .get(BLOCKS, JsValue::from_str(&hash.to_string()))
            .await?
        else {
            return Ok(None);
        };
        crate::trace::mark("read-got", crate::cluster_node::block_id(&hash.0));
        let checked = bytes_of(&value, "block", MAX_BLOCK_BYTES)
            .map_err(|_| "not a byte array of allowed size")
            .and_then(|raw| Block::decode(&raw).map_err(|_| "does not decode"))
            .and_then(|block| {
                if block.block_hash() != *hash {
                    Err("header hash differs from its key")
                } else if !block.check_merkle_root() {
                    Err("transactions do not match the Merkle root")
                } else {
                    Ok(block)
                }
            });
        checked
            .map(Some)
            .map_err(|why| StoreError::Corrupt { hash: *hash, why })
    }

    /// Hashes of all stored blocks.
    pub async fn block_hashes(&self) -> Result<Vec<BlockHash>, StoreError> {
        let tx = self
            .db
            .transaction(&[BLOCKS], TransactionMode::ReadOnly)
            .map_err(|e| StoreError::idb("begin read", e))?;
        let store = tx
            .object_store(BLOCKS)
            .map_err(|e| StoreError::idb("block keys", e))?;
        let keys = store
            .get_all_keys(None, None)
            .map_err(|e| StoreError::idb("block keys", e))?
            .await
            .map_err(|e| StoreError::idb("block keys", e))?;
        keys.iter()
            .map(|key| {
                key.as_string()
                    .and_then(|s| s.parse::<BlockHash>().ok())
                    .ok_or_else(|| StoreError::Malformed {
                        what: "block key",
                        detail: format!("{key:?}"),
                    })
            })
            .collect()
    }

    /// Every record of the core's key/value store. A record whose key is not hex or whose
    /// value is not bytes of at most [`KV_VALUE_MAX`] (a corrupt or hostile database) is left
    /// out and deleted; the core then re-indexes its block from the stored bytes.
    pub async fn kv_records(&self) -> Result<Vec<KvRecord>, StoreError> {
        let tx = self
            .db
            .transaction(&[NODE_KV], TransactionMode::ReadOnly)
            .map_err(|e| StoreError::idb("begin read", e))?;
        let store = tx
            .object_store(NODE_KV)
            .map_err(|e| StoreError::idb("key/value records", e))?;
        // One transaction: both lists come from the same snapshot, in key order.
        let keys = store
            .get_all_keys(None, None)
            .map_err(|e| StoreError::idb("key/value records", e))?
            .await
            .map_err(|e| StoreError::idb("key/value records", e))?;
        let values = store
            .get_all(None, None)
            .map_err(|e| StoreError::idb("key/value records", e))?
            .await
            .map_err(|e| StoreError::idb("key/value records", e))?;
        if keys.len() != values.len() {
            return Err(StoreError::Malformed {
                what: "key/value records",
                detail: format!("{} keys, {} values", keys.len(), values.len()),
            });
        }
        let mut records = Vec::with_capacity(keys.len());
        let mut bad = Vec::new();
        for (key, value) in keys.into_iter().zip(values) {
            let decoded = key
                .as_string()
                .filter(|k| k.len() <= 2 * KV_KEY_MAX)
                .and_then(|k| hex::decode(k).ok());
            match (decoded, bytes_of(&value, "key/value record", KV_VALUE_MAX)) {
                (Some(key), Ok(value)) => records.push((key, value)),
                _ => bad.push(key),
            }
        }
        if !bad.is_empty() {
            let tx = self
                .db
                .transaction(&[NODE_KV], TransactionMode::ReadWrite)
                .map_err(|e| StoreError::idb("begin write", e))?;
            let store = tx
                .object_store(NODE_KV)
                .map_err(|e| StoreError::idb("delete record", e))?;
            for key in bad {
                store
                    .delete(Query::Key(key))
                    .map_err(|e| StoreError::idb("delete record", e))?;
            }
            tx.await.map_err(|e| StoreError::idb("delete record", e))?;
        }
        Ok(records)
    }

    /// Writes any value under a key/value record key without a check: only for tests of
    /// hostile databases.
    #[cfg(test)]
    pub async fn put_raw_kv_for_test(
        &self,
        key: JsValue,
        value: JsValue,
    ) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction(&[NODE_KV], TransactionMode::ReadWrite)
            .map_err(|e| StoreError::idb("begin write", e))?;
        tx.object_store(NODE_KV)
            .map_err(|e| StoreError::idb("write", e))?
            .put(&value, Some(&key))
            .map_err(|e| StoreError::idb("write", e))?;
        tx.await.map_err(|e| StoreError::idb("write", e))?;
        Ok(())
    }

    async fn get(&self, store: &str, key: JsValue) -> Result<Option<JsValue>, StoreError> {
        let tx = self
            .db
            .transaction(&[store], TransactionMode::ReadOnly)
            .map_err(|e| StoreError::idb("begin read", e))?;
        let value = tx
            .object_store(store)
            .map_err(|e| StoreError::idb("read", e))?
            .get(Query::Key(key))
            .map_err(|e| StoreError::idb("read", e))?
            .await
            .map_err(|e| StoreError::idb("read", e))?;
        Ok(value.filter(|v| !v.is_undefined()))
    }

    /// Writes raw bytes under a block key without any check: only for tests that corrupt data.
    #[cfg(test)]
    pub async fn put_raw_block_for_test(
        &self,
        hash: &BlockHash,
        raw: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self
            .db
            .transaction(&[BLOCKS], TransactionMode::ReadWrite)
            .map_err(|e| StoreError::idb("begin write", e))?;
        let store = tx
            .object_store(BLOCKS)
            .map_err(|e| StoreError::idb("write", e))?;
        store
            .put(
                &Uint8Array::from(raw).into(),
                Some(&JsValue::from_str(&hash.to_string())),
            )
            .map_err(|e| StoreError::idb("write", e))?;
        tx.await.map_err(|e| StoreError::idb("write", e))?;
        Ok(())
    }
}

fn check_write_size(write: &Write) -> Result<(), StoreError> {
    let (what, len, limit) = match write {
        Write::PutMeta { value, .. } => ("meta value", value.len(), MAX_META_BYTES),
        Write::PutBlock { raw, .. } => ("block", raw.len(), MAX_BLOCK_BYTES),
        Write::PutKv { key, value } if key.len() > KV_KEY_MAX => {
            ("key/value record key", key.len(), KV_KEY_MAX)
        }
        Write::PutKv { value, .. } => ("key/value record", value.len(), KV_VALUE_MAX),
        Write::DeleteKv { key } => ("key/value record key", key.len(), KV_KEY_MAX),
        _ => return Ok(()),
    };
    if len > limit {
        return Err(StoreError::TooLarge { what, len, limit });
    }
    Ok(())
}

/// Queues every write of `batch` on `tx`; the transaction commits when they are done.
fn queue_writes(
    tx: &idb::Transaction,
    batch: &[Write],
    chunks: &ChunkPlan,
) -> Result<(), StoreError> {
    let store = |name| {
        tx.object_store(name)
            .map_err(|e| StoreError::idb("write", e))
    };
    let put = |name, key: JsValue, bytes: &[u8]| -> Result<(), StoreError> {
        store(name)?
            .put(&Uint8Array::from(bytes).into(), Some(&key))
            .map_err(|e| StoreError::idb("put", e))?;
        Ok(())
    };
    for write in batch {
        match write {
            Write::PutMeta { key, value } => put(META, JsValue::from_str(key), value)?,
            // Header writes were worked out by `plan_header_chunks`, queued below.
            Write::PutHeaders { .. } | Write::TruncateHeaders { .. } => {}
            Write::PutBlock { hash, raw } => {
                put(BLOCKS, JsValue::from_str(&hash.to_string()), raw)?
            }
            Write::DeleteBlock { hash } => {
                store(BLOCKS)?
                    .delete(Query::Key(JsValue::from_str(&hash.to_string())))
                    .map_err(|e| StoreError::idb("delete block", e))?;
            }
            Write::PutKv { key, value } => {
                put(NODE_KV, JsValue::from_str(&hex::encode(key)), value)?
            }
            Write::DeleteKv { key } => {
                store(NODE_KV)?
                    .delete(Query::Key(JsValue::from_str(&hex::encode(key))))
                    .map_err(|e| StoreError::idb("delete record", e))?;
            }
        }
    }
    if let Some(from_chunk) = chunks.deleted_from {
        let range = idb::KeyRange::lower_bound(&JsValue::from(from_chunk), Some(false))
            .map_err(|e| StoreError::idb("truncate headers", e))?;
        store(HEADERS)?
            .delete(Query::KeyRange(range))
            .map_err(|e| StoreError::idb("truncate headers", e))?;
    }
    for (number, chunk) in &chunks.dirty {
        match chunk {
            Some(chunk) => put(HEADERS, JsValue::from(*number), &chunk.encode())?,
            None => {
                store(HEADERS)?
                    .delete(Query::Key(JsValue::from(*number)))
                    .map_err(|e| StoreError::idb("truncate headers", e))?;
            }
        }
    }
    Ok(())
}

/// One stored header chunk: consecutive headers from `first`, all inside chunk `number`.
#[derive(Clone, Debug, PartialEq)]
struct Chunk {
    number: u32,
    first: u32,
    headers: Vec<Header>,
}

impl Chunk {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 80 * self.headers.len());
        out.extend_from_slice(&self.first.to_le_bytes());
        for header in &self.headers {
            out.extend_from_slice(&header.encode());
        }
        out
    }

    fn decode(number: u32, bytes: &[u8]) -> Result<Chunk, StoreError> {
        let malformed = |detail: String| StoreError::Malformed {
            what: "header chunk",
            detail,
        };
        if bytes.len() < 4 || (bytes.len() - 4) % 80 != 0 || bytes.len() > MAX_CHUNK_BYTES {
            return Err(malformed(format!("{} bytes", bytes.len())));
        }
        let first = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let count = ((bytes.len() - 4) / 80) as u64;
        let chunk_start = u64::from(number) * u64::from(HEADERS_PER_CHUNK);
        let chunk_end = chunk_start + u64::from(HEADERS_PER_CHUNK);
        if u64::from(first) < chunk_start || u64::from(first) + count > chunk_end {
            return Err(malformed(format!(
                "chunk {number} holds heights {first}..{} outside it",
                u64::from(first) + count
            )));
        }
        let headers = bytes[4..]
            .chunks_exact(80)
            .map(|raw| Header::decode(raw).map_err(|e| malformed(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Chunk {
            number,
            first,
            headers,
        })
    }
}

/// What one batch does to the header chunks: chunks from `deleted_from` on are deleted, then
/// each `dirty` chunk is put (or deleted when `None`).
#[derive(Default, Debug)]
struct ChunkPlan {
    deleted_from: Option<u32>,
    dirty: std::collections::BTreeMap<u32, Option<Chunk>>,
}

impl ChunkPlan {
    /// Drops every header at `from_height` and above; `stored` is the chunk `from_height`
    /// falls in as stored, when the plan has not decided it yet.
    fn truncate(&mut self, from_height: u32, stored: Option<Chunk>) {
        let number = from_height / HEADERS_PER_CHUNK;
        let current = match self.dirty.remove(&number) {
            Some(decided) => decided,
            None => stored,
        };
        let kept = current.map(|mut chunk| {
            let keep = from_height.saturating_sub(chunk.first) as usize;
            chunk.headers.truncate(keep);
            chunk
        });
        self.dirty.retain(|n, _| *n < number);
        self.deleted_from = Some(self.deleted_from.map_or(number + 1, |d| d.min(number + 1)));
        self.dirty
            .insert(number, kept.filter(|c| !c.headers.is_empty()));
    }

    /// Appends `headers` from `first_height` on, right after a truncation at `first_height`.
    fn append(&mut self, first_height: u32, headers: &[Header]) -> Result<(), StoreError> {
        let mut height = first_height;
        for header in headers {
            let number = height / HEADERS_PER_CHUNK;
            let slot = self.dirty.entry(number).or_insert(None);
            match slot {
                Some(chunk) if chunk.first + chunk.headers.len() as u32 == height => {
                    chunk.headers.push(*header)
                }
                Some(chunk) => {
                    return Err(StoreError::Malformed {
                        what: "header write",
                        detail: format!(
                            "headers from height {first_height} do not follow the stored ones \
                             (chunk {} ends at {})",
                            chunk.number,
                            chunk.first + chunk.headers.len() as u32
                        ),
                    })
                }
                None => {
                    *slot = Some(Chunk {
                        number,
                        first: height,
                        headers: vec![*header],
                    })
                }
            }
            height = height
                .checked_add(1)
                .ok_or_else(|| StoreError::idb("put headers", "height overflows u32"))?;
        }
        Ok(())
    }
}

/// The bytes of a stored value, which must be a `Uint8Array` of at most `limit` bytes.
fn bytes_of(value: &JsValue, what: &'static str, limit: usize) -> Result<Vec<u8>, StoreError> {
    let array = value
        .dyn_ref::<Uint8Array>()
        .ok_or_else(|| StoreError::Malformed {
            what,
            detail: "not a byte array".into(),
        })?;
    let len = array.length() as usize;
    if len > limit {
        return Err(StoreError::TooLarge { what, len, limit });
    }
    Ok(array.to_vec())
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::{OutPoint, Transaction, TxIn, TxOut, Txid};
    use wasm_bindgen_test::*;

    use super::*;
    use crate::error::{ApiError, ErrorCode};

    wasm_bindgen_test_configure!(run_in_browser);

    /// A small valid block: `n` transactions, Merkle root filled in, linked to `prev`.
    fn block(prev: BlockHash, n: u32, seed: u8) -> Block {
        let txdata = (0..n)
            .map(|i| Transaction {
                version: 2,
                input: vec![TxIn {
                    previous_output: OutPoint {
                        txid: Txid([seed; 32]),
                        vout: i,
                    },
                    script_sig: vec![seed, i as u8, 0x51],
                    sequence: u32::MAX,
                    witness: Default::default(),
                }],
                output: vec![TxOut {
                    value: 5_000 + u64::from(i),
                    script_pubkey: vec![0x51],
                }],
                lock_time: 0,
            })
            .collect();
        let mut block = Block {
            header: Header {
                version: 4,
                prev_blockhash: prev,
                merkle_root: shoal_core::chain::Hash256::default(),
                time: 1_700_000_000 + u32::from(seed),
                bits: 0x207f_ffff,
                nonce: u32::from(seed),
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().0;
        block
    }

    async fn fresh(name: &str) -> Store {
        Store::delete_database(name).await.unwrap();
        Store::open(name).await.unwrap()
    }

    /// A database a newer version wrote (a higher schema version) is refused with an error
    /// that says so, and left as it is.
    #[wasm_bindgen_test]
    async fn a_database_of_a_newer_version_is_refused_with_a_clear_error_and_left_alone() {
        let name = "shoal-test-newer";
        Store::delete_database(name).await.unwrap();
        let factory = Factory::new().unwrap();
        let newer = factory
            .open(name, Some(SCHEMA_VERSION + 3))
            .unwrap()
            .await
            .unwrap();
        newer.close();
        let err = Store::open(name).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NewerVersion { found, .. } if *found == SCHEMA_VERSION + 3),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("written by a newer version of Shoal"),
            "{text}"
        );
        assert!(text.contains("another `database` name"), "{text}");
        assert_eq!(ApiError::from(err).code, ErrorCode::Storage);
        let again = factory.open(name, None).unwrap().await.unwrap();
        assert_eq!(
            again.version().unwrap(),
            SCHEMA_VERSION + 3,
            "left as it was"
        );
        again.close();
        Store::delete_database(name).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn writes_survive_reopening() {
        let name = "shoal-test-reopen";
        let store = fresh(name).await;
        let b1 = block(BlockHash::default(), 3, 1);
        let b2 = block(b1.block_hash(), 5, 2);
        store
            .write(&[
                Write::PutMeta {
                    key: "identity",
                    value: vec![7; 68],
                },
                Write::PutHeaders {
                    first_height: 0,
                    headers: vec![b1.header, b2.header],
                },
                Write::PutBlock {
                    hash: b2.block_hash(),
                    raw: b2.encode(),
                },
            ])
            .await
            .unwrap();
        store.close();

        let store = Store::open(name).await.unwrap();
        assert_eq!(store.meta("identity").await.unwrap(), Some(vec![7; 68]));
        assert_eq!(store.meta("state").await.unwrap(), None);
        assert_eq!(store.header_count().await.unwrap(), 2);
        assert_eq!(
            store.headers(0, 10).await.unwrap(),
            vec![b1.header, b2.header]
        );
        assert_eq!(store.headers(1, 10).await.unwrap(), vec![b2.header]);
        assert_eq!(
            store.block(&b2.block_hash()).await.unwrap(),
            Some(b2.clone())
        );
        assert_eq!(store.block(&b1.block_hash()).await.unwrap(), None);
        assert_eq!(store.block_hashes().await.unwrap(), vec![b2.block_hash()]);

        store
            .write(&[Write::TruncateHeaders { from_height: 1 }])
            .await
            .unwrap();
        assert_eq!(store.headers(0, 10).await.unwrap(), vec![b1.header]);
        store.close();
        Store::delete_database(name).await.unwrap();
    }

    /// `n` distinct headers (the store does not check linkage; the node does).
    fn headers_numbered(from: u32, n: u32) -> Vec<Header> {
        (from..from + n)
            .map(|i| Header {
                nonce: i,
                ..block(BlockHash::default(), 1, 1).header
            })
            .collect()
    }

    #[wasm_bindgen_test]
    async fn headers_are_stored_in_chunks_across_boundaries_truncations_and_reopening() {
        let name = "shoal-test-chunks";
        let store = fresh(name).await;
        let all = headers_numbered(1, 4_500);
        // Two sync batches, the first starting at height 1 (the genesis header is not stored).
        for (first, part) in [(1u32, &all[..2_000]), (2_001, &all[2_000..])] {
            store
                .write(&[Write::PutHeaders {
                    first_height: first,
                    headers: part.to_vec(),
                }])
                .await
                .unwrap();
        }
        assert_eq!(store.chunks_from(0, 10).await.unwrap().len(), 3);
        assert_eq!(store.header_count().await.unwrap(), 4_500);
        assert_eq!(store.headers(1, 50_000).await.unwrap(), all);
        assert_eq!(store.headers(0, 10).await.unwrap(), vec![], "nothing at 0");
        assert_eq!(store.headers(1_999, 3).await.unwrap(), all[1_998..2_001]);
        assert_eq!(store.headers(4_500, 10).await.unwrap(), all[4_499..]);
        assert_eq!(store.headers(4_501, 10).await.unwrap(), vec![]);

        // A reorganisation from height 3,000 (mid-chunk): truncate, then the new branch.
        let branch = headers_numbered(90_000, 700);
        store
            .write(&[
                Write::TruncateHeaders { from_height: 3_000 },
                Write::PutHeaders {
                    first_height: 3_000,
                    headers: branch.clone(),
                },
            ])
            .await
            .unwrap();
        store.close();
        let store = Store::open(name).await.unwrap();
        let mut expected = all[..2_999].to_vec();
        expected.extend_from_slice(&branch);
        assert_eq!(store.header_count().await.unwrap(), 3_699);
        assert_eq!(store.headers(1, 50_000).await.unwrap(), expected);

        // A write that leaves a gap within a chunk is refused and changes nothing.
        let refused = store
            .write(&[
                Write::TruncateHeaders { from_height: 3_100 },
                Write::PutHeaders {
                    first_height: 3_200,
                    headers: headers_numbered(5, 5),
                },
            ])
            .await;
        assert!(matches!(refused, Err(StoreError::Malformed { .. })));
        assert_eq!(store.headers(1, 50_000).await.unwrap(), expected);

        store
            .write(&[Write::TruncateHeaders { from_height: 2_000 }])
            .await
            .unwrap();
        assert_eq!(store.headers(1, 50_000).await.unwrap(), all[..1_999]);
        assert_eq!(store.chunks_from(0, 10).await.unwrap().len(), 1);
        store.close();
        Store::delete_database(name).await.unwrap();
    }

    #[wasm_bindgen_test]
    fn hostile_header_chunks_are_rejected() {
        let good = Chunk {
            number: 1,
            first: 2_000,
            headers: headers_numbered(0, 3),
        };
        assert_eq!(Chunk::decode(1, &good.encode()).unwrap(), good);
        assert!(
            Chunk::decode(2, &good.encode()).is_err(),
            "heights outside the chunk"
        );
        let mut ragged = good.encode();
        ragged.push(0);
        assert!(Chunk::decode(1, &ragged).is_err());
        assert!(Chunk::decode(1, &[1, 2]).is_err());
        let overfull = Chunk {
            number: 0,
            first: 1,
            headers: headers_numbered(0, HEADERS_PER_CHUNK),
        };
        assert!(
            Chunk::decode(0, &overfull.encode()).is_err(),
            "one past the chunk"
        );
    }

    #[wasm_bindgen_test]
    async fn core_records_survive_reopening_and_hostile_ones_are_dropped() {
        let name = "shoal-test-node-kv";
        let store = fresh(name).await;
        assert!(store.kv_records().await.unwrap().is_empty());
        store
            .write(&[
                Write::PutKv {
                    key: b"txi/a".to_vec(),
                    value: vec![1, 2, 3],
                },
                Write::PutKv {
                    key: b"txi/b".to_vec(),
                    value: vec![4],
                },
                Write::PutKv {
                    key: b"txi/c".to_vec(),
                    value: vec![5],
                },
            ])
            .await
            .unwrap();
        store
            .write(&[Write::DeleteKv {
                key: b"txi/c".to_vec(),
            }])
            .await
            .unwrap();
        // Larger than the core ever writes: refused, and the batch with it.
        let refused = store
            .write(&[
                Write::PutKv {
                    key: b"txi/d".to_vec(),
                    value: vec![0],
                },
                Write::PutKv {
                    key: b"txi/e".to_vec(),
                    value: vec![0; KV_VALUE_MAX + 1],
                },
            ])
            .await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { .. })),
            "{refused:?}"
        );
        // A hostile database: a key that is not hex, a value that is not bytes, an oversized
        // value.
        store
            .put_raw_kv_for_test(JsValue::from_str("zz"), Uint8Array::from(&[1u8][..]).into())
            .await
            .unwrap();
        store
            .put_raw_kv_for_test(
                JsValue::from_str(&hex::encode(b"txi/f")),
                JsValue::from_str("not bytes"),
            )
            .await
            .unwrap();
        store
            .put_raw_kv_for_test(
                JsValue::from_str(&hex::encode(b"txi/g")),
                Uint8Array::new_with_length((KV_VALUE_MAX + 1) as u32).into(),
            )
            .await
            .unwrap();
        store.close();
        let store = Store::open(name).await.unwrap();
        let expected = vec![
            (b"txi/a".to_vec(), vec![1, 2, 3]),
            (b"txi/b".to_vec(), vec![4]),
        ];
        assert_eq!(store.kv_records().await.unwrap(), expected);
        // The hostile records were deleted, not only left out.
        let tx = store
            .db
            .transaction(&[NODE_KV], TransactionMode::ReadOnly)
            .unwrap();
        let count = tx
            .object_store(NODE_KV)
            .unwrap()
            .count(None)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(count, 2);
        store.close();
        Store::delete_database(name).await.unwrap();
    }

    /// Opens `name` at an old schema `version` with `stores`, puts `records` (store, key,
    /// value) in one transaction, and closes it.
    async fn old_database(
        name: &str,
        version: u32,
        stores: &[&str],
        records: &[(&str, &str, &[u8])],
    ) {
        Store::delete_database(name).await.unwrap();
        let factory = Factory::new().unwrap();
        let mut request = factory.open(name, Some(version)).unwrap();
        let stores: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        request.on_upgrade_needed(move |event| {
            let db = event.database().unwrap();
            for store in &stores {
                db.create_object_store(store, ObjectStoreParams::new())
                    .unwrap();
            }
        });
        let db = request.await.unwrap();
        let names: Vec<&str> = records.iter().map(|(store, _, _)| *store).collect();
        let tx = db.transaction(&names, TransactionMode::ReadWrite).unwrap();
        for (store, key, value) in records {
            tx.object_store(store)
                .unwrap()
                .put(
                    &Uint8Array::from(*value).into(),
                    Some(&JsValue::from_str(key)),
                )
                .unwrap();
        }
        tx.await.unwrap();
        db.close();
    }

    /// Versions 2 and 3 kept the shell's own transaction index (`txindex`): opening them drops
    /// it and keeps everything else; version 2 also gains the core's record store.
    #[wasm_bindgen_test]
    async fn older_databases_drop_the_shell_index_and_keep_everything_else() {
        let b = block(BlockHash::default(), 2, 8);
        let raw = b.encode();
        let hash = b.block_hash().to_string();
        let txid = b.txdata[1].txid().to_string();
        let location = [[7u8; 32].as_slice(), &1u32.to_le_bytes()].concat();
        let name = "shoal-test-upgrade-2";
        old_database(
            name,
            2,
            &[META, HEADERS, BLOCKS, OLD_TXINDEX],
            &[(BLOCKS, &hash, &raw), (OLD_TXINDEX, &txid, &location)],
        )
        .await;
        let store = Store::open(name).await.unwrap();
        assert!(!store.db.store_names().iter().any(|s| s == OLD_TXINDEX));
        assert_eq!(store.block(&b.block_hash()).await.unwrap(), Some(b.clone()));
        assert!(store.kv_records().await.unwrap().is_empty());
        store
            .write(&[Write::PutKv {
                key: b"k".to_vec(),
                value: vec![1],
            }])
            .await
            .unwrap();
        assert_eq!(store.kv_records().await.unwrap().len(), 1);
        store.close();
        Store::delete_database(name).await.unwrap();

        let name = "shoal-test-upgrade-3";
        let record_key = hex::encode(b"txi/k");
        old_database(
            name,
            3,
            &[META, HEADERS, BLOCKS, OLD_TXINDEX, NODE_KV],
            &[
                (META, "identity", &[5; 68]),
                (BLOCKS, &hash, &raw),
                (OLD_TXINDEX, &txid, &location),
                (NODE_KV, &record_key, &[9, 9]),
            ],
        )
        .await;
        let store = Store::open(name).await.unwrap();
        let mut names = store.db.store_names();
        names.sort();
        assert_eq!(names, ["blocks", "header_chunks", "meta", "node_kv"]);
        assert_eq!(store.meta("identity").await.unwrap(), Some(vec![5; 68]));
        assert_eq!(store.block(&b.block_hash()).await.unwrap(), Some(b));
        assert_eq!(
            store.kv_records().await.unwrap(),
            vec![(b"txi/k".to_vec(), vec![9, 9])]
        );
        store.close();
        Store::delete_database(name).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn a_version_1_database_upgrades_and_drops_its_per_header_store() {
        let name = "shoal-test-upgrade";
        Store::delete_database(name).await.unwrap();
        let factory = Factory::new().unwrap();
        let mut request = factory.open(name, Some(1)).unwrap();
        request.on_upgrade_needed(|event| {
            let db = event.database().unwrap();
            for store in [META, OLD_HEADERS, BLOCKS, OLD_TXINDEX] {
                db.create_object_store(store, ObjectStoreParams::new())
                    .unwrap();
            }
        });
        request.await.unwrap().close();
        let store = Store::open(name).await.unwrap();
        assert!(!store.db.store_names().iter().any(|s| s == OLD_HEADERS));
        assert_eq!(store.header_count().await.unwrap(), 0);
        store
            .write(&[Write::PutHeaders {
                first_height: 1,
                headers: headers_numbered(1, 2),
            }])
            .await
            .unwrap();
        assert_eq!(store.header_count().await.unwrap(), 2);
        store.close();
        Store::delete_database(name).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn a_corrupt_block_is_detected_never_returned_and_not_deleted() {
        let store = fresh("shoal-test-corrupt").await;
        let good = block(BlockHash::default(), 4, 3);
        let hash = good.block_hash();
        let mut raw = good.encode();
        // Flip one byte inside the last transaction's output value: the header still hashes
        // to the key, but the transactions no longer match the Merkle root.
        let at = raw.len() - 12;
        raw[at] ^= 0x01;
        store.put_raw_block_for_test(&hash, &raw).await.unwrap();

        let err = store.block(&hash).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { why, .. } if why.contains("Merkle")),
            "{err}"
        );
        assert_eq!(ApiError::from(err).code, ErrorCode::Storage);
        assert!(
            store.block(&hash).await.is_err(),
            "still there, still refused"
        );
        assert_eq!(
            store.block_bytes(&hash).await.unwrap(),
            Some(raw.clone()),
            "the raw bytes are kept for the core to judge"
        );

        // A block stored under another block's hash is caught too.
        let other = block(BlockHash::default(), 2, 4);
        store
            .put_raw_block_for_test(&hash, &other.encode())
            .await
            .unwrap();
        assert!(matches!(
            store.block(&hash).await,
            Err(StoreError::Corrupt {
                why: "header hash differs from its key",
                ..
            })
        ));
        // Garbage that does not decode.
        store
            .put_raw_block_for_test(&hash, &[1, 2, 3])
            .await
            .unwrap();
        assert!(matches!(
            store.block(&hash).await,
            Err(StoreError::Corrupt {
                why: "does not decode",
                ..
            })
        ));
        assert_eq!(
            store.block_hashes().await.unwrap(),
            vec![hash],
            "kept: the core fetches a verified copy over it"
        );
        store.close();
    }

    #[wasm_bindgen_test]
    async fn oversized_writes_are_refused_and_change_nothing() {
        let store = fresh("shoal-test-limits").await;
        let b = block(BlockHash::default(), 1, 5);
        let err = store
            .write(&[
                Write::PutHeaders {
                    first_height: 0,
                    headers: vec![b.header],
                },
                Write::PutMeta {
                    key: "state",
                    value: vec![0; MAX_META_BYTES + 1],
                },
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert_eq!(store.header_count().await.unwrap(), 0, "all or nothing");
        store.close();
    }

    #[wasm_bindgen_test]
    fn a_quota_exception_maps_to_storage() {
        let exception =
            DomException::new_with_message_and_name("quota", "QuotaExceededError").unwrap();
        let err = StoreError::from_dom_exception("write", &exception);
        assert!(matches!(err, StoreError::QuotaExceeded(_)), "{err}");
        let js: JsValue = ApiError::from(err).into();
        let code = js_sys::Reflect::get(&js, &JsValue::from_str("code")).unwrap();
        assert_eq!(code.as_string().as_deref(), Some("STORAGE"));
    }
}
