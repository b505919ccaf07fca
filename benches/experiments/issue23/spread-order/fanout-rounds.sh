#!/usr/bin/env bash
# Issue 23, one-off: benches/run.sh's fan-out mode alone (10,000 idle WebSockets, an alive
# message every 1 s, 10 s measured), ROUNDS rounds, the servers' order turned each round, into CSV.
#   UWS_BIN=/path/to/echo CSV=fanout.csv ROUNDS=9 SERVERS="wsdrain uws uws-spread" \
#     bash benches/experiments/issue23/spread-order/fanout-rounds.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
turned() {
  local r=$1; shift
  local words=("$@") i
  for ((i = 0; i < $#; i++)); do echo "${words[$(((i + r) % $#))]}"; done
}
for round in $(seq 1 "${ROUNDS:-9}"); do
  # shellcheck disable=SC2086 # a word list
  for s in $(turned $((round - 1)) ${SERVERS:-wsdrain uws uws-spread}); do
    start "$s" ALIVE_INTERVAL=1s
    "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" --connections 10000 \
      --seconds 10 --warmup 1.5 --label "$s" --csv "${CSV:?set CSV to the file to write}"
    stop
  done
done
