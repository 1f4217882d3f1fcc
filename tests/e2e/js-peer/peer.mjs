// A js-libp2p peer for the e2e tests (issue 14): the reference implementation of libp2p's
// browser-to-browser `/webrtc` (@libp2p/webrtc), for Shoal's own to interoperate with. It
// reaches a Shoal relay over its plain `/ws` address, reserves a circuit there and listens on
// `/p2p-circuit/webrtc`. Bundled by scripts/build-js-peer.mjs into test-artifacts/js-peer/,
// opened by tests/e2e/js-peers.mjs; everything is on `window.jsPeer`, every result plain JSON.
import { createLibp2p } from "libp2p";
import { circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import { identify } from "@libp2p/identify";
import { ping } from "@libp2p/ping";
import { noise } from "@libp2p/noise";
import { yamux } from "@libp2p/yamux";
import { webRTC } from "@libp2p/webrtc";
import { webSockets } from "@libp2p/websockets";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { ECHO, SINK } from "./constants.mjs";
const PING = "/ipfs/ping/1.0.0";
const CHUNK = 64 * 1024;

let node;

const bytesOf = (chunk) => (chunk instanceof Uint8Array ? chunk : chunk.subarray());

function describe(connection) {
  return {
    id: connection.id,
    remotePeer: connection.remotePeer.toString(),
    remoteAddr: connection.remoteAddr.toString(),
    limited: connection.limits != null,
    limits: connection.limits == null ? null : { bytes: connection.limits.bytes?.toString(), seconds: connection.limits.seconds },
    direct: connection.direct,
    direction: connection.direction,
    status: connection.status,
    multiplexer: connection.multiplexer ?? null,
    encryption: connection.encryption ?? null,
    streams: connection.streams.map((s) => s.protocol ?? null),
  };
}

/** The connection to `peerId` that a stream for the tests must take: open, without limits
 * and direct (the `/webrtc` one, never the relayed circuit, whatever limits the relay gave it). */
function directConnection(peerId) {
  const found = node.getConnections(peerIdFromString(peerId))
    .find((c) => c.status === "open" && c.limits == null && c.direct);
  if (!found) {
    const all = node.getConnections(peerIdFromString(peerId)).map((c) => `${c.remoteAddr} ${c.status} limited=${c.limits != null}`);
    throw new Error(`no open direct unlimited connection to ${peerId} (have: ${all.join("; ") || "none"})`);
  }
  return found;
}

/** Writes `data` with backpressure. */
async function write(stream, data) {
  if (!stream.send(data)) await stream.onDrain();
}

function handleEcho(stream) {
  (async () => {
    for await (const chunk of stream) await write(stream, chunk);
    await stream.close();
  })().catch((err) => stream.abort(err));
}

function handleSink(stream) {
  (async () => {
    let n = 0n;
    for await (const chunk of stream) n += BigInt(chunk.byteLength);
    const reply = new Uint8Array(8);
    new DataView(reply.buffer).setBigUint64(0, n);
    await write(stream, reply);
    await stream.close();
  })().catch((err) => stream.abort(err));
}

/** Reads exactly `n` bytes from the stream's iterator `it`. */
async function readExactly(it, n) {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const { value, done } = await it.next();
    if (done) throw new Error(`stream ended after ${got} of ${n} bytes`);
    const bytes = bytesOf(value);
    if (got + bytes.byteLength > n) throw new Error(`more than ${n} bytes`);
    out.set(bytes, got);
    got += bytes.byteLength;
  }
  return out;
}

