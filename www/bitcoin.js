// The little Bitcoin the demo page needs to check a proof by itself: a block parser that yields
// its transactions' txids (segwit-aware), double SHA-256 with the browser's crypto.subtle, and
// the Merkle path from a txid up to a root. Hashes are hex in display order (byte-reversed)
// where they face a person, raw bytes inside.

/** Bytes → hex. */
export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Hex → bytes (throws on anything but an even number of hex digits). */
export function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error(`not hex: ${hex.slice(0, 20)}`);
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Display hex (byte-reversed) ↔ raw bytes. */
export const displayHex = (bytes) => toHex(Uint8Array.from(bytes).reverse());
export const fromDisplayHex = (hex) => fromHex(hex).reverse();

/** Bitcoin's double SHA-256. */
export async function sha256d(bytes) {
  const once = await crypto.subtle.digest("SHA-256", bytes);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", once));
}

// A block is at most 4 MB of weight: 4,000,000 bytes serialized with witnesses.
const MAX_BLOCK_BYTES = 4_000_000;

/** A cursor over a block's bytes that refuses to read past its end. */
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0;
  }

  take(n) {
    if (!Number.isSafeInteger(n) || n < 0 || this.at + n > this.bytes.length) {
      throw new Error(`truncated block: ${n} bytes wanted at offset ${this.at} of ${this.bytes.length}`);
    }
    return this.bytes.subarray(this.at, (this.at += n));
  }

  varint() {
    const first = this.take(1)[0];
    if (first < 0xfd) return first;
    const b = this.take(first === 0xfd ? 2 : first === 0xfe ? 4 : 8);
    let v = 0;
    for (let i = b.length - 1; i >= 0; i--) v = v * 256 + b[i];
    if (v > MAX_BLOCK_BYTES) throw new Error(`count ${v} cannot fit in a block`);
    return v;
  }
}

/** One transaction at the reader: its non-witness serialization (what the txid hashes). */
function readTransaction(r) {
  const start = r.at;
  const version = r.take(4);
  const segwit = r.bytes[r.at] === 0 && r.bytes[r.at + 1] === 1;
  if (segwit) r.take(2);
  const bodyStart = r.at;
  const inputs = r.varint();
  for (let i = 0; i < inputs; i++) {
    r.take(36);
    r.take(r.varint());
    r.take(4);
  }
  const outputs = r.varint();
  for (let i = 0; i < outputs; i++) {
    r.take(8);
    r.take(r.varint());
  }
  const body = r.bytes.subarray(bodyStart, r.at);
  if (segwit) {
    for (let i = 0; i < inputs; i++) {
      const items = r.varint();
      for (let j = 0; j < items; j++) r.take(r.varint());
    }
  }
  const lockTime = r.take(4);
  const stripped = new Uint8Array(4 + body.length + 4);
  stripped.set(version, 0);
  stripped.set(body, 4);
  stripped.set(lockTime, 4 + body.length);
  return { stripped, size: r.at - start };
}

/**
 * A raw block's header fields and its transactions' txids (display hex, in block order).
 * Throws on a block that is truncated, too large or has bytes after its last transaction.
 */
export async function parseBlock(bytes) {
  if (bytes.length < 81 || bytes.length > MAX_BLOCK_BYTES) throw new Error(`a block of ${bytes.length} bytes`);
  const r = new Reader(bytes);
  const header = r.take(80);
  const count = r.varint();
  const stripped = [];
  for (let i = 0; i < count; i++) stripped.push(readTransaction(r).stripped);
  if (r.at !== bytes.length) throw new Error(`${bytes.length - r.at} bytes after the last transaction`);
  return {
    blockHash: displayHex(await sha256d(header)),
    merkleRoot: displayHex(header.subarray(36, 68)),
    txids: await Promise.all(stripped.map(async (tx) => displayHex(await sha256d(tx)))),
  };
}

/**
 * Walks a Merkle branch (Electrum's `merkle`, display hex) up from `txid` at position `pos`:
 * at level i the sibling is on the left when bit i of `pos` is set. Returns every step, the
 * last one's `hash` being the computed root (display hex).
 */
export async function merklePath(txid, pos, branch) {
  let current = fromDisplayHex(txid);
  const steps = [];
  for (const [level, siblingHex] of branch.entries()) {
    const sibling = fromDisplayHex(siblingHex);
    const siblingLeft = ((pos >>> level) & 1) === 1;
    const pair = new Uint8Array(64);
    pair.set(siblingLeft ? sibling : current, 0);
    pair.set(siblingLeft ? current : sibling, 32);
    current = await sha256d(pair);
    steps.push({ level, sibling: siblingHex, siblingLeft, hash: displayHex(current) });
  }
  return { steps, root: displayHex(current) };
}
