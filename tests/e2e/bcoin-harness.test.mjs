// The Bitcoin node the Bitcoin tests run against: bcoin 1.0.2 on regtest through its launcher,
// tests/bitcoin/bcoin-regtest.mjs, as a Rust test spawns it (a child process driven by JSON
// lines, stopped by its own pid). It mines past segwit's activation with block times Bitcoin's
// rules accept, puts segwit wallet transactions in a block, reorganises, and speaks Bitcoin's
// P2P protocol on regtest's magic to a client written here byte by byte.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { connect } from "node:net";
import { createInterface } from "node:readline";

const LAUNCHER = new URL("../bitcoin/bcoin-regtest.mjs", import.meta.url).pathname;
const REGTEST_MAGIC = Buffer.from([0xfa, 0xbf, 0xb5, 0xda]);
const REGTEST_GENESIS = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
const REGTEST_GENESIS_TIME = 1296688602;
/** Segwit is active on bcoin's regtest from this height (three windows of 144 blocks). */
const SEGWIT_HEIGHT = 432;
const MSG_WITNESS_BLOCK = 0x40000002;

let bcoin;
let ready;

before(async () => {
  bcoin = startLauncher();
  ready = await bcoin.ready;
});

after(async () => {
  await bcoin?.stop();
});

test("the launcher reports regtest's genesis and a P2P address", () => {
  assert.equal(ready.ready, true);
  assert.equal(ready.height, 0);
  assert.equal(ready.hash, REGTEST_GENESIS);
  assert.match(ready.p2p, /^127\.0\.0\.1:\d+$/);
});

test("440 blocks, each time after the median of the 11 before it and within 2 hours of now", async () => {
  const { hashes, height } = await bcoin.call({ cmd: "mine", n: 440 }, 120_000);
  assert.equal(hashes.length, 440);
  assert.equal(height, 440);

  const times = [REGTEST_GENESIS_TIME];
  let prev = REGTEST_GENESIS;
  for (const hash of hashes) {
    const header = parseBlock(Buffer.from((await bcoin.call({ cmd: "block", hash })).hex, "hex")).header;
    assert.equal(header.hash, hash);
    assert.equal(header.prev, prev, "each block builds on the one before");
    const last11 = times.slice(-11).sort((a, b) => a - b);
    assert.ok(header.time > last11[last11.length >> 1], `block ${hash}: time past the median`);
    assert.ok(header.time <= Date.now() / 1000 + 2 * 60 * 60, `block ${hash}: time within 2 hours of now`);
    times.push(header.time);
    prev = hash;
  }
  assert.ok(times[1] >= Math.floor(Date.now() / 1000) - 600, "the chain's times are today's");
});

test("a block with two segwit wallet transactions carries their witnesses", async () => {
  assert.ok((await bcoin.call({ cmd: "tip" })).height >= SEGWIT_HEIGHT);
  const first = await bcoin.call({ cmd: "send", sats: 150_000 });
  const second = await bcoin.call({ cmd: "send", sats: 250_000 });
  assert.notEqual(first.txid, second.txid);
  assert.notEqual(first.txid, first.wtxid, "a segwit transaction's wtxid differs from its txid");

  const { hashes: [hash] } = await bcoin.call({ cmd: "mineWith", txids: [first.txid, second.txid] });
  const block = parseBlock(Buffer.from((await bcoin.call({ cmd: "block", hash })).hex, "hex"));
  assert.equal(block.header.hash, hash);
  const byTxid = new Map(block.txs.map((tx) => [tx.txid, tx]));
  for (const sent of [first, second]) {
    assert.ok(byTxid.has(sent.txid), `${sent.txid} is in the block`);
    assert.equal(byTxid.get(sent.txid).segwit, true, `${sent.txid} has the segwit marker and witnesses`);
    assert.equal(byTxid.get(sent.txid).raw.toString("hex"), sent.hex);
  }
  const coinbase = block.txs[0];
  assert.equal(coinbase.segwit, true, "the coinbase carries the witness reserved value");
  assert.ok(
    coinbase.outputScripts.some((script) => script.subarray(0, 6).equals(Buffer.from("6a24aa21a9ed", "hex"))),
    "the coinbase commits to the witnesses",
  );
});

test("invalidating the tip and mining two blocks moves the tip to a new branch", async () => {
  const old = await bcoin.call({ cmd: "tip" });
  const oldTip = parseBlock(Buffer.from((await bcoin.call({ cmd: "block", hash: old.hash })).hex, "hex")).header;

  const back = await bcoin.call({ cmd: "invalidate", hash: old.hash });
  assert.deepEqual([back.height, back.hash], [old.height - 1, oldTip.prev]);

  const { hashes, height, hash } = await bcoin.call({ cmd: "mine", n: 2 });
  assert.equal(height, old.height + 1);
  assert.equal(hash, hashes[1]);
  const fork = parseBlock(Buffer.from((await bcoin.call({ cmd: "block", hash: hashes[0] })).hex, "hex")).header;
  assert.equal(fork.prev, oldTip.prev, "the branch starts at the old tip's parent");
  assert.notEqual(hashes[0], old.hash);
  // bcoin forgets the blocks invalidate took off.
  const gone = await bcoin.call({ cmd: "block", hash: old.hash }, 10_000, { expectError: true });
  assert.match(gone.error, /not found/);
});

