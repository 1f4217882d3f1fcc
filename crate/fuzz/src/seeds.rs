//! The seed corpus: a few valid inputs per target, made by the encoders themselves, so that
//! fuzzing starts from bytes that get past the first checks.
//!
//! `cargo run -p shoal-fuzz --example write-seeds` writes them to `fuzz/seeds/<target>/`, where
//! cargo-fuzz campaigns start from and `cargo test` reads them; a test fails when the files
//! and [`seeds`] disagree (an encoder changed: write them again). Beside them, `finding-*`
//! files keep the input of every finding of the campaigns (FUZZING.md), so that `cargo test`
//! runs each again.

use shoal_core::chain::generate::{generate_chain, GenerateConfig};
use shoal_core::chain::{
    Block, BlockHash, Hash256, Header, MerkleProof, OutPoint, Transaction, TxIn, TxOut,
};
use shoal_core::chain_seam::synthetic_chain;
use shoal_core::cluster::cluster_id;
use shoal_core::node::resume::{encode_record, SavedMembership};
use shoal_core::node::NodeId;
use shoal_core::serve::txindex::{KvOp, TxIndex, TxIndexConfig};
use shoal_core::wire::{
    self, ClusterGenesis, MemberInfo, Message, NodeRecord, ShardReport, TxAnswerBody, View,
    ViewStamp,
};

use crate::mutate::Rng;

/// The seeds of `target`: (file name, bytes). Empty for an unknown target.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |items: Vec<Vec<u8>>, prefix: &str| -> Vec<(String, Vec<u8>)> {
        items
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| (format!("{prefix}-{i}"), bytes))
            .collect()
    };
    match target {
        "block" => named(blocks().iter().map(Block::encode).collect(), "block"),
        "transaction" => named(
            blocks()
                .iter()
                .flat_map(|b| b.txdata.iter().take(3).map(Transaction::encode))
                .collect(),
            "tx",
        ),
        "header" => named(
            blocks()
                .iter()
                .map(|b| b.header.encode().to_vec())
                .collect(),
            "header",
        ),
        "merkle_proof" => named(proofs().iter().map(MerkleProof::encode).collect(), "proof"),
        "wire_message" => named(
            messages()
                .iter()
                .map(|m| wire::encode(m).expect("a sample message encodes"))
                .collect(),
            "message",
        ),
        "header_chain" => named(header_chain_inputs(), "chain"),
        "kv_records" => named(kv_inputs(), "records"),
        "net_codecs" => named(net_inputs(), "net"),
        "webrtc_signaling" => named(signaling_inputs(), "signaling"),
        "block_file" => named(block_files(), "file"),
        "relay_store" => named(store_inputs(), "store"),
        "relay_identity" => named(identity_inputs(), "identity"),
        "node" => named(node_inputs(), "node"),
        _ => Vec::new(),
    }
}

/// Small blocks: a hand-made one with a segwit spend, and two of a generated regtest chain
/// (real proof of work, BIP34 heights, a witness commitment).
fn blocks() -> Vec<Block> {
    let coinbase = Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig: vec![0x51, 0x51],
            sequence: u32::MAX,
            witness: Default::default(),
        }],
        output: vec![TxOut {
            value: 1,
            script_pubkey: vec![0x51],
        }],
        lock_time: 0,
    };
    let mut spend = coinbase.clone();
    spend.input[0].previous_output.vout = 0;
    spend.input[0].witness = vec![vec![1, 2], vec![]].into();
    let mut block = Block {
        header: Header::default(),
        txdata: vec![coinbase, spend.clone(), spend],
    };
    block.txdata[2].lock_time = 1;
    block.header.merkle_root = block.compute_merkle_root().0;
    let mut out = vec![block];
    out.extend(
        generate_chain(&GenerateConfig {
            blocks: 2,
            txs_per_block: 2,
            ..Default::default()
        })
        .expect("a regtest chain"),
    );
    out
}

fn proofs() -> Vec<MerkleProof> {
    let block = &blocks()[0];
    let txids = block.txids();
    (0..txids.len() as u32)
        .map(|pos| MerkleProof::build(block.block_hash(), 7, &txids, pos).expect("a proof"))
        .collect()
}

fn view() -> View {
    let ids: Vec<NodeId> = {
        let mut ids: Vec<NodeId> = (0..3).map(NodeId::from_seed).collect();
        ids.sort();
        ids
    };
    let genesis = ClusterGenesis {
        proposer: ids[1],
        generation: 0,
        founders: ids.clone(),
    };
    View {
        cluster: cluster_id(&genesis),
        genesis,
        epoch: 2,
        members: ids
            .iter()
            .enumerate()
            .map(|(i, id)| MemberInfo {
                id: *id,
                address: format!("/sim/{i}"),
                segment: i as u32,
                capacity_bytes: 1 << 30,
                device: i as u64 + 1,
            })
            .collect(),
        expires_in_ms: 60_000,
    }
}

