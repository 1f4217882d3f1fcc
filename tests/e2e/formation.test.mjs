// Forming clusters, placing blocks and watching members (S1, S3–S8, S10) in real Chromium
// against one relay with a 40-block chain of small blocks. Pages with `clusterSize: 3, replicas: 2`, one group per
// placement rule (a page's rule is its own option: pages of different rules never share the
// relay at the same time):
//
// 1. six pages, `placement: "hash-mod"`: two clusters of three form, no page in two; every
//    invitation came from a page the inviter found in the relay's directory and carried its
//    circuit address and record (S1); no page ever held two confirmations at once, and a
//    member declined every invitation (S3); each cluster id is the hash of its genesis (S4);
//    member numbers are the deterministic order of S5; every block is on exactly the two
//    members the patent's hash-mod-constants rule names (S6);
// 2. three pages, `placement: "even", evenRangeBlocks: 4`: ranges of heights on consecutive
//    member numbers (S7); bad values of the placement options are refused with BAD_INPUT;
// 3. three pages, `placement: "segment"`, segments 1, 1, 2: every block on two segments (S8);
// 4. three pages, `placement: "hash-mod", clusterTtlMs: 20000`: the id lapses, the same members
//    re-form under the next generation's id, and the only blocks downloaded are the ones the
//    new numbering moves (S4);
// 5. four pages, `clusterSize: 4, heartbeatNeighbours: 1`: a closed member is found by its
//    numbered neighbours and every view converges without it, its blocks back on P (S10).
//
// Expected holders and numbers are computed here, in JavaScript, from SPEC.md's definitions
// (and the core's documented hash inputs), never by asking the wasm. Holders are read from each
// page's IndexedDB (`blocks` store, keyed by block hash); invitations from the page's console
// (`shoal: invitation …` lines, cluster_node.rs). Waits are bounds, not timings.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ORIGIN, display, launchBrowser, relayCli, sha256d, startRelay, storedBlockHashes, teardown, tempDir,
} from "./harness.mjs";

const BLOCKS = 40;
const CHAIN = BLOCKS + 1; // genesis included
const SIZE = 3;
const REPLICAS = 2;
const DATABASE = "formation";
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 1_000 };
const ACCEPT_TIMEOUT_MS = 10_000; // the core's `Config::accept_timeout_ms`
let relay;
let relayPeer;
let browser;
const log = [];
let chain; // chain[height] = { hash, size }

before(async () => {
  const chainFile = join(tempDir("formation-chain"), "chain.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "14", "--txs-per-block", "2", "--out", chainFile]);
  chain = relayCli(["block", "inspect", chainFile]).blocks.map((b) => ({ hash: b.hash, size: b.size }));
  assert.equal(chain.length, CHAIN);
  relay = await startRelay({ dataDir: tempDir("formation"), importFile: chainFile, log: (l) => log.push(l) });
  relayPeer = relay.ws.split("/p2p/")[1];
  browser = await launchBrowser();
});

after(() => teardown({ browser, relay, log }));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 300 ms until it returns a truthy value, at most `ms`; fails with `what`
 * and the last value seen otherwise. */
async function waitFor(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last && last.done !== false) return last;
    assert.ok(Date.now() < deadline, `${what}: not within ${ms / 1000} s; last: ${JSON.stringify(last)}`);
    await sleep(300);
  }
}

// ---- What SPEC.md defines, computed independently of the wasm --------------------------------

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/** A base58btc string (a libp2p peer id's text form) as bytes. */
function base58(text) {
  let n = 0n;
  for (const c of text) {
    const digit = BASE58.indexOf(c);
    assert.ok(digit >= 0, `${text} is not base58`);
    n = n * 58n + BigInt(digit);
  }
  const bytes = [];
  for (; n > 0n; n >>= 8n) bytes.unshift(Number(n & 0xffn));
  const zeros = text.match(/^1*/)[0].length;
  return Buffer.from([...new Array(zeros).fill(0), ...bytes]);
}
/** A node's id: the double SHA-256 of its peer id's bytes (`shoal_net::node_link::node_id`). */
const nodeId = (peerId) => sha256d(base58(peerId));
const compareBytes = (a, b) => Buffer.compare(a, b);

