// The demo: starts a light node in this tab on the relay that serves the page and shows what
// it does — the cluster it is part of (ring.js), who stores which block (shardmap.js), how
// much of the chain this tab and the cluster store, transactions to verify with their proof
// checked again here (bitcoin.js), and the node's events as sentences (events.js).
//
// Options come from the query string, e.g. `/?clusterSize=5&replicas=2&heartbeatIntervalMs=500`
// (see OPTIONS). `window.shoalNode` is the node and `window.shoalDemo` what was last drawn,
// for the console and the end-to-end test.
import { LightNode } from "/dist/index.js";
import { drawRing, ringPosition } from "./ring.js";
import { drawShardMap, heightWindow, MAX_ROWS } from "./shardmap.js";
import { EventLog, formatBytes } from "./events.js";
import { displayHex, merklePath, parseBlock } from "./bitcoin.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 500;
const CHAIN_POLL_MS = 3000;
const GHOST_MS = 8000; // a member that left the view stays drawn (greyed) this long
const JOINED_MS = 8000; // a member that joined has a halo this long
const SUGGESTIONS = 6; // transactions offered to verify
const SUGGEST_BLOCKS = 4; // from this many of the newest blocks

/** The page's query options: name → the node option's largest value (the node checks each
 * option's own range and says so if one is out of it). */
const OPTIONS = {
  clusterSize: 64,
  replicas: 63,
  heartbeatIntervalMs: 3_600_000,
  offlineAfterMs: 3_600_000,
  formationIntervalMs: 3_600_000,
};

/** Reads the query string into LightNode options; throws a sentence on anything else. */
export function readOptions(search) {
  const options = {};
  for (const [name, value] of new URLSearchParams(search)) {
    if (name === "database") {
      if (!/^[A-Za-z0-9._-]{1,32}$/.test(value)) throw new Error(`?database= must be 1 to 32 letters, digits, '.', '_' or '-'`);
      options.database = value;
      continue;
    }
    if (!(name in OPTIONS)) {
      throw new Error(`unknown option ?${name}= (known: ${[...Object.keys(OPTIONS), "database"].join(", ")})`);
    }
    if (!/^[0-9]{1,7}$/.test(value) || Number(value) < 1 || Number(value) > OPTIONS[name]) {
      throw new Error(`?${name}= must be a whole number from 1 to ${OPTIONS[name]}, not "${value}"`);
    }
    if (name in options) throw new Error(`?${name}= is given twice`);
    options[name] = Number(value);
  }
  return options;
}

class Demo {
  constructor(node) {
    this.node = node;
    // Members this tab declared lost and still in the view, with when (Date.now()): drawn
    // offline until they leave the view, or are heard from again (back in the view: a member
    // declared lost during a stall rejoins the greater view and is online).
    this.lost = new Map();
    this.placed = new Map(); // peer id → where it was drawn: { number, x, y, relay }
    this.ghosts = new Map(); // peer id → { number, x, y, relay, until }
    this.joined = new Map(); // peer id → until
    this.chainBytes = null; // the relay's /status.json chain_bytes
    this.recentBlocks = []; // { height, blockHash }, newest first (from new-block)
    this.parsed = new Map(); // block hash → { height, txids, prev }: blocks read for suggestions
    this.statusCache = null;
    this.log = new EventLog($("log"), (peerId, options) => this.who(peerId, options));
    this.model = { status: null, ring: null, shardMap: null, storage: null, verify: null, suggestions: [], suggestError: null, refresh: () => this.render() };
  }

  status() {
    const now = performance.now();
    if (!this.statusCache || now - this.statusCache.at > 100) this.statusCache = { at: now, s: this.node.status() };
    return this.statusCache.s;
  }

  /** What a peer is to this tab, for the sentences. */
  who(peerId, { fresh = false } = {}) {
    if (fresh) this.statusCache = null;
    const s = this.status();
    if (peerId === s.peerId) return { kind: "self" };
    const number = s.members.indexOf(peerId);
    if (number >= 0) return { kind: "member", number, relay: this.isRelay(s, peerId, number) };
    const placed = this.placed.get(peerId);
    if (placed) return { kind: "member", number: placed.number };
    if (s.relays.some((r) => r.peerId === peerId) || s.nodePeers.some((p) => p.peerId === peerId && p.archive)) return { kind: "relay" };
    return { kind: "peer" };
  }