test("a raw TCP client completes the version/verack handshake on regtest's magic", async () => {
  const { height, hash } = await bcoin.call({ cmd: "tip" });
  const peer = await P2pClient.connect(ready.p2p);
  try {
    peer.send("version", versionPayload(height));
    const version = parseVersion((await peer.next("version")).payload);
    assert.equal(version.version, 70015);
    assert.ok(version.services & 1n, "NODE_NETWORK");
    assert.ok(version.services & 8n, "NODE_WITNESS");
    assert.equal(version.startHeight, height);
    assert.match(version.userAgent, /bcoin/);
    await peer.next("verack");
    peer.send("verack", Buffer.alloc(0));

    // What a follower does next: ask for headers from genesis, ask for new blocks as headers,
    // and fetch one with its witnesses.
    peer.send("sendheaders", Buffer.alloc(0));
    peer.send("getheaders", getHeadersPayload([REGTEST_GENESIS]));
    const headers = parseHeaders((await peer.next("headers")).payload);
    assert.equal(headers.length, height, "every header after genesis");
    assert.equal(headers.at(-1).hash, hash);

    const { hashes: [mined] } = await bcoin.call({ cmd: "mine", n: 1 });
    const announced = parseHeaders((await peer.next("headers")).payload);
    assert.deepEqual(announced.map((h) => h.hash), [mined], "a new block is announced as its header");

    peer.send("getdata", invPayload(MSG_WITNESS_BLOCK, hash));
    const served = (await peer.next("block")).payload;
    assert.equal(served.toString("hex"), (await bcoin.call({ cmd: "block", hash })).hex);
  } finally {
    peer.close();
  }
});

/** Spawns the launcher; `ready` resolves with its ready line, `call` sends one command and
 * resolves with its answer, `stop` stops it by its own pid. */