/// One message of most kinds.
fn messages() -> Vec<Message> {
    let view = view();
    let stamp = ViewStamp {
        cluster: view.cluster,
        epoch: view.epoch,
        members: 3,
        digest: shoal_core::cluster::view_digest(&view.members),
    };
    let record = NodeRecord {
        blocks_served: 12,
        capacity_bytes: 1 << 30,
        segment: 1,
        device: 7,
        archive: false,
    };
    let block = &blocks()[0];
    let proof = proofs().remove(1);
    let mut found = TxAnswerBody::found(proof, block.txdata[1].encode());
    if let TxAnswerBody::Found { header, .. } = &mut found {
        *header = Some(block.header);
    }
    vec![
        Message::Hello {
            record: record.clone(),
            cluster: Some(view.cluster),
            open_slots: 2,
        },
        Message::Ping {
            nonce: 300,
            stamp: Some(stamp),
            shard: Some(ShardReport {
                held_blocks: 10,
                missing_blocks: 1,
                stored_bytes: 4096,
            }),
        },
        Message::Invite {
            invite_id: 5,
            address: "/sim/1".to_owned(),
            record: record.clone(),
            cluster: None,
        },
        Message::InviteReply {
            invite_id: 5,
            accept: true,
            address: "/sim/2".to_owned(),
            record,
        },
        Message::View(view),
        Message::GetHeaders {
            request_id: 1,
            start_height: 1,
            max_count: 2000,
        },
        Message::Headers {
            request_id: 1,
            start_height: 1,
            tip_height: 2,
            headers: blocks()[1..].iter().map(|b| b.header).collect(),
        },
        Message::GetBlock {
            request_id: 2,
            block_hash: block.block_hash(),
        },
        Message::BlockData {
            request_id: 2,
            block: block.encode(),
        },
        Message::TxQuery {
            request_id: 3,
            txid: Hash256(block.txdata[1].txid().0),
            block_hint: Some(block.block_hash()),
        },
        Message::TxAnswer {
            request_id: 3,
            answer: found,
        },
        Message::BlockAnnounce {
            header: block.header,
        },
        Message::ShardHeld { view: stamp },
    ]
}

/// Header batches (mode 0: a line of headers, some forks) and a header file (mode 1: a
/// regtest chain from genesis).
fn header_chain_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(16);
    let mut inputs = Vec::new();
    for len in [64, 256, 1024] {
        let mut input = vec![0, 0, 0, 1, 0, 15, 1];
        input.extend((0..len).map(|_| rng.next_u64() as u8));
        inputs.push(input);
    }
    let mut file = vec![1, 0, 0, 0, 0x10];
    let genesis = shoal_core::chain::ChainParams::REGTEST.genesis;
    file.extend(genesis.encode());
    for block in &blocks()[1..] {
        file.extend(block.header.encode());
    }
    inputs.push(file);
    inputs
}

/// A transaction-index record and a membership record, in the target's op format.
fn kv_inputs() -> Vec<Vec<u8>> {
    let block = &blocks()[0];
    let mut index = TxIndex::new(TxIndexConfig::default());
    let ops = index.add_block(block);
    let KvOp::Put { value, .. } = &ops[0] else {
        unreachable!("indexing a block writes its record")
    };
    let mut index_record = vec![63, 0, 1];
    index_record.extend_from_slice(&block.block_hash().0);
    index_record.extend_from_slice(&(value.len() as u16).to_le_bytes());
    index_record.extend_from_slice(value);
    index_record.push(0);
    index_record.push(2); // then remove it
    index_record.push(0);
    let saved = SavedMembership {
        view: view(),
        saved_at_ms: 1_000,
        expires_at_ms: 61_000,
    };
    let record = encode_record(&saved).expect("a record");
    let mut membership = vec![63, 1];
    membership.extend_from_slice(&(record.len() as u16).to_le_bytes());
    membership.extend_from_slice(&record);
    membership.push(0);
    vec![index_record, membership]
}

