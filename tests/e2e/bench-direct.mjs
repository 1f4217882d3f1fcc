// Direct page-to-page WebRTC (issue 14): `npm run bench:direct`, i.e.
// `bash tests/e2e/run.sh --bench-direct`, inside the network namespace of run.sh with a release
// relay. A command, not a test: it asserts no speed. Every figure is printed with its baseline
// measured in the same run, the ratio, and the target beside it, "met" or "not met".
//
//   1. Throughput: 1 MiB page → page transfers (`probeTransfer(bytes, peerId)`: the receiving
//      page answers the bytes' SHA-256) over a direct `/webrtc` connection and over the relay's
//      circuit (two pages with `directConnections: false`), against a raw RTCDataChannel between
//      two pages of the same browser sending 16 KiB messages (the spec's message limit), ROUNDS
//      rounds each, medians. Target: direct ≥ 70 % of raw.
//   2. Set-up: for each direct connection of the cluster in 3, the time from the circuit to the
//      direct connection and the dialling page's signalling + ICE time (the `connection`
//      event). Target: ≤ 500 ms after the circuit.
//   3. Relayed bytes: a cluster of K pages fills its shards from the archive, one member closes
//      and an outside page is recruited and filled (the churn step of bench-cluster.mjs):
//      the relay's `relayed_bytes` (its `/status.json`: circuit bytes it forwarded) against the
//      block bytes the pages received from members (`downloadedBytes.fromMembers.blocks`),
//      once with direct connections and once without. Target: relayed ≤ 1 % of member block
//      bytes with direct connections.
import { join } from "node:path";
import { launchBrowser, openPages, relayCli, startRelay, tempDir } from "./harness.mjs";
import { median, rawDataChannel } from "./raw-datachannel.mjs";

const MIB = 1 << 20;
const ROUNDS = Number(process.env.SHOAL_BENCH_ROUNDS ?? 7);
const K = 3;
const P = 2;
const BLOCKS = 60;
const TXS = 200; // ~60 KB blocks
const TIMINGS = { heartbeatIntervalMs: 500, offlineAfterMs: 2_500, formationIntervalMs: 2_000 };
const POLL_MS = 200;

const log = (line) => console.log(line);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);
const met = (ok) => (ok ? "met" : "not met");
const relayLog = [];
const pageLog = [];

async function waitFor(what, ms, probe) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(POLL_MS);
  }
}

function startNode(page, options) {
  return page.evaluate(async (options) => {
    const { LightNode } = await import("/dist/index.js");
    window.events = [];
    window.node = await LightNode.start(options);
    window.node.addEventListener("connection", (e) => window.events.push({ type: "connection", detail: e.detail }));
    return window.node.status().peerId;
  }, options);
}

const status = (page) => page.evaluate(() => window.node.status());

/** Waits until `pages` have a connection of `transport` to each other. */
async function linked(pages, ids, transport) {
  await waitFor(`pages linked by ${transport}`, 60_000, async () => {
    const all = await Promise.all(pages.map(status));
    return all.every((s, i) => ids.every((id, j) => j === i || s.connections.some((c) => c.peerId === id && c.transport === transport)));
  });
}

/** Median ms of ROUNDS 1 MiB probes from `from` to `to`'s peer id (checked by SHA-256). */
async function transfers(from, toId) {
  const times = await from.evaluate(async ({ toId, rounds, size }) => {
    const bytes = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
    const out = [];
    for (let i = 0; i < rounds; i++) out.push((await window.node.probeTransfer(bytes, toId)).millis);
    return out;
  }, { toId, rounds: ROUNDS, size: MIB });
  return median(times);
}

async function throughput(browser, relay) {
  const [a, b, c, d] = await openPages(browser, 4, pageLog);
  const base = { relays: [relay.ws], database: "bench-direct", clusterSize: 8, replicas: 2 };
  const ids = [];
  ids.push(await startNode(a, base), await startNode(b, base));
  ids.push(await startNode(c, { ...base, directConnections: false }), await startNode(d, { ...base, directConnections: false }));
  // The pages meet through the directory; a and b go direct, c and d stay on the circuit.
  await linked([a, b], ids.slice(0, 2), "webrtc");
  await linked([c, d], ids.slice(2, 4), "circuit");
  const raw = await rawDataChannel(browser, { size: MIB, chunk: 16_384, rounds: ROUNDS, pings: 50 });
  const rawMs = (raw.aToB + raw.bToA) / 2;
  const direct = [await transfers(a, ids[1]), await transfers(b, ids[0])];
  const circuit = [await transfers(c, ids[3]), await transfers(d, ids[2])];
  const directMs = median(direct);
  const circuitMs = median(circuit);
  const rawRate = mbps(MIB, rawMs);
  log(`raw RTCDataChannel page ↔ page (baseline, 16 KiB messages): 1 MiB in ${rawMs.toFixed(1)} ms (${rawRate.toFixed(1)} MB/s); round trip p50 ${raw.rttP50.toFixed(2)} ms`);
  const directRate = mbps(MIB, directMs);
  const circuitRate = mbps(MIB, circuitMs);
  log(`direct /webrtc page → page 1 MiB probe: ${directMs.toFixed(1)} ms (${directRate.toFixed(1)} MB/s, ${(directRate / rawRate).toFixed(2)} × raw; target ≥ 0.70 × raw: ${met(directRate >= 0.7 * rawRate)})`);
  log(`relay circuit page → page 1 MiB probe: ${circuitMs.toFixed(1)} ms (${circuitRate.toFixed(1)} MB/s, ${(circuitRate / rawRate).toFixed(2)} × raw; direct is ${(directRate / circuitRate).toFixed(1)} × the circuit)`);
  for (const p of [a, b, c, d]) await p.context().close();
}

