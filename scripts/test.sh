#!/usr/bin/env bash
# `npm test`: sets up what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test"
cargo test --workspace --locked
step "shoal-core builds for wasm32-unknown-unknown"
cargo build -p shoal-core --target wasm32-unknown-unknown --locked
