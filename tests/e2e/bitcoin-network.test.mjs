// Shoal against a Bitcoin node that is not ours (issue 15, "Deliver" item 4): bcoin 1.0.2 on
// regtest (tests/bitcoin/bcoin-node.mjs, in this process, on 127.0.0.1 of run.sh's namespace)
// mines a chain with segwit wallet transactions; two archive relays follow it over Bitcoin's
// P2P protocol (`serve --bitcoin-peer`); pages verify the wallet's transactions with proofs and
// form a cluster that holds the chain; bcoin reorganises (the block of one transaction is
// invalidated and a longer branch mined: that transaction is put back into a later block of the
// new branch, the transaction of the block after it is dropped) and the relays, the pages, the
// cluster and a page that was stopped during the reorganisation follow; a 60-block-deep
// reorganisation is followed too; bcoin restarts with its chain and the relays reconnect; a relay
// restarts and resumes from its store. Everything is started here and stopped by its own handle
// or pid; every wait is bounded. Each stage's time is printed (diagnostics, not assertions).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startBcoin } from "../bitcoin/bcoin-node.mjs";
import {
  HTTP_PORT, P2P_PORT, display, launchBrowser, openPages, sha256d, startRelay, tempDir, txidOf, waitUntil,
} from "./harness.mjs";

/** Blocks bcoin mines before its wallet sends (segwit is active from 432 on regtest, and the
 * wallet needs matured coinbases). */
const FIRST_BLOCKS = 440;
const PAGES = 3;
const REPLICAS = 2;
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 2_000 };
const BITCOIN_HOST = "127.0.0.1";

let bcoin;
let bcoinPort;
const relays = []; // { relay, dataDir, httpPort, p2pPort, name }
let browser;
let pages = [];
/** A page outside the cluster that is stopped during the reorganisation and started again on
 * its stored headers, which then end on the branch that left. */
let lightPage;
const log = [];
/** The wallet transactions: `{ txid, wtxid, hex, height, blockHash }` as bcoin mined them. */
const sent = {};
const started = Date.now();
const timings = [];

/** Notes how long a stage took (printed with the test's diagnostics and at the end). */
function lap(t, what, since) {
  const line = `${what}: ${((Date.now() - since) / 1000).toFixed(1)} s`;
  timings.push(line);
  t.diagnostic(line);
}

/** bcoin's best chain as `{ hashes, roots }` by height (genesis at 0): block hashes and Merkle
 * roots in display order, from its raw blocks. */
async function bestChain() {
  const raws = await bcoin.rawChain();
  const hashes = ["0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"];
  const roots = ["4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"];
  for (const hex of raws) {
    const header = Buffer.from(hex.slice(0, 160), "hex");
    hashes.push(display(sha256d(header)));
    roots.push(display(header.subarray(36, 68)));
  }
  return { hashes, roots, raws };
}

/** The Merkle root a proof leads to: `txid` and the branch `merkle` (display order) at `pos`. */
function rootOf(txid, merkle, pos) {
  let node = Buffer.from(txid, "hex").reverse();
  for (const sibling of merkle) {
    const other = Buffer.from(sibling, "hex").reverse();
    node = pos & 1 ? sha256d(Buffer.concat([other, node])) : sha256d(Buffer.concat([node, other]));
    pos >>= 1;
  }
  return display(node);
}

function startFollower(i, dataDir = tempDir(`btc-relay${i}`)) {
  const httpPort = HTTP_PORT + i;
  const p2pPort = P2P_PORT + i;
  const name = `relay ${i}`;
  return startRelay({
    dataDir, httpPort, p2pPort, bitcoinPeers: [`${BITCOIN_HOST}:${bcoinPort}`],
    log: (l) => log.push(`[${name}] ${l}`),
  }).then((relay) => ({ relay, dataDir, httpPort, p2pPort, name }));
}

/** Every relay's `bitcoin` status. */
const bitcoinStatus = () => Promise.all(relays.map(async (r) => (await r.relay.status()).bitcoin));

/** Waits until every relay stored bcoin's tip (height and hash, also its node's view). */
async function relaysAtTip(what, ms = 30_000) {
  const tip = bcoin.tip();
  await waitUntil(`${what}: both relays at bcoin's tip ${tip.height} ${tip.hash}`, ms, async () => {
    const all = await Promise.all(relays.map((r) => r.relay.status()));
    return all.every((s) => s.bitcoin.stored_height === tip.height && s.bitcoin.header_hash === tip.hash
      && s.bitcoin.header_height === tip.height && s.tip_height === tip.height);
  }).catch(async (err) => {
    throw new Error(`${err.message}; status: ${JSON.stringify(await bitcoinStatus())}`);
  });
  return tip;
}