function startLauncher() {
  const child = spawn(process.execPath, [LAUNCHER, "--host", "127.0.0.1", "--port", "0"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const waiting = new Map();
  let nextId = 1;
  let onReady;
  const ready = new Promise((resolve, reject) => {
    onReady = resolve;
    exited.then(({ code, signal }) => reject(new Error(`the launcher exited (${code ?? signal}) before it was ready`)));
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    const message = JSON.parse(line);
    if ("ready" in message) return onReady(message);
    waiting.get(message.id)?.(message);
    waiting.delete(message.id);
  });
  return {
    ready: withTimeout(ready, 30_000, "the launcher's ready line"),
    async call(command, ms = 30_000, { expectError = false } = {}) {
      const id = nextId++;
      const answer = new Promise((resolve) => waiting.set(id, resolve));
      child.stdin.write(`${JSON.stringify({ id, ...command })}\n`);
      const message = await withTimeout(answer, ms, `the answer to ${command.cmd}`);
      assert.equal(message.ok, !expectError, `${command.cmd}: ${message.error ?? "succeeded"}`);
      return message;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end(`${JSON.stringify({ id: 0, cmd: "stop" })}\n`);
      try {
        await withTimeout(exited, 10_000, "the launcher's exit");
      } catch {
        process.kill(child.pid, "SIGKILL");
        await exited;
      }
    },
  };
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sha256d = (bytes) => createHash("sha256").update(createHash("sha256").update(bytes).digest()).digest();
/** A hash in display order (byte-reversed hex) from its bytes, and back. */
const display = (bytes) => Buffer.from(bytes).reverse().toString("hex");
const internal = (hex) => Buffer.from(hex, "hex").reverse();

/** Reads Bitcoin's serialisations from `bytes`. */
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0;
  }
  take(n) {
    assert.ok(this.at + n <= this.bytes.length, "truncated");
    return this.bytes.subarray(this.at, (this.at += n));
  }
  u8() {
    return this.take(1)[0];
  }
  u32() {
    return this.take(4).readUInt32LE(0);
  }
  varint() {
    const first = this.u8();
    if (first < 0xfd) return first;
    if (first === 0xfd) return this.take(2).readUInt16LE(0);
    if (first === 0xfe) return this.u32();
    return Number(this.take(8).readBigUInt64LE(0));
  }
}

function parseHeader(r) {
  const bytes = r.take(80);
  return {
    hash: display(sha256d(bytes)),
    prev: display(bytes.subarray(4, 36)),
    time: bytes.readUInt32LE(68),
  };
}

/** A block's header and transactions: each with its txid (hash of the serialisation without
 * marker, flag and witnesses), whether it has the segwit marker, its output scripts and raw
 * bytes. */
function parseBlock(bytes) {
  const r = new Reader(bytes);
  const header = parseHeader(r);
  const txs = [];
  for (let n = r.varint(), i = 0; i < n; i++) {
    const start = r.at;
    const version = r.take(4);
    const segwit = r.bytes[r.at] === 0 && r.bytes[r.at + 1] === 1;
    if (segwit) r.take(2);
    const bodyStart = r.at;
    const inputs = r.varint();
    for (let j = 0; j < inputs; j++) {
      r.take(36);
      r.take(r.varint());
      r.take(4);
    }
    const outputScripts = [];
    for (let outputs = r.varint(), j = 0; j < outputs; j++) {
      r.take(8);
      outputScripts.push(r.take(r.varint()));
    }
    const bodyEnd = r.at;
    if (segwit) {
      for (let j = 0; j < inputs; j++) {
        for (let items = r.varint(), k = 0; k < items; k++) r.take(r.varint());
      }
    }
    const locktime = r.take(4);
    const stripped = Buffer.concat([version, bytes.subarray(bodyStart, bodyEnd), locktime]);
    txs.push({ txid: display(sha256d(stripped)), segwit, outputScripts, raw: bytes.subarray(start, r.at) });
  }
  assert.equal(r.at, bytes.length, "the block ends after its transactions");
  return { header, txs };
}

function parseHeaders(payload) {
  const r = new Reader(payload);
  const headers = [];
  for (let n = r.varint(), i = 0; i < n; i++) {
    headers.push(parseHeader(r));
    assert.equal(r.varint(), 0, "a header's transaction count is 0");
  }
  return headers;
}

function parseVersion(payload) {
  const r = new Reader(payload);
  const version = r.take(4).readInt32LE(0);
  const services = r.take(8).readBigUInt64LE(0);
  r.take(8 + 26 + 26 + 8); // timestamp, addr_recv, addr_from, nonce
  const userAgent = r.take(r.varint()).toString("latin1");
  const startHeight = r.take(4).readInt32LE(0);
  return { version, services, userAgent, startHeight };
}

/** A version message as Bitcoin Core 27 sends it (protocol 70016, NODE_NETWORK | NODE_WITNESS),
 * from a client at `height`. */
function versionPayload(height) {
  const addr = Buffer.alloc(26); // services, IPv6-mapped address, port: all zero
  const fixed = Buffer.alloc(4 + 8 + 8);
  fixed.writeInt32LE(70016, 0);
  fixed.writeBigUInt64LE(9n, 4);
  fixed.writeBigInt64LE(BigInt(Math.floor(Date.now() / 1000)), 12);
  const agent = Buffer.from("/shoal-test:0.1.0/", "latin1");
  const tail = Buffer.alloc(5);
  tail.writeInt32LE(height, 0);
  tail[4] = 0; // relay: no transactions
  return Buffer.concat([fixed, addr, addr, randomBytes(8), Buffer.from([agent.length]), agent, tail]);
}

function getHeadersPayload(locator) {
  const version = Buffer.alloc(4);
  version.writeUInt32LE(70016, 0);
  return Buffer.concat([version, Buffer.from([locator.length]), ...locator.map(internal), Buffer.alloc(32)]);
}

function invPayload(type, hash) {
  const item = Buffer.alloc(4);
  item.writeUInt32LE(type, 0);
  return Buffer.concat([Buffer.from([1]), item, internal(hash)]);
}

/** A P2P connection: `send(command, payload)`, and `next(command)` waits (bounded) for the next
 * message of that command, skipping others (bcoin also sends sendcmpct, getaddr, ping...). */
class P2pClient {
  static async connect(address) {
    const [host, port] = address.split(":");
    const socket = connect({ host, port: Number(port) });
    await withTimeout(new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject)), 10_000, "connect");
    return new P2pClient(socket);
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.messages = [];
    this.wake = null;
    socket.on("data", (data) => {
      this.buffer = Buffer.concat([this.buffer, data]);
      while (this.buffer.length >= 24) {
        assert.ok(this.buffer.subarray(0, 4).equals(REGTEST_MAGIC), "regtest's magic");
        const length = this.buffer.readUInt32LE(16);
        if (this.buffer.length < 24 + length) break;
        const command = this.buffer.subarray(4, 16).toString("latin1").replace(/\0+$/, "");
        const payload = this.buffer.subarray(24, 24 + length);
        assert.ok(sha256d(payload).subarray(0, 4).equals(this.buffer.subarray(20, 24)), `${command}: checksum`);
        this.messages.push({ command, payload });
        this.buffer = this.buffer.subarray(24 + length);
      }
      this.wake?.();
    });
    socket.on("error", () => {});
  }

  send(command, payload) {
    const header = Buffer.alloc(24);
    REGTEST_MAGIC.copy(header, 0);
    header.write(command, 4, "latin1");
    header.writeUInt32LE(payload.length, 16);
    sha256d(payload).copy(header, 20, 0, 4);
    this.socket.write(Buffer.concat([header, payload]));
  }

  async next(command, ms = 10_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const index = this.messages.findIndex((m) => m.command === command);
      if (index >= 0) return this.messages.splice(index, 1)[0];
      const left = deadline - Date.now();
      assert.ok(left > 0, `no ${command} message within ${ms / 1000} s`);
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.min(left, 250));
      });
    }
  }

  close() {
    this.socket.destroy();
  }
}
