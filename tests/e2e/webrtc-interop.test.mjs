// Browser-to-browser WebRTC (issue 14), the js-libp2p reference side: two js-libp2p pages
// (@libp2p/webrtc, tests/e2e/js-peer/) reserve circuits on a real Shoal relay over its `/ws`
// address; one dials the other's `/p2p-circuit/webrtc` address. The relay carries the
// circuit and the `/webrtc-signaling/0.0.1` stream; the result must be a direct, unlimited
// `/webrtc` connection that pings, identifies and carries bytes both ways. This proves the
// harness and the relay's part before a Shoal page takes either side (openJsPeer is shared).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, startRelay, teardown, tempDir } from "./harness.mjs";
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
