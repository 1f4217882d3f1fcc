// The node's events told as sentences: "member 3 went offline", "block 412 stored: 31 KB (from
// member 2)", "repaired 80 blocks from members 1 and 4". Blocks stored that are not new tip
// blocks (a shard filling, or a repair) arrive in bursts: those within REPAIR_WINDOW_MS of each
// other become one sentence.

const REPAIR_WINDOW_MS = 2000;
// A stored block counts as a new tip block if `new-block` announced it this recently.
const NEW_BLOCK_MS = 30_000;
const MAX_LINES = 200;

/** "31 KB", "1.2 MB". */
export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${Math.round(n / 1000)} KB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** "1", "1 and 4", "1, 2 and 4". */
export function listWords(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

export class EventLog {
  /**
   * @param list   the <ol> the sentences go to (newest first)
   * @param who    (peer id, { fresh }) → { kind: "self" | "member" | "relay" | "peer", number?, relay? };
   *               `fresh`: from a new status() rather than one of the last 100 ms
   */
  constructor(list, who) {
    this.list = list;
    this.who = who;
    this.announced = new Map(); // height → when `new-block` said it
    this.batch = null; // { count, bytes, from: Map(label → n), low, high, timer }
    this.lostSeen = false;
    this.members = null; // the view as the last `cluster` event gave it
    this.told = new Set(); // members whose loss this tab declared (and said)
    this.synced = false;
  }

  /** Writes one sentence (newest on top). */
  say(text, kind = "") {
    const item = document.createElement("li");
    const time = document.createElement("time");
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, ` ${text}`);
    if (kind) item.className = kind;
    this.list.prepend(item);
    while (this.list.children.length > MAX_LINES) this.list.lastChild.remove();
  }

  /** How a peer is named in a sentence: "member 3", "the relay", "this tab". */
  name(peerId) {
    const w = this.who(peerId);
    if (w.kind === "self") return "this tab";
    if (w.kind === "member") return `member ${w.number}`;
    if (w.kind === "relay") return "the relay";
    return `peer ${peerId.slice(-6)}`;
  }

  /** Feeds one node event. */
  on(type, detail) {
    switch (type) {
      case "relay":
        this.say(`relay ${detail.peerId.slice(-6)} ${detail.connected ? `connected${detail.transport ? ` (${detail.transport})` : ""}` : "disconnected"}`, detail.connected ? "" : "bad");
        break;
      case "sync-progress":
        if (detail.synced && !this.synced) this.say(`headers synced up to block ${detail.height}`);
        this.synced = detail.synced;
        break;
      case "cluster": {
        // Members that left the view: lost to another member's heartbeats if not to ours.
        const before = this.members ?? [];
        this.members = detail.members;
        before.forEach((peerId, number) => {
          if (!detail.members.includes(peerId) && !this.told.delete(peerId) && detail.clusterId !== null) {
            this.say(`member ${number} left the cluster (${peerId.slice(-6)}, lost)`, "bad");
          }
        });
        if (detail.clusterId === null) this.say("this tab left its cluster", "bad");
        else this.say(`cluster ${detail.clusterId.slice(0, 8)}: ${detail.members.length} members, this tab is member ${detail.memberNumber}`);
        break;
      }
      case "member-joined":
        // The node publishes its new view right after its events: name the member from it.
        setTimeout(() => {
          const w = this.who(detail.peerId, { fresh: true });
          const what = w.relay ? "relay" : "tab";
          this.say(w.kind === "member" ? `${what} joined as member ${w.number}` : `a member joined (${detail.peerId.slice(-6)})`, "good");
        }, 0);
        break;
      case "holder-faulty":
        this.say(`${this.name(detail.peerId)} could not prove it holds its blocks: dropped and kept out`, "bad");
        break;
      case "member-lost":
        this.lostSeen = true;
        this.told.add(detail.peerId);
        this.say(`${this.name(detail.peerId)} went offline`, "bad");
        break;
      case "failure-domains":
        this.say(detail.spread
          ? `the cluster spans ${detail.devices} devices: every block's ${detail.replicas} copies are on distinct devices`
          : `the cluster spans only ${detail.devices} device${detail.devices === 1 ? "" : "s"}: some blocks have two copies on one device`, detail.spread ? "good" : "bad");
        break;
      case "new-block":
        this.announced.set(detail.height, performance.now());
        for (const [h, t] of this.announced) if (performance.now() - t > NEW_BLOCK_MS) this.announced.delete(h);
        this.say(`new block ${detail.height}`);
        break;
      case "block-stored":
        this.stored(detail);
        break;
      default:
        break;
    }
  }

  stored({ height, bytes, from }) {
    const source = from ? this.name(from) : null;
    if (this.announced.has(height)) {
      this.say(`block ${height} stored: ${formatBytes(bytes)}${source ? ` (from ${source})` : ""}`);
      return;
    }
    if (!this.batch) {
      this.batch = { count: 0, bytes: 0, from: new Map(), low: height, high: height, timer: 0 };
    }
    const b = this.batch;
    b.count++;
    b.bytes += bytes;
    b.low = Math.min(b.low, height);
    b.high = Math.max(b.high, height);
    if (source) b.from.set(source, (b.from.get(source) ?? 0) + 1);
    clearTimeout(b.timer);
    b.timer = setTimeout(() => this.flush(), REPAIR_WINDOW_MS);
  }

  /** Ends a burst of stored blocks with one sentence. */
  flush() {
    const b = this.batch;
    this.batch = null;
    const members = [...b.from.keys()].filter((s) => s.startsWith("member ")).map((s) => s.slice(7)).sort((x, y) => x - y);
    const others = [...b.from.keys()].filter((s) => !s.startsWith("member "));
    const sources = [
      ...(members.length ? [`member${members.length > 1 ? "s" : ""} ${listWords(members)}`] : []),
      ...others,
    ];
    const verb = this.lostSeen ? "repaired" : "stored";
    const blocks = b.count === 1 ? `block ${b.low}` : `${b.count} blocks (${b.low}–${b.high})`;
    this.say(`${verb} ${blocks}: ${formatBytes(b.bytes)}${sources.length ? ` from ${listWords(sources)}` : ""}`, "good");
  }
}
