//! Block import from a file (`shoal-relay serve --import FILE`): the relay as a block source
//! for a chain that already exists (S14: new blocks enter through the block source).
//!
//! The file is read by [`crate::blockfile`], so it accepts exactly what `block inspect` does:
//! raw block bytes, hex text, or Bitcoin Core's `blk*.dat` framing, blocks in any order.
//!
//! A chain from the network's genesis is imported as a followed network is
//! ([`super::follow`]): every header of the store and of the file goes through the core's
//! [`HeaderChain`] with the network's rules, every block is checked against its header, all
//! before anything is written; a file holding a fork is not cut short: the branch with the most
//! work wins (the store rewinds to the fork when that branch is not the stored one) and the
//! others are counted in the report. A file breaking a rule changes nothing and says which
//! block broke which rule.
//!
//! A chain that starts later (a store whose first block carries its height, BIP34) cannot be
//! checked from genesis: its blocks are appended in chain order on the stored tip, each checked
//! against its header and its proof of work against the network's limit (so regtest-difficulty
//! blocks are refused on mainnet).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use shoal_core::chain::{Block, BlockHash, ChainParams, HeaderChain};

use super::follow::{chain_from_store, FollowError};
use super::store::{ChainStore, StoreError};
use crate::blockfile::{self, FileError};

