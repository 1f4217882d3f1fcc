//! The relay as a regtest block source (S14: new blocks enter the network through a block
//! source): the core's deterministic generator makes an initial chain, then one block every
//! interval. After a restart the generator resumes on the stored chain.

use std::ops::RangeInclusive;

use shoal_core::chain::generate::{GenerateConfig, GenerateError, Generator};
use shoal_core::chain::Block;

use super::store::{ChainStore, StoreError, MAX_HEADERS_PER_READ};

/// Most blocks the relay reloads from disk to resume generating.
pub const MAX_RESUME_BLOCKS: u32 = 1_000_000;

/// Why generating failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("generator: {0}")]
    Generate(#[from] GenerateError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the stored chain has {0} blocks, more than the generator resumes from")]
    TooLong(u64),
    #[error("the stored chain does not start at the regtest genesis; cannot generate on it")]
    NotRegtest,
}

/// How the relay generates blocks.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub initial_blocks: u32,
    pub txs_per_block: u32,
    /// Fill each block up to a target size drawn from this range instead (bytes).
    pub target_block_size_bytes: Option<RangeInclusive<usize>>,
    pub seed: u64,
}

/// A generator bound to the store: every block it makes is appended before it is returned.
pub struct BlockSource {
    generator: Generator,
}

impl BlockSource {
    /// Resumes on the stored chain, or starts one: the regtest genesis and `initial_blocks`
    /// blocks, timed one second apart and ending at `now_secs`.
    pub fn open(
        store: &ChainStore,
        config: &SourceConfig,
        now_secs: u32,
    ) -> Result<Self, SourceError> {
        let generate = GenerateConfig {
            blocks: 0,
            txs_per_block: config.txs_per_block,
            target_block_size_bytes: config.target_block_size_bytes.clone(),
            seed: config.seed,
            ..GenerateConfig::default()
        };
        let stored = store.len()?;
        if stored > u64::from(MAX_RESUME_BLOCKS) {
            return Err(SourceError::TooLong(stored));
        }
        if stored > 0 {
            if store.base_height()? != Some(0) {
                return Err(SourceError::NotRegtest);
            }
            let mut blocks = Vec::with_capacity(stored as usize);
            let mut height = 0u32;
            loop {
                let headers = store.headers(height, MAX_HEADERS_PER_READ)?;
                if headers.is_empty() {
                    break;
                }
                height = height.saturating_add(headers.len() as u32);
                for header in headers {
                    let block = store
                        .block(&header.block_hash())?
                        .ok_or(SourceError::NotRegtest)?;
                    blocks.push(block);
                }
            }
            let generator = Generator::resume(&generate, &blocks)?;
            tracing::info!(height = generator.height(), "resumed the regtest generator");
            return Ok(Self { generator });
        }
        store.append(&shoal_core::chain::generate::regtest_genesis_block())?;
        let mut source = Self {
            generator: Generator::new(&generate),
        };
        let first_time = now_secs.saturating_sub(config.initial_blocks);
        for i in 0..config.initial_blocks {
            source.next(store, first_time.saturating_add(i))?;
        }
        tracing::info!(
            height = source.height(),
            "generated the initial regtest chain"
        );
        Ok(source)
    }

    /// Makes the next block at `time_secs` and stores it; returns it with its height.
    pub fn next(
        &mut self,
        store: &ChainStore,
        time_secs: u32,
    ) -> Result<(u32, Block), SourceError> {
        let mut candidate = self.generator.clone();
        let block = candidate.next_block(time_secs)?;
        let height = store.append(&block)?;
        self.generator = candidate;
        debug_assert_eq!(height, self.generator.height());
        Ok((height, block))
    }

    /// The generator's tip height.
    pub fn height(&self) -> u32 {
        self.generator.height()
    }
}
