#!/usr/bin/env bash
# Runs every benchmark against wsdrain and its peers on this machine, in rounds, and writes the
# CSVs, summary.md (per server the median of the rounds with min–max, and the ratio of wsdrain's
# median to each peer's) and the pictures (benches/report.sh) to a folder of its own, printed at
# the end: benches/runs/DATE-TIME/ (gitignored), or $RUN_DIR. It writes nothing in the tree's
# tracked files: `bash benches/record.sh FOLDER` makes a run the recorded reference in
# benches/results/, a separate, deliberate step.
#
# Peers: tokio + tokio-tungstenite with default and with 4 KiB buffers (peer-default, peer-4k);
# uWebSockets (uws, and uws-publish and uws-spread in the fan-out) when its binary is there (UWS_BIN, default
# ${CARGO_TARGET_DIR:-target}/uws/echo; to build it see docs/benchmarks.md, "uWebSockets." under
# "The peers"); Node.js + ws (node-ws) when node is installed; nginx for the static files when it
# is installed (NGINX, default nginx on PATH, else /usr/sbin/nginx). A peer that cannot run here is
# skipped with one line saying why. An older wsdrain build for a before/after comparison:
# OLD_WSDRAIN=PATH and wsdrain-old in SERVERS (it serves the static files too).
#
#   bash benches/run.sh           full run: ROUNDS rounds (default 3) of every mode, ~15 min
#   bash benches/run.sh --quick   smoke test: one round, tiny counts, seconds; asserts nothing
#                                 about speed, only that every mode runs against every server
#                                 and every reply is right (CI runs it); writes
#                                 target/bench-quick/ (emptied first) unless RUN_DIR is set
#   SERVERS="wsdrain uws" ROUNDS=5 bash benches/run.sh    a subset, more rounds
#   RUN_DIR=FOLDER bash benches/run.sh                     into FOLDER (new or empty)
# Any other argument is refused with this text.
#
# The folder: the CSVs of every mode, the strace counts (full runs), startup.txt, run.txt (when,
# which commit, which machine, full or quick), summary.md, memory.svg, echo-cdf.svg,
# echo-paced-cdf.svg, and the servers' logs in logs/.
#
# Each round runs every server once in every mode, a fresh server process each time; the order
# turns by one each round (a b c, b c a, c a b), so no server is always first or last. Servers
# run on core 0 and the load generator on core 1 (taskset), the same for every server. Every
# mode is bounded in count and time; loadgen exits non-zero on a wrong or missing reply.
# Modes: memory per idle WebSocket (N = 1,000, 10,000, 19,000; with alive messages every 5 s for
# the servers that send them), echo CPU per message (closed loop, and latency at a fixed offered
# load), CPU per connection, CPU per static-file request (index.html, 2.7 KB, and client.js,
# 20 KB since it was split into modules, 26-29 KB before; against nginx when it is installed), CPU
# per alive message at 10,000 idle connections (alive every 1 s).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" >&2; exit 2; }
case $# in
  0) quick=0 ;;
  1) if [ "$1" = --quick ]; then quick=1; else usage; fi ;;
  *) usage ;;
esac
# shellcheck source=benches/run-dir.sh
. benches/run-dir.sh
if [ "$quick" = 1 ]; then
  [ -n "${RUN_DIR:-}" ] || rm -rf target/bench-quick
  run_dir target/bench-quick
  rounds=${ROUNDS:-1}
  idle_counts="200"; idle_alive=1s; idle_alive_wait=2
  echo_seconds=1; warmup=0.5; fanout_n=200; fanout_seconds=2; connect_seconds=1; static_seconds=1
else
  run_dir "benches/runs/$(now_stamp)"
  rounds=${ROUNDS:-3}
  idle_counts="1000 10000 19000"; idle_alive=5s; idle_alive_wait=6
  echo_seconds=10; warmup=2; fanout_n=10000; fanout_seconds=10; connect_seconds=5; static_seconds=5
fi
# Every mode appends to its CSVs: a folder with results in it would mix two runs.
[ -z "$(ls -A "$out")" ] || { echo "$out is not empty: give RUN_DIR a new folder" >&2; exit 2; }
logdir=$out/logs
mkdir -p "$logdir"
# shellcheck source=benches/servers.sh
. benches/servers.sh

# shellcheck disable=SC2086 # word lists
servers=$(available_servers ${SERVERS:-wsdrain peer-default peer-4k uws node-ws})
# The fan-out: the servers above that send alive messages, and beside uWS's loop its publish
# and the same loop spread over the grid as wsdrain spreads its alive messages.
fanout_servers=""
for s in $servers; do
  sends_alive "$s" || continue
  fanout_servers="$fanout_servers $s"
  [ "$s" = uws ] && fanout_servers="$fanout_servers uws-publish uws-spread"
done
echo "servers: $servers; fan-out: ${fanout_servers# }; rounds: $rounds; results: $out" >&2
# What record.sh and summary.md say about the run (record.sh takes full runs only).
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M') UTC"
  if [ "$quick" = 1 ]; then echo "mode: quick (a smoke test)"; else echo "mode: full, $rounds rounds"; fi
  echo "servers: $servers"
  if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD || commit="$commit, with uncommitted changes"
  fi
  echo "commit: ${commit:-unknown (not a git work tree)}"
  echo "machine: $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal/ {printf "%d GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
} >"$out/run.txt"

echo "== idle memory" >&2
for n in $idle_counts; do
  for round in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    for s in $(turned $((round - 1)) $servers); do
      if sends_alive "$s"; then start "$s" ALIVE_INTERVAL=$idle_alive; alive=$idle_alive_wait; else start "$s"; alive=0; fi
      "${pin_client[@]}" "$bin/loadgen" idle --addr "127.0.0.1:$port" --pid "$pid" --connections "$n" --rate 20000 \
        --alive-wait "$alive" --label "$s" --csv "$out/idle.csv" --max-seconds 120
      stop
    done
  done