const status = (page) => page.evaluate(() => window.node.status());

/** Waits until the verified header tip of every page of `which` is bcoin's. */
async function pagesAtTip(what, ms = 30_000, which = pages) {
  const tip = bcoin.tip();
  await waitUntil(`${what}: every page at bcoin's tip ${tip.height} ${tip.hash}`, ms, async () => {
    const all = await Promise.all(which.map(status));
    return all.every((s) => s.synced && s.tip.height === tip.height && s.tip.hash === tip.hash);
  }).catch(async (err) => {
    const tips = (await Promise.all(which.map(status))).map((s) => ({ synced: s.synced, ...s.tip }));
    throw new Error(`${err.message}; pages: ${JSON.stringify(tips)}`);
  });
  return tip;
}

/** `verifyTransaction(txid)` in `page`: `{ ok, value }` or `{ ok: false, code, message }`. */
function verify(page, txid) {
  return page.evaluate(async (t) => {
    try {
      return { ok: true, value: await window.node.verifyTransaction(t) };
    } catch (err) {
      return { ok: false, code: err.code, message: String(err.message ?? err) };
    }
  }, txid);
}

/** Checks a confirmed answer for `tx` against bcoin's chain `chain`: height, block, a proof
 * that leads to that block's Merkle root, and the transaction itself. */
function assertConfirmed(got, tx, chain, where) {
  assert.ok(got.ok, `${where}: ${tx.txid}: ${got.code} ${got.message}`);
  const v = got.value;
  assert.equal(v.confirmed, true, where);
  assert.equal(v.txid, tx.txid, where);
  assert.equal(v.height, tx.height, `${where}: the height bcoin mined it at`);
  assert.equal(v.blockHash, tx.blockHash, `${where}: the block bcoin put it in`);
  assert.equal(v.confirmations, chain.hashes.length - tx.height, `${where}: confirmations`);
  assert.equal(rootOf(tx.txid, v.merkle, v.pos), chain.roots[tx.height], `${where}: the proof leads to the block's Merkle root`);
  assert.equal(txidOf(Buffer.from(v.transaction, "hex")), tx.txid, `${where}: the transaction hashes to its txid`);
}

/** What the pages hold, checked against bcoin's best chain: `copies` (height → pages holding
 * that height's best-chain block) and `stale` (held blocks not on it). */
async function holdings(chain) {
  const copies = new Map();
  const stale = [];
  for (const [i, page] of pages.entries()) {
    const shard = await page.evaluate(async () => (await window.node.shard()).map((b) => [b.height, b.blockHash]));
    for (const [height, hash] of shard) {
      if (chain.hashes[height] === hash) copies.set(height, (copies.get(height) ?? 0) + 1);
      else stale.push({ page: i, height, hash });
    }
  }
  return { copies, stale };
}

/** Waits until the cluster holds every block of bcoin's best chain on REPLICAS pages and no
 * page holds a block off it. */
async function clusterHolds(what, chain, ms = 60_000, t = null) {
  let last;
  const start = Date.now();
  const seen = new Set();
  const describe = () => {
    const short = [...Array(chain.hashes.length).keys()].filter((h) => (last.copies.get(h) ?? 0) < REPLICAS);
    return `heights with fewer copies: ${short.slice(0, 20).join(",")}${short.length > 20 ? ` (${short.length})` : ""}; stale: ${JSON.stringify(last.stale.slice(0, 10))}`;
  };
  await waitUntil(`${what}: every block of the best chain on ${REPLICAS} pages, none off it`, ms, async () => {
    last = await holdings(chain);
    let done = last.stale.length === 0;
    for (let h = 0; h < chain.hashes.length; h++) done &&= (last.copies.get(h) ?? 0) >= REPLICAS;
    // What kept it waiting, each different state once (a diagnostic, not an assertion).
    const state = describe();
    if (!done && !seen.has(state)) {
      seen.add(state);
      const views = await Promise.all(pages.map(status));
      t?.diagnostic(`${what} at +${((Date.now() - start) / 1000).toFixed(1)} s: ${state}; pages: ${JSON.stringify(views.map((v) => ({ tip: v.tip.height, held: v.heldBlocks, missing: v.missingBlocks, members: v.members.length })))}`);
    }
    return done;
  }, 500).catch((err) => {
    throw new Error(`${err.message}; ${describe()}`);
  });
  for (let h = 0; h < chain.hashes.length; h++) assert.equal(last.copies.get(h), REPLICAS, `copies of height ${h}`);
}

