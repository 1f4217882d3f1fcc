// The demo page (issue 13), in real Chromium inside run.sh's network namespace.
//
// 1. The page's own Bitcoin code (www/bitcoin.js), run in Node: it finds the same txids and
//    Merkle roots as the relay's CLI in a generated chain, recomputes the CLI's proofs up to
//    the root, and refuses truncated, padded and oversized blocks.
// 2. One archive relay generates a regtest chain of BLOCKS blocks and mines one every few
//    seconds; TABS tabs open the demo page itself (`/?clusterSize=…`), clusterSize 5, replicas
//    2, heartbeats every 500 ms, a member silent for 2.5 s lost. Five form a cluster, the sixth
//    stays outside. Then:
//    - at formation, after a member tab is closed, and after the outside tab has replaced it
//      and the cluster is whole again, a screenshot goes to test-artifacts/;
//    - at formation and after repair, in every tab: the ring's member elements are the
//      members of `status()`, in order, this tab marked; the shard map's pixels (read with
//      getImageData at each cell's centre) show this tab's column = its `shard()` heights,
//      every row P assigned cells, and another tab's column = what that tab holds; the storage
//      figures are `status()`'s and the relay's;
//    - the tab that closed is drawn late or offline, then the view's replacement joins;
//    - a transaction the page offers verifies with one click, its proof path recomputed by
//      the page up to the root in the tab's header;
//    - the events read as sentences (no JSON), among them a member going offline;
//    - the layout fits a 390 px wide phone screen;
//    - every request the pages made went to the page's own origin or a relay's address.
// The waits are bounds, not timings.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ORIGIN, launchBrowser, relayCli, startRelay, teardown, tempDir } from "./harness.mjs";
import { merklePath, parseBlock } from "../../www/bitcoin.js";

const BLOCKS = 320; // more than the shard map's 300 rows: it shows the newest 300
const MINE_EVERY_S = 5;
const TABS = 6;
const SIZE = 5;
const REPLICAS = 2;
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 2_000 };
const QUERY = new URLSearchParams({ clusterSize: SIZE, replicas: REPLICAS, ...TIMINGS, database: "demo" });
const ARTIFACTS = "test-artifacts";
const NEWEST_IN_FLIGHT = 2; // top rows of the shard map that may be filling in a settled cluster

let relay;
let browser;
const log = [];
const requests = []; // { tab, url }
const pageErrors = []; // uncaught errors in the pages (see openTab)
const tabs = []; // { name, page, closed }

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 500 ms until it returns something truthy, at most `ms`. */
async function waitFor(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    assert.ok(Date.now() < deadline, `${what}: not within ${ms / 1000} s`);
    await sleep(500);
  }
}

/** The blocks of a blk*.dat file (magic, 32-bit length, block; zero padding at the end). */
function blkRecords(file) {
  const bytes = readFileSync(file);
  const blocks = [];
  for (let at = 0; at + 8 <= bytes.length && bytes.readUInt32LE(at) !== 0;) {
    const length = bytes.readUInt32LE(at + 4);
    blocks.push(new Uint8Array(bytes.subarray(at + 8, at + 8 + length)));
    at += 8 + length;
  }
  return blocks;
}

test("the page's Bitcoin code agrees with the relay's CLI and refuses malformed blocks", async () => {
  const file = join(tempDir("demo-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", "4", "--seed", "13", "--target-block-size", "8000", "--out", file]);
  const inspected = relayCli(["block", "inspect", file, "--txids"]).blocks;
  const raw = blkRecords(file);
  assert.equal(raw.length, inspected.length);
  for (const [i, bytes] of raw.entries()) {
    const block = await parseBlock(bytes);
    assert.equal(block.blockHash, inspected[i].hash);
    assert.equal(block.merkleRoot, inspected[i].merkle_root);
    assert.deepEqual(block.txids, inspected[i].txids);
  }
  const last = inspected.at(-1);
  assert.ok(last.witness_commitment === "valid" && last.txids.length > 4, "the last block has segwit transactions");
  for (const txid of last.txids.slice(0, 5)) {
    const proof = relayCli(["block", "prove", file, txid]);
    const path = await merklePath(txid, proof.pos, proof.merkle);
    assert.equal(path.root, last.merkle_root);
    const wrong = await merklePath(txid, proof.pos ^ 1, proof.merkle);
    assert.notEqual(wrong.root, last.merkle_root, "a wrong position gives another root");
  }

  const block = raw.at(-1);
  await assert.rejects(parseBlock(block.subarray(0, block.length - 1)), /truncated/);
  const padded = new Uint8Array(block.length + 1);
  padded.set(block);
  await assert.rejects(parseBlock(padded), /1 bytes after the last transaction/);
  const huge = new Uint8Array(90);
  huge.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 80);
  await assert.rejects(parseBlock(huge), /cannot fit in a block/);
  await assert.rejects(parseBlock(new Uint8Array(4_000_001)), /a block of 4000001 bytes/);
});

