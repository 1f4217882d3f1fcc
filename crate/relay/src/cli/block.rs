//! `shoal-relay block inspect|prove`: what a block file holds and whether it is sound, and
//! Merkle inclusion proofs in the shape of Electrum's `blockchain.transaction.get_merkle`
//! (S16: every answer to a transaction query carries such a proof).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde::Serialize;

use shoal_core::chain::merkle::MerkleProof;
use shoal_core::chain::{Block, Target, Txid, WitnessCommitment};

use super::{check_network, emit, NetworkArg, Report};
use crate::blockfile::{read_blocks, BlockFile};

/// Block commands. FILE is a raw block, the same as hex text (whitespace ignored), or
/// Bitcoin Core `blk*.dat` records (magic, length, block; several; zero padding at the end);
/// the format is detected from the content.
#[derive(Debug, Subcommand)]
pub enum BlockCommand {
    /// For every block in FILE: hash, previous hash, Merkle root and whether it is valid,
    /// the witness commitment (valid, absent or invalid), transaction count, size, weight and
    /// the BIP34 height (for version >= 2 blocks whose coinbase starts with a height push).
    Inspect(InspectArgs),
    /// The Merkle inclusion proof of transaction TXID (display hex) in a block of FILE, as
    /// Electrum's blockchain.transaction.get_merkle returns it; verified before it is printed.
    Prove(ProveArgs),
}

/// Arguments of `block inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The block file.
    pub file: PathBuf,
    /// Refuse blk*.dat records framed with another network's magic.
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Also list every transaction id (display hex), in block order.
    #[arg(long)]
    pub txids: bool,
}

/// Arguments of `block prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The block file.
    pub file: PathBuf,
    /// The transaction id, 64 hex digits in display order (as bitcoind and Electrum print it).
    pub txid: String,
    /// Refuse blk*.dat records framed with another network's magic.
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
}

impl BlockCommand {
    /// Runs the command.
    pub fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Inspect(args) => {
                let file = load(&args.file, args.network)?;
                emit(json, &inspect(&file, args.txids))
            }
            Self::Prove(args) => {
                let txid = Txid::from_hex(args.txid.trim())
                    .with_context(|| format!("invalid txid {:?}", args.txid))?;
                let file = load(&args.file, args.network)?;
                emit(json, &prove(&file, txid)?)
            }
        }
    }
}

fn load(path: &std::path::Path, network: Option<NetworkArg>) -> anyhow::Result<BlockFile> {
    let file = read_blocks(path).with_context(|| path.display().to_string())?;
    check_network(&file, network)?;
    Ok(file)
}

/// The height a block's coinbase states, when BIP34 applies to it: version 2 or above and a
/// coinbase script that starts with a height push.
fn stated_height(block: &Block) -> Option<u32> {
    if block.header.version >= 2 {
        block.bip34_height()
    } else {
        None
    }
}

/// `block inspect`'s report.
#[derive(Debug, Serialize)]
struct InspectReport {
    format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'static str>,
    block_count: usize,
    blocks: Vec<BlockReport>,
}

/// One block's facts.
#[derive(Debug, Serialize)]
struct BlockReport {
    index: usize,
    offset: usize,
    hash: String,
    prev_hash: String,
    merkle_root: String,
    merkle_root_valid: bool,
    /// `valid`, `absent` or `invalid`.
    witness_commitment: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    witness_commitment_error: Option<String>,
    tx_count: usize,
    size: usize,
    weight: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    version: i32,
    time: u32,
    bits: String,
    nonce: u32,
    /// Whether the hash meets the target the header's own `nBits` state.
    pow_valid: bool,
    /// Whether the body passes every context-free check against the header.
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    txids: Option<Vec<String>>,
}

