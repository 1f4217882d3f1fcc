// The demo wallet: starts a light node on the relay that serves this page, shows its status
// and header-sync progress, verifies transactions and logs the node's events.
import { LightNode } from "/dist/index.js";

const $ = (id) => document.getElementById(id);

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $("log").prepend(item);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

function showStatus(node) {
  const s = node.status();
  const rows = {
    "peer id": s.peerId,
    network: s.network,
    relays: s.relays.map((r) => `${r.peerId.slice(0, 16)}… (${r.transport})`).join(", ") || "none",
    cluster: s.clusterId
      ? `${s.clusterId.slice(0, 16)}… (member ${s.memberNumber} of ${s.members.length})`
      : "not in a cluster",
    "node peers": s.nodePeers.map((p) => `${p.peerId.slice(0, 16)}…${p.archive ? " (archive)" : ""}`).join(", ") || "none",
    "chain tip": `${s.tip.height}  ${s.tip.hash}`,
    connections: s.connections.map((c) => `${c.peerId.slice(0, 16)}… (${c.role}, ${c.transport})`).join(", ") || "none",
    "held blocks": `${s.heldBlocks} (${s.storedBytes} bytes)`,
    "headers downloaded": `${s.headerBytesDownloaded} bytes`,
    downloaded: `from relays: ${s.downloadedBytes.fromRelays.blocks} block bytes, ${s.downloadedBytes.fromRelays.headers} header bytes; `
      + `from members: ${s.downloadedBytes.fromMembers.blocks} block bytes`,
  };
  $("status").replaceChildren(
    ...Object.entries(rows).flatMap(([k, v]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}

async function main() {
  const { addrs } = await (await fetch("/relay-addrs.json")).json();
  log(`starting; relays: ${addrs.join(" ")}`);
  const node = await LightNode.start({ relays: addrs });
  window.shoalNode = node; // for the console and the end-to-end tests
  log(`started as ${node.status().peerId}`);

  node.addEventListener("sync-progress", ({ detail }) => {
    $("sync").max = Math.max(detail.target ?? detail.height + 1, 1);
    $("sync").value = detail.height;
    $("sync-text").textContent = detail.synced ? `synced at ${detail.height}` : `${detail.height}…`;
    if (detail.synced) $("sync").value = $("sync").max;
    showStatus(node);
  });
  for (const type of ["cluster", "member-lost", "member-joined", "block-stored", "new-block", "relay", "sync-progress"]) {
    node.addEventListener(type, ({ detail }) => log(`${type} ${JSON.stringify(detail)}`));
  }
  setInterval(() => showStatus(node), 500);
  showStatus(node);

  $("verify").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("result").className = "";
    $("result").textContent = "verifying…";
    try {
      const proof = await node.verifyTransaction($("txid").value.trim());
      $("result").textContent = JSON.stringify(proof, null, 2);
      showStatus(node);
      log(`verified ${proof.txid} in block ${proof.height} (${proof.source}${proof.answeredBy ? ` ${proof.answeredBy}` : ""})`);
    } catch (err) {
      $("result").className = "error";
      $("result").textContent = `${err.code ?? "ERROR"}: ${err.message}`;
      log(`verify failed: ${err.code}`);
    }
  });
}

main().catch((err) => {
  log(`failed: ${err.code ?? ""} ${err.message}`);
  const dd = document.createElement("dd");
  dd.className = "error";
  dd.textContent = `${err.code ?? ""} ${err.message}`;
  $("status").replaceChildren(Object.assign(document.createElement("dt"), { textContent: "state" }), dd);
});