/** S5: the members (peer ids) in member-number order — sorted by sha256d(cluster id ‖ node id). */
function numbering(clusterHex, peerIds) {
  const cluster = Buffer.from(clusterHex, "hex");
  return peerIds
    .map((peer) => ({ peer, key: sha256d(Buffer.concat([cluster, nodeId(peer)])) }))
    .sort((a, b) => compareBytes(a.key, b.key) || compareBytes(nodeId(a.peer), nodeId(b.peer)))
    .map((x) => x.peer);
}

/** S4: a cluster id, sha256d("shoal/cluster" ‖ generation (u64 LE) ‖ proposer ‖ founders sorted). */
function clusterId(generation, proposer, founders) {
  const gen = Buffer.alloc(8);
  gen.writeBigUInt64LE(BigInt(generation));
  const sorted = founders.map(nodeId).sort(compareBytes);
  return sha256d(Buffer.concat([Buffer.from("shoal/cluster"), gen, nodeId(proposer), ...sorted])).toString("hex");
}
/** The founder whose proposal gives `id` (generation `generation`, founders `members`), or null. */
const proposerOf = (id, generation, members) =>
  members.find((p) => clusterId(generation, p, members) === id) ?? null;

/** S6: the block hash (a 256-bit number; display hex is big-endian) modulo the constants K, K−1,
 * …, K−P+1 names the holders' numbers; a number already taken moves on to the next free one. */
function hashModHolders(blockHash, k, p) {
  const h = BigInt(`0x${blockHash}`);
  const out = [];
  for (let i = 0; i < p; i++) {
    let number = Number(h % BigInt(k - i));
    while (out.includes(number)) number = (number + 1) % k;
    out.push(number);
  }
  return out;
}

/** S7: heights cut into ranges of `range` blocks; range r goes to members r, r+1, … (mod K). */
const evenHolders = (height, k, p, range) =>
  Array.from({ length: p }, (_, j) => (Math.floor(height / range) + j) % k);

const MASK64 = (1n << 64n) - 1n;
/** SplitMix64's output function (the core's `mix64`). */
function mix64(z) {
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}
/** S8: members ranked by rendezvous weight mix64(block key ^ mix64(member key)) — keys the first
 * 8 bytes (little-endian) of the block hash in internal byte order and of the node id — best
 * first; the first P holders on distinct segments, filled up in rank order if there are fewer
 * segments. `members` are { peer, segment } in number order. */
function segmentHolders(blockHash, members, p) {
  const blockKey = Buffer.from(blockHash, "hex").reverse().readBigUInt64LE(0);
  const ranked = members
    .map((m, number) => ({ number, id: nodeId(m.peer), segment: m.segment }))
    .map((m) => ({ ...m, weight: mix64(blockKey ^ mix64(m.id.readBigUInt64LE(0))) }))
    .sort((a, b) => (a.weight === b.weight ? compareBytes(a.id, b.id) : a.weight > b.weight ? -1 : 1));
  const out = [];
  const segments = new Set();
  for (const m of ranked) {
    if (out.length < p && !segments.has(m.segment)) {
      segments.add(m.segment);
      out.push(m.number);
    }
  }
  for (const m of ranked) if (out.length < p && !out.includes(m.number)) out.push(m.number);
  return out;
}

// ---- Pages --------------------------------------------------------------------------------------

let nextName = 0;
/** Opens `count` pages, each in its own browser context (own IndexedDB and identity), and starts
 * a node in each with `options` plus `perPage(i)`; every page's console lines are kept in order
 * in its own `lines` (and when the test heard of each, in `times`), and its `cluster` events are
 * written there too. */
