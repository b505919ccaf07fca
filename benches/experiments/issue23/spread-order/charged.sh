#!/usr/bin/env bash
# Issue 23, one-off: where the CPU of an alive message is charged. 10,000 idle WebSockets, an
# alive message every 1 s; over 8 s of them, per alive message: the server process's CPU, the
# client's, each core's busy time from /proc/stat (ticks, so coarse: it also holds softirq work
# done while a core was idle), and the TIMER, NET_RX softirqs per 1,000 messages on each core.
#   UWS_BIN=/path/to/echo OLD_WSDRAIN=/path/to/wsdrain SERVERS="uws uws-spread wsdrain" \
#     ROUNDS=3 bash benches/experiments/issue23/spread-order/charged.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
busy() { awk '/^cpu[0-9]/ {print $1, $2+$3+$4+$6+$7+$8, $7, $8}' /proc/stat; }
ptime() { awk '{print $14+$15}' /proc/"$1"/stat; }
softirqs() { awk '$1=="TIMER:"||$1=="NET_RX:" {print $1, $2, $3}' /proc/softirqs; }
for r in $(seq 1 "${ROUNDS:-3}"); do
  for s in ${SERVERS:-uws uws-spread wsdrain}; do
    start "$s" ALIVE_INTERVAL=1s
    "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" --connections 10000 \
      --seconds 14 --warmup 2 --label "$s" --csv /dev/null >"$logdir/loadgen.out" 2>&1 &
    lg=$!
    sleep 5 # pacing: the connections are open and the alive messages flow
    b0=$(busy); s0=$(ptime "$pid"); l0=$(ptime "$lg"); q0=$(softirqs)
    sleep 8
    b1=$(busy); s1=$(ptime "$pid"); l1=$(ptime "$lg"); q1=$(softirqs)
    wait "$lg"
    stop
    python3 - "$s" "$r" "$b0" "$b1" "$s0" "$s1" "$l0" "$l1" "$q0" "$q1" <<'PY'
import sys
s, r, b0, b1, s0, s1, l0, l1, q0, q1 = sys.argv[1:]
messages = 10_000 * 8
us = lambda ticks: int(ticks) * 10_000 / messages  # 100 Hz ticks -> µs per message
rows = lambda t: {l.split()[0]: list(map(int, l.split()[1:])) for l in t.splitlines()}
B0, B1, Q0, Q1 = rows(b0), rows(b1), rows(q0), rows(q1)
core = {c: [us(B1[c][i] - B0[c][i]) for i in range(3)] for c in B0}
soft = " ".join(f"{k}{(Q1[k][0]-Q0[k][0])*1000/messages:.0f}/{(Q1[k][1]-Q0[k][1])*1000/messages:.0f}" for k in Q0)
print(f"{s:12} r{r} server {us(int(s1)-int(s0)):5.2f} client {us(int(l1)-int(l0)):5.2f} | "
      f"core0 busy {core['cpu0'][0]:5.2f} (softirq {core['cpu0'][2]:.2f}) core1 busy {core['cpu1'][0]:5.2f} | "
      f"softirqs per 1000 (core0/core1) {soft}", flush=True)
PY
  done
done
