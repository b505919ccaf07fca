#!/usr/bin/env bash
# Tier: the browser client (static/). Unit tests of static/client.js with node's test runner (fake
# clock and WebSocket: tests/browser/unit/), then the page in headless Chromium against real wsdrain
# processes (tests/browser/e2e/, one topic a file, run one after the other): reversed replies,
# alive messages, a drain (1012) and restart on the same port with nothing lost or shown twice, a
# long outage with the reconnect countdown, the handover between two servers, the impolite
# endings (SIGKILL, SIGSTOP, a handover cut short by either, the short drain), a non-blank
# screenshot (tests/artifacts/browser-page.png, copied to docs/screenshot.png), no console errors.
# Installs what is missing: Debian's chromium (never a downloaded browser) and playwright-core
# (pinned in tests/browser/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/tiers/lib/apt.sh
. tests/tiers/lib/apt.sh

if ! command -v node >/dev/null 2>&1; then
  echo "browser tier: node is missing (node >= 20 is needed)" >&2
  exit 1
fi

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)"
  apt_install --with-recommends chromium
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "installing playwright-core (npm ci in tests/browser)"
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 120 npm ci --no-audit --no-fund --loglevel=error)
fi

# Always build: a no-op when up to date, and the page must be tested against the current server.
timeout 200 cargo build --release --locked --bin wsdrain
# The binary the browser tests run: the one just built (also under a CARGO_TARGET_DIR), unless given.
export WSDRAIN_BIN="${WSDRAIN_BIN:-${CARGO_TARGET_DIR:-target}/release/wsdrain}"

work=$(mktemp -d)
pidfile="$work/pids"
: >"$pidfile"
cleanup() {
  # Servers the browser test started that are still running: only our own binary, by pid.
  local pid exe
  exe=$(readlink -f "$WSDRAIN_BIN" || true) # (no binary: nothing of ours can be running)
  while read -r pid; do
    if [ -z "$pid" ] || [ -z "$exe" ]; then continue; fi
    if [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$pidfile"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

mkdir -p tests/artifacts

# Files, never a directory: Node >= 21 takes a directory argument for a file (MODULE_NOT_FOUND).
# (tests/browser/unit/tier.test.mjs checks that these globs name every test file.)
echo "--- unit tests: node --test tests/browser/unit/*.test.mjs"
timeout 60 node --test tests/browser/unit/*.test.mjs

# One file at a time: each starts its own servers and Chromium, and their timing must not
# compete for the machine's cores.
echo "--- browser tests: headless $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
WSDRAIN_PIDFILE="$pidfile" BROWSER_TMP="$work" \
  timeout --kill-after=10 150 node --test --test-concurrency=1 --test-reporter=spec tests/browser/e2e/*.test.mjs