async function openGroup(count, options, perPage = () => ({})) {
  const group = [];
  for (let i = 0; i < count; i++) {
    const name = `p${nextName++}`;
    const page = await (await browser.newContext()).newPage();
    const lines = [];
    const times = [];
    page.on("console", (m) => {
      lines.push(m.text());
      times.push(Date.now());
      log.push(`[${name}] ${m.text()}\n`);
    });
    await page.goto(`${ORIGIN}/relay-addrs.json`);
    group.push({ name, page, lines, times, options: { ...options, ...perPage(i) } });
  }
  await Promise.all(group.map(({ page, options: o }) => page.evaluate(async (o) => {
    const { LightNode } = await import("/dist/index.js");
    window.clusterIds = [];
    window.node = await LightNode.start(o);
    window.node.addEventListener("cluster", (e) => {
      window.clusterIds.push(e.detail.clusterId);
      console.log(`test: cluster ${e.detail.clusterId}`);
    });
  }, { relays: [relay.ws], database: DATABASE, clusterSize: SIZE, replicas: REPLICAS, ...TIMINGS, ...o })));
  for (const tab of group) {
    const s = await tab.page.evaluate(() => window.node.status());
    tab.peerId = s.peerId;
    tab.capacityBytes = s.storage.capacityBytes; // its share of its origin's storage (issue 17)
  }
  return group;
}

async function closeGroup(group) {
  for (const { page } of group) await page.context().close();
}

/** One page's state: its status before and after reading its IndexedDB's block keys (the two
 * agree on the cluster unless it changed meanwhile). */
async function read(tab) {
  const status = () => tab.page.evaluate(() => window.node.status());
  const s = await status();
  const keys = await storedBlockHashes(tab.page, DATABASE);
  const s2 = await status();
  return { tab, s, stored: new Set(keys), stable: s.clusterId === s2.clusterId && s.memberNumber === s2.memberNumber };
}

/** The clusters of `group` as the pages name them: [{ id, tabs, views }]. */
function clustersOf(states) {
  const byId = new Map();
  for (const st of states) {
    if (!st.s.clusterId) continue;
    if (!byId.has(st.s.clusterId)) byId.set(st.s.clusterId, []);
    byId.get(st.s.clusterId).push(st);
  }
  return [...byId].map(([id, sts]) => ({ id, states: sts }));
}

/** For each height, the peer ids that store the block, among `states`. */
function holdersByHeight(states) {
  return chain.map(({ hash }) => states.filter((st) => st.stored.has(hash)).map((st) => st.tab.peerId).sort());
}

/** Member numbers as peer ids (`numbered`: peer ids in number order), sorted. */
const byNumber = (numbers, numbered) => numbers.map((n) => numbered[n]).sort();

/** Everything wrong with `cluster` against `expect(height, numbered, cluster)`, the peer ids
 * (sorted) that must hold each block, or null if this cluster is not the one awaited
 * (numbered: the members' peer ids in JS-computed number order). */
function mismatches(cluster, expect) {
  const peers = cluster.states.map((st) => st.tab.peerId).sort();
  const numbered = numbering(cluster.id, peers);
  const problems = [];
  for (const st of cluster.states) {
    if (!st.stable) problems.push(`${st.tab.name} changed cluster while read`);
    if (JSON.stringify([...st.s.members].sort()) !== JSON.stringify(peers)) problems.push(`${st.tab.name}'s view ${st.s.members}`);
    if (st.s.missingBlocks !== 0) problems.push(`${st.tab.name} misses ${st.s.missingBlocks}`);
  }
  holdersByHeight(cluster.states).forEach((got, height) => {
    const want = expect(height, numbered, cluster);
    if (want === null) return problems.push(`not yet: cluster ${cluster.id.slice(0, 8)}`);
    if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`height ${height}: on ${got}, rule says ${want}`);
  });
  return problems;
}

/** Waits until `group` is `clusters` clusters of SIZE, each holding every block exactly where
 * `expect` says; returns the clusters, read once more. */
