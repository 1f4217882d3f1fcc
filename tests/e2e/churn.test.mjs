// The churn test of issue 12 (item 4), in real Chromium inside run.sh's network namespace.
//
// One archive relay holds an imported regtest chain of 1,000 blocks of 10–100 KB (54 MB) and
// mines a block of that size every few seconds on top of it for the whole test; one member relay
// (`--role member`) follows it. Eight tabs over the file, each given both relays, clusterSize 5
// and replicas 2:
//   1. four tabs and the member relay form one cluster of five and fill their shards; every
//      block is on exactly P members, the members together hold the whole chain, and each
//      member stores P/K of the chain's bytes within 15 %;
//   2. two more tabs stay outside (too few to form a cluster of their own) and store nothing;
//   3. 50 random transactions, each asked of a member that does not hold its block, verify
//      with proofs answered by a member that does (`source: "member"`);
//   4. a member tab is closed and another crashes (its renderer dies, no goodbye): each time
//      an outside tab is recruited (S12) and filled by the members — the relays' archive
//      serves at most 10 % of its shard — and every block is back on P live members (S11);
//   5. a reloaded member tab resumes its identity, its place (nobody declares it lost) and its
//      shard, and downloads none of its blocks again;
//   6. the member relay is killed (SIGKILL) and started again on its data directory: it holds
//      the same blocks and downloads none of them again, and the cluster keeps every block;
//   7. a member tab closes and two tabs open later: one asks to join the cluster with room
//      (S13) and is filled by the members, the other stays outside;
//   8. every block mined during the test is on P live members, and the cluster settles with
//      every block on exactly P of them.
//
// Shards are read from each tab's IndexedDB (the `blocks` store, keyed by block hash) and its
// `shard()`, which must agree, and from the member relay's /status.json (its disk).
// Heartbeats every 500 ms, a member silent for 2.5 s is declared lost: the waits are bounds,
// not timings.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  HTTP_PORT, P2P_PORT, launchBrowser, openPages, relayCli, seeded, startRelay, storedBlockHashes, teardown, tempDir,
  txidOf,
} from "./harness.mjs";

const BLOCKS = 1000; // imported, genesis besides
const BLOCK_SIZE = "10000-100000";
const MINE_EVERY_S = 4;
const SIZE = 5;
const REPLICAS = 2;
const SHARE = REPLICAS / SIZE;
const DATABASE = "churn";
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 2_000 };
const RELAY = "relay"; // the member relay's name among the members
let archive;
let member;
let memberDir;
let browser;
const log = [];
let chain; // `block inspect --txids` of the imported chain: chain[h] is height h
const heightOf = new Map(); // block hash → height: the imported chain's, and mined ones seen
let importedBytes;
/** Every tab opened, by name: { page, peerId, state: "up" | "closed" | "crashed" }. */
const tabs = new Map();
let nextName = 0;

const startMember = () => startRelay({
  dataDir: memberDir,
  role: "member",
  peers: [archive.ws],
  clusterSize: SIZE,
  replicas: REPLICAS,
  timings: TIMINGS,
  httpPort: HTTP_PORT + 1,
  p2pPort: P2P_PORT + 1,
  log: (l) => log.push(`[member relay] ${l}`),
});

before(async () => {
  const chainFile = join(tempDir("churn-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "12", "--target-block-size", BLOCK_SIZE, "--out", chainFile]);
  chain = relayCli(["block", "inspect", chainFile, "--txids"]).blocks;
  importedBytes = chain.reduce((sum, b) => sum + b.size, 0);
  chain.forEach((b, height) => heightOf.set(b.hash, height));
  archive = await startRelay({
    dataDir: tempDir("churn-archive"),
    importFile: chainFile,
    blockIntervalSecs: MINE_EVERY_S,
    targetBlockSize: BLOCK_SIZE,
    upWithinS: 120,
    log: (l) => log.push(`[archive] ${l}`),
  });
  memberDir = tempDir("churn-member");
  member = await startMember();
  browser = await launchBrowser();
});

after(() => teardown({ browser, relays: [member, archive], log }));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 500 ms until it returns a value with `done` not false (or a truthy one
 * without `done`), at most `ms`; fails with `what` and the last value seen otherwise. */
async function waitFor(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last && last.done !== false) return last;
    assert.ok(Date.now() < deadline, `${what}: not within ${ms / 1000} s; last: ${JSON.stringify(last)?.slice(0, 2000)}`);
    await sleep(500);
  }
}

