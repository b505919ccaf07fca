#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests (`kubectl kustomize deploy/X`) against the server itself.

  check_manifests.py --help-text HELP --schema-dir deploy/schemas --k8s-out OUT.yaml \
      [--require-max-connection-age] [--require-gke-objects] RENDERED.yaml

The server's settings, defaults and budget rule come from `wsdrain --help` (HELP), so the
manifests cannot drift from the binary. Writes the standard Kubernetes objects to OUT.yaml
for kubernetes-validate (NetworkPolicy among them); validates the custom resources here
against the JSON schemas in --schema-dir (BackendConfig: backendconfig.json; PodMonitoring and
Rules of Managed Service for Prometheus: podmonitoring.json, rules.json, from the upstream
CRDs); then asserts what the drain needs: the budget rule, the load balancer's draining
timeout, the connection age against the load balancer's timeoutSec, probe and preStop paths
and ports, the admin port kept off the Service, the security context, memory sized for
MAX_CONNECTIONS, maxUnavailable 0. And what fences the admin port: a NetworkPolicy on the pods
lets only the load balancer's ranges reach the public port, only the load balancer's health
checks and the metrics collectors' namespaces reach the admin port, and nothing out; the
PodMonitoring scrapes the admin port's /metrics; the Rules object holds exactly the groups of
deploy/monitoring/rules.yaml (deploy/tools/gmp.py).
--require-max-connection-age (the deploy/gke rendering) also fails a rendering that leaves
MAX_CONNECTION_AGE off; --require-gke-objects (deploy/gke too) one without exactly one
PodMonitoring, Rules and NetworkPolicy (deploy/base has none: they need GKE's Managed Service
for Prometheus and network policy enforcement). Run by tests/tiers/manifests.sh.
"""

import argparse
import ipaddress
import json
import math
import os
import re
import sys

import jsonschema
import yaml

sys.dont_write_bytecode = True  # no __pycache__ in deploy/tools from the import below
import gmp  # noqa: E402  deploy/tools/gmp.py: the Rules generator, to compare with

# Memory per WebSocket connection, measured (benches/RESULTS.md, issue 3): server RSS per idle
# WebSocket, kernel slab per socket (server side), kernel TCP buffers per connection.
# The highest per-connection figures measured (benches/RESULTS.md, 1,000-19,000 idle WebSockets):
# server RSS 258 B, kernel slab 5,545 B per socket, kernel TCP buffers 315 B.
BYTES_PER_CONNECTION = 258 + 5545 + 315
PROCESS_BASE_BYTES = 2 * 1024 * 1024
GOOGLE_LB_KEEPALIVE_SECONDS = 600
# MAX_CONNECTION_AGE <= timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT - this
# (deploy/gke/deployment.yaml): the margin beyond the rule
# MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT < timeoutSec.
AGE_MARGIN_SECONDS = 60
# The longest duration the server accepts (MAX_DURATION in src/config/parse.rs: 10 days).
MAX_DURATION_SECONDS = 10 * 24 * 3600

# The custom resources validated here, each against deploy/schemas/<kind in lower case>.json;
# every other object goes to kubernetes-validate.
CRD_KINDS = ("BackendConfig", "PodMonitoring", "Rules")
# In deploy/gke only (--require-gke-objects).
GKE_KINDS = ("PodMonitoring", "Rules", "NetworkPolicy")

# Where the external Application Load Balancer's connections and health checks come from, for
# backends in zonal NEGs (GCE_VM_IP_PORT, container-native load balancing): the health check
# ranges, which the GFE proxies share (https://cloud.google.com/load-balancing/docs/firewall-rules).
LB_RANGES = tuple(ipaddress.ip_network(r) for r in ("130.211.0.0/22", "35.191.0.0/16"))
# Where Managed Service for Prometheus runs its collectors: gmp-system (the upstream operator,
# GoogleCloudPlatform/prometheus-engine manifests/operator.yaml); gke-gmp-system where GKE
# manages it (Autopilot). Named by the label the control plane sets on every namespace.
COLLECTOR_NAMESPACES = ("gmp-system", "gke-gmp-system")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def seconds(text):
    """A duration exactly as the server parses it (parse_duration in src/config/parse.rs): digits with
    at most one inner dot, then nothing (seconds), ms, s, m or h; no space inside; at most 10
    days. Anything else raises ValueError, as the server refuses to start on it."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?", str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration the server accepts (15s, 500ms, 2m, 1h, 15)")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if value > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is too long for the server (at most 10 days)")
    return value


