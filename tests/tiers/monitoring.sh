#!/usr/bin/env bash
# Tier: the monitoring files in deploy/monitoring/, checked offline with promtool.
#   1. promtool (Debian's prometheus package, 2.42) is installed when missing; the package's
#      service is kept from starting, and anything it started anyway is stopped.
#   2. `promtool check rules` and `promtool test rules` on rules.yaml / rules.test.yaml.
#   3. The tests can fail: rules.yaml is broken in known ways (a threshold, a `for`, a label
#      matcher, the drain alert's look-back ...) and each broken copy must fail the tests.
#   4. The Grafana dashboard: check_dashboard.py checks its shape and that every metric name
#      used by the rules and the dashboard is one the server exposes (from a real scrape of
#      the server built here); `promtool check rules` parses every panel's expr (as a
#      recording rule: promtool 2.42 has no query-parse command); `promtool test rules`
#      replays the scrape as two targets and requires every panel expr and every recording
#      rule to return data.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- 1. promtool
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus (Debian; provides promtool)"
  # shellcheck source=tests/tiers/lib/apt.sh
  . tests/tiers/lib/apt.sh
  install_prometheus
fi
echo "promtool: $(promtool --version 2>&1 | head -1)"

# --- 2. the rules and their unit tests
mon=deploy/monitoring
timeout 30 promtool check rules "$mon/rules.yaml"
timeout 60 promtool test rules "$mon/rules.test.yaml"

# --- 3. the tests catch broken rules: each mutation must make `promtool test rules` fail.
# One per line: a sed script for rules.yaml, then " # " and what it breaks.
mutations='s/> 0\.8 \* last_over_time/> 0.9 * last_over_time/ # drain alert at 90 % instead of 80 %
s/> 0\.8 \* last_over_time/> 0.7 * last_over_time/ # drain alert at 70 % instead of 80 %
s/last_over_time(wsdrain_drain_elapsed_seconds\[2m\])/wsdrain_drain_elapsed_seconds/ # drain alert without the look-back
/alert: WsdrainStuckShuttingDown/,/for:/s/for: 2m/for: 10m/ # stuck alert after 10 minutes
s/phase=~"prestop|draining"/phase="prestop"/ # stuck alert blind to draining
s/) > 0\.05$/) > 0.2/ # close timeouts at 20 % instead of 5 %
s/close_timeouts_total\[10m\])) >= 10/close_timeouts_total[10m])) >= 1/ # close timeouts without the minimum count
s/closes_total{by="server"}/closes_total/ # close timeouts against all closes, the clients'"'"' too
/alert: WsdrainConnectionsRefusedFull/,/for:/s/for: 5m/for: 1m/ # refusal alert on a burst
s/{reason="max_connections"}\[2m\]/[2m]/ # refusal alert counting descriptor refusals too
s/{reason="fd_exhausted"}\[5m\]) > 0/{reason="fd_exhausted"}[5m]) > 5/ # descriptor alert needing 6
s/\/ wsdrain_max_connections > 0\.9/\/ wsdrain_max_connections > 0.75/ # connection limit at 75 %
s/memory_limit_bytes > 0\.85/memory_limit_bytes > 0.9/ # memory warning at 90 %
/memory_limit_bytes > 0\.95/,/for:/s/for: 1m/for: 0m/ # memory critical on a spike
/alert: WsdrainAliveFanoutLate/,/for:/s/for: 10m/for: 5m/ # alive alert after 5 minutes
/record: instance:wsdrain_public_connections_open:sum/,/expr/s/http|websocket/websocket/ # public connections without HTTP
/record: job:wsdrain_websocket_handover_left/,/notices_total/s/handover_left_total/handover_forced_total/ # handover ratio of the forced'
cp "$mon/rules.test.yaml" "$tmp/rules.test.yaml"
# Control: the copies, unbroken, pass (so a failure below is the mutation's doing).
cp "$mon/rules.yaml" "$tmp/rules.yaml"
timeout 60 promtool test rules "$tmp/rules.test.yaml" >"$tmp/mutant.log" 2>&1 ||
  { cat "$tmp/mutant.log"; echo "the unbroken copy fails"; exit 1; }
caught=0
total=0
while IFS= read -r line; do
  script="${line%% # *}"
  what="${line#* # }"
  total=$((total + 1))
  sed "$script" "$mon/rules.yaml" >"$tmp/rules.yaml"
  if cmp -s "$mon/rules.yaml" "$tmp/rules.yaml"; then
    echo "mutation '$what' changed nothing in rules.yaml: fix the sed script"
    exit 1
  fi
  if timeout 60 promtool test rules "$tmp/rules.test.yaml" >"$tmp/mutant.log" 2>&1; then
    echo "NOT CAUGHT: $what (rules.yaml with '$script' still passes rules.test.yaml)"
    exit 1
  fi
  if ! grep -q FAILED "$tmp/mutant.log"; then
    cat "$tmp/mutant.log"
    echo "mutation '$what': promtool failed for another reason than a failed test"
    exit 1
  fi
  caught=$((caught + 1))
done <<<"$mutations"
echo "broken rules caught by the tests: $caught of $total"

# --- 4. the dashboard, against a real scrape of the server
cargo build --release --locked -p wsdrain
target="${CARGO_TARGET_DIR:-target}"
PORT=0 ADMIN_PORT=0 ADMIN_BIND=127.0.0.1 BIND=127.0.0.1 "$target/release/wsdrain" \
  >"$tmp/server.log" 2>&1 &
server_pid=$!
admin=""
for _ in $(seq 50); do
  admin="$(grep -o ' admin=[^ ]*' "$tmp/server.log" | head -1 | sed 's/.*://')" || true
  [ -n "$admin" ] && break
  sleep 0.1
done
if [ -z "$admin" ]; then
  cat "$tmp/server.log"
  echo "the server did not log its admin port"
  exit 1
fi
timeout 10 python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")' \
  "http://127.0.0.1:$admin/metrics" >"$tmp/metrics.txt"
kill "$server_pid"
wait "$server_pid" || true
server_pid=""
echo "scraped $(grep -c '^wsdrain_' "$tmp/metrics.txt") series from the server"

python3 "$mon/check_dashboard.py" "$mon/grafana-dashboard.json" "$mon/rules.yaml" \
  "$tmp/metrics.txt" "$tmp"
timeout 30 promtool check rules "$tmp/dashboard-rules.yaml"
timeout 60 promtool test rules "$tmp/data.test.yaml"
echo "every dashboard expr and recording rule returns data for a scrape of the server"

echo "monitoring tier passed in $((SECONDS - started)) s"
