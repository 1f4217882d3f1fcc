#!/usr/bin/env bash
# `npm run build`: compiles the browser node (crate/web) to wasm with the `wasm-release`
# profile, runs the wasm-bindgen CLI of exactly the Cargo.lock version (`--target web`) and
# assembles the npm package in dist/:
#   dist/index.js, dist/index.d.ts     the public ES module and its types (crate/web/js/)
#   dist/wasm/                         wasm-bindgen's glue and the .wasm
#   dist/.features                     the cargo features built in (empty for the shipped package)
#
#   scripts/build-web.sh            the shipped package
#   scripts/build-web.sh --probes   a test and bench build: with the transfer probes
#                                   (`probeTransfer`, `probeDownload`) that the e2e tests and
#                                   bench.mjs use
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
bash scripts/setup.sh --browser

bin_dir=$(cat "$SHOAL_CACHE/wasm-bindgen-bin")
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')

features=""
if [[ "${1:-}" == --probes ]]; then
  features=probes
fi
cargo build -p shoal-web --target wasm32-unknown-unknown --profile wasm-release --locked \
  ${features:+--features "$features"} >&2
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/shoal_web.wasm"

rm -rf dist
mkdir -p dist/wasm
"$bin_dir/wasm-bindgen" --target web --out-dir dist/wasm --out-name shoal_web "$wasm"
cp crate/web/js/index.js crate/web/js/index.d.ts dist/
echo "$features" > dist/.features

raw=$(stat -c %s dist/wasm/shoal_web_bg.wasm)
gz=$(gzip -9 -c dist/wasm/shoal_web_bg.wasm | wc -c)
echo "build: dist/wasm/shoal_web_bg.wasm is $raw bytes ($gz gzipped)" >&2
