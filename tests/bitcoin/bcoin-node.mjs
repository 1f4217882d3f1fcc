// A real, independent Bitcoin node for Shoal's tests: bcoin 1.0.2 (npm, JavaScript) on regtest,
// in memory, serving Bitcoin's P2P protocol, with a wallet that gets the coinbases it mines.
//
// bcoin is installed in its own folder, tests/bitcoin/bcoin (scripts/setup.sh --browser does it;
// see the notes there: native `mrmr` and `bsip` built with node-gyp, `leveldown` a stub because
// the node only ever runs in memory).
//
// Block and transaction hashes cross this interface as hex in display order (the order Bitcoin
// Core's RPC and block explorers print: the block hash with its leading zeros first), raw blocks
// and transactions as hex of their serialisation with witness data.
//
//   const node = await startBcoin({ port: 0 });
//   await node.mine(440);                       // segwit is active from height 432 on regtest
//   const { txid } = await node.send(100_000);  // a segwit wallet transaction, now in the mempool
//   const [hash] = await node.mineWith([txid]); // a block with it
//   await node.stop();
//
// Block times: bcoin's miner stamps each block max(now, median time past + 1), so a burst of
// blocks in the same second walks ahead of the clock by one second about every six blocks
// (hundreds of blocks: a minute or two ahead, far inside the two hours Bitcoin allows). `mine`
// asserts both rules on every block it makes.
//
// What bcoin 1.0.2 does on the wire (seen from a raw client, tests/e2e/bcoin-harness.test.mjs),
// for a client of it:
// - It speaks protocol 70015, services NODE_NETWORK | NODE_WITNESS (9), user agent
//   "/bcoin:v1.0.2/", relay 1; on an inbound connection it sends its version at once, before
//   the client's; it answers the client's version with verack.
// - It knows neither wtxidrelay nor sendaddrv2 (BIP 339, 155): sent before verack, each is
//   logged as an unknown packet and ignored; the connection stays.
// - After the handshake it sends sendcmpct (announce 0, version 2) and getaddr; no sendheaders,
//   no feefilter. It pings every 30 s; it drops a peer that sent nothing at all within 60 s,
//   or nothing for 20 minutes, or left a ping unanswered for 20 minutes.
// - A new block is announced at once by inv (MSG_BLOCK, 2), or by a headers message once the
//   client sent sendheaders; transactions by inv (MSG_TX, 1, the txid), batched every 5 s.
// - getdata MSG_WITNESS_BLOCK (0x40000002) and MSG_WITNESS_TX (0x40000001) give the witness
//   serialisation, MSG_BLOCK and MSG_TX the stripped one; what it lacks gets notfound.
// - getheaders is answered with up to 2,000 headers after the locator's fork point, but NOT at
//   all when there is none to send (Bitcoin Core would send an empty headers message).
// - invalidate() rewinds: the blocks taken off are gone from bcoin (getdata: notfound) and its
//   mempool is emptied; the next mined blocks are announced one by one like any new block.
import { createRequire } from "node:module";

const require = createRequire(new URL("./bcoin/package.json", import.meta.url));
const bcoin = require("bcoin");
// bcoin's own logger class, resolved from bcoin's folder as bcoin resolves it.
const Logger = createRequire(require.resolve("bcoin"))("blgr");

const { revHex } = bcoin.util;

/** Bitcoin's rule: a block's time may be at most this far past the node's clock. */
const MAX_FUTURE_BLOCK_TIME_S = 2 * 60 * 60;

/** Regtest's P2P magic as it goes on the wire, and the protocol version bcoin speaks. */
export const REGTEST_MAGIC = Buffer.from([0xfa, 0xbf, 0xb5, 0xda]);
export const PROTOCOL_VERSION = bcoin.net.common.PROTOCOL_VERSION;

/** bcoin's logger writes everything but errors to stdout; this one writes all to stderr, which
 * leaves stdout to whoever runs the node (bcoin-regtest.mjs answers on it). */
class StderrLogger extends Logger {
  writeConsole(level, module, args) {
    const name = Logger.levelsByVal[level];
    process.stderr.write(`[bcoin ${name}] ${module ? `(${module}) ` : ""}${this.fmt(args, false)}\n`);
    return true;
  }
}

/**
 * Starts a bcoin full node on regtest, in memory, listening for P2P connections on
 * `host`:`port` (0: a free port, see `p2pPort`). Its two HTTP servers (node and wallet, which
 * bcoin always opens) listen on free ports of 127.0.0.1 and are not used. It makes no outbound
 * connection and no DNS query. `logLevel` is bcoin's ("none", "error", "info", "debug", ...),
 * to stderr.
 *
 * `blocks` (raw blocks as hex, heights 1, 2, ... in order, e.g. an earlier node's `rawChain()`)
 * are connected before the node listens: a node "restarted" with the chain it had (bcoin runs
 * in memory). Its wallet is a new one: the earlier node's coins are not its own.
 */
