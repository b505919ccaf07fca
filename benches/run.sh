#!/usr/bin/env bash
# Runs every benchmark against wsdrain and the peer (tokio + tokio-tungstenite, default buffers
# and 4 KiB buffers) back to back, on this machine, and writes benches/results/*.csv, the SVG
# plots and benches/results/summary.md (a ratio table).
#
#   bash benches/run.sh           full run (about 6 minutes)
#   bash benches/run.sh --quick   smoke test: tiny counts, seconds; asserts nothing about speed,
#                                 only that every mode runs and every reply is right (CI runs it)
#
# Servers run on core 0 and the load generator on core 1 (taskset), the same for every server.
# Every mode is bounded in count and time; loadgen exits non-zero on a wrong or missing reply.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
if [ "$quick" = 1 ]; then
  out=target/bench-quick
  idle_counts="200"; echo_seconds=1; warmup=0.5; fanout_n=200; fanout_seconds=2; connect_seconds=1
else
  out=benches/results
  idle_counts="1000 10000 19000"; echo_seconds=10; warmup=2; fanout_n=10000; fanout_seconds=10; connect_seconds=5
fi
rm -rf "$out" && mkdir -p "$out"
logdir=$out
# shellcheck source=benches/servers.sh
. benches/servers.sh

servers="wsdrain peer-default peer-4k"

echo "== idle memory" >&2
for n in $idle_counts; do
  for s in $servers; do
    if [ "${s%%-*}" = wsdrain ]; then start "$s" ALIVE_INTERVAL=5s; alive=6; else start "$s"; alive=0; fi
    $pin_client $bin/loadgen idle --addr "127.0.0.1:$port" --pid "$pid" --connections "$n" --rate 20000 \
      --alive-wait "$alive" --label "$s" --csv "$out/idle.csv" --max-seconds 120
    stop
  done
done

echo "== echo: 100 connections x 16 in flight x 32 B, as fast as it goes" >&2
for s in $servers; do
  start "$s" ALIVE_INTERVAL=0
  $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
    --size 32 --seconds "$echo_seconds" --warmup "$warmup" --label "$s" --csv "$out/echo.csv" --cdf "$out/echo-cdf.csv"
  stop
done

echo "== echo at the same offered load (50,000 msg/s): latency" >&2
for s in $servers; do
  start "$s" ALIVE_INTERVAL=0
  $pin_client $bin/loadgen echo --addr "127.0.0.1:$port" --pid "$pid" --connections 100 --in-flight 16 \
    --size 32 --rate 50000 --seconds "$echo_seconds" --warmup "$warmup" --label "$s" \
    --csv "$out/echo-paced.csv" --cdf "$out/echo-paced-cdf.csv"
  stop
done

echo "== connect: 50 in progress" >&2
for s in $servers; do
  start "$s" ALIVE_INTERVAL=0
  $pin_client $bin/loadgen connect --addr "127.0.0.1:$port" --pid "$pid" --connections 50 \
    --seconds "$connect_seconds" --label "$s" --csv "$out/connect.csv"
  stop
done

echo "== fanout: alive messages to idle connections (wsdrain only)" >&2
start wsdrain ALIVE_INTERVAL=1s
$pin_client $bin/loadgen fanout --addr "127.0.0.1:$port" --pid "$pid" --connections "$fanout_n" \
  --seconds "$fanout_seconds" --warmup 1.5 --label wsdrain --csv "$out/fanout.csv"
if [ "$quick" = 0 ] && command -v strace >/dev/null; then
  # Syscalls per alive message: with the connections open and idle, count the server's
  # syscalls for 3 s, and the alive messages it sent in the same window (its own metric).
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
fi
stop

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

python3 benches/report.py "$out"