window.jsPeer = {
  /** Starts the node, dials the relay at `relayAddr` (its `/ws` multiaddr with `/p2p/<id>`)
   * and waits (up to `timeoutMs`) for a reservation there and a `/p2p-circuit/webrtc` address.
   * `limitedProtocols: true` lets the test protocols also run over limited (relayed) connections. */
  async start({ relayAddr, timeoutMs = 20_000, limitedProtocols = false }) {
    if (node) throw new Error("already started");
    node = await createLibp2p({
      addresses: { listen: ["/p2p-circuit", "/webrtc"] },
      transports: [
        webSockets(),
        circuitRelayTransport(),
        // No STUN: the public defaults are unreachable from a test namespace, and host
        // candidates suffice between pages of one machine (TOOLCHAIN.md).
        webRTC({ rtcConfiguration: { iceServers: [] } }),
      ],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // The browser default refuses private addresses and plain ws: the relay is at
      // ws://10.77.0.1 in the test namespace.
      connectionGater: { denyDialMultiaddr: () => false },
      services: { identify: identify(), ping: ping() },
    });
    await node.handle(ECHO, handleEcho, { runOnLimitedConnection: limitedProtocols });
    await node.handle(SINK, handleSink, { runOnLimitedConnection: limitedProtocols });

    const webrtcAddrs = () => node.getMultiaddrs().map(String).filter((a) => a.includes("/p2p-circuit/webrtc/"));
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no /p2p-circuit/webrtc address within ${timeoutMs} ms (have ${node.getMultiaddrs().join(", ") || "none"})`)), timeoutMs);
      const check = () => {
        if (webrtcAddrs().length === 0) return;
        clearTimeout(timer);
        node.removeEventListener("self:peer:update", check);
        resolve();
      };
      node.addEventListener("self:peer:update", check);
      check();
    });
    await node.dial(multiaddr(relayAddr));
    await ready;
    return { peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) };
  },

  /** Dials `addr` (e.g. `<relay>/p2p-circuit/webrtc/p2p/<peer>`) and describes the connection. */
  async dial(addr, { timeoutMs = 30_000 } = {}) {
    const connection = await node.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) });
    return describe(connection);
  },

  /** One ping round trip (ms, sub-millisecond precision) over the direct connection to
   * `peerId`: the stream is opened on that connection explicitly (`directConnection`), not on
   * whatever connection libp2p would pick. */
  async ping(peerId) {
    const stream = await directConnection(peerId).newStream(PING, { runOnLimitedConnection: false });
    try {
      const it = stream[Symbol.asyncIterator]();
      const data = crypto.getRandomValues(new Uint8Array(32));
      const start = performance.now();
      await write(stream, data);
      const back = await readExactly(it, 32);
      const rtt = performance.now() - start;
      if (!back.every((b, i) => b === data[i])) throw new Error("wrong ping reply");
      await stream.close();
      return rtt;
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  },

  /** Every connection of this node, described. */
  connections() {
    return node.getConnections().map(describe);
  },

  /** What identify told of `peerId` (from the peer store; identify runs on every new
   * connection by itself). */
  async identify(peerId) {
    const peer = await node.peerStore.get(peerIdFromString(peerId));
    const text = (bytes) => (bytes ? new TextDecoder().decode(bytes) : null);
    return {
      protocols: peer.protocols,
      agentVersion: text(peer.metadata.get("AgentVersion")),
      protocolVersion: text(peer.metadata.get("ProtocolVersion")),
      addresses: peer.addresses.map((a) => a.multiaddr.toString()),
    };
  },

  /** Sends `bytes` random-ish bytes on `protocol` over the direct connection to `peerId`:
   * with SINK (default) waits for its byte count, with ECHO reads everything back and checks
   * it. Returns the elapsed ms from opening the stream. */
  async sendBytes(peerId, bytes, { protocol = SINK } = {}) {
    const start = performance.now();
    const stream = await directConnection(peerId).newStream(protocol, { runOnLimitedConnection: false });
    try {
      const it = stream[Symbol.asyncIterator]();
      const chunk = new Uint8Array(CHUNK);
      for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131 + 7) & 0xff;
      const reading = protocol === ECHO
        ? readExactly(it, bytes).then((back) => {
          for (let i = 0; i < bytes; i++) if (back[i] !== chunk[i % CHUNK]) throw new Error(`echo differs at byte ${i}`);
        })
        : readExactly(it, 8).then((reply) => {
          const n = new DataView(reply.buffer).getBigUint64(0);
          if (n !== BigInt(bytes)) throw new Error(`the sink read ${n} bytes of ${bytes}`);
        });
      for (let sent = 0; sent < bytes; sent += CHUNK) await write(stream, chunk.subarray(0, Math.min(CHUNK, bytes - sent)));
      await stream.close();
      await reading;
      return performance.now() - start;
    } catch (err) {
      stream.abort(err);
      throw err;
    }
  },

  /** This node's peer id and addresses. */
  info() {
    return { peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) };
  },

  async stop() {
    await node?.stop();
    node = undefined;
  },
};
