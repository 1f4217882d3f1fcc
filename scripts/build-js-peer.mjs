// Bundles the js-libp2p peer of the e2e tests (tests/e2e/js-peer/) for the browser with
// esbuild into test-artifacts/js-peer/ (ignored): peer.js (an ES module) and its source map.
// Skipped when the bundle is newer than its sources, the lock file and this script.
//
//   node scripts/build-js-peer.mjs          build if stale, print the bundle's path
//   node scripts/build-js-peer.mjs --force  build anyway
// From a test: `import { buildJsPeer } from "../../scripts/build-js-peer.mjs"`.
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "tests/e2e/js-peer");
export const JS_PEER_DIR = join(root, "test-artifacts/js-peer");

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

/** Builds the bundle when missing or stale; returns the output folder. */
export async function buildJsPeer({ force = false } = {}) {
  const out = join(JS_PEER_DIR, "peer.js");
  const inputs = [
    ...readdirSync(src).map((f) => join(src, f)),
    join(root, "package-lock.json"),
    fileURLToPath(import.meta.url),
  ];
  if (!force && mtime(out) > Math.max(...inputs.map(mtime))) return JS_PEER_DIR;
  const { build } = await import("esbuild");
  mkdirSync(JS_PEER_DIR, { recursive: true });
  await build({
    entryPoints: [join(src, "peer.mjs")],
    outfile: out,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    sourcemap: true,
    logLevel: "warning",
  });
  return JS_PEER_DIR;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = await buildJsPeer({ force: process.argv.includes("--force") });
  console.log(join(dir, "peer.js"));
}
