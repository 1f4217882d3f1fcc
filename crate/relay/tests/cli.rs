//! The offline tools, run as the built binary: generate → inspect → prove → headers verify on
//! a regtest chain, the real mainnet block 702861 as raw bytes, hex and `blk*.dat` records,
//! and every malformed input failing with a non-zero exit and a one-line reason.
//!
//! Proofs and block facts are checked against values computed independently with the
//! `bitcoin` crate, not against the core that produced them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bitcoin::consensus::deserialize;
use bitcoin::hashes::{sha256d, Hash};
use serde_json::Value;

const BLOCK_702861_HASH: &str = "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae";
const REGTEST_GENESIS_HASH: &str =
    "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
const MAINNET_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];

/// A scratch directory for one test, under Cargo's per-target temporary directory.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-relay"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `args --json`, expects success and returns the parsed output.
fn json_ok(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let r = run(&all);
    assert_eq!(r.code, 0, "{args:?} failed: {}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

/// Expects `args` to fail, in text and in `--json` mode, with exactly one line on standard
/// error containing `reason`, and a JSON `{"error": …}` with `--json`. Returns the JSON.
fn fails(args: &[&str], reason: &str) -> Value {
    let r = run(args);
    assert_ne!(r.code, 0, "{args:?} succeeded: {}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
    assert!(
        r.stderr.contains(reason),
        "{args:?}: {:?} lacks {reason:?}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{args:?} printed {:?}", r.stdout);

    let mut all = args.to_vec();
    all.push("--json");
    let r = run(&all);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {:?}", r.stdout);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains(reason), "{v}");
    v
}

fn display_hex(internal: [u8; 32]) -> String {
    let mut b = internal;
    b.reverse();
    hex::encode(b)
}

/// The Electrum-style branch for `pos`, computed here from the txids with the `bitcoin`
/// crate's hash: sibling at each level, the last node paired with itself on odd levels.
fn reference_branch(txids: &[[u8; 32]], pos: usize) -> Vec<String> {
    let mut level = txids.to_vec();
    let mut index = pos;
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = *level.get(index ^ 1).unwrap_or(&level[index]);
        branch.push(display_hex(sibling));
        level = level
            .chunks(2)
            .map(|pair| {
                let right = pair.get(1).unwrap_or(&pair[0]);
                sha256d::Hash::hash(&[pair[0], *right].concat()).to_byte_array()
            })
            .collect();
        index /= 2;
    }
    branch
}

/// Splits `blk*.dat` bytes into blocks with the `bitcoin` crate (not the relay's reader).
fn blk_blocks(bytes: &[u8]) -> Vec<bitcoin::Block> {
    let mut blocks = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 && rest[..4] != [0; 4] {
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        blocks.push(deserialize(&rest[8..8 + len]).unwrap());
        rest = &rest[8 + len..];
    }
    blocks
}

fn txids_of(block: &bitcoin::Block) -> Vec<[u8; 32]> {
    block
        .txdata
        .iter()
        .map(|tx| tx.compute_txid().to_byte_array())
        .collect()
}

/// Checks `block prove` for the transaction at `pos` against the reference branch.
fn check_proof(file: &str, block: &bitcoin::Block, pos: usize, height: Option<u64>) {
    let txids = txids_of(block);
    let txid = display_hex(txids[pos]);
    let proof = json_ok(&["block", "prove", file, &txid]);
    assert_eq!(proof["block_hash"], block.block_hash().to_string());
    assert_eq!(proof["pos"], pos as u64);
    match height {
        Some(h) => assert_eq!(proof["block_height"], h),
        None => assert!(proof.get("block_height").is_none()),
    }
    let merkle: Vec<String> = proof["merkle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(merkle, reference_branch(&txids, pos), "pos {pos}");
}

/// generate → inspect (all valid, facts as the `bitcoin` crate sees them) → prove several
/// transactions → headers verify (from genesis and from height 1), and a corrupted header
/// fails at its height.
#[test]
fn generated_chain_round_trip() {
    let dir = scratch("round-trip");
    let chain = dir.join("chain.dat");
    let headers = dir.join("headers.bin");
    let (chain_s, headers_s) = (chain.to_str().unwrap(), headers.to_str().unwrap());
    let report = json_ok(&[
        "chain",
        "generate",
        "--blocks",
        "12",
        "--txs-per-block",
        "6",
        "--seed",
        "7",
        "--out",
        chain_s,
        "--headers-out",
        headers_s,
    ]);
    assert_eq!(report["block_count"], 13);
    assert_eq!(report["tip_height"], 12);
    assert!(!dir.join("chain.dat.partial").exists());

    let theirs = blk_blocks(&fs::read(&chain).unwrap());
    assert_eq!(theirs.len(), 13);
    assert_eq!(report["tip_hash"], theirs[12].block_hash().to_string());

    let inspect = json_ok(&["block", "inspect", chain_s, "--network", "regtest"]);
    assert_eq!(inspect["network"], "regtest");
    assert_eq!(inspect["block_count"], 13);
    let blocks = inspect["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["hash"], REGTEST_GENESIS_HASH);
    assert_eq!(blocks[0]["witness_commitment"], "absent");
    assert!(blocks[0].get("height").is_none(), "genesis is version 1");
    for (i, (b, t)) in blocks.iter().zip(&theirs).enumerate() {
        assert_eq!(b["hash"], t.block_hash().to_string());
        assert_eq!(b["prev_hash"], t.header.prev_blockhash.to_string());
        assert_eq!(b["merkle_root"], t.header.merkle_root.to_string());
        assert_eq!(b["merkle_root_valid"], true);
        assert_eq!(b["valid"], true, "{b}");
        assert_eq!(b["pow_valid"], true);
        assert_eq!(b["tx_count"], t.txdata.len());
        assert_eq!(b["size"], t.total_size());
        assert_eq!(b["weight"], t.weight().to_wu());
        assert!(t.check_merkle_root() && t.check_witness_commitment());
        if i > 0 {
            assert_eq!(b["witness_commitment"], "valid");
            assert_eq!(b["height"], i);
        }
    }

    for (height, pos) in [(2, 0), (2, 6), (5, 3), (12, 1), (12, 6)] {
        check_proof(chain_s, &theirs[height], pos, Some(height as u64));
    }

    let all = json_ok(&["headers", "verify", headers_s, "--network", "regtest"]);
    assert_eq!(all["count"], 13);
    assert_eq!(all["tip_height"], 12);
    assert_eq!(all["tip_hash"], theirs[12].block_hash().to_string());
    // Regtest work is 2 per header, genesis included: 26 = 0x1a.
    assert_eq!(all["total_work"], format!("{:064x}", 26));

    let bytes = fs::read(&headers).unwrap();
    let from_one = dir.join("from-height-1.bin");
    fs::write(&from_one, &bytes[80..]).unwrap();
    let from_one_s = from_one.to_str().unwrap();
    let part = json_ok(&["headers", "verify", from_one_s]);
    assert_eq!(part["count"], 12);
    assert_eq!(part["tip_height"], 12);
    assert_eq!(part["total_work"], all["total_work"]);
    let as_hex = dir.join("headers.hex");
    fs::write(&as_hex, hex::encode(&bytes[80..]) + "\n").unwrap();
    assert_eq!(
        json_ok(&["headers", "verify", as_hex.to_str().unwrap()]),
        part
    );

    // Version 1 at height 7: obsolete (BIP34/65/66) or, with the hash changed, bad proof
    // of work; either way height 7 fails and the later headers are never reached.
    let mut corrupt = bytes.clone();
    corrupt[7 * 80..7 * 80 + 4].copy_from_slice(&1i32.to_le_bytes());
    let corrupt_path = dir.join("corrupt.bin");
    fs::write(&corrupt_path, &corrupt).unwrap();
    let error = fails(
        &["headers", "verify", corrupt_path.to_str().unwrap()],
        "header at height 7 is invalid",
    );
    assert_eq!(error["height"], 7);

    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn generation_is_deterministic_from_the_seed() {
    let dir = scratch("determinism");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    for (name, seed) in [("a.dat", "3"), ("b.dat", "3"), ("c.dat", "4")] {
        let out = path(name);
        json_ok(&[
            "chain", "generate", "--blocks", "6", "--seed", seed, "--out", &out,
        ]);
    }
    let read = |name: &str| fs::read(dir.join(name)).unwrap();
    assert_eq!(read("a.dat"), read("b.dat"));
    assert_ne!(read("a.dat"), read("c.dat"));
    let _ = fs::remove_dir_all(&dir);
}

/// Block 702861 as raw bytes, as hex text with line breaks, and as `blk*.dat` records with
/// zero padding: the same facts from all three.
#[test]
fn real_block_702861_in_every_format() {
    let dir = scratch("702861");
    let raw = bitcoin_test_data::blocks::mainnet_702861();
    let theirs: bitcoin::Block = deserialize(raw).unwrap();

    let raw_path = dir.join("702861.bin");
    fs::write(&raw_path, raw).unwrap();
    let hex_path = dir.join("702861.hex");
    let text: Vec<String> = hex::encode(raw)
        .as_bytes()
        .chunks(100)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    fs::write(&hex_path, text.join("\n") + "\n").unwrap();
    let blk_path = dir.join("blk00000.dat");
    let mut framed = MAINNET_MAGIC.to_vec();
    framed.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    framed.extend_from_slice(raw);
    framed.extend_from_slice(&[0; 1000]);
    fs::write(&blk_path, &framed).unwrap();

    for (path, format) in [
        (&raw_path, "raw block, binary"),
        (&hex_path, "raw block, hex"),
        (&blk_path, "blk (mainnet magic), binary"),
    ] {
        let file = path.to_str().unwrap();
        let v = json_ok(&["block", "inspect", file]);
        assert_eq!(v["format"], format);
        assert_eq!(v["block_count"], 1);
        let b = &v["blocks"][0];
        assert_eq!(b["hash"], BLOCK_702861_HASH);
        assert_eq!(b["height"], 702_861);
        assert_eq!(b["merkle_root_valid"], true);
        assert_eq!(b["witness_commitment"], "valid");
        assert_eq!(b["tx_count"], 2500);
        assert_eq!(b["size"], raw.len());
        assert_eq!(b["weight"], theirs.weight().to_wu());
        assert_eq!(b["valid"], true);

        let text = run(&["block", "inspect", file]);
        assert_eq!(text.code, 0);
        assert!(text.stdout.contains(BLOCK_702861_HASH));
        assert!(text.stdout.contains("702861"));
    }
    let blk_s = blk_path.to_str().unwrap();
    json_ok(&["block", "inspect", blk_s, "--network", "mainnet"]);
    for pos in [0, 1, 1234, 2499] {
        check_proof(blk_s, &theirs, pos, Some(702_861));
    }
    check_proof(hex_path.to_str().unwrap(), &theirs, 777, Some(702_861));
    let _ = fs::remove_dir_all(&dir);
}

/// Every malformed input exits non-zero with a one-line reason, in text and JSON modes.
#[test]
fn malformed_inputs_fail_with_one_line_reasons() {
    let dir = scratch("malformed");
    let raw = bitcoin_test_data::blocks::mainnet_702861();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let good = write("good.bin", raw);
    let empty = write("empty.bin", b"");
    let blank = write("blank.hex", b"  \n\n");
    let truncated = write("truncated.bin", &raw[..raw.len() / 2]);
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let garbage = write("garbage.bin", &garbage);
    let mut bad_hex = hex::encode(&raw[..1000]);
    bad_hex.replace_range(500..501, "z");
    let bad_hex = write("bad.hex", bad_hex.as_bytes());
    let odd_hex = write("odd.hex", &hex::encode(&raw[..1000]).as_bytes()[..1999]);
    let mut framed = MAINNET_MAGIC.to_vec();
    framed.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    framed.extend_from_slice(raw);
    let mut two_magics = framed.clone();
    two_magics.extend_from_slice(&[0xfa, 0xbf, 0xb5, 0xda, 81, 0, 0, 0]);
    two_magics.extend_from_slice(&[1; 81]);
    let two_magics = write("two-magics.dat", &two_magics);
    let unknown_magic = write(
        "unknown-magic.dat",
        &[&[1, 2, 3, 4][..], &framed[4..]].concat(),
    );
    let short_record = write("short-record.dat", &framed[..framed.len() - 10]);
    let blk = write("blk.dat", &framed);
    let headers_odd = write("headers-odd.bin", &[0u8; 170]);
    let absent = "0000000000000000000000000000000000000000000000000000000000000001";

    fails(&["block", "inspect", &empty], "the file is empty");
    fails(&["block", "inspect", &blank], "the file is empty");
    fails(&["block", "inspect", &truncated], "not a block");
    fails(&["block", "inspect", &garbage], "not a block");
    fails(&["block", "inspect", &bad_hex], "'z' at byte 500");
    fails(&["block", "inspect", &odd_hex], "odd number");
    fails(&["block", "inspect", &two_magics], "blk record 1");
    fails(&["block", "inspect", &unknown_magic], "not a block");
    fails(
        &["block", "inspect", &short_record],
        "blk record 0 at byte 0: length",
    );
    fails(
        &["block", "inspect", &blk, "--network", "regtest"],
        "wrong network magic",
    );
    fails(
        &["block", "inspect", &dir.join("missing").to_string_lossy()],
        "cannot read the file",
    );
    fails(
        &["block", "prove", &good, absent],
        "is not in the 1 block(s)",
    );
    fails(&["block", "prove", &good, "1234"], "invalid txid \"1234\"");
    fails(
        &["block", "prove", &good, &"g".repeat(64)],
        "invalid hexadecimal character",
    );
    fails(&["block", "prove", &garbage, absent], "not a block");
    fails(
        &["headers", "verify", &headers_odd],
        "not a whole number of 80-byte headers",
    );
    fails(&["headers", "verify", &empty], "the file is empty");
    fails(&["headers", "verify", &good], "not a whole number");
    fails(&["block", "frobnicate"], "unrecognized subcommand");
    fails(
        &["block", "inspect", &good, "--network", "moon"],
        "invalid value 'moon'",
    );
    fails(
        &[
            "chain",
            "generate",
            "--blocks",
            "1",
            "--target-block-size",
            "0",
            "--out",
            &empty,
        ],
        "--target-block-size",
    );
    let missing_dir = dir.join("no-such-dir").join("chain.dat");
    fails(
        &[
            "chain",
            "generate",
            "--blocks",
            "1",
            "--out",
            missing_dir.to_str().unwrap(),
        ],
        "cannot create",
    );
    assert!(!dir.join("no-such-dir").exists());
    let _ = fs::remove_dir_all(&dir);
}

/// A block whose transactions no longer match its Merkle root, and one whose witness no
/// longer matches its commitment: inspect says so (and exits 0: reporting is its job);
/// prove refuses to prove from a block that does not match its root.
#[test]
fn inspect_reports_broken_blocks_and_prove_refuses_them() {
    let dir = scratch("broken");
    let chain = dir.join("chain.dat");
    json_ok(&[
        "chain",
        "generate",
        "--blocks",
        "3",
        "--txs-per-block",
        "8",
        "--seed",
        "11",
        "--out",
        chain.to_str().unwrap(),
    ]);
    let block = blk_blocks(&fs::read(&chain).unwrap()).remove(3);

    let mut bad_merkle = block.clone();
    let last = bad_merkle.txdata.len() - 1;
    bad_merkle.txdata[last].lock_time = bitcoin::absolute::LockTime::from_consensus(999);
    let bad_merkle_path = dir.join("bad-merkle.bin");
    fs::write(&bad_merkle_path, bitcoin::consensus::serialize(&bad_merkle)).unwrap();
    let v = json_ok(&["block", "inspect", bad_merkle_path.to_str().unwrap()]);
    let b = &v["blocks"][0];
    assert_eq!(b["merkle_root_valid"], false);
    assert_eq!(b["valid"], false);
    assert!(b["error"]
        .as_str()
        .unwrap()
        .contains("merkle root mismatch"));
    let txid = display_hex(bad_merkle.txdata[last].compute_txid().to_byte_array());
    fails(
        &["block", "prove", bad_merkle_path.to_str().unwrap(), &txid],
        "do not match its Merkle root",
    );

    let mut bad_witness = block.clone();
    let segwit = (1..bad_witness.txdata.len())
        .find(|&i| !bad_witness.txdata[i].input[0].witness.is_empty())
        .expect("a segwit spend");
    bad_witness.txdata[segwit].input[0].witness =
        bitcoin::Witness::from_slice(&[vec![0x30; 71], vec![0x02; 33]]);
    let bad_witness_path = dir.join("bad-witness.bin");
    fs::write(
        &bad_witness_path,
        bitcoin::consensus::serialize(&bad_witness),
    )
    .unwrap();
    let v = json_ok(&["block", "inspect", bad_witness_path.to_str().unwrap()]);
    let b = &v["blocks"][0];
    assert_eq!(b["merkle_root_valid"], true);
    assert_eq!(b["witness_commitment"], "invalid");
    assert!(b["witness_commitment_error"]
        .as_str()
        .unwrap()
        .contains("mismatch"));
    assert_eq!(b["valid"], false);
    let _ = fs::remove_dir_all(&dir);
}

/// `serve`'s role flags: each combination that cannot work fails before anything is opened,
/// with a one-line reason naming the flag, and leaves the data directory unmade.
#[test]
fn serve_refuses_flags_that_do_not_fit_its_role() {
    let dir = scratch("serve-roles");
    let data = dir.join("data");
    let data_s = data.to_str().unwrap();
    let archive =
        "/ip4/127.0.0.1/tcp/9/ws/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    let serve = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["serve", "--data-dir", data_s, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(&["--http", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let cases: [(Vec<String>, &str); 19] = [
        (
            serve(&["--role", "member"]),
            "a member relay needs at least one --peer",
        ),
        (
            serve(&["--role", "member", "--peer", archive, "--import", "x.dat"]),
            "--import is an archive relay's: a member relay has no block source",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--initial-blocks",
                "5",
            ]),
            "--initial-blocks is an archive relay's",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--block-interval-secs",
                "1",
            ]),
            "--block-interval-secs is an archive relay's",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--txs-per-block",
                "1",
            ]),
            "--txs-per-block is an archive relay's",
        ),
        (
            serve(&["--peer", "/ip4/127.0.0.1/tcp/9/ws"]),
            "must end in /p2p/<peer id>",
        ),
        (
            serve(&["--cluster-size", "4"]),
            "--cluster-size is a member relay's",
        ),
        (
            serve(&["--heartbeat-interval-ms", "500"]),
            "--heartbeat-interval-ms is a member relay's",
        ),
        (
            serve(&["--capacity-bytes", "1000000"]),
            "--capacity-bytes is a member relay's",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--capacity-bytes",
                "0",
            ]),
            "invalid value '0' for '--capacity-bytes",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--heartbeat-interval-ms",
                "500",
                "--offline-after-ms",
                "500",
            ]),
            "--offline-after-ms 500: must exceed the heartbeat interval (500 ms)",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--heartbeat-interval-ms",
                "5",
            ]),
            "invalid value '5' for '--heartbeat-interval-ms",
        ),
        (
            serve(&["--target-block-size", "100-50"]),
            "100-50: the smaller size comes first",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--target-block-size",
                "1000",
            ]),
            "--target-block-size is an archive relay's",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--cluster-size",
                "4",
                "--replicas",
                "4",
            ]),
            "--replicas 4: must be at least 1 and less than --cluster-size (4)",
        ),
        (
            serve(&["--role", "observer"]),
            "invalid value 'observer' for '--role",
        ),
        (
            serve(&["--bitcoin-peer", "localhost"]),
            "--bitcoin-peer localhost: expected HOST:PORT",
        ),
        (
            serve(&["--bitcoin-peer", "127.0.0.1:18444", "--initial-blocks", "5"]),
            "--initial-blocks is the regtest generator's",
        ),
        (
            serve(&[
                "--role",
                "member",
                "--peer",
                archive,
                "--bitcoin-peer",
                "127.0.0.1:18444",
            ]),
            "--bitcoin-peer is an archive relay's",
        ),
    ];
    for (args, reason) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, reason);
        assert!(!data.exists(), "{args:?} made the data directory");
    }
    // The roles are in the help.
    let help = run(&["serve", "--help"]);
    assert_eq!(help.code, 0);
    for word in [
        "--role",
        "archive",
        "member",
        "--peer <MULTIADDR>",
        "--cluster-size",
    ] {
        assert!(help.stdout.contains(word), "serve --help lacks {word}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A relay on mainnet refuses a regtest chain (regtest's genesis, regtest's difficulty) and
/// says why; the same file on regtest is taken.
#[test]
fn serve_refuses_a_regtest_chain_imported_on_mainnet() {
    let dir = scratch("serve-mainnet-import");
    let file = dir.join("chain.dat");
    let file_s = file.to_str().unwrap();
    json_ok(&["chain", "generate", "--blocks", "5", "--out", file_s]);
    let data = dir.join("data");
    // Bounded: a relay that took the chain would serve until stopped.
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-relay"))
        .args([
            "serve",
            "--network",
            "mainnet",
            "--import",
            file_s,
            "--data-dir",
        ])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = status.unwrap_or_else(|| panic!("a regtest chain was taken on mainnet: {stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("is not mainnet's genesis"), "{stderr}");
}
