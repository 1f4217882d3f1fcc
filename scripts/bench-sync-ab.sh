#!/usr/bin/env bash
# Header sync in the page, this tree's build against an older commit's, measured in the same
# run (tests/e2e/bench-sync-ab.mjs). The baseline package is built from BASE_REV in a
# temporary worktree with the same Cargo target directory and kept in the cache.
#
#   scripts/bench-sync-ab.sh [BASE_REV]   default: bf901b1 (header sync still in the shell)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL_CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
base_rev=$(git rev-parse --short "${1:-bf901b1}")
base_dist="$SHOAL_CACHE/bench-base-dist/$base_rev"
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
if [[ ! -f "$base_dist/index.js" ]]; then
  worktree=$(mktemp -d)
  git worktree add --detach "$worktree" "$base_rev" >&2
  (cd "$worktree" && CARGO_TARGET_DIR="$target_dir" bash scripts/build-web.sh)
  mkdir -p "$base_dist"
  cp -r "$worktree/dist/." "$base_dist/"
  git worktree remove --force "$worktree"
fi
npm run --silent build
SHOAL_BENCH_BASE_DIST="$base_dist" bash tests/e2e/run.sh --bench-sync-ab
