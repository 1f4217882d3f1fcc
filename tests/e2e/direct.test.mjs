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
  const common = { database: "direct", clusterSize: 3, replicas: REPLICAS, heartbeatIntervalMs: 500 };
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
  // From now on the members' traffic (heartbeats every 500 ms) goes over the direct
  // connections: the relay forwards no byte of it (its circuit byte counter stands still) while
  // each page keeps hearing from the other two.
  const heard = async () => (await Promise.all(pages.map(status))).map((s) => s.memberDetails.filter((m) => !m.self).map((m) => m.lastHeardAt));
  const relayedBefore = (await relay.status()).relayed_bytes;
  const heardBefore = await heard();
  await new Promise((r) => setTimeout(r, 3_000));
  const relayedAfter = (await relay.status()).relayed_bytes;
  const heardAfter = await heard();
  assert.equal(typeof relayedBefore, "number", "the relay reports relayed_bytes");
  assert.equal(relayedAfter - relayedBefore, 0, "no byte between members went through the relay");
  for (const [i, times] of heardAfter.entries()) {
    for (const [j, t] of times.entries()) assert.ok(t > heardBefore[i][j], `page ${i} heard member ${j} again: ${heardBefore[i][j]} → ${t}`);
  }
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

test("a page that does not connect directly stays on the circuit, and the cluster works through it", async () => {
  const pages = await openPages(browser, 3, log);
  const common = { database: "fallback", clusterSize: 3, replicas: REPLICAS };
  await startNodes(pages, [common, common, { ...common, directConnections: false }]);
  const ids = (await Promise.all(pages.map(status))).map((s) => s.peerId);
  await waitUntil("shards filled", 120_000, async () => {
    const statuses = await Promise.all(pages.map(status));
    const held = statuses.reduce((n, s) => n + s.heldBlocks, 0);
    return statuses.every((s) => s.clusterId && s.clusterId === statuses[0].clusterId && s.members.length === 3) && held >= REPLICAS * (BLOCKS + 1);
  });
  // Pages 0 and 1 end with one direct connection to each other; page 2 reaches both through
  // circuits only (one or two each: both ends may have dialled one).
  let last;
  try {
    await waitUntil("pages 0 and 1 direct, page 2 on circuits", 60_000, async () => {
      const [a, b, c] = await Promise.all(pages.map(status));
      last = [a, b, c].map((s, i) => `page ${i}: ${pageLinks(s, ids)}`).join("; ");
      const toC = pageLinks(c, [ids[0], ids[1]]);
      return pageLinks(a, [ids[1]]).join() === `${ids[1].slice(-6)} webrtc` &&
        pageLinks(b, [ids[0]]).join() === `${ids[0].slice(-6)} webrtc` &&
        toC.every((l) => l.endsWith(" circuit")) && new Set(toC).size === 2;
    });
  } catch (error) {
    throw new Error(`${error.message}; last seen: ${last}; ids ${ids.map((id) => id.slice(-6))}`);
  }
  await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
  await Promise.all(pages.map((p) => p.context().close()));
});
