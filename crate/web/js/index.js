// The `shoal` package's entry point: a plain ES module, no bundler needed. It hides the wasm
// initialisation (done once, on the first `LightNode.start`) and turns the node's events into
// DOM events on the `LightNode`, which is an `EventTarget`. Types and docs: index.d.ts.
import init, { WasmNode } from "./wasm/shoal_web.js";

let initialized;
function ensureInitialized() {
  initialized ??= init({ module_or_path: new URL("./wasm/shoal_web_bg.wasm", import.meta.url) });
  return initialized;
}

/** The `code` of every error a `LightNode` rejects with. */
export const ErrorCode = Object.freeze({
  NOT_FOUND: "NOT_FOUND",
  NOT_SYNCED: "NOT_SYNCED",
  UNAVAILABLE: "UNAVAILABLE",
  INVALID_PROOF: "INVALID_PROOF",
  BAD_INPUT: "BAD_INPUT",
  STORAGE: "STORAGE",
});

const constructing = Symbol("LightNode.start");

export class LightNode extends EventTarget {
  #inner;

  constructor(token) {
    super();
    if (token !== constructing) throw new TypeError("use `await LightNode.start(options)`");
  }

  static async start(options = {}) {
    await ensureInitialized();
    const node = new LightNode(constructing);
    const emit = (type, detail) => node.dispatchEvent(new CustomEvent(type, { detail }));
    node.#inner = await WasmNode.start(options, emit);
    return node;
  }

  verifyTransaction(txid, options = {}) {
    return this.#inner.verifyTransaction(txid, options);
  }

  status() {
    return this.#inner.status();
  }

  shard() {
    return this.#inner.shard();
  }

  getBlock(blockHash) {
    return this.#inner.getBlock(blockHash);
  }

  shardMap(fromHeight, toHeight) {
    return this.#inner.shardMap(fromHeight, toHeight);
  }

  // Transfer probes, in test and bench builds only (`scripts/build-web.sh --probes`).
  probeTransfer(bytes, peerId) {
    return this.#inner.probeTransfer(bytes, peerId);
  }

  probeDownload(blockHash) {
    return this.#inner.probeDownload(blockHash);
  }

  probeTrace() {
    return this.#inner.probeTrace();
  }

  probeDial(addr) {
    return this.#inner.probeDial(addr);
  }

  stop() {
    return this.#inner.stop();
  }
}

// The shipped package's wasm has no transfer probes (they are the cargo feature `probes` of
// test and bench builds): its LightNode has no such methods.
if (typeof WasmNode.prototype.probeTransfer !== "function") {
  delete LightNode.prototype.probeTransfer;
  delete LightNode.prototype.probeDownload;
  delete LightNode.prototype.probeTrace;
  delete LightNode.prototype.probeDial;
}
