#!/usr/bin/env bash
# End-to-end tests: real Chromium pages against a real relay, inside a network namespace made
# for the run. WebRTC needs a non-loopback interface (TOOLCHAIN.md), so the namespace gets a
# veth pair with addresses of our own (10.77.0.1/24 and 10.77.0.2/24) and a default route on
# it; nothing in it can reach any other network. The namespace, its interfaces and every
# process the tests start (stopped by pid in the tests) go away when this script ends.
#
#   tests/e2e/run.sh            builds what is missing (relay, dist/), then runs node --test
#   tests/e2e/run.sh FILE...    the same, only the given test files
#   tests/e2e/run.sh --bench    the same with a release relay, then runs bench.mjs instead
#   tests/e2e/run.sh --bench-sync-ab   a release relay, then bench-sync-ab.mjs (see there)
#   tests/e2e/run.sh --bench-cluster   a release relay, then bench-cluster.mjs: the standard
#                               scenario of issue 12 (`npm run bench`)
#   tests/e2e/run.sh --bench-direct    a release relay, then bench-direct.mjs: direct page-to-
#                               page WebRTC against the circuit and a raw data channel (issue 14,
#                               `npm run bench:direct`)
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${SHOAL_E2E_IN_NETNS:-}" != 1 ]]; then
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
  profile=debug
  if [[ "${1:-}" == --bench || "${1:-}" == --bench-sync-ab || "${1:-}" == --bench-cluster || "${1:-}" == --bench-direct ]]; then
    profile=release
    cargo build -p shoal-relay --release --locked >&2
  else
    cargo build -p shoal-relay --locked >&2
  fi
  # The e2e tests and bench.mjs use the transfer probes: a test build (the A/B bench brings
  # its own dist/).
  # Built again when missing, built without the probes, or older than a source it is built
  # from (a stale page would test yesterday's node against today's relay).
  if [[ "${1:-}" != --bench-sync-ab ]] && { [[ "$(cat dist/.features 2>/dev/null)" != probes ]] ||
    [[ -n "$(find crate/core crate/net crate/host crate/web Cargo.lock -newer dist/.features -type f 2>/dev/null | head -1)" ]]; }; then
    bash scripts/build-web.sh --probes
  fi
  export SHOAL_RELAY_BIN="$target_dir/$profile/shoal-relay"
  exec unshare --net -- env SHOAL_E2E_IN_NETNS=1 bash "$0" "$@"
fi

ip link set lo up
ip link add shoal-e2e0 type veth peer name shoal-e2e1
ip addr add 10.77.0.1/24 dev shoal-e2e0
ip addr add 10.77.0.2/24 dev shoal-e2e1
ip link set shoal-e2e0 up
ip link set shoal-e2e1 up
ip route add default via 10.77.0.2 dev shoal-e2e0
export SHOAL_E2E_HOST=10.77.0.1
mkdir -p test-artifacts
if [[ "${1:-}" == --bench ]]; then
  exec node tests/e2e/bench.mjs
fi
if [[ "${1:-}" == --bench-sync-ab ]]; then
  exec node tests/e2e/bench-sync-ab.mjs
fi
if [[ "${1:-}" == --bench-cluster ]]; then
  exec node tests/e2e/bench-cluster.mjs
fi
if [[ "${1:-}" == --bench-direct ]]; then
  exec node tests/e2e/bench-direct.mjs
fi
exec node --test --test-concurrency=1 --test-reporter=spec "${@:-tests/e2e/}"
