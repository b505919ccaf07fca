"""Label selectors and named ports, read as Kubernetes reads them."""


def port_number(container, port):
    """A probe/hook port (number or name) as a number, or None."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


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