/// Why an import failed. Nothing of the file is written when it fails before writing starts
/// (every check comes first); a store error while writing leaves a prefix of the best chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("cannot import {path}: {source}")]
    File { path: String, source: FileError },
    #[error("storing: {0}")]
    Store(#[from] StoreError),
    #[error("the stored chain: {0}")]
    Stored(#[from] FollowError),
    #[error("block {hash} of the file is refused: {reason}")]
    Refused { hash: BlockHash, reason: String },
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub read: usize,
    pub appended: usize,
    pub already_stored: usize,
    /// Blocks that do not connect to the stored chain or to the file's other blocks.
    pub unconnected: usize,
    /// Blocks of the file on branches with less work than the best chain (not stored).
    pub side_branch: usize,
    /// Stored blocks taken off the chain because a branch of the file has more work.
    pub rewound: usize,
}

/// Reads `path` and imports its blocks into `store` under `params`' rules.
pub fn import_file(
    store: &ChainStore,
    path: &Path,
    params: ChainParams,
) -> Result<ImportReport, ImportError> {
    let file = blockfile::read_blocks(path).map_err(|source| ImportError::File {
        path: path.display().to_string(),
        source,
    })?;
    tracing::info!(format = %file.format_name(), blocks = file.blocks.len(), "import file read");
    import_blocks(
        store,
        file.blocks.into_iter().map(|b| b.block).collect(),
        params,
    )
}

/// Imports `blocks` (any order) into `store` under `params`' rules (see the module docs).
pub fn import_blocks(
    store: &ChainStore,
    blocks: Vec<Block>,
    params: ChainParams,
) -> Result<ImportReport, ImportError> {
    let from_genesis = match store.base_height()? {
        Some(base) => base == 0,
        None => blocks
            .iter()
            .any(|b| b.header.prev_blockhash == BlockHash::default()),
    };
    let mut report = ImportReport {
        read: blocks.len(),
        ..ImportReport::default()
    };
    for block in &blocks {
        check_body(block)?;
    }
    if from_genesis {
        import_from_genesis(store, blocks, params, report)
    } else {
        for block in &blocks {
            if let Err(error) = block.header.check_proof_of_work(params.pow_limit) {
                return Err(refused(
                    block,
                    format!("{error} (network {})", params.network),
                ));
            }
        }
        append_in_order(store, blocks, &mut report)?;
        Ok(report)
    }
}

fn refused(block: &Block, reason: String) -> ImportError {
    ImportError::Refused {
        hash: block.block_hash(),
        reason,
    }
}

fn check_body(block: &Block) -> Result<(), ImportError> {
    block.check().map(|_| ()).map_err(|error| {
        refused(
            block,
            format!("its body does not match its header: {error}"),
        )
    })
}

fn import_from_genesis(
    store: &ChainStore,
    blocks: Vec<Block>,
    params: ChainParams,
    mut report: ImportReport,
) -> Result<ImportReport, ImportError> {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut chain: HeaderChain = chain_from_store(params, store, now_s)?;
    // Accept the file's headers parents first: breadth-first from what the chain knows.
    let mut by_parent: HashMap<BlockHash, Vec<usize>> = HashMap::new();
    let mut by_hash: HashMap<BlockHash, usize> = HashMap::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        let hash = block.block_hash();
        if by_hash.insert(hash, i).is_some() {
            continue; // Twice in the file.
        }
        if chain.contains(&hash) {
            report.already_stored += usize::from(store.height_of(&hash)?.is_some());
            continue;
        }
        if block.header.prev_blockhash == BlockHash::default() {
            return Err(refused(
                block,
                format!(
                    "it has no parent but is not {}'s genesis {}",
                    params.network,
                    params.genesis_hash()
                ),
            ));
        }
        by_parent
            .entry(block.header.prev_blockhash)
            .or_default()
            .push(i);
    }
    let mut accepted: HashSet<BlockHash> = HashSet::new();
    let mut ready: Vec<BlockHash> = by_parent
        .keys()
        .copied()
        .filter(|parent| chain.contains(parent))
        .collect();
    while let Some(parent) = ready.pop() {
        for i in by_parent.remove(&parent).unwrap_or_default() {
            let block = &blocks[i];
            chain
                .accept(&block.header, now_s)
                .map_err(|error| refused(block, error.to_string()))?;
            let hash = block.block_hash();
            accepted.insert(hash);
            ready.push(hash);
        }
    }
    report.unconnected = by_parent.values().map(Vec::len).sum();
    if report.unconnected > 0 {
        tracing::warn!(
            count = report.unconnected,
            "blocks in the import file connect neither to the stored chain nor to the file's other blocks"
        );
    }
    // The store follows the best chain: rewound to the fork if its tip left it, then extended.
    let mut next = 0;
    if let Some(tip) = store.tip()? {
        let mut fork = tip.height;
        while fork > 0 && chain.hash_at(fork) != store_hash_at(store, fork)? {
            fork -= 1;
        }
        if fork < tip.height {
            let removed = store.rewind(fork)?;
            report.rewound = removed.len();
            tracing::info!(
                from = tip.height,
                to = fork,
                "import: a branch of the file has more work than the stored chain: rewound to the fork"
            );
        }
        next = fork + 1;
    }
    for height in next..=chain.tip_height() {
        let hash = chain.hash_at(height).expect("a best-chain height");
        let block = match by_hash.get(&hash) {
            Some(&i) => blocks[i].clone(),
            // A block of the store's own losing branch coming back.
            None => store.block(&hash)?.ok_or_else(|| StoreError::Corrupt {
                what: format!("block {hash} of the best chain: not in the file nor kept"),
            })?,
        };
        store.append(&block)?;
        report.appended += 1;
    }
    report.side_branch = accepted
        .iter()
        .filter(|hash| !chain.get(hash).is_some_and(|info| info.in_best_chain))
        .count();
    if report.side_branch > 0 {
        tracing::info!(
            count = report.side_branch,
            "import: blocks of the file on branches with less work than the best chain (not stored)"
        );
    }
    Ok(report)
}

fn store_hash_at(store: &ChainStore, height: u32) -> Result<Option<BlockHash>, StoreError> {
    Ok(store.headers(height, 1)?.first().map(|h| h.block_hash()))
}

