# Helpers shared by the benchmark scripts (sourced, not run).

# wait_for_port PORT LOG...: waits up to 10 s for something to listen on
# 127.0.0.1:PORT; otherwise prints the logs and exits 1.
wait_for_port() {
  local port=$1
  shift
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listens on port $port; the server said:" >&2
  cat "$@" >&2
  exit 1
}

# stop_pid PID: asks the process to stop, gives it 10 s to stop
# gracefully, then makes sure.
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# use_faultline DIR: sets FAULTLINE to a private copy, in DIR, of
# $FAULTLINE_BIN, building faultline first when that is unset (with the
# cargo profile $PROFILE: `release`, or `release-lto` for the whole-program
# build; a profile that builds into target/<its name>, so not dev, test or
# bench). Private because the shared target dir may be rebuilt during a
# long run.
use_faultline() {
  if [ -z "${FAULTLINE_BIN:-}" ]; then
    local profile=${PROFILE:-release}
    echo "building faultline ($profile)..." >&2
    cargo build --profile "$profile" --quiet
    FAULTLINE_BIN=${CARGO_TARGET_DIR:-target}/$profile/faultline
  fi
  FAULTLINE=$1/faultline
  cp "$FAULTLINE_BIN" "$FAULTLINE"
}
