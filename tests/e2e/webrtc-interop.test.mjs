// Browser-to-browser WebRTC (issue 14), the js-libp2p reference side: two js-libp2p pages
// (@libp2p/webrtc, tests/e2e/js-peer/) reserve circuits on a real Shoal relay over its `/ws`
// address; one dials the other's `/p2p-circuit/webrtc` address. The relay carries the
// circuit and the `/webrtc-signaling/0.0.1` stream; the result must be a direct, unlimited
// `/webrtc` connection that pings, identifies and carries bytes both ways. This proves the
// harness and the relay's part before a Shoal page takes either side (openJsPeer is shared).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startRelay, teardown, tempDir, waitUntil } from "./harness.mjs";
import { ECHO, SINK, openJsPeer } from "./js-peers.mjs";

let relay;
let browser;
const log = [];
let a;
let b;
let aInfo;
let bInfo;

before(async () => {
  relay = await startRelay({ dataDir: tempDir("webrtc-interop"), log: (l) => log.push(`[relay] ${l}`) });
  browser = await launchBrowser();
  a = await openJsPeer(browser, { log, name: "js A" });
  b = await openJsPeer(browser, { log, name: "js B" });
});

after(() => teardown({ browser, relay, log }));

const webrtcAddr = (info) => info.addrs.find((x) => x.includes("/p2p-circuit/webrtc/"));

test("two js-libp2p pages reserve on the Shoal relay and listen on /p2p-circuit/webrtc", { timeout: 60_000 }, async (t) => {
  [aInfo, bInfo] = await Promise.all([a.start({ relayAddr: relay.ws }), b.start({ relayAddr: relay.ws })]);
  for (const info of [aInfo, bInfo]) {
    const addr = webrtcAddr(info);
    assert.ok(addr, `a /p2p-circuit/webrtc address among ${info.addrs.join(", ")}`);
    assert.ok(addr.startsWith(relay.ws.replace(/\/p2p\/.*$/, "")), `${addr} is on the relay`);
    assert.ok(addr.endsWith(`/p2p-circuit/webrtc/p2p/${info.peerId}`), addr);
  }
  t.diagnostic(`B listens on ${webrtcAddr(bInfo)}`);
});

