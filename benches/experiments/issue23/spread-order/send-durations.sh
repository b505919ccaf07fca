#!/usr/bin/env bash
# Issue 23, one-off: each sendto's duration by its place in the server's step (perf's
# sys_enter/sys_exit_sendto tracepoints, 4 s of alive messages to 10,000 idle WebSockets every
# 1 s), then send_durations.py's table: are the first sends of a step slow (a warm-up), or all?
#   UWS_BIN=/path/to/echo SERVERS="uws uws-spread" bash benches/experiments/issue23/spread-order/send-durations.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
out=${OUT:-$logdir}
for s in ${SERVERS:-uws uws-spread}; do
  start "$s" ALIVE_INTERVAL=1s
  "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" --connections 10000 \
    --seconds 12 --warmup 2 --label "$s" --csv /dev/null >"$logdir/loadgen.out" 2>&1 &
  lg=$!
  sleep 5 # pacing: the connections are open and the alive messages flow
  perf record -q -e syscalls:sys_enter_sendto -e syscalls:sys_exit_sendto -p "$pid" \
    -o "$out/$s.data" -- sleep 4 >/dev/null 2>&1
  wait "$lg"
  stop
  perf script -i "$out/$s.data" -F time,event >"$out/$s.txt" 2>/dev/null
done
script=$PWD/benches/experiments/issue23/spread-order/send_durations.py
# shellcheck disable=SC2086 # a word list
(cd "$out" && python3 "$script" ${SERVERS:-uws uws-spread})
