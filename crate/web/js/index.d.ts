/**
 * `shoal`: a Bitcoin light node in WebAssembly for web pages.
 *
 * ```js
 * import { LightNode } from "shoal";
 * const node = await LightNode.start({ relays: ["/ip4/…/udp/…/webrtc-direct/certhash/…/p2p/…"] });
 * node.addEventListener("sync-progress", (e) => console.log(e.detail.height, e.detail.target));
 * const result = await node.verifyTransaction(txid);
 * ```
 *
 * @packageDocumentation
 */

/** The `code` of every error a {@link LightNode} rejects with. */
export type ShoalErrorCode =
  /** No block of the chain contains the transaction (or the hinted block does not). */
  | "NOT_FOUND"
  /** The node's header chain does not yet reach the block the answer lies in. */
  | "NOT_SYNCED"
  /** No relay or cluster member could be reached, or none answered in time. */
  | "UNAVAILABLE"
  /** An answer's Merkle proof did not verify against the node's own headers. */
  | "INVALID_PROOF"
  /** The input is malformed (txid, options, relay multiaddr…). */
  | "BAD_INPUT"
  /** IndexedDB failed: quota exhausted, unavailable, or corrupt data. */
  | "STORAGE";

/** The error every promise of a {@link LightNode} rejects with. */
export interface ShoalError extends Error {
  name: "ShoalError";
  code: ShoalErrorCode;
}

/** The error codes as constants, e.g. `err.code === ErrorCode.NOT_FOUND`. */
export declare const ErrorCode: Readonly<{ [K in ShoalErrorCode]: K }>;

/** Options of {@link LightNode.start}. Only `relays` is required. */
export interface StartOptions {
  /**
   * Relay multiaddrs, each ending in `/p2p/<peer id>`: `/webrtc-direct/certhash/…` addresses
   * (no certificate authority needed) or `/ws` / `/wss` WebSocket addresses.
   */
  relays: string[];
  /** The chain: `"regtest"` (default), `"signet"`, `"testnet"` or `"mainnet"`. */
  network?: "regtest" | "signet" | "testnet" | "mainnet";
  /** Largest cluster this node forms or joins (default 8). */
  clusterSize?: number;
  /** On how many members each block is stored (default 3; less than `clusterSize`). */
  replicas?: number;
  /**
   * Base name of the IndexedDB databases (default `"shoal"`). Each tab of an origin uses its
   * own database and identity (`<database>-<network>-<slot>`), claimed with Web Locks; a
   * reloaded tab gets its slot, identity and data back. Web Locks need a secure context
   * (https, or http on localhost).
   */
  database?: string;
}

/** Options of {@link LightNode.verifyTransaction}. */
export interface VerifyOptions {
  /** The hash of the block believed to hold the transaction (display hex): saves a search. */
  blockHint?: string;
}

/**
 * A transaction proven to be in the node's best chain. Hashes are hex in Bitcoin's display
 * byte order, as `bitcoind`, Electrum and `shoal-relay block prove` print them.
 */
export interface VerifiedTransaction {
  /** Always `true`: unconfirmed or unknown transactions reject with `NOT_FOUND`. */
  confirmed: true;
  txid: string;
  blockHash: string;
  height: number;
  /** `tip height − height + 1`. */
  confirmations: number;
  /** The transaction's position in its block. */
  pos: number;
  /** The Merkle branch from the transaction up to the root (as Electrum's `merkle`). */
  merkle: string[];
  /**
   * Who supplied the proof the node checked: its own blocks (`"local"`), another member of its
   * cluster (`"member"`) or a relay's archive node (`"relay"`).
   */
  source: "local" | "member" | "relay";
}