/** Starts a node in `page` (a fresh page or one that reloaded) and records its events. */
async function startNode(page) {
  await page.evaluate(async (options) => {
    const { LightNode } = await import("/dist/index.js");
    window.events = [];
    window.node = await LightNode.start(options);
    for (const type of ["cluster", "member-lost", "member-joined", "block-stored"]) {
      window.node.addEventListener(type, (e) => window.events.push({ type, detail: e.detail }));
    }
  }, { relays: [archive.ws, member.ws], database: DATABASE, clusterSize: SIZE, replicas: REPLICAS, ...TIMINGS });
}

async function openTabs(count) {
  const names = [];
  for (const page of await openPages(browser, count, log)) {
    const name = `tab${nextName++}`;
    const tab = { page, state: "up" };
    page.once("crash", () => { tab.crashed = true; });
    tabs.set(name, tab);
    names.push(name);
  }
  await Promise.all(names.map((name) => startNode(tabs.get(name).page)));
  for (const name of names) tabs.get(name).peerId = (await status(name)).peerId;
  return names;
}

const status = (name) => tabs.get(name).page.evaluate(() => window.node.status());
const up = () => [...tabs.keys()].filter((name) => tabs.get(name).state === "up");
const relayId = () => member.info.peer_id;
const peerIdOf = (name) => (name === RELAY ? relayId() : tabs.get(name).peerId);

/** A tab's IndexedDB block keys and status; with `withShard`, also its `shard()` (height, hash
 * and size of each block; it reads every block, so only when needed). */
async function readTab(name, withShard) {
  const { page } = tabs.get(name);
  const s = await page.evaluate(() => window.node.status());
  const keys = await storedBlockHashes(page, DATABASE);
  const blocks = withShard
    ? await page.evaluate(async () => (await window.node.shard()).map((b) => ({ height: b.height, hash: b.blockHash, size: b.bytes.length })))
    : null;
  return { keys, blocks, s };
}

/** A tab's shard, read from its IndexedDB, with its status. `strict`: also read `shard()`,
 * which must list the same blocks as IndexedDB (re-read a few times: a block being stored or
 * evicted may be in one and not yet in the other), and give each block's size. */
async function tabShard(name, { strict = false } = {}) {
  let read;
  for (let attempt = 0; ; attempt++) {
    const unknown = (r) => r.keys.some((k) => !heightOf.has(k));
    read = await readTab(name, strict);
    if (!strict && unknown(read)) read = await readTab(name, true);
    for (const b of read.blocks ?? []) {
      if (b.height <= BLOCKS) assert.equal(b.hash, chain[b.height].hash, `${name}: the block at ${b.height}`);
      heightOf.set(b.hash, b.height);
    }
    if (!strict) break;
    const same = JSON.stringify([...read.keys].sort()) === JSON.stringify(read.blocks.map((b) => b.hash).sort());
    if (same) break;
    assert.ok(attempt < 10, `${name}: shard() lists what is in IndexedDB`);
    await sleep(300);
  }
  // A block mined during the test is known by its hash once a `shard()` listed it; one just
  // written to IndexedDB may not be listed yet (outside strict reads it is left out until then).
  const known = read.keys.filter((k) => heightOf.has(k));
  if (strict) assert.equal(known.length, read.keys.length, `${name} stores only blocks of the chain`);
  const heights = known.map((k) => heightOf.get(k));
  const sizes = new Map((read.blocks ?? []).map((b) => [b.height, b.size]));
  return { name, heights, bytes: heights.reduce((sum, h) => sum + (sizes.get(h) ?? chain[h]?.size ?? 0), 0), status: read.s };
}

