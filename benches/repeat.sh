#!/usr/bin/env bash
# Repeats one echo measurement of benches/run.sh over several rounds, rotating through servers
# (a, b, a, b, ...), so that a difference can be told from the spread between runs. Same server
# start-up, pinning and loadgen command as run.sh (start and echo_load in benches/servers.sh);
# appends one row per run to OUT.
#
#   bash benches/repeat.sh ROUNDS OUT.csv "SERVERS" [loadgen echo options...]
#
# SERVERS: wsdrain, wsdrain-old (the binary in $OLD_WSDRAIN), peer-default, peer-4k, uws,
# node-ws (see benches/servers.sh; one that cannot run here is left out with a line saying why). E.g.
#   p99 at the same offered load:
#     bash benches/repeat.sh 7 benches/runs/p99-repeat.csv "wsdrain peer-4k" --rate 50000
#   CPU per message, closed loop, against an older build:
#     OLD_WSDRAIN=/tmp/old-target/release/wsdrain \
#       bash benches/repeat.sh 4 benches/runs/echo-repeat.csv "wsdrain wsdrain-old peer-4k"
# benches/runs/ is gitignored; a file that benches/RESULTS.md cites goes to benches/experiments/
# (see its README) with the section that cites it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,/^set -euo pipefail/{/^#/p}' "$0" >&2; exit 2; }
rounds=$1 out=$2 servers=$3
shift 3
mkdir -p "$(dirname "$out")"
# shellcheck source=benches/servers.sh
. benches/servers.sh
# shellcheck disable=SC2086 # a word list
servers=$(available_servers $servers)

[ -s "$out" ] || echo "run,server,msgs_per_sec,p50_us,p99_us,p999_us,server_cpu_us_per_msg,errors" >"$out"
run=$(($(wc -l <"$out") - 1))
for _ in $(seq 1 "$rounds"); do
  for s in $servers; do
    run=$((run + 1))
    start "$s" ALIVE_INTERVAL=0
    rm -f "$logdir/one.csv"
    echo_load --seconds 10 --warmup 2 --label "$s" --csv "$logdir/one.csv" "$@" >&2
    stop
    # OUT's columns after run, read by name from loadgen's echo CSV (its column label is the server).
    row=$(last_row "$logdir/one.csv" label msgs_per_sec p50_us p99_us p999_us server_cpu_us_per_msg errors)
    echo "$run,$row" >>"$out"
  done
done
cat "$out"
