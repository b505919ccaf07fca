#!/usr/bin/env bash
# Tier: the benchmark suite in --quick mode (seconds, tiny counts). It asserts nothing about
# speed: it proves every mode still runs against wsdrain and each peer available here, every
# reply is right, and the report renders (summary.md, and the pictures with the pinned
# matplotlib, installed into target/bench-venv when missing). The peers: the tokio one always;
# node-ws when node is installed (its pinned ws comes with npm ci, about a second); uws only where
# a uWebSockets build was made (UWS_BIN, see docs/benchmarks.md), so not in CI. A peer that cannot run is
# named as skipped, not failed.
#
# And the run leaves the tree as it found it: `git status --porcelain` is the same before and
# after (a run writes only to its own folder, target/bench-quick/ here); benches/record.sh
# refuses to make a quick run the reference, and records it into a folder under target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() { echo "bench smoke test failed: $*" >&2; exit 1; }
tree=0
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && tree=1
status() { git status --porcelain --untracked-files=all; }
[ "$tree" = 0 ] || before=$(status)

if ! bash benches/run.sh --quick >/dev/null 2>"$log"; then
  cat "$log" >&2
  fail "benches/run.sh --quick"
fi
grep -E '^(servers:|.*: skipped)' "$log" || true
run=target/bench-quick
for f in run.txt summary.md memory.svg echo-cdf.svg echo-paced-cdf.svg idle.csv echo.csv; do
  [ -s "$run/$f" ] || fail "$run/$f is missing or empty"
done

# record.sh: a quick run is never the reference; into a scratch folder it is copied and redrawn.
if bash benches/record.sh "$run" 2>"$log"; then fail "record.sh took a quick run as the reference"; fi
grep -q 'not a reference' "$log" || { cat "$log" >&2; fail "record.sh refused for another reason"; }
record=target/bench-smoke-record
rm -rf "$record"
bash benches/record.sh "$run" "$record" >/dev/null 2>"$log" || { cat "$log" >&2; fail "record.sh"; }
for f in run.txt idle.csv summary.md memory.svg echo-paced-cdf.svg; do
  [ -s "$record/$f" ] || fail "record.sh left no $record/$f"
done
[ ! -e "$record/logs" ] || fail "record.sh copied the servers' logs"

if [ "$tree" = 1 ]; then
  after=$(status)
  if [ "$before" != "$after" ]; then
    echo "git status --porcelain before and after the run:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "the run changed the tree (a run must write only to its own folder)"
  fi
else
  echo "not a git work tree: the check that a run leaves the tree unchanged is skipped"
fi
echo "bench smoke test passed in ${SECONDS}s (results in $run/summary.md)"