  isRelay(s, peerId, number) {
    const d = s.memberDetails[number];
    return Boolean(d && d.peerId === peerId && d.relay);
  }

  listen() {
    const types = ["cluster", "member-lost", "member-joined", "holder-faulty", "failure-domains", "new-block", "block-stored", "relay", "sync-progress"];
    for (const type of types) {
      this.node.addEventListener(type, ({ detail }) => {
        this.statusCache = null;
        if (type === "member-lost") this.lost.set(detail.peerId, Date.now());
        if (type === "member-joined") {
          this.lost.delete(detail.peerId);
          this.joined.set(detail.peerId, performance.now() + JOINED_MS);
        }
        if (type === "new-block") {
          this.recentBlocks.unshift({ height: detail.height, blockHash: detail.blockHash });
          this.recentBlocks.length = Math.min(this.recentBlocks.length, SUGGEST_BLOCKS);
        }
        if (type === "sync-progress") this.showSync(detail);
        this.log.on(type, detail);
      });
    }
  }

  showSync({ height, target, synced }) {
    $("sync").max = Math.max(target ?? height + 1, 1);
    $("sync").value = synced ? $("sync").max : height;
    $("sync-text").textContent = synced ? `synced at block ${height}` : `headers ${height} of ${target ?? "?"}…`;
  }

  /** Draws everything from one status() snapshot and the shard map asked right after it;
   * resolves with the model of what was drawn. One drawing at a time: a call while one is
   * under way waits for it and draws again. */
  render() {
    const previous = this.rendering ?? Promise.resolve();
    this.rendering = previous.catch(() => {}).then(async () => {
      this.statusCache = null;
      const s = this.status();
      const map = await this.node.shardMap(heightWindow(s.tip.height).fromHeight, s.tip.height);
      this.model.status = s;
      this.renderSummary(s);
      this.renderRing(s);
      this.renderShardMap(s, map);
      this.renderStorage(s);
      return this.model;
    });
    return this.rendering;
  }

