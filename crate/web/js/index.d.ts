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
   * (no certificate authority needed) or `/ws` / `/wss` WebSocket addresses. Every relay is
   * used: each is a header source, holds a circuit reservation for this node and lists it in
   * its directory, and the address this node gives its cluster names it through each of them
   * (as many as fit in 512 bytes), so losing one relay leaves it reachable through the others.
   */
  relays: string[];
  /**
   * The chain: `"regtest"` (default), `"signet"`, `"testnet"` (testnet3), `"testnet4"` or
   * `"mainnet"`. Headers are verified from genesis; until their total work reaches the
   * network's minimum (Bitcoin Core's `nMinimumChainWork`; none on regtest) they are neither
   * stored nor trusted, and the node is not synced.
   */
  network?: "regtest" | "signet" | "testnet" | "testnet4" | "mainnet";
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
  /**
   * Milliseconds between the heartbeats a cluster member sends its fellow members (default
   * 5000; 100 to 3,600,000).
   */
  heartbeatIntervalMs?: number;
  /**
   * A member not heard from for this long is declared lost (`member-lost`), and its blocks are
   * copied again onto the live members (default 20000, or just above `heartbeatIntervalMs` if
   * that is longer; must exceed `heartbeatIntervalMs`; at most 3,600,000). Shorter detects a
   * closed or crashed tab sooner, at the price of more heartbeats.
   */
  offlineAfterMs?: number;
  /**
   * Mean milliseconds (±50 % jitter) between a node's attempts to form a cluster or to ask one
   * with room to take it in, and between a short cluster's rounds of inviting outside nodes
   * (default 10000; 100 to 3,600,000).
   */
  formationIntervalMs?: number;
  /**
   * How a new block reaches the members that must hold it (default `"routed"`). The relay
   * announces each new block to every connected node at once, by its 80-byte header; then
   * - `"routed"` (S14): one member of the cluster, the block's first holder by placement,
   *   fetches it from the relay and sends it to the other holders: the block leaves the relay
   *   once per cluster;
   * - `"self-selected"` (S15): every member that must hold the block fetches it from the relay
   *   itself: once per holder.
   * Holders store it, tell the cluster, and it fires `block-stored` on each of them.
   */
  newBlocks?: "routed" | "self-selected";
  /**
   * Once synced, how often every relay is asked for new headers, in milliseconds (default
   * 5000; 1000 to 3600000). New blocks arrive at once by the relays' announcements; this poll
   * only catches what an announcement missed.
   */
  headerPollIntervalMs?: number;
  /**
   * Which members of the cluster store which block, each on `replicas` of them (default
   * `"rendezvous"`). Every member of a cluster must use the same rule.
   * - `"rendezvous"`: highest-random-weight hashing of block and member id; a member leaving or
   *   joining moves only its own share of the blocks.
   * - `"hash-mod"` (S6, the patent's rule): the block hash modulo the constants K, K−1, …,
   *   K−replicas+1 (K the cluster's size) gives member numbers; a number already taken moves
   *   on to the next free one.
   * - `"even"` (S7): heights cut into ranges of `evenRangeBlocks`; range r is stored on the
   *   members numbered r, r+1, … (mod K).
   * - `"segment"` (S8): rendezvous ranking, but a block's copies go to members on distinct
   *   network segments (`segment`) whenever there are that many.
   * Member numbers are the members sorted by the double SHA-256 of cluster id and member id
   * (S5), so `"hash-mod"` and `"even"` move blocks whenever the cluster is re-formed.
   */
  placement?: "rendezvous" | "hash-mod" | "even" | "segment";
  /**
   * With `placement: "even"` only: heights per range (default 16; 1 to 1,000,000).
   */
  evenRangeBlocks?: number;
  /**
   * Lifetime of a cluster id in milliseconds (S4; default 21,600,000, six hours; 1,000 to
   * 2,592,000,000). When it lapses the members become ordinary nodes and re-form, with the same
   * members when they can, under a new id; blocks they no longer hold stay stored ten minutes
   * before they are deleted.
   */
  clusterTtlMs?: number;
  /**
   * This node's network segment for `placement: "segment"` (S8): any number from 0 to
   * 4,294,967,295 that nodes of one network share, e.g. an autonomous-system number (default 0).
   * A page cannot find out its own network segment; the application passes what it knows (for
   * instance from its server). Other rules ignore it.
   */
  segment?: number;
  /**
   * Whom each member checks with heartbeats: 0 (the default) every other member (S9); n the n
   * members numbered on either side of it (S10: fewer pings in large clusters; a member learns
   * of a loss from the neighbour that detected it, by the view). An integer from 0 to 32.
   */
  heartbeatNeighbours?: number;
  /**
   * The bytes of block storage this node offers its cluster, instead of its share of the
   * origin's storage (an integer from 1 to 2^53 − 1). By default a node offers 80 % of the
   * origin's free room (`navigator.storage.estimate()`: quota − usage, plus what this node
   * stores already) divided among the origin's live Shoal nodes (tabs); see
   * {@link StorageShare}. Placement weighs members by it: a member offering half the room of
   * another holds about half as many blocks. With this option the figure stays, but a write
   * refused for quota still lowers it (to what the node holds, less a tenth, for 10 minutes).
   */
  capacityBytes?: number;
  /**
   * Connect to other pages directly over WebRTC once a relay introduced them (libp2p's
   * `/webrtc`; default `true`). `false` keeps all page-to-page traffic on relay circuits.
   */
  directConnections?: boolean;
  /**
   * STUN/TURN servers for direct connections, as `RTCConfiguration.iceServers` takes them.
   * None by default: host candidates connect pages on one machine or one LAN; pages behind
   * different NATs need a STUN server, and a TURN server where no direct path exists (without
   * one they stay on the relay's circuit).
   */
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[];
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
   * Who supplied the proof the node checked: its own blocks (`"local"`), another node that is
   * not an archive (`"member"`: a page, or a relay started with `--role member`, whose node
   * greets as a non-archive) or a relay's archive node (`"relay"`: a peer whose node said it
   * is an archive, or one of the options' relays not known to be a member relay).
   */
  source: "local" | "member" | "relay";
  /** The peer id of the node whose answer was verified; `null` when `source` is `"local"`. */
  answeredBy: string | null;
  /**
   * The raw transaction (consensus serialization with witness, hex). The node checked that it
   * hashes to `txid` (an answer with another transaction counts as a forged proof: its sender
   * is scored and the next one asked), so a wallet can read its outputs without trusting
   * whoever answered.
   */
  transaction: string;
  /**
   * The Merkle root of this node's own header at `height` (display hex, as `merkle`): what the
   * proof was checked against. Hashing `txid` up `merkle` (left or right by the bits of `pos`)
   * gives it.
   */
  merkleRoot: string;
}

