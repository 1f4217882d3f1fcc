// Failure domains and storage quota (issue 17, S8), in real browsers:
//   1. two browser contexts stand for two devices (a browser profile each: their own storage,
//      so their own device id), two tabs in each, and a member relay (a device of its own) form
//      one cluster (clusterSize 5, replicas 2). The tabs of one context report one device, the
//      contexts differ; every block's copies (each tab's `shard()`, the relay's disk) span at
//      least two devices, placement (`shardMap()`) never gives one block to two members of one
//      device, and `status().failureDomains` says 3 devices, spread. Then every tab of one
//      device closes at once (`context.close()`): no block is lost — the other device and the
//      relay hold every one — and repair brings each back to P copies.
//   2. in a browser that reports the origin quota it enforces (Chromium reports an artificial
//      quota of usage + 10 GiB by default: `--disable-features=StaticStorageQuota` turns that
//      off), four tabs of their own contexts get quotas through the DevTools protocol
//      (`Storage.overrideQuotaForOrigin`), one a quarter of the others': it reports a capacity
//      of a quarter of theirs and, in one cluster with them, holds far fewer blocks.
//   3. a tab whose origin quota is cut to what it uses already (no free room left) lowers the
//      capacity it offers at its next look at the estimate (every 15 s), its cluster's next
//      view carries it, and it hands its blocks over: the others fetch them, then it deletes
//      its copies — every block stays on P copies throughout.
// Heartbeats every 500 ms, a member silent for 2.5 s is declared lost: the waits are bounds.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  HTTP_PORT, ORIGIN, P2P_PORT, launchBrowser, relayCli, startRelay, teardown, tempDir, waitUntil,
} from "./harness.mjs";

const BLOCKS = 40;
const CHAIN = BLOCKS + 1; // genesis included
const REPLICAS = 2;
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 1_000 };
const RELAY = "relay"; // the member relay's device in the tables below
let archive;
let member;
let browser;
let quotaBrowser;
const log = [];

