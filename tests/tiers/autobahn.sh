#!/usr/bin/env bash
# Tier: Autobahn|Testsuite conformance. `wstest -m fuzzingclient` (autobahntestsuite 0.8.2, all
# cases except 12.* and 13.*, permessage-deflate, which wsdrain does not negotiate) against the
# release server in echo mode. wstest exits 0 whatever the verdicts, so
# tests/autobahn/summarize.py reads target/autobahn-reports/servers/index.json, prints the counts
# per section and every FAILED / NON-STRICT case (expectation against what was observed), writes
# target/autobahn-reports/summary.md (for benches/RESULTS.md), and fails on a FAILED case in
# sections 1-7, 9 and 10. The server must then drain and exit 0 on SIGTERM.
#
# autobahntestsuite is Python 2 software: it goes into a CPython 2.7 virtualenv,
# target/autobahn-venv/py27, made by virtualenv 20.21.1 (the last series that makes 2.7
# environments) from a Python 3 bootstrap venv, with every package pinned in tests/autobahn/.
# The venv is reused while those pins are unchanged. Needs pyenv's 2.7 ($(pyenv root)/versions/2.7.*).
# The full HTML report is target/autobahn-reports/servers/index.html.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/tiers/lib/apt.sh
. tests/tiers/lib/apt.sh
root=$PWD
conf=tests/autobahn
venvs=target/autobahn-venv
reports=target/autobahn-reports
# autobahntestsuite 0.8.2 has 517 cases; 12.* (90) and 13.* (126) are excluded.
expected_cases=301

phase_start=$SECONDS
elapsed() { echo "$((SECONDS - phase_start))s"; }
# seconds_for LIMIT STEP: LIMIT, or what is left of the tier's own limit (tests/run.sh's
# TIER_SECONDS, less 10 s kept for the report) when that is less; fails, naming STEP, when
# nothing is left. within LIMIT STEP COMMAND...: COMMAND under that limit, naming STEP when it
# runs out, so a slow step is told apart instead of the whole tier being killed mid-step.
tier_deadline=$((SECONDS + ${TIER_SECONDS:-240} - 10))
seconds_for() {
  local left=$((tier_deadline - SECONDS))
  if [ "$left" -lt 1 ]; then
    echo "autobahn tier: no time left of its ${TIER_SECONDS:-240} s for $2" >&2
    return 1
  fi
  echo $(($1 < left ? $1 : left))
}
within() {
  local limit step=$2 rc=0
  limit=$(seconds_for "$1" "$2") || exit 1
  shift 2
  timeout "$limit" "$@" || rc=$?
  [ "$rc" -ne 124 ] || echo "autobahn tier: $step took longer than $limit s" >&2
  return "$rc"
}

# --- CPython 2.7 -------------------------------------------------------------------------------
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
py27=""
for candidate in "$pyenv_root"/versions/2.7.*/bin/python2.7; do
  [ -x "$candidate" ] && py27=$candidate
done
if [ -z "$py27" ]; then
  echo "autobahn tier: no CPython 2.7 found at $pyenv_root/versions/2.7.*/bin/python2.7;" \
    "autobahntestsuite 0.8.2 needs Python 2.7 (install it with: pyenv install 2.7.18)" >&2
  exit 1
fi

# --- the virtualenv (reused while the pins and the interpreter are the same) ---------------------
stamp="$(cat "$conf"/requirements-bootstrap.txt "$conf"/requirements-py27.txt \
  "$conf"/build-constraints-py27.txt | sha256sum | cut -c1-16) $py27"
