// `npm start -- --tabs N`: opens N headless tabs of the demo page in one Chromium, each its own
// light node, so that the page a person opens finds a cluster already there. Each tab has a
// browser context of its own (its own storage, so its own identity, quota and device id): the
// tabs stand for other people's browsers. Tabs of one context would be one device (issue 17) —
// placement would then keep at most one copy of a block on all of them together and put the
// other copies on the person's own tab, which would end up holding nearly every block. Standard input takes commands (`close [I]`,
// `open`, `list`); every few seconds a line says how the tabs stand. SIGINT or SIGTERM closes
// the tabs and the browser. Started by scripts/start.sh, which owns the relay.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

function parse(argv) {
  const options = { url: null, tabs: 0, statusEverySecs: 10 };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name} needs a value`);
    if (name === "--url") options.url = new URL(value).href;
    else if (name === "--tabs") options.tabs = Number(value);
    else if (name === "--status-every-secs") options.statusEverySecs = Number(value);
    else throw new Error(`unknown option ${name}`);
  }
  if (!options.url) throw new Error("--url is required");
  if (!Number.isInteger(options.tabs) || options.tabs < 1 || options.tabs > 32) throw new Error("--tabs must be 1 to 32");
  return options;
}

const options = parse(process.argv.slice(2));
const origin = new URL(options.url).origin;
const say = (line) => console.log(`[tabs] ${line}`);

const browser = await chromium.launch({
  executablePath: process.env.SHOAL_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Closed by us, in order, on SIGINT/SIGTERM.
  handleSIGINT: false,
  handleSIGTERM: false,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // Web Locks (one identity per tab) need a secure context; localhost is one already, an
    // address given with --http may not be.
    `--unsafely-treat-insecure-origin-as-secure=${origin}`,
    // Hidden tabs are not to be throttled: they are nodes with heartbeats to keep.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
  ],
});
const tabs = []; // { n, page }
let knownErrorSaid = false;
let next = 1;

async function open() {
  const n = next++;
  const page = await (await browser.newContext()).newPage();
  page.on("pageerror", (error) => {
    // Known and not ours (rust-libp2p #6551: libp2p-webrtc-websys's data-channel callbacks
    // can fire after their Rust closure was dropped; harmless): said once, not per occurrence.
    if (error.message.includes("closure invoked recursively or after being dropped")) {
      if (!knownErrorSaid) say(`tab ${n}: page error (known libp2p issue rust-libp2p#6551, harmless; not repeated): ${error.message}`);
      knownErrorSaid = true;
      return;
    }
    say(`tab ${n}: page error: ${error.message}`);
  });
  page.on("crash", () => say(`tab ${n}: crashed`));
  await page.goto(options.url);
  tabs.push({ n, page });
  say(`tab ${n} opened`);
}

async function describe({ n, page }) {
  try {
    const s = await page.evaluate(() => window.shoalNode?.status() ?? null);
    if (!s) return `tab ${n}: starting`;
    const where = s.clusterId ? `member ${s.memberNumber} of ${s.members.length} in ${s.clusterId.slice(0, 8)}` : "not in a cluster";
    return `tab ${n}: ${where}, ${s.heldBlocks} blocks (${(s.storedBytes / 1e6).toFixed(2)} MB), tip ${s.tip.height}`;
  } catch (error) {
    return `tab ${n}: ${error.message.split("\n")[0]}`;
  }
}

async function list() {
  for (const line of await Promise.all(tabs.map(describe))) say(line);
}

async function close(which) {
  const i = which === undefined ? tabs.length - 1 : tabs.findIndex((t) => t.n === which);
  if (i < 0 || !tabs[i]) return say(`no tab ${which ?? ""}; tabs: ${tabs.map((t) => t.n).join(", ") || "none"}`);
  const [tab] = tabs.splice(i, 1);
  await tab.page.context().close();
  say(`tab ${tab.n} closed: its cluster will declare it lost and copy its blocks again`);
}

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  say("closing the tabs and the browser");
  await browser.close().catch(() => {});
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

for (let i = 0; i < options.tabs; i++) await open();
say(`${options.tabs} tabs of ${options.url}; type "close [I]", "open" or "list"`);

const timer = setInterval(() => list().catch(() => {}), options.statusEverySecs * 1000);
timer.unref();

createInterface({ input: process.stdin }).on("line", async (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  try {
    if (command === "close") await close(arg === undefined ? undefined : Number(arg));
    else if (command === "open") await open();
    else if (command === "list") await list();
    else if (command) say(`unknown command "${command}": close [I], open, list`);
  } catch (error) {
    say(`${command}: ${error.message}`);
  }
});
// Runs until SIGINT/SIGTERM: the interval is unref'd, the browser connection keeps the process.
