// Issue 16: the Chromium renderer killed while a page fills its shard, again and again, in
// real Chromium inside run.sh's network namespace.
//
// An archive relay holds an imported regtest chain of 200 + 50 × kills blocks of 20–60 KB
// (500 blocks, 20 MB, for 6 kills). Three
// tabs form a cluster (clusterSize 3, replicas 2: each holds about two thirds of the chain) and
// fill their shards from the archive. One of them, the victim, has its renderer killed (CDP
// `Page.crash`: the page dies wherever it is — mid-download, mid-write — with no goodbye) each
// time it has stored a few more blocks (4 to 10, drawn from a seeded generator), and is opened
// again in its browser context (the same origin storage). `SHOAL_RENDERER_KILLS` times: 6 in
// `npm test`, 20 in `npm run test:long`. Each time:
//   - before the node starts, the page reads its database with the raw IndexedDB API: it opens,
//     and every block the crashed page said it stored (a `block-stored` event that reached the
//     test) is there — a write the page reported is not lost;
//   - the node starts on it with the same identity and resumes its place in its cluster (the
//     others were told to wait 60 s before declaring a silent member lost);
//   - what it stores from then on is only what the database did not hold when it reopened:
//     nothing is fetched again.
// At the end the victim's shard is complete and consistent: IndexedDB and `shard()` list the
// same blocks, each the chain's block at its height, none missing under its view; and
// transactions of its blocks verify from its own store (`source: "local"`): the
// transaction index it rebuilt or kept across the crashes agrees with the blocks.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ORIGIN, blockKeysIn, launchBrowser, openPages, relayCli, seeded, startRelay, teardown, tempDir, waitUntil as waitFor,
} from "./harness.mjs";

const KILLS = Number(process.env.SHOAL_RENDERER_KILLS ?? 6);
// A page stores blocks in bursts (tens between two looks of the test): room for every kill.
const BLOCKS = 200 + 50 * KILLS;
const DATABASE = "crash";
const OPTIONS = {
  database: DATABASE,
  clusterSize: 3,
  replicas: 2,
  heartbeatIntervalMs: 1_000,
  offlineAfterMs: 60_000,
  formationIntervalMs: 2_000,
};

const log = [];
let relay;
let browser;
let chain; // [{ hash, txids, size }] by height

