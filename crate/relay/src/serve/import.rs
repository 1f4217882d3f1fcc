//! Block import from a file (`shoal-relay serve --import FILE`): the relay as a block source
//! for a chain that already exists (S14: new blocks enter through the block source).
//!
//! The file is read by [`crate::blockfile`], so it accepts exactly what `block inspect` does:
//! raw block bytes, hex text, or Bitcoin Core's `blk*.dat` framing. Blocks are appended in
//! chain order whatever their order in the file; blocks already stored are skipped.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use shoal_core::chain::{Block, BlockHash};

use super::store::{ChainStore, StoreError};
use crate::blockfile::{self, FileError};

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot import {path}: {source}")]
    File { path: String, source: FileError },
    #[error("storing: {0}")]
    Store(#[from] StoreError),
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub read: usize,
    pub appended: usize,
    pub already_stored: usize,
    /// Blocks that do not connect to the stored chain.
    pub unconnected: usize,
}

/// Reads `path` and appends its blocks to `store`.
pub fn import_file(store: &ChainStore, path: &Path) -> Result<ImportReport, ImportError> {
    let file = blockfile::read_blocks(path).map_err(|source| ImportError::File {
        path: path.display().to_string(),
        source,
    })?;
    tracing::info!(format = %file.format_name(), blocks = file.blocks.len(), "import file read");
    import_blocks(store, file.blocks.into_iter().map(|b| b.block).collect())
}

/// Appends `blocks` in chain order on the stored tip.
pub fn import_blocks(store: &ChainStore, blocks: Vec<Block>) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        read: blocks.len(),
        ..ImportReport::default()
    };
    let mut by_parent: HashMap<BlockHash, Block> = HashMap::with_capacity(blocks.len());
    for block in blocks {
        if store.height_of(&block.block_hash())?.is_some() {
            report.already_stored += 1;
        } else {
            by_parent.insert(block.header.prev_blockhash, block);
        }
    }
    if store.is_empty()? && !by_parent.is_empty() {
        // The first block of an empty store: the one whose parent is not in the file.
        let in_file: HashSet<BlockHash> = by_parent.values().map(Block::block_hash).collect();
        let first_parent = by_parent.keys().copied().find(|p| !in_file.contains(p));
        if let Some(parent) = first_parent {
            let block = by_parent.remove(&parent).expect("key just found");
            store.append(&block)?;
            report.appended += 1;
        }
    }
    while let Some(tip) = store.tip()? {
        let Some(block) = by_parent.remove(&tip.hash) else {
            break;
        };
        store.append(&block)?;
        report.appended += 1;
    }
    report.unconnected = by_parent.len();
    if report.unconnected > 0 {
        tracing::warn!(
            count = report.unconnected,
            "blocks in the import file do not connect to the stored chain"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk_file(blocks: &[Block]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in blocks {
            blockfile::write_blk_record(&mut out, [0xfa, 0xbf, 0xb5, 0xda], &block.encode())
                .unwrap();
        }
        out
    }

    #[test]
    fn out_of_order_blocks_are_appended_in_chain_order_once() {
        use shoal_core::chain::generate::{generate_chain, regtest_genesis_block, GenerateConfig};
        let mut chain = vec![regtest_genesis_block()];
        chain.extend(
            generate_chain(&GenerateConfig {
                blocks: 6,
                ..GenerateConfig::default()
            })
            .unwrap(),
        );
        let mut shuffled = chain.clone();
        shuffled.reverse();
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let file = dir.path().join("blk00000.dat");
        std::fs::write(&file, blk_file(&shuffled)).unwrap();
        let first = import_file(&store, &file).unwrap();
        assert_eq!(
            (first.read, first.appended, first.unconnected),
            (chain.len(), chain.len(), 0)
        );
        let tip = store.tip().unwrap().unwrap();
        assert_eq!(tip.hash, chain.last().unwrap().block_hash());
        assert_eq!(tip.height as usize, chain.len() - 1);
        let second = import_file(&store, &file).unwrap();
        assert_eq!((second.appended, second.already_stored), (0, chain.len()));
    }

    #[test]
    fn unreadable_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let file = dir.path().join("junk");
        std::fs::write(&file, b"\x00\x01 definitely not a block").unwrap();
        assert!(matches!(
            import_file(&store, &file),
            Err(ImportError::File { .. })
        ));
        assert!(store.is_empty().unwrap());
    }
}
