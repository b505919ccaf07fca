#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests (`kubectl kustomize deploy/X`) against the server itself.

  check_manifests.py --help-text HELP --schema deploy/schemas/backendconfig.json \
      --k8s-out OUT.yaml RENDERED.yaml

The server's settings, defaults and budget rule come from `wsdrain --help` (HELP), so the
manifests cannot drift from the binary. Writes the standard Kubernetes objects to OUT.yaml
for kubernetes-validate; validates BackendConfig objects against the JSON schema here; then
asserts what the drain needs: the budget rule, the load balancer's draining timeout, the
connection age against the load balancer's timeoutSec, probe and preStop paths and ports, the
admin port kept off the Service, the security context, memory sized for MAX_CONNECTIONS,
maxUnavailable 0. --require-max-connection-age (the deploy/gke rendering) also fails a
rendering that leaves MAX_CONNECTION_AGE off. Run by tests/tiers/manifests.sh.
"""

import argparse
import json
import math
import re
import sys

import jsonschema
import yaml

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
# The longest duration the server accepts (MAX_DURATION in src/config/parse.rs: 30 days).
MAX_DURATION_SECONDS = 30 * 24 * 3600

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def seconds(text):
    """A duration exactly as the server parses it (parse_duration in src/config/parse.rs): digits with
    at most one inner dot, then nothing (seconds), ms, s, m or h; no space inside; at most 30
    days. Anything else raises ValueError, as the server refuses to start on it."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?", str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration the server accepts (15s, 500ms, 2m, 1h, 15)")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if value > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is too long for the server (at most 30 days)")
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
    return {"public": public, "admin": admin, "ports": ports,
            "labels": spec["template"]["metadata"]["labels"]}


def checks(docs, defaults, slack, schema, require_age=False):
    """Every assertion on one rendering; returns the failures."""
    failures.clear()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Deployment", "Service", "Ingress", "BackendConfig",
                 "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        check(len(by_kind.get(kind, [])) == 1, f"want one {kind}, have {len(by_kind.get(kind, []))}")
    if failures:
        return list(failures)

    bcs = by_kind["BackendConfig"]
    for bc in bcs:
        for err in jsonschema.Draft7Validator(schema).iter_errors(bc):
            path = "/".join(str(p) for p in err.absolute_path)
            failures.append(f"BackendConfig {bc['metadata']['name']}: {path}: {err.message}")

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


def self_test(docs, defaults, slack, schema, require_age):
    import copy
    bad = duration_case_failures()
    mutations = {**MUTATIONS, **(MUTATIONS_WITH_AGE if require_age else {})}
    for name, (mutate, expect) in mutations.items():
        ds = copy.deepcopy(docs)
        mutate(ds)
        found = checks(ds, defaults, slack, schema, require_age)
        if not any(expect in f for f in found):
            bad.append(f"mutation '{name}' not caught (wanted '{expect}', got {found})")
    failures.clear()
    failures.extend(bad)
    return len(mutations)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--help-text", required=True)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--k8s-out", required=True)
    ap.add_argument("--self-test", action="store_true",
                    help="also check that each known breakage of the rendering is caught")
    ap.add_argument("--require-max-connection-age", action="store_true",
                    help="MAX_CONNECTION_AGE must be set (the rendering that goes behind the "
                         "Google load balancer, deploy/gke)")
    ap.add_argument("rendered")
    args = ap.parse_args()
    with open(args.help_text) as f:
        defaults, slack = parse_help(f.read())
    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(args.schema) as f:
        schema = json.load(f)
    # The standard objects go to kubernetes-validate; BackendConfig is checked here.
    with open(args.k8s_out, "w") as f:
        yaml.safe_dump_all([d for d in docs if d["kind"] != "BackendConfig"], f)
    require_age = args.require_max_connection_age
    if checks(docs, defaults, slack, schema, require_age):
        return report(args.rendered)
    if args.self_test:
        n = self_test(docs, defaults, slack, schema, require_age)
        if failures:
            return report(args.rendered)
        print(f"{args.rendered}: self-test: all {n} deliberate breakages caught, "
              f"{len(DURATION_CASES)} durations parsed as the server does")
    return report(args.rendered)


def report(rendered):
    if failures:
        for f in failures:
            print(f"FAIL {rendered}: {f}", file=sys.stderr)
        return 1
    print(f"{rendered}: budget rule, LB draining timeout, connection age vs LB timeoutSec, "
          "probes/preStop, Service ports, security context, memory sizing, rollout strategy: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
