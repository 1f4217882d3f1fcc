//! `shoal-relay headers verify`: checks a file of concatenated 80-byte headers with the same
//! header chain every Shoal node keeps (proof of work, linkage, difficulty, median time past,
//! versions), and reports its tip and total work or the first height that fails and why.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use shoal_core::chain::{HeaderChain, HeaderError, U256};

use super::{emit, NetworkArg, Report};
use crate::blockfile::{decode_text, read_limited};

/// Header commands.
#[derive(Debug, Subcommand)]
pub enum HeadersCommand {
    /// Verifies FILE, concatenated 80-byte headers (binary, or hex text) starting at the
    /// network's genesis or at height 1: prints count, tip hash, tip height and total work,
    /// or fails with the first failing height and why.
    Verify(VerifyArgs),
}

/// Arguments of `headers verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The headers file.
    pub file: PathBuf,
    /// The network whose rules and genesis apply.
    #[arg(long, value_enum, default_value_t = NetworkArg::Regtest)]
    pub network: NetworkArg,
}

/// A header sequence that fails at a height (carried so `--json` can report the height).
#[derive(Debug, thiserror::Error)]
#[error("header at height {height} is invalid: {reason}")]
pub struct SequenceFailure {
    /// The height the failing header would have had.
    pub height: u32,
    /// Why it failed.
    pub reason: HeaderError,
}

impl HeadersCommand {
    /// Runs the command.
    pub fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Verify(args) => emit(json, &verify(&args)?),
        }
    }
}

/// `headers verify`'s report.
#[derive(Debug, Serialize)]
struct VerifyReport {
    network: &'static str,
    /// Headers in the file.
    count: usize,
    tip_hash: String,
    tip_height: u32,
    /// Cumulative work up to the tip, genesis included, as bitcoind's `chainwork`.
    total_work: String,
}

impl Report for VerifyReport {
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} headers valid on {}", self.count, self.network);
        let _ = writeln!(out, "tip_height  {}", self.tip_height);
        let _ = writeln!(out, "tip_hash    {}", self.tip_hash);
        let _ = writeln!(out, "total_work  {}", self.total_work);
        out
    }
}

/// 64 hex digits, big-endian, as bitcoind prints `chainwork`.
fn work_hex(work: U256) -> String {
    let mut bytes = work.to_le_bytes();
    bytes.reverse();
    hex::encode(bytes)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<VerifyReport> {
    let path = args.file.display().to_string();
    let data = read_limited(&args.file).with_context(|| path.clone())?;
    let (_, bytes) = decode_text(&data).with_context(|| path.clone())?;
    if bytes.len() % 80 != 0 {
        anyhow::bail!(
            "{path}: {} bytes is not a whole number of 80-byte headers ({} left over)",
            bytes.len(),
            bytes.len() % 80
        );
    }
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let params = args.network.network().params();
    let summary = HeaderChain::verify_sequence(&params, &bytes, now_s)
        .map_err(|(height, reason)| SequenceFailure { height, reason })?;
    Ok(VerifyReport {
        network: args.network.name(),
        count: summary.count,
        tip_hash: summary.tip_hash.to_hex(),
        tip_height: summary.tip_height,
        total_work: work_hex(summary.total_work),
    })
}
