#!/usr/bin/env node
// Runs bcoin 1.0.2 on regtest (bcoin-node.mjs) as a process a Rust test or a shell drives over
// its stdin and stdout, one JSON object a line each way.
//
//   node tests/bitcoin/bcoin-regtest.mjs [--host 127.0.0.1] [--port 0] [--log-level none]
//
// --port 0 (the default) listens on a free port. bcoin's log goes to stderr ("none" by default;
// "error", "warning", "info", "debug", "spam").
//
// Once the node listens, ONE line on stdout:
//   {"ready":true,"p2p":"127.0.0.1:40123","height":0,"hash":"0f9188f1…2206"}
// (on a failure to start, instead: {"ready":false,"error":"…"} and exit code 1).
//
// Then it reads commands from stdin, one JSON object a line, and runs them one at a time in the
// order they came; each gets exactly one answer line on stdout, carrying the command's `id`
// (any JSON value; null when the line was not a JSON object):
//   {"id":1,"ok":true,…fields of the command…}   or   {"id":1,"ok":false,"error":"…"}
//
// Hashes are hex in display order (as Bitcoin Core's RPC prints them), raw blocks and
// transactions hex of their serialisation with witness data. Every answer that can change the
// chain also carries the tip after it: "height" and "hash".
//
//   {"id":1,"cmd":"tip"}                   → {"id":1,"ok":true,"height":440,"hash":"…"}
//   {"id":2,"cmd":"mine","n":10}           → {"id":2,"ok":true,"hashes":["…",…],"height":450,"hash":"…"}
//       n blocks (default 1) on the tip, coinbases to the node's wallet, the first with the
//       mempool in it. Segwit is active from height 432 on regtest; coinbases mature after 100.
//   {"id":3,"cmd":"send","sats":100000}    → {"id":3,"ok":true,"txid":"…","wtxid":"…","hex":"…"}
//       a wallet transaction (segwit: it spends P2WPKH coins) paying `sats` (default 100000) to
//       a new wallet address, accepted into the mempool and announced to peers. Fails before
//       segwit is active.
//   {"id":4,"cmd":"mineWith","txids":["…"]} → {"id":4,"ok":true,"hashes":["…"],"height":…,"hash":"…"}
//       one block with the mempool in it; fails when one of `txids` is not in it.
//   {"id":5,"cmd":"invalidate","hash":"…"} → {"id":5,"ok":true,"height":…,"hash":"…"}
//       bcoin's chain.invalidate: the chain goes back to the block's parent (bcoin forgets the
//       blocks it took off, and empties its mempool), blocks mined next make a new branch.
//   {"id":6,"cmd":"block","hash":"…"}      → {"id":6,"ok":true,"hex":"…"}
//       fails with "block … not found" when bcoin does not have it.
//   {"id":7,"cmd":"stop"}                  → {"id":7,"ok":true}, then the process exits (code 0).
//
// It also stops and exits (code 0) when stdin closes, and on SIGTERM or SIGINT.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { startBcoin } from "./bcoin-node.mjs";

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "log-level": { type: "string", default: "none" },
  },
});

const port = Number(args.port);
if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
  process.stdout.write(`${JSON.stringify({ ready: false, error: `bad --port ${args.port}` })}\n`);
  process.exit(1);
}

let node;
try {
  node = await startBcoin({ host: args.host, port, logLevel: args["log-level"] });
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ready: false, error: String(err?.message ?? err) })}\n`);
  process.exit(1);
}

const answer = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

let stopping = null;
/** Stops the node once, then exits. */
function stopAndExit(code = 0) {
  stopping ??= node.stop().then(
    () => process.exit(code),
    (err) => {
      process.stderr.write(`bcoin-regtest: stopping failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
  return stopping;
}
process.on("SIGTERM", () => stopAndExit(0));
process.on("SIGINT", () => stopAndExit(0));

/** Runs one command; returns the fields of its answer. */
async function run(command) {
  switch (command.cmd) {
    case "tip":
      return node.tip();
    case "mine": {
      const n = command.n ?? 1;
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new Error(`"n" must be an integer from 1 to 10000`);
      return { hashes: await node.mine(n), ...node.tip() };
    }
    case "mineWith": {
      const txids = command.txids ?? [];
      if (!Array.isArray(txids) || !txids.every(isHash)) throw new Error(`"txids" must be an array of 64-digit hex`);
      return { hashes: await node.mineWith(txids), ...node.tip() };
    }
    case "send": {
      const sats = command.sats ?? 100_000;
      if (!Number.isSafeInteger(sats) || sats <= 0) throw new Error(`"sats" must be a positive integer`);
      return node.send(sats);
    }
    case "invalidate":
      if (!isHash(command.hash)) throw new Error(`"hash" must be 64-digit hex`);
      return node.invalidate(command.hash);
    case "block": {
      if (!isHash(command.hash)) throw new Error(`"hash" must be 64-digit hex`);
      const hex = await node.block(command.hash);
      if (hex === null) throw new Error(`block ${command.hash} not found`);
      return { hex };
    }
    case "stop":
      return {};
    default:
      throw new Error(`unknown command ${JSON.stringify(command.cmd)}`);
  }
}

function isHash(value) {
  return typeof value === "string" && /^[0-9a-f]{64}$/i.test(value);
}

answer({ ready: true, p2p: node.p2pAddress, ...node.tip() });

// One command at a time, in order: readline's async iterator waits for each before the next.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    answer({ id: null, ok: false, error: "not JSON" });
    continue;
  }
  if (command === null || typeof command !== "object" || Array.isArray(command)) {
    answer({ id: null, ok: false, error: "not a JSON object" });
    continue;
  }
  const id = command.id ?? null;
  try {
    const fields = await run(command);
    answer({ id, ok: true, ...fields });
  } catch (err) {
    answer({ id, ok: false, error: String(err?.message ?? err) });
  }
  if (command.cmd === "stop") break;
}
await stopAndExit(0);
