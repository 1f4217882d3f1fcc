// The cluster as a picture (SVG): the members on a ring, numbered by member number, this tab
// marked, a member relay drawn as a square and tabs as circles, the archive relays this tab is
// connected to apart from the ring, lines for this tab's links to members (solid: connected;
// dashed: watched by heartbeats without a direct connection) and to relays. A member's state
// is its colour and outline: online, late (no heartbeat for more than two intervals), offline
// (declared lost). A member that left the view stays as a grey dashed ghost for a few seconds;
// one that just joined has a halo.

const SVG = "http://www.w3.org/2000/svg";
export const SIZE = 400;
const CENTRE = { x: 200, y: 222 };
const RADIUS = 128;
const NODE_R = 20;

// Member colours by member number, shared with the shard map (exact hex: the shard map's
// pixels are checked against them).
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f"];

/** The colour of member number `n` (beyond ten, a hue of its own). */
export function memberColour(n) {
  if (n < COLOURS.length) return COLOURS[n];
  const hue = (n * 137) % 360;
  return hslHex(hue, 0.55, 0.45);
}

function hslHex(h, s, l) {
  const k = (n) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1))));
  return `#${[f(0), f(8), f(4)].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

/** Where member `index` of `count` sits on the ring (number 0 at the top, clockwise). */
export function ringPosition(index, count) {
  const angle = -Math.PI / 2 + (2 * Math.PI * index) / Math.max(count, 1);
  return { x: Math.round(CENTRE.x + RADIUS * Math.cos(angle)), y: Math.round(CENTRE.y + RADIUS * Math.sin(angle)) };
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const short = (peerId) => `…${peerId.slice(-6)}`;

/**
 * Draws `picture` into `svg`:
 * - `members`: [{ peerId, number, self, relay, state: "online"|"late"|"offline"|"unknown",
 *   connected, watched, joined (recently) }] in member-number order;
 * - `ghosts`: [{ peerId, number, x, y, relay }] members that just left the view;
 * - `relays`: [{ peerId, transport, archive }] relays this tab is connected to, not members;
 * - `clusterSize`: the most members the cluster can have.
 */
export function drawRing(svg, picture) {
  const { members, ghosts, relays } = picture;
  svg.setAttribute("viewBox", `0 0 ${SIZE} ${SIZE}`);
  const links = el("g", { class: "links" });
  const nodes = el("g", { class: "nodes" });
  svg.replaceChildren(links, nodes);

  nodes.append(el("circle", { class: "orbit", cx: CENTRE.x, cy: CENTRE.y, r: RADIUS }));
  if (members.length === 0) {
    nodes.append(el("text", { class: "note", x: CENTRE.x, y: CENTRE.y, "text-anchor": "middle" }, "not in a cluster (yet)"));
  }

  const self = members.find((m) => m.self);
  const selfAt = self ? ringPosition(members.indexOf(self), members.length) : { x: CENTRE.x, y: CENTRE.y };
  if (!self) {
    const alone = drawNode({ peerId: picture.selfId, number: null, self: true, relay: false, state: "online" }, selfAt, "#5b6b7c");
    alone.setAttribute("class", "outsider self");
    nodes.append(alone);
  }

  // The relays this tab uses, apart from the ring in its top left corner.
  relays.forEach((r, i) => {
    const at = { x: 26, y: 26 + i * 46 };
    links.append(el("line", { class: "link relay-link", x1: selfAt.x, y1: selfAt.y, x2: at.x, y2: at.y }));
    const g = el("g", { class: "relay", "data-peer-id": r.peerId });
    g.append(
      el("polygon", { points: hexagon(at, 18) }),
      el("text", { x: at.x, y: at.y + 4, "text-anchor": "middle" }, "R"),
      el("text", { class: "label", x: at.x + 24, y: at.y + 4 }, `${r.archive ? "archive" : "relay"} ${short(r.peerId)}`),
    );
    nodes.append(g);
  });

  members.forEach((m, i) => {
    const at = ringPosition(i, members.length);
    if (!m.self && self && (m.connected || m.watched)) {
      const cls = ["link", m.connected ? "connected" : "indirect", m.watched ? `watched ${m.state}` : ""].join(" ");
      links.append(el("line", { class: cls, x1: selfAt.x, y1: selfAt.y, x2: at.x, y2: at.y, "data-peer-id": m.peerId }));
    }
    nodes.append(drawNode(m, at, memberColour(m.number)));
  });

  // Ghosts stand apart in the bottom right corner, clear of the renumbered members.
  for (const [i, g] of ghosts.entries()) {
    const at = { x: SIZE - 30, y: SIZE - 48 - i * 58 };
    const ghost = drawNode({ ...g, state: "offline", self: false }, at, "#b8c2cc");
    ghost.setAttribute("class", "ghost");
    nodes.append(ghost);
  }
}

function hexagon({ x, y }, r) {
  return Array.from({ length: 6 }, (_, k) => {
    const a = (Math.PI / 3) * k;
    return `${(x + r * Math.cos(a)).toFixed(1)},${(y + r * Math.sin(a)).toFixed(1)}`;
  }).join(" ");
}

function drawNode(m, at, colour) {
  const g = el("g", {
    class: `member ${m.state}${m.self ? " self" : ""}${m.joined ? " joined" : ""}`,
    "data-peer-id": m.peerId,
    "data-number": m.number ?? "",
    "data-state": m.state,
    "data-kind": m.relay ? "relay" : "tab",
  });
  const fill = m.state === "offline" ? "#d5dde5" : colour;
  if (m.joined) g.append(el("circle", { class: "halo", cx: at.x, cy: at.y, r: NODE_R + 8 }));
  if (m.relay) {
    g.append(el("rect", { class: "shape", x: at.x - NODE_R, y: at.y - NODE_R, width: 2 * NODE_R, height: 2 * NODE_R, rx: 3, fill }));
  } else {
    g.append(el("circle", { class: "shape", cx: at.x, cy: at.y, r: NODE_R, fill }));
  }
  g.append(el("text", { class: "number", x: at.x, y: at.y + 5, "text-anchor": "middle" }, m.number ?? "–"));
  const below = at.y > CENTRE.y ? at.y + NODE_R + 14 : at.y - NODE_R - 6;
  const caption = `${m.self ? "this tab " : m.relay ? "relay " : ""}${short(m.peerId ?? "")}${m.state === "late" ? " (late)" : m.state === "offline" ? " (offline)" : ""}`;
  // Near the right edge a caption ends at the node rather than centring on it.
  const anchor = at.x > SIZE - 70 ? { x: at.x + NODE_R, a: "end" } : { x: at.x, a: "middle" };
  g.append(el("text", { class: "label", x: anchor.x, y: below, "text-anchor": anchor.a }, caption));
  const title = el("title", {}, `${m.peerId}\nmember ${m.number ?? "–"} · ${m.state}`);
  g.append(title);
  return g;
}
