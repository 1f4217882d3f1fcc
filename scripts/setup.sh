#!/usr/bin/env bash
# Installs what the build and the tests need and the machine lacks. Idempotent; quick when
# everything is there. Everything comes from rustup, cargo (crates.io), apt or npm.
#
#   scripts/setup.sh            the Rust side: the wasm32 target
#   scripts/setup.sh --browser  also wasm-bindgen-cli (the Cargo.lock version) and Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
mkdir -p "$SHOAL_CACHE"

log() { printf 'setup: %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown >&2
fi

if [[ "${1:-}" == "--browser" ]]; then
  # wasm-bindgen-cli must be exactly the version Cargo.lock resolved for the wasm-bindgen crate.
  ver=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  if [[ -z "$ver" ]]; then
    log "Cargo.lock has no wasm-bindgen crate; nothing to install"
  else
    root="$SHOAL_CACHE/wasm-bindgen-$ver"
    if [[ ! -x "$root/bin/wasm-bindgen" ]]; then
      log "installing wasm-bindgen-cli $ver into $root (about 2 minutes)"
      cargo install wasm-bindgen-cli --version "$ver" --locked --root "$root" >&2
    fi
    echo "$root/bin" > "$SHOAL_CACHE/wasm-bindgen-bin"
  fi
  if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    log "installing Debian's chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium chromium-driver >&2
  fi
  # Also when package-lock.json changed since the last install (npm's own record of it,
  # node_modules/.package-lock.json, is older): a clone that had node_modules gets new ones.
  if [[ -f package-lock.json ]] && { [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; }; then
    log "installing npm dev dependencies"
    npm ci --no-audit --no-fund >&2
  fi
  # bcoin, the independent Bitcoin node of the Bitcoin tests (tests/bitcoin/bcoin-node.mjs), has
  # a folder and a lockfile of its own so that it can install without install scripts: leveldown
  # 4's native build fails on Node 20 (a stub stands in: the node runs in memory). The two native
  # modules it cannot do without, mrmr and bsip, are built with npm's node-gyp, against this
  # Node's own headers when it has them. Again when the lockfile or Node changed since.
  bcoin_dir=tests/bitcoin/bcoin
  bcoin_stamp="$bcoin_dir/node_modules/.shoal-installed"
  if [[ ! -f "$bcoin_stamp" ]] || [[ "$bcoin_dir/package-lock.json" -nt "$bcoin_stamp" ]] ||
    [[ "$(cat "$bcoin_stamp")" != "$(node --version)" ]]; then
    log "installing bcoin for the Bitcoin tests ($bcoin_dir)"
    node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
    if [[ -f "$node_prefix/include/node/node_version.h" ]]; then
      export npm_config_nodedir="$node_prefix"
    fi
    (cd "$bcoin_dir" && npm ci --ignore-scripts --no-audit --no-fund &&
      npm rebuild --ignore-scripts=false mrmr bsip) >&2
    node --version > "$bcoin_stamp"
  fi
fi
