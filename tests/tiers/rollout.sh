#!/usr/bin/env bash
# Tier: a rolling update played with real nginx, two real server processes and 200 reconnecting
# clients (tools/rollout), half of them handover-aware and half today's clients. Fails on any
# lost message, any 1006 during the drain, an aware client with a gap or a re-send, a pod that
# outlives its grace period, or closes that are not spread over the drain window.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx-light (the load balancer stand-in)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 120 apt-get update -qq
  timeout 120 apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi

cargo build --release --locked -p wsdrain -p rollout
target="${CARGO_TARGET_DIR:-target}"
# Budget rule: preStop 2 + window 3 + handover 2 + close 2 + 4 = 13 s, so a 14 s grace period.
timeout 120 "$target/release/rollout" --clients 200 --old-clients 100 --prestop-delay 2 \
  --drain-window 3 --handover-timeout 2 --close-timeout 2 --grace 14 --send-interval 200
