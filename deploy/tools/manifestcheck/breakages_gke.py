"""Known ways to break what only deploy/gke has (--require-gke-objects): the fence around the
admin port and the objects of Managed Service for Prometheus."""

from .breakages import obj


def _np(docs):
    return obj(docs, "NetworkPolicy")["spec"]


def _drop_port(docs, port_names):
    """Removes the ingress rules that name one of these ports."""
    spec = _np(docs)
    spec["ingress"] = [r for r in spec["ingress"]
                       if not any(e.get("port") in port_names for e in r.get("ports", []))]


def _drop_peer(docs, cidr):
    for r in _np(docs)["ingress"]:
        r["from"] = [q for q in r.get("from", []) if q.get("ipBlock", {}).get("cidr") != cidr]


def _endpoint(docs):
    return obj(docs, "PodMonitoring")["spec"]["endpoints"][0]


def _first_rule(docs):
    return obj(docs, "Rules")["spec"]["groups"][0]["rules"][0]


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
        lambda ds: obj(ds, "PodMonitoring")["spec"]["selector"].update(
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
        lambda ds: obj(ds, "Rules")["spec"]["groups"][0].update(limit=10),
        "Additional properties"),
}