test("the page refuses a malformed query option with a sentence naming it", async () => {
  const page = await (await browser.newContext()).newPage();
  page.on("request", (r) => requests.push({ tab: "bad-options", url: r.url() }));
  for (const [query, message] of [
    ["clusterSize=abc", /\?clusterSize= must be a whole number from 1 to 64, not "abc"/],
    ["heartbeatIntervalMs=0", /\?heartbeatIntervalMs= must be a whole number/],
    ["replicas=2&replicas=3", /\?replicas= is given twice/],
    ["colour=red", /unknown option \?colour=/],
    ["clusterSize=4&replicas=4", /BAD_INPUT: options.replicas \(4\) must be less than options.clusterSize \(4\)/],
  ]) {
    await page.goto(`${ORIGIN}/?${query}`);
    await page.waitForSelector("#fatal:not([hidden])", { timeout: 30_000 });
    assert.match(await page.textContent("#fatal"), message);
  }
  await page.context().close();
});

before(async () => {
  relay = await startRelay({
    dataDir: tempDir("demo-relay"),
    initialBlocks: BLOCKS,
    blockIntervalSecs: MINE_EVERY_S,
    log: (l) => log.push(`[relay] ${l}`),
  });
  browser = await launchBrowser();
});

after(() => teardown({ browser, relay, log }));

