#!/usr/bin/env bash
# Soak: a steady high rate over 10^5 distinct edges for 10 minutes; RSS must
# stay flat (within 10%) after warm-up.
#
# Builds faultline (release), starts `faultline serve` with the default
# pipeline (default caps, memory limiter on) pinned to one core, and runs
# `faultline loadgen --rate RATE --edges EDGES` over OTLP/gRPC pinned to
# another. Prints the server's RSS every SAMPLE seconds, then the load
# generator's report (sent, accepted, unaccounted, failed requests — a
# memory-limiter refusal counts as failed), the graph's size from
# /metrics, and a last line `soak: PASS ...` or `soak: FAIL ...`: PASS when
# every RSS sample after WARMUP lies within 10% of their minimum, no export
# failed and none went unaccounted.
#
# Warm-up covers the retained windows filling (windows_kept=120 windows of
# 1 s) and the pairing TTL (10 s): until then memory grows by design.
#
# Usage: benches/soak.sh
# Knobs (environment): SOAK_SECONDS (600), WARMUP_SECONDS (180), SAMPLE_SECONDS
# (30), RATE (100000 spans/s), EDGES (100000), CONCURRENCY (8), SERVER_CPU (0),
# LOADGEN_CPU (1), GRPC_PORT (47317; the next two ports too), CARGO_TARGET_DIR,
# FAULTLINE_BIN (a built binary to use instead of building), PROFILE (the
# cargo profile to build with: release, or release-lto).
set -euo pipefail

cd "$(dirname "$0")/.."
. benches/common.sh
SOAK_SECONDS=${SOAK_SECONDS:-600}
WARMUP_SECONDS=${WARMUP_SECONDS:-180}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-30}
RATE=${RATE:-100000}
EDGES=${EDGES:-100000}
CONCURRENCY=${CONCURRENCY:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
GRPC_PORT=${GRPC_PORT:-47317}
HTTP_PORT=$((GRPC_PORT + 1))
API_PORT=$((GRPC_PORT + 2))

command -v taskset >/dev/null || { echo "soak.sh: needs taskset (util-linux)" >&2; exit 1; }
if [ "$WARMUP_SECONDS" -ge "$SOAK_SECONDS" ]; then
  echo "soak.sh: WARMUP_SECONDS ($WARMUP_SECONDS) must be below SOAK_SECONDS ($SOAK_SECONDS)" >&2
  exit 1
fi

DATA=$(mktemp -d)
use_faultline "$DATA"

SERVER_PID=
LOADGEN_PID=
cleanup() {
  for pid in $LOADGEN_PID $SERVER_PID; do stop_pid "$pid"; done
  rm -rf "$DATA"
}
trap cleanup EXIT
on_signal() { exit 130; }
trap on_signal INT TERM

rss_mib() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# Pages freed with MADV_FREE and not yet taken back by the kernel: part of
# RSS, reclaimed under memory pressure (see docs/performance.md, Soak).
lazy_free_mib() {
  awk '/^LazyFree:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo "?"
}

metric() {
  curl -s -m 5 "http://127.0.0.1:$API_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

env FAULTLINE_GRPC_ENDPOINT=127.0.0.1:$GRPC_PORT FAULTLINE_HTTP_ENDPOINT=127.0.0.1:$HTTP_PORT \
  FAULTLINE_API_ENDPOINT=127.0.0.1:$API_PORT FAULTLINE_PROXY_ENDPOINT=127.0.0.1:0 \
  FAULTLINE_DATA_DIR="$DATA/faultline-data" FAULTLINE_LOG=warn \
  taskset -c "$SERVER_CPU" "$FAULTLINE" serve ${SERVE_ARGS:-} >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
wait_for_port "$GRPC_PORT" "$DATA/server.log"
wait_for_port "$API_PORT" "$DATA/server.log"
echo "soak: idle RSS $(rss_mib "$SERVER_PID") MiB; sending $RATE spans/s over $EDGES edges for ${SOAK_SECONDS}s" \
  "(warm-up ${WARMUP_SECONDS}s, load average: $(cut -d' ' -f1-3 /proc/loadavg))"

taskset -c "$LOADGEN_CPU" "$FAULTLINE" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" \
  --rate "$RATE" --edges "$EDGES" --duration "${SOAK_SECONDS}s" --concurrency "$CONCURRENCY" \
  --metrics "http://127.0.0.1:$API_PORT/metrics" --json >"$DATA/loadgen.json" 2>"$DATA/loadgen.log" &
LOADGEN_PID=$!

START=$(date +%s)
: >"$DATA/samples"
while kill -0 "$LOADGEN_PID" 2>/dev/null; do
  sleep "$SAMPLE_SECONDS"
  kill -0 "$LOADGEN_PID" 2>/dev/null || break
  t=$(($(date +%s) - START))
  rss=$(rss_mib "$SERVER_PID")
  echo "$t $rss" >>"$DATA/samples"
  printf 'soak: t=%4ds RSS %7.1f MiB (lazily freed %s)  edges %s  refused requests %s  load %s\n' "$t" "$rss" \
    "$(lazy_free_mib "$SERVER_PID")" \
    "$(metric 'faultline_graph_size{outcome="edges"}')" \
    "$(metric 'faultline_memory_limiter_refused_requests_total{receiver="otlp_grpc"}' | grep . || echo 0)" \
    "$(cut -d' ' -f1 /proc/loadavg)"
done
wait "$LOADGEN_PID" || true
LOADGEN_PID=
echo "soak: final RSS $(rss_mib "$SERVER_PID") MiB, peak $(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status") MiB"

python3 - "$DATA/samples" "$DATA/loadgen.json" "$WARMUP_SECONDS" <<'PY'
import json, sys
samples_path, report_path, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    r = json.load(open(report_path))
except ValueError:
    print("soak: FAIL (the load generator produced no report)")
    sys.exit(1)
accepted = r["server_accepted"] or 0
lost = r["spans_sent"] - r["spans_rejected"] - accepted
print(f"soak: sent {r['spans_sent']} spans at {r['spans_per_second']:.0f}/s, "
      f"export p50 {r['latency_p50_ms']:.2f} ms p99 {r['latency_p99_ms']:.2f} ms, "
      f"failed requests {r['failed_requests']}, accepted {accepted} ({lost} unaccounted)")
after = [float(rss) for t, rss in (line.split() for line in open(samples_path)) if int(t) >= warmup]
if len(after) < 2:
    print(f"soak: FAIL (only {len(after)} RSS samples after warm-up; raise SOAK_SECONDS)")
    sys.exit(1)
lo, hi = min(after), max(after)
spread = (hi - lo) / lo * 100
flat = spread <= 10.0
ok = flat and r["failed_requests"] == 0 and lost == 0
verdict = "PASS" if ok else "FAIL"
print(f"soak: {verdict} (RSS after warm-up {lo:.1f}-{hi:.1f} MiB, spread {spread:.1f}% of 10% allowed, "
      f"{len(after)} samples; failed requests {r['failed_requests']}, unaccounted {lost})")
sys.exit(0 if ok else 1)
PY
