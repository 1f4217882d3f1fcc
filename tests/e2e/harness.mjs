// Helpers of the end-to-end tests: a relay process and a Chromium, both started here and
// stopped by their own pid; everything runs inside the network namespace of run.sh.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const HOST = process.env.SHOAL_E2E_HOST ?? "127.0.0.1";
export const RELAY_BIN = process.env.SHOAL_RELAY_BIN ?? "target/debug/shoal-relay";
export const HTTP_PORT = 18080;
export const P2P_PORT = 19090;
export const ORIGIN = `http://${HOST}:${HTTP_PORT}`;

const tempDirs = [];
// Every test file's data directories go with its process (a chain of ~85 MB each, hundreds of
// them over a day's runs); SHOAL_E2E_KEEP=1 keeps them to look at.
process.on("exit", () => {
  if (process.env.SHOAL_E2E_KEEP) return;
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `shoal-e2e-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/** Runs the relay CLI once and parses its `--json` output. */
export function relayCli(args) {
  return JSON.parse(execFileSync(RELAY_BIN, ["--json", ...args], { encoding: "utf8", maxBuffer: 1 << 30 }));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `shoal-relay serve` (following the Bitcoin nodes `bitcoinPeers`, each "HOST:PORT"
 * given as `--bitcoin-peer`, or importing `importFile`, or generating `initialBlocks` regtest
 * blocks of `txsPerBlock` transactions besides the coinbase, or of `targetBlockSize` bytes
 * ("MIN-MAX" draws each block's size), then one every `blockIntervalSecs` if not 0, also on an
 * imported chain), serving the pages of `www` and the package at /dist; resolves once
 * /relay-addrs.json answers. `role: "member"` starts a member relay instead (no block source;
 * `peers` are the relays it follows, `clusterSize` and `replicas` its cluster's, `timings`
 * its `{ heartbeatIntervalMs, offlineAfterMs, formationIntervalMs }` as a page's options), on
 * ports of its own (`httpPort`, `p2pPort`). The result can `stop()` the relay (SIGTERM) or
 * `kill()` it (SIGKILL), both by its own process id. */
export async function startRelay({
  dataDir, importFile, initialBlocks = 0, blockIntervalSecs = 0, txsPerBlock, targetBlockSize, log, upWithinS = 60,
  www = "www", role = "archive", peers = [], clusterSize, replicas, timings = {}, httpPort = HTTP_PORT,
  p2pPort = P2P_PORT, bitcoinPeers = [],
}) {
  const origin = `http://${HOST}:${httpPort}`;
  const args = [
    "serve",
    "--data-dir", dataDir,
    "--listen", `${HOST}:${p2pPort}`,
    "--http", `${HOST}:${httpPort}`,
    "--www", www,
    "--dist", "dist",
    "--role", role,
  ];
  if (role === "archive" && bitcoinPeers.length > 0) {
    for (const peer of bitcoinPeers) args.push("--bitcoin-peer", peer);
  } else if (role === "archive") {
    args.push("--initial-blocks", String(initialBlocks), "--block-interval-secs", String(blockIntervalSecs));
    if (importFile) args.push("--import", importFile);
    if (txsPerBlock !== undefined) args.push("--txs-per-block", String(txsPerBlock));
    if (targetBlockSize !== undefined) args.push("--target-block-size", String(targetBlockSize));
  }
  const flags = { heartbeatIntervalMs: "--heartbeat-interval-ms", offlineAfterMs: "--offline-after-ms", formationIntervalMs: "--formation-interval-ms" };
  for (const [option, value] of Object.entries(timings)) args.push(flags[option], String(value));
  for (const peer of peers) args.push("--peer", peer);
  if (clusterSize !== undefined) args.push("--cluster-size", String(clusterSize));
  if (replicas !== undefined) args.push("--replicas", String(replicas));
  const child = spawn(RELAY_BIN, args, {
    env: { ...process.env, RUST_LOG: "info,dtls=error,webrtc=warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderr.on("data", (d) => log?.(d.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  for (let i = 0; i < upWithinS * 5; i++) {
    if (child.exitCode !== null) throw new Error(`relay exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${origin}/relay-addrs.json`);
      if (res.ok) {
        const info = await res.json();
        return {
          info,
          origin,
          pid: child.pid,
          webrtc: info.addrs.find((a) => a.includes("/webrtc-direct/")),
          ws: info.addrs.find((a) => a.includes("/ws/")),
          /** What /status.json says of the relay's node. */
          async status() {
            return (await fetch(`${origin}/status.json`)).json();
          },
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill("SIGTERM");
            const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
            await exited;
            clearTimeout(timer);
          },
          /** A crash: SIGKILL, no chance to close anything. */
          async kill() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill("SIGKILL");
            await exited;
          },
        };
      }
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  child.kill("SIGKILL");
  throw new Error(`the relay did not come up within ${upWithinS} s`);
}

/** Launches Debian's Chromium with the flags known to work here (TOOLCHAIN.md). */
export function launchBrowser({ extraArgs = [] } = {}) {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // The relay serves the page from a namespace address over plain http; Web Locks (one
      // identity per tab) exist only in secure contexts, which this origin then counts as.
      `--unsafely-treat-insecure-origin-as-secure=${ORIGIN}`,
      ...extraArgs,
    ],
  });
}