# (text, seconds or None for refused): the cases of the server's own test (config.rs durations).
DURATION_CASES = [
    ("15s", 15), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("15", 15), ("0.5", 0.5), ("0", 0),
    ("1.5s", 1.5), ("3470s", 3470), ("57m", 3420),
    ("", None), ("s", None), ("1x", None), ("-1", None), (".5", None), ("5.", None),
    ("1e3", None), ("15 s", None), ("31d", None), ("99999999h", None), ("NaN", None),
]


def duration_case_failures():
    bad = []
    for text, want in DURATION_CASES:
        try:
            got = seconds(text)
        except ValueError:
            got = None
        if got != want:
            bad.append(f"seconds({text!r}) = {got}, the server's parse_duration gives {want}")
    return bad


def quantity_bytes(q):
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|K|M|G)?", str(q))
    mult = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1e3, "M": 1e6, "G": 1e9, None: 1}
    return float(m.group(1)) * mult[m.group(2)]


def parse_help(text):
    defaults = dict(re.findall(r"^\s+--[\w-]+\s+([A-Z_]+)\s+\[default: ([^\]]*)\]", text, re.M))
    m = re.search(
        r"PRESTOP_DELAY \+ DRAIN_WINDOW \+ HANDOVER_TIMEOUT \+ CLOSE_TIMEOUT \+ (\d+)s "
        r"<= TERMINATION_GRACE_PERIOD",
        text,
    )
    if not defaults or not m:
        sys.exit("check_manifests: cannot read the settings or the budget rule from --help")
    return defaults, int(m.group(1))


def port_number(container, port):
    """A probe/hook port (number or name) as a number, or None."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_deployment(dep, defaults, slack, backendconfigs, require_age):
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
    for k in ("PRESTOP_DELAY", "DRAIN_WINDOW", "HANDOVER_TIMEOUT", "CLOSE_TIMEOUT",
              "TERMINATION_GRACE_PERIOD", "IDLE_TIMEOUT", "MAX_CONNECTION_AGE"):
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
        f"HANDOVER_TIMEOUT + CLOSE_TIMEOUT + {slack} = {p + d + h + cl + slack:g}",
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

    # Security context (container settings win over the pod's).
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

    # Memory sized for MAX_CONNECTIONS (the comment in deployment.yaml shows the arithmetic).
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

    # The load balancer's draining timeout and connection lifetime.
    for bc in backendconfigs:
        bname = bc["metadata"]["name"]
        bs = bc["spec"]
        drain = bs.get("connectionDraining", {}).get("drainingTimeoutSec", 0)
        check(
            drain >= p + d + h + cl,
            f"BackendConfig {bname}: drainingTimeoutSec {drain} < PRESTOP_DELAY + DRAIN_WINDOW "
            f"+ HANDOVER_TIMEOUT + CLOSE_TIMEOUT = {p + d + h + cl:g}",
        )
        # The load balancer cuts every WebSocket at timeoutSec. The server must have closed it
        # by then: the goaway notice goes out at MAX_CONNECTION_AGE at the latest (it draws up
        # to 10 % less), the close 1012 at most HANDOVER_TIMEOUT later, and the close handshake
        # may take CLOSE_TIMEOUT more.
        age = dur["MAX_CONNECTION_AGE"]
        timeout = bs.get("timeoutSec", 30)
        if age:
            check(
                age + h + cl < timeout,
                f"BackendConfig {bname}: timeoutSec {timeout} must exceed MAX_CONNECTION_AGE + "
                f"HANDOVER_TIMEOUT + CLOSE_TIMEOUT = {age:g} + {h:g} + {cl:g} = "
                f"{age + h + cl:g} s",
            )
            limit = timeout - h - cl - AGE_MARGIN_SECONDS
            check(
                age <= limit,
                f"{name}: MAX_CONNECTION_AGE {age:g} s is over timeoutSec - HANDOVER_TIMEOUT - "
                f"CLOSE_TIMEOUT - {AGE_MARGIN_SECONDS} s = {timeout} - {h:g} - {cl:g} - "
                f"{AGE_MARGIN_SECONDS} = {limit:g} s (BackendConfig {bname})",
            )
        else:
            check(
                not require_age,
                f"{name}: MAX_CONNECTION_AGE must be set: BackendConfig {bname} timeoutSec "
                f"{timeout} ends every WebSocket that the server has not closed",
            )
            check(
                timeout >= 3600,
                f"BackendConfig {bname}: timeoutSec {timeout} < 3600 without MAX_CONNECTION_AGE",
            )
        hc = bs.get("healthCheck", {})
        check(hc.get("type") == "HTTP", f"BackendConfig {bname}: healthCheck type HTTP")
        check(hc.get("requestPath") == "/readyz", f"BackendConfig {bname}: healthCheck /readyz")
        check(hc.get("port") == admin, f"BackendConfig {bname}: healthCheck port {admin}")
        check(
            hc.get("timeoutSec", 5) <= hc.get("checkIntervalSec", 5),
            f"BackendConfig {bname}: healthCheck timeoutSec > checkIntervalSec",
        )
        notice = hc.get("checkIntervalSec", 5) * hc.get("unhealthyThreshold", 2)
        check(
            notice <= p,
            f"BackendConfig {bname}: the LB sees /readyz 503 only after {notice} s, later than "
            f"PRESTOP_DELAY {p:g} s",
        )
    return {"public": public, "admin": admin, "ports": ports, "container": c, "prestop": p,
            "labels": spec["template"]["metadata"]["labels"],
            "namespace": dep["metadata"].get("namespace")}


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions) selects these labels."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        have, op, values = e["key"] in labels, e["operator"], e.get("values") or []
        ok = {"In": have and labels[e["key"]] in values,
              "NotIn": not have or labels[e["key"]] not in values,
              "Exists": have, "DoesNotExist": not have}[op]
        if not ok:
            return False
    return True


def prometheus_seconds(text):
    """A Prometheus duration (30s, 1m, 1m30s, 500ms) in seconds, or None."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(int(n) * units[u] for n, u in parts)


