#!/usr/bin/env bash
# Where the time goes: callgrind over the steady_state bench, collecting
# only inside the decoder, Shard::ingest and Shard::tick. Callgrind counts
# instructions, so the profile does not depend on the machine's load, which
# on a shared 2-core VM moves timings by a quarter (`perf record` works here
# too, for user space, but samples time).
#
# Run: benches/profile.sh   (STEADY_REQUESTS sets the requests, default 450)
# Needs valgrind (apt install valgrind). Prints the top functions by
# inclusive and by self cost, and the instructions per span.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "profile: valgrind not found (apt install valgrind)" >&2; exit 1; }
cargo bench --bench steady_state --no-run 2>&1 | tail -1
BIN=$(cargo bench --bench steady_state --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*steady_state[^"]*\)".*/\1/p' | tail -1)
REQUESTS=${STEADY_REQUESTS:-450}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
STEADY_REQUESTS=$REQUESTS valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" \
  --toggle-collect='faultline::receivers::otlp_fast::decode' \
  --toggle-collect='faultline::graph::shard::Shard::ingest' \
  --toggle-collect='faultline::graph::shard::Shard::tick' \
  "$BIN" >"$OUT/log" 2>&1
TOTAL=$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' "$OUT/log" | tr -d ,)
SPANS=$((REQUESTS * 512))
echo "profile: $TOTAL instructions for $SPANS spans: $((TOTAL / SPANS)) per span"
echo "--- inclusive (faultline functions)"
callgrind_annotate --inclusive=yes "$OUT/cg.out" 2>/dev/null | grep -E 'faultline::' | head -25 | cut -c1-160
echo "--- self cost"
callgrind_annotate "$OUT/cg.out" 2>/dev/null | sed -n '/^Ir *file:function/,$p' | sed -n 3,27p | cut -c1-160
