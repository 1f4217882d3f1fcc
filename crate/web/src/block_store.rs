//! The page's [`BlockStore`]: the core's storage commands, carried out by the one host
//! (`shoal_host::execute`), land in IndexedDB ([`Store`]).
//!
//! All writes (`Put`, `Delete`, `WriteKv`) of one batch go into **one** IndexedDB transaction:
//! a stored block and the core's index record for it land together, so that the core can
//! answer a query for any of its transactions locally (S16). Reads are checked by the store
//! (hash and Merkle root): a corrupt block is dropped and read as absent, so it is fetched again
//! from a replica and never served (S11). Beside the store it keeps the size of every stored
//! block, for `status().storedBytes` and the `block-stored` event.

use std::collections::HashMap;
use std::rc::Rc;

use shoal_core::chain::BlockHash;
use shoal_core::node::{KvOp, KvRecord};
use shoal_host::{BlockStore, Write as HostWrite};

use crate::store::{Store, StoreError, Write};

/// The node's blocks and records in the page's IndexedDB database.
#[derive(Debug)]
pub struct PageBlocks {
    store: Rc<Store>,
    /// Bytes of each stored block, by hash.
    sizes: HashMap<BlockHash, u64>,
}

impl PageBlocks {
    /// The blocks of `store` (sizes are learnt as the node lists and writes them).
    pub fn new(store: Rc<Store>) -> PageBlocks {
        PageBlocks {
            store,
            sizes: HashMap::new(),
        }
    }

    /// The size of stored block `hash`, if known.
    pub fn size_of(&self, hash: &BlockHash) -> Option<u64> {
        self.sizes.get(hash).copied()
    }

    /// Bytes of every stored block.
    pub fn stored_bytes(&self) -> u64 {
        self.sizes.values().sum()
    }

    /// Hashes of the blocks known to be stored.
    pub fn hashes(&self) -> impl Iterator<Item = &BlockHash> + '_ {
        self.sizes.keys()
    }
}

impl BlockStore for PageBlocks {
    type Error = StoreError;

    async fn write(&mut self, writes: &[HostWrite<'_>]) -> Result<(), StoreError> {
        let batch: Vec<Write> = writes
            .iter()
            .map(|write| match write {
                HostWrite::PutBlock { hash, bytes, .. } => Write::PutBlock {
                    hash: *hash,
                    raw: bytes.to_vec(),
                },
                HostWrite::DeleteBlock { hash } => Write::DeleteBlock { hash: *hash },
                HostWrite::Kv(KvOp::Put { key, value }) => Write::PutKv {
                    key: key.clone(),
                    value: value.clone(),
                },
                HostWrite::Kv(KvOp::Delete { key }) => Write::DeleteKv { key: key.clone() },
            })
            .collect();
        crate::trace::mark("write-start", batch.len() as u64);
        self.store.write(&batch).await?;
        crate::trace::mark("write-done", batch.len() as u64);
        for write in writes {
            match write {
                HostWrite::PutBlock { hash, bytes, .. } => {
                    self.sizes.insert(*hash, bytes.len() as u64);
                }
                HostWrite::DeleteBlock { hash } => {
                    self.sizes.remove(hash);
                }
                HostWrite::Kv(_) => {}
            }
        }
        Ok(())
    }

    async fn block(&mut self, hash: &BlockHash) -> Result<Option<Vec<u8>>, StoreError> {
        let id = crate::cluster_node::block_id(&hash.0);
        crate::trace::mark("read-start", id);
        // Raw: the core checks what it reads (once), and turns a corrupt block suspect.
        let read = self.store.block_bytes(hash).await;
        crate::trace::mark("read-done", id);
        read
    }

    async fn block_hashes(&mut self) -> Result<Vec<BlockHash>, StoreError> {
        let hashes = self.store.block_hashes().await?;
        for hash in &hashes {
            if !self.sizes.contains_key(hash) {
                if let Ok(Some(bytes)) = self.store.block_bytes(hash).await {
                    self.sizes.insert(*hash, bytes.len() as u64);
                }
            }
        }
        Ok(hashes)
    }

    async fn kv_records(&mut self) -> Result<Vec<KvRecord>, StoreError> {
        self.store.kv_records().await
    }
}

#[cfg(test)]
mod tests {
    use shoal_core::chain::generate::{generate_chain, GenerateConfig};
    use wasm_bindgen_test::*;

    use shoal_core::node::{StorageCommand, StorageResult};
    use shoal_host::execute;

    use super::*;

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_test]
    async fn core_commands_are_carried_out_and_corrupt_blocks_read_as_absent() {
        let name = "shoal-test-commands";
        Store::delete_database(name).await.unwrap();
        let store = Rc::new(Store::open(name).await.unwrap());
        let mut blocks_store = PageBlocks::new(store.clone());
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
            &mut blocks_store,
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

        // Corrupt block 4 on disk: the core is handed its bytes (it checks them, turns the block
        // suspect and fetches a verified copy over it); nothing deletes it meanwhile.
        let mut raw = blocks[3].encode();
        let at = raw.len() - 5;
        raw[at] ^= 0x80;
        store
            .put_raw_block_for_test(&blocks[3].block_hash(), &raw)
            .await
            .unwrap();
        let (results, _) = execute(
            &mut blocks_store,
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
                    bytes: Some(raw.clone())
                },
                StorageResult::Deleted { request_id: 7 },
                StorageResult::Listed {
                    request_id: 8,
                    blocks: vec![blocks[3].block_hash()]
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
        let store = Rc::new(Store::open(name).await.unwrap());
        let mut blocks_store = PageBlocks::new(store.clone());
        let (results, error) = execute(
            &mut blocks_store,
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
        let store = Rc::new(Store::open(name).await.unwrap());
        let mut blocks_store = PageBlocks::new(store.clone());
        let (results, _) = execute(
            &mut blocks_store,
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
