// A cluster of pages keeps up with a growing chain (S14, S15): the relay makes a new block
// every 2 s and announces each to its pages at once (its header alone); each page's header
// sync takes the header, and the block's bytes reach its holders — routed: the cluster's
// router for the block fetches it from the relay and sends it to the other holders (the relay
// sends it once per cluster); self-selected: every holder fetches it from the relay (once per
// holder). Every height, old and new, ends up stored on exactly P members. The pages' header
// poll is set to an hour, so new blocks can only have come by the announcements. Every page
// hears of each new block (`new-block`) and of the members that entered its view
// (`member-joined`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, openPages, startRelay, teardown, tempDir } from "./harness.mjs";

const INITIAL = 10;
const PAGES = 3;
const REPLICAS = 2;
const GROWN = INITIAL + 10; // heights up to here must be stored P times
const HOUR_MS = 3_600_000;
let browser;
const log = [];

before(async () => {
  browser = await launchBrowser();
});

after(() => teardown({ browser, log }));

/** Heights → how often the relay's archive node sent that block's bytes (its log lines). */
function blocksSent(relayOut) {
  const sent = new Map();
  const plain = relayOut.join("").replace(/\x1b\[[0-9;]*m/g, "");
  for (const line of plain.split("\n")) {
    if (!line.includes("archive node: sent block")) continue;
    const height = Number(/height=(\d+)/.exec(line)?.[1]);
    sent.set(height, (sent.get(height) ?? 0) + 1);
  }
  return sent;
}

for (const mode of ["routed", "self-selected"]) {
  test(`new blocks reach P members of the cluster (${mode})`, async () => {
    const relayOut = [];
    const relay = await startRelay({
      dataDir: tempDir(`growth-${mode}`), initialBlocks: INITIAL, blockIntervalSecs: 2,
      log: (l) => { log.push(l); relayOut.push(l); },
    });
    const pages = await openPages(browser, PAGES, log);
    try {
      await Promise.all(pages.map((page) => page.evaluate(async (options) => {
        const { LightNode } = await import("/dist/index.js");
        window.stored = [];
        window.newBlocks = [];
        window.joined = [];
        window.node = await LightNode.start(options);
        window.node.addEventListener("block-stored", (e) => window.stored.push(e.detail.height));
        window.node.addEventListener("new-block", (e) => window.newBlocks.push(e.detail));
        window.node.addEventListener("member-joined", (e) => window.joined.push(e.detail.peerId));
      }, {
        relays: [relay.ws], database: "growth", clusterSize: PAGES, replicas: REPLICAS,
        newBlocks: mode, headerPollIntervalMs: HOUR_MS,
      })));
      // The first height mined once every page is a member with the chain: from there on, new
      // blocks go by the announcement path.
      let firstAnnounced;
      const formedBy = Date.now() + 90_000;
      for (;;) {
        const status = await Promise.all(pages.map((p) => p.evaluate(() => window.node.status())));
        if (status.every((s) => s.memberNumber !== null && s.nodeHasHeaders)) {
          firstAnnounced = Math.max(...status.map((s) => s.tip.height)) + 1;
          break;
        }
        assert.ok(Date.now() < formedBy, `no cluster of ${PAGES}: ${JSON.stringify(status)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const last = Math.max(GROWN, firstAnnounced + 5);
      const deadline = Date.now() + 150_000;
      let copies;
      for (;;) {
        const stored = await Promise.all(pages.map((p) => p.evaluate(() => window.stored)));
        copies = new Map();
        for (const heights of stored) for (const h of heights) copies.set(h, (copies.get(h) ?? 0) + 1);
        let done = true;
        for (let h = 0; h <= last; h++) done &&= (copies.get(h) ?? 0) >= REPLICAS;
        if (done) break;
        assert.ok(Date.now() < deadline, `not stored in time: ${JSON.stringify([...copies].sort((a, b) => a[0] - b[0]))}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      // Every block, mined before or during the test, on exactly P members.
      for (let h = 0; h <= last; h++) assert.equal(copies.get(h), REPLICAS, `copies of height ${h}`);
      const status = await Promise.all(pages.map((p) => p.evaluate(() => window.node.status())));
      for (const s of status) {
        assert.ok(s.tip.height >= last, `the pages followed the chain: ${s.tip.height}`);
        // With the poll an hour away, the headers after the first sync came by announcement.
        assert.ok(s.announcedHeaders >= last - firstAnnounced, `announced headers: ${s.announcedHeaders}`);
      }
      // How often the relay sent each announced block's bytes: once per cluster (routed) or
      // once per holder (self-selected), not once per page, and no second download by repair.
      const sent = blocksSent(relayOut);
      const counts = [];
      for (let h = firstAnnounced; h <= last; h++) counts.push([h, sent.get(h) ?? 0]);
      const expected = mode === "routed" ? 1 : REPLICAS;
      for (const [h, n] of counts) {
        assert.equal(n, expected, `the relay sent block ${h} ${n} times (${mode}): ${JSON.stringify(counts)}`);
      }
      // `new-block`: one event per height past the chain each page first synced, in order,
      // naming the block its verified chain has there (the same on every page).
      const seen = await Promise.all(pages.map((p) => p.evaluate(() => window.newBlocks)));
      const hashAt = new Map();
      for (const [i, events] of seen.entries()) {
        assert.ok(events.length > 0, `page ${i} heard of no new block`);
        const heights = events.map((e) => e.height);
        const first = heights[0];
        assert.deepEqual(heights, heights.map((_, k) => first + k), `page ${i}: consecutive heights ${heights}`);
        assert.ok(heights.at(-1) >= last, `page ${i} heard of the blocks up to ${last}: ${heights}`);
        for (const e of events) {
          assert.match(e.blockHash, /^[0-9a-f]{64}$/);
          if (hashAt.has(e.height)) assert.equal(e.blockHash, hashAt.get(e.height), `height ${e.height}`);
          hashAt.set(e.height, e.blockHash);
        }
      }
      const ids = status.map((s) => s.peerId);
      const joined = await Promise.all(pages.map((p) => p.evaluate(() => window.joined)));
      for (const [i, who] of joined.entries()) {
        assert.deepEqual([...new Set(who)].sort(), ids.filter((id) => id !== ids[i]).sort(), `member-joined on page ${i}`);
      }
      await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
    } finally {
      await Promise.all(pages.map((p) => p.context().close()));
      await relay.stop();
    }
  });
}
