#!/usr/bin/env bash
# Tier: a rolling update played with real nginx, two real server processes and 200 reconnecting
# clients (tools/rollout), half of them handover-aware and half today's clients. Fails on any
# lost message, any 1006 during the drain, an aware client with a gap or a re-send, a pod that
# outlives its grace period, or closes that are not spread over the drain window.
# A real Prometheus (Debian's package) scrapes both pods each second; the run fails when the
# story its series tell disagrees with the clients (pod A's phases, the WebSockets per pod and
# in all, close timeouts, the message balance, the handover counters) or when a query of the
# Grafana dashboard returns nothing. The picture of the run: tests/artifacts/rollout.svg.
set -euo pipefail
cd "$(dirname "$0")/../.."

export DEBIAN_FRONTEND=noninteractive
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ] && ! apt-cache show "$1" >/dev/null 2>&1; then
    timeout 120 apt-get -o DPkg::Lock::Timeout=60 update -qq
    apt_updated=1
  fi
  local log rc=0
  log="$(mktemp)"
  timeout 180 apt-get -o DPkg::Lock::Timeout=60 install -y -qq --no-install-recommends "$1" \
    >"$log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || tail -20 "$log"
  rm -f "$log"
  return "$rc"
}

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx-light (the load balancer stand-in)"
  apt_install nginx-light
fi

if [ ! -x /usr/bin/prometheus ]; then
  echo "installing prometheus (Debian's package; the harness runs its own instance)"
  started=$SECONDS
  # The package enables a service and asks invoke-rc.d to start it: a policy-rc.d that answers
  # 101 ("not allowed") keeps it from starting. Container images often ship one; add it if not.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added_policy=1
  fi
  before="$(pgrep -x prometheus || true)"
  rc=0
  apt_install prometheus || rc=$?
  [ -z "$added_policy" ] || rm -f "$policy"
  # Whatever the install started anyway is stopped, by pid: only processes that were not
  # running before it.
  for pid in $(pgrep -x prometheus || true); do
    if ! grep -qx "$pid" <<<"$before"; then
      echo "stopping prometheus pid $pid started by the package"
      kill "$pid" 2>/dev/null || true
    fi
  done
  [ "$rc" -eq 0 ] || { echo "apt-get install prometheus failed ($rc)"; exit 1; }
  echo "prometheus installed in $((SECONDS - started)) s"
fi

cargo build --release --locked -p wsdrain -p rollout
target="${CARGO_TARGET_DIR:-target}"
mkdir -p tests/artifacts
# Budget rule: preStop 2 + window 3 + handover 2 + close 2 + 4 = 13 s, so a 14 s grace period.
# A 2 s preStop is seen by two 1 s scrapes (at least one even if a scrape comes late).
timeout 120 "$target/release/rollout" --clients 200 --old-clients 100 --prestop-delay 2 \
  --drain-window 3 --handover-timeout 2 --close-timeout 2 --grace 14 --send-interval 200 \
  --prometheus --svg tests/artifacts/rollout.svg
