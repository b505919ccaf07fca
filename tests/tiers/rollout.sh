#!/usr/bin/env bash
# Tier: a rolling update played with real nginx, two real server processes and 200 reconnecting
# clients (tools/rollout), half of them handover-aware and half today's clients. Fails on any
# lost message, any 1006 during the drain, an aware client with a gap or a re-send, a pod that
# outlives its grace period, or closes that are not spread over the drain window.
# A real Prometheus (Debian's package) scrapes both pods each second; the run fails when the
# story its series tell disagrees with the clients (pod A's phases, the WebSockets per pod and
# in all, close timeouts, the message balance, the handover counters) or when a query of the
# Grafana dashboard returns nothing. The picture of the run: tests/artifacts/rollout.svg. Then
# the same run with the pods' labels swapped in Prometheus must fail on the metrics' story.
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
tmp_swap="$(mktemp)"
trap 'rm -f "$tmp_swap"' EXIT
# Budget rule: preStop 2 + 0.5 (the /prestop tie break) + window 3 + handover 2 + close 2 + 4
# = 13.5 s, so a 14 s grace period. A 2 s preStop is seen by two 1 s scrapes (at least one even
# if a scrape comes late).
args=(--clients 200 --old-clients 100 --prestop-delay 2 --drain-window 3 --handover-timeout 2
  --close-timeout 2 --grace 14 --send-interval 200 --prometheus)
# Each run's own limit leaves the second one room inside the tier's 240 s.
timeout 110 "$target/release/rollout" "${args[@]}" --svg tests/artifacts/rollout.svg

# The same with Prometheus told to label each pod as the other: the metrics' story must then
# disagree with the clients' (the checks can fail), and nothing else may.
echo "--- the same rollout with the pods' labels swapped: the story checks must fail"
rc=0
timeout 110 "$target/release/rollout" "${args[@]}" --swap-pod-labels >"$tmp_swap" 2>&1 || rc=$?
grep '^rollout: FAIL' "$tmp_swap" | head -20 || true
if [ "$rc" -ne 1 ] || ! grep -q '^rollout: FAIL: Prometheus: ' "$tmp_swap" ||
  grep '^rollout: FAIL: ' "$tmp_swap" | grep -qv '^rollout: FAIL: Prometheus: '; then
  echo "with the labels swapped the run should fail on the metrics' story alone (exit $rc)"
  tail -40 "$tmp_swap"
  exit 1
fi
echo "swapped labels: the metrics' story checks failed, as they must"
# A run that does not pass keeps its logs (and Prometheus's data); this one failed on purpose.
kept="$(sed -n 's/^logs kept in //p' "$tmp_swap")"
if [ -n "$kept" ]; then rm -rf "$kept"; fi
