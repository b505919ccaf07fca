"""The fence around the admin port (deploy/gke's NetworkPolicy): the public port only from the
load balancer, the admin port only from its health checks and the metrics collectors, no
egress."""

import ipaddress

from .failures import check, failures
from .k8s import selects

# Where the external Application Load Balancer's connections and health checks come from, for
# backends in zonal NEGs (GCE_VM_IP_PORT, container-native load balancing): the health check
# ranges, which the GFE proxies share (https://cloud.google.com/load-balancing/docs/firewall-rules).
LB_RANGES = tuple(ipaddress.ip_network(r) for r in ("130.211.0.0/22", "35.191.0.0/16"))
# Where Managed Service for Prometheus runs its collectors: gmp-system (the upstream operator,
# GoogleCloudPlatform/prometheus-engine manifests/operator.yaml); gke-gmp-system where GKE
# manages it (Autopilot). Named by the label the control plane sets on every namespace.
COLLECTOR_NAMESPACES = ("gmp-system", "gke-gmp-system")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


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