fn net_inputs() -> Vec<Vec<u8>> {
    let peers: Vec<libp2p::PeerId> = (1..=3u8)
        .map(|i| {
            let mut key = [i; 32];
            let secret = libp2p::identity::ed25519::SecretKey::try_from_bytes(&mut key)
                .expect("a 32-byte key");
            let keypair: libp2p::identity::Keypair =
                libp2p::identity::ed25519::Keypair::from(secret).into();
            keypair.public().to_peer_id()
        })
        .collect();
    let mut answer = vec![0];
    answer.extend(shoal_net::directory::encode_peers(&peers));
    let mut lookup = vec![1];
    lookup.extend(shoal_net::directory::encode_lookup("regtest").expect("a namespace"));
    let addrs: Vec<libp2p::Multiaddr> = [
        "/ip4/10.77.0.1/tcp/9090/ws",
        "/ip4/10.77.0.1/udp/9091/webrtc-direct",
    ]
    .iter()
    .map(|a| {
        let addr: libp2p::Multiaddr = a.parse().expect("a multiaddr");
        addr.with(libp2p::multiaddr::Protocol::P2p(peers[0]))
    })
    .collect();
    let mut address = vec![2];
    address.extend(shoal_net::node_link::join_addresses(&addrs).into_bytes());
    let message = wire::encode(&messages()[0]).expect("a message");
    let mut frame = vec![3, 4];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(&message);
    let mut reply = vec![4];
    reply.extend(&message);
    vec![answer, lookup, address, frame, reply]
}

/// A browser's offer and answer (shortened), candidates as js-libp2p sends them and the end of
/// candidates: as one stream, as bodies, and as candidate JSON.
fn signaling_inputs() -> Vec<Vec<u8>> {
    use shoal_net::signaling::{self, IceCandidate, Kind, Message};
    let sdp = |setup: &str| {
        format!(
            "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:4ZcD\r\na=ice-pwd:2/1muCWoOi3uLifh0NuRHlX2\r\na=ice-options:trickle\r\n\
             a=fingerprint:sha-256 A8:17:77:1E:02:7E:D1:2B:53:92:70:A6:8E:F9:02:CC:21:72:3A:92:5D:F4:97:5F:27:C4:5E:75:D4:F4:31:89\r\n\
             a=setup:{setup}\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
        )
    };
    let candidate = IceCandidate {
        candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 4ZcD network-cost 999".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: Some("4ZcD".into()),
    };
    let messages = [
        Message {
            kind: Kind::SdpOffer,
            data: sdp("actpass"),
        },
        Message {
            kind: Kind::SdpAnswer,
            data: sdp("active"),
        },
        Message {
            kind: Kind::IceCandidate,
            data: signaling::candidate_to_data(&candidate),
        },
        Message {
            kind: Kind::IceCandidate,
            data: signaling::END_OF_CANDIDATES_DATA.into(),
        },
    ];
    let mut stream = vec![0];
    for message in &messages {
        stream.extend(signaling::encode(message));
    }
    let mut out = vec![stream];
    for message in &messages[1..] {
        let encoded = signaling::encode(message);
        // The body: after the length prefix (one or two bytes here).
        let prefix = encoded
            .iter()
            .position(|b| b & 0x80 == 0)
            .expect("a prefix")
            + 1;
        let mut body = vec![1];
        body.extend(&encoded[prefix..]);
        out.push(body);
    }
    let mut json = vec![2];
    json.extend(signaling::candidate_to_data(&candidate).into_bytes());
    out.push(json);
    out
}

fn block_files() -> Vec<Vec<u8>> {
    let blocks = blocks();
    let raw = blocks[1].encode();
    let hex: Vec<u8> = raw
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect();
    let mut blk = Vec::new();
    for block in &blocks[1..] {
        shoal_relay::blockfile::write_blk_record(
            &mut blk,
            [0xfa, 0xbf, 0xb5, 0xda],
            &block.encode(),
        )
        .expect("written to memory");
    }
    blk.extend([0; 8]);
    vec![raw, hex, blk]
}

/// Records for an archive and for a member store: true headers and blocks at their heights,
/// a damaged block, node records, and a hostile byte total.
fn store_inputs() -> Vec<Vec<u8>> {
    let archive = vec![
        0, // archive
        0, 1, 2, 1, // header: height 2, the chain's header
        1, 1, 0, 1, // height of block 1: 1
        2, 1, 1, 3, // block 1 under its hash
        2, 2, 2, 0, 5, 9, // block 2 damaged at byte 5
        3, 4, b't', b'x', b'i', b'/', 2, 0, 1, 2, // a node record
        5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, // a hostile byte total
    ];
    let member = vec![
        1, // member
        0, 1, 1, 1, // header at height 1
        0, 1, 3, 2, // header at height 3 (a gap)
        1, 2, 0, 2, // height of block 2
        2, 2, 2, 3, // block 2 under its hash
        4, 3, b'k', b'e', b'y', 7, // an oversized record
    ];
    vec![archive, member]
}