if [ ! -x "$venvs/py27/bin/wstest" ] || [ "$(cat "$venvs/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "installing autobahntestsuite 0.8.2 into $venvs/py27 ($py27)"
  rm -rf "$venvs"
  mkdir -p "$venvs"
  # wsaccel and zope.interface build from source: they need a C compiler.
  if ! command -v cc >/dev/null 2>&1; then
    apt_install gcc libc6-dev
  fi
  if ! python3 -m venv "$venvs/bootstrap" >/dev/null 2>&1; then
    apt_install python3-venv
    rm -rf "$venvs/bootstrap"
    python3 -m venv "$venvs/bootstrap"
  fi
  within 120 'the bootstrap venv' "$venvs/bootstrap/bin/pip" install -q --disable-pip-version-check --no-input \
    -r "$conf/requirements-bootstrap.txt"
  within 60 'the 2.7 virtualenv' "$venvs/bootstrap/bin/virtualenv" -q --no-periodic-update \
    --app-data "$venvs/app-data" -p "$py27" "$venvs/py27"
  PIP_CONSTRAINT="$root/$conf/build-constraints-py27.txt" PYTHONWARNINGS=ignore \
    within 180 'autobahntestsuite' "$venvs/py27/bin/pip" install -q --disable-pip-version-check --no-input \
    --progress-bar off -r "$conf/requirements-py27.txt"
  echo "$stamp" >"$venvs/stamp"
  echo "installed in $(elapsed)"
fi
PYTHONWARNINGS=ignore "$venvs/py27/bin/python" -c 'import autobahntestsuite, autobahn, twisted
print("autobahntestsuite %s, autobahn %s, Twisted %s" %
      (autobahntestsuite.__version__, autobahn.__version__, twisted.__version__))'

# --- the server ----------------------------------------------------------------------------------
phase_start=$SECONDS
within 200 'the release build' cargo build --release --locked --bin wsdrain
rm -rf "$reports"
mkdir -p "$reports"
server_pid=""
wstest_pid=""
cleanup() {
  local pid
  for pid in $wstest_pid $server_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

ECHO_MODE=echo ALIVE_INTERVAL=0 PING_INTERVAL=0 MAX_MESSAGE_SIZE=16MiB MAX_OUTPUT_BYTES=16MiB \
  BIND=127.0.0.1 PORT=0 ADMIN_BIND=127.0.0.1 ADMIN_PORT=0 STATIC_DIR=static \
  DRAIN_WINDOW=1s CLOSE_TIMEOUT=1s RUST_LOG=info \
  ./target/release/wsdrain >"$reports/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr=$(sed -n 's/.*listening public=\([^ ]*\).*/\1/p' "$reports/server.log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "autobahn tier: the server did not log its listening address" >&2
  cat "$reports/server.log" >&2
  exit 1
fi
port=${addr##*:}
echo "server (echo mode) on 127.0.0.1:$port, pid $server_pid"

# --- the fuzzing client ---------------------------------------------------------------------------
sed -e "s|@OUTDIR@|$root/$reports/servers|" -e "s|@PORT@|$port|" "$conf/fuzzingclient.json" \
  >"$reports/fuzzingclient.json"
echo "running wstest -m fuzzingclient (cases * except 12.*, 13.*)"
wstest_limit=$(seconds_for 150 wstest)
(cd "$reports" && PYTHONWARNINGS=ignore exec timeout "$wstest_limit" "$root/$venvs/py27/bin/wstest" \
  -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1) &
wstest_pid=$!
wstest_rc=0
wait "$wstest_pid" || wstest_rc=$?
wstest_pid=""
echo "wstest finished in $(elapsed) (exit $wstest_rc), $(grep -c '^Running test case' "$reports/wstest.log" || true) cases"
if [ "$wstest_rc" -ne 0 ] || [ ! -s "$reports/servers/index.json" ]; then
  tail -n 30 "$reports/wstest.log"
  echo "autobahn tier: wstest failed (exit $wstest_rc; 124 is its limit of $wstest_limit s)" \
    "or wrote no $reports/servers/index.json" >&2
  exit 1
fi

summary_rc=0
python3 "$conf/summarize.py" "$reports/servers" --agent wsdrain --gate 1,2,3,4,5,6,7,9,10 \
  --min-cases "$expected_cases" --markdown "$reports/summary.md" || summary_rc=$?
echo "summary: $reports/summary.md; full report: $reports/servers/index.html"

# --- drain and exit ------------------------------------------------------------------------------
kill -TERM "$server_pid"
server_rc=""
for _ in $(seq 100); do # DRAIN_WINDOW + CLOSE_TIMEOUT = 2 s; allow 10 s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    server_rc=0
    wait "$server_pid" || server_rc=$?
    break
  fi
  sleep 0.1
done
server_pid_was=$server_pid
if [ -z "$server_rc" ]; then
  echo "autobahn tier: the server (pid $server_pid_was) did not exit within 10 s of SIGTERM" >&2
  tail -n 5 "$reports/server.log" >&2
  exit 1
fi
server_pid=""
grep -E '\] (drain_end|exit) ' "$reports/server.log" | sed 's/^[^]]*\] /server: /' || true
if [ "$server_rc" -ne 0 ]; then
  echo "autobahn tier: the server exited $server_rc after SIGTERM (expected 0)" >&2
  exit 1
fi
[ "$summary_rc" -eq 0 ] || exit "$summary_rc"
echo "autobahn tier passed"
