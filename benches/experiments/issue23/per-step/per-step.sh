#!/usr/bin/env bash
# Issue 23, one-off: what an alive message costs against how many are sent per grid step.
# 10,000 idle WebSockets, an alive message every INTERVAL_MS (the 100 ms grid then sends
# 10,000 x 100 / INTERVAL_MS a step); over 8 s, per alive message: the server's CPU and the
# client's (the scheduler's ns, /proc/PID/schedstat), ksoftirqd/0's, and core 0's busy time
# (elapsed minus its cpuidle residency). SPIN=1 keeps core 0 from idling between steps (a
# SCHED_IDLE spinner, which runs only when the server does not). LOADGEN_ARGS="--poll-ms 0"
# keeps the client from sleeping, so no wake-up of it is charged to the server's core.
#   UWS_BIN=/path/to/echo INTERVAL_MS=2000 ROUNDS=3 SERVERS="wsdrain uws uws-spread" \
#     bash benches/experiments/issue23/per-step/per-step.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
interval_ms=${INTERVAL_MS:-1000}
read -ra loadgen_args <<<"${LOADGEN_ARGS:-}"
if [ "${SPIN:-0}" = 1 ]; then
  chrt --idle 0 taskset -c 0 sh -c 'while :; do :; done' &
  spin=$!
  pids+=("$spin") # killed with the servers by servers.sh's exit trap (the end, a failure, Ctrl-C, TERM)
  # chrt or taskset failing would leave core 0 idling, and the numbers read as with SPIN=1.
  sleep 0.1
  kill -0 "$spin" 2>/dev/null || { echo "per-step.sh: SPIN=1: the spinner did not start" >&2; exit 1; }
fi
ksoftirqd0=$(pgrep -x ksoftirqd/0)
cpu_ns() { awk '{print $1}' /proc/"$1"/schedstat; }
idle_us() { cat /sys/devices/system/cpu/cpu0/cpuidle/state*/time | awk '{s += $1} END {printf "%.0f\n", s}'; }
sample() { echo "$(date +%s%N) $(idle_us) $(cpu_ns "$pid") $(cpu_ns "$ksoftirqd0") $(cpu_ns "$lg")"; }
for r in $(seq 1 "${ROUNDS:-3}"); do
  for s in ${SERVERS:-wsdrain uws uws-spread}; do
    start "$s" ALIVE_INTERVAL="${interval_ms}ms"
    fanout_start --connections 10000 --seconds 14 --warmup 2 --label "$s" --csv /dev/null "${loadgen_args[@]}" \
      >"$logdir/loadgen.out" 2>&1
    sleep 5 # pacing: the connections are open and the alive messages flow
    before=$(sample)
    sleep 8
    after=$(sample)
    wait "$lg"
    stop
    # shellcheck disable=SC2086 # two lists of numbers
    python3 - "$s" "$r" "$interval_ms" $before $after <<'PY'
import sys
s, r, interval_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = list(map(int, sys.argv[4:9]))
a = list(map(int, sys.argv[9:14]))
t, idle, server, softirqd, client = (y - x for x, y in zip(b, a))
messages = 10_000 * t / 1e9 * 1000 / interval_ms
per = lambda ns: ns / 1000 / messages
print(f"{s:11} r{r} {interval_ms} ms: server {per(server):5.2f} ksoftirqd/0 {per(softirqd):5.3f} "
      f"core0 busy {per(t - idle * 1000):5.2f} client {per(client):5.2f} us per alive message", flush=True)
PY
  done
done
