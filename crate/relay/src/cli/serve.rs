//! `shoal-relay serve`: the command line of the relay (see [`shoal_relay::serve`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use shoal_relay::serve::guard::{GuardConfig, Rate};
use shoal_relay::serve::http::{HttpDirs, HttpLimits};
use shoal_relay::serve::limits::ConnectionCaps;
use shoal_relay::serve::network::{CircuitLimits, RequestLimits};
use shoal_relay::serve::{self, ServeConfig};

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// archive: holds the whole chain and is a block source (generates or imports). member:
    /// holds only its shard, follows its --peer relays' headers and takes part in a cluster
    /// like a page; both relay circuits and keep a directory.
    #[arg(long, value_enum, default_value_t = Role::Archive)]
    role: Role,
    /// Another relay to dial and keep dialling (with backoff), a full multiaddr ending in
    /// /p2p/<peer id>; repeatable. A member relay follows their headers; relays given each
    /// other share their directories, so pages on different relays meet.
    #[arg(long = "peer", value_name = "MULTIADDR")]
    peers: Vec<Multiaddr>,
    /// Cluster size a member relay forms and joins clusters with (like a page's clusterSize).
    #[arg(long)]
    cluster_size: Option<u32>,
    /// Copies of each block a member relay's cluster keeps (like a page's replicas).
    #[arg(long)]
    replicas: Option<u32>,
    /// A member relay's heartbeat interval, like a page's heartbeatIntervalMs [default: 5000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=MAX_INTERVAL_MS))]
    heartbeat_interval_ms: Option<u64>,
    /// A member relay's detection timeout (a member silent this long is offline), like a
    /// page's offlineAfterMs; more than the heartbeat interval [default: 20000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=MAX_INTERVAL_MS))]
    offline_after_ms: Option<u64>,
    /// How often a member relay runs formation and looks for a cluster to join, like a page's
    /// formationIntervalMs [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=MAX_INTERVAL_MS))]
    formation_interval_ms: Option<u64>,
    /// The bytes of block storage a member relay offers its cluster, like a page's
    /// capacityBytes: placement weighs members by it [default: 8 GiB, as a browser tab alone on
    /// its origin].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    capacity_bytes: Option<u64>,
    /// Chain: regtest (generated) or any name for an imported chain.
    #[arg(long, default_value = "regtest", value_parser = ["regtest", "signet", "testnet", "testnet4", "mainnet"])]
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
    /// Import blocks from FILE (raw block, hex text, or blk*.dat) instead of generating (with
    /// --block-interval-secs, a regtest chain is then mined on).
    #[arg(long)]
    import: Option<PathBuf>,
    /// Follow a Bitcoin network through this node's P2P port (HOST:PORT; repeatable): its
    /// headers checked with --network's rules, its blocks checked and stored, reorganisations
    /// followed (archive only; the regtest generator is then off).
    #[arg(long, value_name = "HOST:PORT")]
    bitcoin_peer: Vec<String>,
    /// Write the relay's full multiaddrs to FILE, one per line.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Announce this address too (e.g. a public IP); repeatable.
    #[arg(long)]
    external_addr: Vec<Multiaddr>,
    /// Blocks generated on a fresh regtest chain (0: generate nothing; archive only) [default: 100].
    #[arg(long)]
    initial_blocks: Option<u32>,
    /// Seconds between generated blocks (0: none after the initial ones; archive only)
    /// [default: 30; with --import: 0, and when given, blocks are mined on top of the imported
    /// regtest chain].
    #[arg(long)]
    block_interval_secs: Option<u64>,
    /// Transactions per generated block besides the coinbase (archive only) [default: 10].
    #[arg(long)]
    txs_per_block: Option<u32>,
    /// Fill generated blocks up to this many bytes, or up to a size drawn for each block from
    /// MIN-MAX (e.g. 10000-100000); overrides --txs-per-block (archive only).
    #[arg(long, value_name = "BYTES|MIN-MAX", value_parser = super::chain::parse_block_size)]
    target_block_size: Option<std::ops::RangeInclusive<usize>>,
    /// Seed of the regtest generator and of the relay's node [default: 0].
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
    /// Most libp2p connections from one IP address (pending and established; one more is
    /// refused). An IPv6 address counts as its /64, every per-address limit and ban here.
    /// Tabs behind one NAT (or in one /64) share an address: leave room for them.
    #[arg(long, default_value_t = ConnectionCaps::default().max_per_ip, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections_per_ip: u32,
    /// Most established inbound libp2p connections, all peers together.
    #[arg(long, default_value_t = ConnectionCaps::default().max_incoming, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    max_connections: u32,
    /// Most HTTP connections open at once (one more is closed at once).
    #[arg(long, default_value_t = HttpLimits::default().max_connections as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    http_max_connections: u32,
    /// Most HTTP connections open at once from one IP address (IPv6: one /64).
    #[arg(long, default_value_t = HttpLimits::default().max_connections_per_ip as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    http_max_connections_per_ip: u32,
    /// Seconds an HTTP client has to send a request's headers (slow clients are closed).
    #[arg(long, default_value_t = HttpLimits::default().header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    http_header_timeout_secs: u64,
    /// Refuse new libp2p connections while the relay's resident memory is above this many MiB.
    #[arg(long, default_value_t = ConnectionCaps::default().max_memory_mb, value_parser = parse_memory_mb)]
    max_memory_mb: usize,
    /// Request streams one libp2p connection may have open at once, per protocol.
    #[arg(long, default_value_t = RequestLimits::default().max_concurrent_streams as u32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_streams_per_connection: u32,
    /// Requests a second one IP address (IPv6: one /64) may make, all its peers together (a
    /// burst of four seconds' worth first).
    #[arg(long, default_value_t = GuardConfig::default().requests_per_ip.per_second, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    requests_per_ip_per_sec: u32,
    /// Seconds a peer past its misbehaviour points is banned (its connections closed, new ones
    /// refused).
    #[arg(long, default_value_t = GuardConfig::default().ban_for.as_secs(), value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    ban_secs: u64,
    /// Peers from one IP address (IPv6: one /64) banned within --ban-secs after which the
    /// address (the /64) is banned too: new connections from it refused for --ban-secs (a
    /// machine minting fresh keys; 0: never; connections already open stay).
    #[arg(long, default_value_t = GuardConfig::default().address_ban_after)]
    address_ban_after: u32,
}