done

# cdf_option FILE: sets the array $cdf to the --cdf option in the first round only (one latency
# curve per server), to none in the others.
cdf_option() {
  cdf=()
  if [ "$round" = 1 ]; then cdf=(--cdf "$1"); fi
}

echo "== echo: 100 connections x 16 in flight x 32 B, as fast as it goes" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    cdf_option "$out/echo-cdf.csv"
    echo_load --seconds "$echo_seconds" --warmup "$warmup" --label "$s" --csv "$out/echo.csv" "${cdf[@]}"
    stop
  done
done

echo "== echo at the same offered load (50,000 msg/s): latency" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    cdf_option "$out/echo-paced-cdf.csv"
    echo_load --rate 50000 --seconds "$echo_seconds" --warmup "$warmup" --label "$s" \
      --csv "$out/echo-paced.csv" "${cdf[@]}"
    stop
  done
done

echo "== connect: 50 in progress" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    "${pin_client[@]}" "$bin/loadgen" connect --addr "127.0.0.1:$port" --pid "$pid" --connections 50 \
      --seconds "$connect_seconds" --label "$s" --csv "$out/connect.csv"
    stop
  done
done

echo "== static files: 50 keep-alive connections, one request in flight each" >&2
# The servers that serve files: wsdrain (and wsdrain-old, the older build, when it runs), and
# nginx when it is installed (the peers above only speak WebSocket).
static_servers=""
for s in $servers; do
  case $s in wsdrain*) static_servers="$static_servers $s" ;; esac
done
static_servers=${static_servers# }
if [ -n "$static_servers" ] && available nginx; then static_servers="$static_servers nginx"; fi
for file in index.html client.js; do
  for round in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    for s in $(turned $((round - 1)) $static_servers); do
      start "$s"
      "${pin_client[@]}" "$bin/loadgen" static --addr "127.0.0.1:$port" --pid "$pid" --connections 50 \
        --path "/$file" --seconds "$static_seconds" --warmup "$warmup" --label "$s" --csv "$out/static-${file%%.*}.csv"
      stop
    done
  done
done

echo "== fanout: alive messages every 1 s to $fanout_n idle connections" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $fanout_servers); do
    start "$s" ALIVE_INTERVAL=1s
    fanout_load --connections "$fanout_n" \
      --seconds "$fanout_seconds" --warmup 1.5 --label "$s" --csv "$out/fanout.csv"
    stop
  done
done
# strace_ran STATUS WHAT: true when a `timeout … strace` ended as expected (0, or timeout's 124
# once its time was up); otherwise false, with a line on stderr and in run.txt (shown in
# summary.md) saying that WHAT's syscall counts are unavailable and strace's last line why.
strace_ran() {
  case $1 in 0 | 124) return 0 ;; esac
  local why
  why=$(tail -1 "$logdir/strace.err" 2>/dev/null || true)
  echo "strace: unavailable for $2 (exit $1${why:+: $why})" | tee -a "$out/run.txt" >&2
  return 1
}

if [ "$quick" = 0 ] && command -v strace >/dev/null && [[ " $servers " == *" wsdrain "* ]]; then
  # Syscalls per alive message (wsdrain): with the connections open and idle, count the server's
  # syscalls for 3 s, and the alive messages it sent in the same window (its own metric).
  start wsdrain ALIVE_INTERVAL=1s
  fanout_load --connections "$fanout_n" \
    --seconds 6 --warmup 1 --label wsdrain-strace --csv "$out/fanout-strace.csv" &
  lpid=$!
  sleep 3 # the connections are open and the alive messages flow; this is pacing, not a wait for an event
  before=$(metric wsdrain_websocket_alive_sent_total)
  status=0
  timeout 3 strace -c -f -q -p "$pid" -o "$out/fanout-strace.txt" 2>"$logdir/strace.err" || status=$?
  after=$(metric wsdrain_websocket_alive_sent_total)
  if strace_ran "$status" "the fan-out"; then
    echo $((after - before)) >"$out/fanout-strace-alive.txt"
  else
    rm -f "$out/fanout-strace.txt"
  fi
  wait "$lpid" || { echo "fan-out under strace: loadgen failed (exit $?; its line above)" >&2; exit 1; }
  stop
fi

if [ "$quick" = 0 ] && command -v strace >/dev/null; then
  echo "== syscalls per echoed message (strace, short run)" >&2
  for s in $servers; do
    start "$s" ALIVE_INTERVAL=0
    timeout 5 strace -c -f -q -p "$pid" -o "$out/echo-strace-$s.txt" 2>"$logdir/strace.err" &
    spid=$!
    sleep 0.3
    # --seconds and --warmup: benches/report/summary.py's ECHO_STRACE_SECONDS is their sum.
    echo_load --seconds 3 --warmup 0.5 --label "$s" --csv "$out/echo-strace.csv" ||
      { echo "echo under strace, $s: loadgen failed (exit $?): a wrong or missing reply (its line above)" >&2; exit 1; }
    status=0
    wait "$spid" || status=$?
    strace_ran "$status" "the echo of $s" || rm -f "$out/echo-strace-$s.txt"
    stop
  done
fi

echo "== start-up" >&2
"$bin/loadgen" startup --server "$bin/wsdrain" --runs 20 | tee "$out/startup.txt"

bash benches/report.sh "$out" >&2
cat "$out/summary.md"
echo "results: $out (summary.md, CSVs, pictures; the servers' logs in logs/)" >&2
[ "$quick" = 1 ] || echo "to record this run as the reference: bash benches/record.sh $out" >&2
