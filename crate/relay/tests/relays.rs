//! Two relays side by side on 127.0.0.1: an archive (generating a regtest chain) and a member
//! relay given it as `--peer`. The member dials it, follows its headers through the core's
//! header sync and hands them to its core node (`/status.json`); killed (SIGKILL) and started
//! again with the archive gone, it still has its identity and every header, from its disk.
//! Both run as child processes stopped by their own pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const INITIAL_BLOCKS: u64 = 12;
const WAIT: Duration = Duration::from_secs(60);

struct Relay {
    child: Child,
    http: String,
}

impl Relay {
    /// Starts `shoal-relay serve` with `args` on free ports; returns once it printed its HTTP
    /// address.
    fn start(data_dir: &Path, args: &[&str]) -> Relay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-relay"))
            .args(["serve", "--network", "regtest", "--listen", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--www")
            .arg(data_dir)
            .arg("--dist")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info,dtls=error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start shoal-relay");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let http = loop {
            let line = lines
                .next()
                .expect("relay exited before printing its HTTP address")
                .expect("read relay stdout");
            if let Some(url) = line.strip_prefix("http: http://") {
                break url.trim_end_matches('/').to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Relay { child, http }
    }

    fn get(&self, path: &str) -> Value {
        let mut stream = TcpStream::connect(&self.http).expect("connect to relay HTTP");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.http).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {response}"))
    }

    /// Polls `/status.json` until `done` holds (at most [`WAIT`]).
    fn status_until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self.get("/status.json");
            if done(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: last status {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The WebSocket address from `/relay-addrs.json`, once listed.
    fn ws_addr(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let info = self.get("/relay-addrs.json");
            let ws = info["addrs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .find(|a| a.contains("/ws/"))
                .map(str::to_string);
            if let Some(ws) = ws {
                return ws;
            }
            assert!(Instant::now() < deadline, "no WebSocket address: {info}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the relay");
        self.child.wait().expect("reap the relay");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_member_relay_follows_its_archive_peers_headers_and_keeps_them_across_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");
    let member_dir = dir.path().join("member");
    std::fs::create_dir_all(&archive_dir).unwrap();
    std::fs::create_dir_all(&member_dir).unwrap();
    let blocks = INITIAL_BLOCKS.to_string();
    let archive = Relay::start(
        &archive_dir,
        &["--initial-blocks", &blocks, "--block-interval-secs", "0"],
    );
    let archive_status = archive.status_until("archive up", |s| s["tip_height"] == INITIAL_BLOCKS);
    assert_eq!(archive_status["role"], "archive");
    let peer = archive.ws_addr();

    let member_args = ["--role", "member", "--peer", &peer, "--cluster-size", "4"];
    let member = Relay::start(&member_dir, &member_args);
    let synced = member.status_until("member synced the archive's headers", |s| {
        s["synced"] == true && s["tip_height"] == INITIAL_BLOCKS && s["has_headers"] == true
    });
    assert_eq!(synced["role"], "member");
    // No cluster yet (no pages), and only its shard on disk: nothing.
    assert_eq!(synced["cluster_id"], Value::Null);
    assert_eq!(synced["held"], serde_json::json!([]));
    let member_id = member.get("/relay-addrs.json")["peer_id"].clone();

    // A crash, then a restart with the archive gone: identity and headers come from disk.
    member.kill();
    drop(archive);
    let member = Relay::start(&member_dir, &member_args);
    assert_eq!(member.get("/relay-addrs.json")["peer_id"], member_id);
    let restarted = member.status_until("member's node has its stored headers", |s| {
        s["has_headers"] == true
    });
    assert_eq!(restarted["tip_height"], INITIAL_BLOCKS);
    assert_eq!(restarted["synced"], false, "no peer to sync with");
}
