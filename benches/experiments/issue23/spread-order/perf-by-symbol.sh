#!/usr/bin/env bash
# Issue 23, one-off: perf's samples by symbol in the server process (20 kHz, 8 s of alive
# messages to 10,000 idle WebSockets every 1 s, so 80,000 messages each), one file per server
# (NAME.syms: samples, then the symbol), and the symbols whose samples grew most from the first
# server to the second.
#   UWS_BIN=/path/to/echo SERVERS="uws uws-spread" bash benches/experiments/issue23/spread-order/perf-by-symbol.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
out=${OUT:-$logdir}
read -r -a servers <<<"${SERVERS:-uws uws-spread}"
for s in "${servers[@]}"; do
  start "$s" ALIVE_INTERVAL=1s
  "${pin_client[@]}" "$bin/loadgen" fanout --addr "127.0.0.1:$port" --pid "$pid" --connections 10000 \
    --seconds 14 --warmup 2 --label "$s" --csv /dev/null >"$logdir/loadgen.out" 2>&1 &
  lg=$!
  sleep 5 # pacing: the connections are open and the alive messages flow
  perf record -q -F 20000 -p "$pid" -o "$out/$s.data" -- sleep 8 >/dev/null 2>&1
  wait "$lg"
  stop
  perf report -i "$out/$s.data" --stdio --sort sym -F sample,sym 2>/dev/null | grep -v '^#' | grep -v '^$' >"$out/$s.syms"
done
python3 - "$out/${servers[0]}.syms" "$out/${servers[1]}.syms" <<'PY'
import sys
def samples(path):
    by = {}
    for line in open(path):
        parts = line.split(None, 2)
        if len(parts) == 3:
            by[parts[2].strip()] = by.get(parts[2].strip(), 0) + int(parts[0])
    return by
a, b = samples(sys.argv[1]), samples(sys.argv[2])
print(f"samples: {sum(a.values())} against {sum(b.values())}")
for sym in sorted(set(a) | set(b), key=lambda k: a.get(k, 0) - b.get(k, 0))[:15]:
    print(f"{a.get(sym, 0):6} {b.get(sym, 0):6} {b.get(sym, 0) - a.get(sym, 0):+6}  {sym}")
PY
