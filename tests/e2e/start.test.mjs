// `npm start -- --tabs N` (issue 13, item 6): the start script runs the demo relay and N headless
// tabs of the demo page, which form a cluster; its standard input closes a tab, which the
// cluster then drops; Ctrl-C (SIGINT to its process group, as a terminal sends it) stops the
// tabs, the browser and the relay. `--help` lists the options; a bad option is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { HOST, RELAY_BIN, tempDir } from "./harness.mjs";

const PORT = 18180; // the start script's own, apart from the harness relays'
const TABS = 3;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("--help lists the options; a bad option is refused with a clear message", () => {
  const help = spawnSync("bash", ["scripts/start.sh", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  for (const option of ["--tabs N", "--http", "--cluster-size", "--offline-after-ms", "close [I]"]) {
    assert.ok(help.stdout.includes(option), `--help mentions ${option}`);
  }
  for (const [args, message] of [
    [["--tabs", "many"], "--tabs must be a whole number, got 'many'"],
    [["--tabs", "40"], "--tabs is at most 32"],
    [["--http", "nowhere"], "--http must be HOST:PORT"],
    [["--frobnicate", "1"], "unknown option '--frobnicate'"],
    [["--tabs"], "--tabs needs a value"],
  ]) {
    const run = spawnSync("bash", ["scripts/start.sh", ...args], { encoding: "utf8" });
    assert.equal(run.status, 2, `${args.join(" ")}: exit status`);
    assert.ok(run.stderr.includes(message), `${args.join(" ")}: ${run.stderr}`);
  }
});

test("npm start -- --tabs 3 opens three tabs that form a cluster; one closed is dropped; Ctrl-C stops everything", async (t) => {
  const origin = `http://${HOST}:${PORT}`;
  const child = spawn("bash", [
    "scripts/start.sh", "--no-build", "--tabs", String(TABS), "--http", `${HOST}:${PORT}`,
    "--data-dir", tempDir("start"), "--blocks", "30", "--block-interval", "0",
    "--cluster-size", String(TABS), "--replicas", "2", "--heartbeat-ms", "1000", "--offline-after-ms", "4000",
  ], {
    detached: true, // its own process group, as a terminal's foreground job
    env: { ...process.env, SHOAL_RELAY_BIN: RELAY_BIN, RUST_LOG: "warn" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const lines = [];
  let buffered = "";
  const take = (d) => {
    buffered += d.toString();
    const parts = buffered.split("\n");
    buffered = parts.pop();
    lines.push(...parts);
  };
  child.stdout.on("data", take);
  child.stderr.on("data", take);
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const browsers = () => {
    // The tabs' Chromium is started with this origin among its flags; nothing else is.
    const found = spawnSync("pgrep", ["-f", `unsafely-treat-insecure-origin-as-secure=${origin}`], { encoding: "utf8" });
    return found.stdout.trim().split("\n").filter(Boolean);
  };
  /** The latest status line of each tab (`[tabs] tab I: member M of K in ID, …`). */
  const latest = () => {
    const byTab = new Map();
    for (const line of lines) {
      const m = line.match(/^\[tabs\] tab (\d+): member (\d+) of (\d+) in ([0-9a-f]+)/);
      if (m) byTab.set(Number(m[1]), { member: Number(m[2]), of: Number(m[3]), cluster: m[4] });
      const c = line.match(/^\[tabs\] tab (\d+) closed/);
      if (c) byTab.delete(Number(c[1]));
    }
    return byTab;
  };
  const waitFor = async (what, ms, done) => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (child.exitCode !== null) assert.fail(`the start script exited while waiting for ${what}:\n${lines.slice(-30).join("\n")}`);
      if (done()) return;
      assert.ok(Date.now() < deadline, `${what} within ${ms} ms:\n${lines.slice(-30).join("\n")}`);
      child.stdin.write("list\n");
      await sleep(1000);
    }
  };
  try {
    await waitFor("the page address", 60_000, () => lines.some((l) => l.includes(`open ${origin}/?clusterSize=${TABS}&replicas=2`)));
    await waitFor(`${TABS} tabs in one cluster of ${TABS}`, 120_000, () => {
      const tabs = [...latest().values()];
      return tabs.length === TABS && tabs.every((x) => x.of === TABS && x.cluster === tabs[0].cluster);
    });
    t.diagnostic(JSON.stringify([...latest()]));
    child.stdin.write("close 3\n");
    await waitFor("tab 3 closed", 20_000, () => lines.some((l) => l.startsWith("[tabs] tab 3 closed")));
    await waitFor("the two others in a cluster of two", 60_000, () => {
      const tabs = [...latest().values()];
      return tabs.length === 2 && tabs.every((x) => x.of === 2);
    });
    assert.ok(browsers().length > 0, "the tabs' browser runs");
  } finally {
    // Ctrl-C: SIGINT to the whole process group.
    try { process.kill(-child.pid, "SIGINT"); } catch { /* already gone */ }
    const ended = await Promise.race([exited, sleep(30_000).then(() => null)]);
    if (!ended) {
      try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ }
      for (const pid of browsers()) try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ }
      assert.fail(`Ctrl-C did not stop the start script within 30 s:\n${lines.slice(-30).join("\n")}`);
    }
  }
  // Nothing it started is left: no process of its group, no browser, nothing serving the page.
  let groupAlive = true;
  try { process.kill(-child.pid, 0); } catch { groupAlive = false; }
  assert.equal(groupAlive, false, "no process of the start script's group is left");
  for (let i = 0; i < 50 && browsers().length > 0; i++) await sleep(200);
  assert.deepEqual(browsers(), [], "the tabs' browser is gone");
  await assert.rejects(fetch(`${origin}/relay-addrs.json`), "the relay is gone");
  assert.ok(lines.some((l) => l.includes("closing the tabs and the browser")), "the tabs closed in order");
});