before(async () => {
  bcoin = await startBcoin({ host: BITCOIN_HOST });
  bcoinPort = bcoin.p2pPort;
});

/** Starts the light page's node (both relays; it never forms a cluster, and the pages' one is
 * full when it starts); returns its status as it started. */
async function startLight() {
  return lightPage.evaluate(async (relays) => {
    const { LightNode } = await import("/dist/index.js");
    window.node = await LightNode.start({ relays, database: "btc-light", clusterSize: 64, formationIntervalMs: 3_600_000 });
    return window.node.status(); // at once: the stored state, before any sync round trip
  }, relays.map((r) => r.relay.ws));
}

after(async () => {
  for (const page of [...pages, lightPage].filter(Boolean)) await page.evaluate(() => window.node?.stop()).catch(() => {});
  await browser?.close();
  for (const r of relays) await r.relay.stop();
  await bcoin?.stop();
  console.log(`timings: ${timings.join("; ")}; whole file ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (process.env.SHOAL_E2E_VERBOSE) console.log(log.join(""));
});

test("bcoin mines a chain with segwit wallet transactions", async (t) => {
  const since = Date.now();
  await bcoin.mine(FIRST_BLOCKS);
  // Three wallet transactions, each in a block of its own: a (stays where it is), b (its block
  // is invalidated and it is mined again higher up), c (its block leaves with b's, it does not
  // come back); then two more blocks.
  for (const name of ["a", "b", "c"]) {
    const tx = await bcoin.send(100_000 + Object.keys(sent).length * 50_000);
    assert.notEqual(tx.txid, tx.wtxid, `${name}: a segwit transaction (its wtxid differs from its txid)`);
    const [blockHash] = await bcoin.mineWith([tx.txid]);
    sent[name] = { ...tx, blockHash, height: bcoin.tip().height };
  }
  await bcoin.mine(2);
  assert.deepEqual([sent.a.height, sent.b.height, sent.c.height, bcoin.tip().height], [441, 442, 443, 445]);
  lap(t, `bcoin: ${bcoin.tip().height} blocks with 3 wallet transactions`, since);
});

test("two archive relays follow bcoin over Bitcoin's P2P protocol to its tip", async (t) => {
  const since = Date.now();
  relays.push(...(await Promise.all([startFollower(0), startFollower(1)])));
  await relaysAtTip("first sync", 60_000);
  for (const s of await bitcoinStatus()) {
    assert.equal(s.peers.length, 1);
    assert.equal(s.peers[0].address, `${BITCOIN_HOST}:${bcoinPort}`);
    assert.equal(s.peers[0].connected, true);
    assert.equal(s.peers[0].user_agent, "/bcoin:v1.0.2/");
    assert.equal(s.stats.blocks_stored, bcoin.tip().height + 1, "every block stored once, genesis included");
    assert.equal(s.stats.peers_dropped, 0, "bcoin broke no rule");
    assert.equal(s.stats.reorgs, 0);
    assert.equal(s.stuck, null);
  }
  lap(t, "relays synced", since);
});

test("pages verify each wallet transaction with a proof; a cluster of pages holds the chain", async (t) => {
  let since = Date.now();
  browser = await launchBrowser();
  pages = await openPages(browser, PAGES, log);
  const addrs = relays.map((r) => r.relay.ws);
  await Promise.all(pages.map((page) => page.evaluate(async ({ relays, replicas, size, timings }) => {
    const { LightNode } = await import("/dist/index.js");
    window.node = await LightNode.start({ relays, database: "btc", clusterSize: size, replicas, ...timings });
  }, { relays: addrs, replicas: REPLICAS, size: PAGES, timings: TIMINGS })));
  await pagesAtTip("first sync", 60_000);
  lap(t, "pages synced headers", since);
  since = Date.now();

  const chain = await bestChain();
  for (const [i, page] of pages.entries()) {
    for (const name of ["a", "b", "c"]) assertConfirmed(await verify(page, sent[name].txid), sent[name], chain, `page ${i}, tx ${name}`);
    const unknown = await verify(page, "ab".repeat(32));
    assert.deepEqual([unknown.ok, unknown.code], [false, "NOT_FOUND"], unknown.message);
  }
  lap(t, "pages verified the wallet transactions", since);
  since = Date.now();

  await waitUntil("one cluster of the pages", 60_000, async () => {
    const all = await Promise.all(pages.map(status));
    return all[0].clusterId && all.every((s) => s.clusterId === all[0].clusterId && s.members.length === PAGES);
  });
  await clusterHolds("first fill", chain);
  lap(t, "cluster formed and filled", since);

  // The light page: synced, it verifies too, from the relays or the cluster.
  since = Date.now();
  [lightPage] = await openPages(browser, 1, { push: (line) => log.push(line.replace("[page 0]", "[light page]")) });
  await startLight();
  await pagesAtTip("the light page", 30_000, [lightPage]);
  for (const name of ["a", "b", "c"]) assertConfirmed(await verify(lightPage, sent[name].txid), sent[name], chain, `light page, tx ${name}`);
  lap(t, "light page synced and verified", since);
});

test("bcoin reorganises: the relays, the pages and the cluster follow", async (t) => {
  const since = Date.now();
  const before = await bestChain();
  const reorgsBefore = (await bitcoinStatus()).map((s) => s.stats.reorgs);
  // The light page goes offline with the chain that is about to lose.
  await lightPage.evaluate(() => window.node.stop());
  // b's block goes, and with it c's and the two after; bcoin's mempool is emptied. The new
  // branch: two empty blocks, then b again (put back into the mempool), then two more: one
  // block longer than the branch it replaces.
  const fork = await bcoin.invalidate(sent.b.blockHash);
  assert.equal(fork.height, sent.b.height - 1);
  await bcoin.mine(2);
  assert.equal(await bcoin.addTX(sent.b.hex), sent.b.txid);
  const [bBlock] = await bcoin.mineWith([sent.b.txid]);
  const moved = { ...sent.b, blockHash: bBlock, height: bcoin.tip().height };
  await bcoin.mine(2);
  assert.equal(bcoin.tip().height, before.hashes.length, "the new branch is one block longer");
  const chain = await bestChain();
  assert.equal(chain.hashes[sent.a.height], sent.a.blockHash, "a's block stays");
  assert.notEqual(chain.hashes[sent.b.height], sent.b.blockHash, "b's old block left the chain");
  assert.equal(moved.height, sent.b.height + 2);

  await relaysAtTip("after the reorganisation");
  for (const [i, s] of (await bitcoinStatus()).entries()) {
    assert.ok(s.stats.reorgs > reorgsBefore[i], `${relays[i].name} counted the reorganisation: ${JSON.stringify(s.stats)}`);
    assert.equal(s.stuck, null);
  }
  t.diagnostic(`relays after the reorganisation: ${JSON.stringify((await bitcoinStatus()).map((s) => s.stats))}`);
  lap(t, "relays followed the reorganisation", since);

  await pagesAtTip("after the reorganisation");
  lap(t, "pages followed the reorganisation", since);
  for (const [i, page] of pages.entries()) {
    assertConfirmed(await verify(page, sent.a.txid), sent.a, chain, `page ${i}, tx a after the reorganisation`);
    assertConfirmed(await verify(page, moved.txid), moved, chain, `page ${i}, tx b moved to ${moved.height}`);
    const gone = await verify(page, sent.c.txid);
    assert.deepEqual([gone.ok, gone.code], [false, "NOT_FOUND"],
      `page ${i}, tx c left the chain with its block: ${JSON.stringify(gone.value ?? gone.message)}`);
  }
  lap(t, "pages answered as the new branch says", since);
  await clusterHolds("after the reorganisation", chain, 60_000, t);
  lap(t, "the cluster holds the new branch", since);

  // The light page starts again on its stored headers, whose tip left the best chain: it finds
  // the fork and switches, and answers as the others do.
  const light = Date.now();
  const resumed = await startLight();
  assert.equal(resumed.tip.hash, before.hashes[before.hashes.length - 1], "it resumed on the branch that lost");
  await pagesAtTip("the light page after missing the reorganisation", 30_000, [lightPage]);
  assertConfirmed(await verify(lightPage, sent.a.txid), sent.a, chain, "light page, tx a after the reorganisation");
  assertConfirmed(await verify(lightPage, moved.txid), moved, chain, `light page, tx b moved to ${moved.height}`);
  const gone = await verify(lightPage, sent.c.txid);
  assert.deepEqual([gone.ok, gone.code], [false, "NOT_FOUND"], `light page, tx c: ${JSON.stringify(gone.value ?? gone.message)}`);
  sent.b = moved;
  lap(t, "the light page, offline during the reorganisation, followed", light);
});

test("a deep reorganisation: the relays' stored chains pass below the pages' tips on the way", async (t) => {
  const since = Date.now();
  // DEPTH blocks on the tip, which the relays and pages follow; then they are replaced by a
  // branch one block longer. Each relay takes the old branch off at once and stores the new
  // one block by block: for a while its chain is shorter than the pages' (less work).
  const DEPTH = 60;
  const { height: base } = bcoin.tip();
  await bcoin.mine(DEPTH);
  await relaysAtTip("before the deep reorganisation");
  await pagesAtTip("before the deep reorganisation", 30_000, [...pages, lightPage]);
  const before = await bestChain();
  const fork = await bcoin.invalidate(before.hashes[base + 1]);
  assert.equal(fork.height, base);
  await bcoin.mine(DEPTH + 1);
  const chain = await bestChain();
  lap(t, "bcoin mined the deep reorganisation", since);
  await relaysAtTip("after the deep reorganisation", 60_000);
  for (const [i, s] of (await bitcoinStatus()).entries()) {
    assert.ok(s.stats.reorgs >= 2, `${relays[i].name} counted both reorganisations: ${JSON.stringify(s.stats)}`);
  }
  lap(t, "relays followed the deep reorganisation", since);
  await pagesAtTip("after the deep reorganisation", 60_000, [...pages, lightPage]);
  lap(t, "pages followed the deep reorganisation", since);
  for (const [i, page] of [...pages, lightPage].entries()) {
    for (const name of ["a", "b"]) assertConfirmed(await verify(page, sent[name].txid), sent[name], chain, `page ${i}, tx ${name} after the deep reorganisation`);
  }
  lap(t, "pages answered as the deep reorganisation's branch says", since);
  await clusterHolds("after the deep reorganisation", chain, 60_000, t);
  lap(t, "cluster followed the deep reorganisation", since);
});

test("bcoin restarts with its chain: both relays reconnect and follow its next block", async (t) => {
  const since = Date.now();
  const raws = await bcoin.rawChain();
  await bcoin.stop();
  bcoin = null;
  // Both relays notice, and say why.
  const down = await waitUntil("both relays see bcoin gone", 30_000, async () => {
    const all = await bitcoinStatus();
    return all.every((s) => !s.peers[0].connected && s.peers[0].last_error) && all;
  });
  t.diagnostic(`while bcoin was down: ${down.map((s) => s.peers[0].last_error).join(" | ")}`);
  // "closed by the peer" when bcoin went; a redial while it is down fails with "refused".
  for (const s of down) assert.match(s.peers[0].last_error, /closed by the peer|refused/i);
  bcoin = await startBcoin({ host: BITCOIN_HOST, port: bcoinPort, blocks: raws });
  assert.equal(bcoin.tip().height, raws.length);
  await waitUntil("both relays connected again", 30_000, async () => (await bitcoinStatus()).every((s) => s.peers[0].connected));
  await bcoin.mine(1);
  await relaysAtTip("a block mined after bcoin's restart");
  for (const s of await bitcoinStatus()) {
    // peers_dropped counts the peers the relay dropped for a broken rule or a stall, not
    // connections the peer closed.
    assert.equal(s.stats.peers_dropped, 0, JSON.stringify(s.stats));
    assert.equal(s.peers[0].start_height, raws.length, "the new connection's version message");
  }
  await pagesAtTip("a block mined after bcoin's restart", 30_000, [...pages, lightPage]);
  lap(t, "bcoin restarted, relays and pages followed", since);
});

test("a relay restarts on its data directory: its chain at once, then the next block", async (t) => {
  const since = Date.now();
  const r = relays[1];
  const tip = bcoin.tip();
  await r.relay.stop();
  const up = Date.now();
  r.relay = (await startFollower(1, r.dataDir)).relay;
  const s = await r.relay.status();
  t.diagnostic(`${r.name} up again in ${((Date.now() - up) / 1000).toFixed(1)} s: ${JSON.stringify({ tip_height: s.tip_height, bitcoin: s.bitcoin })}`);
  assert.equal(s.tip_height, tip.height, "its node has the stored chain at once");
  assert.equal(s.bitcoin.stored_height, tip.height, "the stored chain, not synced again");
  assert.equal(s.bitcoin.header_hash, tip.hash);
  assert.equal(s.bitcoin.stats.blocks_stored, 0, "nothing stored yet since the restart");
  await waitUntil("the restarted relay connected to bcoin", 30_000, async () => (await r.relay.status()).bitcoin.peers[0].connected);
  await bcoin.mine(1);
  await relaysAtTip("a block mined after the relay's restart");
  assert.equal((await r.relay.status()).bitcoin.stats.blocks_stored, 1, "only the new block was stored");
  await pagesAtTip("a block mined after the relay's restart", 30_000, [...pages, lightPage]);
  const chain = await bestChain();
  assertConfirmed(await verify(pages[0], sent.b.txid), sent.b, chain, "page 0, tx b at the end");
  lap(t, "relay restarted and followed", since);
});