/** The member relay's shard, from its disk (/status.json). */
async function relayShard() {
  const s = await member.status();
  for (const b of s.held) {
    if (b.height <= BLOCKS) assert.equal(b.block_hash, chain[b.height].hash, `member relay: the block at ${b.height}`);
  }
  return { name: RELAY, heights: s.held.map((b) => b.height), status: s };
}

const shardOf = (name) => (name === RELAY ? relayShard() : tabShard(name));

/** The up tabs and the member relay as clusters see them. */
async function clusterOf() {
  const all = await Promise.all(up().map(async (name) => ({ name, s: await status(name) })));
  const r = await member.status();
  const inCluster = all.filter((x) => x.s.clusterId).map((x) => ({ name: x.name, id: x.s.clusterId, view: x.s.members, missing: x.s.missingBlocks }));
  if (r.cluster_id) inCluster.push({ name: RELAY, id: r.cluster_id, view: r.members, missing: r.missing_blocks });
  return {
    ids: [...new Set(inCluster.map((x) => x.id))],
    members: inCluster.map((x) => x.name).sort(),
    outside: all.filter((x) => !x.s.clusterId).map((x) => x.name).sort(),
    views: inCluster.map((x) => [...x.view].sort()),
    missing: inCluster.map((x) => x.missing),
  };
}

/** The archive's tip height. */
const tip = async () => (await archive.status()).tip_height;

/** Copies per height (0 up to `upTo`) over `names`' shards. */
async function copies(names, upTo) {
  const count = new Array(upTo + 1).fill(0);
  for (const name of names) {
    for (const h of (await shardOf(name)).heights) if (h <= upTo) count[h] += 1;
  }
  return count;
}

/** Heights up to `upTo` that are not on exactly (or, `atLeast`, at least) P of `names`. */
async function offCount(names, upTo, atLeast) {
  const count = await copies(names, upTo);
  return count.map((n, h) => [h, n]).filter(([, n]) => (atLeast ? n < REPLICAS : n !== REPLICAS));
}

/** Waits until the up tabs and the member relay are one cluster of `size` whose views name
 * exactly its members, no tab missing a block, and every block up to two below the archive's
 * tip on at least P members (the newest may still be on their way); returns its member names. */
async function settledCluster(what, size, ms) {
  const c = await waitFor(what, ms, async () => {
    const c = await clusterOf();
    const peerIds = c.members.map(peerIdOf).sort();
    const agreed = c.ids.length === 1 && c.members.length === size
      && c.views.every((v) => JSON.stringify(v) === JSON.stringify(peerIds));
    if (!agreed || !c.missing.every((m) => m === 0)) return { ...c, done: false };
    const short = await offCount(c.members, (await tip()) - 2, true);
    return { ...c, short: short.slice(0, 20), done: short.length === 0 };
  });
  return c.members;
}

/** Waits until every block up to `upTo` is on exactly P of `names` (spare copies a view change
 * left deleted once their holders confirmed). */
async function exactlyP(what, names, upTo, ms) {
  await waitFor(what, ms, async () => {
    const shards = new Map();
    for (const name of names) shards.set(name, new Set((await shardOf(name)).heights));
    const off = [];
    const inOff = Object.fromEntries(names.map((name) => [name, 0])); // who holds the off heights
    for (let h = 0; h <= upTo; h++) {
      const holders = names.filter((name) => shards.get(name).has(h));
      if (holders.length === REPLICAS) continue;
      off.push([h, holders.join("+")]);
      for (const name of holders) inOff[name] += 1;
    }
    const { missing } = await clusterOf();
    const r = names.includes(RELAY) ? await member.status() : {};
    const relay = { spares: r.spare_blocks, repair: r.repair, challenges: r.hold_challenges_sent, passed: r.hold_proofs_passed, failed: r.hold_proofs_failed, unanswered: r.hold_challenges_unanswered, answered: r.hold_challenges_answered };
    const holding = {};
    for (const name of names.filter((n) => n !== RELAY)) holding[name] = (await tabs.get(name).page.evaluate(() => window.node.status())).holding;
    return { off: off.slice(0, 10), offCount: off.length, inOff, missing, relay, holding, done: off.length === 0 };
  });
}