async function settled(what, group, clusters, expect, ms) {
  let last;
  await waitFor(what, ms, async () => {
    const states = await Promise.all(group.map(read));
    const found = clustersOf(states);
    const problems = [];
    if (states.some((st) => !st.s.clusterId)) problems.push(`outside: ${states.filter((st) => !st.s.clusterId).map((st) => st.tab.name)}`);
    if (found.length !== clusters) problems.push(`${found.length} clusters`);
    for (const c of found) {
      if (c.states.length !== SIZE) problems.push(`cluster ${c.id.slice(0, 8)} has ${c.states.length} pages`);
      else problems.push(...mismatches(c, expect));
    }
    last = found;
    return { done: problems.length === 0, problems: problems.slice(0, 8) };
  });
  return last;
}

/** S5: every member's view and number agree with the numbering computed here. */
function checkNumbering(cluster) {
  const peers = cluster.states.map((st) => st.tab.peerId).sort();
  const numbered = numbering(cluster.id, peers);
  for (const st of cluster.states) {
    assert.equal(st.s.clusterId, cluster.id);
    assert.deepEqual([...st.s.members].sort(), peers, `${st.tab.name}'s members`);
    assert.equal(st.s.memberNumber, numbered.indexOf(st.tab.peerId), `${st.tab.name}'s member number`);
  }
  assert.deepEqual(cluster.states.map((st) => st.s.memberNumber).sort(), [...peers.keys()]);
  return numbered;
}

/** The page's shard as `shard()` gives it is exactly its IndexedDB. */
async function checkShardApi(st) {
  const shard = await st.tab.page.evaluate(async () => (await window.node.shard()).map((b) => ({ height: b.height, blockHash: b.blockHash, header: Array.from(b.bytes.subarray(0, 80)) })));
  assert.deepEqual(shard.map((b) => b.blockHash).sort(), [...st.stored].sort(), `${st.tab.name}: shard() is its IndexedDB`);
  for (const b of shard) {
    assert.equal(b.blockHash, chain[b.height].hash, `${st.tab.name}: height ${b.height}`);
    assert.equal(display(sha256d(Buffer.from(b.header))), b.blockHash);
  }
}

// ---- Console lines of cluster_node.rs -----------------------------------------------------------

const INVITATION = /^shoal: invitation (\d+) from (\S+)( to join cluster [0-9a-f]+)? \(S1\): address (\S+), blocks served (\d+), capacity (\d+) bytes, segment (\d+)$/;
const REPLY = /^shoal: (accepting|declining) invitation (\d+) from (\S+) \(S3\)$/;
const ANSWER = /^shoal: (\S+) (accepts|declines) invitation (\d+) \(S3\): address (\S+), blocks served (\d+), capacity (\d+) bytes, segment (\d+)$/;
const WITHDRAWN = /^shoal: invitation (\d+) from (\S+) withdrawn$/;
const INVITING = /^shoal: inviting (\S+) \(invitation (\d+), S1\)$/;
const DIRECTORY = /^shoal: directory of (\S+) lists \[(.*)\]$/;
const CLUSTER = /^test: cluster (\S+)$/;

/** S3 over one page's console: it never holds two confirmations at once (a confirmation ends
 * when the page joins a cluster, when the inviter withdraws it, or unanswered after the core's
 * `accept_timeout_ms`); with `membersDecline`, every invitation it receives while a member is
 * declined. Returns what it saw. */
function checkAcceptance(tab, { membersDecline }) {
  let confirmed = null; // { from, id, at }
  let member = false;
  const whileMember = new Map(); // `${from} ${id}` of invitations received while a member
  const seen = { accepted: [], declinedAsMember: 0 };
  for (const [i, line] of tab.lines.entries()) {
    let m;
    if ((m = line.match(CLUSTER))) {
      member = m[1] !== "null";
      if (member) confirmed = null;
    } else if ((m = line.match(INVITATION))) {
      if (member) whileMember.set(`${m[2]} ${m[1]}`, line);
    } else if ((m = line.match(REPLY))) {
      const [, verb, id, from] = m;
      if (verb === "accepting") {
        if (confirmed && tab.times[i] - confirmed.at > ACCEPT_TIMEOUT_MS) confirmed = null; // lapsed unanswered
        assert.equal(confirmed, null, `${tab.name} confirms invitation ${id} of ${from} while holding ${JSON.stringify(confirmed)}`);
        confirmed = { from, id, at: tab.times[i] };
        seen.accepted.push({ from, id });
      }
      if (membersDecline && whileMember.has(`${from} ${id}`)) {
        assert.equal(verb, "declining", `${tab.name}, a member, answers invitation ${id} of ${from}`);
        seen.declinedAsMember += 1;
      }
    } else if ((m = line.match(WITHDRAWN))) {
      if (confirmed && confirmed.from === m[2] && confirmed.id === m[1]) confirmed = null;
    }
  }
  return seen;
}