fn inspect(file: &BlockFile, with_txids: bool) -> InspectReport {
    let blocks = file
        .blocks
        .iter()
        .enumerate()
        .map(|(index, fb)| {
            let block = &fb.block;
            let hash = block.block_hash();
            let (witness_commitment, witness_commitment_error) =
                match block.check_witness_commitment() {
                    Ok(WitnessCommitment::Valid) => ("valid", None),
                    Ok(WitnessCommitment::Absent) => ("absent", None),
                    Err(e) => ("invalid", Some(e.to_string())),
                };
            let check = block.check();
            BlockReport {
                index,
                offset: fb.offset,
                hash: hash.to_hex(),
                prev_hash: block.header.prev_blockhash.to_hex(),
                merkle_root: block.header.merkle_root.to_hex(),
                merkle_root_valid: block.check_merkle_root(),
                witness_commitment,
                witness_commitment_error,
                tx_count: block.txdata.len(),
                size: block.size(),
                weight: block.weight(),
                height: stated_height(block),
                version: block.header.version,
                time: block.header.time,
                bits: format!("{:08x}", block.header.bits),
                nonce: block.header.nonce,
                pow_valid: Target::from_compact(block.header.bits)
                    .is_ok_and(|target| target.is_met_by(hash)),
                valid: check.is_ok(),
                error: check.err().map(|e| e.to_string()),
                txids: with_txids.then(|| block.txids().iter().map(Txid::to_hex).collect()),
            }
        })
        .collect::<Vec<_>>();
    InspectReport {
        format: file.format_name(),
        network: file.network(),
        block_count: blocks.len(),
        blocks,
    }
}

impl Report for InspectReport {
    fn text(&self) -> String {
        let mut out = format!("{}: {} block(s)\n", self.format, self.block_count);
        for b in &self.blocks {
            let yes_no = |v: bool| if v { "valid" } else { "INVALID" };
            let _ = writeln!(out, "block {} at byte {}", b.index, b.offset);
            let _ = writeln!(out, "  hash                {}", b.hash);
            let _ = writeln!(out, "  prev_hash           {}", b.prev_hash);
            let _ = writeln!(
                out,
                "  merkle_root         {} ({})",
                b.merkle_root,
                yes_no(b.merkle_root_valid)
            );
            let _ = writeln!(
                out,
                "  witness_commitment  {}{}",
                b.witness_commitment,
                b.witness_commitment_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "  tx_count            {}", b.tx_count);
            let _ = writeln!(out, "  size                {} bytes", b.size);
            let _ = writeln!(out, "  weight              {} WU", b.weight);
            match b.height {
                Some(h) => {
                    let _ = writeln!(out, "  height              {h}");
                }
                None => {
                    let _ = writeln!(out, "  height              unknown (no BIP34 height)");
                }
            }
            let _ = writeln!(
                out,
                "  header              version {:#x}, time {}, bits {}, nonce {}, proof of work {}",
                b.version,
                b.time,
                b.bits,
                b.nonce,
                yes_no(b.pow_valid)
            );
            let _ = writeln!(
                out,
                "  checks              {}",
                b.error.as_deref().unwrap_or("all passed")
            );
            for txid in b.txids.iter().flatten() {
                let _ = writeln!(out, "  tx                  {txid}");
            }
        }
        out
    }
}

/// `block prove`'s report: Electrum's `get_merkle` result plus the block hash.
#[derive(Debug, Serialize)]
struct ProveReport {
    block_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_height: Option<u32>,
    pos: u32,
    merkle: Vec<String>,
}

fn prove(file: &BlockFile, txid: Txid) -> anyhow::Result<ProveReport> {
    for fb in &file.blocks {
        let block = &fb.block;
        let txids = block.txids();
        let Some(pos) = txids.iter().position(|t| *t == txid) else {
            continue;
        };
        let hash = block.block_hash();
        if !block.check_merkle_root() {
            bail!("block {hash} holds {txid} but its transactions do not match its Merkle root; no proof exists");
        }
        let pos = u32::try_from(pos).context("position beyond u32")?;
        let height = stated_height(block);
        let proof = MerkleProof::build(hash, height.unwrap_or(0), &txids, pos)
            .with_context(|| format!("cannot build the proof of {txid}"))?;
        proof
            .verify_with_tx_count(txid, block.header.merkle_root, txids.len())
            .with_context(|| format!("the proof of {txid} does not verify"))?;
        proof
            .verify_against_header(txid, &block.header)
            .with_context(|| format!("the proof of {txid} does not verify"))?;
        return Ok(ProveReport {
            block_hash: hash.to_hex(),
            block_height: height,
            pos,
            merkle: proof.branch.iter().map(|h| h.to_hex()).collect(),
        });
    }
    bail!(
        "transaction {txid} is not in the {} block(s) of the file",
        file.blocks.len()
    )
}

impl Report for ProveReport {
    fn text(&self) -> String {
        let mut out = format!("block_hash    {}\n", self.block_hash);
        if let Some(h) = self.block_height {
            let _ = writeln!(out, "block_height  {h}");
        }
        let _ = writeln!(out, "pos           {}", self.pos);
        let _ = writeln!(out, "merkle        {} hashes", self.merkle.len());
        for node in &self.merkle {
            let _ = writeln!(out, "  {node}");
        }
        out
    }
}