/** The cluster scenario with direct connections on or off: relayed bytes and member block
 * bytes, plus the direct connections' set-up times. */
async function scenario(browser, chainFile, direct) {
  const relay = await startRelay({ dataDir: tempDir("bench-direct"), importFile: chainFile, log: (l) => relayLog.push(l) });
  try {
    const pages = await openPages(browser, K + 1, pageLog);
    const options = { relays: [relay.ws], database: "bench-direct", clusterSize: K, replicas: P, directConnections: direct, ...TIMINGS };
    const before = (await relay.status()).relayed_bytes ?? 0;
    const ids = [];
    for (const page of pages.slice(0, K)) ids.push(await startNode(page, options));
    const full = async (members) => {
      const all = await Promise.all(members.map(status));
      const ids = new Set(all.map((s) => s.clusterId));
      return ids.size === 1 && all[0].clusterId && all.every((s) => s.members.length === K && s.missingBlocks === 0 && s.tip.height >= BLOCKS);
    };
    await waitFor("cluster filled", 180_000, () => full(pages.slice(0, K)));
    const setups = [];
    for (const page of pages.slice(0, K)) {
      for (const e of await page.evaluate(() => window.events)) {
        if (e.type === "connection" && e.detail.up && e.detail.dialMs !== undefined) setups.push(e.detail);
      }
    }
    // Churn: a member closes without a word; the outside page is recruited and filled.
    await pages[0].close();
    ids.push(await startNode(pages[K], options));
    const rest = pages.slice(1);
    await waitFor("replacement filled", 180_000, () => full(rest));
    const all = await Promise.all(rest.map(status));
    const memberBlocks = all.reduce((n, s) => n + s.downloadedBytes.fromMembers.blocks, 0);
    const relayed = ((await relay.status()).relayed_bytes ?? 0) - before;
    for (const page of rest) await page.context().close();
    return { relayed, memberBlocks, setups };
  } finally {
    await relay.stop();
  }
}

async function main() {
  log(`bench-direct: ${new Date().toISOString()}`);
  const browser = await launchBrowser();
  try {
    const work = tempDir("bench-direct-chain");
    const chainFile = join(work, "chain.dat");
    relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "14", "--txs-per-block", String(TXS), "--out", chainFile]);
    const relay = await startRelay({ dataDir: tempDir("bench-direct-t"), importFile: chainFile, log: (l) => relayLog.push(l) });
    try {
      await throughput(browser, relay);
    } finally {
      await relay.stop();
    }
    const on = await scenario(browser, chainFile, true);
    const off = await scenario(browser, chainFile, false);
    const after = on.setups.map((s) => s.afterCircuitMs);
    const dial = on.setups.map((s) => s.dialMs);
    log(`set-up of ${on.setups.length} direct connections: circuit → direct p50 ${median(after).toFixed(0)} ms, max ${Math.max(...after).toFixed(0)} ms (target ≤ 500 ms after the circuit: ${met(Math.max(...after) <= 500)}); signalling + ICE p50 ${median(dial).toFixed(0)} ms, max ${Math.max(...dial).toFixed(0)} ms`);
    for (const [name, r] of [["with direct connections", on], ["circuits only (baseline)", off]]) {
      const share = r.memberBlocks ? r.relayed / r.memberBlocks : NaN;
      log(`${name}: ${K} pages fill, one closes, one is recruited — block bytes from members ${r.memberBlocks}, relayed by the relay ${r.relayed} (${(100 * share).toFixed(2)} %)` +
        (name.startsWith("with") ? `; target ≤ 1 %: ${met(share <= 0.01)}` : ""));
    }
  } finally {
    await browser.close();
    if (process.env.SHOAL_E2E_VERBOSE) for (const l of [...relayLog, ...pageLog]) process.stdout.write(l);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
