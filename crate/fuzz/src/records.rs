//! The node's key/value records as a store gives them back at start (`StorageResult::KvListed`):
//! transaction-index records (`shoal_core::serve::txindex`) and the membership record
//! (`shoal_core::node::resume`). Both carry a checksum, so the target writes a correct one when
//! the input asks for it: the decoders behind the checksum get fuzzed too, not only the check.

use shoal_core::chain::{sha256d, BlockHash, Txid};
use shoal_core::node::resume::{decode_record, encode_record, MAX_MEMBERSHIP_RECORD_BYTES};
use shoal_core::serve::txindex::{record_key, KvOp, TxIndex, TxIndexConfig, MAX_RECORD_BYTES};

use crate::alloc::bounded;
use crate::Bytes;

/// A sequence of records, each loaded as the node loads it: index records into a
/// [`TxIndex`] (whatever loads is found again by its keys, and removes cleanly), membership
/// records through `decode_record` (whatever decodes re-encodes to the same bytes).
pub fn kv_records(data: &[u8]) {
    let mut b = Bytes::new(data);
    let key_bits = 1 + b.below(64) as u32;
    let mut index = TxIndex::new(TxIndexConfig { key_bits });
    let mut loaded: Vec<BlockHash> = Vec::new();
    while !b.is_empty() {
        match b.u8() % 3 {
            0 => {
                let key = if b.bool() {
                    let mut hash = [0u8; 32];
                    let given = b.take(32);
                    hash[..given.len()].copy_from_slice(given);
                    record_key(&BlockHash(hash))
                } else {
                    b.slice(80).to_vec()
                };
                let mut value = b.slice(u16::MAX as usize).to_vec();
                if b.bool() && value.len() >= 4 {
                    // A consistent count and checksum: what a store that kept the record
                    // intact gives back.
                    let count = ((value.len() - 4) / 8) as u32;
                    value[..4].copy_from_slice(&count.to_le_bytes());
                    value.truncate(4 + 8 * count as usize);
                    let mut checked = key.clone();
                    checked.extend_from_slice(&value);
                    value.extend_from_slice(&sha256d(&checked)[..8]);
                }
                assert!(value.len() <= MAX_RECORD_BYTES);
                let result = bounded("index record", key.len() + value.len(), || {
                    index.load_record(&key, &value)
                });
                if let Ok(hash) = result {
                    assert_eq!(key, record_key(&hash));
                    assert!(index.contains_block(&hash));
                    // Each short key leads back to this block at its position.
                    let keys = &value[4..value.len() - 8];
                    for (pos, short) in keys.chunks_exact(8).enumerate().take(64) {
                        let mut txid = [0u8; 32];
                        txid[..8].copy_from_slice(short);
                        let found = index
                            .candidates(&Txid(txid))
                            .any(|(h, p)| h == hash && p as usize == pos);
                        assert!(
                            found || loaded.contains(&hash),
                            "key {pos} of a loaded record"
                        );
                    }
                    loaded.push(hash);
                }
            }
            1 => {
                let mut record = b.slice(u16::MAX as usize).to_vec();
                if b.bool() {
                    let check = sha256d(&record);
                    record.extend_from_slice(&check[..8]);
                }
                let decoded = bounded("membership record", record.len(), || decode_record(&record));
                if let Ok(saved) = decoded {
                    assert!(record.len() <= MAX_MEMBERSHIP_RECORD_BYTES);
                    assert_eq!(
                        encode_record(&saved).as_deref(),
                        Some(&record[..]),
                        "a decoded membership record re-encodes to its bytes"
                    );
                }
            }
            _ => {
                let Some(&hash) = loaded.get(b.below(loaded.len())) else {
                    continue;
                };
                let ops = index.remove_block(&hash);
                assert!(!index.contains_block(&hash));
                if !ops.is_empty() {
                    assert_eq!(
                        ops,
                        vec![KvOp::Delete {
                            key: record_key(&hash)
                        }]
                    );
                }
            }
        }
    }
    assert!(index.block_count() <= loaded.len());
}