before(async () => {
  const chainFile = join(tempDir("crash-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "16", "--target-block-size", "20000-60000", "--out", chainFile]);
  chain = relayCli(["block", "inspect", chainFile, "--txids"]).blocks;
  relay = await startRelay({ dataDir: tempDir("crash-relay"), importFile: chainFile, upWithinS: 120, log: (l) => log.push(`[relay] ${l}`) });
  browser = await launchBrowser();
});

after(() => teardown({ browser, relay, log }));

/** The block hashes in the victim's database (slot 0: each context has one tab), read with
 * the raw IndexedDB API before any node opens it. */
const rawKeys = (page) => blockKeysIn(page, `${DATABASE}-regtest-0`);

/** Starts a node in `page`; every `block-stored` event is sent to the test as it happens
 * (`onStored`), so the ones before a crash are known. */
async function startNode(page, onStored) {
  await page.exposeFunction("shoalStored", onStored);
  await page.evaluate(async (options) => {
    const { LightNode } = await import("/dist/index.js");
    window.node = await LightNode.start(options);
    window.node.addEventListener("block-stored", (e) => window.shoalStored(e.detail.blockHash));
  }, { relays: [relay.ws], ...OPTIONS });
}

const status = (page) => page.evaluate(() => window.node.status());

test(`a page whose renderer is killed ${KILLS} times while it fills its shard loses nothing, fetches nothing twice and ends consistent`, async (t) => {
  const pages = await openPages(browser, 3, log);
  const stored = pages.map(() => []);
  await Promise.all(pages.map((page, i) => startNode(page, (hash) => stored[i].push(hash))));
  const formed = await waitFor("the three tabs form a cluster", 120_000, async () => {
    const all = await Promise.all(pages.map(status));
    const ids = new Set(all.map((s) => s.clusterId));
    return ids.size === 1 && all[0].clusterId && all.every((s) => s.members.length === 3) ? all : null;
  });
  const cluster = formed[0].clusterId;
  const victimId = formed[0].peerId;
  let victim = pages[0];
  const context = victim.context();
  const random = seeded(16);
  let events = stored[0]; // block-stored events of the victim's current page
  let had = new Set(); // what its database held when that page opened
  const fetchedAgain = () => events.filter((hash) => had.has(hash));
  let kills = 0;
  for (; kills < KILLS; kills++) {
    const more = 4 + Math.floor(random() * 7);
    const target = events.length + more;
    const s = await waitFor(`the victim stores ${more} more blocks (kill ${kills + 1})`, 120_000, async () => {
      const s = await status(victim);
      return events.length >= target || (s.clusterId && s.missingBlocks === 0 && s.heldBlocks > 0) ? s : null;
    });
    assert.ok(events.length >= target, `the shard was full (${s.heldBlocks} blocks) after ${kills} kills: make it larger`);
    assert.deepEqual(fetchedAgain(), [], `before kill ${kills + 1}: nothing it held stored again`);
    const reported = [...had, ...events]; // held at the last opening, or stored since
    const storedInSession = events.length;
    const crashed = new Promise((resolve) => victim.once("crash", resolve));
    const cdp = await context.newCDPSession(victim);
    cdp.send("Page.crash").catch(() => {}); // the renderer dies; the call never answers
    await crashed;
    await victim.close();

    victim = await context.newPage();
    victim.on("console", (m) => log.push(`[victim ${kills + 1}] ${m.text()}\n`));
    await victim.goto(`${ORIGIN}/relay-addrs.json`);
    had = new Set(await rawKeys(victim));
    const lost = reported.filter((hash) => !had.has(hash));
    assert.deepEqual(lost, [], `kill ${kills + 1}: blocks the page held or said it stored are in its database`);
    events = [];
    await startNode(victim, (hash) => events.push(hash));
    const back = await waitFor(`the victim is back in its cluster (kill ${kills + 1})`, 60_000, async () => {
      const s = await status(victim);
      return s.clusterId === cluster && s.nodeHasHeaders ? s : null;
    });
    assert.equal(back.peerId, victimId, "the same identity");
    t.diagnostic(`kill ${kills + 1}: ${storedInSession} blocks stored in the session it ended, ${had.size} in the database at reopening`);
  }
  assert.equal(kills, KILLS);

  // The fill completes; the shard is consistent.
  const full = await waitFor("the victim's shard is complete", 180_000, async () => {
    const s = await status(victim);
    return s.clusterId === cluster && s.missingBlocks === 0 && s.heldBlocks > 0 ? s : null;
  });
  assert.deepEqual(fetchedAgain(), [], "after the last kill: nothing it held stored again");
  const keys = (await rawKeys(victim)).sort();
  const shard = await victim.evaluate(async () => (await window.node.shard()).map((b) => ({ height: b.height, hash: b.blockHash })));
  assert.deepEqual(shard.map((b) => b.hash).sort(), keys, "IndexedDB and shard() list the same blocks");
  for (const b of shard) assert.equal(b.hash, chain[b.height]?.hash, `the block at ${b.height} is the chain's`);
  const heights = new Set(shard.map((b) => b.height));
  const share = heights.size / (BLOCKS + 1);
  t.diagnostic(`after ${kills} kills: ${full.heldBlocks} blocks held (${(share * 100).toFixed(0)} % of the chain of ${BLOCKS + 1}; P/K 67 %)`);
  assert.ok(share > 0.5, "it holds its share of the chain");
  const picks = [...heights].sort((a, b) => a - b).filter((_, i) => i % Math.max(1, Math.floor(heights.size / 10)) === 0).slice(0, 10);
  for (const height of picks) {
    const { txids } = chain[height];
    const txid = txids[txids.length - 1];
    const got = await victim.evaluate((id) => window.node.verifyTransaction(id), txid);
    assert.equal(got.source, "local", `a transaction of block ${height} verifies from the victim's own store`);
    assert.equal(got.height, height);
  }
});