/** A connection of the node to another peer, in {@link NodeStatus.connections}. */
export interface PeerConnection {
  peerId: string;
  /**
   * How it is connected: directly to a relay (`"webrtc-direct"`, `"websocket"`), to another
   * page through a relay's circuit (`"circuit"`), or to another page directly over WebRTC
   * (`"webrtc"`: introduced through a relay, which carries none of its bytes). A page has a
   * circuit to another page until the direct connection is up, then only the direct one; if no
   * direct connection can be made, the circuit stays.
   */
  transport: "webrtc-direct" | "websocket" | "circuit" | "webrtc";
  /** The last ping's round trip over this connection (ms), once one came back. */
  rttMs?: number;
  /** The peer's agent version, as its identify said (e.g. `shoal-web/0.1.0`). */
  agent?: string;
  /**
   * What the peer is to this node: a relay's archive node (its node greeted as an archive), a
   * relay of the options not (yet) known as an archive, a member of this node's cluster, or
   * any other peer.
   */
  role: "archive" | "relay" | "member" | "peer";
}

/** Bytes received from one kind of sender since the node started. */
export interface ReceivedBytes {
  /** Blocks (`BlockData` and `NewBlock` messages: the raw blocks' bytes). */
  blocks: number;
  /** Header sync answers (whole messages). */
  headers: number;
}

/** A block of this node's shard, from {@link LightNode.shard}. */
export interface ShardBlock {
  height: number;
  /** Display hex. */
  blockHash: string;
  /** The raw block, as stored in IndexedDB (checked against its hash when read). */
  bytes: Uint8Array;
}

/** What a member's heartbeats say of its shard: its own word, not checked. */
export interface ShardReport {
  /** Blocks it holds (spare copies included). */
  heldBlocks: number;
  /** Their bytes in its store. */
  storedBytes: number;
  /** Blocks its view gives it that it does not hold yet (0: its shard is whole). */
  missingBlocks: number;
}