def check_podmonitoring(pm, dep):
    """The collectors scrape /metrics on the admin port of exactly these pods, often enough."""
    name = f"PodMonitoring {pm['metadata']['name']}"
    spec = pm.get("spec", {})
    check(pm["metadata"].get("namespace") == dep["namespace"],
          f"{name}: not in the pods' namespace {dep['namespace']} (it selects pods of its own)")
    check(spec.get("selector") and selects(spec["selector"], dep["labels"]),
          f"{name}: selector {spec.get('selector')} does not select the wsdrain pods")
    endpoints = spec.get("endpoints") or []
    check(endpoints, f"{name}: no endpoints")
    for ep in endpoints:
        port = ep.get("port")
        check(port_number(dep["container"], port) == dep["admin"],
              f"{name}: endpoint port {port} is not the admin port {dep['admin']} "
              "(the metrics are there; the public port has none, and is not for the collectors)")
        check(ep.get("path", "/metrics") == "/metrics",
              f"{name}: endpoint path {ep.get('path')}, want /metrics")
        check(ep.get("scheme", "http") == "http", f"{name}: scheme {ep.get('scheme')}, want http")
        interval = prometheus_seconds(ep.get("interval"))
        if check(interval, f"{name}: interval {ep.get('interval')!r} is not a duration"):
            # PreStop is the shortest phase (PRESTOP_DELAY); scraped less often, a pod's
            # prestop could fall between two scrapes and never show in wsdrain_phase.
            check(interval <= dep["prestop"],
                  f"{name}: interval {ep.get('interval')} is longer than PRESTOP_DELAY "
                  f"{dep['prestop']:g} s: a pod's PreStop phase could go unseen")
            if "timeout" in ep:
                timeout = prometheus_seconds(ep["timeout"])
                check(timeout and timeout <= interval,
                      f"{name}: timeout {ep['timeout']} must be a duration <= interval")


def check_rules(rules, dep):
    """The Rules object carries deploy/monitoring/rules.yaml, as deploy/tools/gmp.py writes it."""
    name = f"Rules {rules['metadata']['name']}"
    check(rules["metadata"].get("namespace") == dep["namespace"],
          f"{name}: not in the pods' namespace {dep['namespace']} (Rules see only their "
          "namespace's metrics)")
    try:
        with open(os.path.join(gmp.ROOT, gmp.SOURCE_RULES)) as f:
            want = gmp.gmp_groups(yaml.safe_load(f))
    except (OSError, gmp.RulesError) as e:
        failures.append(f"{name}: cannot read {gmp.SOURCE_RULES}: {e}")
        return
    check(rules.get("spec", {}).get("groups") == want,
          f"{name}: out of step with {gmp.SOURCE_RULES} (edit that file, then "
          "`python3 deploy/tools/gmp.py rules`)")
    # The two CEL rules of the Rules CRD, which the JSON schema cannot carry.
    for g in rules.get("spec", {}).get("groups", []):
        for r in g.get("rules", []):
            what = r.get("alert") or r.get("record")
            check(("alert" in r) != ("record" in r),
                  f"{name}: rule {what}: exactly one of record and alert")
            check("annotations" not in r or "alert" in r,
                  f"{name}: rule {what}: annotations only on an alert")


def _covers(entry, number, name):
    """Whether one NetworkPolicyPort entry covers a TCP container port (number, name)."""
    if entry.get("protocol", "TCP") != "TCP":
        return False
    port = entry.get("port")
    if port is None:
        return True
    if isinstance(port, str):
        return port == name
    return port <= number <= entry.get("endPort", port)


