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

# shellcheck source=tests/tiers/lib/apt.sh
. tests/tiers/lib/apt.sh

need_nginx

if [ ! -x /usr/bin/prometheus ]; then
  echo "installing prometheus (Debian's package; the harness runs its own instance)"
  install_prometheus
fi

cargo build --release --locked -p wsdrain -p rollout
target="${CARGO_TARGET_DIR:-target}"
mkdir -p tests/artifacts
# Budget rule: preStop 2 + window 3 + handover 2 + close 2 + 4 = 13 s, so a 14 s grace period.
# A 2 s preStop is seen by two 1 s scrapes (at least one even if a scrape comes late).
timeout 120 "$target/release/rollout" --clients 200 --old-clients 100 --prestop-delay 2 \
  --drain-window 3 --handover-timeout 2 --close-timeout 2 --grace 14 --send-interval 200 \
  --prometheus --svg tests/artifacts/rollout.svg
