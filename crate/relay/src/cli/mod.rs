//! The command line: `shoal-relay <group> <command> [--json]`. Each group of commands is a
//! module here with its own clap `Subcommand`; the relay's `serve` command slots in beside
//! them as one more variant of [`Command`].

mod block;
mod chain;
mod headers;
mod serve;

use clap::{Parser, Subcommand};
use serde::Serialize;
use shoal_core::chain::Network;

/// Shoal's native relay and offline chain tools.
#[derive(Debug, Parser)]
#[command(name = "shoal-relay", version, about, propagate_version = true)]
pub struct Cli {
    /// Print JSON on standard output instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect block files and prove transactions in them.
    ///
    /// FILE is one raw block, the same as hex text (whitespace ignored), or Bitcoin Core
    /// blk*.dat records (network magic, 32-bit length, block; several; zero padding at the
    /// end allowed), recognised from the content.
    #[command(subcommand)]
    Block(block::BlockCommand),
    /// Verify header chains.
    #[command(subcommand)]
    Headers(headers::HeadersCommand),
    /// Generate regtest chains.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Run the relay: WebRTC-direct and WebSocket listeners, circuit relay, peer directory,
    /// and an HTTP server for the demo; as an archive (the default) the whole chain on disk as
    /// a block source, as a member (--role member --peer ARCHIVE) a shard in a cluster.
    Serve(Box<serve::ServeArgs>),
}

impl Command {
    /// Runs the command, printing its report as text or JSON.
    pub fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Command::Block(command) => command.run(json),
            Command::Headers(command) => command.run(json),
            Command::Chain(command) => command.run(json),
            Command::Serve(args) => (*args).run(),
        }
    }
}

/// What a command prints on success: its JSON form, or text for people.
pub trait Report: Serialize {
    /// The text form.
    fn text(&self) -> String;
}

/// Prints `report` in the chosen form.
pub fn emit(json: bool, report: &impl Report) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// `text` on one line: line breaks become spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The JSON form of a failure: `{"error": reason}`, plus `"height"` when a header sequence
/// failed at a known height.
pub fn error_json(error: &anyhow::Error, reason: &str) -> serde_json::Value {
    match error.downcast_ref::<headers::SequenceFailure>() {
        Some(failure) => serde_json::json!({ "error": reason, "height": failure.height }),
        None => serde_json::json!({ "error": reason }),
    }
}

/// A network named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// Bitcoin's main network.
    Mainnet,
    /// Testnet3.
    Testnet,
    /// Testnet4 (BIP94).
    Testnet4,
    /// The default signet.
    Signet,
    /// Regression test mode.
    Regtest,
}

impl NetworkArg {
    /// The core's network.
    pub fn network(self) -> Network {
        match self {
            Self::Mainnet => Network::Mainnet,
            Self::Testnet => Network::Testnet,
            Self::Testnet4 => Network::Testnet4,
            Self::Signet => Network::Signet,
            Self::Regtest => Network::Regtest,
        }
    }

    /// The lower-case name, as in `blockfile::KNOWN_MAGICS`.
    pub fn name(self) -> &'static str {
        self.network().name()
    }
}

/// Refuses a `blk*.dat` file framed for another network than `--network` names.
pub fn check_network(
    file: &crate::blockfile::BlockFile,
    network: Option<NetworkArg>,
) -> anyhow::Result<()> {
    if let (Some(wanted), crate::blockfile::Framing::BlkFile { magic }) = (network, file.framing) {
        let found = crate::blockfile::network_of_magic(magic).unwrap_or("unknown");
        if found != wanted.name() {
            anyhow::bail!(
                "wrong network magic: the file's records carry {found}'s magic {}, not {}'s",
                hex::encode(magic),
                wanted.name()
            );
        }
    }
    Ok(())
}
