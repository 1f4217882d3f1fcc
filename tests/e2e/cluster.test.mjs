// Three pages form a cluster through the relay (issue #5, "drive the core's Node"): each page's
// core node finds the others in the relay's directory, reaches them over circuits, forms one
// cluster, fills its shard from the relay's archive node into IndexedDB, and notices when a
// member goes away. Their transaction queries run in their core nodes: a page answers for a
// block it holds from its own IndexedDB, for another through the cluster (or the relay).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { launchBrowser, openPages, relayCli, startRelay, teardown, tempDir } from "./harness.mjs";

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
    for (const type of ["cluster", "member-lost", "block-stored"]) {
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
    const { stored, events, s } = await page.evaluate(async () => {
      const s = window.node.status();
      const db = await new Promise((resolve, reject) => {
        const req = indexedDB.open(`cluster-regtest-${s.slot}`);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      const stored = await new Promise((resolve, reject) => {
        const req = db.transaction("blocks").objectStore("blocks").count();
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      db.close();
      const events = window.events.filter((e) => e.type === "block-stored").map((e) => e.detail);
      return { stored, events, s };
    });
    assert.ok(events.length > 0, "block-stored fired");
    assert.equal(stored, s.heldBlocks, "the node's blocks are in IndexedDB");
    assert.equal(events.length, s.heldBlocks, "one block-stored event per held block");
    assert.equal(events.reduce((a, e) => a + e.bytes, 0), s.storedBytes);
    for (const e of events) heights.set(e.height, (heights.get(e.height) ?? 0) + 1);
  }
  assert.equal(heights.size, chainBlocks, "together the members hold the whole chain");
  for (const [height, copies] of heights) assert.equal(copies, REPLICAS, `copies of height ${height}`);
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
    if (source === "local") {
      assert.equal(got.value.source, "local", "a held block is answered from IndexedDB");
    } else {
      assert.ok(["member", "relay"].includes(got.value.source), got.value.source);
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
