#!/usr/bin/env bash
# RSS of `faultline serve` idle and at full load, with the default pipeline
# (the issue's targets: <= 20 MiB idle, <= 64 MiB at full load).
#
# Starts the server pinned to SERVER_CPU, reads its RSS once it listens
# (idle), then runs `faultline loadgen` flat out on LOADGEN_CPU for
# DURATION with CONCURRENCY connections, reads anonymous and lazily freed
# memory a second before the end, and prints the peak (VmHWM) after it.
# Why the lazily freed share: mimalloc hands freed pages back with
# MADV_FREE (see `memory_limiter::tune_allocator`); they count in RSS
# until the kernel wants them.
#
# Environment: FAULTLINE_BIN (a built binary; otherwise builds with the cargo
# profile PROFILE, release by default),
# CONFIG (a pipeline file; default: the embedded default), DURATION (20),
# CONCURRENCY (16), SERVER_CPU (0), LOADGEN_CPU (1), GRPC_PORT (45317; the
# next two ports are used too).
set -euo pipefail

cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-20}
CONCURRENCY=${CONCURRENCY:-16}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
GRPC_PORT=${GRPC_PORT:-45317}
API_PORT=$((GRPC_PORT + 2))

DATA=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && stop_pid "$PID"
  rm -rf "$DATA"
}
trap cleanup EXIT
use_faultline "$DATA"

config=()
[ -n "${CONFIG:-}" ] && config=(--config "$CONFIG")
FAULTLINE_GRPC_ENDPOINT=127.0.0.1:$GRPC_PORT FAULTLINE_HTTP_ENDPOINT=127.0.0.1:$((GRPC_PORT + 1)) \
  FAULTLINE_API_ENDPOINT=127.0.0.1:$API_PORT FAULTLINE_PROXY_ENDPOINT=127.0.0.1:0 \
  FAULTLINE_DATA_DIR="$DATA/data" FAULTLINE_LOG=warn \
  taskset -c "$SERVER_CPU" "$FAULTLINE" serve "${config[@]}" >"$DATA/server.log" 2>&1 &
PID=$!
wait_for_port "$API_PORT" "$DATA/server.log"
sleep 1

# mib FIELD FILE: a field of /proc/PID/status or smaps_rollup, in MiB.
mib() { awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$PID/$2"; }

echo "memory: idle RSS $(mib VmRSS status) MiB"
taskset -c "$LOADGEN_CPU" "$FAULTLINE" loadgen --endpoint "http://127.0.0.1:$GRPC_PORT" \
  --duration "${DURATION}s" --concurrency "$CONCURRENCY" --json >"$DATA/load.json" &
LOAD=$!
sleep $((DURATION - 1))
echo "memory: at $((DURATION - 1)) s: RSS $(mib Rss smaps_rollup) MiB, anonymous $(mib Anonymous smaps_rollup) MiB, of it lazily freed $(mib LazyFree smaps_rollup) MiB"
wait "$LOAD"
peak=$(mib VmHWM status)
rate=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["spans_per_second"]))' "$DATA/load.json")
echo "memory: full load $rate spans/s, peak RSS $peak MiB"
python3 - "$peak" <<'EOF'
import sys
peak = float(sys.argv[1])
print(f"peak RSS at full load: {peak:.1f} MiB {'<=' if peak <= 64 else '>'} 64 MiB: {'PASS' if peak <= 64 else 'FAIL'}")
EOF
