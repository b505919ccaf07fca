#!/usr/bin/env bash
# Tier: every way a pod ends on GKE, played with real nginx, two real server processes and 200
# reconnecting clients (tools/rollout --endings), half handover-aware and half today's clients,
# pod B ready beside pod A each time:
#   polite    a rolling update (preStop, SIGTERM when it returns, the whole grace period);
#   spot      a Spot VM's preemption: the grace period (2 s) ends while the preStop hook (2 s,
#             answered at 2.5 s) still waits: SIGTERM at 2 s, SIGKILL at 4 s;
#   eviction  the same with a 1 s grace (a hard eviction): SIGTERM at 1 s, SIGKILL at 3 s;
#   kill      SIGKILL in mid-traffic; the load balancer drops the pod 1 s later;
#   freeze    SIGSTOP (sockets open and silent); dropped 1 s later, SIGKILL once all moved.
# Fails on any lost message, any reply shown twice, a client not back on pod B; for spot and
# eviction, pod A not exiting 0 before the SIGKILL, a WebSocket of pod A without a goaway notice
# or a close frame, a drain that is not the short one; for kill and freeze, a client served
# again later than the model's bound. Prometheus watches the polite rollout in rollout.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/tiers/lib/apt.sh
. tests/tiers/lib/apt.sh

need_nginx

cargo build --release --locked -p wsdrain -p rollout
target="${CARGO_TARGET_DIR:-target}"
started=$SECONDS
# Budget rule for the polite rollout: preStop 2 + window 3 + handover 2 + close 2 + 4.5 = 13.5 s, so
# a 14 s grace period. Alive messages every 0.5 s: a frozen pod is given up after 1 s.
timeout 200 "$target/release/rollout" --endings all --clients 200 --old-clients 100 \
  --prestop-delay 2 --drain-window 3 --handover-timeout 2 --close-timeout 2 --grace 14 \
  --spot-grace 2 --eviction-grace 1 --detect 1 --handshake-timeout 1 --alive-interval 0.5 \
  --send-interval 200
echo "endings: $((SECONDS - started)) s"
