#!/usr/bin/env bash
# `npm start`: installs what is missing, builds the browser package and the relay, then runs the
# relay with its embedded regtest chain serving the demo page — and, with --tabs N, N headless
# tabs of the demo page in one Chromium, each its own node, so that the page a person opens
# finds a live cluster at once. Ctrl-C stops everything it started. `npm start -- --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"

usage() {
  cat <<'EOF'
Usage: npm start -- [OPTIONS]

Runs a Shoal relay (an archive with a generated regtest chain) that serves the demo page, and
optionally headless tabs of that page, each a light node, so the page you open sees a cluster.

Options:
  --tabs N                 also open N headless tabs of the demo page (0-32; default 0)
  --http HOST:PORT         where the relay serves the page (default 127.0.0.1:8080, or $SHOAL_HTTP)
  --listen HOST:PORT       where the relay listens for WebRTC-direct (UDP) and WebSocket (TCP)
                           (default 0.0.0.0:9090)
  --data-dir DIR           the relay's data directory (default ~/.cache/shoal/demo-relay, or
                           $SHOAL_DATA); its chain and identity survive restarts
  --blocks N               blocks of a fresh chain (default 100)
  --block-interval SECS    seconds between new blocks (default 30; 0: none)
  --cluster-size K         the tabs' clusterSize (default: the page's, 8)
  --replicas P             the tabs' replicas (default: the page's, 3)
  --heartbeat-ms MS        the tabs' heartbeatIntervalMs (default: the page's, 5000)
  --offline-after-ms MS    the tabs' offlineAfterMs: how soon a closed tab is declared lost
                           (default: the page's, 20000)
  --no-build               use the relay and dist/ already built (tests)
  -h, --help               this help

The tab options go into the page's address as a query (?clusterSize=5&replicas=2…); open the
printed address so that your tab uses the same ones. While tabs run, type on standard input:
  close [I]   close headless tab I (default: the newest): watch the cluster lose and repair it
  open        open one more headless tab
  list        each headless tab's cluster, member number and blocks
Ctrl-C stops the tabs, the browser and the relay.
EOF
}

die() { printf 'npm start: %s\n(npm start -- --help lists the options)\n' "$*" >&2; exit 2; }
integer() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a whole number, got '$2'"; }

http="${SHOAL_HTTP:-127.0.0.1:8080}"
data="${SHOAL_DATA:-$SHOAL_CACHE/demo-relay}"
tabs=0
blocks=""
interval=""
listen=""
build=1
query=()
while [[ $# -gt 0 ]]; do
  opt="$1"
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --no-build) build=0; shift; continue ;;
  esac
  [[ $# -ge 2 ]] || die "$opt needs a value"
  value="$2"
  shift 2
  case "$opt" in
    --tabs) integer "$opt" "$value"; (( value <= 32 )) || die "--tabs is at most 32, got $value"; tabs=$value ;;
    --http) [[ "$value" =~ ^[^:]+:[0-9]+$ ]] || die "--http must be HOST:PORT, got '$value'"; http="$value" ;;
    --data-dir) data="$value" ;;
    --listen) [[ "$value" =~ ^[^:]+:[0-9]+$ ]] || die "--listen must be HOST:PORT, got '$value'"; listen="$value" ;;
    --blocks) integer "$opt" "$value"; blocks="$value" ;;
    --block-interval) integer "$opt" "$value"; interval="$value" ;;
    --cluster-size) integer "$opt" "$value"; query+=("clusterSize=$value") ;;
    --replicas) integer "$opt" "$value"; query+=("replicas=$value") ;;
    --heartbeat-ms) integer "$opt" "$value"; query+=("heartbeatIntervalMs=$value") ;;
    --offline-after-ms) integer "$opt" "$value"; query+=("offlineAfterMs=$value") ;;
    *) die "unknown option '$opt'" ;;
  esac
done

if [[ $build == 1 ]]; then
  bash scripts/setup.sh --browser
  [[ -d node_modules ]] || npm ci --no-audit --no-fund >&2
  npm run --silent build
  cargo build -p shoal-relay --locked >&2
fi
relay_bin="${SHOAL_RELAY_BIN:-}"
if [[ -z "$relay_bin" ]]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
  relay_bin="$target_dir/debug/shoal-relay"
fi
[[ -x "$relay_bin" ]] || die "no relay at $relay_bin (run without --no-build)"

port="${http##*:}"
host="${http%:*}"
[[ "$host" == 0.0.0.0 ]] && host=127.0.0.1
url="http://$host:$port/"
if [[ ${#query[@]} -gt 0 ]]; then
  url+="?$(IFS='&'; echo "${query[*]}")"
fi

args=(serve --data-dir "$data" --http "$http" --www www --dist dist)
[[ -n "$listen" ]] && args+=(--listen "$listen")
[[ -n "$blocks" ]] && args+=(--initial-blocks "$blocks")
[[ -n "$interval" ]] && args+=(--block-interval-secs "$interval")

exec 3<&0
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

"$relay_bin" "${args[@]}" &
pids+=($!)
# Bounded wait for the page to be served.
for _ in $(seq 1 150); do
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://$host:$port/relay-addrs.json"; then
    break
  fi
  kill -0 "${pids[0]}" 2>/dev/null || die "the relay exited (see its log above)"
  sleep 0.2
done

echo
echo "  Shoal demo: open $url in a browser (Ctrl-C stops everything)"
echo
if (( tabs > 0 )); then
  # A background job's standard input would be /dev/null: hand it ours, for its commands.
  node scripts/demo-tabs.mjs --url "$url" --tabs "$tabs" <&3 &
  pids+=($!)
fi
# Until the relay ends (or Ctrl-C).
wait "${pids[0]}"
