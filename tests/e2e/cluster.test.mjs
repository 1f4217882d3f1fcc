// Three pages form a cluster through the relay (issue #5, "drive the core's Node"): each page's
// core node finds the others in the relay's directory, reaches them over circuits, forms one
// cluster, fills its shard from the relay's archive node into IndexedDB, and notices when a
// member goes away. Their transaction queries run in their core nodes: a page answers for a
// block it holds from its own IndexedDB, for another through the cluster (or the relay), with
// the raw transaction; `shard()`, `status()` and `getBlock()` tell what the page holds, whom it
// is connected to and what it downloaded, and fetch a block it does not hold.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { display, launchBrowser, openPages, relayCli, sha256d, startRelay, storedBlockHashes, teardown, tempDir, txidOf } from "./harness.mjs";

const BLOCKS = 40;
const PAGES = 3;
const REPLICAS = 2;
let relay;
let browser;
const pages = [];
const log = [];
let chainFile;
let blocks; // inspect report: blocks[i] is height i

before(async () => {
  chainFile = join(tempDir("cluster-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "11", "--txs-per-block", "4", "--out", chainFile]);
  blocks = relayCli(["block", "inspect", chainFile, "--txids"]).blocks;
  relay = await startRelay({ dataDir: tempDir("cluster"), importFile: chainFile, log: (l) => log.push(l) });
  browser = await launchBrowser();
  pages.push(...(await openPages(browser, PAGES, log)));
});

after(() => teardown({ browser, relay, log }));

const status = (page) => page.evaluate(() => window.node.status());


test("three pages form one cluster and fill their shards from the archive", async () => {
  await Promise.all(pages.map((page) => page.evaluate(async ({ relays, replicas, size }) => {
    const { LightNode } = await import("/dist/index.js");
    window.events = [];
    window.node = await LightNode.start({ relays, database: "cluster", clusterSize: size, replicas });
    for (const type of ["cluster", "member-lost", "member-joined", "block-stored"]) {
      window.node.addEventListener(type, (e) => window.events.push({ type, detail: e.detail }));
    }
  }, { relays: [relay.ws], replicas: REPLICAS, size: PAGES })));

  // Every page joins a cluster; all three name the same one, with all three as members.
  for (const page of pages) {
    await page.waitForFunction(
      () => window.events.some((e) => e.type === "cluster" && e.detail.clusterId),
      null,
      { timeout: 120_000, polling: 200 },
    );
  }
  const statuses = await Promise.all(pages.map(status));
  const ids = statuses.map((s) => s.clusterId);
  assert.ok(ids[0], "a cluster id");
  assert.deepEqual(ids, [ids[0], ids[0], ids[0]], "one cluster for all pages");
  const peerIds = statuses.map((s) => s.peerId).sort();
  for (const s of statuses) assert.deepEqual([...s.members].sort(), peerIds);
  assert.deepEqual(statuses.map((s) => s.memberNumber).sort(), [0, 1, 2]);
  const clusterEvents = await Promise.all(pages.map((p) => p.evaluate(
    () => window.events.filter((e) => e.type === "cluster").map((e) => e.detail.clusterId),
  )));
  for (const seen of clusterEvents) assert.ok(seen.includes(ids[0]));

  // The members fill their shards from the archive: together they hold every block, each on
  // REPLICAS members (S6, S18), and each page's blocks are in its IndexedDB.
  const chainBlocks = BLOCKS + 1; // genesis included
  const deadline = Date.now() + 120_000;
  let held;
  for (;;) {
    held = (await Promise.all(pages.map(status))).map((s) => s.heldBlocks);
    if (held.reduce((a, b) => a + b, 0) >= REPLICAS * chainBlocks) break;
    assert.ok(Date.now() < deadline, `shards not filled in time: held ${held}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const heights = new Map();
  for (const page of pages) {
    const stored = (await storedBlockHashes(page, "cluster")).length;
    const { events, s } = await page.evaluate(() => ({
      events: window.events.filter((e) => e.type === "block-stored").map((e) => e.detail),
      s: window.node.status(),
    }));
    assert.ok(events.length > 0, "block-stored fired");
    assert.equal(stored, s.heldBlocks, "the node's blocks are in IndexedDB");
    assert.equal(events.length, s.heldBlocks, "one block-stored event per held block");
    assert.equal(events.reduce((a, e) => a + e.bytes, 0), s.storedBytes);
    for (const e of events) heights.set(e.height, (heights.get(e.height) ?? 0) + 1);
  }
  assert.equal(heights.size, chainBlocks, "together the members hold the whole chain");
  for (const [height, copies] of heights) assert.equal(copies, REPLICAS, `copies of height ${height}`);
});

test("shard(), status() and getBlock() tell what a page holds, whom it knows and what it fetched", async () => {
  const statuses = await Promise.all(pages.map(status));
  const relayPeer = relay.ws.split("/p2p/")[1];
  const shards = [];
  for (const [i, page] of pages.entries()) {
    // The shard as the API gives it, and the page's IndexedDB read directly (raw IDB API).
    const { shard, stored } = await page.evaluate(async () => {
      const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      const shard = (await window.node.shard()).map((b) => ({
        height: b.height, blockHash: b.blockHash, isBytes: b.bytes instanceof Uint8Array, hex: hex(b.bytes),
      }));
      const s = window.node.status();
      const db = await new Promise((resolve, reject) => {
        const req = indexedDB.open(`cluster-regtest-${s.slot}`);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      const all = (what) => new Promise((resolve, reject) => {
        const req = db.transaction("blocks").objectStore("blocks")[what]();
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      const [keys, values] = [await all("getAllKeys"), await all("getAll")];
      db.close();
      return { shard, stored: keys.map((key, j) => ({ key, hex: hex(values[j]) })) };
    });
    assert.ok(shard.every((b) => b.isBytes), "bytes are a Uint8Array");
    const heights = shard.map((b) => b.height);
    assert.deepEqual(heights, [...heights].sort((a, b) => a - b), "sorted by height");
    assert.equal(shard.length, statuses[i].heldBlocks, "one entry per held block");
    const byKey = new Map(stored.map((x) => [x.key, x.hex]));
    assert.equal(byKey.size, shard.length, "IndexedDB holds exactly the shard");
    for (const b of shard) {
      assert.equal(b.blockHash, blocks[b.height].hash, `height ${b.height} is the chain's block`);
      assert.equal(byKey.get(b.blockHash), b.hex, `height ${b.height}: the bytes IndexedDB holds`);
      assert.equal(display(sha256d(Buffer.from(b.hex.slice(0, 160), "hex"))), b.blockHash);
    }
    shards.push(shard);
  }
  const copies = new Map();
  for (const shard of shards) for (const b of shard) copies.set(b.height, (copies.get(b.height) ?? 0) + 1);
  assert.equal(copies.size, BLOCKS + 1, "the shards together cover the chain");
  for (const [height, n] of copies) assert.equal(n, REPLICAS, `copies of height ${height}`);

  const peerIds = statuses.map((s) => s.peerId);
  for (const [i, s] of statuses.entries()) {
    assert.equal(s.clusterSize, PAGES);
    assert.equal(s.replicas, REPLICAS);
    const { fromRelays, fromMembers } = s.downloadedBytes;
    assert.ok(fromRelays.headers > 0, `headers came from the relay: ${JSON.stringify(s.downloadedBytes)}`);
    assert.ok(fromRelays.blocks + fromMembers.blocks >= s.storedBytes, "the shard was downloaded");
    assert.equal(fromMembers.headers, 0, "header sync asks relays only");
    const relayConnection = s.connections.find((c) => c.peerId === relayPeer);
    assert.ok(relayConnection, `the relay is connected: ${JSON.stringify(s.connections)}`);
    assert.ok(["archive", "relay"].includes(relayConnection.role), relayConnection.role);
    assert.equal(relayConnection.transport, "websocket");
    for (const other of peerIds.filter((p) => p !== s.peerId)) {
      const c = s.connections.find((x) => x.peerId === other);
      assert.ok(c, `page ${i} is connected to member ${other}: ${JSON.stringify(s.connections)}`);
      assert.equal(c.role, "member");
      // Introduced through the relay's circuit, then connected directly (issue 14; the circuit
      // is closed once the direct connection is up).
      assert.ok(["circuit", "webrtc"].includes(c.transport), c.transport);
    }
    // Every other member entered this page's view.
    const joined = await pages[i].evaluate(
      () => window.events.filter((e) => e.type === "member-joined").map((e) => e.detail.peerId),
    );
    assert.deepEqual([...new Set(joined)].sort(), peerIds.filter((p) => p !== s.peerId).sort());
  }

  // getBlock: a block page 0 does not hold comes from a member (checked against its header),
  // one it holds from its own IndexedDB; bad input and unknown blocks reject with their codes.
  const page = pages[0];
  const held = new Set(shards[0].map((b) => b.height));
  const other = shards.slice(1).flat().find((b) => !held.has(b.height));
  const own = shards[0][shards[0].length - 1];
  const getBlock = (hash) => page.evaluate(async (h) => {
    try {
      const bytes = await window.node.getBlock(h);
      return { ok: true, isBytes: bytes instanceof Uint8Array, hex: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
    } catch (err) {
      return { ok: false, code: err.code, message: String(err.message ?? err) };
    }
  }, hash);
  for (const want of [other, own]) {
    const got = await getBlock(want.blockHash);
    assert.ok(got.ok && got.isBytes, `getBlock ${want.height}: ${got.code} ${got.message}`);
    assert.equal(display(sha256d(Buffer.from(got.hex.slice(0, 160), "hex"))), want.blockHash);
    assert.equal(got.hex, want.hex, `height ${want.height}: the block's bytes`);
  }
  assert.ok(!(await page.evaluate(() => window.node.shard())).some((b) => b.height === other.height),
    "a fetched block goes to the cache, not the shard");
  const after = await status(page);
  assert.ok(after.downloadedBytes.fromMembers.blocks >= other.hex.length / 2, "the fetched block came from a member");
  assert.equal((await getBlock("zz")).code, "BAD_INPUT");
  assert.equal((await getBlock("ab".repeat(32))).code, "NOT_FOUND");
});

test("memberDetails, shardMap and block-stored say who holds what, as the members' heartbeats and the placement tell it", async () => {
  const relayPeer = relay.ws.split("/p2p/")[1];
  const peerIds = (await Promise.all(pages.map(status))).map((s) => s.peerId);
  // Each member's heartbeats carry its shard report: within a few heartbeats every page sees
  // every other's held blocks and bytes as that page counts them, and that it confirmed its
  // shard (ShardHeld).
  const deadline = Date.now() + 60_000;
  let mismatch;
  for (;;) {
    const statuses = await Promise.all(pages.map(status));
    const byPeer = new Map(statuses.map((s) => [s.peerId, s]));
    mismatch = null;
    for (const s of statuses) {
      assert.equal(s.memberDetails.length, PAGES, "one detail per member");
      for (const d of s.memberDetails) {
        const them = byPeer.get(d.peerId);
        const r = d.report;
        if (!r || r.heldBlocks !== them.heldBlocks || r.storedBytes !== them.storedBytes || r.missingBlocks !== 0 || !d.shardHeld) {
          mismatch = { page: s.peerId, member: d.peerId, detail: d, held: them.heldBlocks, bytes: them.storedBytes };
        }
      }
    }
    if (!mismatch) break;
    assert.ok(Date.now() < deadline, `reports not in agreement: ${JSON.stringify(mismatch)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const [i, page] of pages.entries()) {
    const { s, now, map, shard } = await page.evaluate(async (tip) => ({
      s: window.node.status(),
      now: Date.now(),
      map: await window.node.shardMap(0, tip + 100),
      shard: (await window.node.shard()).map((b) => b.height),
    }), BLOCKS);
    assert.equal(s.heartbeatIntervalMs, 5000);
    assert.equal(s.offlineAfterMs, 20000);
    for (const d of s.memberDetails) {
      assert.equal(d.peerId, s.members[d.number], "in member-number order");
      assert.equal(d.relay, false, "pages, not relays");
      assert.equal(d.connected, true);
      if (d.self) {
        assert.equal(d.number, s.memberNumber);
        assert.equal(d.lastHeardAt, null);
      } else {
        assert.ok(d.lastHeardAt <= now && now - d.lastHeardAt < s.offlineAfterMs, `page ${i} heard from ${d.number} ${now - d.lastHeardAt} ms ago`);
      }
    }
    assert.equal(s.memberDetails.filter((d) => d.self).length, 1);
    // The placement: clamped to the tip, P members per height, the same on every page, and
    // (settled) exactly the heights this page holds.
    assert.equal(map.tipHeight, BLOCKS);
    assert.equal(map.toHeight, BLOCKS);
    assert.deepEqual(map.members, s.members);
    assert.equal(map.holders.length, BLOCKS + 1);
    for (const h of map.holders) {
      assert.equal(new Set(h).size, REPLICAS);
      assert.ok(h.every((n) => n >= 0 && n < PAGES));
    }
    assert.deepEqual(map.held, shard, "held = shard()");
    const mine = map.holders.flatMap((h, height) => (h.includes(s.memberNumber) ? [height] : []));
    assert.deepEqual(mine, shard, "placement gives this page exactly what it holds");
    if (i > 0) {
      const first = await pages[0].evaluate((tip) => window.node.shardMap(0, tip), BLOCKS);
      assert.deepEqual(map.holders, first.holders, "every member computes the same placement");
    }
    // Every block stored came from the relay or a member, and the event says which.
    const froms = await page.evaluate(() => window.events.filter((e) => e.type === "block-stored").map((e) => e.detail.from));
    for (const from of froms) assert.ok(from === relayPeer || peerIds.includes(from), `from ${from}`);
  }
  // Bad ranges are refused with BAD_INPUT; a range above the tip covers nothing.
  const shardMap = (from, to) => pages[0].evaluate(async ([f, t]) => {
    try {
      return { ok: true, value: await window.node.shardMap(f, t) };
    } catch (err) {
      return { ok: false, code: err.code, message: String(err.message ?? err) };
    }
  }, [from, to]);
  for (const [from, to] of [[5, 2], [0, 10_000], [-1, 3], [1.5, 3], ["0", 3]]) {
    const got = await shardMap(from, to);
    assert.equal(got.code, "BAD_INPUT", `shardMap(${from}, ${to}): ${JSON.stringify(got)}`);
  }
  const above = await shardMap(BLOCKS + 5, BLOCKS + 9);
  assert.ok(above.ok);
  assert.deepEqual([above.value.holders, above.value.held, above.value.toHeight], [[], [], BLOCKS + 4]);
  // The archive's /status.json says how big the whole chain is.
  const chainBytes = blocks.reduce((sum, b) => sum + b.size, 0);
  assert.equal((await relay.status()).chain_bytes, chainBytes);
});

test("a page answers for a block it holds by itself, for another through other nodes", async (t) => {
  const page = pages[0];
  const held = new Set(await page.evaluate(
    () => window.events.filter((e) => e.type === "block-stored").map((e) => e.detail.blockHash),
  ));
  const verify = (txid) => page.evaluate(async (t) => {
    try {
      return { ok: true, value: await window.node.verifyTransaction(t) };
    } catch (err) {
      return { ok: false, code: err.code, message: String(err.message ?? err) };
    }
  }, txid);
  const heights = [...blocks.keys()].filter((h) => h > 0);
  for (const [height, source] of [
    [heights.find((h) => held.has(blocks[h].hash)), "local"],
    [heights.find((h) => !held.has(blocks[h].hash)), "another node"],
  ]) {
    assert.ok(height !== undefined, `a block for the ${source} case (page holds ${held.size})`);
    const { txids } = blocks[height];
    const txid = txids[txids.length - 1];
    const expected = relayCli(["block", "prove", chainFile, txid]);
    const got = await verify(txid);
    assert.ok(got.ok, `${txid}: ${got.code} ${got.message}`);
    assert.equal(got.value.blockHash, expected.block_hash);
    assert.equal(got.value.height, height);
    assert.equal(got.value.pos, expected.pos);
    assert.deepEqual(got.value.merkle, expected.merkle);
    assert.equal(got.value.confirmations, BLOCKS - height + 1);
    assert.equal(txidOf(Buffer.from(got.value.transaction, "hex")), txid, "the raw transaction is the one asked for");
    // The root the proof was checked against is the page's own header's: hashing the txid up
    // the branch gives it, and it is the Merkle root of the block's header.
    const internal = (hex) => Buffer.from(hex, "hex").reverse();
    let node = internal(txid);
    got.value.merkle.forEach((sibling, level) => {
      const right = (got.value.pos >> level) & 1;
      node = sha256d(Buffer.concat(right ? [internal(sibling), node] : [node, internal(sibling)]));
    });
    assert.equal(display(node), got.value.merkleRoot, "the branch leads to merkleRoot");
    assert.equal(got.value.merkleRoot, blocks[height].merkle_root, "the header's Merkle root");
    if (source === "local") {
      assert.equal(got.value.source, "local", "a held block is answered from IndexedDB");
      assert.equal(got.value.answeredBy, null);
    } else {
      assert.ok(["member", "relay"].includes(got.value.source), got.value.source);
      const s = await status(page);
      assert.ok(got.value.answeredBy && got.value.answeredBy !== s.peerId, `answered by ${got.value.answeredBy}`);
      if (got.value.source === "member") assert.ok(s.members.includes(got.value.answeredBy));
      else assert.ok(s.connections.some((c) => c.peerId === got.value.answeredBy && ["archive", "relay"].includes(c.role)));
    }
    t.diagnostic(`height ${height} (${source}): answered by ${got.value.source}`);
  }
});

test("a page that goes away is declared lost and dropped from the view", async () => {
  const gone = pages.pop();
  const goneId = (await status(gone)).peerId;
  await gone.context().close(); // the tab closes: no goodbye, its connections just end
  // The member that notices the silence first declares it offline (`member-lost`); the new
  // view without it reaches the other member as a `cluster` event.
  const deadline = Date.now() + 90_000;
  for (;;) {
    const seen = await Promise.all(pages.map((p) => p.evaluate((id) => ({
      lost: window.events.some((e) => e.type === "member-lost" && e.detail.peerId === id),
      members: window.node.status().members,
    }), goneId)));
    const lost = seen.some((x) => x.lost);
    const dropped = seen.every((x) => x.members.length === PAGES - 1 && !x.members.includes(goneId));
    if (lost && dropped) break;
    assert.ok(Date.now() < deadline, `not noticed in time: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
});
