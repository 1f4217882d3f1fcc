//! End-to-end test of `shoal-relay serve` on 127.0.0.1: a native libp2p client syncs headers,
//! fetches a block, queries a transaction and checks its Merkle proof (all answered by the
//! relay's archive node on its own thread), uploads 1 MiB through the probe protocol over
//! WebSocket and WebRTC-direct, and the relay keeps its peer id, certificate hash and chain
//! across a restart. The relay runs as a child process stopped by its own pid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message as RrMessage};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use sha2::{Digest, Sha256};
use shoal_core::chain::{self, Block, MerkleProof, Txid};
use shoal_core::wire::{self, Hash256, Header, Message, TxAnswerBody};
use shoal_net::{node_link, FrameCodec};
use shoal_relay::serve::network::{build_transport, request_response_behaviour, RequestLimits};

const INITIAL_BLOCKS: u32 = 12;
const WAIT: Duration = Duration::from_secs(60);

struct Relay {
    child: Child,
    http: String,
}

impl Relay {
    fn start(data_dir: &Path) -> Relay {
        let addr_file = data_dir.join("addrs.txt");
        let _ = std::fs::remove_file(&addr_file);
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-relay"))
            .args(["serve", "--network", "regtest", "--listen", "127.0.0.1:0"])
            .args(["--http", "127.0.0.1:0", "--block-interval-secs", "0"])
            .args(["--initial-blocks", &INITIAL_BLOCKS.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--www")
            .arg(data_dir)
            .arg("--dist")
            .arg(data_dir)
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
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Relay { child, http }
    }

    /// The relay's addresses once both listeners are up.
    fn addrs(&self, data_dir: &Path) -> Vec<Multiaddr> {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(data_dir.join("addrs.txt")).unwrap_or_default();
            let addrs: Vec<Multiaddr> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if addrs.iter().any(is_ws) && addrs.iter().any(is_webrtc) {
                return addrs;
            }
            assert!(
                Instant::now() < deadline,
                "relay never wrote both addresses"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM to the relay's pid and waits for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for relay") {
                assert!(status.success(), "relay exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "relay did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
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

fn is_ws(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Ws(_)))
}

fn is_webrtc(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect))
}

fn peer_of(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => panic!("{addr} does not end in /p2p"),
    }
}

fn certhash_of(addr: &Multiaddr) -> String {
    addr.iter()
        .find_map(|p| match p {
            Protocol::Certhash(hash) => Some(format!("{hash:?}")),
            _ => None,
        })
        .expect("webrtc-direct address has a certhash")
}

fn http_get(http: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(http).expect("connect to relay HTTP");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {http}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"));
    response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[derive(NetworkBehaviour)]
struct Client {
    messages: request_response::Behaviour<FrameCodec>,
    probe: request_response::Behaviour<FrameCodec>,
}

fn client() -> Swarm<Client> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let certificate =
        libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng()).expect("certificate");
    let transport = build_transport(&key, certificate).expect("transport");
    let Ok(builder) = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|_| transport);
    builder
        .with_behaviour(|_| Client {
            messages: request_response_behaviour(
                shoal_net::codec::message_protocol(),
                &RequestLimits::default(),
            ),
            probe: request_response_behaviour(
                shoal_net::codec::probe_protocol(),
                &RequestLimits::default(),
            ),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

async fn connect(swarm: &mut Swarm<Client>, addr: &Multiaddr) -> PeerId {
    if is_webrtc(addr) {
        // The native WebRTC transport dials only from a listening socket.
        swarm
            .listen_on("/ip4/127.0.0.1/udp/0/webrtc-direct".parse().unwrap())
            .expect("listen");
        let listening = async {
            while !matches!(
                swarm.select_next_some().await,
                SwarmEvent::NewListenAddr { .. }
            ) {}
        };
        tokio::time::timeout(WAIT, listening)
            .await
            .expect("listening in time");
    }
    swarm.dial(addr.clone()).expect("dial");
    // A WebRTC-direct handshake on a loaded 2-core machine can time out: dial again, at most
    // DIALS times in all, as a client would.
    const DIALS: usize = 3;
    let wait = async {
        let mut dials = 1;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => return peer_id,
                SwarmEvent::OutgoingConnectionError { error, .. } if dials < DIALS => {
                    eprintln!("dial {dials} of {addr} failed ({error}): dialling again");
                    dials += 1;
                    swarm.dial(addr.clone()).expect("dial");
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    panic!("dial {addr}, {DIALS} times: {error}")
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("connect in time")
}

/// Sends `bytes` on the message (`probe == false`) or probe protocol and waits for the answer.
async fn request(swarm: &mut Swarm<Client>, peer: PeerId, bytes: Vec<u8>, probe: bool) -> Vec<u8> {
    let id = if probe {
        swarm.behaviour_mut().probe.send_request(&peer, bytes)
    } else {
        swarm.behaviour_mut().messages.send_request(&peer, bytes)
    };
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(
                    ClientEvent::Messages(request_response::Event::Message { message, .. })
                    | ClientEvent::Probe(request_response::Event::Message { message, .. }),
                ) => {
                    if let RrMessage::Response {
                        request_id,
                        response,
                    } = message
                    {
                        if request_id == id {
                            return response;
                        }
                    }
                }
                SwarmEvent::Behaviour(
                    ClientEvent::Messages(request_response::Event::OutboundFailure {
                        error, ..
                    })
                    | ClientEvent::Probe(request_response::Event::OutboundFailure { error, .. }),
                ) => panic!("request failed: {error}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("answer in time")
}

async fn ask(swarm: &mut Swarm<Client>, peer: PeerId, message: Message) -> Message {
    let answer = request(swarm, peer, wire::encode(&message).unwrap(), false).await;
    wire::decode(&answer).expect("answer decodes")
}

async fn upload_mebibyte(swarm: &mut Swarm<Client>, peer: PeerId) {
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = request(swarm, peer, payload.clone(), true).await;
    assert_eq!(digest, Sha256::digest(&payload).to_vec());
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_serves_chain_proofs_and_large_messages_and_keeps_identity() {
    let (_guard, dir) = data_dir();
    let relay = Relay::start(&dir);
    let addrs = relay.addrs(&dir);
    let ws = addrs.iter().find(|a| is_ws(a)).unwrap().clone();
    let webrtc = addrs.iter().find(|a| is_webrtc(a)).unwrap().clone();

    // The page's view of the relay.
    let json: serde_json::Value =
        serde_json::from_str(&http_get(&relay.http, "/relay-addrs.json")).unwrap();
    assert_eq!(json["network"], "regtest");
    assert_eq!(json["peer_id"], peer_of(&ws).to_string());
    let served: Vec<String> = json["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(served.contains(&ws.to_string()) && served.contains(&webrtc.to_string()));

    let mut swarm = client();
    let peer = connect(&mut swarm, &ws).await;
    assert_eq!(peer, peer_of(&ws));

    // Header sync: genesis plus the initial blocks, linked.
    let Message::Headers {
        request_id: 1,
        start_height: 0,
        tip_height,
        headers,
    } = ask(
        &mut swarm,
        peer,
        Message::GetHeaders {
            request_id: 1,
            start_height: 0,
            max_count: 2000,
        },
    )
    .await
    else {
        panic!("not a Headers answer")
    };
    assert_eq!(headers.len() as u32, INITIAL_BLOCKS + 1);
    // The answer says how far the chain goes (the relay may have mined on since).
    assert!(tip_height >= INITIAL_BLOCKS, "tip_height {tip_height}");
    for pair in headers.windows(2) {
        assert_eq!(pair[1].prev_blockhash, pair[0].block_hash());
    }

    // A block by hash, checked against its header.
    let height = INITIAL_BLOCKS as usize;
    let header: Header = headers[height];
    let Message::BlockData {
        request_id: 2,
        block,
    } = ask(
        &mut swarm,
        peer,
        Message::GetBlock {
            request_id: 2,
            block_hash: header.block_hash(),
        },
    )
    .await
    else {
        panic!("not a BlockData answer")
    };
    let block = Block::decode(&block).expect("block decodes");
    assert_eq!(block.block_hash().0, header.block_hash().0);
    assert!(
        block.txdata.len() > 1,
        "generated blocks carry transactions"
    );

    // A transaction query answered with a Merkle proof that folds to the header's root.
    let pos = block.txdata.len() - 1;
    let txid: Txid = block.txdata[pos].txid();
    let Message::TxAnswer {
        request_id: 3,
        answer,
    } = ask(
        &mut swarm,
        peer,
        Message::TxQuery {
            request_id: 3,
            txid: Hash256(txid.0),
            block_hint: None,
        },
    )
    .await
    else {
        panic!("not a TxAnswer")
    };
    let TxAnswerBody::Found {
        block_hash,
        height: h,
        pos: p,
        branch,
        header: with_header,
        tx: raw_tx,
    } = answer
    else {
        panic!("transaction not found")
    };
    assert_eq!(
        (block_hash, h, p as usize),
        (header.block_hash(), height as u32, pos)
    );
    assert_eq!(with_header, Some(header), "the block's header rides along");
    assert_eq!(
        raw_tx,
        block.txdata[pos].encode(),
        "the transaction rides along"
    );
    let proof = MerkleProof {
        block_hash: chain::BlockHash(block_hash.0),
        height: h,
        pos: p,
        branch: branch.iter().map(|b| chain::Hash256(b.0)).collect(),
    };
    let chain_header = chain::Header::decode(&header.encode()).unwrap();
    proof
        .verify_against_header(txid, &chain_header)
        .expect("proof verifies against our header");
    let mut forged = proof.clone();
    forged.branch[0].0[0] ^= 1;
    assert!(forged.verify_against_header(txid, &chain_header).is_err());
    let unknown = Message::TxQuery {
        request_id: 4,
        txid: Hash256([0x5a; 32]),
        block_hint: None,
    };
    assert!(matches!(
        ask(&mut swarm, peer, unknown).await,
        Message::TxAnswer {
            request_id: 4,
            answer: TxAnswerBody::NotFound
        }
    ));

    // 1 MiB up over WebSocket, its digest back.
    upload_mebibyte(&mut swarm, peer).await;

    // Restart on the same data directory: same peer id, same certificate hash, same chain.
    relay.stop();
    let relay = Relay::start(&dir);
    let again = relay.addrs(&dir);
    let webrtc_again = again.iter().find(|a| is_webrtc(a)).unwrap();
    assert_eq!(peer_of(webrtc_again), peer_of(&webrtc));
    assert_eq!(certhash_of(webrtc_again), certhash_of(&webrtc));
    let ws_again = again.iter().find(|a| is_ws(a)).unwrap().clone();
    let mut swarm = client();
    let peer = connect(&mut swarm, &ws_again).await;
    let Message::Headers {
        headers: headers_again,
        ..
    } = ask(
        &mut swarm,
        peer,
        Message::GetHeaders {
            request_id: 5,
            start_height: 0,
            max_count: 2000,
        },
    )
    .await
    else {
        panic!("not a Headers answer")
    };
    assert_eq!(
        headers_again, headers,
        "the chain survived the restart unchanged"
    );
    relay.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_direct_carries_one_mebibyte_upload() {
    let (_guard, dir) = data_dir();
    let relay = Relay::start(&dir);
    let webrtc = relay.addrs(&dir).into_iter().find(is_webrtc).unwrap();
    let mut swarm = client();
    let peer = connect(&mut swarm, &webrtc).await;
    upload_mebibyte(&mut swarm, peer).await;
    relay.stop();
}

/// The next one-way message the relay sends us (a request on the message protocol), which we
/// acknowledge with an empty response as `shoal_net::node_link` says.
async fn next_message(swarm: &mut Swarm<Client>, from: PeerId) -> Message {
    let wait = async {
        loop {
            if let SwarmEvent::Behaviour(ClientEvent::Messages(
                request_response::Event::Message {
                    peer,
                    message:
                        RrMessage::Request {
                            request, channel, ..
                        },
                    ..
                },
            )) = swarm.select_next_some().await
            {
                assert_eq!(peer, from);
                swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, node_link::ack())
                    .expect("acknowledge");
                return node_link::decode_request(&request).expect("the relay's message decodes");
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("a message in time")
}

/// The relay runs a core node configured as an archive: it greets a new peer with a hello that
/// says "archive", answers a one-way ping with a one-way pong (a request of its own), and
/// serves blocks through the node (storage command → redb → `BlockData` on the held stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_runs_an_archive_node() {
    let (_guard, dir) = data_dir();
    let relay = Relay::start(&dir);
    let addrs = relay.addrs(&dir);
    let ws = addrs.iter().find(|a| is_ws(a)).unwrap().clone();
    let mut swarm = client();
    let peer = connect(&mut swarm, &ws).await;

    // The relay's node says hello first (then pings to measure the round trip).
    let mut greeted = false;
    let mut pinged = false;
    while !(greeted && pinged) {
        match next_message(&mut swarm, peer).await {
            Message::Hello {
                record, cluster, ..
            } => {
                assert!(record.archive, "the relay's node is an archive");
                assert_eq!(cluster, None, "an archive never joins a cluster");
                greeted = true;
            }
            Message::Ping { .. } => pinged = true,
            other => panic!("unexpected first message {other:?}"),
        }
    }

    // A one-way ping is acknowledged with an empty response; the pong comes as a request.
    let ack = request(
        &mut swarm,
        peer,
        node_link::encode_request(&Message::Ping {
            nonce: 77,
            stamp: None,
            shard: None,
        })
        .unwrap(),
        false,
    )
    .await;
    assert_eq!(
        node_link::decode_reply(&ack).unwrap(),
        node_link::Reply::Ack
    );
    let Message::Pong { nonce: 77, .. } = next_message(&mut swarm, peer).await else {
        panic!("the archive node did not answer the ping with a pong")
    };

    // Blocks through the node: every height holds, an unknown hash is not found.
    let Message::Headers { headers, .. } = ask(
        &mut swarm,
        peer,
        Message::GetHeaders {
            request_id: 1,
            start_height: 0,
            max_count: 2000,
        },
    )
    .await
    else {
        panic!("not a Headers answer")
    };
    for (height, header) in headers.iter().enumerate() {
        let answer = ask(
            &mut swarm,
            peer,
            Message::GetBlock {
                request_id: 100 + height as u64,
                block_hash: header.block_hash(),
            },
        )
        .await;
        let Message::BlockData { request_id, block } = answer else {
            panic!("height {height}: {answer:?}")
        };
        assert_eq!(request_id, 100 + height as u64);
        assert_eq!(
            Block::decode(&block).unwrap().block_hash().0,
            header.block_hash().0
        );
    }
    let answer = ask(
        &mut swarm,
        peer,
        Message::GetBlock {
            request_id: 9,
            block_hash: wire::BlockHash([0xab; 32]),
        },
    )
    .await;
    assert_eq!(answer, Message::BlockNotFound { request_id: 9 });
    relay.stop();
}
