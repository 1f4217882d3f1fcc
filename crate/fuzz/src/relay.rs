//! What the relay reads from disk (`shoal-relay`): block files for import and the offline tools,
//! and the records of its redb stores — the archive's chain ([`ChainStore`]) and a member's
//! shard ([`ShardStore`]) — when a damaged or hostile file gives back bytes the relay never
//! wrote.

use std::sync::OnceLock;

use futures::executor::block_on;
use redb::{Database, StorageBackend, TableDefinition};
use shoal_core::chain::generate::{generate_chain, GenerateConfig};
use shoal_core::chain::{Block, Header};
use shoal_core::node::{KV_KEY_MAX, KV_VALUE_MAX};
use shoal_host::{BlockStore, Write};
use shoal_relay::blockfile;
use shoal_relay::serve::shard::ShardStore;
use shoal_relay::serve::store::{ChainStore, StoreError, MAX_HEADERS_PER_READ};

use crate::alloc::bounded;
use crate::Bytes;

/// `blockfile::decode_blocks` within the allocation bound: whatever decodes holds at least one
/// block, each the bytes at its offset, and a name for its format.
pub fn block_file(data: &[u8]) {
    let Ok(file) = bounded("block file", data.len(), || blockfile::decode_blocks(data)) else {
        return;
    };
    assert!(!file.blocks.is_empty());
    let (_, bytes) = blockfile::decode_text(data).expect("decoded once");
    for block in &file.blocks {
        let encoded = block.block.encode();
        assert_eq!(
            bytes.get(block.offset..block.offset + encoded.len()),
            Some(&encoded[..]),
            "a block is the bytes at its offset"
        );
    }
    let _ = file.format_name();
    let _ = file.network();
}

/// A database file in memory. (redb's own `InMemoryBackend` grows its buffer one pushed byte
/// at a time, which under coverage instrumentation took most of each run.)
#[derive(Debug, Default)]
struct Memory(std::sync::Mutex<Vec<u8>>);

impl Memory {
    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn out_of_range() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "past the end of the file",
    )
}

impl StorageBackend for Memory {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.bytes().len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        let bytes = self.bytes();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(len).ok_or_else(out_of_range)?;
        bytes
            .get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(out_of_range)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.bytes().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut bytes = self.bytes();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(data.len()).ok_or_else(out_of_range)?;
        bytes
            .get_mut(start..end)
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}

// The stores' tables, spelt as the relay spells them (a different name or type would make
// the store refuse the database, which the seeds' test would show).
const HEADERS: TableDefinition<'static, u32, &'static [u8]> = TableDefinition::new("headers");
const HEIGHTS: TableDefinition<'static, &'static [u8; 32], u32> = TableDefinition::new("heights");
const BLOCKS: TableDefinition<'static, &'static [u8; 32], &'static [u8]> =
    TableDefinition::new("blocks");
const NODE_KV: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("node_kv");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// Records written to a store before it is opened: the first byte picks the store (archive or
/// member), then up to 32 records, each a table and a key and value chosen from the input —
/// real headers and blocks of a small chain, damaged ones, or arbitrary bytes. The store is
/// then opened and read every way the relay reads it, and the chain's blocks are appended
/// (archive) or put (member) on top. Every read gives the records back or a `Corrupt` error,
/// never a panic; what is handed on (headers, blocks, records) is what the readers promise.
pub fn relay_store(data: &[u8]) {
    let mut b = Bytes::new(data);
    let member = b.bool();
    #[allow(unused_mut)]
    let mut builder = Database::builder();
    // cargo-fuzz builds with `--cfg fuzzing`, under which redb lets the region size be
    // chosen. With its default of 4 GiB, saving the allocator state at every commit (quick
    // repair, `store::write_tx`) serialises a 4 GiB region's bitmaps: 46 runs a second. A
    // region must hold the largest page the records make: a leaf of two of the ~800 KB
    // records below is an order-9 page (2 MiB), which no 1 MiB region can hold (redb 2.6.4
    // then panics in `allocate`, an `unwrap` after growing the file). 4 MiB regions leave
    // room for two such pages and cost no more than 1 MiB ones (FUZZING.md).
    #[cfg(fuzzing)]
    builder.set_region_size(FUZZ_REGION_BYTES);
    let database = builder
        .create_with_backend(Memory::default())
        .expect("an in-memory database");
    write_records(&database, &mut b, member).expect("records written");
    if member {
        member_store(database, &mut b);
    } else {
        archive_store(database, &mut b);
    }
}

/// redb's region size under cargo-fuzz (see `relay_store`).
#[cfg(fuzzing)]
const FUZZ_REGION_BYTES: u64 = 4 << 20;

/// A small chain with real proof of work, heights 1 to 3 (BIP34), made once.
fn chain() -> &'static [Block] {
    static CHAIN: OnceLock<Vec<Block>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        generate_chain(&GenerateConfig {
            blocks: 3,
            txs_per_block: 2,
            ..Default::default()
        })
        .expect("a regtest chain")
    })
}