def _namespaces(peer, own):
    """The namespaces a NetworkPolicyPeer admits pods of: a set of names, or None for any."""
    sel = peer.get("namespaceSelector")
    if sel is None:
        return {own}  # a podSelector alone: pods of the policy's own namespace
    names = None
    for k, v in (sel.get("matchLabels") or {}).items():
        if k != NAMESPACE_NAME_LABEL:
            return None  # a label anyone who may edit a namespace can put on it
        names = {v} if names is None else names & {v}
    for e in sel.get("matchExpressions") or []:
        if e["key"] != NAMESPACE_NAME_LABEL or e["operator"] != "In":
            return None
        names = set(e["values"]) if names is None else names & set(e["values"])
    return names  # None for an empty selector: every namespace


def _admits_range(peer, net):
    """Whether a peer's ipBlock admits the whole address range `net`."""
    block = peer.get("ipBlock")
    if not block:
        return False
    cidr = ipaddress.ip_network(block["cidr"], strict=False)
    if cidr.version != net.version or not net.subnet_of(cidr):
        return False
    return not any(ipaddress.ip_network(x, strict=False).overlaps(net)
                   for x in block.get("except", []))


def _within_lb(peer):
    """Whether a peer is an ipBlock inside the load balancer's ranges."""
    if not peer.get("ipBlock"):
        return False
    cidr = ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False)
    return any(cidr.version == net.version and cidr.subnet_of(net) for net in LB_RANGES)


def _describe(peer):
    if "ipBlock" in peer:
        return f"ipBlock {peer['ipBlock'].get('cidr')}"
    return ", ".join(f"{k} {v}" for k, v in peer.items())


def check_fence(nps, dep, pms, bcs):
    """The NetworkPolicies on the wsdrain pods, taken together (they add up): the public port
    only from the load balancer, the admin port only from its health checks and the
    collectors, no egress."""
    own = dep["namespace"]
    mine = [np for np in nps if np["metadata"].get("namespace") == own
            and selects(np["spec"].get("podSelector"), dep["labels"])]
    if not check(mine, "NetworkPolicy: none selects the wsdrain pods (podSelector, namespace)"):
        return

    def types(np):  # the default when policyTypes is left out
        return np["spec"].get("policyTypes") or (
            ["Ingress"] + (["Egress"] if np["spec"].get("egress") else []))

    ingress_rules = [r for np in mine if "Ingress" in types(np)
                     for r in np["spec"].get("ingress") or []]
    check(any("Ingress" in types(np) for np in mine),
          "NetworkPolicy: no policy isolates the pods for ingress (policyTypes Ingress)")
    names = {v: k for k, v in dep["ports"].items()}
    for port, which in ((dep["public"], "public"), (dep["admin"], "admin")):
        peers = []  # who may reach this port: None for everyone
        for r in ingress_rules:
            ports = r.get("ports") or [{}]
            if any(_covers(e, port, names.get(port)) for e in ports):
                peers += r.get("from") or [None]
        if None in peers:
            failures.append(f"NetworkPolicy: the {which} port {port} is open to everyone "
                            "(an ingress rule without `from`)")
        peers = [q for q in peers if q is not None]
        for q in peers:
            lb = _within_lb(q)
            ns = None if "ipBlock" in q else _namespaces(q, own)
            collectors = ns is not None and ns <= set(COLLECTOR_NAMESPACES)
            if which == "public":
                check(lb, f"NetworkPolicy: the public port {port} is open to {_describe(q)}: "
                          f"only the load balancer's ranges ({', '.join(map(str, LB_RANGES))})")
            else:
                check(lb or collectors,
                      f"NetworkPolicy: the admin port {port} is open to {_describe(q)}: only "
                      f"the load balancer's health checks ({', '.join(map(str, LB_RANGES))}) "
                      f"and the collectors' namespaces ({', '.join(COLLECTOR_NAMESPACES)})")
        for net in LB_RANGES:
            reached = any(_admits_range(q, net) for q in peers)
            if which == "public":
                check(reached, f"NetworkPolicy: the public port {port} is closed to the load "
                               f"balancer range {net} (its proxies and health checks)")
            elif any(bc["spec"].get("healthCheck", {}).get("port") == port for bc in bcs):
                check(reached, f"NetworkPolicy: the load balancer's health checks ({net}) "
                               f"cannot reach the admin port {port}, where the BackendConfig's "
                               "healthCheck goes")
        if which == "admin" and pms:
            for ns in COLLECTOR_NAMESPACES:
                check(any("ipBlock" not in q and ns in (_namespaces(q, own) or ()) for q in peers),
                      f"NetworkPolicy: the metrics collectors (namespace {ns}) cannot reach the "
                      f"admin port {port} that the PodMonitoring scrapes")
    egress_isolated = [np for np in mine if "Egress" in types(np)]
    check(egress_isolated and not any(np["spec"].get("egress") for np in egress_isolated),
          "NetworkPolicy: egress must be denied (policyTypes Egress, no egress rules): the "
          "server opens no connection of its own; if yours does, allow just that")