export async function startBcoin({ host = "127.0.0.1", port = 0, logLevel = "none", blocks = [] } = {}) {
  const node = new bcoin.FullNode({
    network: "regtest",
    memory: true,
    workers: false,
    listen: true,
    host,
    // bcoin refuses port 0 in its options (its address book wants a real one); it gets the
    // regtest default here and 0 below, just before it listens.
    port: port || bcoin.Network.get("regtest").port,
    // No seeds: regtest's is 127.0.0.1, which would connect out to whatever listens on 48444.
    seeds: [],
    httpHost: "127.0.0.1",
    httpPort: 0,
    logger: new StderrLogger({ level: logLevel, console: true, colors: false }),
    logLevel,
    plugins: [bcoin.wallet.plugin],
    // The wallet plugin reads the `wallet-` options: a segwit (P2WPKH) primary wallet, so the
    // coinbases it gets and the transactions it makes spend witness outputs once segwit is on.
    walletWitness: true,
    walletHttpHost: "127.0.0.1",
    walletHttpPort: 0,
  });
  // Left alone, connecting asks OpenDNS for the machine's public address (to advertise it);
  // a test node advertises nothing.
  node.pool.discoverExternal = async () => {};
  node.pool.options.port = port;

  await node.open();
  for (const [i, hex] of blocks.entries()) {
    const block = bcoin.Block.fromRaw(Buffer.from(hex, "hex"));
    if (!(await node.chain.add(block))) throw new Error(`block ${i + 1} (${block.rhash()}) was not connected`);
  }
  await node.connect();

  const wdb = node.require("walletdb").wdb;
  const wallet = wdb.primary;
  const { address: p2pHost, port: p2pPort } = node.pool.server.address();

  /** Waits until the wallet has seen the chain's tip (it follows the node asynchronously). */
  async function walletCaughtUp() {
    for (let i = 0; i < 1000 && wdb.state.height !== node.chain.height; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (wdb.state.height !== node.chain.height) {
      throw new Error(`the wallet is at height ${wdb.state.height}, the chain at ${node.chain.height}`);
    }
  }

  /** Mines one block on the tip, with what the mempool holds, paying the wallet. */
  async function mineOne() {
    const address = await wallet.receiveAddress();
    const job = await node.miner.createJob(node.chain.tip, address);
    const block = await job.mineAsync();
    const mtp = await node.chain.getMedianTime(node.chain.tip);
    if (block.time <= mtp) throw new Error(`block time ${block.time} is not after the median time past ${mtp}`);
    const now = Math.floor(Date.now() / 1000);
    if (block.time > now + MAX_FUTURE_BLOCK_TIME_S) {
      throw new Error(`block time ${block.time} is more than two hours past the clock (${now})`);
    }
    const entry = await node.chain.add(block);
    if (!entry) throw new Error(`block ${block.rhash()} was not connected`);
    return block;
  }

  return {
    /** The bcoin FullNode itself, for what this interface does not cover. */
    node,
    p2pHost,
    p2pPort,
    p2pAddress: `${p2pHost}:${p2pPort}`,

    /** The tip: `{ height, hash }`. */
    tip() {
      return { height: node.chain.height, hash: revHex(node.chain.tip.hash) };
    },

    /** Mines `n` blocks on the tip (the first takes the mempool); returns their hashes. */
    async mine(n = 1) {
      const hashes = [];
      for (let i = 0; i < n; i++) hashes.push((await mineOne()).rhash());
      await walletCaughtUp();
      return hashes;
    },

    /** Mines one block with the mempool in it and checks that each of `txids` is in it; returns
     * `[hash]`. */
    async mineWith(txids = []) {
      const block = await mineOne();
      await walletCaughtUp();
      const inBlock = new Set(block.txs.map((tx) => tx.txid()));
      const missing = txids.filter((txid) => !inBlock.has(txid));
      if (missing.length > 0) throw new Error(`block ${block.rhash()} lacks ${missing.join(", ")}`);
      return [block.rhash()];
    },

    /** Pays `amountSats` from the wallet to a new address of its own and puts the transaction
     * in the mempool (bcoin relays it to its peers). Segwit once active (the wallet's coins are
     * P2WPKH). Returns `{ txid, wtxid, hex }`. */
    async send(amountSats = 100_000) {
      if (!node.chain.state.hasWitness()) {
        throw new Error(`segwit is not active yet at height ${node.chain.height} (regtest: from 432)`);
      }
      await walletCaughtUp();
      const address = await wallet.createReceive();
      const mtx = await wallet.createTX({ outputs: [{ address: address.getAddress(), value: amountSats }] });
      await wallet.sign(mtx);
      const tx = mtx.toTX();
      // Not wallet.send(): it hands the transaction to the node without waiting, and a mempool
      // that refuses it says so only in the log. Here a refusal throws, with bcoin's reason.
      await node.mempool.addTX(tx);
      await wdb.addTX(tx);
      return { txid: tx.txid(), wtxid: tx.wtxid(), hex: tx.toRaw().toString("hex") };
    },

    /** Invalidates the block `hash` (bcoin's `chain.invalidate`): the chain goes back to its
     * parent, and blocks mined next make a branch from there. */
    async invalidate(hash) {
      await node.chain.invalidate(revHex(hash));
      await walletCaughtUp();
      return this.tip();
    },

    /** The block `hash`, raw with witness data, as hex; null when bcoin does not have it. */
    async block(hash) {
      const raw = await node.chain.getRawBlock(revHex(hash));
      return raw ? raw.toString("hex") : null;
    },

    /** The best chain's blocks above genesis, raw with witness data as hex, by height (what
     * `startBcoin({ blocks })` takes). */
    async rawChain() {
      const raws = [];
      for (let height = 1; height <= node.chain.height; height++) {
        const entry = await node.chain.getEntryByHeight(height);
        raws.push((await node.chain.getRawBlock(entry.hash)).toString("hex"));
      }
      return raws;
    },

    /** Puts the raw transaction `hex` (e.g. `send`'s) into the mempool again, as after an
     * `invalidate` emptied it; returns its txid. Throws with bcoin's reason when refused. */
    async addTX(hex) {
      const tx = bcoin.TX.fromRaw(Buffer.from(hex, "hex"));
      await node.mempool.addTX(tx);
      return tx.txid();
    },

    /** Stops the node and closes its sockets. */
    async stop() {
      await node.disconnect();
      await node.close();
    },
  };
}