/** A member of this node's cluster, in {@link NodeStatus.memberDetails}. */
export interface MemberDetail {
  peerId: string;
  /** Its member number (its index in `NodeStatus.members`). */
  number: number;
  /** This node itself. */
  self: boolean;
  /** A member relay (`shoal-relay serve --role member`, connected directly), not a page. */
  relay: boolean;
  /** Connected to this node now (always `true` for itself). */
  connected: boolean;
  /**
   * When its last heartbeat reached this node, in Unix milliseconds (compare with
   * `Date.now()`); `null` for this node and for members it does not watch
   * (`heartbeatNeighbours`). One silent for `offlineAfterMs` is declared lost.
   */
  lastHeardAt: number | null;
  /**
   * It said it holds its whole shard under the current view (for this node: it said so
   * itself). Until then its share may still be filling.
   */
  shardHeld: boolean;
  /** Its latest heartbeat's report (for this node: its own figures now); `null` before one. */
  report: ShardReport | null;
}

/** Where the cluster's placement puts each block of a range, from {@link LightNode.shardMap}. */
export interface ShardMap {
  /** The node's verified header tip. */
  tipHeight: number;
  fromHeight: number;
  /**
   * The last height covered: `toHeight` as asked, or the header tip if lower (below
   * `fromHeight` when the range lies above the tip).
   */
  toHeight: number;
  /** The view's members (peer ids) in member-number order; empty outside a cluster. */
  members: string[];
  /**
   * `holders[i]`: the member numbers (indices into `members`) that placement gives height
   * `fromHeight + i` under the current view, most preferred first — `replicas` of them; empty
   * outside a cluster. Where a block *belongs*, computed as every member computes it; whether
   * a member holds it yet is its `MemberDetail.shardHeld` / `report` (and `held` for this node).
   */
  holders: number[][];
  /** The heights of the range this node holds (spare copies a view change left included). */
  held: number[];
}

/** A snapshot of the node, from {@link LightNode.status}. */
export interface NodeStatus {
  peerId: string;
  network: string;
  /** The identity slot (per-tab database) this node uses. */
  slot: number;
  /**
   * This node's device, its failure domain: 16 hex digits (a 64-bit number), made once per
   * browser profile and origin and the same in every tab of it, since such tabs fail together
   * (one crash, one closed laptop, one clearing of site data). Placement puts a block's copies
   * on distinct devices whenever the cluster spans that many; relays are devices of their own.
   */
  device: string;
  /** The origin's storage as this node saw it at start, and the capacity it offers. */
  storage: StorageShare;
  /**
   * How the cluster's members spread over devices and network segments; `null` outside a
   * cluster. The `failure-domains` event tells when it changes.
   */
  failureDomains: FailureDomains | null;
  /** The largest cluster this node forms or joins, as started (`StartOptions.clusterSize`). */
  clusterSize: number;
  /** On how many members each block is stored, as started (`StartOptions.replicas`). */
  replicas: number;
  /** The core node's cluster id (hex); `null` while the node is not in a cluster. */
  clusterId: string | null;
  /** The core node's member number; `null` while not in a cluster. */
  memberNumber: number | null;
  /** The cluster's members in member-number order (peer ids; a node id in hex if never met). */
  members: string[];
  /**
   * The members this node checks with heartbeats, in member-number order: every other member,
   * or with {@link StartOptions.heartbeatNeighbours} the n numbered on either side (S9/S10).
   */
  watching: string[];
  /**
   * Every member of the view with what this node knows of it, in member-number order (empty
   * outside a cluster).
   */
  memberDetails: MemberDetail[];
  /** The heartbeat interval this node was started with (`StartOptions.heartbeatIntervalMs`). */
  heartbeatIntervalMs: number;
  /** The silence after which it declares a member lost (`StartOptions.offlineAfterMs`). */
  offlineAfterMs: number;
  /** Peers whose core node greeted this one (`Hello`), and whether each is an archive. */
  nodePeers: { peerId: string; archive: boolean }[];
  /** Whether the core node has been handed the verified header chain (after the first sync). */
  nodeHasHeaders: boolean;
  /** Relays this node is connected to, with the transport in use. */
  relays: { peerId: string; transport: "webrtc-direct" | "websocket" }[];
  /** Every connection (to relays and pages), sorted by peer id then transport. */
  connections: PeerConnection[];
  /** Blocks the core node holds (stored in IndexedDB). */
  heldBlocks: number;
  /** Bytes of those blocks. */
  storedBytes: number;
  /**
   * Blocks this node must hold as a member of its current cluster and does not hold yet (being
   * fetched, or waiting for a source); 0 once its shard is complete or outside a cluster.
   */
  missingBlocks: number;
  /** The best verified header chain's tip (height 0: only the genesis block). */
  tip: { height: number; hash: string };
  /** Whether the last header request to a relay returned everything up to its tip. */
  synced: boolean;
  /** Header bytes the verified chain was built from since start (80 per header). */
  headerBytesDownloaded: number;
  /**
   * Bytes received since start, blocks and headers apart, by sender: `fromRelays` counts the
   * options' relays and peers whose node greeted as an archive; `fromMembers` everyone else
   * (other pages, member relays). Counted where each message arrives, answers outrun by
   * another included.
   */
  downloadedBytes: { fromRelays: ReceivedBytes; fromMembers: ReceivedBytes };
  /**
   * Headers taken at once from a relay's new-block announcement (not waiting for the next
   * poll), since start.
   */
  announcedHeaders: number;
  /**
   * The latest storage failure (IndexedDB refused a write or a read: quota exhausted, …), until
   * a block write succeeds again; `null` when there is none. The node keeps going: a block it
   * could not write is tried again later, with a doubling back-off, not downloaded over and over.
   */
  storageError: StorageFailure | null;
  /**
   * Proofs of holding: a block this member keeps although its view gives it to others (a
   * spare, after a membership change) is deleted only once each of its holders answered a
   * challenge only the block's bytes answer; members also audit each other now and then.
   */
  holding: Holding;
}