/// Runs of mixed inputs, from the fuzzer's own random stream.
fn node_inputs() -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    for (seed, len) in [(1u64, 128usize), (2, 512), (3, 2048)] {
        let mut rng = Rng::new(seed);
        inputs.push((0..len).map(|_| rng.next_u64() as u8).collect());
    }
    // Connect three peers, let formation run, answer everything faithfully, repeatedly.
    let mut formed = vec![
        0, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    formed.extend([0, 0, 0, 0, 0, 0, 0, 0, 20]);
    for peer in [40u8, 41, 42] {
        formed.extend([4, peer]);
    }
    for _ in 0..40 {
        formed.extend([6, 0xd0, 0x07, 1, 1, 0, 1, 9, 0, 7]);
    }
    inputs.push(formed);
    let _ = BlockHash::default();
    let (_, raw) = synthetic_chain(2, 40);
    let mut block = vec![
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 24,
    ];
    block.extend([12, 1, 2]);
    block.extend([0, 50, 0]);
    block.extend(&raw[1][..raw[1].len().min(200)]);
    inputs.push(block);
    inputs
}

/// A real key and certificate as `shoal-relay serve` made them (`serve::identity::
/// load_or_create`), in the target's format: both files, and the key alone (the certificate is
/// then made). A certificate cannot be made twice the same, so these were made once and are
/// kept below.
fn identity_inputs() -> Vec<Vec<u8>> {
    let key = &IDENTITY_KEY[..];
    let mut both = vec![0];
    both.extend((key.len() as u16).to_le_bytes());
    both.extend(key);
    both.extend(IDENTITY_CERT.as_bytes());
    let mut key_only = vec![2];
    key_only.extend((key.len() as u16).to_le_bytes());
    key_only.extend(key);
    vec![both, key_only]
}

/// An ed25519 key in libp2p's protobuf encoding, as the relay's `identity.key` holds it.
const IDENTITY_KEY: [u8; 68] = [
    8, 1, 18, 64, 213, 167, 166, 156, 20, 15, 139, 168, 131, 132, 178, 94, 207, 39, 172, 77, 5,
    100, 37, 65, 215, 250, 77, 39, 146, 182, 72, 75, 223, 96, 151, 184, 254, 106, 216, 195, 63,
    189, 37, 234, 152, 202, 62, 174, 116, 90, 136, 138, 228, 247, 222, 76, 201, 152, 29, 233, 56,
    123, 44, 86, 223, 134, 255, 170,
];

/// A WebRTC certificate and its key in PEM, as the relay's `webrtc-cert.pem` holds it.
const IDENTITY_CERT: &str = concat!(
    "-----BEGIN EXPIRES-----\r\n",
    "APfhng8AAAA=\r\n",
    "-----END EXPIRES-----\r\n",
    "
-----BEGIN PRIVATE_KEY-----\r\n",
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgOvka0hs6BwUUuyI6\r\n",
    "2AmM3eL+UtHh9eLk5jDFXQTSz0mhRANCAAQSbFEzr6T8VdKLx90fvmZN7G9UBRwc\r\n",
    "UVb359RG88KYmno4VqjiCk7ee4ixgM0o2fv9OMe3jFKc5HXuFVxDjrBm\r\n",
    "-----END PRIVATE_KEY-----\r\n",
    "\r\n",
    "-----BEGIN CERTIFICATE-----\r\n",
    "MIIBZjCCAQugAwIBAgIUZdX6EG382ACoU+YV1g7srrSWEMQwCgYIKoZIzj0EAwIw\r\n",
    "ITEfMB0GA1UEAwwWcmNnZW4gc2VsZiBzaWduZWQgY2VydDAgFw03NTAxMDEwMDAw\r\n",
    "MDBaGA80MDk2MDEwMTAwMDAwMFowITEfMB0GA1UEAwwWcmNnZW4gc2VsZiBzaWdu\r\n",
    "ZWQgY2VydDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABBJsUTOvpPxV0ovH3R++\r\n",
    "Zk3sb1QFHBxRVvfn1EbzwpiaejhWqOIKTt57iLGAzSjZ+/04x7eMUpzkde4VXEOO\r\n",
    "sGajHzAdMBsGA1UdEQQUMBKCEFRVSEVJVkpud29VRU9meXIwCgYIKoZIzj0EAwID\r\n",
    "SQAwRgIhAPWAoVZM0qr+FUMnoiHyLg6GD7lf8JlB5hDKfiyi5b4YAiEA5aY8ssMT\r\n",
    "zcSrEK0OaX/JBFoXvdmiI9TvpTqN3gbxeZw=\r\n",
    "-----END CERTIFICATE-----\r\n",
);