let members; // names of the cluster's members after each step
let outsiders;

test("four tabs and the member relay form a cluster of five: every block on exactly P members, each about P/K of the chain", async (t) => {
  await openTabs(4);
  members = await settledCluster("one cluster of 5 with full shards", SIZE, 300_000);
  assert.ok(members.includes(RELAY), "the member relay is a member");
  await exactlyP("every imported block on exactly P members", members, BLOCKS, 120_000);
  const union = new Set();
  for (const name of members) {
    const { heights } = name === RELAY ? await relayShard() : await tabShard(name, { strict: true });
    for (const h of heights) union.add(h);
    const share = heights.filter((h) => h <= BLOCKS).reduce((sum, h) => sum + chain[h].size, 0) / importedBytes;
    t.diagnostic(`${name}: ${heights.length} blocks, ${(share * 100).toFixed(1)} % of the imported chain's bytes (P/K ${SHARE * 100} %)`);
    assert.ok(Math.abs(share / SHARE - 1) <= 0.15, `${name} stores ${share.toFixed(3)} of the chain, P/K is ${SHARE}`);
  }
  const top = (await tip()) - 2;
  for (let h = 0; h <= top; h++) assert.ok(union.has(h), `the members together hold height ${h}`);
});

test("two more tabs stay outside: too few to form a cluster, the cluster full; they store nothing", async () => {
  outsiders = await openTabs(2);
  await sleep(3 * TIMINGS.formationIntervalMs);
  const c = await clusterOf();
  assert.deepEqual(c.outside, [...outsiders].sort());
  assert.deepEqual(c.members, members);
  for (const name of outsiders) {
    const { heights, status: s } = await tabShard(name);
    assert.equal(heights.length, 0, `${name} stores nothing`);
    assert.equal(s.downloadedBytes.fromRelays.blocks + s.downloadedBytes.fromMembers.blocks, 0);
  }
});

test("50 random transactions asked of members that do not hold their blocks verify with proofs from members that do", async () => {
  const shards = new Map();
  for (const name of members) shards.set(name, new Set((await shardOf(name)).heights));
  const askers = members.filter((name) => name !== RELAY);
  const random = seeded(50);
  for (let i = 0; i < 50; i++) {
    const height = 1 + Math.floor(random() * BLOCKS);
    const { hash, txids } = chain[height];
    const txid = txids[Math.floor(random() * txids.length)];
    const asker = askers.find((name) => !shards.get(name).has(height));
    const holders = members.filter((name) => shards.get(name).has(height)).map(peerIdOf);
    const got = await tabs.get(asker).page.evaluate((id) => window.node.verifyTransaction(id), txid);
    assert.equal(got.source, "member", `height ${height} asked of ${asker}`);
    assert.ok(holders.includes(got.answeredBy), `height ${height}: answered by ${got.answeredBy}, a holder`);
    assert.equal(got.blockHash, hash);
    assert.equal(got.height, height);
    assert.equal(txidOf(Buffer.from(got.transaction, "hex")), txid, "the transaction hashes to its txid");
  }
});

/** Takes `gone` out of the cluster (`how`: "close" or "crash"), then waits until the cluster
 * has taken in one of the outsiders and every block is back on P live members. Returns the
 * newcomer. */
async function loseAndReplace(gone, how) {
  const tab = tabs.get(gone);
  if (how === "close") {
    await tab.page.close(); // no goodbye: its connections just end
    tab.state = "closed";
  } else {
    const cdp = await tab.page.context().newCDPSession(tab.page);
    cdp.send("Page.crash").catch(() => {}); // the renderer dies; the call never answers
    await waitFor(`${gone}'s renderer crashed`, 10_000, () => tab.crashed);
    tab.state = "crashed";
  }
  const before = members.filter((name) => name !== gone);
  const now = await settledCluster(`the cluster replaces ${gone} (${how})`, SIZE, 180_000);
  for (const name of before) assert.ok(now.includes(name), `${name} stays a member`);
  const newcomer = now.find((name) => !before.includes(name));
  assert.ok(outsiders.includes(newcomer), `the newcomer ${newcomer} was outside`);
  members = now;
  outsiders = outsiders.filter((name) => name !== newcomer);
  return newcomer;
}