/**
 * The origin's storage and this node's share of it, in {@link NodeStatus.storage}: read at
 * start, every 15 s after, and at once after a write fails for quota. Tabs of one origin share
 * one quota, so each offers a part of the free room; a change of a tenth or more goes to the
 * node's cluster, which moves blocks off (or onto) the tab. Chromium reports a rounded quota
 * to pages (usage + at most 10 GiB) while it enforces the real one: a write past that fails as
 * `STORAGE`, and the capacity drops to what the tab holds, less a tenth, for 10 minutes.
 */
export interface StorageShare {
  /** `navigator.storage.estimate()`'s quota and usage for the origin; `null` without one. */
  quotaBytes: number | null;
  usageBytes: number | null;
  /** The origin's live Shoal nodes (tabs holding a node slot), this one included. */
  liveTabs: number;
  /**
   * The bytes this node offers its cluster: 80 % of (quota − usage + its own stored bytes) /
   * `liveTabs`, or {@link StartOptions.capacityBytes}, or 1 GiB when the browser gives no
   * estimate (`capacityFrom` says which).
   */
  capacityBytes: number;
  capacityFrom: "estimate" | "option" | "default";
  /**
   * The browser's answer to `navigator.storage.persist()`, asked with each estimate: the origin's data
   * will not be evicted under storage pressure.
   */
  persisted: boolean;
}

/** How a cluster spreads over failure domains (S8), in {@link NodeStatus.failureDomains}. */
export interface FailureDomains {
  /** Members of the cluster's view. */
  members: number;
  /** Distinct devices among them (see {@link NodeStatus.device}). */
  devices: number;
  /** Distinct network segments among them ({@link StartOptions.segment}). */
  segments: number;
  /** Copies per block. */
  replicas: number;
  /**
   * Every block's copies are on distinct devices (the cluster spans at least
   * min(replicas, members) devices). `false`: some blocks have two copies on one device, and
   * losing that device loses them from the cluster.
   */
  spread: boolean;
}

/** Proofs of holding, in {@link NodeStatus.holding}. */
export interface Holding {
  /** Spare copies kept until their holders prove they hold them. */
  spareBlocks: number;
  /** Challenges this node sent, and the proofs that passed and failed. */
  challengesSent: number;
  proofsPassed: number;
  proofsFailed: number;
  /** Challenges that got no answer in time. */
  unanswered: number;
  /** Other members' challenges this node answered. */
  answered: number;
}

