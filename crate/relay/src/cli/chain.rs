//! `shoal-relay chain generate`: a deterministic regtest chain from a seed, written as
//! Bitcoin Core `blk*.dat` records (the block source of tests and of the relay's regtest mode).

use std::fs;
use std::io::{BufWriter, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use shoal_core::chain::generate::{
    regtest_genesis_block, GenerateConfig, Generator, DEFAULT_BLOCK_INTERVAL_S,
};

use shoal_core::chain::ChainParams;

use super::{emit, Report};
use crate::blockfile::write_blk_record;

/// The regtest network magic that frames `blk*.dat` records.
const REGTEST_MAGIC: [u8; 4] = ChainParams::REGTEST.magic;

/// The largest target block size accepted (the serialized size a 4,000,000-weight block
/// can reach is below this).
const MAX_TARGET_BLOCK_BYTES: u64 = 4_000_000;

/// Parses `--target-block-size`: `BYTES` or `MIN-MAX`, each from 1 to
/// [`MAX_TARGET_BLOCK_BYTES`], MIN not above MAX.
pub(super) fn parse_block_size(text: &str) -> Result<RangeInclusive<usize>, String> {
    let bytes = |part: &str| -> Result<usize, String> {
        let value: u64 = part
            .trim()
            .parse()
            .map_err(|_| format!("{part:?} is not a number of bytes"))?;
        if !(1..=MAX_TARGET_BLOCK_BYTES).contains(&value) {
            return Err(format!(
                "{value} bytes: must be 1 to {MAX_TARGET_BLOCK_BYTES}"
            ));
        }
        Ok(value as usize)
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (bytes(low)?, bytes(high)?),
        None => {
            let size = bytes(text)?;
            (size, size)
        }
    };
    if low > high {
        return Err(format!("{low}-{high}: the smaller size comes first"));
    }
    Ok(low..=high)
}

/// Chain commands.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Writes the regtest genesis block and N generated blocks on top of it to FILE as
    /// blk*.dat records (regtest magic); the same seed always gives the same bytes.
    Generate(GenerateArgs),
}

/// Arguments of `chain generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Blocks to generate after genesis.
    #[arg(long)]
    pub blocks: u32,
    /// Transactions per block besides the coinbase (block 1 has nothing to spend yet and
    /// holds only its coinbase).
    #[arg(long, default_value_t = 10)]
    pub txs_per_block: u32,
    /// The seed every block is derived from.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The blk*.dat file to write (replaced if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the concatenated 80-byte headers, genesis first.
    #[arg(long)]
    pub headers_out: Option<PathBuf>,
    /// The time of block 1 (Unix seconds); the genesis time plus one interval by default.
    #[arg(long)]
    pub start_time: Option<u32>,
    /// Seconds between block times.
    #[arg(long, default_value_t = DEFAULT_BLOCK_INTERVAL_S)]
    pub interval_s: u32,
    /// Fill every block with transactions up to this serialized size in bytes (e.g.
    /// 1000000), or up to a size drawn for each block from MIN-MAX (e.g. 10000-100000);
    /// overrides --txs-per-block.
    #[arg(long, value_name = "BYTES|MIN-MAX", value_parser = parse_block_size)]
    pub target_block_size: Option<RangeInclusive<usize>>,
}

impl ChainCommand {
    /// Runs the command.
    pub fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Generate(args) => emit(json, &generate(&args)?),
        }
    }
}

/// `chain generate`'s report.
#[derive(Debug, Serialize)]
struct GenerateReport {
    out: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers_out: Option<String>,
    seed: u64,
    /// Blocks written, genesis included.
    block_count: u64,
    tip_height: u32,
    tip_hash: String,
    bytes: u64,
}

impl Report for GenerateReport {
    fn text(&self) -> String {
        let mut text = format!(
            "wrote {} blocks (genesis to height {}, seed {}) to {}: {} bytes\ntip {}\n",
            self.block_count, self.tip_height, self.seed, self.out, self.bytes, self.tip_hash
        );
        if let Some(headers) = &self.headers_out {
            text.push_str(&format!("headers: {headers}\n"));
        }
        text
    }
}

/// A file written under a temporary name and renamed into place when complete, so a failed
/// run never leaves a partial chain under the requested name.
struct AtomicFile {
    path: PathBuf,
    partial: PathBuf,
    writer: BufWriter<fs::File>,
}

impl AtomicFile {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut name = path.as_os_str().to_owned();
        name.push(".partial");
        let partial = PathBuf::from(name);
        let file = fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        Ok(Self {
            path: path.to_owned(),
            partial,
            writer: BufWriter::new(file),
        })
    }

    fn commit(self) -> anyhow::Result<()> {
        let file = self
            .writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.partial.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.partial.display()))?;
        fs::rename(&self.partial, &self.path)
            .with_context(|| format!("cannot rename into {}", self.path.display()))
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<GenerateReport> {
    let config = GenerateConfig {
        blocks: args.blocks,
        txs_per_block: args.txs_per_block,
        seed: args.seed,
        start_time: args.start_time,
        block_interval_s: args.interval_s,
        target_block_size_bytes: args.target_block_size.clone(),
    };
    let mut out = AtomicFile::create(&args.out)?;
    let mut headers = args
        .headers_out
        .as_deref()
        .map(AtomicFile::create)
        .transpose()?;
    let result = write_chain(&config, &mut out, headers.as_mut());
    let (bytes, tip_hash) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&out.partial);
            if let Some(h) = &headers {
                let _ = fs::remove_file(&h.partial);
            }
            return Err(e);
        }
    };
    out.commit()?;
    if let Some(h) = headers {
        h.commit()?;
    }
    Ok(GenerateReport {
        out: args.out.display().to_string(),
        headers_out: args.headers_out.as_ref().map(|p| p.display().to_string()),
        seed: args.seed,
        block_count: u64::from(args.blocks) + 1,
        tip_height: args.blocks,
        tip_hash,
        bytes,
    })
}

/// Streams genesis and the generated blocks; returns the bytes written and the tip's hash.
fn write_chain(
    config: &GenerateConfig,
    out: &mut AtomicFile,
    mut headers: Option<&mut AtomicFile>,
) -> anyhow::Result<(u64, String)> {
    let mut generator = Generator::new(config);
    let mut bytes = 0u64;
    let mut block = regtest_genesis_block();
    for height in 0..=config.blocks {
        if height > 0 {
            let time = config.block_time(height)?;
            block = generator.next_block(time)?;
        }
        let encoded = block.encode();
        write_blk_record(&mut out.writer, REGTEST_MAGIC, &encoded)
            .with_context(|| format!("cannot write {}", out.partial.display()))?;
        bytes += 8 + encoded.len() as u64;
        if let Some(h) = headers.as_deref_mut() {
            h.writer
                .write_all(&block.header.encode())
                .with_context(|| format!("cannot write {}", h.partial.display()))?;
        }
    }
    Ok((bytes, block.block_hash().to_hex()))
}

#[cfg(test)]
mod tests {
    use super::parse_block_size;

    #[test]
    fn a_block_size_is_one_number_or_an_ordered_range_within_the_limit() {
        assert_eq!(parse_block_size("50000"), Ok(50_000..=50_000));
        assert_eq!(parse_block_size("10000-100000"), Ok(10_000..=100_000));
        for bad in [
            "",
            "-",
            "0",
            "4000001",
            "100000-10000",
            "1-2-3",
            "ten",
            "10000-",
            "-5",
        ] {
            let error = parse_block_size(bad).expect_err(bad);
            assert!(!error.is_empty(), "{bad}");
        }
    }
}
