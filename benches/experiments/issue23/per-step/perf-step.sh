#!/usr/bin/env bash
# Issue 23, one-off: perf's samples by symbol per 1,000 alive messages, one server (S, default
# wsdrain) at 500 messages a grid step (an alive message every 2 s to 10,000 idle WebSockets)
# against 2,000 a step (every 500 ms); 8 s at 20 kHz each. Prints the symbols that grew most
# per message with fewer messages a step.
#   S=wsdrain bash benches/experiments/issue23/per-step/perf-step.sh
set -eu
cd "$(dirname "$0")/../../../.."
logdir=$(mktemp -d)
# shellcheck source=benches/servers.sh
. benches/servers.sh
out=${OUT:-$logdir}
s=${S:-wsdrain}
for ms in 2000 500; do
  start "$s" ALIVE_INTERVAL="${ms}ms"
  fanout_start --connections 10000 --seconds 14 --warmup 2 --label "$s" --csv /dev/null \
    >"$logdir/loadgen.out" 2>&1
  sleep 5 # pacing: the connections are open and the alive messages flow
  perf record -q -F 20000 -p "$pid" -o "$out/$s-$ms.data" -- sleep 8 >/dev/null 2>&1
  wait "$lg"
  stop
  perf report -i "$out/$s-$ms.data" --stdio --sort sym -F sample,sym 2>/dev/null |
    grep -v '^#' | grep -v '^$' >"$out/$s-$ms.syms"
done
python3 - "$out/$s-2000.syms" "$out/$s-500.syms" <<'PY'
import sys
def per_1000(path, messages):
    by = {}
    for line in open(path):
        parts = line.split(None, 2)
        if len(parts) == 3:
            by[parts[2].strip()] = by.get(parts[2].strip(), 0) + int(parts[0]) * 1000 / messages
    return by
few = per_1000(sys.argv[1], 40_000)    # 8 s of 5,000 a second: 500 a step
many = per_1000(sys.argv[2], 160_000)  # 8 s of 20,000 a second: 2,000 a step
print(f"samples per 1,000 alive messages: {sum(few.values()):.0f} at 500 a step, "
      f"{sum(many.values()):.0f} at 2,000 a step; the symbols that grew most:")
for sym in sorted(set(few) | set(many), key=lambda k: many.get(k, 0) - few.get(k, 0))[:15]:
    print(f"{few.get(sym, 0):7.1f} {many.get(sym, 0):7.1f} {few.get(sym, 0) - many.get(sym, 0):+6.1f}  {sym}")
PY