/** S1 and S3 for one cluster formed by invitation: the proposer (the inviter, found from the
 * cluster id) and each other member met through the relay's directory; each received the
 * invitation with the inviter's circuit address and record, confirmed it — the last invitation
 * it confirmed before joining — and the confirmation reached the inviter with its own address
 * and record. `segmentOf(peer)` is the segment a page was started with. */
function checkInvitations(cluster, proposer, segmentOf) {
  const inviter = cluster.states.find((st) => st.tab.peerId === proposer).tab;
  const joinedAt = (tab) => tab.lines.findIndex((l) => l === `test: cluster ${cluster.id}`);
  const seen = [];
  for (const { tab } of cluster.states.filter((st) => st.tab.peerId !== proposer)) {
    const before = tab.lines.slice(0, joinedAt(tab));
    const accepted = before.map((l) => l.match(REPLY)).filter((m) => m && m[1] === "accepting").pop();
    assert.ok(accepted, `${tab.name} confirmed an invitation before joining`);
    const [, , id, from] = accepted;
    assert.equal(from, proposer, `${tab.name} joined the cluster of the inviter it confirmed`);
    const invitation = before.map((l) => l.match(INVITATION)).find((m) => m && m[1] === id && m[2] === from);
    assert.ok(invitation, `${tab.name} received invitation ${id}`);
    const [, , , toJoin, address, served, capacity, segment] = invitation;
    assert.equal(toJoin, undefined, "an invitation to form a cluster names no cluster");
    assert.equal(address, `${relay.ws}/p2p-circuit/p2p/${proposer}`, "the inviter's address, through the relay's circuit");
    assert.equal(Number(capacity), inviter.capacityBytes, "the inviter's capacity, as its status() says");
    assert.equal(Number(segment), segmentOf(proposer), "the inviter's segment");
    // The two met through the relay's directory: before the invitation, the inviter had found
    // the invitee there (and dialled it), or the invitee had found the inviter (and dialled it).
    const sent = inviter.lines.findIndex((l) => {
      const m = l.match(INVITING);
      return m && m[1] === tab.peerId && m[2] === id;
    });
    assert.ok(sent >= 0, `${inviter.name} logged inviting ${tab.name}`);
    const lists = (lines, peer) => lines.some((l) => {
      const m = l.match(DIRECTORY);
      return m && m[1] === relayPeer && m[2].split(", ").includes(peer);
    });
    const received = tab.lines.findIndex((l) => l.match(INVITATION)?.[1] === id);
    const inviterFound = lists(inviter.lines.slice(0, sent), tab.peerId);
    const inviteeFound = lists(tab.lines.slice(0, received), proposer);
    assert.ok(inviterFound || inviteeFound, `${inviter.name} and ${tab.name} met through the relay's directory before the invitation`);
    const how = inviterFound ? `${inviter.name} found ${tab.name}` : `${tab.name} found ${inviter.name}`;
    // The confirmation reached the inviter with the invitee's own address and record.
    const answer = inviter.lines.map((l) => l.match(ANSWER)).find((m) => m && m[1] === tab.peerId && m[2] === "accepts" && m[3] === id);
    assert.ok(answer, `${inviter.name} received ${tab.name}'s confirmation of invitation ${id}`);
    assert.equal(answer[4], `${relay.ws}/p2p-circuit/p2p/${tab.peerId}`, "the invitee's address, through the relay's circuit");
    assert.equal(Number(answer[6]), tab.capacityBytes, "the invitee's capacity, as its status() says");
    assert.equal(Number(answer[7]), segmentOf(tab.peerId), "the invitee's segment");
    seen.push(`${tab.name} ← ${inviter.name}: invitation ${id} (${how} in the directory), blocks served ${served}, capacity ${capacity} B, segment ${segment}; confirmed with segment ${answer[7]}`);
  }
  return seen;
}