/// What a relay is (see `--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The whole chain, a block source.
    Archive,
    /// Its shard only, a cluster member.
    Member,
}

/// The page's defaults (`clusterSize`, `replicas`), which a member relay shares.
const DEFAULT_CLUSTER_SIZE: u32 = 8;
const DEFAULT_REPLICAS: u32 = 3;
/// The range of a member relay's intervals, the same as a page's options allow.
const MIN_INTERVAL_MS: u64 = 100;
const MAX_INTERVAL_MS: u64 = 3_600_000;
/// Most `--peer`s.
const MAX_PEERS: usize = 16;

impl ServeArgs {
    /// The relay's configuration, or why the flags do not go together.
    fn into_config(self) -> anyhow::Result<ServeConfig> {
        for peer in &self.peers {
            if !matches!(peer.iter().last(), Some(Protocol::P2p(_))) {
                anyhow::bail!("--peer {peer}: the address must end in /p2p/<peer id>");
            }
        }
        if self.peers.len() > MAX_PEERS {
            anyhow::bail!("at most {MAX_PEERS} --peer addresses");
        }
        let role = match self.role {
            Role::Archive => {
                let member_only = [
                    ("--cluster-size", self.cluster_size.is_some()),
                    ("--replicas", self.replicas.is_some()),
                    (
                        "--heartbeat-interval-ms",
                        self.heartbeat_interval_ms.is_some(),
                    ),
                    ("--offline-after-ms", self.offline_after_ms.is_some()),
                    (
                        "--formation-interval-ms",
                        self.formation_interval_ms.is_some(),
                    ),
                    ("--capacity-bytes", self.capacity_bytes.is_some()),
                ];
                if let Some((flag, _)) = member_only.iter().find(|(_, given)| *given) {
                    anyhow::bail!(
                        "{flag} is a member relay's (add --role member); an archive holds every \
                         block and is in no cluster"
                    );
                }
                let generator_only = [
                    ("--initial-blocks", self.initial_blocks.is_some()),
                    ("--block-interval-secs", self.block_interval_secs.is_some()),
                    ("--txs-per-block", self.txs_per_block.is_some()),
                    ("--target-block-size", self.target_block_size.is_some()),
                ];
                if let Some((flag, _)) = generator_only
                    .iter()
                    .find(|(_, given)| *given && !self.bitcoin_peer.is_empty())
                {
                    anyhow::bail!(
                        "{flag} is the regtest generator's; with --bitcoin-peer the blocks come \
                         from the Bitcoin network"
                    );
                }
                for peer in &self.bitcoin_peer {
                    if !peer.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
                    }) {
                        anyhow::bail!("--bitcoin-peer {peer}: expected HOST:PORT");
                    }
                }
                serve::Role::Archive
            }
            Role::Member => {
                let archive_only = [
                    ("--import", self.import.is_some()),
                    ("--bitcoin-peer", !self.bitcoin_peer.is_empty()),
                    ("--initial-blocks", self.initial_blocks.is_some()),
                    ("--block-interval-secs", self.block_interval_secs.is_some()),
                    ("--txs-per-block", self.txs_per_block.is_some()),
                    ("--target-block-size", self.target_block_size.is_some()),
                ];
                if let Some((flag, _)) = archive_only.iter().find(|(_, given)| *given) {
                    anyhow::bail!(
                        "{flag} is an archive relay's: a member relay has no block source; \
                         it takes its headers from its --peer relays and its blocks from its cluster"
                    );
                }
                if self.peers.is_empty() {
                    anyhow::bail!(
                        "a member relay needs at least one --peer (an archive relay to follow)"
                    );
                }
                let cluster_size = self.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE);
                let replicas = self.replicas.unwrap_or(DEFAULT_REPLICAS);
                if !(2..=64).contains(&cluster_size) {
                    anyhow::bail!("--cluster-size {cluster_size}: must be between 2 and 64");
                }
                if replicas == 0 || replicas >= cluster_size {
                    anyhow::bail!(
                        "--replicas {replicas}: must be at least 1 and less than --cluster-size ({cluster_size})"
                    );
                }
                let defaults = serve::MemberSettings::with_default_timings(cluster_size, replicas);
                let heartbeat_interval_ms = self
                    .heartbeat_interval_ms
                    .unwrap_or(defaults.heartbeat_interval_ms);
                let offline_after_ms = self
                    .offline_after_ms
                    .unwrap_or(defaults.offline_after_ms.max(heartbeat_interval_ms + 1));
                if offline_after_ms <= heartbeat_interval_ms {
                    anyhow::bail!(
                        "--offline-after-ms {offline_after_ms}: must exceed the heartbeat interval \
                         ({heartbeat_interval_ms} ms)"
                    );
                }
                serve::Role::Member(serve::MemberSettings {
                    heartbeat_interval_ms,
                    offline_after_ms,
                    formation_interval_ms: self
                        .formation_interval_ms
                        .unwrap_or(defaults.formation_interval_ms),
                    capacity_bytes: self.capacity_bytes.unwrap_or(defaults.capacity_bytes),
                    ..defaults
                })
            }
        };
        let generating = matches!(role, serve::Role::Archive) && self.bitcoin_peer.is_empty();
        // An imported chain is mined on only when an interval is asked for.
        let block_interval_secs = match generating {
            true => self
                .block_interval_secs
                .unwrap_or(if self.import.is_some() { 0 } else { 30 }),
            false => 0,
        };
        Ok(ServeConfig {
            role,
            peers: self.peers,
            network: self.network,
            data_dir: self.data_dir,
            listen: self.listen,
            ws_port: self.ws_port,
            http: self.http,
            import: self.import,
            bitcoin_peers: self.bitcoin_peer,
            addr_file: self.addr_file,
            external_addrs: self.external_addr,
            initial_blocks: if generating {
                self.initial_blocks.unwrap_or(100)
            } else {
                0
            },
            block_interval_secs,
            txs_per_block: self.txs_per_block.unwrap_or(10),
            target_block_size_bytes: self.target_block_size,
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
            http_limits: HttpLimits {
                max_connections: self.http_max_connections as usize,
                max_connections_per_ip: self.http_max_connections_per_ip as usize,
                header_timeout: std::time::Duration::from_secs(self.http_header_timeout_secs),
                ..HttpLimits::default()
            },
            connections: ConnectionCaps {
                max_per_ip: self.max_connections_per_ip,
                max_incoming: self.max_connections,
                max_memory_mb: self.max_memory_mb,
                ..ConnectionCaps::default()
            },
            requests: RequestLimits {
                max_concurrent_streams: self.max_streams_per_connection as usize,
                ..RequestLimits::default()
            },
            guard: GuardConfig {
                requests_per_ip: Rate {
                    burst: self.requests_per_ip_per_sec.saturating_mul(4),
                    per_second: self.requests_per_ip_per_sec,
                },
                ban_for: std::time::Duration::from_secs(self.ban_secs),
                address_ban_after: self.address_ban_after,
                ..GuardConfig::default()
            },
            idle_connection_timeout_secs: self.idle_connection_timeout_secs,
        })
    }
}

impl ServeArgs {
    /// Runs the relay until SIGINT or SIGTERM. Logs go to standard error through `tracing`
    /// (`RUST_LOG`, default `info,dtls=error`).
    pub fn run(self) -> anyhow::Result<()> {
        // Bad flags fail before anything is opened or written.
        let config = self.into_config()?;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,dtls=error"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
        runtime.block_on(serve::run(config))?;
        Ok(())
    }
}

/// `--max-memory-mb`: at least 64 MiB (the relay's own needs), at most a tebibyte.
fn parse_memory_mb(text: &str) -> Result<usize, String> {
    let mb: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of MiB"))?;
    if !(64..=1 << 20).contains(&mb) {
        return Err(format!("{mb} MiB is outside 64..=1048576"));
    }
    Ok(mb)
}