fn hash_key(b: &mut Bytes<'_>) -> [u8; 32] {
    let chain = chain();
    match b.u8() % 4 {
        0 => {
            let mut key = [0u8; 32];
            let given = b.take(32);
            key[..given.len()].copy_from_slice(given);
            key
        }
        n => chain[n as usize - 1].block_hash().0,
    }
}

fn block_value(b: &mut Bytes<'_>) -> Vec<u8> {
    let chain = chain();
    match b.u8() % 4 {
        0 => b.slice(4096).to_vec(),
        n => {
            let mut bytes = chain[n as usize - 1].encode();
            // Damage it, or cut it, or neither.
            match b.u8() % 3 {
                0 => {
                    let at = b.below(bytes.len());
                    bytes[at] ^= b.u8() | 1;
                }
                1 => bytes.truncate(b.below(bytes.len())),
                _ => {}
            }
            bytes
        }
    }
}

// redb's own error type, as its calls return it: the caller only unwraps it.
#[allow(clippy::result_large_err)]
fn write_records(database: &Database, b: &mut Bytes<'_>, member: bool) -> Result<(), redb::Error> {
    let tx = database.begin_write()?;
    {
        let mut headers = tx.open_table(HEADERS)?;
        let mut heights = tx.open_table(HEIGHTS)?;
        let mut blocks = tx.open_table(BLOCKS)?;
        let mut kv = tx.open_table(NODE_KV)?;
        for _ in 0..32 {
            if b.is_empty() {
                break;
            }
            match b.u8() % 6 {
                0 => {
                    let height = if b.bool() {
                        b.u32()
                    } else {
                        u32::from(b.u8() % 8)
                    };
                    let value = match b.u8() % 3 {
                        0 => b.slice(160).to_vec(),
                        n => chain()[(n as usize + height as usize) % 3]
                            .header
                            .encode()
                            .to_vec(),
                    };
                    headers.insert(height, value.as_slice())?;
                }
                1 => {
                    let key = hash_key(b);
                    heights.insert(
                        &key,
                        if b.bool() {
                            b.u32()
                        } else {
                            u32::from(b.u8() % 8)
                        },
                    )?;
                }
                2 => {
                    let key = hash_key(b);
                    blocks.insert(&key, block_value(b).as_slice())?;
                }
                3 => {
                    let key = b.slice(KV_KEY_MAX + 16).to_vec();
                    let value = b.slice(1024).to_vec();
                    kv.insert(key.as_slice(), value.as_slice())?;
                }
                4 => {
                    // A record larger than the node ever writes.
                    let key = b.slice(KV_KEY_MAX + 16).to_vec();
                    let value = vec![b.u8(); KV_VALUE_MAX + 1 + b.u8() as usize];
                    kv.insert(key.as_slice(), value.as_slice())?;
                }
                _ => {
                    if !member {
                        tx.open_table(META)?.insert("chain_bytes", b.u64())?;
                    }
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The archive's store: every reader, then the chain appended on top.
fn archive_store(database: Database, b: &mut Bytes<'_>) {
    let store = match ChainStore::from_database(database) {
        Ok(store) => store,
        Err(StoreError::Corrupt { .. }) => return,
        Err(error) => panic!("opening a store of hostile records: {error}"),
    };
    readable(store.tip());
    readable(store.base_height());
    readable(store.chain_bytes());
    readable(store.len());
    let start = if b.bool() {
        b.u32()
    } else {
        u32::from(b.u8() % 8)
    };
    if let Some(headers) = readable(store.headers(start, b.u32())) {
        assert!(headers.len() <= MAX_HEADERS_PER_READ as usize);
    }
    let hashes = readable(store.block_hashes()).unwrap_or_default();
    for hash in hashes.iter().take(8) {
        readable(store.height_of(hash));
        if let Some(Some(bytes)) = readable(store.block_bytes(hash)) {
            let header = Header::decode(&bytes[..80]).expect("checked by block_bytes");
            assert_eq!(
                header.block_hash(),
                *hash,
                "a block served is the one asked for"
            );
        }
        if let Some(Some(block)) = readable(store.block(hash)) {
            assert_eq!(block.block_hash(), *hash);
            assert!(block.check().is_ok(), "a block served passes its checks");
        }
    }
    if let Some(records) = readable(store.kv_records()) {
        check_records(&records);
        assert_eq!(
            readable(store.kv_records()),
            Some(records),
            "oversized records are dropped once, the rest kept"
        );
    }
    for block in chain() {
        let before = readable(store.chain_bytes());
        if store.append(block).is_ok() {
            let hash = block.block_hash();
            assert_eq!(
                store.block_bytes(&hash).ok().flatten(),
                Some(block.encode())
            );
            assert_eq!(store.tip().ok().flatten().map(|tip| tip.hash), Some(hash));
            if let (Some(before), Some(after)) = (before, readable(store.chain_bytes())) {
                assert!(after >= before, "the chain's byte count never goes down");
            }
        }
    }
}

/// A member's store: every reader, through the `BlockStore` the host drives too, then the
/// chain's blocks put on top.
fn member_store(database: Database, b: &mut Bytes<'_>) {
    let mut store = match ShardStore::from_database(database) {
        Ok(store) => store,
        Err(StoreError::Corrupt { .. }) => return,
        Err(error) => panic!("opening a store of hostile records: {error}"),
    };
    let start = if b.bool() {
        b.u32()
    } else {
        u32::from(b.u8() % 8)
    };
    if let Some(headers) = readable(store.headers(start, b.u32())) {
        assert!(headers.len() <= shoal_relay::serve::shard::MAX_HEADERS_PER_READ as usize);
    }
    let held = readable(store.held()).unwrap_or_default();
    assert!(
        held.windows(2).all(|w| w[0] <= w[1]),
        "held blocks in height order"
    );
    for (_, hash) in held.iter().take(8) {
        readable(store.block_bytes(hash));
        readable(block_on(store.block(hash)));
    }
    readable(block_on(store.block_hashes()));
    if let Some(records) = readable(block_on(store.kv_records())) {
        check_records(&records);
    }
    let chain = chain();
    let bytes: Vec<Vec<u8>> = chain.iter().map(Block::encode).collect();
    let writes: Vec<Write<'_>> = chain
        .iter()
        .zip(&bytes)
        .enumerate()
        .filter(|(_, (block, bytes))| store.accepts(&block.block_hash(), bytes))
        .map(|(i, (block, bytes))| Write::PutBlock {
            hash: block.block_hash(),
            height: i as u32 + 1,
            bytes,
        })
        .collect();
    assert_eq!(
        writes.len(),
        chain.len(),
        "the store takes every real block"
    );
    if block_on(store.write(&writes)).is_ok() {
        for (block, bytes) in chain.iter().zip(&bytes) {
            assert_eq!(
                store
                    .block_bytes(&block.block_hash())
                    .ok()
                    .flatten()
                    .as_ref(),
                Some(bytes)
            );
        }
    }
}

fn check_records(records: &[(Vec<u8>, Vec<u8>)]) {
    for (key, value) in records {
        assert!(key.len() <= KV_KEY_MAX && value.len() <= KV_VALUE_MAX);
    }
}

/// A read's value, or `None` for a store that says its data is corrupt. Any other error from
/// an in-memory database is a finding.
fn readable<T>(result: Result<T, StoreError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(StoreError::Corrupt { .. }) => None,
        Err(error) => panic!("reading hostile records: {error}"),
    }
}

/// The relay's identity files as its data directory holds them (`serve::identity`): the
/// libp2p key (protobuf) and the WebRTC certificate (PEM), loaded the way `shoal-relay serve`
/// loads them at start. The first byte says which files are there (a missing one is made and
/// saved), then a two-byte length and the key file's bytes, then the certificate file's.
/// Whatever loads gives a key that encodes and a certificate with a fingerprint; whatever does
/// not is an `IdentityError`, never a panic.
pub fn relay_identity(data: &[u8]) {
    use shoal_relay::serve::identity::{load_or_create, CERT_FILE, KEY_FILE};
    let mut b = Bytes::new(data);
    let which = b.u8();
    let key = b.slice(u16::MAX as usize);
    let cert = b.rest();
    let dir = identity_dir();
    for (present, name, bytes) in [
        (which & 1 == 0, KEY_FILE, key),
        (which & 2 == 0, CERT_FILE, cert),
    ] {
        let path = dir.join(name);
        if present {
            std::fs::write(&path, bytes).expect("a file written");
        } else if path.exists() {
            std::fs::remove_file(&path).expect("a file removed");
        }
    }
    let Ok(identity) = bounded("identity files", data.len(), || load_or_create(dir)) else {
        return;
    };
    let encoded = identity
        .keypair
        .to_protobuf_encoding()
        .expect("a loaded key encodes");
    if which & 1 == 0 {
        // Protobuf lets a file carry fields the key does not have (finding 7 in FUZZING.md):
        // the key re-encodes to the file without them, and decodes back to the same key.
        let again = libp2p::identity::Keypair::from_protobuf_encoding(&encoded)
            .expect("a re-encoded key decodes");
        assert_eq!(again.public(), identity.keypair.public(), "the same key");
        assert!(
            encoded.len() <= key.len(),
            "a key never re-encodes longer than its file"
        );
    }
    let _ = identity.keypair.public().to_peer_id();
    let _ = identity.certificate.fingerprint();
}

/// Removes the scratch directory of [`relay_identity`], if this process made one.
pub fn remove_identity_dir() {
    if let Some(dir) = IDENTITY_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

static IDENTITY_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// A directory of this process's own for the identity files, in memory where the system has
/// a place for that (writing and truncating them on a disk took most of each run).
fn identity_dir() -> &'static std::path::Path {
    IDENTITY_DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("shoal-fuzz-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the identity files");
        dir
    })
}