test("A dials B's /webrtc address through the relay: a direct, unlimited connection", { timeout: 60_000 }, async (t) => {
  const started = Date.now();
  const conn = await a.dial(webrtcAddr(bInfo));
  const ms = Date.now() - started;
  assert.equal(conn.remotePeer, bInfo.peerId);
  assert.match(conn.remoteAddr, /\/p2p-circuit\/webrtc\/p2p\//);
  assert.equal(conn.limited, false, `limited: ${JSON.stringify(conn)}`);
  assert.equal(conn.direct, true);
  assert.equal(conn.status, "open");
  // No Noise on /webrtc: js-libp2p upgrades it with encryption skipped and reports DTLS as "native".
  assert.equal(conn.encryption, "native");
  // A also has (or had) the relayed circuit to B that carried the signalling: limited.
  const aConns = await a.connections();
  const relayed = aConns.filter((c) => c.remotePeer === bInfo.peerId && !c.direct);
  for (const c of relayed) assert.equal(c.limited, true, `the circuit is limited: ${JSON.stringify(c)}`);
  // B sees the same connection inbound.
  const bConn = (await b.connections()).find((c) => c.remotePeer === aInfo.peerId && c.direct);
  assert.ok(bConn, `B has a direct connection from A: ${JSON.stringify(await b.connections())}`);
  assert.equal(bConn.direction, "inbound");
  assert.equal(bConn.limited, false);
  assert.match(bConn.remoteAddr, /\/webrtc/);
  t.diagnostic(`dial ${ms} ms; A: ${JSON.stringify(conn)}; B: ${JSON.stringify(bConn)}; relayed A→B circuits: ${relayed.length}`);
});

test("ping both ways over the direct connection", { timeout: 30_000 }, async (t) => {
  const ab = await a.ping(bInfo.peerId);
  const ba = await b.ping(aInfo.peerId);
  assert.ok(ab > 0 && ab < 5000, `A→B ${ab} ms`);
  assert.ok(ba > 0 && ba < 5000, `B→A ${ba} ms`);
  t.diagnostic(`rtt A→B ${ab.toFixed(2)} ms, B→A ${ba.toFixed(2)} ms`);
});

test("identify ran over the connections: each knows the other's protocols and agent", { timeout: 30_000 }, async (t) => {
  const [ofB, ofA] = await Promise.all([a.identify(bInfo.peerId), b.identify(aInfo.peerId)]);
  for (const id of [ofB, ofA]) {
    for (const p of ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/webrtc-signaling/0.0.1", ECHO, SINK]) {
      assert.ok(id.protocols.includes(p), `${p} in ${id.protocols}`);
    }
    assert.match(id.agentVersion ?? "", /libp2p/);
  }
  const ofRelay = await a.identify(relay.info.peer_id);
  assert.ok(ofRelay.protocols.includes("/libp2p/circuit/relay/0.2.0/hop"), `the relay's protocols: ${ofRelay.protocols}`);
  t.diagnostic(`B's agent: ${ofB.agentVersion}; the relay's: ${ofRelay.agentVersion}`);
});

test("bytes over the direct connection: 256 KiB echoed, 4 MiB each way to a sink", { timeout: 60_000 }, async (t) => {
  const echo = await a.sendBytes(bInfo.peerId, 256 * 1024, { protocol: ECHO });
  const mib = 4;
  const ab = await a.sendBytes(bInfo.peerId, mib << 20, { protocol: SINK });
  const ba = await b.sendBytes(aInfo.peerId, mib << 20, { protocol: SINK });
  // Still the one direct connection, and nothing of this went over the relay's circuit.
  const direct = (await a.connections()).filter((c) => c.remotePeer === bInfo.peerId && c.direct);
  assert.equal(direct.length, 1, JSON.stringify(direct));
  t.diagnostic(`echo 256 KiB ${echo.toFixed(0)} ms; ${mib} MiB A→B ${ab.toFixed(0)} ms (${(mib * 1000 / ab).toFixed(1)} MiB/s), B→A ${ba.toFixed(0)} ms (${(mib * 1000 / ba).toFixed(1)} MiB/s)`);
});

test("stopping B closes A's connection to it", { timeout: 45_000 }, async (t) => {
  const started = Date.now();
  await b.stop();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const open = (await a.connections()).filter((c) => c.remotePeer === bInfo.peerId && c.status === "open");
    if (open.length === 0) break;
    assert.ok(Date.now() < deadline, `A still has ${JSON.stringify(open)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  t.diagnostic(`A saw its connections to B closed after ${Date.now() - started} ms`);
  await a.stop();
});

// A Shoal page (Rust/wasm, crate/web's `/webrtc` transport) and js-libp2p pages, all reserved
// on the same Shoal relay: a js page dials the Shoal page's `/webrtc` address, and the Shoal
// page dials another js page's. Each connection is the direct one (unlimited on the js side,
// `webrtc` in the Shoal page's status), and identify and ping work over it in both directions.
let shoal;
let shoalId;

const shoalStatus = () => shoal.evaluate(() => window.node.status());

/** Over the direct connection between `js` and the Shoal page the relay carries nothing: its
 * circuit byte counter stands still while js pings the Shoal page (js allows one ping stream at
 * a time: each waits for the last to close) and the Shoal page's own ping (every 5 s) comes
 * back. */
async function relayStandsStill(js, jsPeerId) {
  const relayedBefore = (await relay.status()).relayed_bytes;
  const rttBefore = (await shoalConnection(jsPeerId, "webrtc"))?.rttMs;
  for (let i = 0; i < 3; i++) {
    await waitUntil(`js ping ${i + 1}`, 10_000, () => js.ping(shoalId).catch(() => null));
  }
  await waitUntil("a new ping of the Shoal page's", 15_000, async () => {
    const rtt = (await shoalConnection(jsPeerId, "webrtc"))?.rttMs;
    return rtt !== undefined && rtt !== rttBefore;
  });
  assert.equal((await relay.status()).relayed_bytes - relayedBefore, 0, "the relay forwarded none of the direct connection's bytes");
}

async function shoalConnection(peerId, transport) {
  const s = await shoalStatus();
  return s.connections.find((c) => c.peerId === peerId && c.transport === transport);
}


test("a Shoal page reserves on the relay and listens on /p2p-circuit/webrtc", { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  shoal = await context.newPage();
  shoal.on("console", (m) => log.push(`[shoal] ${m.text()}\n`));
  await shoal.goto(`${relay.origin}/relay-addrs.json`);
  shoalId = await shoal.evaluate(async (relays) => {
    const { LightNode } = await import("/dist/index.js");
    window.node = await LightNode.start({ relays, database: "interop" });
    return window.node.status().peerId;
  }, [relay.ws]);
  assert.ok(shoalId);
});

test("a js-libp2p page dials the Shoal page's /webrtc address: direct, identify and ping both ways", { timeout: 90_000 }, async (t) => {
  const js = await openJsPeer(browser, { log, name: "js C" });
  const info = await js.start({ relayAddr: relay.ws });
  const addr = `${relay.ws}/p2p-circuit/webrtc/p2p/${shoalId}`;
  // The Shoal page's reservation may still be on its way: the dial is tried until it works.
  const started = Date.now();
  const conn = await waitUntil("js C dials the Shoal page", 30_000, () => js.dial(addr).catch((e) => { log.push(`[test] dial: ${e.message}\n`); return null; }));
  t.diagnostic(`js → Shoal direct connection in ${Date.now() - started} ms: ${JSON.stringify(conn)}`);
  assert.equal(conn.remotePeer, shoalId);
  assert.equal(conn.limited, false, JSON.stringify(conn));
  assert.equal(conn.direct, true);
  assert.equal(conn.encryption, "native", "no Noise on /webrtc");
  // The Shoal page has it as a direct `webrtc` connection; js's identify reached it.
  const seen = await waitUntil("the Shoal page lists the js page's webrtc connection with its agent", 20_000, async () => {
    const c = await shoalConnection(info.peerId, "webrtc");
    return c?.agent ? c : null;
  });
  assert.match(seen.agent, /js-libp2p/);
  // js pings the Shoal page over the direct connection; the Shoal page's own pings come back.
  const rtt = await js.ping(shoalId);
  assert.ok(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
  const pinged = await waitUntil("a ping from the Shoal page over it", 20_000, async () => (await shoalConnection(info.peerId, "webrtc"))?.rttMs !== undefined);
  assert.ok(pinged);
  // js identified the Shoal page over the direct connection. (It failed while the Shoal page
  // closed a stream's data channel once its own FIN was acknowledged, before js's FIN: js
  // aborted the stream and dropped the identify answer it had read.)
  const identified = await waitUntil("js identified the Shoal page", 10_000, async () => {
    const got = await js.identify(shoalId).catch(() => null);
    return got?.agentVersion ? got : null;
  });
  assert.match(identified.agentVersion, /^shoal-web\//, JSON.stringify(identified));
  assert.ok(identified.protocols.includes("/shoal/msg/1.0.0"), identified.protocols.join(", "));
  // The circuit that carried the signalling is gone: only the direct connection is left.
  await waitUntil("the circuit closed", 20_000, async () => {
    const open = (await js.connections()).filter((c) => c.remotePeer === shoalId && c.status === "open");
    return open.length === 1 && open[0].direct;
  });
  // Over the direct connection the relay carries nothing: its circuit byte counter stands still
  // through pings both ways.
  await relayStandsStill(js, info.peerId);
  t.diagnostic(`js ping ${rtt.toFixed(2)} ms; Shoal sees ${JSON.stringify(await shoalConnection(info.peerId, "webrtc"))}`);
  await js.stop();
});

test("the Shoal page dials a js-libp2p page's /webrtc address: direct, identify and ping both ways", { timeout: 90_000 }, async (t) => {
  const js = await openJsPeer(browser, { log, name: "js D" });
  const info = await js.start({ relayAddr: relay.ws });
  const started = Date.now();
  await shoal.evaluate((addr) => window.node.probeDial(addr), webrtcAddr(info));
  const seen = await waitUntil("the Shoal page's direct connection to js D, identified", 30_000, async () => {
    const c = await shoalConnection(info.peerId, "webrtc");
    return c?.agent ? c : null;
  });
  t.diagnostic(`Shoal → js direct connection in ${Date.now() - started} ms`);
  assert.match(seen.agent, /js-libp2p/);
  const inbound = await waitUntil("js D has the direct connection inbound", 10_000, async () =>
    (await js.connections()).find((c) => c.remotePeer === shoalId && c.direct && c.status === "open"));
  assert.equal(inbound.direction, "inbound");
  assert.equal(inbound.limited, false, JSON.stringify(inbound));
  assert.equal(inbound.encryption, "native");
  const rtt = await js.ping(shoalId);
  assert.ok(rtt >= 0 && rtt < 5_000, `rtt ${rtt}`);
  await waitUntil("a ping from the Shoal page over it", 20_000, async () => (await shoalConnection(info.peerId, "webrtc"))?.rttMs !== undefined);
  const identified = await waitUntil("js D identified the Shoal page", 10_000, async () => {
    const got = await js.identify(shoalId).catch(() => null);
    return got?.agentVersion ? got : null;
  });
  assert.match(identified.agentVersion, /^shoal-web\//);
  // The circuit is gone (the Shoal page closed it); the relay forwards nothing more.
  await waitUntil("only the direct connection left", 20_000, async () => {
    const open = (await js.connections()).filter((c) => c.remotePeer === shoalId && c.status === "open");
    return open.length === 1 && open[0].direct;
  });
  await relayStandsStill(js, info.peerId);
  await js.stop();
});
