// A raw RTCDataChannel between two pages of one browser: the baseline that page-to-page and
// page-to-relay transfers are measured against (bench.mjs, bench-direct.mjs). One ordered
// channel; the receiver answers "done" once it has counted the bytes it was told to expect,
// and echoes short pings. Nothing of Shoal runs in these pages.
import { ORIGIN } from "./harness.mjs";

/** Runs `fn(arg)` in the page; fn is self-contained source. */
export function inPage(page, fn, arg) {
  return page.evaluate(([source, arg]) => (0, eval)(source)(arg), [fn.toString(), arg]);
}

export const median = (xs) => quantile(xs, 0.5);
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

/** Opens two pages in one new context of `browser` joined by a raw data channel; `size` bytes
 * sent `rounds` times each way in `chunk`-byte messages, `pings` 32-byte round trips. Returns
 * the median milliseconds each way and the round trip's p50 and p99. */
export async function rawDataChannel(browser, { size = 1 << 20, chunk = 16_384, rounds = 5, pings = 200 } = {}) {
  const context = await browser.newContext();
  const a = await context.newPage();
  const b = await context.newPage();
  await a.goto(`${ORIGIN}/relay-addrs.json`);
  await b.goto(`${ORIGIN}/relay-addrs.json`);
  // Both pages get the same helpers: a peer connection, one ordered channel, and a receiver
  // that answers "done" once it has counted `expect` bytes, or echoes short pings.
  const setup = async (role) => {
    const gathered = (pc) => new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") resolve();
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
    const pc = new RTCPeerConnection();
    window.bench = { pc, gathered, received: 0, expect: 0 };
    const wire = (dc) => {
      dc.binaryType = "arraybuffer";
      window.bench.dc = dc;
      window.bench.open = new Promise((resolve) => {
        if (dc.readyState === "open") resolve();
        dc.onopen = () => resolve();
      });
      dc.onmessage = (e) => {
        const bench = window.bench;
        if (typeof e.data === "string") {
          if (e.data.startsWith("expect:")) bench.expect = Number(e.data.slice(7));
          else if (e.data === "ping") dc.send("pong");
          else bench.onText?.(e.data);
          return;
        }
        bench.received += e.data.byteLength;
        if (bench.received === bench.expect) {
          bench.received = 0;
          dc.send("done");
        }
      };
    };
    if (role === "offer") {
      wire(pc.createDataChannel("bench", { ordered: true }));
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }
    pc.ondatachannel = (e) => wire(e.channel);
    return null;
  };
  await inPage(a, setup, "offer").then(async (offer) => {
    await inPage(b, setup, "answer");
    const answer = await inPage(b, async (sdp) => {
      const { pc, gathered } = window.bench;
      await pc.setRemoteDescription({ type: "offer", sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      return pc.localDescription.sdp;
    }, offer);
    await inPage(a, async (sdp) => window.bench.pc.setRemoteDescription({ type: "answer", sdp }), answer);
  });
  const waitOpen = (page) => page.waitForFunction(() => window.bench.dc && window.bench.dc.readyState === "open",
    null, { timeout: 30_000, polling: 50 });
  await waitOpen(a);
  await waitOpen(b);
  const send = async ({ size, chunk, rounds }) => {
    const { dc } = window.bench;
    const data = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
    const times = [];
    for (let i = 0; i < rounds; i++) {
      const done = new Promise((resolve) => { window.bench.onText = (t) => t === "done" && resolve(); });
      dc.send(`expect:${size}`);
      const t = performance.now();
      for (let at = 0; at < size; at += chunk) dc.send(data.subarray(at, at + chunk));
      await done;
      times.push(performance.now() - t);
    }
    return times;
  };
  const ping = async (rounds) => {
    const { dc } = window.bench;
    const times = [];
    for (let i = 0; i < rounds; i++) {
      const pong = new Promise((resolve) => { window.bench.onText = (t) => t === "pong" && resolve(); });
      const t = performance.now();
      dc.send("ping");
      await pong;
      times.push(performance.now() - t);
    }
    return times;
  };
  const aToB = await inPage(a, send, { size, chunk, rounds });
  const bToA = await inPage(b, send, { size, chunk, rounds });
  const rtt = await inPage(a, ping, pings);
  await context.close();
  return { aToB: median(aToB), bToA: median(bToA), rttP50: median(rtt), rttP99: quantile(rtt, 0.99), chunk };
}
