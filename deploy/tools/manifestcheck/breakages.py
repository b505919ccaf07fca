"""Known ways to break any rendering, each with the failure the checks must report for it (so the
checks are not vacuous), and the helpers that edit a rendering (a list of objects) in place."""

import math

from .backendconfig import AGE_MARGIN_SECONDS
from .units import seconds

# What the checks say when the budget rule is broken (and nothing else says).
BUDGET = "< PRESTOP_DELAY + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + "
# The server's defaults of the drain's timings (`wsdrain --help`), for a rendering that
# leaves one unset.
DRAIN_DEFAULTS = {"PRESTOP_DELAY": "15s", "DRAIN_WINDOW": "10s", "HANDOVER_TIMEOUT": "5s",
                  "CLOSE_TIMEOUT": "5s"}


def deployment(docs):
    return next(d for d in docs if d["kind"] == "Deployment")


def pod(docs):
    return deployment(docs)["spec"]["template"]["spec"]


def container(docs):
    return pod(docs)["containers"][0]


def set_env(docs, name, value):
    for e in container(docs)["env"]:
        if e["name"] == name:
            e["value"] = value
            return
    container(docs)["env"].append({"name": name, "value": value})


def obj(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


def unset_env(docs, name):
    env = container(docs)["env"]
    env[:] = [e for e in env if e["name"] != name]


def lb_timeout(docs):
    return obj(docs, "BackendConfig")["spec"].get("timeoutSec", 30)


def env_seconds(docs, name):
    """One of the drain's timings in seconds, as the rendering sets it."""
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    return seconds(env.get(name, DRAIN_DEFAULTS[name]))


def close_timeout(docs):
    return env_seconds(docs, "CLOSE_TIMEOUT")


def handover_timeout(docs):
    return env_seconds(docs, "HANDOVER_TIMEOUT")


def drain_time(docs):
    """PRESTOP_DELAY + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT: the drain without the
    budget rule's slack, what the load balancer's draining timeout must cover."""
    return sum(env_seconds(docs, name) for name in DRAIN_DEFAULTS)


def set_grace(docs, grace):
    """terminationGracePeriodSeconds and TERMINATION_GRACE_PERIOD, changed together."""
    pod(docs)["terminationGracePeriodSeconds"] = grace
    set_env(docs, "TERMINATION_GRACE_PERIOD", f"{grace}s")


def age_limit(docs):
    """The longest MAX_CONNECTION_AGE the checks accept: timeoutSec - HANDOVER_TIMEOUT -
    CLOSE_TIMEOUT - the margin."""
    return lb_timeout(docs) - handover_timeout(docs) - close_timeout(docs) - AGE_MARGIN_SECONDS


# Each breaks one rule of any rendering, relative to the rendering's own timings where it must
# (a grace period or draining timeout that breaks deploy/gke's numbers may fit shorter ones).
MUTATIONS = {
    "grace period below the budget, TERMINATION_GRACE_PERIOD with it": (
        lambda ds: set_grace(ds, math.floor(drain_time(ds)) + 1), BUDGET),
    "longer PRESTOP_DELAY without a longer grace period": (
        lambda ds: set_env(ds, "PRESTOP_DELAY", "20s"), BUDGET),
    "TERMINATION_GRACE_PERIOD env out of step": (
        lambda ds: set_env(ds, "TERMINATION_GRACE_PERIOD", "45s"), "TERMINATION_GRACE_PERIOD"),
    "longer HANDOVER_TIMEOUT without a longer grace period": (
        lambda ds: set_env(ds, "HANDOVER_TIMEOUT", "10s"), BUDGET),
    "misspelt setting": (lambda ds: set_env(ds, "DRAIN_WINDOWS", "5s"), "not a wsdrain setting"),
    "admin port in the Service": (
        lambda ds: obj(ds, "Service")["spec"]["ports"].append(
            {"name": "admin", "port": 9090, "targetPort": "admin"}), "admin port"),
    "LB draining 1 s shorter than the drain": (
        lambda ds: obj(ds, "BackendConfig")["spec"]["connectionDraining"].update(
            drainingTimeoutSec=math.ceil(drain_time(ds)) - 1), "drainingTimeoutSec"),
    "LB health check on the public port": (
        lambda ds: obj(ds, "BackendConfig")["spec"]["healthCheck"].update(port=8080),
        "healthCheck port"),
    "unknown BackendConfig field": (
        lambda ds: obj(ds, "BackendConfig")["spec"].update(timeoutSeconds=3600),
        "Additional properties"),
    "readiness on /healthz": (
        lambda ds: container(ds)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "readinessProbe path"),
    "preStop on the public port": (
        lambda ds: container(ds)["lifecycle"]["preStop"]["httpGet"].update(port="http"),
        "preStop port"),
    "maxUnavailable 1": (
        lambda ds: deployment(ds)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
        "maxUnavailable"),
    "writable root filesystem": (
        lambda ds: container(ds)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem"),
    "more connections, same memory": (
        lambda ds: set_env(ds, "MAX_CONNECTIONS", "20000"), "memory request"),
    # The connection age against the load balancer's timeoutSec.
    "MAX_CONNECTION_AGE = timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT": (
        lambda ds: set_env(ds, "MAX_CONNECTION_AGE",
                        f"{lb_timeout(ds) - handover_timeout(ds) - close_timeout(ds):g}s"),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE = timeoutSec, in hours": (
        lambda ds: set_env(ds, "MAX_CONNECTION_AGE", f"{lb_timeout(ds) / 3600:g}h"),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE 1 s over the margin, in plain seconds": (
        lambda ds: set_env(ds, "MAX_CONNECTION_AGE", f"{age_limit(ds) + 1:g}"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE 59m, inside the rule but not the margin": (
        lambda ds: set_env(ds, "MAX_CONNECTION_AGE", "59m"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE the server refuses (a space)": (
        lambda ds: set_env(ds, "MAX_CONNECTION_AGE", "3530 s"),
        "not a duration the server accepts"),
}

# Only where MAX_CONNECTION_AGE must be set (--require-max-connection-age, deploy/gke): these
# break the rule by changing the other side of it, or drop the setting.
MUTATIONS_WITH_AGE = {
    "longer CLOSE_TIMEOUT, same MAX_CONNECTION_AGE": (
        lambda ds: set_env(ds, "CLOSE_TIMEOUT", f"{close_timeout(ds) + 1:g}s"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "longer HANDOVER_TIMEOUT, same MAX_CONNECTION_AGE": (
        lambda ds: set_env(ds, "HANDOVER_TIMEOUT", f"{handover_timeout(ds) + 1:g}s"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "timeoutSec lowered to MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT": (
        lambda ds: obj(ds, "BackendConfig")["spec"].update(
            timeoutSec=int(seconds(next(e["value"] for e in container(ds)["env"]
                                        if e["name"] == "MAX_CONNECTION_AGE"))
                           + handover_timeout(ds) + close_timeout(ds))),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE left off": (
        lambda ds: unset_env(ds, "MAX_CONNECTION_AGE"), "MAX_CONNECTION_AGE must be set"),
}