  renderSummary(s) {
    const cluster = s.clusterId
      ? `cluster ${s.clusterId.slice(0, 8)} · member ${s.memberNumber} of ${s.members.length} (room for ${s.clusterSize}, each block on ${s.replicas})`
      : `not in a cluster (looking for ${s.clusterSize - 1} others)`;
    $("summary").textContent = `this tab ${s.peerId.slice(-8)} · ${cluster} · tip ${s.tip.height}`;
    const rows = {
      "peer id": s.peerId,
      network: s.network,
      relays: s.relays.map((r) => `${r.peerId} (${r.transport})`).join(", ") || "none",
      "cluster id": s.clusterId ?? "none",
      "chain tip": `${s.tip.height} ${s.tip.hash}`,
      connections: s.connections.map((c) => `${c.peerId.slice(-8)} (${c.role}, ${c.transport})`).join(", ") || "none",
      "held blocks": `${s.heldBlocks} (${formatBytes(s.storedBytes)}), ${s.missingBlocks} missing`,
      downloaded: `blocks: ${formatBytes(s.downloadedBytes.fromRelays.blocks)} from relays, ${formatBytes(s.downloadedBytes.fromMembers.blocks)} from members`,
    };
    $("status").replaceChildren(...Object.entries(rows).flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }));
  }

  renderRing(s) {
    const now = performance.now();
    const interval = s.heartbeatIntervalMs;
    for (const [peerId, at] of this.lost) {
      const number = s.members.indexOf(peerId);
      const heard = number >= 0 ? s.memberDetails[number]?.lastHeardAt : null;
      if (number < 0 || (heard !== null && heard !== undefined && heard > at)) this.lost.delete(peerId);
    }
    // Members that left the view since the last drawing become ghosts where they were.
    for (const [peerId, at] of this.placed) {
      if (!s.members.includes(peerId)) {
        this.ghosts.set(peerId, { ...at, peerId, until: now + GHOST_MS });
        this.log.lostSeen = true;
      }
    }
    for (const [peerId, g] of this.ghosts) if (g.until < now || s.members.includes(peerId)) this.ghosts.delete(peerId);
    for (const [peerId, until] of this.joined) if (until < now) this.joined.delete(peerId);

    const members = s.members.map((peerId, number) => {
      const d = s.memberDetails[number];
      const self = peerId === s.peerId;
      const connected = d.connected;
      // A member not watched by heartbeats (heartbeatNeighbours) has no last-heard time.
      let state;
      if (this.lost.has(peerId)) state = "offline";
      else if (self) state = "online";
      else if (d.lastHeardAt !== null && Date.now() - d.lastHeardAt > 2 * interval) state = "late";
      else if (d.lastHeardAt !== null || connected) state = "online";
      else state = "unknown";
      return {
        peerId, number, self, state, connected,
        relay: this.isRelay(s, peerId, number),
        watched: s.watching.includes(peerId),
        joined: this.joined.has(peerId) && !self,
      };
    });
    this.placed = new Map(members.map((m, i) => [m.peerId, { number: m.number, relay: m.relay, ...ringPosition(i, members.length) }]));
    const archives = new Set([
      ...s.nodePeers.filter((p) => p.archive).map((p) => p.peerId),
      ...s.connections.filter((c) => c.role === "archive").map((c) => c.peerId),
    ]);
    const relays = s.relays
      .filter((r) => !s.members.includes(r.peerId))
      .map((r) => ({ peerId: r.peerId, transport: r.transport, archive: archives.has(r.peerId) }));
    const picture = { selfId: s.peerId, members, ghosts: [...this.ghosts.values()], relays, clusterSize: s.clusterSize };
    drawRing($("ring"), picture);
    this.model.ring = picture;
  }

  renderShardMap(s, map) {
    const width = $("shard-map").parentElement.clientWidth;
    this.model.shardMap = drawShardMap($("shard-map"), { map, details: s.memberDetails, selfId: s.peerId, width });
    const rows = map.toHeight - map.fromHeight + 1;
    $("shard-note").textContent = map.fromHeight > 0
      ? `heights ${map.fromHeight}–${map.toHeight}: the newest ${rows} of ${map.tipHeight + 1} (at most ${MAX_ROWS} shown)`
      : `heights 0–${map.toHeight}`;
  }

  renderStorage(s) {
    const chain = this.chainBytes;
    const details = s.memberDetails;
    const reported = details.filter((d) => d.self || d.report);
    const clusterBytes = details.reduce((sum, d) => sum + (d.self ? s.storedBytes : d.report?.storedBytes ?? 0), 0);
    const storage = {
      tabBytes: s.storedBytes,
      chainBytes: chain,
      clusterBytes: s.clusterId ? clusterBytes : null,
      clusterTarget: chain !== null && s.clusterId ? s.replicas * chain : null,
      reportedMembers: reported.length,
      members: s.members.length,
    };
    this.model.storage = storage;
    const bar = (id, value, whole, text) => {
      const b = $(id);
      b.dataset.value = String(value ?? "");
      b.querySelector(".fill").style.width = whole ? `${Math.min(100, (100 * (value ?? 0)) / whole).toFixed(1)}%` : "0";
      b.querySelector(".text").textContent = text;
    };
    const pct = (a, b) => (a !== null && b ? ` (${((100 * a) / b).toFixed(1)} %)` : "");
    bar("bar-tab", s.storedBytes, chain, `${formatBytes(s.storedBytes)} of the chain's ${chain === null ? "?" : formatBytes(chain)}${pct(s.storedBytes, chain)}`);
    const share = s.clusterId && chain !== null ? ` · its share: ${formatBytes(Math.round((chain * s.replicas) / s.members.length))}` : "";
    const offered = s.storage ? ` · offers ${formatBytes(s.storage.capacityBytes)} (${s.storage.liveTabs === 1 ? "the only tab" : `one of ${s.storage.liveTabs} tabs`} of this origin)` : "";
    $("tab-share").textContent = `${s.heldBlocks} blocks held${share}${offered}`;
    if (storage.clusterBytes === null) {
      bar("bar-cluster", null, null, "not in a cluster");
    } else {
      bar("bar-cluster", clusterBytes, storage.clusterTarget, `${formatBytes(clusterBytes)} of ${s.replicas} × chain = ${storage.clusterTarget === null ? "?" : formatBytes(storage.clusterTarget)}${pct(clusterBytes, storage.clusterTarget)}${reported.length < s.members.length ? ` · ${s.members.length - reported.length} not reported yet` : ""}`);
    }
  }

  async pollChain() {
    try {
      const r = await (await fetch("/status.json")).json();
      this.chainBytes = typeof r.chain_bytes === "number" ? r.chain_bytes : null;
    } catch {
      // the relay is down: keep the last figure
    }
  }

  /** Offers transactions of the newest blocks: each block read with getBlock (from this tab's
   * store or a member that holds it), its transactions hashed here. Blocks older than the
   * newest announced ones are found through each header's previous-block hash. */
  async suggest() {
    const s = this.status();
    if (!s.synced || s.tip.height === 0) return;
    const blocks = [];
    let hash = this.recentBlocks[0]?.blockHash ?? s.tip.hash;
    let height = this.recentBlocks[0]?.height ?? s.tip.height;
    for (let i = 0; i < SUGGEST_BLOCKS && height > 0; i++, height--) {
      let entry = this.parsed.get(hash);
      if (!entry) {
        try {
          const bytes = await this.node.getBlock(hash);
          const block = await parseBlock(bytes);
          if (block.blockHash !== hash) throw new Error("getBlock answered another block");
          entry = { height, txids: block.txids, prev: displayHex(bytes.subarray(4, 36)) };
          this.parsed.set(hash, entry);
        } catch (err) {
          // Not available now (e.g. its holders still fetching it): tried again next time.
          this.model.suggestError = `block ${height}: ${err.code ?? ""} ${err.message}`;
          break;
        }
      }
      blocks.push({ blockHash: hash, ...entry });
      hash = entry.prev;
    }
    while (this.parsed.size > 64) this.parsed.delete(this.parsed.keys().next().value);
    const held = new Set((await this.node.shardMap(Math.max(0, height), s.tip.height)).held);
    const picks = [];
    for (let round = 0; picks.length < SUGGESTIONS && round < 3; round++) {
      for (const b of blocks) {
        const index = b.txids.length > 1 ? 1 + ((b.height + round) % (b.txids.length - 1)) : 0;
        const txid = b.txids[index];
        if (!picks.some((p) => p.txid === txid) && picks.length < SUGGESTIONS) {
          picks.push({ txid, index, count: b.txids.length, height: b.height, blockHash: b.blockHash, here: held.has(b.height) });
        }
      }
    }
    if (JSON.stringify(picks) === JSON.stringify(this.model.suggestions)) return;
    this.model.suggestions = picks;
    $("suggestions").replaceChildren(...picks.map((p) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "suggestion";
      button.dataset.txid = p.txid;
      button.textContent = `block ${p.height} · tx ${p.index + 1}/${p.count} · ${p.txid.slice(0, 10)}…${p.here ? " (held here)" : ""}`;
      button.addEventListener("click", () => {
        $("txid").value = p.txid;
        this.verify(p.txid);
      });
      return button;
    }));
  }

  /** Verifies `txid` with the node, then checks its proof again here: the Merkle path
   * recomputed with SHA-256d up to a root, compared to the Merkle root in this tab's header of
   * the block. */
  async verify(txid) {
    const out = $("result");
    out.className = "";
    out.textContent = "verifying…";
    this.model.verify = { txid, pending: true };
    const start = performance.now();
    let proof;
    try {
      proof = await this.node.verifyTransaction(txid);
    } catch (err) {
      out.className = "error";
      out.textContent = `${err.code ?? "ERROR"}: ${err.message}`;
      this.model.verify = { txid, error: err.code ?? err.message };
      return;
    }
    const ms = performance.now() - start;
    const path = await merklePath(proof.txid, proof.pos, proof.merkle);
    // The root in this tab's own header at that height, which the node checked the proof
    // against: the page's recomputed path must lead to it too.
    const headerRoot = proof.merkleRoot;
    const w = proof.answeredBy ? this.who(proof.answeredBy) : { kind: "self" };
    const name = proof.source === "local"
      ? "this tab"
      : proof.source === "member" ? (w.kind === "member" ? `member ${w.number}` : "a member") : "the relay";
    const source = proof.answeredBy ? `${name} (peer ${proof.answeredBy})` : `${name} (its own copy of the block)`;
    const match = path.root === headerRoot;
    this.model.verify = {
      txid, source: proof.source, answeredBy: proof.answeredBy, ms, height: proof.height,
      computedRoot: path.root, headerRoot, match,
    };
    this.log.say(`verified a transaction of block ${proof.height}: answered by ${name} in ${ms.toFixed(0)} ms`, match ? "good" : "bad");

    const line = (cls, label, value) => {
      const row = document.createElement("div");
      row.className = `step ${cls}`;
      const l = document.createElement("span");
      l.className = "what";
      l.textContent = label;
      const v = document.createElement("code");
      v.textContent = value;
      row.append(l, v);
      return row;
    };
    const rows = [
      line("meta", "answered by", source),
      line("meta", "took", `${ms.toFixed(0)} ms`),
      line("meta", "block", `${proof.height} (${proof.confirmations} confirmations), position ${proof.pos}`),
      line("leaf", "txid", proof.txid),
    ];
    for (const step of path.steps) {
      rows.push(line(`sibling ${step.siblingLeft ? "left" : "right"}`, `level ${step.level + 1}: ${step.siblingLeft ? "sibling on the left" : "sibling on the right"}`, step.sibling));
      rows.push(line("hash", "→ SHA-256d", step.hash));
    }
    rows.push(line("root", "computed root", path.root));
    rows.push(line(match ? "root ok" : "root bad", `header ${proof.height}'s root`, headerRoot));
    rows.push(line(match ? "verdict ok" : "verdict bad", match ? "✓ matches" : "✗ differs", match
      ? "the path leads to the Merkle root of this tab's header of the block"
      : "the recomputed path does not lead to the header's Merkle root"));
    out.replaceChildren(...rows);
  }
}

