#!/usr/bin/env bash
# `npm start`: installs what is missing, builds the browser package and the relay, then runs the
# relay with its embedded regtest chain (new blocks every 30 s) serving the demo page.
#   SHOAL_HTTP=127.0.0.1:8080  where the page is served
#   SHOAL_DATA=<dir>           the relay's data dir (identity, certificate, chain)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
http="${SHOAL_HTTP:-127.0.0.1:8080}"
data="${SHOAL_DATA:-$SHOAL_CACHE/demo-relay}"

bash scripts/setup.sh --browser
[[ -d node_modules ]] || npm ci --no-audit --no-fund >&2
npm run --silent build
cargo build -p shoal-relay --locked >&2
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')

echo
echo "  Shoal demo: open http://$http/ in a browser (Ctrl-C stops the relay)"
echo
exec "$target_dir/debug/shoal-relay" serve --data-dir "$data" --http "$http" --www www --dist dist
