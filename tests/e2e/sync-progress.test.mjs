// `sync-progress` while a page catches up (issue #5): each verified batch reports the height
// reached and, as its target, the relay's best height as the relay's header answers claim it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ORIGIN, launchBrowser, startRelay, tempDir, teardown } from "./harness.mjs";

const BLOCKS = 4_100; // three header batches of at most 2,000
const log = [];
let relay;
let browser;
let page;

before(async () => {
  relay = await startRelay({ dataDir: tempDir("relay"), initialBlocks: BLOCKS, log: (l) => log.push(l) });
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  page.on("console", (m) => log.push(`[page] ${m.text()}\n`));
  await page.goto(`${ORIGIN}/relay-addrs.json`);
});

after(() => teardown({ browser, relay, log }));

test("sync-progress names the relay's tip as its target while headers are coming", async () => {
  const events = await page.evaluate(async ([relays, blocks]) => {
    const { LightNode } = await import("/dist/index.js");
    const node = await LightNode.start({ relays, database: "sync-progress" });
    const seen = [];
    node.addEventListener("sync-progress", (e) => seen.push(e.detail));
    await new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error("not synced within 60 s")), 60_000);
      const poll = setInterval(() => {
        const s = node.status();
        if (s.synced && s.tip.height >= blocks) {
          clearInterval(poll);
          clearTimeout(deadline);
          resolve();
        }
      }, 50);
    });
    await node.stop();
    return seen;
  }, [[relay.webrtc], BLOCKS]);
  const catching = events.filter((e) => !e.synced);
  assert.ok(catching.length >= 1, `events while catching up: ${JSON.stringify(events)}`);
  for (const e of catching) {
    assert.equal(e.target, BLOCKS, JSON.stringify(e));
    assert.ok(e.height < e.target, JSON.stringify(e));
  }
  const last = events.at(-1);
  assert.deepEqual(last, { height: BLOCKS, target: BLOCKS, synced: true });
});