/** The addresses a page may reach: its origin, and each relay address as a URL origin. */
function allowedOrigins() {
  const allowed = new Set([ORIGIN]);
  for (const addr of relay.info.addrs) {
    const m = addr.match(/^\/ip4\/([^/]+)\/tcp\/(\d+)\/ws\//);
    if (m) allowed.add(`ws://${m[1]}:${m[2]}`);
  }
  return allowed;
}

async function openTab(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on("console", (m) => log.push(`[${name}] ${m.text()}\n`));
  page.on("pageerror", (e) => {
    log.push(`[${name}] page error: ${e.message}\n`);
    // Known and not ours: libp2p-webrtc-websys's RTCDataChannel callbacks can fire after their
    // Rust closure was dropped (rust-libp2p #6551; its fix, PR #6558, is not merged).
    if (!e.message.includes("closure invoked recursively or after being dropped")) pageErrors.push(`[${name}] ${e.message}`);
  });
  page.on("request", (r) => requests.push({ tab: name, url: r.url() }));
  page.on("websocket", (ws) => requests.push({ tab: name, url: ws.url() }));
  await page.goto(`${ORIGIN}/?${QUERY}`);
  const tab = { name, page, closed: false };
  tabs.push(tab);
  return tab;
}

const up = () => tabs.filter((t) => !t.closed);
const status = (tab) => tab.page.evaluate(() => window.shoalNode.status());

/** The cluster as the up tabs see it: settled when `count` tabs share one cluster id and view,
 * each holds its whole shard, and every member's details say it holds its shard too. */
let lastCluster = "";

async function cluster(count) {
  const all = await Promise.all(up().map(async (tab) => ({ tab, s: await tab.page.evaluate(() => window.shoalNode?.status() ?? null) })));
  if (all.some((x) => x.s === null)) return null;
  const members = all.filter((x) => x.s.clusterId);
  const ids = new Set(members.map((x) => x.s.clusterId));
  const views = new Set(members.map((x) => x.s.members.join()));
  // What a wait that times out reports: each tab's cluster, view size, blocks missing and
  // members whose whole shard it has not heard of.
  lastCluster = all.map((x) => `${x.tab.name}: ${x.s.clusterId ? x.s.clusterId.slice(0, 8) : "outside"} ` +
    `view ${x.s.members.length} missing ${x.s.missingBlocks} synced ${x.s.synced} ` +
    `unheld ${x.s.memberDetails.filter((d) => !d.shardHeld).length} links ${x.s.connections.map((c) => c.transport[0]).join("")}`).join("; ");
  const settled = members.length === count && ids.size === 1 && views.size === 1
    && members.every((x) => x.s.synced && x.s.missingBlocks === 0 && x.s.members.length === count)
    && members.every((x) => x.s.memberDetails.length === count && x.s.memberDetails.every((d) => d.shardHeld));
  if (!settled) return null;
  return {
    members: members.map((x) => x.tab),
    outside: all.filter((x) => !x.s.clusterId).map((x) => x.tab),
    view: members[0].s.members,
  };
}

/**
 * Redraws `tab`'s page and reads back, in one go, what it drew and what its node says: the
 * ring's member elements, the shard map's cell states read from the canvas pixels, its
 * storage figures, and `shard()`. Re-read while the node changed during the reading or has a
 * block of its shard still to store (a new one, mined meanwhile).
 */
function readPicture(tab) {
  return tab.page.evaluate(async () => {
    const node = window.shoalNode;
    for (let attempt = 0; attempt < 50; attempt++) {
      const before = node.status();
      // What was drawn, taken before anything else can draw again.
      const { status: drawn, storage, shardMap: map } = await window.shoalDemo.refresh();
      const ring = [...document.querySelectorAll("#ring g.member")].map((g) => ({
        peerId: g.dataset.peerId, number: Number(g.dataset.number), self: g.classList.contains("self"),
        state: g.dataset.state, kind: g.dataset.kind,
      }));
      const relays = [...document.querySelectorAll("#ring g.relay")].map((g) => g.dataset.peerId);
      const bars = { tab: document.getElementById("bar-tab").dataset.value, cluster: document.getElementById("bar-cluster").dataset.value };
      let pixels = null;
      if (map) {
        const canvas = document.getElementById("shard-map");
        const image = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        const g = map.geometry;
        const hex = (x, y) => {
          const i = 4 * (Math.round(y * g.dpr) * image.width + Math.round(x * g.dpr));
          return `#${[0, 1, 2].map((k) => image.data[i + k].toString(16).padStart(2, "0")).join("")}`;
        };
        // pixels[col][i]: the colour at the centre of the cell of height toHeight − i.
        pixels = map.columns.map((_, col) => {
          const x = g.left + col * g.colW + Math.floor(g.cellW / 2);
          return Array.from({ length: map.toHeight - map.fromHeight + 1 }, (__, i) => hex(x, g.top + i * g.rowH + Math.floor(g.cellH / 2)));
        });
      }
      const shard = (await node.shard()).map((b) => b.height);
      const after = node.status();
      const same = [before, drawn].every((x) => x.heldBlocks === after.heldBlocks && x.storedBytes === after.storedBytes
        && x.tip.height === after.tip.height && x.members.join() === after.members.join())
        && shard.length === after.heldBlocks && after.missingBlocks === 0; // not while a new block is on its way
      if (same) {
        return {
          status: after, drawn, ring, relays, bars, shard, pixels, storage,
          map: map && { fromHeight: map.fromHeight, toHeight: map.toHeight, columns: map.columns, palette: map.palette },
        };
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error("the node kept changing while its picture was read");
  });
}

/** The heights whose cell in `col` has one of `states`' colours, from the pixels. */
function cellsOf(picture, col, states) {
  const { palette } = picture.map;
  const colours = states.map((state) => (state === "spare" ? palette.spare : palette[state][col]));
  const heights = [];
  picture.pixels[col].forEach((colour, i) => {
    if (colours.includes(colour)) heights.push(picture.map.toHeight - i);
  });
  return heights.sort((a, b) => a - b);
}

/** Every pixel is one of the palette's colours for its column or the empty cell's. */
function classify(picture, col, colour) {
  const { palette } = picture.map;
  if (colour === palette.held[col]) return "held";
  if (colour === palette.filling[col]) return "filling";
  if (colour === palette.spare) return "spare";
  if (colour === palette.empty) return null;
  assert.fail(`column ${col}: a cell centre of colour ${colour}, not one of the palette's`);
}

/** Checks every up tab's picture against its node (see the file's docs). */
async function checkPictures(when) {
  const pictures = new Map();
  for (const tab of up()) pictures.set(tab.name, await readPicture(tab));
  const relayStatus = await relay.status();
  for (const [name, p] of pictures) {
    const s = p.status;
    const at = `${when}, ${name}`;
    assert.deepEqual(p.ring.map((m) => m.peerId), s.members, `${at}: the ring draws the members of status()`);
    assert.deepEqual(p.ring.map((m) => m.number), s.members.map((_, i) => i), `${at}: numbered by member number`);
    assert.deepEqual(p.ring.filter((m) => m.self).map((m) => m.peerId), s.clusterId ? [s.peerId] : [], `${at}: this tab marked`);
    assert.ok(p.ring.every((m) => m.kind === "tab"), `${at}: every member is a tab`);
    assert.ok(p.ring.every((m) => m.state !== "offline"), `${at}: no member drawn offline in a settled cluster`);
    assert.deepEqual(p.relays, [relay.info.peer_id], `${at}: the archive relay drawn apart from the ring`);
    assert.equal(p.storage.tabBytes, s.storedBytes, `${at}: this tab's bytes`);
    assert.equal(p.bars.tab, String(s.storedBytes), `${at}: this tab's bar`);
    assert.ok(p.storage.chainBytes > 0 && p.storage.chainBytes <= relayStatus.chain_bytes, `${at}: the chain's bytes from the relay`);
    if (s.clusterId) {
      assert.equal(s.memberDetails.length, s.members.length);
      // Others' figures come with their heartbeats: those of the snapshot drawn.
      const total = p.drawn.memberDetails.reduce((sum, d) => sum + (d.self ? s.storedBytes : d.report?.storedBytes ?? 0), 0);
      assert.equal(p.storage.clusterBytes, total, `${at}: the cluster's bytes`);
      assert.equal(p.bars.cluster, String(total), `${at}: the cluster's bar`);
    }
    assert.ok(p.map, `${at}: a shard map drawn`);
    const rows = p.map.toHeight - p.map.fromHeight + 1;
    assert.equal(p.map.toHeight, s.tip.height, `${at}: the map's top row is the tip`);
    assert.equal(rows, Math.min(s.tip.height + 1, 300), `${at}: the newest heights`);
    const selfCol = p.map.columns.findIndex((c) => c.self);
    assert.ok(selfCol >= 0, `${at}: a column for this tab`);
    const inWindow = p.shard.filter((h) => h >= p.map.fromHeight && h <= p.map.toHeight).sort((a, b) => a - b);
    assert.deepEqual(cellsOf(p, selfCol, ["held", "spare"]), inWindow, `${at}: this tab's column is its shard()`);
    if (!s.clusterId) {
      assert.equal(p.map.columns.length, 1, `${at}: outside a cluster, one column`);
      continue;
    }
    assert.deepEqual(p.map.columns.map((c) => c.peerId), s.members, `${at}: one column per member`);
    for (let i = 0; i < rows; i++) {
      const states = p.pixels.map((column, col) => classify(p, col, column[i]));
      const assigned = states.filter((x) => x === "held" || x === "filling").length;
      assert.equal(assigned, REPLICAS, `${at}: height ${p.map.toHeight - i} drawn on ${assigned} members, not P`);
      // The newest blocks may still be on their way to their holders (rightly drawn filling).
      if (i >= NEWEST_IN_FLIGHT) assert.ok(!states.includes("filling"), `${at}: settled, yet height ${p.map.toHeight - i} is still filling`);
    }
  }
  // Another tab's column in one tab's map is what that tab holds where placement puts it.
  const members = [...pictures.values()].filter((p) => p.status.clusterId);
  const top = Math.min(...members.map((p) => p.map.toHeight)) - NEWEST_IN_FLIGHT;
  for (const viewer of members) {
    for (const owner of members) {
      const col = viewer.status.members.indexOf(owner.status.peerId);
      const ownerCol = owner.map.columns.findIndex((c) => c.self);
      const seen = cellsOf(viewer, col, ["held"]).filter((h) => h <= top && h >= owner.map.fromHeight);
      const own = cellsOf(owner, ownerCol, ["held"]).filter((h) => h <= top && h >= viewer.map.fromHeight);
      assert.deepEqual(seen, own, `${when}: ${owner.status.peerId}'s column as another member draws it`);
    }
  }
  return pictures;
}

async function screenshot(tab, file) {
  await tab.page.evaluate(() => window.shoalDemo.refresh());
  await tab.page.screenshot({ path: join(ARTIFACTS, file), fullPage: true });
}

test("the demo page shows the cluster forming, losing a member and repairing it", { timeout: 300_000 }, async (t) => {
  const start = Date.now();
  const mark = (what) => t.diagnostic(`${what} after ${((Date.now() - start) / 1000).toFixed(1)} s`);
  for (let i = 0; i < TABS; i++) await openTab(`tab${i}`);
  await waitFor("every page started its node", 60_000, async () => {
    const started = await Promise.all(tabs.map((t) => t.page.evaluate(() => Boolean(window.shoalDemo?.ring))));
    return started.every(Boolean);
  });
  // Usually 12–20 s; two CI runs and one local run (two sessions) took over 120 s, cause not
  // traced yet: the wait says what each tab saw when it gives up.
  const formed = await waitFor("a cluster of 5 that holds its shards", 180_000, () => cluster(SIZE))
    .catch((error) => {
      throw new Error(`${error.message}; last seen: ${lastCluster}`);
    });
  mark("cluster formed and filled");
  assert.equal(formed.outside.length, TABS - SIZE);
  const observer = formed.members[0];
  await checkPictures("at formation");
  await screenshot(observer, "demo-1-formation.png");

  // One click on an offered transaction: verified, and its path recomputed by the page. One
  // of a block another member holds (answered by that member), one of a block this tab holds
  // (answered by itself), as offered.
  await waitFor("transactions offered", 30_000, () => observer.page.evaluate(() => window.shoalDemo.suggestions.length > 0));
  const offered = await observer.page.evaluate(() => window.shoalDemo.suggestions);
  const picks = [offered.find((p) => !p.here), offered.find((p) => p.here)].filter(Boolean);
  assert.ok(picks.length > 0);
  for (const pick of picks) {
    await observer.page.click(`button.suggestion[data-txid="${pick.txid}"]`);
    const verified = await waitFor("the verification", 30_000, () => observer.page.evaluate((txid) => {
      const v = window.shoalDemo.verify;
      return v && v.txid === txid && !v.pending ? v : null;
    }, pick.txid));
    assert.equal(verified.error, undefined, `verify: ${verified.error}`);
    assert.equal(verified.height, pick.height);
    assert.equal(verified.computedRoot, verified.headerRoot, "the page's recomputed root is the header's");
    assert.ok(verified.match);
    assert.equal(verified.source, pick.here ? "local" : "member");
    const shown = await observer.page.textContent("#result");
    assert.match(shown, /✓ matches/);
    assert.match(shown, new RegExp(`computed root${verified.computedRoot}`));
    assert.match(shown, pick.here ? /answered bythis tab/ : /answered bymember \d \(peer 12D3KooW\w+\)/);
  }

  // A member tab closes: the others draw it late, then offline or gone.
  const victim = formed.members.at(-1);
  const victimId = (await status(victim)).peerId;
  await victim.page.context().close();
  victim.closed = true;
  await waitFor("the closed tab drawn as not online", 30_000, () => observer.page.evaluate((id) => {
    const ring = window.shoalDemo.ring;
    const m = ring.members.find((x) => x.peerId === id);
    return (m && m.state !== "online") || ring.ghosts.some((g) => g.peerId === id);
  }, victimId));
  mark("closed tab drawn not online");
  await screenshot(observer, "demo-2-member-closed.png");

  const repaired = await waitFor("the cluster whole again", 120_000, () => cluster(SIZE));
  mark("cluster repaired");
  assert.ok(!repaired.view.includes(victimId), "the closed tab left the view");
  assert.ok(repaired.members.includes(formed.outside[0]), "the outside tab replaced it");
  await checkPictures("after repair");
  await screenshot(observer, "demo-3-repaired.png");

  // The events as sentences.
  const logs = await Promise.all(up().map((t) => t.page.$$eval("#log li", (items) => items.map((li) => li.textContent))));
  for (const lines of logs) {
    for (const line of lines) assert.ok(!/[{}]/.test(line), `an event line with JSON: ${line}`);
  }
  const all = logs.flat().join("\n");
  assert.match(all, /member \d went offline/);
  assert.match(all, /tab joined as member \d/);
  assert.match(all, /new block \d+/);
  assert.match(all, /relay \w{6} connected \((websocket|webrtc-direct)\)/);
  assert.match(all, /(stored|repaired) \d+ blocks/);

  // A phone's width: nothing wider than the screen.
  await observer.page.setViewportSize({ width: 390, height: 844 });
  await screenshot(observer, "demo-4-phone.png");
  const overflow = await observer.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `the page is ${overflow} px wide on a 390 px screen`);

  const allowed = allowedOrigins();
  const outside = requests.filter((r) => !allowed.has(new URL(r.url).origin));
  assert.deepEqual(outside, [], "requests outside the page's origin and the relays");
  assert.ok(requests.some((r) => r.url.endsWith("/dist/index.js")));
  assert.deepEqual(pageErrors, [], "no uncaught error in any page (but libp2p's known one)");
});
