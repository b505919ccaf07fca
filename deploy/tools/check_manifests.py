#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests (`kubectl kustomize deploy/X`) against the server itself.

  check_manifests.py --help-text HELP --schema-dir deploy/schemas --k8s-out OUT.yaml \
      [--require-max-connection-age] [--require-gke-objects] [--require-spot] RENDERED.yaml

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
for Prometheus and network policy enforcement); --require-spot (deploy/gke-spot) one whose
pods do not go to GKE Spot nodes (the Spot nodeSelector and a toleration of the Spot taint) or
whose drain does not fit the 15 s a preemption gives (terminationGracePeriodSeconds <= 15, the
readiness probe within PRESTOP_DELAY). --self-test then breaks the rendering in known
ways and expects each one caught. Run by tests/tiers/manifests.sh.

This file is the command line; the rules, one module per kind of object, and the breakages
are in the package deploy/tools/manifestcheck/ (its __init__.py says what is where).
"""

import argparse
import json
import os
import sys

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in deploy/tools from the imports below
from manifestcheck.failures import failures  # noqa: E402
from manifestcheck.helptext import HELP_CASES, HelpError, parse_help  # noqa: E402
from manifestcheck.rendering import CRD_KINDS, GKE_KINDS, checks  # noqa: E402
from manifestcheck.selftest import self_test  # noqa: E402
from manifestcheck.units import DURATION_CASES  # noqa: E402


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
    ap.add_argument("--require-spot", action="store_true",
                    help="the pods go to GKE Spot nodes and the drain fits a preemption's 15 s "
                         "(deploy/gke-spot)")
    ap.add_argument("rendered")
    args = ap.parse_args()
    with open(args.help_text) as f:
        try:
            defaults, slack = parse_help(f.read())
        except HelpError as e:
            sys.exit(f"check_manifests: {e}")
    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    schemas = {}
    for kind in CRD_KINDS:
        with open(os.path.join(args.schema_dir, kind.lower() + ".json")) as f:
            schemas[kind] = json.load(f)
    # The standard objects go to kubernetes-validate; the custom resources are checked here.
    with open(args.k8s_out, "w") as f:
        yaml.safe_dump_all([d for d in docs if d["kind"] not in CRD_KINDS], f)
    options = (args.require_max_connection_age, args.require_gke_objects, args.require_spot)
    if checks(docs, defaults, slack, schemas, *options):
        return report(args.rendered, docs, args.require_spot)
    if args.self_test:
        n = self_test(docs, defaults, slack, schemas, *options)
        if failures:
            return report(args.rendered, docs, args.require_spot)
        print(f"{args.rendered}: self-test: all {n} deliberate breakages caught, "
              f"{len(DURATION_CASES)} durations parsed as the server does, the budget rule "
              f"read from {len(HELP_CASES)} --help texts")
    return report(args.rendered, docs, args.require_spot)


def report(rendered, docs, spot):
    if failures:
        for f in failures:
            print(f"FAIL {rendered}: {f}", file=sys.stderr)
        return 1
    gke = {d["kind"] for d in docs} & set(GKE_KINDS)
    print(f"{rendered}: budget rule, LB draining timeout, connection age vs LB timeoutSec, "
          "probes/preStop, Service ports, security context, memory sizing, rollout strategy"
          + (f", {', '.join(sorted(gke))}" if gke else "")
          + (", Spot node selector, toleration and 15 s grace" if spot else "") + ": ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
