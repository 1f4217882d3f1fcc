// The shard map (canvas): one row per height, newest at the top; one column per member, in
// member-number order and in the ring's colours. A cell is drawn where the cluster's placement
// gives that height to that member, its colour saying
//   held    — for this tab: it holds the block; for another member: it reported holding its
//             whole shard (its `shardHeld`, or a heartbeat report with no missing block);
//   filling — assigned, not confirmed held yet;
//   spare   — this tab holds a block placement does not give it.
// So each row shows P cells, a new block appears at the top, a repair turns cells from filling
// to held. Long chains show the newest MAX_ROWS heights. Every colour is opaque and every cell
// lies on whole pixels, so what is drawn can be read back exactly (getImageData).
import { memberColour } from "./ring.js";

export const MAX_ROWS = 300;
const LEFT = 52; // height labels
const TOP = 24; // member numbers
const MAX_CANVAS_ROWS_PX = 600;
export const SPARE = "#39424e";
export const EMPTY = "#f1f4f7";
const BACKGROUND = "#ffffff";

/** `colour` mixed with white, `amount` (0–1) of the colour left: the "filling" tint. */
function tint(colour, amount) {
  const n = parseInt(colour.slice(1), 16);
  const mix = (c) => Math.round(255 - (255 - c) * amount);
  return `#${[(n >> 16) & 255, (n >> 8) & 255, n & 255].map((c) => mix(c).toString(16).padStart(2, "0")).join("")}`;
}

/** The window of heights to draw for a header tip. */
export function heightWindow(tipHeight) {
  const toHeight = Math.max(tipHeight, 0);
  return { fromHeight: Math.max(0, toHeight - MAX_ROWS + 1), toHeight };
}

/**
 * Works out each cell's state and draws them. `map` is `await node.shardMap(from, to)`;
 * `details` is `status().memberDetails`; `selfId` this tab's peer id; `width` the room in CSS
 * pixels. Returns the model of what was drawn.
 */
export function drawShardMap(canvas, { map, details, selfId, width }) {
  const inCluster = map.members.length > 0;
  const columns = inCluster
    ? map.members.map((peerId, number) => ({ peerId, number, self: peerId === selfId }))
    : [{ peerId: selfId, number: null, self: true }];
  const complete = columns.map((c) => {
    const d = details.find((x) => x.peerId === c.peerId);
    return Boolean(d && (d.shardHeld || d.report?.missingBlocks === 0));
  });
  const held = new Set(map.held);
  const rows = map.toHeight - map.fromHeight + 1;
  const rowH = Math.max(2, Math.min(12, Math.floor(MAX_CANVAS_ROWS_PX / Math.max(rows, 1))));
  const cellH = rowH >= 5 ? rowH - 1 : rowH;
  const colW = Math.max(10, Math.min(48, Math.floor((width - LEFT) / columns.length)));
  const cellW = colW - 2;
  const palette = {
    held: columns.map((c) => (c.number === null ? SPARE : memberColour(c.number))),
    filling: columns.map((c) => tint(c.number === null ? SPARE : memberColour(c.number), 0.3)),
    spare: SPARE,
    empty: EMPTY,
  };

  // cells[i][col]: the state of height toHeight − i in column col.
  const cells = [];
  for (let i = 0; i < rows; i++) {
    const height = map.toHeight - i;
    const assigned = new Set(map.holders[height - map.fromHeight] ?? []);
    cells.push(columns.map((c, col) => {
      const mine = assigned.has(c.number);
      if (c.self) {
        if (held.has(height)) return mine ? "held" : "spare";
        return mine ? "filling" : null;
      }
      if (!mine) return null;
      return complete[col] ? "held" : "filling";
    }));
  }

  const dpr = window.devicePixelRatio || 1;
  const cssW = LEFT + columns.length * colW;
  const cssH = TOP + rows * rowH + 4;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = BACKGROUND;
  ctx.fillRect(0, 0, cssW, cssH);

  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  columns.forEach((c, col) => {
    const x = LEFT + col * colW;
    ctx.fillStyle = palette.held[col];
    ctx.fillText(c.number === null ? "you" : `${c.number}${c.self ? "*" : ""}`, x + colW / 2, 15);
    ctx.fillStyle = EMPTY;
    ctx.fillRect(x, TOP, cellW, rows * rowH);
  });
  ctx.textAlign = "right";
  ctx.fillStyle = "#5b6b7c";
  const labelEvery = Math.ceil(36 / rowH);
  for (let i = 0; i < rows; i += labelEvery) ctx.fillText(String(map.toHeight - i), LEFT - 6, TOP + i * rowH + Math.min(rowH, 10));

  for (let i = 0; i < rows; i++) {
    const y = TOP + i * rowH;
    cells[i].forEach((state, col) => {
      if (!state) return;
      ctx.fillStyle = state === "spare" ? SPARE : palette[state][col];
      ctx.fillRect(LEFT + col * colW, y, cellW, cellH);
    });
  }

  return {
    tipHeight: map.tipHeight,
    fromHeight: map.fromHeight,
    toHeight: map.toHeight,
    columns,
    geometry: { left: LEFT, top: TOP, colW, rowH, cellW, cellH, dpr },
    palette,
    cells,
  };
}
