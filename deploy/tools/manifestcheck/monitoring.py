"""Managed Service for Prometheus (deploy/gke): the PodMonitoring that scrapes the pods and the
Rules object that carries deploy/monitoring/rules.yaml."""

import os

import gmp  # deploy/tools/gmp.py: the Rules generator, to compare with
import yaml

from .failures import check, failures
from .k8s import port_number, selects
from .units import prometheus_seconds


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
