// js-libp2p peer pages for the e2e tests (issue 14): the bundle of tests/e2e/js-peer/ (built
// here when stale, scripts/build-js-peer.mjs) run in a browser context of its own on a page of
// the relay's origin (a secure context there, see launchBrowser). The relay does not serve the
// bundle: it is added to that page as a module script. (A page answered by Playwright's
// route.fulfill counts as public to Chromium's Local Network Access checks, which then block
// its WebSocket to the relay's private address: ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS.)
import { join } from "node:path";
import { ORIGIN } from "./harness.mjs";
import { buildJsPeer } from "../../scripts/build-js-peer.mjs";

export { ECHO, SINK } from "./js-peer/constants.mjs";

/** Opens a js-libp2p peer page in a new context of `browser`; its console lines go to `log`
 * (an array) prefixed with `name`; `debug` (default $SHOAL_E2E_JS_DEBUG) turns on js-libp2p's
 * debug log namespaces; `initScript` (a function) runs in the page before the bundle. A rejection in the page (an Event too) becomes an Error. The result wraps `window.jsPeer` (see js-peer/peer.mjs):
 * `start({ relayAddr })`, `dial(addr)`, `ping(peerId)`, `connections()`, `identify(peerId)`,
 * `sendBytes(peerId, n, { protocol })`, `info()`, `stop()`; and `page`, `context`. */
export async function openJsPeer(browser, { log = [], name = "js", debug = process.env.SHOAL_E2E_JS_DEBUG, initScript } = {}) {
  const dir = await buildJsPeer();
  const context = await browser.newContext();
  // js-libp2p's debug logs (e.g. "libp2p:webrtc*,libp2p:circuit-relay*") to the console, read
  // from localStorage when the bundle loads.
  if (debug) await context.addInitScript((d) => localStorage.setItem("debug", d), debug);
  // Runs before the bundle (e.g. to wrap RTCPeerConnection and record what js-libp2p does).
  if (initScript) await context.addInitScript(initScript);
  const page = await context.newPage();
  page.on("console", (m) => log.push(`[${name}] ${m.text()}\n`));
  page.on("pageerror", (e) => log.push(`[${name}] page error: ${e}\n`));
  await page.goto(`${ORIGIN}/relay-addrs.json`);
  await page.addScriptTag({ path: join(dir, "peer.js"), type: "module" });
  await page.waitForFunction(() => window.jsPeer !== undefined);
  const call = (method, ...args) => page.evaluate(async ([m, a]) => {
    try {
      return await window.jsPeer[m](...a);
    } catch (err) {
      if (err instanceof Error) throw err;
      throw new Error(`${m}: ${err?.constructor?.name} ${err?.type ?? ""} ${err?.message ?? ""} ${String(err)}`);
    }
  }, [method, args]);
  return {
    page,
    context,
    start: (options) => call("start", options),
    dial: (addr, options) => call("dial", addr, options),
    ping: (peerId) => call("ping", peerId),
    connections: () => call("connections"),
    identify: (peerId) => call("identify", peerId),
    sendBytes: (peerId, bytes, options) => call("sendBytes", peerId, bytes, options),
    info: () => call("info"),
    stop: () => call("stop"),
  };
}
