//! `shoal-relay serve`: the command line of the relay (see [`shoal_relay::serve`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use libp2p::Multiaddr;
use shoal_relay::serve::http::HttpDirs;
use shoal_relay::serve::network::{CircuitLimits, RequestLimits};
use shoal_relay::serve::{self, ServeConfig};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Chain: regtest (generated) or any name for an imported chain.
    #[arg(long, default_value = "regtest", value_parser = ["regtest", "signet", "testnet", "mainnet"])]
    network: String,
    /// Where the identity, certificate and chain database live.
    #[arg(long, default_value = "shoal-relay-data")]
    data_dir: PathBuf,
    /// WebRTC-direct listens here over UDP and WebSocket over TCP (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:9090")]
    listen: SocketAddr,
    /// WebSocket TCP port when it must differ from --listen's port.
    #[arg(long)]
    ws_port: Option<u16>,
    /// HTTP address for the demo page, the package and /relay-addrs.json.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Import blocks from FILE (raw block, hex text, or blk*.dat) instead of generating.
    #[arg(long)]
    import: Option<PathBuf>,
    /// Write the relay's full multiaddrs to FILE, one per line.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Announce this address too (e.g. a public IP); repeatable.
    #[arg(long)]
    external_addr: Vec<Multiaddr>,
    /// Blocks generated on a fresh regtest chain (0: generate nothing).
    #[arg(long, default_value_t = 100)]
    initial_blocks: u32,
    /// Seconds between generated blocks (0: none after the initial ones).
    #[arg(long, default_value_t = 30)]
    block_interval_secs: u64,
    /// Transactions per generated block besides the coinbase.
    #[arg(long, default_value_t = 10)]
    txs_per_block: u32,
    /// Seed of the regtest generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory with the demo page.
    #[arg(long, default_value = "www")]
    www: PathBuf,
    /// Directory with the built npm package, served under /dist.
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Longest life of one relayed circuit, seconds.
    #[arg(long, default_value_t = CircuitLimits::default().max_circuit_duration_secs)]
    max_circuit_duration_secs: u64,
    /// Most bytes one relayed circuit may carry.
    #[arg(long, default_value_t = CircuitLimits::default().max_circuit_bytes)]
    max_circuit_bytes: u64,
    /// Most relayed circuits at once.
    #[arg(long, default_value_t = CircuitLimits::default().max_circuits)]
    max_circuits: usize,
    /// Most relay reservations at once.
    #[arg(long, default_value_t = CircuitLimits::default().max_reservations)]
    max_reservations: usize,
    /// Close connections idle for this many seconds.
    #[arg(long, default_value_t = 600)]
    idle_connection_timeout_secs: u64,
}

impl ServeArgs {
    fn into_config(self) -> ServeConfig {
        ServeConfig {
            network: self.network,
            data_dir: self.data_dir,
            listen: self.listen,
            ws_port: self.ws_port,
            http: self.http,
            import: self.import,
            addr_file: self.addr_file,
            external_addrs: self.external_addr,
            initial_blocks: self.initial_blocks,
            block_interval_secs: self.block_interval_secs,
            txs_per_block: self.txs_per_block,
            seed: self.seed,
            http_dirs: HttpDirs {
                www: self.www,
                dist: self.dist,
            },
            circuits: CircuitLimits {
                max_circuit_duration_secs: self.max_circuit_duration_secs,
                max_circuit_bytes: self.max_circuit_bytes,
                max_circuits: self.max_circuits,
                max_reservations: self.max_reservations,
                ..CircuitLimits::default()
            },
            requests: RequestLimits::default(),
            idle_connection_timeout_secs: self.idle_connection_timeout_secs,
        }
    }
}

impl ServeArgs {
    /// Runs the relay until SIGINT or SIGTERM. Logs go to standard error through `tracing`
    /// (`RUST_LOG`, default `info,dtls=error`).
    pub fn run(self) -> anyhow::Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,dtls=error"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        runtime.block_on(serve::run(self.into_config()))?;
        Ok(())
    }
}