/** The newcomer's shard came from the members: the relays' archive sent at most 10 % of it. */
async function filledByMembers(t, newcomer) {
  const { heights, bytes, status: s } = await tabShard(newcomer, { strict: true });
  assert.ok(heights.length > 0, `${newcomer} holds a shard`);
  const { fromRelays, fromMembers } = s.downloadedBytes;
  t.diagnostic(`${newcomer}: ${heights.length} blocks, ${bytes} B; from members ${fromMembers.blocks} B, from the archive ${fromRelays.blocks} B`);
  assert.ok(fromRelays.blocks <= 0.1 * bytes, `the archive sent ${fromRelays.blocks} of ${bytes} B`);
  assert.ok(fromMembers.blocks >= 0.9 * bytes, `members sent ${fromMembers.blocks} of ${bytes} B`);
}

test("a closed member tab: an outside tab is recruited (S12), filled by the members, every block back on P (S11)", async (t) => {
  const gone = members.find((name) => name !== RELAY);
  await filledByMembers(t, await loseAndReplace(gone, "close"));
});

test("a crashed member tab: the other outside tab is recruited, filled by the members, every block back on P", async (t) => {
  const gone = members.find((name) => name !== RELAY);
  await filledByMembers(t, await loseAndReplace(gone, "crash"));
  assert.equal(outsiders.length, 0);
});

test("a reloaded member tab resumes its place and downloads none of its blocks again", async (t) => {
  const name = members.find((n) => n !== RELAY);
  const { page } = tabs.get(name);
  const before = await tabShard(name, { strict: true });
  const others = members.filter((n) => n !== name && n !== RELAY);
  const lostCount = () => Promise.all(others.map((n) => tabs.get(n).page.evaluate((id) =>
    window.events.filter((e) => e.type === "member-lost" && e.detail.peerId === id).length, before.status.peerId)));
  const lostBefore = await lostCount();
  const tipBefore = await tip();
  await page.reload();
  await startNode(page);
  const after = await waitFor(`${name} is back in its cluster`, 60_000, async () => {
    const s = await tabShard(name);
    return { ...s, done: s.status.clusterId === before.status.clusterId && s.status.missingBlocks === 0 && s.status.nodeHasHeaders };
  });
  assert.equal(after.status.peerId, before.status.peerId, "the same identity");
  const had = new Set(before.heights);
  const gained = after.heights.filter((h) => !had.has(h) && h < tipBefore - 1);
  assert.deepEqual(gained, [], "no block but new ones added to its shard");
  // None of its blocks stored again; what it downloaded are blocks mined since the reload (to
  // hold, or, as the first member to learn of one, to route to its holders: S14), each at
  // most 100 KB.
  const storedAgain = await page.evaluate(() => window.events.filter((e) => e.type === "block-stored").map((e) => e.detail.height));
  assert.deepEqual(storedAgain.filter((h) => had.has(h)), [], "no held block stored again");
  const mined = (await tip()) - tipBefore;
  // Blocks of its shard at the tip that were still on their way at the reload (allowed above)
  // come after it too.
  const atTip = after.heights.filter((h) => !had.has(h) && h >= tipBefore - 1 && h <= tipBefore).length;
  const { fromRelays, fromMembers } = after.status.downloadedBytes;
  const downloaded = fromRelays.blocks + fromMembers.blocks;
  t.diagnostic(`${name}: ${before.heights.length} blocks before, ${after.heights.length} after; downloaded ${downloaded} B while ${mined} blocks were mined (${atTip} at the tip still arriving)`);
  assert.ok(downloaded <= (mined + atTip) * 100_000, `downloaded ${downloaded} B, ${mined} new blocks and ${atTip} at the tip of at most 100 KB`);
  // Two detection timeouts: had the others found it outside their view, they would have
  // declared it lost by now. It resumed its place: nobody did.
  await sleep(2 * TIMINGS.offlineAfterMs);
  await settledCluster("the cluster keeps its members", SIZE, 60_000);
  assert.deepEqual((await clusterOf()).members, members);
  assert.deepEqual(await lostCount(), lostBefore, "no member declared the reloaded tab lost");
});

