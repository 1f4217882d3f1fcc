//! Carries out the core's storage commands (`shoal_core::node::StorageCommand`) in IndexedDB
//! and gives back their results, in the order the commands came.
//!
//! All writes (`Put`, `Delete`, `WriteKv`) of one drain of the core's outputs go into **one** IndexedDB
//! transaction: a stored block and the core's index record for it land together, so that the
//! core can answer a query for any of its transactions locally (S16). Reads are
//! checked by the store (hash and Merkle root): a corrupt block is dropped and reported to the
//! core as absent, so it is fetched again from a replica and never served (S11).

use shoal_core::chain::Block;
use shoal_core::node::{KvOp, StorageCommand, StorageResult};

use crate::store::{Store, StoreError, Write};

/// Most commands carried out in one call (the core drains a bounded output queue).
pub const MAX_COMMANDS_PER_BATCH: usize = 1024;

/// Executes `commands` against `store`.
///
/// A write batch that fails (quota, IndexedDB error) fails every `Put` in it (`ok: false`);
/// the error is returned alongside so that the shell can surface it as `STORAGE`.
pub async fn execute(
    store: &Store,
    commands: &[StorageCommand],
) -> (Vec<StorageResult>, Option<StoreError>) {
    debug_assert!(
        commands.len() <= MAX_COMMANDS_PER_BATCH,
        "the core's output queue is bounded"
    );
    let mut writes = Vec::new();
    for command in commands {
        match command {
            StorageCommand::Put {
                block_hash, bytes, ..
            } => {
                // The core verified the block before asking; bytes that do not even decode are
                // not stored (and the put reports failure).
                if Block::decode(bytes).is_ok() {
                    writes.push(Write::PutBlock {
                        hash: *block_hash,
                        raw: bytes.clone(),
                    });
                }
            }
            StorageCommand::Delete { block_hash, .. } => {
                writes.push(Write::DeleteBlock { hash: *block_hash });
            }
            // The core's index records go into the same transaction as the blocks.
            StorageCommand::WriteKv { ops, .. } => {
                writes.extend(ops.iter().map(|op| match op {
                    KvOp::Put { key, value } => Write::PutKv {
                        key: key.clone(),
                        value: value.clone(),
                    },
                    KvOp::Delete { key } => Write::DeleteKv { key: key.clone() },
                }));
            }
            StorageCommand::Get { .. }
            | StorageCommand::List { .. }
            | StorageCommand::ListKv { .. } => {}
        }
    }
    let write_error = store.write(&writes).await.err();
    let mut results = Vec::with_capacity(commands.len());
    for command in commands {
        results.push(match command {
            StorageCommand::Put {
                request_id, bytes, ..
            } => StorageResult::Put {
                request_id: *request_id,
                ok: write_error.is_none() && Block::decode(bytes).is_ok(),
            },
            StorageCommand::Delete { request_id, .. } => StorageResult::Deleted {
                request_id: *request_id,
            },
            StorageCommand::Get {
                request_id,
                block_hash,
            } => StorageResult::Got {
                request_id: *request_id,
                // Absent, unreadable and corrupt (now deleted) all read as "not stored".
                bytes: store
                    .block(block_hash)
                    .await
                    .ok()
                    .flatten()
                    .map(|block| block.encode()),
            },
            StorageCommand::List { request_id } => StorageResult::Listed {
                request_id: *request_id,
                blocks: store.block_hashes().await.unwrap_or_default(),
            },
            StorageCommand::WriteKv { request_id, .. } => StorageResult::KvWritten {
                request_id: *request_id,
                ok: write_error.is_none(),
            },
            // Unreadable records read as none: the core re-indexes from the blocks.
            StorageCommand::ListKv { request_id } => StorageResult::KvListed {
                request_id: *request_id,
                records: store.kv_records().await.unwrap_or_default(),
            },
        });
    }
    (results, write_error)
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::generate::{generate_chain, GenerateConfig};
    use wasm_bindgen_test::*;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn core_commands_are_carried_out_and_corrupt_blocks_read_as_absent() {
        let name = "shoal-test-commands";
        Store::delete_database(name).await.unwrap();
        let store = Store::open(name).await.unwrap();
        let blocks = generate_chain(&GenerateConfig {
            blocks: 4,
            txs_per_block: 3,
            seed: 9,
            ..GenerateConfig::default()
        })
        .unwrap();
        let put = |id: u64, i: usize| StorageCommand::Put {
            request_id: id,
            block_hash: blocks[i].block_hash(),
            height: i as u32 + 1,
            bytes: blocks[i].encode(),
        };
        let (results, error) = execute(
            &store,
            &[
                put(1, 1),
                put(2, 3),
                StorageCommand::Put {
                    request_id: 3,
                    block_hash: blocks[2].block_hash(),
                    height: 3,
                    bytes: vec![0xff; 10],
                },
                StorageCommand::Get {
                    request_id: 4,
                    block_hash: blocks[1].block_hash(),
                },
                StorageCommand::Get {
                    request_id: 5,
                    block_hash: blocks[0].block_hash(),
                },
            ],
        )
        .await;
        assert!(error.is_none());
        assert_eq!(
            results,
            vec![
                StorageResult::Put {
                    request_id: 1,
                    ok: true
                },
                StorageResult::Put {
                    request_id: 2,
                    ok: true
                },
                StorageResult::Put {
                    request_id: 3,
                    ok: false
                },
                StorageResult::Got {
                    request_id: 4,
                    bytes: Some(blocks[1].encode())
                },
                StorageResult::Got {
                    request_id: 5,
                    bytes: None
                },
            ]
        );
        let mut listed = store.block_hashes().await.unwrap();
        listed.sort();
        let mut stored = vec![blocks[1].block_hash(), blocks[3].block_hash()];
        stored.sort();
        assert_eq!(
            listed, stored,
            "the two valid blocks are stored, the garbage is not"
        );

        // Corrupt block 4 on disk: the core is told it is not stored, and it is gone.
        let mut raw = blocks[3].encode();
        let at = raw.len() - 5;
        raw[at] ^= 0x80;
        store
            .put_raw_block_for_test(&blocks[3].block_hash(), &raw)
            .await
            .unwrap();
        let (results, _) = execute(
            &store,
            &[
                StorageCommand::Get {
                    request_id: 6,
                    block_hash: blocks[3].block_hash(),
                },
                StorageCommand::Delete {
                    request_id: 7,
                    block_hash: blocks[1].block_hash(),
                },
                StorageCommand::List { request_id: 8 },
            ],
        )
        .await;
        assert_eq!(
            results,
            vec![
                StorageResult::Got {
                    request_id: 6,
                    bytes: None
                },
                StorageResult::Deleted { request_id: 7 },
                StorageResult::Listed {
                    request_id: 8,
                    blocks: vec![]
                },
            ]
        );
        store.close();
    }

    /// `WriteKv` lands with the drain's other writes and `ListKv` reads it back after a
    /// reopen; a failed batch reports `ok: false`.
    #[wasm_bindgen_test]
    async fn core_records_are_written_and_listed() {
        let name = "shoal-test-kv-commands";
        Store::delete_database(name).await.unwrap();
        let store = Store::open(name).await.unwrap();
        let (results, error) = execute(
            &store,
            &[
                StorageCommand::WriteKv {
                    request_id: 1,
                    ops: vec![
                        KvOp::Put {
                            key: b"txi/1".to_vec(),
                            value: vec![1],
                        },
                        KvOp::Put {
                            key: b"txi/2".to_vec(),
                            value: vec![2],
                        },
                    ],
                },
                StorageCommand::WriteKv {
                    request_id: 2,
                    ops: vec![KvOp::Delete {
                        key: b"txi/1".to_vec(),
                    }],
                },
            ],
        )
        .await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            results,
            vec![
                StorageResult::KvWritten {
                    request_id: 1,
                    ok: true
                },
                StorageResult::KvWritten {
                    request_id: 2,
                    ok: true
                },
            ]
        );
        store.close();
        let store = Store::open(name).await.unwrap();
        let (results, _) = execute(
            &store,
            &[
                StorageCommand::WriteKv {
                    request_id: 3,
                    ops: vec![KvOp::Put {
                        key: b"txi/3".to_vec(),
                        value: vec![0; shoal_core::node::KV_VALUE_MAX + 1],
                    }],
                },
                StorageCommand::ListKv { request_id: 4 },
            ],
        )
        .await;
        assert_eq!(
            results,
            vec![
                StorageResult::KvWritten {
                    request_id: 3,
                    ok: false
                },
                StorageResult::KvListed {
                    request_id: 4,
                    records: vec![(b"txi/2".to_vec(), vec![2])]
                },
            ]
        );
        store.close();
        Store::delete_database(name).await.unwrap();
    }
}
