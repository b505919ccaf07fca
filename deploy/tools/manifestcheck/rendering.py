"""Every rule on one rendering: the objects it must hold, the custom resources against their
schemas, the Deployment and the objects that refer to it."""

import json

import jsonschema

from .backendconfig import check_backendconfig
from .deployment import check_deployment
from .failures import check, failures
from .fence import check_fence
from .monitoring import check_podmonitoring, check_rules
from .spot import check_spot

# The custom resources validated here, each against deploy/schemas/<kind in lower case>.json;
# every other object goes to kubernetes-validate.
CRD_KINDS = ("BackendConfig", "PodMonitoring", "Rules")
# In deploy/gke only (--require-gke-objects).
GKE_KINDS = ("PodMonitoring", "Rules", "NetworkPolicy")
KINDS = ("Deployment", "Service", "Ingress", "BackendConfig",
         "PodDisruptionBudget", "HorizontalPodAutoscaler")


def checks(docs, defaults, slack, schemas, require_age=False, require_gke=False,
           require_spot=False):
    """Every assertion on one rendering; returns the failures."""
    failures.clear()
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in KINDS + (GKE_KINDS if require_gke else ()):
        have = len(by_kind.get(kind, []))
        check(have == 1, f"want one {kind}, have {have}")
    if failures:
        return list(failures)

    for kind in CRD_KINDS:
        for obj in by_kind.get(kind, []):
            for err in jsonschema.Draft7Validator(schemas[kind]).iter_errors(obj):
                path = "/".join(str(p) for p in err.absolute_path)
                failures.append(f"{kind} {obj['metadata'].get('name')}: {path}: {err.message}")
    bcs = by_kind["BackendConfig"]

    dep = check_deployment(by_kind["Deployment"][0], defaults, slack)
    if dep:
        for bc in bcs:
            check_backendconfig(bc, dep, require_age)
        if require_spot:
            check_spot(by_kind["Deployment"][0], dep)
        check_service(by_kind["Service"][0], dep, bcs)
        check_ingress(by_kind["Ingress"][0], by_kind["Service"][0])
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


def check_service(svc, dep, bcs):
    """Only the public port, container-native load balancing, the BackendConfig, no affinity."""
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


def check_ingress(ing, svc):
    """Class gce (Google's external load balancer), every backend the Service's port."""
    sname = svc["metadata"]["name"]
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
