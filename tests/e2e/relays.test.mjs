// Relays as members, several relays (issue 12, item 2): an archive relay and a member relay
// (`--role member --peer <archive>`), three pages given both. The member relay follows the
// archive's headers, joins the pages' cluster (clusterSize 4) and holds its shard on disk;
// every block is on P members. Killed (SIGKILL) and started again on its data directory it
// holds the same blocks and downloads none of them again, and the pages keep answering
// queries while it is down. With the archive relay stopped, the pages still verify
// transactions from the members.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { HTTP_PORT, P2P_PORT, launchBrowser, openPages, relayCli, startRelay, teardown, tempDir } from "./harness.mjs";

const BLOCKS = 30;
const PAGES = 3;
const CLUSTER = 4; // the three pages and the member relay
const REPLICAS = 2;
const CHAIN_BLOCKS = BLOCKS + 1; // genesis included
let archive;
let member;
let memberDir;
let browser;
const pages = [];
const log = [];
let chainFile;
let blocks; // inspect report: blocks[i] is height i

const startMember = () => startRelay({
  dataDir: memberDir,
  role: "member",
  peers: [archive.ws],
  clusterSize: CLUSTER,
  replicas: REPLICAS,
  httpPort: HTTP_PORT + 1,
  p2pPort: P2P_PORT + 1,
  log: (l) => log.push(`[member relay] ${l}`),
});

before(async () => {
  chainFile = join(tempDir("relays-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "12", "--txs-per-block", "4", "--out", chainFile]);
  blocks = relayCli(["block", "inspect", chainFile, "--txids"]).blocks;
  archive = await startRelay({ dataDir: tempDir("relays-archive"), importFile: chainFile, log: (l) => log.push(`[archive] ${l}`) });
  memberDir = tempDir("relays-member");
  member = await startMember();
  browser = await launchBrowser();
  pages.push(...(await openPages(browser, PAGES, log)));
});

after(() => teardown({ browser, relays: [member, archive], log }));

const status = (page) => page.evaluate(() => window.node.status());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (returning a truthy value when done) every 500 ms for up to `seconds`. */
async function until(seconds, what, check) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const got = await check();
    if (got) return got;
    assert.ok(Date.now() < deadline, `${what}: not in ${seconds} s`);
    await sleep(500);
  }
}

/** Heights held by each page (from IndexedDB-backed block-stored events) and the member
 * relay (from its disk), as a map height → copies. */
async function copies() {
  const held = new Map();
  const add = (h) => held.set(h, (held.get(h) ?? 0) + 1);
  for (const page of pages) {
    for (const h of await page.evaluate(() => [...window.held.keys()])) add(h);
  }
  for (const b of (await member.status()).held) add(b.height);
  return held;
}

function verifyFrom(page, txid) {
  return page.evaluate(async (t) => {
    try {
      return { ok: true, value: await window.node.verifyTransaction(t) };
    } catch (err) {
      return { ok: false, code: err.code, message: String(err.message ?? err) };
    }
  }, txid);
}

test("a member relay follows the archive's headers, joins the pages' cluster and holds its shard", async () => {
  await Promise.all(pages.map((page) => page.evaluate(async ({ relays, replicas, size }) => {
    const { LightNode } = await import("/dist/index.js");
    window.held = new Map(); // height → hash, from block-stored (each stored in IndexedDB)
    window.node = await LightNode.start({ relays, database: "relays", clusterSize: size, replicas });
    window.node.addEventListener("block-stored", (e) => window.held.set(e.detail.height, e.detail.blockHash));
  }, { relays: [archive.ws, member.ws], replicas: REPLICAS, size: CLUSTER })));

  // The member relay synced the archive's headers through the core's header sync.
  const synced = await until(60, "member relay synced", async () => {
    const s = await member.status();
    return s.synced && s.tip_height === BLOCKS && s;
  });
  assert.equal(synced.role, "member");

  // One cluster of four: the three pages and the member relay.
  const formed = await until(120, "one cluster of pages and the member relay", async () => {
    const m = await member.status();
    const ps = await Promise.all(pages.map(status));
    const one = m.cluster_id && m.members.length === CLUSTER && ps.every((s) => s.clusterId === m.cluster_id);
    return one && { m, ps };
  });
  const peerIds = [...formed.ps.map((s) => s.peerId), member.info.peer_id].sort();
  assert.deepEqual([...formed.m.members].sort(), peerIds);

  // Every block on exactly P members, the member relay's part on its disk.
  const held = await until(120, "every block on P members", async () => {
    const c = await copies();
    let done = c.size === CHAIN_BLOCKS;
    for (let h = 0; h <= BLOCKS; h++) done &&= c.get(h) >= REPLICAS;
    return done && c;
  });
  for (let h = 0; h <= BLOCKS; h++) assert.equal(held.get(h), REPLICAS, `copies of height ${h}`);
  const m = await member.status();
  assert.ok(m.held.length > 0, "the member relay holds a shard");
  assert.ok(m.held.length < CHAIN_BLOCKS, "only its shard, not the chain");
  assert.equal(m.held_blocks, m.held.length, "its node holds what is on its disk");
  for (const b of m.held) assert.equal(b.block_hash, blocks[b.height].hash, `hash at ${b.height}`);
});

