// Relay → page downloads of a 1 MiB block over WebRTC-direct, repeated (issue #5). Before the
// browser's streams read early (shoal_net::eager_reads), an answer that arrived while the
// request stream was still closing overflowed the browser transport's 16 KiB read buffer and
// the stream was reset with "remote overloaded us with messages": with an idle page now and
// then (1 of 10 downloads in some runs), with a busy page most of the time (7–9 of 10).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ORIGIN, launchBrowser, relayCli, startRelay, tempDir } from "./harness.mjs";

const MIB = 1 << 20;
const IN_A_ROW = 10;
const AT_ONCE = 5;
let relay;
let browser;
let page;
let big; // the inspect report of the 1 MiB block
const log = [];

before(async () => {
  const chainFile = join(tempDir("download"), "big.dat");
  relayCli(["chain", "generate", "--blocks", "2", "--seed", "9",
    "--target-block-size", String(MIB), "--out", chainFile]);
  big = relayCli(["block", "inspect", chainFile]).blocks[2];
  assert.ok(big.size >= 1_000_000, `block 2 is ${big.size} bytes`);
  relay = await startRelay({ dataDir: tempDir("download-relay"), importFile: chainFile, log: (l) => log.push(l) });
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  page.on("console", (m) => log.push(`[page] ${m.text()}\n`));
  await page.goto(`${ORIGIN}/relay-addrs.json`);
  await page.evaluate(async (relays) => {
    const { LightNode } = await import("/dist/index.js");
    window.node = await LightNode.start({ relays, database: "e2e-download" });
  }, [relay.webrtc]);
});

after(async () => {
  await page?.evaluate(async () => window.node?.stop()).catch(() => {});
  await browser?.close();
  await relay?.stop();
  if (process.env.SHOAL_E2E_VERBOSE) console.log(log.join(""));
});

/**
 * Downloads the block `count` times, `parallel` at once; answers one outcome per download.
 * With `busy`, the page's main thread is busy for 30 ms after each data-channel send (as when
 * it verifies and stores headers right after asking for more): the relay's answer then arrives
 * while the request stream is still closing, the case that reset streams before EagerReads.
 * The transport itself is untouched; only the page is slow.
 */
function download(count, parallel, busy = false) {
  return page.evaluate(async ({ hash, count, parallel, busy }) => {
    const one = () => window.node.probeDownload(hash).then(
      (r) => ({ ok: true, bytes: r.bytes, transport: r.transport }),
      (err) => ({ ok: false, code: err.code, message: String(err.message ?? err) }),
    );
    const send = RTCDataChannel.prototype.send;
    if (busy) {
      RTCDataChannel.prototype.send = function (...args) {
        const sent = send.apply(this, args);
        const end = performance.now() + 30;
        while (performance.now() < end);
        return sent;
      };
    }
    const out = [];
    try {
      for (let i = 0; i < count; i += parallel) {
        out.push(...await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, one)));
      }
    } finally {
      RTCDataChannel.prototype.send = send;
    }
    return out;
  }, { hash: big.hash, count, parallel, busy });
}

function assertAllIntact(outcomes, count) {
  const failed = outcomes.filter((o) => !o.ok).map((o) => `${o.code}: ${o.message}`);
  assert.deepEqual(failed, [], `${failed.length} of ${count} downloads failed`);
  assert.equal(outcomes.length, count);
  for (const o of outcomes) {
    assert.equal(o.bytes, big.size);
    assert.equal(o.transport, "webrtc-direct");
  }
}

test(`a 1 MiB block downloads relay → page over WebRTC-direct ${IN_A_ROW} times in a row`, async () => {
  assertAllIntact(await download(IN_A_ROW, 1), IN_A_ROW);
});

test(`${AT_ONCE} downloads of the 1 MiB block at once over WebRTC-direct all arrive intact`, async () => {
  assertAllIntact(await download(2 * AT_ONCE, AT_ONCE), 2 * AT_ONCE);
});

test(`${IN_A_ROW} downloads of the 1 MiB block arrive intact while the page is busy`, async () => {
  assertAllIntact(await download(IN_A_ROW, 1, true), IN_A_ROW);
});