// ---- The tests ----------------------------------------------------------------------------------

test("six pages form two clusters of three; invitations, acceptance, ids, numbers and the hash-mod rule (S1, S3–S6)", async (t) => {
  const group = await openGroup(6, { placement: "hash-mod" });
  const clusters = await settled("two clusters of 3, every block on the 2 members hash-mod names", group, 2,
    (height, numbered) => byNumber(hashModHolders(chain[height].hash, numbered.length, REPLICAS), numbered), 90_000);

  // S3: no page in two clusters; the two clusters' members are disjoint and cover the pages.
  const names = clusters.flatMap((c) => c.states.map((st) => st.tab.name)).sort();
  assert.deepEqual(names, group.map((tab) => tab.name).sort(), "every page in exactly one cluster");
  for (const c of clusters) {
    for (const st of c.states) {
      const others = clusters.filter((o) => o.id !== c.id).flatMap((o) => o.states.map((x) => x.tab.peerId));
      assert.ok(!st.s.members.some((p) => others.includes(p)), `${st.tab.name}'s view names no page of the other cluster`);
    }
  }
  for (const c of clusters) {
    const numbered = checkNumbering(c); // S5
    const members = c.states.map((st) => st.tab.peerId);
    const proposer = proposerOf(c.id, 0, members); // S4: the id is its genesis's hash
    assert.ok(proposer, `cluster ${c.id} is sha256d("shoal/cluster" ‖ 0 ‖ proposer ‖ founders) for a member`);
    for (const line of checkInvitations(c, proposer, () => 0)) t.diagnostic(line);
    for (const st of c.states) await checkShardApi(st);
    t.diagnostic(`cluster ${c.id.slice(0, 16)}…: numbers ${numbered.map((p) => group.find((x) => x.peerId === p).name)}, proposer ${group.find((x) => x.peerId === proposer).name}`);
  }
  for (const tab of group) {
    const seen = checkAcceptance(tab, { membersDecline: true });
    t.diagnostic(`${tab.name}: confirmed ${seen.accepted.length} invitation(s), declined ${seen.declinedAsMember} as a member`);
  }
  // S6, as the test computed it: each block on exactly REPLICAS pages of each cluster.
  const states = clusters.flatMap((c) => c.states);
  for (const [height, holders] of holdersByHeight(states).entries()) assert.equal(holders.length, 2 * REPLICAS, `height ${height}`);
  await closeGroup(group);
});

test("the even rule: ranges of heights on consecutive member numbers (S5, S7)", async () => {
  const RANGE = 4;
  const group = await openGroup(3, { placement: "even", evenRangeBlocks: RANGE });
  const [cluster] = await settled("one cluster, every block where the even rule puts it", group, 1,
    (height, numbered) => byNumber(evenHolders(height, numbered.length, REPLICAS, RANGE), numbered), 60_000);
  const numbered = checkNumbering(cluster);
  // Spelled out: range r of heights is on members r and r+1 (mod 3), so member n holds the
  // ranges n and n−1 — two ranges out of every three.
  for (const st of cluster.states) {
    const n = numbered.indexOf(st.tab.peerId);
    const ranges = new Set([...st.stored].map((hash) => Math.floor(chain.findIndex((b) => b.hash === hash) / RANGE) % SIZE));
    assert.deepEqual([...ranges].sort(), [n, (n + SIZE - 1) % SIZE].sort(), `${st.tab.name} (number ${n}) holds its ranges`);
    await checkShardApi(st);
  }
  // A bad value of the new options is refused at start, naming the option (BAD_INPUT).
  const refused = await group[0].page.evaluate(async (relays) => {
    const { LightNode } = await import("/dist/index.js");
    const out = [];
    for (const bad of [{ placement: "modulo" }, { placement: "even", evenRangeBlocks: 0 }, { evenRangeBlocks: 4 }, { clusterTtlMs: 10 }, { segment: -1 }, { heartbeatNeighbours: 33 }]) {
      try {
        await LightNode.start({ relays, database: "formation-bad", ...bad });
        out.push({ bad, code: "started" });
      } catch (err) {
        out.push({ bad, code: err.code, message: String(err.message) });
      }
    }
    return out;
  }, [relay.ws]);
  for (const { bad, code, message } of refused) {
    assert.equal(code, "BAD_INPUT", JSON.stringify(bad));
    assert.match(message, new RegExp(`options\\.${Object.keys(bad).pop()}`), message);
  }
  await closeGroup(group);
});