/// A chain that starts later than genesis: appended in chain order on the stored tip.
fn append_in_order(
    store: &ChainStore,
    blocks: Vec<Block>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
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
    Ok(())
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
        let first = import_file(&store, &file, ChainParams::REGTEST).unwrap();
        assert_eq!(
            (first.read, first.appended, first.unconnected),
            (chain.len(), chain.len(), 0)
        );
        let tip = store.tip().unwrap().unwrap();
        assert_eq!(tip.hash, chain.last().unwrap().block_hash());
        assert_eq!(tip.height as usize, chain.len() - 1);
        let second = import_file(&store, &file, ChainParams::REGTEST).unwrap();
        assert_eq!((second.appended, second.already_stored), (0, chain.len()));
    }

    #[test]
    fn unreadable_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let file = dir.path().join("junk");
        std::fs::write(&file, b"\x00\x01 definitely not a block").unwrap();
        assert!(matches!(
            import_file(&store, &file, ChainParams::REGTEST),
            Err(ImportError::File { .. })
        ));
        assert!(store.is_empty().unwrap());
    }

    use crate::serve::test_chains::{branch, chain};

    fn stored_chain(store: &ChainStore) -> Vec<BlockHash> {
        store
            .headers(0, 100)
            .unwrap()
            .iter()
            .map(|h| h.block_hash())
            .collect()
    }

    fn hashes(blocks: &[Block]) -> Vec<BlockHash> {
        blocks.iter().map(Block::block_hash).collect()
    }

    #[test]
    fn a_file_holding_a_fork_stores_the_branch_with_the_most_work_and_counts_the_other() {
        let a = chain(6);
        let b = branch(&a, 3, 5, 1);
        let mut file = a.clone();
        file.extend_from_slice(&b[4..]);
        file.reverse();
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let report = import_blocks(&store, file, ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&b));
        assert_eq!(
            (report.appended, report.side_branch, report.unconnected),
            (9, 3, 0)
        );
    }

    #[test]
    fn a_second_file_with_more_work_rewinds_the_store_to_the_fork() {
        let a = chain(6);
        let b = branch(&a, 3, 5, 1);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        import_blocks(&store, a.clone(), ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&a));
        let report = import_blocks(&store, b[4..].to_vec(), ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&b));
        assert_eq!((report.rewound, report.appended), (3, 5));
        // A file with less work than the stored chain changes nothing.
        let c = branch(&b, 5, 2, 2);
        let report = import_blocks(&store, c[6..].to_vec(), ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&b));
        assert_eq!(
            (report.rewound, report.appended, report.side_branch),
            (0, 0, 2)
        );
        // Blocks whose parent is known nowhere (a's, off the chain) are counted, not stored.
        let d = branch(&a, 6, 1, 3);
        let report = import_blocks(&store, d[7..].to_vec(), ChainParams::REGTEST).unwrap();
        assert_eq!((report.appended, report.unconnected), (0, 1));
        assert_eq!(stored_chain(&store), hashes(&b));
    }

    #[test]
    fn a_regtest_chain_is_refused_on_mainnet_and_nothing_is_written() {
        let a = chain(3);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        let error = import_blocks(&store, a.clone(), ChainParams::MAINNET).unwrap_err();
        assert!(
            error.to_string().contains("not mainnet's genesis"),
            "{error}"
        );
        assert!(store.is_empty().unwrap());
        // Without its genesis (a chain from a later height, BIP34): the proof of work is
        // checked against mainnet's limit.
        let error = import_blocks(&store, a[1..].to_vec(), ChainParams::MAINNET).unwrap_err();
        assert!(error.to_string().contains("network mainnet"), "{error}");
        assert!(store.is_empty().unwrap());
        // The same chain on regtest is taken.
        import_blocks(&store, a.clone(), ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&a));
    }

    #[test]
    fn a_file_breaking_a_rule_says_which_block_and_why_and_writes_nothing() {
        let a = chain(5);
        let dir = tempfile::tempdir().unwrap();
        let store = ChainStore::open(&dir.path().join("chain.redb")).unwrap();
        // A body that does not match its header.
        let mut forged = a.clone();
        forged[4].txdata[0].output[0].value -= 1;
        let error = import_blocks(&store, forged, ChainParams::REGTEST).unwrap_err();
        assert!(
            error.to_string().contains("does not match its header"),
            "{error}"
        );
        // A header at the wrong difficulty (its proof of work still valid for regtest).
        let mut hostile = branch(&a, 2, 1, 3);
        let mut header = hostile[3].header;
        header.bits = 0x207f_fffe;
        while header
            .check_proof_of_work(ChainParams::REGTEST.pow_limit)
            .is_err()
        {
            header.nonce += 1;
        }
        hostile[3].header = header;
        let error = import_blocks(&store, hostile, ChainParams::REGTEST).unwrap_err();
        assert!(error.to_string().contains("nBits"), "{error}");
        assert!(store.is_empty().unwrap(), "nothing written");
        import_blocks(&store, a.clone(), ChainParams::REGTEST).unwrap();
        assert_eq!(stored_chain(&store), hashes(&a));
    }
}
