#!/usr/bin/env bash
# The measurement of issue 8's "Memory" bullet, as a user makes it: the real `handoff run` (admin
# API and all), N handoffs asked over the admin socket (aborted: successor `--fault unhealthy`, or
# committed), S's VmRSS read from /proc every 25 handoffs, with no forced GC. S runs with
# --trace-gc: the heap before and after each major GC (Mark-Compact) is printed at the end, which
# tells garbage awaiting collection from live memory. Needs curl and a build (npm run build).
#
#   scripts/cli-rss.sh [N=300] [abort|commit] [FAULT=unhealthy]
set -euo pipefail
N=${1:-300}
MODE=${2:-abort}
FAULT=${3:-unhealthy}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KV=$ROOT/dist/examples/kv/main.js
D=$(mktemp -d /tmp/handoff-rss-XXXXXX)
mkdir "$D/data"
# Long heartbeat timeout: a slow machine must not turn this into a fault test.
(cd "$D" && exec node --trace-gc "$ROOT/bin/handoff" run --listen http=tcp://127.0.0.1:0 --lock "$D/lock" \
  --state-dir "$D/state" --admin-socket "$D/a.sock" --heartbeat-timeout 60s -- node "$KV" --data "$D/data" >"$D/out.log" 2>&1) &
PID=$!
cleanup() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
api() { curl -s --max-time 120 --unix-socket "$D/a.sock" "$@"; }
serving() {
  for _ in $(seq 1 400); do
    api http://x/v1/status 2>/dev/null | grep -q '"state":"serving"' && return 0
    sleep 0.05
  done
  echo "S not serving" >&2
  return 1
}
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
serving
echo "S pid $PID: $N ${MODE}ed handoffs; VmRSS at rest $(rss) kB"
for i in $(seq 1 "$N"); do
  if [ "$MODE" = abort ]; then extra="\"--fault\",\"$FAULT\""; else extra="\"--build-id\",\"b$i\""; fi
  last=$(api -X POST http://x/v1/handoffs -H 'content-type: application/json' \
    -d "{\"args\":[\"$KV\",\"--data\",\"$D/data\",$extra]}" | tail -n 1)
  case "$last" in
    *'"outcome":"aborted"'* | *'"outcome":"committed"'*) ;;
    *) echo "handoff $i: $last" >&2; exit 1 ;;
  esac
  serving
  if [ $((i % 25)) = 0 ]; then echo "$i: VmRSS $(rss) kB"; fi
done
echo "major GCs (heap used before -> after, MB):"
grep -o 'Mark-Compact[^,]*MB' "$D/out.log" || echo "  none"