test("the segment rule: every block on two network segments (S5, S8)", async (t) => {
  const SEGMENTS = [1, 1, 2];
  const group = await openGroup(3, { placement: "segment" }, (i) => ({ segment: SEGMENTS[i] }));
  const segmentOf = (peer) => group.find((tab) => tab.peerId === peer).options.segment;
  const [cluster] = await settled("one cluster, every block where the segment rule puts it", group, 1,
    (height, numbered) => byNumber(segmentHolders(chain[height].hash, numbered.map((peer) => ({ peer, segment: segmentOf(peer) })), REPLICAS), numbered), 60_000);
  checkNumbering(cluster);
  const proposer = proposerOf(cluster.id, 0, cluster.states.map((st) => st.tab.peerId));
  assert.ok(proposer, "the cluster id is its genesis's hash");
  for (const line of checkInvitations(cluster, proposer, segmentOf)) t.diagnostic(line); // each record carries its page's segment
  for (const tab of group) checkAcceptance(tab, { membersDecline: true });
  // The rule's promise without any hashing: one segment failing loses no block. With segments
  // 1, 1, 2 and two copies, the page alone on segment 2 holds every block, and each block's
  // other copy is on segment 1.
  holdersByHeight(cluster.states).forEach((holders, height) => {
    assert.deepEqual(holders.map(segmentOf).sort(), [1, 2], `height ${height}'s copies are on both segments`);
  });
  const lone = cluster.states.find((st) => segmentOf(st.tab.peerId) === 2);
  assert.equal(lone.stored.size, CHAIN, "the page on segment 2 holds the whole chain");
  for (const st of cluster.states) {
    await checkShardApi(st);
    t.diagnostic(`${st.tab.name}: segment ${segmentOf(st.tab.peerId)}, ${st.stored.size} blocks`);
  }
  await closeGroup(group);
});

