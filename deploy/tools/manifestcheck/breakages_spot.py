"""Known ways to break what deploy/gke-spot adds (--require-spot): the Spot node selector and
toleration, the 15 s of a preemption, and the probes that must notice /readyz 503 within the
shorter PreStop."""

from .breakages import BUDGET, container, drain_time, env_seconds, obj, pod, set_env, set_grace
from .spot import SPOT_GRACE_SECONDS, SPOT_LABEL

GRACE = "more has no effect there"
TOLERATION = "no toleration for the Spot taint"


def _toleration(docs):
    return pod(docs)["tolerations"][0]


def _longer_window(docs):
    """DRAIN_WINDOW taking all but 1 s of what the grace period leaves beyond the drain."""
    left = pod(docs)["terminationGracePeriodSeconds"] - drain_time(docs)
    set_env(docs, "DRAIN_WINDOW", f"{env_seconds(docs, 'DRAIN_WINDOW') + left - 1:g}s")


MUTATIONS_SPOT = {
    "grace 30 s on Spot, TERMINATION_GRACE_PERIOD with it": (
        lambda ds: set_grace(ds, 30), GRACE),
    "grace 1 s over Spot's 15 s, TERMINATION_GRACE_PERIOD with it": (
        lambda ds: set_grace(ds, SPOT_GRACE_SECONDS + 1), GRACE),
    "Spot nodeSelector missing": (
        lambda ds: pod(ds).pop("nodeSelector"), "nodeSelector must hold"),
    "nodeSelector for nodes that are not Spot": (
        lambda ds: pod(ds)["nodeSelector"].update({SPOT_LABEL: "false"}),
        "nodeSelector must hold"),
    "Spot toleration missing": (lambda ds: pod(ds).pop("tolerations"), TOLERATION),
    "toleration for NoExecute, not the Spot taint's NoSchedule": (
        lambda ds: _toleration(ds).update(effect="NoExecute"), TOLERATION),
    "toleration for the preemptible taint instead": (
        lambda ds: _toleration(ds).update(key="cloud.google.com/gke-preemptible"), TOLERATION),
    "toleration of the value false": (
        lambda ds: _toleration(ds).update(value="false"), TOLERATION),
    "toleration of every taint (no key, Exists)": (
        lambda ds: pod(ds).update(tolerations=[{"operator": "Exists"}]), "tolerates every taint"),
    "DRAIN_WINDOW longer, 1 s of slack left in the grace period": (_longer_window, BUDGET),
    "readiness probe as in deploy/gke (5 s x 2)": (
        lambda ds: container(ds)["readinessProbe"].update(
            periodSeconds=5, timeoutSeconds=2, failureThreshold=2),
        "the readiness probe sees /readyz 503 only after 10 s"),
    "LB health check as in deploy/gke (5 s x 2)": (
        lambda ds: obj(ds, "BackendConfig")["spec"]["healthCheck"].update(
            checkIntervalSec=5, timeoutSec=3), "the LB sees /readyz 503 only after 10 s"),
    "PRESTOP_DELAY 3s, shorter than the LB's 4 s to notice": (
        lambda ds: set_env(ds, "PRESTOP_DELAY", "3s"), "later than PRESTOP_DELAY 3 s"),
}
