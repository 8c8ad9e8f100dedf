#!/usr/bin/env bash
# Two builds of faultline side by side on one core: is B cheaper per span
# than A, by how much?
#
# Why side by side: this VM's speed moves by up to a half within minutes,
# so two builds run one after the other differ by more than most changes
# do (flat-out runs of one build spread by ±20%). Run at once on the same
# core, each flat out with a load generator of its own on the other core,
# the two servers share whatever speed the machine has: the kernel gives
# each about half of the core, and each one's spans per CPU second
# (spans it accepted over its own CPU time, both read over the same
# window) measures its cost per span under the same conditions. Two
# copies of one build read a mean of 1.0007 over six runs; a single run
# moves by about 1%, so read the mean.
#
# Each round runs the pair twice, A on the first ports then B on them, so
# an advantage of one side (ports, start order) cancels in the mean. Both
# servers share the core's caches, so the absolute figures are lower than
# a server alone reads; the ratio is the point.
#
# Usage: benches/ab.sh BUILD_A BUILD_B
# Knobs (environment): ROUNDS (3), SECONDS_EACH (12), CONCURRENCY (8),
# SERVER_CPU (0), LOADGEN_CPU (1), PORT (47310; the servers use PORT..+2
# and PORT+100..+102).
# Prints one line per run, then `mean B/A: X.XXXX`: B's spans per CPU
# second over A's (above 1, B costs less per span).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: benches/ab.sh BUILD_A BUILD_B" >&2; exit 2; }
# Resolved before the cd below, so relative paths name what the caller meant.
BUILD_A=$(realpath "$1")
BUILD_B=$(realpath "$2")
cd "$(dirname "$0")/.."
. benches/common.sh
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-12}
CONCURRENCY=${CONCURRENCY:-8}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT:-47310}
[ "$SECONDS_EACH" -ge 6 ] || { echo "ab.sh: SECONDS_EACH must be at least 6" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] || { echo "ab.sh: ROUNDS must be at least 1" >&2; exit 2; }
command -v taskset >/dev/null || { echo "ab.sh: needs taskset (util-linux)" >&2; exit 1; }

DATA=$(mktemp -d)
PIDS=()
LOADS=()
cleanup() {
  for pid in "${LOADS[@]}" "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$DATA"
}
trap cleanup EXIT
# Private copies: the shared target dir may be rebuilt during a run. The
# load generators run a third copy: a server whose own file also ran the
# load generators read 1.5% more spans per CPU second than its twin (two
# copies of one build, six runs), most likely from the code pages the two
# processes then share.
cp "$BUILD_A" "$DATA/a"
cp "$BUILD_B" "$DATA/b"
cp "$BUILD_A" "$DATA/loadgen"

# start BINARY BASE: a server on 127.0.0.1:BASE (gRPC), BASE+1, BASE+2 (API).
start() {
  local port
  for port in "$2" "$(($2 + 1))" "$(($2 + 2))"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "ab.sh: port $port is already in use (set PORT)" >&2
      exit 1
    fi
  done
  env FAULTLINE_GRPC_ENDPOINT=127.0.0.1:$2 FAULTLINE_HTTP_ENDPOINT=127.0.0.1:$(($2 + 1)) \
    FAULTLINE_API_ENDPOINT=127.0.0.1:$(($2 + 2)) FAULTLINE_PROXY_ENDPOINT=127.0.0.1:0 \
    FAULTLINE_DATA_DIR="$DATA/data-$2" FAULTLINE_LOG=warn \
    taskset -c "$SERVER_CPU" "$1" serve >"$DATA/log-$2" 2>&1 &
  PIDS+=($!)
}

# cpu_ticks PID: utime + stime, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# accepted BASE: spans the server on BASE has accepted so far.
accepted() {
  curl -fsS "http://127.0.0.1:$(($1 + 2))/metrics" |
    awk '/^faultline_receiver_accepted_spans_total/ { s += $2 } END { print s + 0 }'
}

# pair FIRST SECOND: runs both builds at once, FIRST on PORT, SECOND on
# PORT+100; writes "first_spans_per_cpu_s second_spans_per_cpu_s" to
# $DATA/pair (not to a pipe: in a subshell, the servers would escape the
# exit trap).
pair() {
  local one=$PORT two=$((PORT + 100))
  PIDS=()
  start "$DATA/$1" "$one"
  start "$DATA/$2" "$two"
  wait_for_port "$one" "$DATA"/log-*
  wait_for_port "$((one + 2))" "$DATA"/log-*
  wait_for_port "$two" "$DATA"/log-*
  wait_for_port "$((two + 2))" "$DATA"/log-*
  LOADS=()
  for base in "$one" "$two"; do
    taskset -c "$LOADGEN_CPU" "$DATA/loadgen" loadgen --endpoint "http://127.0.0.1:$base" \
      --duration "${SECONDS_EACH}s" --concurrency "$CONCURRENCY" >"$DATA/load-$base" 2>&1 &
    LOADS+=($!)
  done
  # The window leaves out each load generator's start and end.
  sleep 1
  local c1 c2 s1 s2
  c1=$(cpu_ticks "${PIDS[0]}"); c2=$(cpu_ticks "${PIDS[1]}")
  s1=$(accepted "$one"); s2=$(accepted "$two")
  sleep $((SECONDS_EACH - 3))
  c1="$c1 $(cpu_ticks "${PIDS[0]}")"; c2="$c2 $(cpu_ticks "${PIDS[1]}")"
  s1="$s1 $(accepted "$one")"; s2="$s2 $(accepted "$two")"
  wait "${LOADS[@]}" || true
  LOADS=()
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  local status=0
  python3 - "$(getconf CLK_TCK)" "$c1" "$c2" "$s1" "$s2" >"$DATA/pair" <<'EOF' || status=$?
import sys
hz = float(sys.argv[1])
c1, c2, s1, s2 = ([float(x) for x in a.split()] for a in sys.argv[2:])
for c, s, side in ((c1, s1, "first"), (c2, s2, "second")):
    if s[1] <= s[0] or c[1] <= c[0]:
        sys.exit(f"ab.sh: the {side} server accepted no spans or used no CPU in the window")
rate = lambda c, s: (s[1] - s[0]) / ((c[1] - c[0]) / hz)
print(f"{rate(c1, s1):.0f} {rate(c2, s2):.0f}")
EOF
  if [ $status -ne 0 ]; then
    cat "$DATA"/log-* "$DATA"/load-* >&2
    exit $status
  fi
  rm -rf "$DATA"/data-* "$DATA"/log-* "$DATA"/load-*
}

ratios=()
for round in $(seq 1 "$ROUNDS"); do
  pair a b
  read -r a b <"$DATA/pair"
  echo "round $round, A first: A $a, B $b spans per CPU second, B/A $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')"
  ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')")
  pair b a
  read -r b a <"$DATA/pair"
  echo "round $round, B first: A $a, B $b spans per CPU second, B/A $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", b / a }')"
  ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { print b / a }')")
done
printf '%s\n' "${ratios[@]}" | awk '{ s += $1; n++ } END { printf "mean B/A: %.4f (%d runs)\n", s / n, n }'