before(async () => {
  const chainFile = join(tempDir("fd-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "17", "--txs-per-block", "3", "--out", chainFile]);
  archive = await startRelay({ dataDir: tempDir("fd-archive"), importFile: chainFile, log: (l) => log.push(`[archive] ${l}`) });
  browser = await launchBrowser();
});

after(() => teardown({ browser, relays: [member, archive], log }).then(() => quotaBrowser?.close()));

const status = (page) => page.evaluate(() => window.node.status());

/** Opens a tab in `context` at the relay's origin and starts a node in it with `options`. */
async function startTab(context, name, options, quotaBytes) {
  const page = await context.newPage();
  page.on("console", (m) => log.push(`[${name}] ${m.text()}\n`));
  await page.goto(`${ORIGIN}/relay-addrs.json`);
  if (quotaBytes !== undefined) {
    const cdp = await context.newCDPSession(page);
    await cdp.send("Storage.overrideQuotaForOrigin", { origin: ORIGIN, quotaSize: quotaBytes });
  }
  await page.evaluate(async (o) => {
    const { LightNode } = await import("/dist/index.js");
    window.domains = []; // failure-domains events
    window.node = await LightNode.start(o);
    window.node.addEventListener("failure-domains", (e) => window.domains.push(e.detail));
  }, { replicas: REPLICAS, ...TIMINGS, ...options });
  return { name, page };
}

/** Heights each holder holds: tabs from `shard()`, the member relay from /status.json. */
async function holdings(tabs, withRelay) {
  const out = [];
  for (const tab of tabs) {
    const heights = await tab.page.evaluate(async () => (await window.node.shard()).map((b) => b.height));
    out.push({ device: tab.device, heights });
  }
  if (withRelay) out.push({ device: RELAY, heights: (await member.status()).held.map((b) => b.height) });
  return out;
}

/** Per height: the set of devices holding it, and how many copies there are. */
function byHeight(held) {
  const devices = Array.from({ length: CHAIN }, () => new Set());
  const copies = new Array(CHAIN).fill(0);
  for (const { device, heights } of held) {
    for (const h of heights) {
      devices[h].add(device);
      copies[h] += 1;
    }
  }
  return { devices, copies };
}

test("tabs of one browser are one device: every block's copies span two devices, and losing a device loses no block", async (t) => {
  member = await startRelay({
    dataDir: tempDir("fd-member"),
    role: "member",
    peers: [archive.ws],
    clusterSize: 5,
    replicas: REPLICAS,
    timings: TIMINGS,
    httpPort: HTTP_PORT + 1,
    p2pPort: P2P_PORT + 1,
    log: (l) => log.push(`[member relay] ${l}`),
  });
  const options = { relays: [archive.ws, member.ws], database: "fd", clusterSize: 5 };
  const laptop = await browser.newContext();
  const phone = await browser.newContext();
  const tabs = [];
  for (const [context, name] of [[laptop, "laptop 1"], [laptop, "laptop 2"], [phone, "phone 1"], [phone, "phone 2"]]) {
    tabs.push(await startTab(context, name, options));
  }
  for (const tab of tabs) {
    const s = await status(tab.page);
    Object.assign(tab, { peerId: s.peerId, device: s.device, storage: s.storage });
  }
  const [l1, l2, p1, p2] = tabs;
  t.diagnostic(`devices: laptop ${l1.device}, phone ${p1.device}; slots ${l1.storage.liveTabs}/${l2.storage.liveTabs} live tabs seen at start`);
  assert.match(l1.device, /^[0-9a-f]{16}$/);
  assert.equal(l2.device, l1.device, "two tabs of one browser context report one device");
  assert.equal(p2.device, p1.device, "two tabs of one browser context report one device");
  assert.notEqual(p1.device, l1.device, "two contexts are two devices");
  assert.equal(l2.storage.liveTabs, 2, "the second tab of a context counts two live nodes on its origin");

  // One cluster of five: four tabs and the member relay, spread over three devices.
  const formed = await waitUntil("one cluster of the four tabs and the member relay", 120_000, async () => {
    const m = await member.status();
    const ss = await Promise.all(tabs.map((tab) => status(tab.page)));
    return m.cluster_id && m.members.length === 5 && ss.every((s) => s.clusterId === m.cluster_id) && ss;
  }, 500);
  for (const s of formed) {
    assert.deepEqual(s.failureDomains, { members: 5, devices: 3, segments: 1, replicas: REPLICAS, spread: true }, `${s.peerId}: failureDomains`);
  }
  const deviceOf = new Map(tabs.map((tab) => [tab.peerId, tab.device]));
  deviceOf.set(member.info.peer_id, RELAY);

  // Every block on P members; each block's copies span two devices, as placement says.
  const filled = await waitUntil("every block on P members, their shards complete", 120_000, async () => {
    const m = await member.status();
    const ss = await Promise.all(tabs.map((tab) => status(tab.page)));
    if (m.missing_blocks !== 0 || ss.some((s) => s.missingBlocks !== 0)) return null;
    const { devices, copies } = byHeight(await holdings(tabs, true));
    return copies.every((c) => c >= REPLICAS) && devices.every((d) => d.size >= 2) && { devices, copies };
  }, 500);
  for (let h = 0; h < CHAIN; h++) assert.ok(filled.devices[h].size >= 2, `height ${h}: copies on ${[...filled.devices[h]]}`);
  const map = await l1.page.evaluate((to) => window.node.shardMap(0, to), BLOCKS);
  map.holders.forEach((numbers, h) => {
    const devices = numbers.map((n) => deviceOf.get(map.members[n]));
    assert.equal(numbers.length, REPLICAS, `height ${h}: P holders`);
    assert.equal(new Set(devices).size, REPLICAS, `height ${h}: placement puts its copies on distinct devices (${devices})`);
  });
  const perDevice = (d) => filled.devices.filter((set) => set.has(d)).length;
  t.diagnostic(`blocks per device: laptop ${perDevice(l1.device)}, phone ${perDevice(p1.device)}, relay ${perDevice(RELAY)} of ${CHAIN}`);
  const told = await l1.page.evaluate(() => window.domains);
  assert.ok(told.length > 0 && told.at(-1).spread === true, `the failure-domains event said so: ${JSON.stringify(told)}`);

  // The laptop goes: both its tabs at once. The phone and the relay still hold every block.
  await laptop.close();
  const survivors = [p1, p2];
  const { copies: left } = byHeight(await holdings(survivors, true));
  const lost = left.flatMap((c, h) => (c === 0 ? [h] : []));
  assert.deepEqual(lost, [], "no block is lost with a whole device");
  const once = left.filter((c) => c < REPLICAS).length;
  t.diagnostic(`after the laptop closed: ${once} blocks down to one copy, none lost`);

  // The cluster drops the laptop's two tabs and repairs every block back to P copies, on the
  // two devices left.
  const repaired = await waitUntil("every block back on P members after the device loss", 90_000, async () => {
    const m = await member.status();
    const ss = await Promise.all(survivors.map((tab) => status(tab.page)));
    if (m.members.length !== 3 || m.missing_blocks !== 0 || ss.some((s) => s.members.length !== 3 || s.missingBlocks !== 0)) return null;
    const { devices, copies } = byHeight(await holdings(survivors, true));
    return copies.every((c) => c >= REPLICAS) && devices.every((d) => d.size >= 2) && ss;
  }, 500);
  for (const s of repaired) {
    assert.deepEqual(s.failureDomains, { members: 3, devices: 2, segments: 1, replicas: REPLICAS, spread: true }, "the phone and the relay");
  }
  await phone.close();
  await member.stop();
  member = undefined;
});

test("a tab with a quarter of the quota offers a quarter of the capacity and holds far fewer blocks", async (t) => {
  // Chromium reports the quota it enforces only with its "static storage quota" off.
  quotaBrowser = await launchBrowser({ extraArgs: ["--disable-features=StaticStorageQuota"] });
  const FULL = 400e6;
  const SMALL = 100e6;
  const options = { relays: [archive.ws], database: "fd-quota", clusterSize: 4 };
  const contexts = [];
  const tabs = [];
  for (const [name, quota] of [["full 1", FULL], ["full 2", FULL], ["full 3", FULL], ["small", SMALL]]) {
    const context = await quotaBrowser.newContext();
    contexts.push(context);
    tabs.push(await startTab(context, name, options, quota));
  }
  const small = tabs[3];
  const started = await Promise.all(tabs.map((tab) => status(tab.page)));
  for (const [i, s] of started.entries()) {
    assert.equal(s.storage.capacityFrom, "estimate", tabs[i].name);
    assert.equal(s.storage.quotaBytes, i === 3 ? SMALL : FULL, `${tabs[i].name}: the overridden quota`);
    assert.equal(s.storage.liveTabs, 1, `${tabs[i].name}: alone on its origin`);
    assert.equal(typeof s.storage.persisted, "boolean");
  }
  const capacity = started.map((s) => s.storage.capacityBytes);
  t.diagnostic(`capacities: ${capacity.map((c) => `${(c / 1e6).toFixed(1)} MB`).join(", ")}; persisted ${started.map((s) => s.storage.persisted)}`);
  for (let i = 0; i < 3; i++) {
    assert.ok(capacity[i] <= 0.8 * FULL && capacity[i] > 0.79 * FULL, `${tabs[i].name}: 80 % of its free room`);
    assert.ok(capacity[3] < capacity[i] / 3.9 && capacity[3] > capacity[i] / 4.1, "the small tab offers a quarter");
  }

  const formed = await waitUntil("one cluster of the four tabs, shards complete", 150_000, async () => {
    const ss = await Promise.all(tabs.map((tab) => status(tab.page)));
    const one = ss[0].clusterId && ss.every((s) => s.clusterId === ss[0].clusterId && s.members.length === 4);
    return one && ss.every((s) => s.missingBlocks === 0 && s.holding.spareBlocks === 0) && ss;
  }, 500);
  // What each holds, and what placement gives each under the view.
  const held = (await holdings(tabs, false)).map((h) => h.heights.length);
  const map = await small.page.evaluate((to) => window.node.shardMap(0, to), BLOCKS);
  const placed = formed.map((s) => map.holders.filter((numbers) => numbers.includes(s.memberNumber)).length);
  const others = held.slice(0, 3).reduce((a, b) => a + b, 0) / 3;
  t.diagnostic(`blocks held: ${tabs.map((tab, i) => `${tab.name} ${held[i]} (placed ${placed[i]})`).join(", ")} of ${CHAIN} × ${REPLICAS}`);
  assert.equal(held.reduce((a, b) => a + b, 0) >= REPLICAS * CHAIN, true, "every block on P members");
  assert.ok(held[3] < 0.7 * others, `the small tab holds ${held[3]} blocks, the others ${others.toFixed(1)} on average`);
  for (const c of contexts) await c.close();
});

test("a tab whose quota is cut hands its blocks over, every block on P copies throughout", async (t) => {
  quotaBrowser ??= await launchBrowser({ extraArgs: ["--disable-features=StaticStorageQuota"] });
  const FULL = 400e6;
  const options = { relays: [archive.ws], database: "fd-shrink", clusterSize: 4 };
  const contexts = [];
  const tabs = [];
  for (const name of ["a", "b", "c", "cut"]) {
    const context = await quotaBrowser.newContext();
    contexts.push(context);
    tabs.push(await startTab(context, name, options, FULL));
  }
  const cut = tabs[3];
  await waitUntil("one cluster of the four tabs, shards complete", 150_000, async () => {
    const ss = await Promise.all(tabs.map((tab) => status(tab.page)));
    const one = ss[0].clusterId && ss.every((s) => s.clusterId === ss[0].clusterId && s.members.length === 4);
    return one && ss.every((s) => s.missingBlocks === 0 && s.holding.spareBlocks === 0) && ss;
  }, 500);
  const before = (await holdings(tabs, false)).map((h) => h.heights.length);
  const capacityBefore = (await status(cut.page)).storage.capacityBytes;
  // No free room left: the quota is what the origin uses now.
  const usage = await cut.page.evaluate(async () => (await navigator.storage.estimate()).usage);
  const cdp = await contexts[3].newCDPSession(cut.page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: ORIGIN, quotaSize: usage });
  let fewest = Infinity;
  const moved = await waitUntil("the cut tab hands its blocks over", 90_000, async () => {
    // The cut tab is read first: a block it no longer has when read was stored by its new
    // holder before (it deletes a copy only once the new holder proved it holds it), so the
    // reads after see it there — a count below P here is a real one, not the reads' order.
    const [first, ...rest] = await holdings([cut, ...tabs.slice(0, 3)], false);
    const held = [...rest, first];
    const { copies } = byHeight(held);
    fewest = Math.min(fewest, ...copies);
    const ss = await Promise.all(tabs.map((tab) => status(tab.page)));
    // Settled: no copy missing, none spare (deleted once its new holders confirmed).
    const settled = ss.every((s) => s.missingBlocks === 0) && copies.every((c) => c === REPLICAS);
    const shrunk = ss[3].storage.capacityBytes < capacityBefore / 2 && held[3].heights.length <= before[3] / 2;
    return settled && shrunk && { held: held.map((h) => h.heights.length), capacity: ss[3].storage.capacityBytes, copies };
  }, 500);
  t.diagnostic(`blocks held before ${before.join(", ")}; after ${moved.held.join(", ")}; the cut tab offers ${(moved.capacity / 1e3).toFixed(0)} kB (was ${(capacityBefore / 1e6).toFixed(0)} MB)`);
  assert.ok(fewest >= REPLICAS, `a block fell to ${fewest} copies while moving`);
  const others = moved.held.slice(0, 3);
  assert.ok(others.reduce((a, b) => a + b, 0) > before.slice(0, 3).reduce((a, b) => a + b, 0), "the others took them");
  for (const c of contexts) await c.close();
});
