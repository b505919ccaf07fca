#!/usr/bin/env bash
# Where a server's CPU goes, per operation, in one load of benches/run.sh: for each server, over
# 4 s of steady load, the CPU per operation (/proc/PID/schedstat: the scheduler's own count, to
# the nanosecond) and its user and kernel parts (/proc/PID/stat: sampled at the timer tick, so
# coarse for a server busy a few % of the time; perf's split below has more samples), the server's
# context switches per 1,000 operations (/proc/PID/task/*/status), the load generator's
# (voluntary: the times it slept and had to be woken; on loopback the sender's core runs the
# receiver's wake-up) and the wake-up interrupts between the cores (RES and CAL in
# /proc/interrupts); then, in separate runs (tracing slows the server, so those runs give no CPU
# figures), the syscalls per operation (`strace -c` over a whole load run) and, when perf is
# installed, the split between kernel and user space, the top symbols and the top symbols of
# the server's own code (and libc) of a `perf record`.
#
#   bash benches/profile.sh MODE [SERVERS]
#   ROUNDS=5 bash benches/profile.sh fanout     the CPU window 5 times per server, in turned
#                                               order, a fresh server each time (default 1);
#                                               the table ends with each server's medians
#   LOADGEN_ARGS="--poll-ms 0" bash benches/profile.sh fanout    extra loadgen flags (here: a
#                                               client that polls without sleeping)
#   SERVER_ENV="ALIVE_INTERVAL=5s" ...          extra settings for the servers (the mode's own
#                                               ALIVE_INTERVAL comes first, so this one wins)
#   PERF_FREQ=20000 ...                         perf's sampling rate (default 4000 Hz; fanout
#                                               20000, as the server is busy ~10 % of the time)
#
# MODE, and what one operation is:
#   echo     an echoed message (100 connections x 16 in flight x 32 B, closed loop)
#   connect  a connection: TCP connect, upgrade, one echo, close (50 in progress)
#   fanout   an alive message to one of 10,000 idle connections (alive every 1 s)
#   static   a request for one file, /index.html or STATIC_PATH (50 keep-alive connections)
# SERVERS default to "wsdrain uws" (static: "wsdrain nginx"); see benches/servers.sh. Any other
# argument is refused with this text.
#
# Writes per-op-MODE.csv, and per server per-op-MODE-NAME.txt (the syscalls per operation, then
# perf's split and top symbols, or a line saying why strace or perf was unavailable), to $RUN_DIR, or else a new benches/runs/DATE-TIME-profile-MODE/
# (gitignored), printed at the end. To record profiles with a run of benches/run.sh as the
# reference, write them into that run's folder before `bash benches/record.sh FOLDER`:
#   for m in echo connect fanout static; do RUN_DIR=benches/runs/DATE-TIME bash benches/profile.sh $m; done
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
mode=$1
case $mode in
  echo | connect | fanout) default="wsdrain uws" ;;
  static) default="wsdrain nginx" ;;
  *) echo "unknown mode $mode" >&2; usage ;;
esac
# shellcheck source=benches/run-dir.sh
. benches/run-dir.sh
run_dir "benches/runs/$(now_stamp)-profile-$mode"
folder=$out
# shellcheck source=benches/servers.sh
. benches/servers.sh
# shellcheck disable=SC2086 # a word list
servers=$(available_servers ${2:-$default})
csv=$folder/per-op-$mode.csv
echo "server,round,ops_per_sec,cpu_us_per_op,user_us_per_op,kernel_us_per_op,voluntary_switches_per_1000_ops,involuntary_switches_per_1000_ops,client_wakeups_per_1000_ops,wakeup_interrupts_per_1000_ops" >"$csv"

