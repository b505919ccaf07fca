#!/usr/bin/env bash
# Issue 23, one-off: the kernel's timer and softirq work that runs while the server is the
# current task (and so is charged to it), per 1,000 alive messages: 10,000 idle WebSockets, an
# alive message every 1 s, 8 s of perf's exact counts (`perf stat -p`), then the same counts
# for all of core 0 (`-a -C 0`, whoever is current). Then which timers expire on the server's
# time (`perf record -e timer:timer_expire_entry`, by function).
#   UWS_BIN=/path/to/echo SERVERS="wsdrain uws uws-spread" \
#     bash benches/experiments/issue23/per-step/timers.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
events=timer:timer_expire_entry,timer:hrtimer_expire_entry,irq:softirq_entry,irq:irq_handler_entry
events=$events,sched:sched_switch
messages=80000 # 8 s of 10,000 a second
per_1000() { # perf stat's CSV on stdin: "count per 1,000 alive messages  event"
  awk -F, -v m="$messages" '$1 ~ /^[0-9]+$/ {printf "%10.1f  %s\n", $1 * 1000 / m, $3}'
}
for s in ${SERVERS:-wsdrain uws uws-spread}; do
  start "$s" ALIVE_INTERVAL=1s
  fanout_start --connections 10000 --seconds 40 --warmup 2 --label "$s" --csv /dev/null \
    >"$logdir/loadgen.out" 2>&1
  sleep 5 # pacing: the connections are open and the alive messages flow
  echo "== $s: on the server's time"
  perf stat -x, -e "$events" -p "$pid" -- sleep 8 2>&1 >/dev/null | per_1000
  echo "== $s: on core 0, whoever is current"
  perf stat -x, -e "$events" -a -C 0 -- sleep 8 2>&1 >/dev/null | per_1000
  echo "== $s: timers expiring on the server's time, by function (per 1,000)"
  perf record -q -e timer:timer_expire_entry -p "$pid" -o "$logdir/t.data" -- sleep 8 >/dev/null 2>&1
  perf script -i "$logdir/t.data" -F trace 2>/dev/null |
    sed -n 's/.*function=\([^ ]*\).*/\1/p' | sort | uniq -c | sort -rn | head -5 |
    awk -v m="$messages" '{printf "%10.1f  %s\n", $1 * 1000 / m, $2}'
  kill "$lg" 2>/dev/null || true
  wait "$lg" 2>/dev/null || true
  stop
done
