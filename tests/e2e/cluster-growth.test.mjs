// A cluster of pages keeps up with a growing chain: the relay makes a new block every 2 s (and
// its archive node is told of each); each page's header sync hands its node the longer chain;
// every height, old and new, ends up stored on exactly P members; every page hears of each new
// block (`new-block`) and of the members that entered its view (`member-joined`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, openPages, startRelay, teardown, tempDir } from "./harness.mjs";

const INITIAL = 10;
const PAGES = 3;
const REPLICAS = 2;
const GROWN = INITIAL + 10; // heights up to here must be stored P times
let relay;
let browser;
const pages = [];
const log = [];

before(async () => {
  relay = await startRelay({
    dataDir: tempDir("growth"), initialBlocks: INITIAL, blockIntervalSecs: 2, log: (l) => log.push(l),
  });
  browser = await launchBrowser();
  pages.push(...(await openPages(browser, PAGES, log)));
});

after(() => teardown({ browser, relay, log }));

test("new blocks reach P members of the cluster", async () => {
  await Promise.all(pages.map((page) => page.evaluate(async ({ relays, replicas, size }) => {
    const { LightNode } = await import("/dist/index.js");
    window.stored = [];
    window.newBlocks = [];
    window.joined = [];
    window.node = await LightNode.start({ relays, database: "growth", clusterSize: size, replicas });
    window.node.addEventListener("block-stored", (e) => window.stored.push(e.detail.height));
    window.node.addEventListener("new-block", (e) => window.newBlocks.push(e.detail));
    window.node.addEventListener("member-joined", (e) => window.joined.push(e.detail.peerId));
  }, { relays: [relay.ws], replicas: REPLICAS, size: PAGES })));
  const deadline = Date.now() + 150_000;
  let copies;
  for (;;) {
    const stored = await Promise.all(pages.map((p) => p.evaluate(() => window.stored)));
    copies = new Map();
    for (const heights of stored) for (const h of heights) copies.set(h, (copies.get(h) ?? 0) + 1);
    let done = true;
    for (let h = 0; h <= GROWN; h++) done &&= (copies.get(h) ?? 0) >= REPLICAS;
    if (done) break;
    assert.ok(Date.now() < deadline, `not stored in time: ${JSON.stringify([...copies].sort((a, b) => a[0] - b[0]))}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  for (let h = 0; h <= GROWN; h++) assert.equal(copies.get(h), REPLICAS, `copies of height ${h}`);
  const tips = await Promise.all(pages.map((p) => p.evaluate(() => window.node.status().tip.height)));
  for (const tip of tips) assert.ok(tip >= GROWN, `the pages followed the chain: ${tips}`);
  // `new-block`: one event per height past the chain each page first synced, in order, naming
  // the block its verified chain has there (the same on every page).
  const seen = await Promise.all(pages.map((p) => p.evaluate(() => window.newBlocks)));
  const hashAt = new Map();
  for (const [i, events] of seen.entries()) {
    assert.ok(events.length > 0, `page ${i} heard of no new block`);
    const heights = events.map((e) => e.height);
    const first = heights[0];
    assert.deepEqual(heights, heights.map((_, k) => first + k), `page ${i}: consecutive heights ${heights}`);
    assert.ok(heights.at(-1) >= GROWN, `page ${i} heard of the blocks up to ${GROWN}: ${heights}`);
    for (const e of events) {
      assert.match(e.blockHash, /^[0-9a-f]{64}$/);
      if (hashAt.has(e.height)) assert.equal(e.blockHash, hashAt.get(e.height), `height ${e.height}`);
      hashAt.set(e.height, e.blockHash);
    }
  }
  const ids = await Promise.all(pages.map((p) => p.evaluate(() => window.node.status().peerId)));
  const joined = await Promise.all(pages.map((p) => p.evaluate(() => window.joined)));
  for (const [i, who] of joined.entries()) {
    assert.deepEqual([...new Set(who)].sort(), ids.filter((id) => id !== ids[i]).sort(), `member-joined on page ${i}`);
  }
  await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
});
