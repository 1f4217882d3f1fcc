#!/usr/bin/env bash
# The fuzzing campaign of FUZZING.md: each target given for RUNS runs (10,000,000 unless set),
# one at a time, at the lowest priority, with debug assertions on and no sanitizer (safe Rust:
# the targets check allocations themselves, see crate/fuzz/src/alloc.rs).
#
#   bash fuzz/campaign.sh                    # every target
#   bash fuzz/campaign.sh block node         # some
#   RUNS=1000000 bash fuzz/campaign.sh relay_store
#   EXTRA=-max_total_time=1800 bash fuzz/campaign.sh relay_store
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). The corpus grows in
# ~/.cache/shoal/fuzz-corpus/<target> (the checked-in seeds in fuzz/seeds/<target> are read
# too, never written), crashes go to ~/.cache/shoal/fuzz-artifacts/<target>/, logs and a line
# per target (wall time, corpus files and bytes) to ~/.cache/shoal/fuzz-logs/.
set -u
cd "$(dirname "$0")"
CACHE="${SHOAL_CACHE:-$HOME/.cache/shoal}"
CORPUS="$CACHE/fuzz-corpus"
ART="$CACHE/fuzz-artifacts"
LOGS="$CACHE/fuzz-logs"
mkdir -p "$CORPUS" "$ART" "$LOGS"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for t in "${targets[@]}"; do
  mkdir -p "$CORPUS/$t" "$ART/$t"
  start=$(date +%s)
  echo "$t start $(date -u +%FT%TZ)" >> "$LOGS/campaign.txt"
  nice -n 19 cargo +nightly fuzz run --debug-assertions --sanitizer none \
    --target-dir "$CACHE/target-fuzz" "$t" "$CORPUS/$t" "seeds/$t" -- \
    -runs="${RUNS:-10000000}" ${EXTRA:-} -artifact_prefix="$ART/$t/" -print_final_stats=1 \
    > "$LOGS/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  echo "$t end rc=$rc wall_s=$((end - start)) files=$(ls "$CORPUS/$t" | wc -l) bytes=$(du -sb "$CORPUS/$t" | cut -f1)" >> "$LOGS/campaign.txt"
done