test("the member relay killed and started again loses nothing and downloads none of its blocks again", async (t) => {
  const before = (await member.status()).held;
  await member.kill();
  member = await startMember();
  const restarted = await member.status();
  // Nothing lost: every block it listed is on its disk after the crash. A block mined and
  // stored between that listing and the kill may be there too.
  const onDisk = new Set(restarted.held.map((b) => b.block_hash));
  for (const b of before) assert.ok(onDisk.has(b.block_hash), `height ${b.height} on disk after the crash`);
  const listed = new Set(before.map((b) => b.block_hash));
  const extra = restarted.held.filter((b) => !listed.has(b.block_hash));
  assert.ok(extra.every((b) => b.height > BLOCKS), `only newly mined blocks besides: ${JSON.stringify(extra)}`);
  const had = onDisk;
  const newlyHeld = (s) => s.held.filter((b) => !had.has(b.block_hash)).length;
  // Back in its cluster (it resumes its membership) with the headers: what it has fetched by
  // then are blocks it did not hold (new ones), not its shard again.
  const back = await waitFor("the member relay back in a cluster", 120_000, async () => {
    const s = await member.status();
    return { ...s, held: s.held.length, done: Boolean(s.cluster_id && s.has_headers) };
  });
  await sleep(1_000);
  const early = await member.status();
  assert.ok(early.blocks_fetched <= newlyHeld(early), `fetched ${early.blocks_fetched} blocks, ${newlyHeld(early)} new ones`);
  // Two detection timeouts: the tabs noticed its absence or its return by now, and whatever
  // repair that set off has run; the cluster holds every block on P members again.
  await sleep(2 * TIMINGS.offlineAfterMs);
  members = await settledCluster("the cluster settles with the member relay", SIZE, 120_000);
  assert.ok(members.includes(RELAY), "the member relay is a member again");
  const after = await member.status();
  t.diagnostic(`member relay: held ${before.length} before, ${after.held.length} after (${newlyHeld(after)} new), ${after.blocks_fetched} blocks fetched since the restart; cluster ${back.cluster_id.slice(0, 8)}`);
});

test("a member tab closes; of two tabs opened later one asks to join (S13) and is filled by the members, the other stays outside", async (t) => {
  const gone = members.find((name) => name !== RELAY);
  await tabs.get(gone).page.close();
  tabs.get(gone).state = "closed";
  const before = members.filter((name) => name !== gone);
  await settledCluster(`the cluster drops ${gone}`, SIZE - 1, 60_000);
  const logged = log.length;
  const late = await openTabs(2);
  const now = await settledCluster("one of the late tabs joins", SIZE, 120_000);
  const joined = now.filter((name) => !before.includes(name));
  assert.equal(joined.length, 1);
  assert.ok(late.includes(joined[0]));
  assert.ok(log.slice(logged).some((line) => line.includes("asking") && line.includes("join its cluster (S13)")), "a late tab asked to join");
  members = now;
  outsiders = late.filter((name) => name !== joined[0]);
  await filledByMembers(t, joined[0]);
  assert.deepEqual((await clusterOf()).outside, outsiders);
});

test("every block mined during the test is on P live members; the cluster settles on exactly P copies of each", async (t) => {
  const top = await tip();
  t.diagnostic(`${top - BLOCKS} blocks mined during the test`);
  assert.ok(top - BLOCKS >= 10, "blocks were mined during the test");
  await waitFor("every block up to the tip on P live members", 60_000, async () => {
    const short = await offCount(members, top, true);
    return { short: short.slice(0, 20), done: short.length === 0 };
  });
  await exactlyP("every block up to the tip on exactly P members", members, top, 120_000);
  await Promise.all(up().map((n) => tabs.get(n).page.evaluate(() => window.node.stop())));
});