/** A snapshot of the node, from {@link LightNode.status}. */
export interface NodeStatus {
  peerId: string;
  network: string;
  /** The identity slot (per-tab database) this node uses. */
  slot: number;
  /** The core node's cluster id (hex); `null` while the node is not in a cluster. */
  clusterId: string | null;
  /** The core node's member number; `null` while not in a cluster. */
  memberNumber: number | null;
  /** The cluster's members in member-number order (peer ids; a node id in hex if never met). */
  members: string[];
  /** Peers whose core node greeted this one (`Hello`), and whether each is an archive. */
  nodePeers: { peerId: string; archive: boolean }[];
  /** Whether the core node has been handed the verified header chain (after the first sync). */
  nodeHasHeaders: boolean;
  /** Relays this node is connected to, with the transport in use. */
  relays: { peerId: string; transport: "webrtc-direct" | "websocket" }[];
  /** Blocks the core node holds (stored in IndexedDB). */
  heldBlocks: number;
  /** Bytes of those blocks. */
  storedBytes: number;
  /** The best verified header chain's tip (height 0: only the genesis block). */
  tip: { height: number; hash: string };
  /** Whether the last header request to a relay returned everything up to its tip. */
  synced: boolean;
  /** Size of all blocks of the chain up to the tip, as reported by relays (0 if unknown). */
  wholeChainBytes: number;
  /** Header bytes received from relays since start (80 per header). */
  headerBytesDownloaded: number;
}

/** Detail of the `sync-progress` event. */
export interface SyncProgress {
  height: number;
  /**
   * The height sync is heading for: the best height the relays' header answers claim (a relay
   * demoted for lying or stalling does not count; never below `height`; `null` before the first
   * answer), `height` once synced. A claim for a progress bar only: every header is verified,
   * whatever a relay says its tip is.
   */
  target: number | null;
  synced: boolean;
}

/** The events a {@link LightNode} dispatches (as `CustomEvent`s). */
export interface LightNodeEventMap {
  "sync-progress": CustomEvent<SyncProgress>;
  /** The node joined a cluster, its view changed, or it left (`clusterId: null`). */
  cluster: CustomEvent<{ clusterId: string | null; memberNumber: number | null; members: string[] }>;
  /** This node declared a member offline (its peer id; a node id in hex if never met). */
  "member-lost": CustomEvent<{ peerId: string }>;
  /** The node stored a block of its shard in IndexedDB (after verifying it). */
  "block-stored": CustomEvent<{ blockHash: string; height: number; bytes: number }>;
  /** A relay connected or disconnected. */
  relay: CustomEvent<{ peerId: string; connected: boolean; transport?: string }>;
}

/** A Shoal light node running in this page. */
export declare class LightNode extends EventTarget {
  private constructor();

  /**
   * Starts a node: loads (or creates) this tab's identity and stored headers, connects to the
   * relays and begins header sync. Resolves once at least one relay is connected.
   * Rejects with `BAD_INPUT` (options), `STORAGE` (IndexedDB) or `UNAVAILABLE` (no relay).
   */
  static start(options: StartOptions): Promise<LightNode>;

  /**
   * Proves that transaction `txid` (64 hex digits, display order) is in the best chain. The
   * node answers from its own blocks, else asks its cluster's members, then the relays (S16);
   * every Merkle proof is checked against the node's own verified headers before it resolves.
   * Rejects with `BAD_INPUT`, `NOT_FOUND` (every node asked said no), `NOT_SYNCED` (the
   * answer's block is above the node's header tip, e.g. before the first sync),
   * `UNAVAILABLE` (no verifiable answer in time) or `INVALID_PROOF` (the only answers came
   * with proofs that failed the check).
   */
  verifyTransaction(txid: string, options?: VerifyOptions): Promise<VerifiedTransaction>;

  /** A snapshot of the node's state. */
  status(): NodeStatus;

  /** Disconnects, closes the database and releases this tab's identity slot. */
  stop(): Promise<void>;

  addEventListener<K extends keyof LightNodeEventMap>(
    type: K,
    listener: (this: LightNode, ev: LightNodeEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}