/** A storage failure, in {@link NodeStatus.storageError} and the `storage-error` event. */
export interface StorageFailure {
  code: "STORAGE";
  message: string;
  /** The browser's storage quota for this origin is exhausted. */
  quotaExceeded: boolean;
  /** When it happened (Unix milliseconds). */
  at: number;
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
  /**
   * A member failed its proofs of holding (it claimed blocks it could not prove it stores):
   * it is dropped from the cluster like a lost member (a `member-lost` follows) and kept out
   * for an hour. `byUs`: this node's own challenges found it; otherwise another member said so.
   */
  "holder-faulty": CustomEvent<{ peerId: string; byUs: boolean }>;
  /**
   * A member entered this node's view (one event per member; when this node joins a cluster,
   * one for each other member).
   */
  "member-joined": CustomEvent<{ peerId: string }>;
  /**
   * The verified header chain's tip grew, once header sync has caught up: one event per new
   * height (at most 100 for one growth), whether or not this node stores the block.
   */
  "new-block": CustomEvent<{ height: number; blockHash: string }>;
  /** The node stored a block of its shard in IndexedDB (after verifying it). */
  "block-stored": CustomEvent<{
    blockHash: string;
    height: number;
    bytes: number;
    /** The peer id the block came from (a member, a relay), `null` if not known. */
    from: string | null;
  }>;
  /**
   * IndexedDB failed (`detail.quotaExceeded`: the origin's quota is exhausted). Told once, and
   * again for the same kind of failure only after 10 minutes; `status().storageError` has the
   * latest.
   */
  "storage-error": CustomEvent<StorageFailure>;
  /**
   * How the cluster spreads over devices and segments: on joining a cluster, and when a view
   * change changes it (`spread: false`: some blocks now have two copies on one device).
   */
  "failure-domains": CustomEvent<FailureDomains>;
  /** A relay connected or disconnected. */
  relay: CustomEvent<{ peerId: string; connected: boolean; transport?: string }>;
  /** A direct WebRTC connection to another page came up or went down. */
  connection: CustomEvent<{
    peerId: string;
    transport: "webrtc";
    up: boolean;
    /** On `up`: ms from the first circuit to this peer to the direct connection. */
    afterCircuitMs?: number;
    /** On `up`, when this page dialled: ms of signalling and ICE. */
    dialMs?: number;
  }>;
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
   * every Merkle proof is checked against the node's own verified headers, and the raw
   * transaction an answer carries against `txid`, before it resolves.
   * Rejects with `BAD_INPUT`, `NOT_FOUND` (every node asked said no), `NOT_SYNCED` (the
   * answer's block is above the node's header tip, e.g. before the first sync),
   * `UNAVAILABLE` (no verifiable answer in time) or `INVALID_PROOF` (the only answers came
   * with proofs that failed the check).
   */
  verifyTransaction(txid: string, options?: VerifyOptions): Promise<VerifiedTransaction>;

  /** A snapshot of the node's state. */
  status(): NodeStatus;

  /**
   * The blocks this node holds (its shard): those its core node counts as held, read back
   * from IndexedDB and checked against their hashes, sorted by height. A block the node counts
   * but IndexedDB no longer has (or has corrupt) is left out.
   * Rejects with `STORAGE` (IndexedDB failed) or `UNAVAILABLE` (the node is stopped).
   */
  shard(): Promise<ShardBlock[]>;

  /**
   * A block's raw bytes, by hash (64 hex digits, display order), whether this node holds it
   * or not (S17): a held block is read from IndexedDB; another is fetched from a member that
   * holds it into the node's bounded block cache (evicting an unused cached block), checked
   * against its header (hash, Merkle root, witness commitment) before it resolves.
   * Rejects with `BAD_INPUT` (malformed hash), `NOT_FOUND` (not in the node's best chain),
   * `NOT_SYNCED` (the node's cluster view has not been given that part of the chain yet) or
   * `UNAVAILABLE` (no holder delivered a valid block in time, or the cache is busy).
   */
  getBlock(blockHash: string): Promise<Uint8Array>;

  /**
   * Where the placement of this node's cluster view puts each block from `fromHeight` to
   * `toHeight` (at most 10,000 heights; clamped to the header tip), and which of them this
   * node holds: what a shard map draws.
   * Rejects with `BAD_INPUT` (not integers, `toHeight < fromHeight`, too many heights) or
   * `UNAVAILABLE` (the node is stopped).
   */
  shardMap(fromHeight: number, toHeight: number): Promise<ShardMap>;

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
