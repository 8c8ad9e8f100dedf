#!/usr/bin/env bash
# faultline against rotel, side by side, on the same load and CPU budget.
#
# Builds faultline (with PROFILE, release by default, unless FAULTLINE_BIN
# is given), installs rotel from PyPI into a virtualenv (`pip install
# rotel`; its wheel carries the `rotel-agent` binary), then for each
# collector in turn: starts it pinned to one core (taskset), runs
# `faultline loadgen` over OTLP/gRPC pinned to another core, and reads the
# server's CPU time and peak RSS from /proc. The load generator is the same
# binary as the faultline under test, so comparing two builds changes both
# sides; the server sets the rate here (it uses its whole core, the load
# generator about half of its own).
# rotel exports to its blackhole exporter; faultline builds the graph and
# runs its operators (strictly more work). Prints spans/s, CPU seconds per
# million spans, peak RSS and export latency per collector, then
# `ratio faultline/rotel: X.XX` (spans/s).
#
# Usage: benches/compare.sh
# Knobs (environment): DURATION (20s), CONCURRENCY (16), SERVER_CPU (0),
# LOADGEN_CPU (1), GZIP (0; 1 sends gzip), GRPC_PORT (46317; the next two
# ports are used too), ROTEL_VENV (target/rotel-venv), CARGO_TARGET_DIR
# (target), FAULTLINE_BIN (a built binary to use instead of building),
# PROFILE (the cargo profile to build with: release, or release-lto).
set -euo pipefail

cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-20s}
# 16 connections keep both collectors CPU-bound on their core (with 4, rotel
# waits on its own latency and uses about half a core).
CONCURRENCY=${CONCURRENCY:-16}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
GZIP=${GZIP:-0}
TARGET=${CARGO_TARGET_DIR:-target}
ROTEL_VENV=${ROTEL_VENV:-$TARGET/rotel-venv}
GRPC_PORT=${GRPC_PORT:-46317}
HTTP_PORT=$((GRPC_PORT + 1))
API_PORT=$((GRPC_PORT + 2))

command -v taskset >/dev/null || { echo "compare.sh: needs taskset (util-linux)" >&2; exit 1; }

if [ ! -x "$ROTEL_VENV/bin/python" ]; then
  echo "installing rotel into $ROTEL_VENV..." >&2
  python3 -m venv "$ROTEL_VENV"
fi
"$ROTEL_VENV/bin/pip" install --quiet rotel >&2
ROTEL=$("$ROTEL_VENV/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
[ -x "$ROTEL" ] || chmod +x "$ROTEL"

DATA=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT
use_faultline "$DATA"

# utime + stime of a process (all threads), in seconds.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# run NAME METRICS_URL -- SERVER COMMAND...; appends one JSON line to $DATA/results.
run() {
  local name=$1 metrics=$2
  shift 3
  taskset -c "$SERVER_CPU" "$@" >"$DATA/$name.log" 2>&1 &
  SERVER_PID=$!
  wait_for_port "$GRPC_PORT" "$DATA"/*.log
  [ -n "$metrics" ] && wait_for_port "$API_PORT" "$DATA"/*.log
  local cpu0 cpu1
  cpu0=$(cpu_seconds "$SERVER_PID")
  local extra=()
  [ -n "$metrics" ] && extra+=(--metrics "$metrics")
  [ "$GZIP" = 1 ] && extra+=(--gzip)
  echo "running loadgen against $name for $DURATION..." >&2
  taskset -c "$LOADGEN_CPU" "$FAULTLINE" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" \
    --duration "$DURATION" --concurrency "$CONCURRENCY" --json "${extra[@]}" >"$DATA/$name.json"
  cpu1=$(cpu_seconds "$SERVER_PID")
  local rss
  rss=$(peak_rss_mib "$SERVER_PID")
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  python3 - "$name" "$cpu0" "$cpu1" "$rss" "$DATA/$name.json" >>"$DATA/results" <<'EOF'
import json, sys
name, cpu0, cpu1, rss, path = sys.argv[1:]
r = json.load(open(path))
r.update(name=name, cpu=float(cpu1) - float(cpu0), rss=float(rss))
print(json.dumps(r))
EOF
}

run faultline "http://127.0.0.1:$API_PORT/metrics" -- \
  env FAULTLINE_GRPC_ENDPOINT=127.0.0.1:$GRPC_PORT FAULTLINE_HTTP_ENDPOINT=127.0.0.1:$HTTP_PORT \
  FAULTLINE_API_ENDPOINT=127.0.0.1:$API_PORT FAULTLINE_DATA_DIR="$DATA/faultline-data" \
  FAULTLINE_LOG=warn "$FAULTLINE" serve
run rotel "" -- \
  "$ROTEL" start --exporter blackhole --otlp-grpc-endpoint 127.0.0.1:$GRPC_PORT \
  --otlp-http-endpoint 127.0.0.1:$HTTP_PORT

python3 - "$DATA/results" <<'EOF'
import json, sys
rows = {r["name"]: r for r in map(json.loads, open(sys.argv[1]))}
print(f"{'collector':<10} {'spans/s':>10} {'CPU s/M spans':>14} {'peak RSS MiB':>13} "
      f"{'p50 ms':>7} {'p99 ms':>7} {'failed':>6} {'accepted':>12}")
for name, r in rows.items():
    per_m = r["cpu"] / max(r["spans_sent"], 1) * 1e6
    accepted = r["server_accepted"]
    if accepted is None:
        acc = "n/a"
    else:
        lost = r["spans_sent"] - r["spans_rejected"] - accepted
        acc = f"{accepted} ({lost} lost)"
    print(f"{name:<10} {r['spans_per_second']:>10.0f} {per_m:>14.2f} {r['rss']:>13.1f} "
          f"{r['latency_p50_ms']:>7.2f} {r['latency_p99_ms']:>7.2f} {r['failed_requests']:>6} {acc:>12}")
f, r = rows["faultline"], rows["rotel"]
cpu = lambda x: x["cpu"] / max(x["spans_sent"], 1)
print(f"CPU per span rotel/faultline: {cpu(r) / max(cpu(f), 1e-12):.2f}")
print(f"ratio faultline/rotel: {f['spans_per_second'] / max(r['spans_per_second'], 1e-9):.2f}")
EOF
