"""The wsdrain pod: its settings against `wsdrain --help`, the budget rule, probes and preStop
hook, the rolling update, the security context and the memory sized for MAX_CONNECTIONS."""

import math

from .failures import check, failures
from .k8s import port_number
from .units import quantity_bytes, seconds

# Memory per WebSocket connection, measured (benches/RESULTS.md, issue 3): server RSS per idle
# WebSocket, kernel slab per socket (server side), kernel TCP buffers per connection.
# The highest per-connection figures measured (benches/RESULTS.md, 1,000-19,000 idle WebSockets):
# server RSS 258 B, kernel slab 5,545 B per socket, kernel TCP buffers 315 B.
BYTES_PER_CONNECTION = 258 + 5545 + 315
PROCESS_BASE_BYTES = 2 * 1024 * 1024
GOOGLE_LB_KEEPALIVE_SECONDS = 600
# The durations the rules below (and backendconfig.py, spot.py) need, in seconds.
DURATIONS = ("PRESTOP_DELAY", "DRAIN_WINDOW", "HANDOVER_TIMEOUT", "CLOSE_TIMEOUT",
             "TERMINATION_GRACE_PERIOD", "IDLE_TIMEOUT", "MAX_CONNECTION_AGE")


def check_deployment(dep, defaults, slack):
    """The rules on the Deployment; returns what the other objects are checked against (ports,
    labels, durations), or None when its settings cannot be read."""
    name = dep["metadata"]["name"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    containers = [c for c in pod["containers"] if c["name"] == "wsdrain"]
    if not check(len(containers) == 1, f"Deployment {name}: no container named wsdrain"):
        return None
    c = containers[0]
    env, env_from = {}, {}
    for e in c.get("env", []):
        check(e["name"] in defaults, f"{name}: env {e['name']} is not a wsdrain setting")
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env_from[e["name"]] = e.get("valueFrom", {})
    settings = {**defaults, **env}
    # Durations (unset ones take the server's default from --help, e.g. CLOSE_TIMEOUT 5s).
    dur, before = {}, len(failures)
    for k in DURATIONS:
        if k == "TERMINATION_GRACE_PERIOD" and settings.get(k, "") == "":
            continue  # the only one that may be empty: then the server does not check the budget
        try:
            dur[k] = seconds(settings.get(k, ""))
        except ValueError as e:
            failures.append(f"{name}: env {k}: {e}")
    if len(failures) > before:
        return None

    # Budget rule and the server's own check of it.
    p, d, cl = dur["PRESTOP_DELAY"], dur["DRAIN_WINDOW"], dur["CLOSE_TIMEOUT"]
    h = dur["HANDOVER_TIMEOUT"]
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(
        tgps >= p + d + h + cl + slack,
        f"{name}: terminationGracePeriodSeconds {tgps} < PRESTOP_DELAY + DRAIN_WINDOW + "
        f"HANDOVER_TIMEOUT + CLOSE_TIMEOUT + {slack:g} = {p + d + h + cl + slack:g}",
    )
    check(
        "TERMINATION_GRACE_PERIOD" in env and dur.get("TERMINATION_GRACE_PERIOD") == tgps,
        f"{name}: env TERMINATION_GRACE_PERIOD must equal terminationGracePeriodSeconds {tgps}",
    )
    check(
        env_from.get("INSTANCE_ID", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
        f"{name}: INSTANCE_ID must come from the pod name (fieldRef metadata.name)",
    )
    check(
        dur["IDLE_TIMEOUT"] > GOOGLE_LB_KEEPALIVE_SECONDS,
        f"{name}: IDLE_TIMEOUT must exceed the Google LB's {GOOGLE_LB_KEEPALIVE_SECONDS} s",
    )

    # Ports, probes and the preStop hook against the server's (effective) ports and paths.
    public, admin = int(settings["PORT"]), int(settings["ADMIN_PORT"])
    ports = {pt.get("name"): pt["containerPort"] for pt in c.get("ports", [])}
    check(public in ports.values(), f"{name}: PORT {public} is not a containerPort")
    check(admin in ports.values(), f"{name}: ADMIN_PORT {admin} is not a containerPort")
    hooks = {
        "livenessProbe": (c.get("livenessProbe") or {}).get("httpGet"),
        "readinessProbe": (c.get("readinessProbe") or {}).get("httpGet"),
        "preStop": ((c.get("lifecycle") or {}).get("preStop") or {}).get("httpGet"),
    }
    want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "preStop": "/prestop"}
    for hook, get in hooks.items():
        if check(get is not None, f"{name}: {hook} must be an httpGet"):
            check(get.get("path") == want[hook], f"{name}: {hook} path {get.get('path')}")
            check(
                port_number(c, get.get("port")) == admin,
                f"{name}: {hook} port {get.get('port')} is not the admin port {admin}",
            )

    # Rolling update: never fewer ready pods than wanted.
    ru = spec.get("strategy", {}).get("rollingUpdate", {})
    check(ru.get("maxUnavailable") in (0, "0", "0%"), f"{name}: maxUnavailable must be 0")
    surge = ru.get("maxSurge", "25%")
    surge_ok = (
        int(surge[:-1]) >= 25 if isinstance(surge, str) and surge.endswith("%")
        else int(surge) >= math.ceil(0.25 * spec.get("replicas", 1))
    )
    check(surge_ok, f"{name}: maxSurge {surge} < 25%")

    check_security(name, pod, c)
    check_memory(name, c, settings)
    return {"name": name, "public": public, "admin": admin, "ports": ports, "container": c,
            "prestop": p, "durations": dur, "grace": tgps,
            "labels": spec["template"]["metadata"]["labels"],
            "namespace": dep["metadata"].get("namespace")}


def check_security(name, pod, c):
    """The security context (container settings win over the pod's), and the zone spread."""
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    eff = lambda k: csc.get(k, psc.get(k))  # noqa: E731
    check(eff("runAsNonRoot") is True, f"{name}: runAsNonRoot must be true")
    check(eff("runAsUser") == 65532, f"{name}: runAsUser must be 65532")
    check(eff("runAsGroup") == 65532, f"{name}: runAsGroup must be 65532")
    check(csc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), f"{name}: drop ALL capabilities")
    check(
        (eff("seccompProfile") or {}).get("type") == "RuntimeDefault",
        f"{name}: seccompProfile RuntimeDefault",
    )
    check(
        any(t.get("topologyKey") == "topology.kubernetes.io/zone"
            for t in pod.get("topologySpreadConstraints", [])),
        f"{name}: no topology spread across zones",
    )


def check_memory(name, c, settings):
    """Memory sized for MAX_CONNECTIONS (the comment in deployment.yaml shows the arithmetic)."""
    res = c.get("resources", {})
    req = res.get("requests", {}).get("memory")
    lim = res.get("limits", {}).get("memory")
    if check(req and lim, f"{name}: memory request and limit must be set"):
        max_conn = settings["MAX_CONNECTIONS"]
        if check(max_conn != "auto", f"{name}: MAX_CONNECTIONS must be set to the sized target"):
            need = int(max_conn) * BYTES_PER_CONNECTION + PROCESS_BASE_BYTES
            check(
                quantity_bytes(req) >= need,
                f"{name}: memory request {req} < {max_conn} x {BYTES_PER_CONNECTION} B + 2 MiB "
                f"= {need / 2**20:.1f} MiB",
            )
            check(quantity_bytes(lim) >= quantity_bytes(req), f"{name}: limit < request")