def checks(docs, defaults, slack, schemas, require_age=False, require_gke=False):
    """Every assertion on one rendering; returns the failures."""
    failures.clear()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    kinds = ("Deployment", "Service", "Ingress", "BackendConfig",
             "PodDisruptionBudget", "HorizontalPodAutoscaler")
    for kind in kinds + (GKE_KINDS if require_gke else ()):
        check(len(by_kind.get(kind, [])) == 1, f"want one {kind}, have {len(by_kind.get(kind, []))}")
    if failures:
        return list(failures)

    for kind in CRD_KINDS:
        for obj in by_kind.get(kind, []):
            for err in jsonschema.Draft7Validator(schemas[kind]).iter_errors(obj):
                path = "/".join(str(p) for p in err.absolute_path)
                failures.append(f"{kind} {obj['metadata'].get('name')}: {path}: {err.message}")
    bcs = by_kind["BackendConfig"]

    dep = check_deployment(by_kind["Deployment"][0], defaults, slack, bcs, require_age)
    svc = by_kind["Service"][0]
    ing = by_kind["Ingress"][0]
    if dep:
        sname = svc["metadata"]["name"]
        ann = svc["metadata"].get("annotations", {})
        for sp in svc["spec"]["ports"]:
            target = sp.get("targetPort", sp["port"])
            target = dep["ports"].get(target, target)
            check(target != dep["admin"] and sp["port"] != dep["admin"],
                  f"Service {sname}: port {sp.get('name')} exposes the admin port")
            check(target == dep["public"], f"Service {sname}: port {sp.get('name')} -> {target}, "
                                           f"not the public port {dep['public']}")
        check(all(dep["labels"].get(k) == v for k, v in svc["spec"]["selector"].items()),
              f"Service {sname}: selector does not match the pods")
        check(svc["spec"].get("sessionAffinity", "None") == "None",
              f"Service {sname}: sessionAffinity must be None")
        try:
            neg = json.loads(ann.get("cloud.google.com/neg", "{}"))
            bconf = json.loads(ann.get("cloud.google.com/backend-config", "{}"))
        except json.JSONDecodeError as e:
            neg, bconf = {}, {}
            failures.append(f"Service {sname}: annotation is not JSON: {e}")
        check(neg == {"ingress": True},
              f'Service {sname}: cloud.google.com/neg must be {{"ingress": true}}')
        names = {bc["metadata"]["name"] for bc in bcs}
        refs = [bconf["default"]] if "default" in bconf else list(bconf.get("ports", {}).values())
        check(refs and all(r in names for r in refs),
              f"Service {sname}: backend-config {bconf} does not name a BackendConfig {names}")
        for bc in bcs:
            aff = bc["spec"].get("sessionAffinity", {}).get("affinityType", "NONE")
            check(aff == "NONE", f"BackendConfig: sessionAffinity {aff}, want NONE")
        iname = ing["metadata"]["name"]
        check(ing["metadata"].get("annotations", {}).get("kubernetes.io/ingress.class") == "gce"
              or ing["spec"].get("ingressClassName") == "gce", f"Ingress {iname}: class gce")
        backends = [ing["spec"].get("defaultBackend")] + [
            p["backend"] for r in ing["spec"].get("rules", [])
            for p in r.get("http", {}).get("paths", [])
        ]
        svc_ports = {sp.get("name"): sp["port"] for sp in svc["spec"]["ports"]}
        for b in filter(None, backends):
            check(b["service"]["name"] == sname, f"Ingress {iname}: backend is not {sname}")
            port = b["service"]["port"]
            check(port.get("name") in svc_ports or port.get("number") in svc_ports.values(),
                  f"Ingress {iname}: backend port {port} is not a Service port")
        pdb = by_kind["PodDisruptionBudget"][0]
        check(all(dep["labels"].get(k) == v
                  for k, v in pdb["spec"]["selector"]["matchLabels"].items()),
              "PodDisruptionBudget: selector does not match the pods")
        hpa = by_kind["HorizontalPodAutoscaler"][0]
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref["kind"] == "Deployment"
              and ref["name"] == by_kind["Deployment"][0]["metadata"]["name"],
              "HorizontalPodAutoscaler: does not scale the Deployment")
        # deploy/gke: Managed Service for Prometheus and the fence around the admin port.
        for pm in by_kind.get("PodMonitoring", []):
            check_podmonitoring(pm, dep)
        for rules in by_kind.get("Rules", []):
            check_rules(rules, dep)
        if by_kind.get("NetworkPolicy"):
            check_fence(by_kind["NetworkPolicy"], dep, by_kind.get("PodMonitoring", []), bcs)
    return list(failures)


