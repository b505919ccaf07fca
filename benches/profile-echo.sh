#!/usr/bin/env bash
# Where a server's CPU goes in the closed-loop echo of benches/run.sh (100 connections x 16 in
# flight x 32 B): for each server, over 4 s of steady load, the user and kernel CPU per message
# (/proc/PID/stat), the context switches per 1,000 messages (/proc/PID/task/*/status), and, when
# perf is installed, the top symbols of a `perf record` taken in a second, separate run (perf
# slows the server, so its run gives no figures).
#
#   bash benches/profile-echo.sh [SERVERS]     (default "wsdrain peer-default peer-4k")
#
# Writes benches/results/profile-echo.csv and benches/results/profile-echo-NAME.txt (perf).
set -euo pipefail
cd "$(dirname "$0")/.."
servers=${1:-wsdrain peer-default peer-4k}
# shellcheck source=benches/servers.sh
. benches/servers.sh
mkdir -p benches/results
out=benches/results/profile-echo.csv
echo "server,msgs_per_sec,user_us_per_msg,kernel_us_per_msg,voluntary_switches_per_1000_msgs,involuntary_switches_per_1000_msgs" >"$out"

ticks=$(getconf CLK_TCK)
switches() { cat /proc/"$pid"/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v, n}'; }
cpu() { awk '{print $14, $15}' /proc/"$pid"/stat; }
load() { # load SECONDS: the loadgen echo run, in the background; sets $lg
  $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
    --size 32 --seconds "$1" --warmup 2 --label "$s" --csv "$logdir/$s.csv" >/dev/null &
  lg=$!
}

for s in $servers; do
  start "$s" ALIVE_INTERVAL=0
  load 8
  sleep 3 # past the warm-up, into steady load: pacing, not a wait for an event
  read -r v0 n0 < <(switches); read -r u0 k0 < <(cpu); t0=$(date +%s.%N)
  sleep 4 # the measured window
  read -r v1 n1 < <(switches); read -r u1 k1 < <(cpu); t1=$(date +%s.%N)
  wait "$lg"
  stop
  rate=$(tail -1 "$logdir/$s.csv" | cut -d, -f5)
  awk -v s="$s" -v r="$rate" -v t0="$t0" -v t1="$t1" -v hz="$ticks" \
    -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v v=$((v1 - v0)) -v n=$((n1 - n0)) 'BEGIN {
      m = r * (t1 - t0)
      printf "%s,%.0f,%.3f,%.3f,%.1f,%.1f\n", s, r, u * 1e6 / hz / m, k * 1e6 / hz / m, 1000 * v / m, 1000 * n / m
    }' >>"$out"
  if command -v perf >/dev/null; then
    start "$s" ALIVE_INTERVAL=0
    load 7
    sleep 3
    perf record -q -o "$logdir/perf.data" -p "$pid" -- sleep 3 >/dev/null 2>&1 || true
    wait "$lg"
    stop
    perf report -i "$logdir/perf.data" --no-children --sort sym --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -25 >"benches/results/profile-echo-$s.txt" || true
  fi
done
column -s, -t <"$out"