ticks=$(getconf CLK_TCK)
rounds=${ROUNDS:-1}
# shellcheck disable=SC2206 # a word list
loadgen_args=(${LOADGEN_ARGS:-})
# shellcheck disable=SC2206
server_env=(${SERVER_ENV:-})
perf_freq=${PERF_FREQ:-4000}
[ "$mode" = fanout ] && perf_freq=${PERF_FREQ:-20000}
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} END{print v, n}'; }
cpu() { awk '{print $14, $15}' /proc/"$pid"/stat; }
# The rescheduling and function-call interrupts of every core: a wake-up of a task sleeping on
# another core sends one.
ipis() { awk '$1 == "RES:" || $1 == "CAL:" {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i} END {print n}' /proc/interrupts; }
settings() { if [ "$mode" = fanout ]; then echo ALIVE_INTERVAL=1s; else echo ALIVE_INTERVAL=0; fi; }
# load SECONDS WARMUP: the mode's loadgen run in the background, its CSV row in $logdir/$s.csv;
# sets $lg.
load() {
  local common=(--addr "127.0.0.1:$port" --pid "$pid" --label "$s" --csv "$logdir/$s.csv" --seconds "$1" "${loadgen_args[@]}")
  case $mode in
    echo) echo_load --label "$s" --csv "$logdir/$s.csv" --seconds "$1" "${loadgen_args[@]}" --warmup "$2" ;;
    connect) "${pin_client[@]}" "$bin/loadgen" connect "${common[@]}" --connections 50 ;;
    fanout) "${pin_client[@]}" "$bin/loadgen" fanout "${common[@]}" --warmup "$2" --connections 10000 ;;
    static) "${pin_client[@]}" "$bin/loadgen" static "${common[@]}" --warmup "$2" --connections 50 --path "${STATIC_PATH:-/index.html}" ;;
  esac >/dev/null &
  lg=$!
}
# ops_per_sec SECONDS: the operations per second of the last load run (of SECONDS), from its CSV
# row, the column read by name.
ops_per_sec() {
  local f=$logdir/$s.csv n
  case $mode in
    echo) last_row "$f" msgs_per_sec ;;
    connect) last_row "$f" connections_per_sec ;;
    fanout) n=$(last_row "$f" alive_messages) && awk -v n="$n" -v t="$1" 'BEGIN {print n / t}' ;;
    static) last_row "$f" requests_per_sec ;;
  esac
}
# unavailable TOOL WHY: a line in the report and on stderr that TOOL gave nothing for this server.
unavailable() { echo "$1: unavailable for $s ($2)" | tee -a "$report" >&2; }
# why FILE: the last line a tool wrote to FILE (its stderr), if any.
why() { tail -1 "$1" 2>/dev/null || true; }
# perf_top N SORT [kernel]: the first N lines of perf's report sorted by SORT, read from
# $logdir/perf.txt (no pipe, so no SIGPIPE to hide); "kernel" leaves out the kernel's symbols.
perf_top() {
  perf report -i "$logdir/perf.data" --no-children --sort "$2" --stdio >"$logdir/perf.txt" 2>"$logdir/perf.err" ||
    { echo "  (perf report failed: $(why "$logdir/perf.err"))"; return; }
  awk -v n="$1" -v k="${3:-}" '/^#/ || !NF {next} k == "kernel" && /\[kernel/ {next} {print; if (++c == n) exit}' "$logdir/perf.txt"
}
# The fan-out's connections take a moment to open before the load counts: a longer lead.
lead=3
[ "$mode" = fanout ] && lead=5

# CPU and context switches over a window of steady load, ROUNDS times per server.
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086 # a word list
  for s in $(turned $((round - 1)) $servers); do
    rm -f "$logdir/$s.csv"
    start "$s" "$(settings)" "${server_env[@]}"
    load 9 2
    sleep "$lead" # past the warm-up, into steady load: pacing, not a wait for an event
    # The load generator itself: $lg is the subshell that started it (or, exec'd, itself).
    client=$(pgrep -P "$lg" | head -1 || true)
    client=${client:-$lg}
    read -r v0 n0 < <(switches "$pid"); read -r cv0 _ < <(switches "$client"); i0=$(ipis)
    read -r u0 k0 < <(cpu); read -r r0 _ </proc/"$pid"/schedstat; t0=$(date +%s.%N)
    sleep 4 # the measured window
    read -r v1 n1 < <(switches "$pid"); read -r cv1 _ < <(switches "$client"); i1=$(ipis)
    read -r u1 k1 < <(cpu); read -r r1 _ </proc/"$pid"/schedstat; t1=$(date +%s.%N)
    wait "$lg"
    stop
    rate=$(ops_per_sec 9)
    awk -v s="$s" -v round="$round" -v r="$rate" -v t0="$t0" -v t1="$t1" -v hz="$ticks" \
      -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v v=$((v1 - v0)) -v n=$((n1 - n0)) -v c=$((cv1 - cv0)) \
      -v i=$((i1 - i0)) -v ns=$((r1 - r0)) 'BEGIN {
        m = r * (t1 - t0)
        printf "%s,%d,%.0f,%.3f,%.3f,%.3f,%.1f,%.1f,%.1f,%.1f\n", s, round, r, ns / 1000 / m,
          u * 1e6 / hz / m, k * 1e6 / hz / m, 1000 * v / m, 1000 * n / m, 1000 * c / m, 1000 * i / m
      }' >>"$csv"
  done
