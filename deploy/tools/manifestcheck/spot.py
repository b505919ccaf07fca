"""GKE Spot node pools (deploy/gke-spot): the pods go to Spot nodes and tolerate their taint, and
the whole drain fits the 15 s a preemption leaves them (sources in
deploy/gke-spot/kustomization.yaml)."""

from .failures import check

# The label GKE puts on every Spot node, and the taint it documents for Spot node pools:
# cloud.google.com/gke-spot="true":NoSchedule.
SPOT_LABEL = "cloud.google.com/gke-spot"
SPOT_TAINT = {"key": SPOT_LABEL, "value": "true", "effect": "NoSchedule"}
# What GKE's graceful node shutdown gives a non-system pod when its Spot VM is preempted; a
# longer terminationGracePeriodSeconds has no effect there.
SPOT_GRACE_SECONDS = 15
# Kubernetes' defaults for a probe left without them.
PROBE_PERIOD_SECONDS, PROBE_FAILURE_THRESHOLD = 10, 3


def tolerates(toleration, taint):
    """Whether a toleration tolerates a taint, as the scheduler decides it: an empty key with
    operator Exists tolerates every key, an empty effect every effect."""
    effect, key = toleration.get("effect", ""), toleration.get("key", "")
    if effect and effect != taint["effect"]:
        return False
    if key and key != taint["key"]:
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and toleration.get("value", "") == taint["value"]


def check_spot(deployment, dep):
    """The Spot rules on the Deployment (dep: what check_deployment returned for it)."""
    name, pod = dep["name"], deployment["spec"]["template"]["spec"]
    selector = pod.get("nodeSelector") or {}
    check(selector.get(SPOT_LABEL) == "true",
          f'{name}: nodeSelector must hold {SPOT_LABEL}: "true", the label of every Spot node '
          f"(have {selector})")
    tolerations = pod.get("tolerations") or []
    check(any(tolerates(t, SPOT_TAINT) for t in tolerations),
          f"{name}: no toleration for the Spot taint {SPOT_LABEL}=true:NoSchedule: the pods "
          "cannot go to the Spot node pools that carry it")
    for t in tolerations:
        check(t.get("key"),
              f"{name}: toleration {t} has no key, so it tolerates every taint "
              "(node.kubernetes.io/unreachable too: a pod would stay on a lost node)")
    grace = dep["grace"]
    check(grace <= SPOT_GRACE_SECONDS,
          f"{name}: terminationGracePeriodSeconds {grace} > {SPOT_GRACE_SECONDS}: a preempted "
          f"Spot node gives its pods at most {SPOT_GRACE_SECONDS} s and more has no effect "
          f"there, so the budget rule must hold within {SPOT_GRACE_SECONDS} s")
    probe = dep["container"].get("readinessProbe") or {}
    notice = (probe.get("periodSeconds", PROBE_PERIOD_SECONDS)
              * probe.get("failureThreshold", PROBE_FAILURE_THRESHOLD))
    check(notice <= dep["prestop"],
          f"{name}: the readiness probe sees /readyz 503 only after {notice} s, later than "
          f"PRESTOP_DELAY {dep['prestop']:g} s: a preempted pod is not deleted, so only "
          "failing readiness takes it out of the EndpointSlices before SIGTERM closes its "
          "listener")
