// The page runs the core's cluster Node (issue #5, "drive the core's Node"): its node meets the
// relay's archive node over the one-way message convention of shoal_net::node_link, is handed
// the verified header chain, and status() reports the node's own state.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ORIGIN, launchBrowser, startRelay, tempDir } from "./harness.mjs";

const BLOCKS = 40;
let relay;
let browser;
let page;
const log = [];

before(async () => {
  relay = await startRelay({ dataDir: tempDir("core-node"), initialBlocks: BLOCKS, log: (l) => log.push(l) });
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
  page.on("console", (m) => log.push(`[page] ${m.text()}\n`));
  await page.goto(`${ORIGIN}/relay-addrs.json`);
});

after(async () => {
  await browser?.close();
  await relay?.stop();
  if (process.env.SHOAL_E2E_VERBOSE) console.log(log.join(""));
});

test("the page's node meets the relay's archive node and gets the verified chain", async () => {
  const events = await page.evaluate(async (relays) => {
    const { LightNode } = await import("/dist/index.js");
    window.events = [];
    window.node = await LightNode.start({ relays, database: "core-node", clusterSize: 3, replicas: 2 });
    for (const type of ["cluster", "member-lost", "block-stored"]) {
      window.node.addEventListener(type, (e) => window.events.push({ type, detail: e.detail }));
    }
    return window.events.length;
  }, [relay.ws]);
  assert.equal(events, 0);
  await page.waitForFunction(
    (relayPeer) => {
      const s = window.node.status();
      return s.synced && s.nodeHasHeaders && s.nodePeers.some((p) => p.peerId === relayPeer);
    },
    relay.info.peer_id,
    { timeout: 60_000, polling: 100 },
  );
  const s = await page.evaluate(() => window.node.status());
  assert.equal(s.tip.height, BLOCKS);
  // The relay's node greeted the page's node as an archive (a one-way Hello, relay → page).
  assert.deepEqual(s.nodePeers, [{ peerId: relay.info.peer_id, archive: true }]);
  // A lone page with only an archive peer forms no cluster: the node says so, and holds nothing.
  assert.equal(s.clusterId, null);
  assert.equal(s.memberNumber, null);
  assert.deepEqual(s.members, []);
  assert.equal(s.heldBlocks, 0);
  assert.equal(s.storedBytes, 0);
  await page.evaluate(() => window.node.stop());
});