/** A deterministic pseudo-random generator (mulberry32) for picking test data. */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Opens `count` pages, each in its own browser context (its own IndexedDB and identity), at
 * the relay's origin; their console lines go to `log`. */
export async function openPages(browser, count, log) {
  const pages = [];
  for (let i = 0; i < count; i++) {
    const page = await (await browser.newContext()).newPage();
    page.on("console", (m) => log.push(`[page ${i}] ${m.text()}\n`));
    await page.goto(`${ORIGIN}/relay-addrs.json`);
    pages.push(page);
  }
  return pages;
}

/** The block hashes in the IndexedDB `blocks` store of the node running in `page` (as
 * `window.node`, started with `database` on regtest): the raw IDB API, not the node's own
 * reading of it. */
export async function storedBlockHashes(page, database) {
  const { slot } = await page.evaluate(() => window.node.status());
  return blockKeysIn(page, `${database}-regtest-${slot}`);
}

/** The keys of the `blocks` store of the IndexedDB database `name` of `page`'s origin (none if
 * it has no such store yet), read with the raw IDB API — also before any node opened it. */
export function blockKeysIn(page, name) {
  return page.evaluate(async (name) => {
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open(name);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    try {
      if (!db.objectStoreNames.contains("blocks")) return [];
      return await new Promise((resolve, reject) => {
        const req = db.transaction("blocks").objectStore("blocks").getAllKeys();
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    } finally {
      db.close();
    }
  }, name);
}

/** Polls `probe` every `everyMs` until it returns a truthy value, which it returns; fails with
 * `what` after `ms`. */
export async function waitUntil(what, ms, probe, everyMs = 250) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${ms / 1000} s`);
    await sleep(everyMs);
  }
}

/** Closes the browser and stops the relay (or every one of `relays`, by its own process id);
 * prints `log` when `SHOAL_E2E_VERBOSE` is set. */
export async function teardown({ browser, relay, relays = [], log }) {
  await browser?.close();
  for (const r of [relay, ...relays]) await r?.stop();
  if (process.env.SHOAL_E2E_VERBOSE) console.log(log.join(""));
}

/** Bitcoin's double SHA-256. */
export const sha256d = (bytes) => createHash("sha256").update(createHash("sha256").update(bytes).digest()).digest();
/** A hash in Bitcoin's display order (byte-reversed hex). */
export const display = (hash) => Buffer.from(hash).reverse().toString("hex");

/** A transaction's txid from its raw bytes: the double SHA-256 of its serialization without
 * the segwit marker, flag and witnesses. */
export function txidOf(raw) {
  let at = 0;
  const take = (n) => raw.subarray(at, (at += n));
  const varint = () => {
    const first = raw[at++];
    if (first < 0xfd) return first;
    const n = first === 0xfd ? 2 : first === 0xfe ? 4 : 8;
    return Number(take(n).reduce((v, b, i) => v + BigInt(b) * (1n << BigInt(8 * i)), 0n));
  };
  const version = take(4);
  const segwit = raw[at] === 0 && raw[at + 1] === 1;
  if (segwit) at += 2;
  const bodyStart = at;
  const inputs = varint();
  for (let i = 0; i < inputs; i++) {
    take(36);
    take(varint());
    take(4);
  }
  const outputs = varint();
  for (let i = 0; i < outputs; i++) {
    take(8);
    take(varint());
  }
  const body = raw.subarray(bodyStart, at);
  if (segwit) {
    for (let i = 0; i < inputs; i++) {
      const items = varint();
      for (let j = 0; j < items; j++) take(varint());
    }
  }
  const lockTime = take(4);
  if (at !== raw.length) throw new Error(`${raw.length - at} bytes after the transaction`);
  return display(sha256d(Buffer.concat([version, body, lockTime])));
}