test("killing the member relay and starting it again loses nothing; queries go on meanwhile", async (t) => {
  const before = (await member.status()).held;
  await member.kill();

  // While it is down: a transaction of every block it held still verifies from a page.
  for (const b of before.slice(0, 5)) {
    const { txids } = blocks[b.height];
    const got = await verifyFrom(pages[0], txids[txids.length - 1]);
    assert.ok(got.ok, `height ${b.height} while the member relay is down: ${got.code} ${got.message}`);
    assert.equal(got.value.height, b.height);
  }

  member = await startMember();
  const restarted = await member.status();
  assert.deepEqual(restarted.held, before, "the same blocks on disk after the crash");
  // Back in a cluster (its pages' view or a new one) and holding at least what it held:
  // nothing downloaded again — every block it fetched since the restart is a new one.
  const back = await until(90, "the member relay back in a cluster", async () => {
    const s = await member.status();
    return s.cluster_id && s.has_headers && s;
  });
  await sleep(3000); // let its repair settle
  const after = await member.status();
  const had = new Set(before.map((b) => b.block_hash));
  const added = after.held.filter((b) => !had.has(b.block_hash)).length;
  assert.ok(after.blocks_fetched <= added, `fetched ${after.blocks_fetched}, new blocks ${added}`);
  t.diagnostic(`held ${before.length} before, ${after.held.length} after (${added} new); cluster ${back.cluster_id.slice(0, 8)}`);
});

test("with the archive relay stopped, pages verify transactions from the members", async () => {
  const archiveId = archive.info.peer_id;
  await archive.stop();
  // The pages' circuits through the archive relay went with it: each page reaches the
  // members of its cluster again through the member relay (the other address it gave them).
  await until(90, "every page greeted by every member of its cluster without the archive", async () => {
    const ss = await Promise.all(pages.map(status));
    return ss.every((s) => {
      const greeted = new Set(s.nodePeers.map((p) => p.peerId));
      return s.clusterId && !greeted.has(archiveId)
        && s.members.every((m) => m === s.peerId || greeted.has(m));
    });
  });
  // The members answer for their whole shards once each holds it (a member still filling
  // or re-indexing answers "unavailable", not "not found", and the archive is gone).
  await until(90, "every member holds its whole shard", async () => {
    const ss = await Promise.all(pages.map(status));
    const m = await member.status();
    return ss.every((s) => s.missingBlocks === 0 && s.synced) && m.missing_blocks === 0;
  });
  const heights = [...blocks.keys()].filter((h) => h > 0);
  for (const page of pages) {
    for (const height of heights.filter((h) => h % 7 === 0)) {
      const { txids } = blocks[height];
      const got = await verifyFrom(page, txids[0]);
      let diag = "";
      if (!got.ok) {
        // What each member held and knew when the answer went wrong.
        const views = await Promise.all(pages.map(status));
        const m = await member.status();
        diag = views.map((v) => `; page ${v.peerId.slice(-6)} cluster ${v.clusterId?.slice(0, 8)} of ${v.members.length} held ${v.heldBlocks} missing ${v.missingBlocks}`).join("")
          + `; member relay cluster ${m.cluster_id?.slice(0, 8)} holds heights ${m.held.map((b) => b.height).join(",")} missing ${m.missing_blocks}`;
      }
      assert.ok(got.ok, `height ${height} without the archive: ${got.code} ${got.message}${diag}`);
      assert.equal(got.value.blockHash, blocks[height].hash);
      assert.ok(["local", "member"].includes(got.value.source), got.value.source);
    }
  }
  await Promise.all(pages.map((p) => p.evaluate(() => window.node.stop())));
});
