//! What the relay's front-door tests share: the real relay binary as a child process on
//! 127.0.0.1, stopped by its own pid, and libp2p clients with keys of their own.

#![allow(dead_code)] // each test file uses its part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId, Swarm};

/// Longest wait for anything the relay does.
pub const WAIT: Duration = Duration::from_secs(60);

/// The relay's child process; SIGTERM on drop (SIGKILL if it does not stop in [`WAIT`]).
pub struct Relay {
    child: Child,
    /// Every line it wrote to standard error so far.
    pub log: Arc<Mutex<Vec<String>>>,
    pub ws: Multiaddr,
    pub webrtc: Multiaddr,
    pub peer: PeerId,
    /// Its HTTP server's address, once its standard output said it.
    http: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

impl Relay {
    /// Starts `shoal-relay serve` on 127.0.0.1 with `args` added, data in `dir`; returns once
    /// it wrote its WebSocket address.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Relay {
        let addr_file = dir.join("addrs.txt");
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-relay"))
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--www")
            .arg(dir)
            .arg("--dist")
            .arg(dir)
            .env(
                "RUST_LOG",
                std::env::var("SHOAL_RELAY_LOG").unwrap_or_else(|_| "warn,dtls=error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start shoal-relay");
        let stdout = child.stdout.take().expect("piped");
        let http = Arc::new(Mutex::new(None));
        let said = http.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = line
                    .strip_prefix("http: http://")
                    .map(|a| a.trim_end_matches('/'));
                if let Some(addr) = addr.and_then(|a| a.parse().ok()) {
                    *said.lock().unwrap() = Some(addr);
                }
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(strip_ansi(&line));
            }
        });
        let mut relay = Relay {
            child,
            log,
            ws: Multiaddr::empty(),
            webrtc: Multiaddr::empty(),
            peer: PeerId::random(),
            http,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&addr_file).unwrap_or_default();
            let addrs: Vec<Multiaddr> = text.lines().filter_map(|l| l.parse().ok()).collect();
            let ws = addrs
                .iter()
                .find(|a| a.iter().any(|p| matches!(p, Protocol::Ws(_))));
            let webrtc = addrs
                .iter()
                .find(|a| a.iter().any(|p| matches!(p, Protocol::WebRTCDirect)));
            if let (Some(ws), Some(webrtc)) = (ws.cloned(), webrtc.cloned()) {
                relay.webrtc = webrtc;
                relay.peer = match ws.iter().last() {
                    Some(Protocol::P2p(peer)) => peer,
                    _ => panic!("{ws} names no peer"),
                };
                relay.ws = ws;
                return relay;
            }
            if let Ok(Some(status)) = relay.child.try_wait() {
                panic!("the relay ended: {status}; {:?}", relay.log.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "the relay wrote no address");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its HTTP server's address (waits until the relay said it).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(addr) = *self.http.lock().unwrap() {
                return addr;
            }
            assert!(Instant::now() < deadline, "the relay said no HTTP address");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its open file descriptors now (sockets included).
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Its peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:") * 1024
    }

    /// Its resident memory now (`VmRSS`), in bytes.
    pub fn memory(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:") * 1024
    }

    /// Lines of its log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without terminal colour codes (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc status")
}

/// A client swarm with behaviour `B` and a fresh key, on the relay's own transports.
pub fn swarm<B: NetworkBehaviour>(behaviour: impl FnOnce() -> B) -> Swarm<B> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let certificate =
        libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng()).expect("certificate");
    let transport =
        shoal_relay::serve::network::build_transport(&key, certificate).expect("transport");
    let Ok(builder) = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport);
    builder
        .with_behaviour(|_| behaviour())
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}