async function main() {
  const options = readOptions(location.search);
  const { addrs } = await (await fetch("/relay-addrs.json")).json();
  const node = await LightNode.start({ relays: addrs, ...options });
  window.shoalNode = node;
  const demo = new Demo(node);
  window.shoalDemo = demo.model;
  demo.listen();
  const started = node.status();
  demo.log.say(`node started: this tab is ${started.peerId}`);
  for (const r of started.relays) demo.log.on("relay", { peerId: r.peerId, connected: true, transport: r.transport });
  await demo.pollChain();
  await demo.render();
  const draw = () => demo.render().catch((err) => {
    $("fatal").hidden = false;
    $("fatal").textContent = `The node stopped answering: ${err.code ? `${err.code}: ` : ""}${err.message}`;
  });
  setInterval(draw, REFRESH_MS);
  setInterval(() => demo.pollChain(), CHAIN_POLL_MS);
  let suggesting = false;
  setInterval(async () => {
    if (suggesting) return;
    suggesting = true;
    try {
      await demo.suggest();
    } catch (err) {
      demo.model.suggestError = `${err.code ?? ""} ${err.message}`;
    } finally {
      suggesting = false;
    }
  }, 2000);
  $("verify").addEventListener("submit", (event) => {
    event.preventDefault();
    demo.verify($("txid").value.trim());
  });
}

main().catch((err) => {
  const p = $("fatal");
  p.hidden = false;
  p.textContent = `The node could not start: ${err.code ? `${err.code}: ` : ""}${err.message}`;
});
