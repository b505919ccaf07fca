#!/usr/bin/env bash
# Where a server's CPU goes, per operation, in one load of benches/run.sh: for each server, over
# 4 s of steady load, the user and kernel CPU per operation (/proc/PID/stat) and the context
# switches per 1,000 operations (/proc/PID/task/*/status); then, in separate runs (tracing slows
# the server, so those runs give no CPU figures), the syscalls per operation (`strace -c` over a
# whole load run) and, when perf is installed, the split between kernel and user space and the
# top symbols of a `perf record`.
#
#   bash benches/profile.sh MODE [SERVERS]
#
# MODE, and what one operation is:
#   echo     an echoed message (100 connections x 16 in flight x 32 B, closed loop)
#   connect  a connection: TCP connect, upgrade, one echo, close (50 in progress)
#   fanout   an alive message to one of 10,000 idle connections (alive every 1 s)
#   static   a request for one file, /index.html or STATIC_PATH (50 keep-alive connections)
# SERVERS default to "wsdrain uws" (static: "wsdrain nginx"); see benches/servers.sh.
#
# Writes per-op-MODE.csv, and per server per-op-MODE-NAME.txt (the syscalls per operation, then
# perf's split and top symbols), to $RUN_DIR, or else a new benches/runs/DATE-TIME-profile-MODE/
# (gitignored), printed at the end. To record profiles with a run of benches/run.sh as the
# reference, write them into that run's folder before `bash benches/record.sh FOLDER`:
#   for m in echo connect fanout static; do RUN_DIR=benches/runs/DATE-TIME bash benches/profile.sh $m; done
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: bash benches/profile.sh echo|connect|fanout|static [SERVERS]}
case $mode in
  echo | connect | fanout) default="wsdrain uws" ;;
  static) default="wsdrain nginx" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
# shellcheck source=benches/run-dir.sh
. benches/run-dir.sh
run_dir "benches/runs/$(now_stamp)-profile-$mode"
folder=$out
# shellcheck source=benches/servers.sh
. benches/servers.sh
# shellcheck disable=SC2086 # a word list
servers=$(available_servers ${2:-$default})
out=$folder/per-op-$mode.csv
echo "server,ops_per_sec,user_us_per_op,kernel_us_per_op,voluntary_switches_per_1000_ops,involuntary_switches_per_1000_ops" >"$out"

ticks=$(getconf CLK_TCK)
switches() { cat /proc/"$pid"/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v, n}'; }
cpu() { awk '{print $14, $15}' /proc/"$pid"/stat; }
settings() { [ "$mode" = fanout ] && echo ALIVE_INTERVAL=1s || echo ALIVE_INTERVAL=0; }
# load SECONDS WARMUP: the mode's loadgen run in the background, its CSV row in $logdir/$s.csv;
# sets $lg.
load() {
  local common=(--addr "127.0.0.1:$port" --pid "$pid" --label "$s" --csv "$logdir/$s.csv" --seconds "$1")
  case $mode in
    echo) $pin_client $bin/loadgen echo "${common[@]}" --warmup "$2" --connections 100 --in-flight 16 --size 32 ;;
    connect) $pin_client $bin/loadgen connect "${common[@]}" --connections 50 ;;
    fanout) $pin_client $bin/loadgen fanout "${common[@]}" --warmup "$2" --connections 10000 ;;
    static) $pin_client $bin/loadgen static "${common[@]}" --warmup "$2" --connections 50 --path "${STATIC_PATH:-/index.html}" ;;
  esac >/dev/null &
  lg=$!
}
# ops_per_sec: the operations per second of the last load run, from its CSV row.
ops_per_sec() {
  local row
  row=$(tail -1 "$logdir/$s.csv")
  case $mode in
    echo) echo "$row" | cut -d, -f5 ;;
    connect) echo "$row" | cut -d, -f3 ;;
    fanout) echo "$row" | awk -F, -v t="$1" '{print $3 / t}' ;;
    static) echo "$row" | cut -d, -f5 ;;
  esac
}
# The fan-out's connections take a moment to open before the load counts: a longer lead.
lead=3
[ "$mode" = fanout ] && lead=5

for s in $servers; do
  report=$folder/per-op-$mode-$s.txt
  # CPU and context switches over a window of steady load.
  rm -f "$logdir/$s.csv"
  start "$s" "$(settings)"
  load 9 2
  sleep "$lead" # past the warm-up, into steady load: pacing, not a wait for an event
  read -r v0 n0 < <(switches); read -r u0 k0 < <(cpu); t0=$(date +%s.%N)
  sleep 4 # the measured window
  read -r v1 n1 < <(switches); read -r u1 k1 < <(cpu); t1=$(date +%s.%N)
  wait "$lg"
  stop
  rate=$(ops_per_sec 9)
  awk -v s="$s" -v r="$rate" -v t0="$t0" -v t1="$t1" -v hz="$ticks" \
    -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v v=$((v1 - v0)) -v n=$((n1 - n0)) 'BEGIN {
      m = r * (t1 - t0)
      printf "%s,%.0f,%.3f,%.3f,%.1f,%.1f\n", s, r, u * 1e6 / hz / m, k * 1e6 / hz / m, 1000 * v / m, 1000 * n / m
    }' >>"$out"

  # Syscalls per operation: strace counts every syscall of one whole load run (no warm-up);
  # for the fan-out, 3 s once the connections are open (the server's timers set the rate:
  # 10,000 alive messages a second, strace or not).
  : >"$report"
  if command -v strace >/dev/null; then
    rm -f "$logdir/$s.csv"
    start "$s" "$(settings)"
    if [ "$mode" = fanout ]; then
      load 8 0
      sleep "$lead" # the connections are open: pacing, not a wait for an event
      timeout -s INT 3 strace -c -f -q -p "$pid" -o "$logdir/strace.txt" || true
      wait "$lg"
      ops=30000
    else
      strace -c -f -q -p "$pid" -o "$logdir/strace.txt" &
      spid=$!
      sleep 0.3 # strace attaches: pacing, not a wait for an event
      load 4 0
      wait "$lg"
      kill -INT "$spid" 2>/dev/null || true
      wait "$spid" 2>/dev/null || true
      ops=$(awk -v r="$(ops_per_sec 4)" 'BEGIN {print r * 4}')
    fi
    stop
    {
      echo "syscalls per operation (strace -c, $ops operations):"
      awk -v ops="$ops" 'NF >= 5 && $NF != "total" && $4 ~ /^[0-9]+$/ {printf "  %-16s %8.3f\n", $NF, $4 / ops}' "$logdir/strace.txt"
    } >>"$report"
  fi

  # Where the CPU goes: perf's split between the kernel and the server's own code, and the top
  # symbols.
  if command -v perf >/dev/null; then
    start "$s" "$(settings)"
    load 8 2
    sleep "$lead"
    perf record -q -o "$logdir/perf.data" -p "$pid" -- sleep 3 >/dev/null 2>&1 || true
    wait "$lg"
    stop
    {
      echo "perf: share of the server's samples by object"
      perf report -i "$logdir/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -5
      echo "perf: top symbols"
      perf report -i "$logdir/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -25
    } >>"$report" || true
  fi
done
column -s, -t <"$out"
echo "results: $folder (per-op-$mode*)" >&2
