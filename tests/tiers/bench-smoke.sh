#!/usr/bin/env bash
# Tier: the benchmark suite in --quick mode (seconds, tiny counts). It asserts nothing about
# speed: it proves every mode still runs against wsdrain and the peer and every reply is right.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash benches/run.sh --quick >/dev/null
echo "bench smoke test passed (results in target/bench-quick/summary.md)"
