#!/usr/bin/env bash
# `npm test`: sets up what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked
step "shoal-core builds for wasm32-unknown-unknown"
cargo build -p shoal-core --target wasm32-unknown-unknown --locked
step "shoal-web: clippy for wasm32 (warnings are errors)"
cargo clippy -p shoal-web --target wasm32-unknown-unknown --all-targets --locked -- -D warnings
step "shoal-web: wasm-bindgen tests in headless Chromium (IndexedDB store)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$(cat "$SHOAL_CACHE/wasm-bindgen-bin")/wasm-bindgen-test-runner" \
  CHROMEDRIVER=/usr/bin/chromedriver \
  cargo test -p shoal-web --target wasm32-unknown-unknown --locked
step "shoal-web: clippy for wasm32 with the test build's transfer probes"
cargo clippy -p shoal-web --target wasm32-unknown-unknown --all-targets --features probes --locked -- -D warnings
step "the package as shipped (npm run build): no transfer probes in it"
npm run --silent build
node -e 'const s=require("fs").readFileSync("dist/wasm/shoal_web.js","utf8"); if (/probeTransfer|probeDownload/.test(s)) { console.error("the shipped package exports a probe"); process.exit(1) }'
step "the test build (wasm-release with the probes the e2e tests use, dist/)"
bash scripts/build-web.sh --probes
step "end to end: Chromium pages against a relay, in a network namespace (tests/e2e)"
bash tests/e2e/run.sh
