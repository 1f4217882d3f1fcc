// Header sync in the page, two builds in one run: the package in dist/ ("new") against a
// baseline package ("base", SHOAL_BENCH_BASE_DIST, e.g. built from an older commit by
// scripts/bench-sync-ab.sh). Both sync the same chain from the same relay, over WebRTC-direct
// and over WebSocket, in alternating rounds on fresh databases, so that the machine's noise
// falls on both alike. Nothing is asserted: the medians and the new/base ratio are printed.
//
//   bash scripts/bench-sync-ab.sh [BASE_REV]     builds both and runs this in run.sh's namespace
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ORIGIN, launchBrowser, relayCli, startRelay, tempDir } from "./harness.mjs";

const BLOCKS = Number(process.env.SHOAL_BENCH_BLOCKS ?? 20_000);
const ROUNDS = Number(process.env.SHOAL_BENCH_SYNC_ROUNDS ?? 5);
const BASE_DIST = process.env.SHOAL_BENCH_BASE_DIST;
if (!BASE_DIST) throw new Error("SHOAL_BENCH_BASE_DIST names the baseline package's dist/ folder");

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const log = (line) => console.log(line);
const relayLog = [];

function inPage(page, fn, arg) {
  return page.evaluate(([source, arg]) => (0, eval)(source)(arg), [fn.toString(), arg]);
}

/** One sync of `BLOCKS` headers on a fresh database with the package at `module`. */
async function syncOnce(browser, module, addr) {
  const page = await (await browser.newContext()).newPage();
  let failed = 0;
  page.on("console", (m) => { if (m.text().includes("header request failed")) failed++; });
  await page.goto(`${ORIGIN}/relay-addrs.json`);
  const ms = await inPage(page, async ({ module, relays, height }) => {
    const { LightNode } = await import(module);
    const node = await LightNode.start({ relays, database: `ab-${Date.now()}-${Math.random()}` });
    const connected = performance.now();
    const end = await new Promise((resolve, reject) => {
      const check = () => {
        const s = node.status();
        if (s.synced && s.tip.height >= height) resolve(performance.now());
      };
      node.addEventListener("sync-progress", check);
      check();
      setTimeout(() => reject(new Error("sync took over 600 s")), 600_000);
    });
    await node.stop();
    return end - connected;
  }, { module, relays: [addr], height: BLOCKS });
  await page.context().close();
  return { rate: BLOCKS / (ms / 1000), failed };
}

async function main() {
  const work = tempDir("bench-ab");
  const chainFile = join(work, "sync.dat");
  relayCli(["chain", "generate", "--blocks", String(BLOCKS), "--seed", "8", "--txs-per-block", "1",
    "--out", chainFile]);
  // The relay serves www/ with the baseline package beside it at /base.
  const www = join(work, "www");
  mkdirSync(www);
  cpSync("www", www, { recursive: true });
  cpSync(BASE_DIST, join(www, "base"), { recursive: true });
  const relay = await startRelay({
    dataDir: tempDir("bench-ab-relay"), importFile: chainFile, www, upWithinS: 300,
    log: (l) => relayLog.push(l),
  });
  const browser = await launchBrowser();
  try {
    log(`header sync A/B: ${BLOCKS} headers, ${ROUNDS} rounds of each build per transport, alternating`);
    for (const [transport, addr] of [["WebRTC-direct", relay.webrtc], ["WebSocket", relay.ws]]) {
      const rates = { new: [], base: [] };
      const failed = { new: 0, base: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate which build goes first, so neither always meets the warmer relay.
        const order = round % 2 === 0 ? ["new", "base"] : ["base", "new"];
        for (const build of order) {
          const r = await syncOnce(browser, build === "new" ? "/dist/index.js" : "/base/index.js", addr);
          rates[build].push(r.rate);
          failed[build] += r.failed;
          log(`  ${transport} round ${round + 1} ${build}: ${r.rate.toFixed(0)} headers/s` +
            (r.failed ? ` (${r.failed} failed header requests)` : ""));
        }
      }
      const n = median(rates.new);
      const b = median(rates.base);
      log(`header sync over ${transport}: new median ${n.toFixed(0)} headers/s ` +
        `(min ${Math.min(...rates.new).toFixed(0)}, max ${Math.max(...rates.new).toFixed(0)}), ` +
        `base median ${b.toFixed(0)} headers/s (min ${Math.min(...rates.base).toFixed(0)}, ` +
        `max ${Math.max(...rates.base).toFixed(0)}); new/base ratio ${(n / b).toFixed(2)}; ` +
        `failed header requests new ${failed.new}, base ${failed.base}`);
    }
  } catch (err) {
    console.error(relayLog.join("").slice(-4000));
    throw err;
  } finally {
    await browser.close();
    await relay.stop();
  }
}

await main();