# Each mutation breaks one rule; the checks must catch every one (so they are not vacuous).
def _dep(docs):
    return next(d for d in docs if d["kind"] == "Deployment")


def _ctr(docs):
    return _dep(docs)["spec"]["template"]["spec"]["containers"][0]


def _env(docs, name, value):
    for e in _ctr(docs)["env"]:
        if e["name"] == name:
            e["value"] = value
            return
    _ctr(docs)["env"].append({"name": name, "value": value})


def _kind(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


def _unset(docs, name):
    env = _ctr(docs)["env"]
    env[:] = [e for e in env if e["name"] != name]


def _timeout(docs):
    return _kind(docs, "BackendConfig")["spec"].get("timeoutSec", 30)


def _close(docs):
    env = {e["name"]: e.get("value") for e in _ctr(docs)["env"]}
    return seconds(env.get("CLOSE_TIMEOUT", "5s"))


def _handover(docs):
    env = {e["name"]: e.get("value") for e in _ctr(docs)["env"]}
    return seconds(env.get("HANDOVER_TIMEOUT", "5s"))


MUTATIONS = {
    "grace period below the budget": (
        lambda ds: _dep(ds)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=31),
        "terminationGracePeriodSeconds"),
    "longer PRESTOP_DELAY without a longer grace period": (
        lambda ds: _env(ds, "PRESTOP_DELAY", "20s"), "terminationGracePeriodSeconds"),
    "TERMINATION_GRACE_PERIOD env out of step": (
        lambda ds: _env(ds, "TERMINATION_GRACE_PERIOD", "45s"), "TERMINATION_GRACE_PERIOD"),
    "longer HANDOVER_TIMEOUT without a longer grace period": (
        lambda ds: _env(ds, "HANDOVER_TIMEOUT", "10s"), "terminationGracePeriodSeconds"),
    "misspelt setting": (lambda ds: _env(ds, "DRAIN_WINDOWS", "5s"), "not a wsdrain setting"),
    "admin port in the Service": (
        lambda ds: _kind(ds, "Service")["spec"]["ports"].append(
            {"name": "admin", "port": 9090, "targetPort": "admin"}), "admin port"),
    "LB draining shorter than the drain": (
        lambda ds: _kind(ds, "BackendConfig")["spec"]["connectionDraining"].update(
            drainingTimeoutSec=20), "drainingTimeoutSec"),
    "LB health check on the public port": (
        lambda ds: _kind(ds, "BackendConfig")["spec"]["healthCheck"].update(port=8080),
        "healthCheck port"),
    "unknown BackendConfig field": (
        lambda ds: _kind(ds, "BackendConfig")["spec"].update(timeoutSeconds=3600),
        "Additional properties"),
    "readiness on /healthz": (
        lambda ds: _ctr(ds)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "readinessProbe path"),
    "preStop on the public port": (
        lambda ds: _ctr(ds)["lifecycle"]["preStop"]["httpGet"].update(port="http"),
        "preStop port"),
    "maxUnavailable 1": (
        lambda ds: _dep(ds)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
        "maxUnavailable"),
    "writable root filesystem": (
        lambda ds: _ctr(ds)["securityContext"].update(readOnlyRootFilesystem=False),
        "readOnlyRootFilesystem"),
    "more connections, same memory": (
        lambda ds: _env(ds, "MAX_CONNECTIONS", "20000"), "memory request"),
    # The connection age against the load balancer's timeoutSec.
    "MAX_CONNECTION_AGE = timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT": (
        lambda ds: _env(ds, "MAX_CONNECTION_AGE",
                        f"{_timeout(ds) - _handover(ds) - _close(ds):g}s"),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE = timeoutSec, in hours": (
        lambda ds: _env(ds, "MAX_CONNECTION_AGE", f"{_timeout(ds) / 3600:g}h"),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE 1 s over the margin, in plain seconds": (
        lambda ds: _env(ds, "MAX_CONNECTION_AGE",
                        f"{_timeout(ds) - _handover(ds) - _close(ds) - AGE_MARGIN_SECONDS + 1:g}"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE 59m, inside the rule but not the margin": (
        lambda ds: _env(ds, "MAX_CONNECTION_AGE", "59m"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE the server refuses (a space)": (
        lambda ds: _env(ds, "MAX_CONNECTION_AGE", "3530 s"), "not a duration the server accepts"),
}

# Only where MAX_CONNECTION_AGE must be set (--require-max-connection-age, deploy/gke): these
# break the rule by changing the other side of it, or drop the setting.
MUTATIONS_WITH_AGE = {
    "longer CLOSE_TIMEOUT, same MAX_CONNECTION_AGE": (
        lambda ds: _env(ds, "CLOSE_TIMEOUT", f"{_close(ds) + 1:g}s"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "longer HANDOVER_TIMEOUT, same MAX_CONNECTION_AGE": (
        lambda ds: _env(ds, "HANDOVER_TIMEOUT", f"{_handover(ds) + 1:g}s"),
        "timeoutSec - HANDOVER_TIMEOUT - CLOSE_TIMEOUT"),
    "timeoutSec lowered to MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT": (
        lambda ds: _kind(ds, "BackendConfig")["spec"].update(
            timeoutSec=int(seconds(next(e["value"] for e in _ctr(ds)["env"]
                                        if e["name"] == "MAX_CONNECTION_AGE"))
                           + _handover(ds) + _close(ds))),
        "must exceed MAX_CONNECTION_AGE + HANDOVER_TIMEOUT + CLOSE_TIMEOUT"),
    "MAX_CONNECTION_AGE left off": (
        lambda ds: _unset(ds, "MAX_CONNECTION_AGE"), "MAX_CONNECTION_AGE must be set"),
}


# Only with --require-gke-objects (deploy/gke): the fence around the admin port and the
# monitoring objects of Managed Service for Prometheus.
def _np(docs):
    return _kind(docs, "NetworkPolicy")["spec"]


def _drop_port(docs, port_names):
    """Removes the ingress rules that name one of these ports."""
    spec = _np(docs)
    spec["ingress"] = [r for r in spec["ingress"]
                       if not any(e.get("port") in port_names for e in r.get("ports", []))]


def _drop_peer(docs, cidr):
    for r in _np(docs)["ingress"]:
        r["from"] = [q for q in r.get("from", []) if q.get("ipBlock", {}).get("cidr") != cidr]


def _endpoint(docs):
    return _kind(docs, "PodMonitoring")["spec"]["endpoints"][0]


def _first_rule(docs):
    return _kind(docs, "Rules")["spec"]["groups"][0]["rules"][0]


MUTATIONS_GKE = {
    "admin port opened to everyone (a rule without from)": (
        lambda ds: _np(ds)["ingress"].append({"ports": [{"port": 9090, "protocol": "TCP"}]}),
        "the admin port 9090 is open to everyone"),
    "admin port opened to every namespace": (
        lambda ds: _np(ds)["ingress"].append(
            {"from": [{"namespaceSelector": {}}], "ports": [{"port": "admin"}]}),
        "the admin port 9090 is open to namespaceSelector"),
    "admin port opened to namespaces by a label anyone can set": (
        lambda ds: _np(ds)["ingress"].append(
            {"from": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
             "ports": [{"port": 9090}]}),
        "the admin port 9090 is open to namespaceSelector"),
    "admin port opened to the pods of its own namespace": (
        lambda ds: _np(ds)["ingress"].append(
            {"from": [{"podSelector": {}}], "ports": [{"port": "admin"}]}),
        "the admin port 9090 is open to podSelector"),
    "admin port opened to the internet (0.0.0.0/0)": (
        lambda ds: _np(ds)["ingress"].append(
            {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 9090}]}),
        "the admin port 9090 is open to ipBlock 0.0.0.0/0"),
    "a rule for every port from every namespace": (
        lambda ds: _np(ds)["ingress"].append({"from": [{"namespaceSelector": {}}]}),
        "the admin port 9090 is open to namespaceSelector"),
    "public port opened to everyone": (
        lambda ds: _np(ds)["ingress"].append({"ports": [{"port": "http"}]}),
        "the public port 8080 is open to everyone"),
    "public port closed to the load balancer (its rule removed)": (
        lambda ds: _drop_port(ds, ("http", 8080)),
        "the public port 8080 is closed to the load balancer range"),
    "load balancer range 35.191.0.0/16 removed": (
        lambda ds: _drop_peer(ds, "35.191.0.0/16"),
        "closed to the load balancer range 35.191.0.0/16"),
    "health checks cannot reach the admin port": (
        lambda ds: _np(ds).update(ingress=[
            r for r in _np(ds)["ingress"]
            if not (any(e.get("port") in ("admin", 9090) for e in r.get("ports", []))
                    and any("ipBlock" in q for q in r.get("from", [])))]),
        "cannot reach the admin port 9090, where the BackendConfig's healthCheck goes"),
    "collectors' namespaces removed from the admin port": (
        lambda ds: _np(ds).update(ingress=[
            r for r in _np(ds)["ingress"]
            if not any("namespaceSelector" in q for q in r.get("from", []))]),
        "the metrics collectors (namespace gmp-system) cannot reach"),
    "egress allowed": (
        lambda ds: _np(ds).update(egress=[{}]), "egress must be denied"),
    "NetworkPolicy selects other pods": (
        lambda ds: _np(ds)["podSelector"].update(matchLabels={"app.kubernetes.io/name": "x"}),
        "none selects the wsdrain pods"),
    "PodMonitoring scrapes the public port": (
        lambda ds: _endpoint(ds).update(port="http"), "is not the admin port 9090"),
    "PodMonitoring scrapes /healthz": (
        lambda ds: _endpoint(ds).update(path="/healthz"), "endpoint path /healthz"),
    "PodMonitoring scrapes less often than PreStop lasts": (
        lambda ds: _endpoint(ds).update(interval="1m"), "longer than PRESTOP_DELAY"),
    "PodMonitoring selects other pods": (
        lambda ds: _kind(ds, "PodMonitoring")["spec"]["selector"].update(
            matchLabels={"app.kubernetes.io/name": "x"}), "does not select the wsdrain pods"),
    "unknown PodMonitoring field": (
        lambda ds: _endpoint(ds).update(intervall="15s"), "Additional properties"),
    "Rules out of step with deploy/monitoring/rules.yaml": (
        lambda ds: _first_rule(ds).update(expr=_first_rule(ds)["expr"] + " * 2"),
        "out of step with deploy/monitoring/rules.yaml"),
    "Rules with a rule that both records and alerts": (
        lambda ds: _first_rule(ds).update(record=_first_rule(ds).get("record", "wsdrain:x"),
                                          alert=_first_rule(ds).get("alert", "WsdrainX")),
        "exactly one of record and alert"),
    "unknown Rules field": (
        lambda ds: _kind(ds, "Rules")["spec"]["groups"][0].update(limit=10),
        "Additional properties"),
}


def self_test(docs, defaults, slack, schemas, require_age, require_gke):
    import copy
    bad = duration_case_failures()
    mutations = {**MUTATIONS, **(MUTATIONS_WITH_AGE if require_age else {}),
                 **(MUTATIONS_GKE if require_gke else {})}
    for name, (mutate, expect) in mutations.items():
        ds = copy.deepcopy(docs)
        mutate(ds)
        found = checks(ds, defaults, slack, schemas, require_age, require_gke)
        if not any(expect in f for f in found):
            bad.append(f"mutation '{name}' not caught (wanted '{expect}', got {found})")
    failures.clear()
    failures.extend(bad)
    return len(mutations)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--help-text", required=True)
    ap.add_argument("--schema-dir", required=True,
                    help="JSON schemas of the custom resources: <kind in lower case>.json")
    ap.add_argument("--k8s-out", required=True)
    ap.add_argument("--self-test", action="store_true",
                    help="also check that each known breakage of the rendering is caught")
    ap.add_argument("--require-max-connection-age", action="store_true",
                    help="MAX_CONNECTION_AGE must be set (the rendering that goes behind the "
                         "Google load balancer, deploy/gke)")
    ap.add_argument("--require-gke-objects", action="store_true",
                    help="one PodMonitoring, Rules and NetworkPolicy each (deploy/gke)")
    ap.add_argument("rendered")
    args = ap.parse_args()
    with open(args.help_text) as f:
        defaults, slack = parse_help(f.read())
    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    schemas = {}
    for kind in CRD_KINDS:
        with open(os.path.join(args.schema_dir, kind.lower() + ".json")) as f:
            schemas[kind] = json.load(f)
    # The standard objects go to kubernetes-validate; the custom resources are checked here.
    with open(args.k8s_out, "w") as f:
        yaml.safe_dump_all([d for d in docs if d["kind"] not in CRD_KINDS], f)
    require_age, require_gke = args.require_max_connection_age, args.require_gke_objects
    if checks(docs, defaults, slack, schemas, require_age, require_gke):
        return report(args.rendered, docs)
    if args.self_test:
        n = self_test(docs, defaults, slack, schemas, require_age, require_gke)
        if failures:
            return report(args.rendered, docs)
        print(f"{args.rendered}: self-test: all {n} deliberate breakages caught, "
              f"{len(DURATION_CASES)} durations parsed as the server does")
    return report(args.rendered, docs)


def report(rendered, docs):
    if failures:
        for f in failures:
            print(f"FAIL {rendered}: {f}", file=sys.stderr)
        return 1
    gke = {d["kind"] for d in docs} & set(GKE_KINDS)
    print(f"{rendered}: budget rule, LB draining timeout, connection age vs LB timeoutSec, "
          "probes/preStop, Service ports, security context, memory sizing, rollout strategy"
          + (f", {', '.join(sorted(gke))}" if gke else "") + ": ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