done

for s in $servers; do
  report=$folder/per-op-$mode-$s.txt
  # Syscalls per operation: strace counts every syscall of one whole load run (no warm-up);
  # for the fan-out, 3 s once the connections are open, and the alive messages sent in those 3 s
  # (wsdrain: its own metric before and after; a peer: loadgen's rate over its run times 3 s).
  : >"$report"
  # Nothing of the previous server's may stand in for this one's.
  rm -f "$logdir/strace.txt" "$logdir/strace.err" "$logdir/perf.data" "$logdir/perf.err"
  if command -v strace >/dev/null; then
    rm -f "$logdir/$s.csv"
    start "$s" "$(settings)" "${server_env[@]}"
    status=0
    if [ "$mode" = fanout ]; then
      load 8 0
      sleep "$lead" # the connections are open: pacing, not a wait for an event
      if [ -n "$admin" ]; then before=$(metric wsdrain_websocket_alive_sent_total); fi
      # Ends by timeout's INT after 3 s (status 124).
      timeout -s INT 3 strace -c -f -q -p "$pid" -o "$logdir/strace.txt" 2>"$logdir/strace.err" || status=$?
      if [ -n "$admin" ]; then
        after=$(metric wsdrain_websocket_alive_sent_total)
        ops=$((after - before)) ops_from="server metric over the window"
      fi
      wait "$lg"
      if [ -z "$admin" ]; then
        ops=$(awk -v r="$(ops_per_sec 8)" 'BEGIN {printf "%.0f", r * 3}') ops_from="loadgen's rate x 3 s"
      fi
      expected="0 124"
    else
      strace -c -f -q -p "$pid" -o "$logdir/strace.txt" 2>"$logdir/strace.err" &
      spid=$!
      sleep 0.3 # strace attaches: pacing, not a wait for an event
      load 4 0
      wait "$lg"
      kill -INT "$spid" 2>/dev/null || true # gone already when it could not attach
      wait "$spid" || status=$?
      ops=$(awk -v r="$(ops_per_sec 4)" 'BEGIN {print r * 4}') ops_from="loadgen's rate x 4 s"
      expected="0 130" # 130: ended by the INT above
    fi
    stop
    if [[ " $expected " != *" $status "* ]] || [ ! -s "$logdir/strace.txt" ]; then
      unavailable strace "exit $status; $(why "$logdir/strace.err")"
    else
      {
        echo "syscalls per operation (strace -c, $ops operations: $ops_from):"
        awk -v ops="$ops" 'NF >= 5 && $NF != "total" && $4 ~ /^[0-9]+$/ {printf "  %-16s %8.3f\n", $NF, $4 / ops}' "$logdir/strace.txt"
      } >>"$report"
    fi
  fi

  # Where the CPU goes: perf's split between the kernel and the server's own code, and the top
  # symbols.
  if command -v perf >/dev/null; then
    start "$s" "$(settings)" "${server_env[@]}"
    load 8 2
    sleep "$lead"
    status=0
    perf record -q -F "$perf_freq" -o "$logdir/perf.data" -p "$pid" -- sleep 3 >/dev/null 2>"$logdir/perf.err" || status=$?
    wait "$lg"
    stop
    if [ "$status" != 0 ] || [ ! -s "$logdir/perf.data" ]; then
      unavailable perf "perf record exit $status; $(why "$logdir/perf.err")"
    else
      {
        echo "perf: share of the server's samples by object ($perf_freq Hz)"
        perf_top 5 dso
        echo "perf: top symbols"
        perf_top 25 sym
        echo "perf: top symbols outside the kernel (share of all samples)"
        perf_top 20 dso,sym kernel
      } >>"$report"
    fi
  fi
done
column -s, -t <"$csv"
if [ "$rounds" -gt 1 ]; then
  echo "medians of $rounds rounds:"
  for s in $servers; do
    for col in 4 5 6 7 9 10; do
      awk -F, -v s="$s" -v c="$col" 'NR > 1 && $1 == s {print $c}' "$csv" | sort -n |
        awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s ", m}'
    done | awk -v s="$s" '{printf "  %s: per op CPU %s µs (user %s, kernel %s); per 1,000 ops server switches %s, client wake-ups %s, wake-up interrupts %s\n", s, $1, $2, $3, $4, $5, $6}'
  done
fi
echo "results: $folder (per-op-$mode*)" >&2
