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
# ${CARGO_TARGET_DIR:-target}/uws/echo; see the README); Node.js + ws (node-ws) when node is
# installed; nginx for the static files when it is installed. A peer that cannot run here is
# skipped with one line saying why.
#
#   bash benches/run.sh           full run: ROUNDS rounds (default 3) of every mode, ~15 min
#   bash benches/run.sh --quick   smoke test: one round, tiny counts, seconds; asserts nothing
#                                 about speed, only that every mode runs against every server
#                                 and every reply is right (CI runs it); writes
#                                 target/bench-quick/ (emptied first) unless RUN_DIR is set
#   SERVERS="wsdrain uws" ROUNDS=5 bash benches/run.sh    a subset, more rounds
#   RUN_DIR=FOLDER bash benches/run.sh                     into FOLDER (new or empty)
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
# load), CPU per connection, CPU per static-file request (a 2.7 KB and a 26 KB file, against
# nginx when it is installed), CPU per alive message at 10,000 idle connections (alive every 1 s).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
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

# turned R WORD...: the words turned left by R places (round r starts with the r-th server).
turned() {
  local r=$1; shift
  local words=("$@") i
  for ((i = 0; i < $#; i++)); do echo "${words[$(((i + r) % $#))]}"; done
}

echo "== idle memory" >&2
for n in $idle_counts; do
  for round in $(seq 1 "$rounds"); do
    # shellcheck disable=SC2086
    for s in $(turned $((round - 1)) $servers); do
      if sends_alive "$s"; then start "$s" ALIVE_INTERVAL=$idle_alive; alive=$idle_alive_wait; else start "$s"; alive=0; fi
      $pin_client $bin/loadgen idle --addr "127.0.0.1:$port" --pid "$pid" --connections "$n" --rate 20000 \
        --alive-wait "$alive" --label "$s" --csv "$out/idle.csv" --max-seconds 120
      stop
    done
  done
done

# cdf FILE: the --cdf option in the first round only (one latency curve per server).
cdf() { [ "$round" = 1 ] && echo "--cdf $1" || true; }

echo "== echo: 100 connections x 16 in flight x 32 B, as fast as it goes" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    # shellcheck disable=SC2046
    $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
      --size 32 --seconds "$echo_seconds" --warmup "$warmup" --label "$s" --csv "$out/echo.csv" $(cdf "$out/echo-cdf.csv")
    stop
  done
done

echo "== echo at the same offered load (50,000 msg/s): latency" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    # shellcheck disable=SC2046
    $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
      --size 32 --rate 50000 --seconds "$echo_seconds" --warmup "$warmup" --label "$s" \
      --csv "$out/echo-paced.csv" $(cdf "$out/echo-paced-cdf.csv")
    stop
  done
done

echo "== connect: 50 in progress" >&2
for round in $(seq 1 "$rounds"); do
  # shellcheck disable=SC2086
  for s in $(turned $((round - 1)) $servers); do
    start "$s" ALIVE_INTERVAL=0
    $pin_client $bin/loadgen connect --addr "127.0.0.1:$port" --pid "$pid" --connections 50 \
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
      $pin_client $bin/loadgen static --addr "127.0.0.1:$port" --pid "$pid" --connections 50 \
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
    $pin_client $bin/loadgen fanout --addr "127.0.0.1:$port" --pid "$pid" --connections "$fanout_n" \
      --seconds "$fanout_seconds" --warmup 1.5 --label "$s" --csv "$out/fanout.csv"
    stop
  done
done
if [ "$quick" = 0 ] && command -v strace >/dev/null && [[ " $servers " == *" wsdrain "* ]]; then
  # Syscalls per alive message (wsdrain): with the connections open and idle, count the server's
  # syscalls for 3 s, and the alive messages it sent in the same window (its own metric).
  start wsdrain ALIVE_INTERVAL=1s
  alive_sent() {
    python3 -c "import sys, urllib.request; t = urllib.request.urlopen('http://127.0.0.1:$admin/metrics').read().decode(); \
print(next(l.split()[1] for l in t.splitlines() if l.startswith('wsdrain_websocket_alive_sent_total ')))"
  }
  $pin_client $bin/loadgen fanout --addr "127.0.0.1:$port" --pid "$pid" --connections "$fanout_n" \
    --seconds 6 --warmup 1 --label wsdrain-strace --csv "$out/fanout-strace.csv" &
  lpid=$!
  sleep 3 # the connections are open and the alive messages flow; this is pacing, not a wait for an event
  before=$(alive_sent)
  timeout 3 strace -c -f -q -p "$pid" -o "$out/fanout-strace.txt" || true
  after=$(alive_sent)
  echo $((after - before)) > "$out/fanout-strace-alive.txt"
  wait "$lpid" || true
  stop
fi

if [ "$quick" = 0 ] && command -v strace >/dev/null; then
  echo "== syscalls per echoed message (strace, short run)" >&2
  for s in $servers; do
    start "$s" ALIVE_INTERVAL=0
    timeout 5 strace -c -f -q -p "$pid" -o "$out/echo-strace-$s.txt" &
    spid=$!
    sleep 0.3
    $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
      --size 32 --seconds 3 --warmup 0.5 --label "$s" --csv "$out/echo-strace.csv" || true
    wait "$spid" || true
    stop
  done
fi

echo "== start-up" >&2
$bin/loadgen startup --server $bin/wsdrain --runs 20 | tee "$out/startup.txt"

bash benches/report.sh "$out" >&2
cat "$out/summary.md"
echo "results: $out (summary.md, CSVs, pictures; the servers' logs in logs/)" >&2
[ "$quick" = 1 ] || echo "to record this run as the reference: bash benches/record.sh $out" >&2
