#!/usr/bin/env bash
# Tier: the benchmark suite in --quick mode (seconds, tiny counts). It asserts nothing about
# speed: it proves every mode still runs against wsdrain and each peer available here, and every
# reply is right. The peers: the tokio one always; node-ws when node is installed (its pinned ws
# comes with npm ci, about a second); uws only where a uWebSockets build was made (UWS_BIN, see
# the README), so not in CI. A peer that cannot run is named as skipped, not failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! bash benches/run.sh --quick >/dev/null 2>"$log"; then
  cat "$log" >&2
  exit 1
fi
grep -E '^(servers:|.*: skipped)' "$log" || true
echo "bench smoke test passed (results in target/bench-quick/summary.md)"
