#!/usr/bin/env bash
# The simulator's churn sweep through the binary, for the seed ranges and variant worlds that
# BENCHMARKS.md reports:
#
#   bash scripts/sim-sweep.sh FIRST LAST [EXTRA FLAGS...]
#
# runs the sweep world of `crate/sim/tests/sweep.rs` (24 nodes, churn, partitions, loss, lost
# writes, corrupt reads) for seeds FIRST..=LAST, with the extra `--flag value` pairs added or
# replacing the world's own (a variant, e.g. `--placement hash-mod` or `--nodes 60`), and
# prints one line: the seeds run, and the seeds with any invariant violated (each replays with
# the command the simulator prints, `SEED=n shoal-sim ...`). Exits 1 if any seed violated an
# invariant, 2 if a run could not be carried out.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/sim-sweep.sh FIRST LAST [EXTRA FLAGS...]" >&2
  exit 2
fi
first=$1 last=$2
shift 2
variant="$*"
cargo build --release --locked -q -p shoal-sim
# A private copy: another build in a shared target directory may replace the binary while the
# sweep runs.
sim=$(mktemp "${TMPDIR:-/tmp}/shoal-sim.XXXXXX")
trap 'rm -f "$sim"' EXIT
cp "${CARGO_TARGET_DIR:-target}/release/shoal-sim" "$sim"
chmod u+x "$sim"
# The sweep world's flags; an extra flag of the same name replaces its value.
declare -A world=([--nodes]=24 [--archives]=1 [--blocks]=24 [--initial-blocks]=20
  [--block-interval-s]=300 [--hours]=1 [--quiet-tail-hours]=0.5 [--repair-bound-s]=1500
  [--partitions-per-hour]=2 [--loss-rate]=0.005 [--churn-median-session-min]=15
  [--churn-median-offline-min]=5)
while [ $# -gt 0 ]; do
  if [ $# -lt 2 ] || [[ "$2" == --* ]]; then
    echo "sim-sweep: extra flags go in pairs (--flag value): $1" >&2
    exit 2
  fi
  world[$1]=$2
  shift 2
done
args=(--json)
for flag in "${!world[@]}"; do
  args+=("$flag" "${world[$flag]}")
done
failed=()
for ((seed = first; seed <= last; seed++)); do
  status=0
  err=$(SEED=$seed "$sim" "${args[@]}" 2>&1 > /dev/null) || status=$?
  if [ $status -eq 0 ]; then
    continue
  elif [ $status -eq 1 ] && [[ "$err" == *"invariant violation"* ]]; then
    failed+=("$seed")
  else
    echo "sim-sweep: SEED=$seed shoal-sim ${args[*]} failed ($status): $err" >&2
    exit 2
  fi
done
echo "seeds $first..$last ($((last - first + 1))) ${variant:-(the sweep world)}: ${#failed[@]} violating${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
