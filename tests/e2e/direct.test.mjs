// Direct page-to-page WebRTC (issue 14): pages that meet through a relay's circuit connect
// directly over libp2p's `/webrtc` (signalling on the circuit), close the circuit, and from
// then on the cluster's traffic between them — heartbeats, views, block transfers — goes over
// the direct connection.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { launchBrowser, openPages, relayCli, startRelay, teardown, tempDir, waitUntil } from "./harness.mjs";

const BLOCKS = 30;
const REPLICAS = 2;
let relay;
let browser;
const log = [];

before(async () => {
  const chainFile = join(tempDir("direct-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "14", "--txs-per-block", "3", "--out", chainFile]);
  relay = await startRelay({ dataDir: tempDir("direct"), importFile: chainFile, log: (l) => log.push(l) });
  browser = await launchBrowser();
});

after(() => teardown({ browser, relay, log }));

const status = (page) => page.evaluate(() => window.node.status());

async function startNodes(pages, options) {
  await Promise.all(pages.map((page, i) => page.evaluate(async ({ relays, options }) => {
    const { LightNode } = await import("/dist/index.js");
    window.events = [];
    window.node = await LightNode.start({ relays, ...options });
    for (const type of ["cluster", "connection", "member-lost"]) {
      window.node.addEventListener(type, (e) => window.events.push({ type, detail: e.detail }));
    }
  }, { relays: [relay.ws], options: options[i] })));
}

/** Connections of `s` to other pages (not to the relay), as `peer transport` strings. */
const pageLinks = (s, peers) => s.connections.filter((c) => peers.includes(c.peerId)).map((c) => `${c.peerId.slice(-6)} ${c.transport}`).sort();

test("three pages connect directly, drop their circuits, and fill their shards over the direct connections", async () => {
  const pages = await openPages(browser, 3, log);
  const common = { database: "direct", clusterSize: 3, replicas: REPLICAS };
  await startNodes(pages, [common, common, common]);
  const ids = (await Promise.all(pages.map(status))).map((s) => s.peerId);
  // Each page ends with exactly one connection to each other page, a direct one.
  await waitUntil("direct connections between all pages", 90_000, async () => {
    const statuses = await Promise.all(pages.map(status));
    return statuses.every((s, i) => {
      const others = ids.filter((_, j) => j !== i);
      const links = pageLinks(s, others);
      return links.length === 2 && links.every((l) => l.endsWith(" webrtc"));
    });
  });
  // One cluster of three, its shards full: every block on REPLICAS members.
  await waitUntil("shards filled", 90_000, async () => {
    const statuses = await Promise.all(pages.map(status));
    const held = statuses.reduce((n, s) => n + s.heldBlocks, 0);
    return statuses.every((s) => s.clusterId && s.clusterId === statuses[0].clusterId && s.members.length === 3) && held >= REPLICAS * (BLOCKS + 1);
  });
  // Each page saw a `connection` event per direct connection, and no member was lost.
  for (const page of pages) {
    const events = await page.evaluate(() => window.events);
    const up = events.filter((e) => e.type === "connection" && e.detail.up && e.detail.transport === "webrtc");
    assert.ok(up.length >= 2, `connection events: ${JSON.stringify(up)}`);
    assert.deepEqual(events.filter((e) => e.type === "member-lost"), []);
  }
  await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
  await Promise.all(pages.map((p) => p.context().close()));
});