test("a cluster id lapses after clusterTtlMs and the same members re-form under a new id, moving only what the rule moves (S4, S6)", async (t) => {
  const TTL_MS = 20_000;
  const group = await openGroup(3, { placement: "hash-mod", clusterTtlMs: TTL_MS });
  const hashMod = (height, numbered) => byNumber(hashModHolders(chain[height].hash, numbered.length, REPLICAS), numbered);
  const [first] = await settled("one cluster, every block where hash-mod puts it", group, 1, hashMod, 60_000);
  const members = first.states.map((st) => st.tab.peerId).sort();
  const firstProposer = proposerOf(first.id, 0, members);
  assert.ok(firstProposer, "generation 0's id is its genesis's hash");
  checkInvitations(first, firstProposer, () => 0);
  const idsSeen = () => Promise.all(group.map((tab) => tab.page.evaluate(() => window.clusterIds.filter(Boolean))));
  for (const ids of await idsSeen()) assert.deepEqual(ids, [first.id], "the first settled cluster is generation 0");
  const received = (s) => s.downloadedBytes.fromRelays.blocks + s.downloadedBytes.fromMembers.blocks;
  const before = new Map(first.states.map((st) => [st.tab.peerId, { stored: st.stored, received: received(st.s) }]));

  // The id lapses; member number 0 invites its former mates at once and they re-form. Blocks a
  // member no longer holds are spares until every new holder of them has said it holds its
  // shard (`ShardHeld`), then deleted: each page's IndexedDB ends up exactly its new shard.
  const [second] = await settled("the same three re-form under a new id, every block where hash-mod puts it and nowhere else", group, 1,
    (height, numbered, c) => (c.id === first.id ? null : hashMod(height, numbered)),
    TTL_MS + 60_000);
  assert.notEqual(second.id, first.id);
  assert.deepEqual(second.states.map((st) => st.tab.peerId).sort(), members, "the same members");
  const secondProposer = proposerOf(second.id, 1, members);
  assert.ok(secondProposer, "the new id is the hash of generation 1's genesis: a re-forming, not a new cluster");
  for (const line of checkInvitations(second, secondProposer, () => 0)) t.diagnostic(`generation 1: ${line}`);
  for (const ids of await idsSeen()) assert.deepEqual(ids, [first.id, second.id], "every member went from the first id to the second");
  const numbered = checkNumbering(second);
  let moved = 0;
  for (const st of second.states) {
    const was = before.get(st.tab.peerId);
    const gained = chain.filter((b, height) => hashMod(height, numbered).includes(st.tab.peerId) && !was.stored.has(b.hash));
    const bytes = gained.reduce((sum, b) => sum + b.size, 0);
    assert.equal(received(st.s) - was.received, bytes, `${st.tab.name} downloaded exactly the ${gained.length} blocks the new numbering gave it`);
    moved += gained.length;
    t.diagnostic(`${st.tab.name}: ${gained.length} blocks moved to it (${bytes} B downloaded)`);
  }
  t.diagnostic(`re-formed ${first.id.slice(0, 16)}… → ${second.id.slice(0, 16)}…; ${moved} of ${CHAIN * REPLICAS} copies moved`);
  for (const tab of group) checkAcceptance(tab, { membersDecline: false });
  await closeGroup(group);
});

test("heartbeats to numbered neighbours: a closed member is found by its neighbours and every view converges without it (S10)", async (t) => {
  // Four members checking one neighbour on either side: in a ring of four, the member numbered
  // opposite the closed one does not check it and learns of the loss only by the view.
  const group = await openGroup(4, { clusterSize: 4, heartbeatNeighbours: 1 });
  await waitFor("one cluster of four", 60_000, async () => {
    const states = await Promise.all(group.map(read));
    const clusters = clustersOf(states);
    const full = clusters.length === 1 && clusters[0].states.length === 4
      && states.every((st) => st.stable && st.s.members.length === 4);
    return { clusters: clusters.map((c) => c.states.length), done: full };
  });
  const id = (await read(group[0])).s.clusterId;
  const numbered = numbering(id, group.map((tab) => tab.peerId));
  // Each member watches exactly its two numbered neighbours (S10), as computed here.
  for (const tab of group) {
    const n = numbered.indexOf(tab.peerId);
    const neighbours = [numbered[(n + 1) % 4], numbered[(n + 3) % 4]];
    const { watching } = await tab.page.evaluate(() => window.node.status());
    assert.deepEqual([...watching].sort(), neighbours.sort(), `${tab.name} (number ${n}) watches its neighbours`);
  }
  const [gone] = group;
  const opposite = numbered[(numbered.indexOf(gone.peerId) + 2) % 4];
  t.diagnostic(`closing ${gone.name} (number ${numbered.indexOf(gone.peerId)}); number ${numbered.indexOf(opposite)} does not watch it`);
  await gone.page.context().close();
  const rest = group.slice(1);
  const expect = rest.map((tab) => tab.peerId).sort();
  await waitFor("the three others agree on a view without it", 30_000, async () => {
    const states = await Promise.all(rest.map(read));
    const views = states.map((st) => [...st.s.members].sort());
    return { views, done: states.every((st) => st.s.clusterId === id) && views.every((v) => JSON.stringify(v) === JSON.stringify(expect)) };
  });
  // Its blocks are back on P live members (S11 under neighbour heartbeats).
  await waitFor("every block on P of the three", 30_000, async () => {
    const short = holdersByHeight(await Promise.all(rest.map(read))).map((h, height) => [height, h.length]).filter(([, n]) => n < REPLICAS);
    return { short, done: short.length === 0 };
  });
  await closeGroup(rest);
});
