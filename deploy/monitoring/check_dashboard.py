#!/usr/bin/env python3
"""Checks of the monitoring files that promtool alone cannot make (tests/tiers/monitoring.sh).

    check_dashboard.py DASHBOARD RULES METRICS OUT_DIR

DASHBOARD  deploy/monitoring/grafana-dashboard.json
RULES      deploy/monitoring/rules.yaml
METRICS    one scrape of a running wsdrain's /metrics (Prometheus text)
OUT_DIR    where two files for promtool are written:
  dashboard-rules.yaml  every panel target's expr as a recording rule, for `promtool check
                        rules` (promtool 2.42 has no command that only parses a query)
  data.test.yaml        a `promtool test rules` file: the scrape, replayed as two targets (one
                        with GKE's pod label, one without), and for every dashboard expr and
                        every recording rule a test that it returns data

Checked here: the dashboard is JSON with the expected shape (schemaVersion, a prometheus
datasource variable used by every panel and target, unique panel ids, targets with a refId and
a non-empty expr, no Grafana variable in an expr that a plain Prometheus query would choke on),
and every `wsdrain_*` name in the rules and the dashboard is a metric the server exposes (or one
of the few it exposes only in some conditions). Exit 1 with one line per problem.
"""

import json
import re
import sys
from pathlib import Path

# Metrics that the server does not always expose, and why a scrape may lack them.
CONDITIONAL = {
    # absent where the cgroup files are unreadable or memory.max is "max" (a dev machine)
    "wsdrain_cgroup_memory_bytes": "cgroup",
    "wsdrain_cgroup_memory_limit_bytes": "cgroup",
}
# Grafana variables an expr may use; the check replaces them as Grafana would, roughly.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
NAME = re.compile(r"(?<![\w:])wsdrain_[a-z0-9_]+")
TARGETS = [
    'job="wsdrain", namespace="wsdrain", instance="10.8.0.11:9090", pod="wsdrain-a", '
    'container="wsdrain"',
    'job="wsdrain", instance="localhost:9090"',
]
STEPS = 20  # samples 15 s apart: 5 minutes of history


def families(scrape):
    """Metric families of a scrape (from # TYPE lines) and its sample lines."""
    names, samples = set(), []
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            samples.append(line)
    return names, samples


def dashboard_exprs(dash, problems):
    """[(panel id, panel title, refId, expr)], appending shape problems."""
    if dash.get("schemaVersion", 0) < 36:
        problems.append(f"schemaVersion {dash.get('schemaVersion')} < 36")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no templating variable `datasource` of type datasource/prometheus")
    want_ds = {"type": "prometheus", "uid": "${datasource}"}
    panels = dash.get("panels") or []
    if not panels:
        problems.append("no panels")
    ids, out = set(), []
    for p in panels:
        pid, title = p.get("id"), p.get("title", "?")
        where = f"panel {pid} ({title})"
        if not isinstance(pid, int) or pid in ids:
            problems.append(f"{where}: id missing or repeated")
        ids.add(pid)
        if p.get("type") == "row":
            continue
        if not p.get("gridPos"):
            problems.append(f"{where}: no gridPos")
        if p.get("datasource") != want_ds:
            problems.append(f"{where}: datasource is not {want_ds}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in refs:
                problems.append(f"{where}: refId missing or repeated")
            refs.add(ref)
            if t.get("datasource", want_ds) != want_ds:
                problems.append(f"{where} {ref}: datasource is not {want_ds}")
            expr = (t.get("expr") or "").strip()
            if not expr:
                problems.append(f"{where} {ref}: empty expr")
                continue
            for var in re.findall(r"\$\{?\w+\}?", expr):
                if var not in GRAFANA_VARS:
                    problems.append(f"{where} {ref}: Grafana variable {var} in the expr")
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((pid, title, ref, expr))
    return out


def rule_exprs(rules_text):
    """[(record name, expr)] of the recording rules; no YAML parser needed for this file's
    layout (`- record: NAME` then `expr: ONE LINE` or `expr: |` and an indented block)."""
    out, lines, i = [], rules_text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"\s*- record: (\S+)", lines[i])
        if not m:
            i += 1
            continue
        e = re.match(r"(\s*)expr: (.*)", lines[i + 1])
        if e.group(2).strip() != "|":
            out.append((m.group(1), e.group(2).strip()))
            i += 2
            continue
        block, i = [], i + 2
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > len(e.group(1))):
            block.append(lines[i].strip())
            i += 1
        out.append((m.group(1), " ".join(block).strip()))
    return out


def yaml_str(s):
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar


def main():
    dash_path, rules_path, metrics_path, out_dir = map(Path, sys.argv[1:5])
    problems = []
    try:
        dash = json.loads(dash_path.read_text())
    except ValueError as err:
        print(f"{dash_path}: not JSON: {err}")
        return 1
    exprs = dashboard_exprs(dash, problems)
    rules_text = rules_path.read_text()
    records = rule_exprs(rules_text)
    if not records:
        problems.append(f"{rules_path}: no recording rules found")
    exposed, samples = families(metrics_path.read_text())
    if "wsdrain_phase" not in exposed:
        problems.append(f"{metrics_path}: not a wsdrain scrape")

    # Every name the rules and the dashboard use must be a metric the server has.
    used = {}
    for name in NAME.findall(rules_text):
        used.setdefault(name, rules_path.name)
    for _, title, _, expr in exprs:
        for name in NAME.findall(expr):
            used.setdefault(name, f"dashboard panel {title!r}")
    for name, where in sorted(used.items()):
        if name not in exposed and name not in CONDITIONAL:
            problems.append(f"{where}: {name} is not a metric the server exposes")
    missing_conditional = sorted(n for n in CONDITIONAL if n not in exposed)

    # The dashboard's exprs as recording rules, for promtool's parser.
    lines = ["groups:", "  - name: dashboard-exprs", "    rules:"]
    for pid, _, ref, expr in exprs:
        lines += [f"      - record: dashboard:panel{pid}_{ref}", f"        expr: {yaml_str(expr)}"]
    (out_dir / "dashboard-rules.yaml").write_text("\n".join(lines) + "\n")

    # The scrape replayed for 5 minutes as two targets: counters grow, gauges stay.
    series = []
    for line in samples:
        m = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m:
            problems.append(f"{metrics_path}: cannot read sample line {line!r}")
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        values = f"{value:g}+1x{STEPS}" if name.endswith("_total") else f"{value:g}x{STEPS}"
        for target in TARGETS:
            sep = ", " if labels else ""
            series.append((f"{name}{{{labels}{sep}{target}}}", values))
    # Each query must return something: count(...) > bool 0 is 1 then, and 0 when empty.
    checks = []
    for pid, title, ref, expr in exprs:
        checks.append((f"dashboard panel {pid} {ref} ({title})", expr, 1))
    for record, _ in records:
        # The memory ratio needs the cgroup series; where the scrape has none, it is absent.
        cgroup = record == "instance:wsdrain_memory_used:ratio"
        checks.append((f"recording rule {record}", record,
                       0 if cgroup and missing_conditional else 1))
    test = [f"# generated by {Path(__file__).name}: every query returns data",
            f"rule_files: [{yaml_str(str(rules_path.resolve()))}]",
            "evaluation_interval: 15s", "tests:", "  - interval: 15s", "    input_series:"]
    for s, v in series:
        test += [f"      - series: {yaml_str(s)}", f"        values: {yaml_str(v)}"]
    test.append("    promql_expr_test:")
    for what, expr, want in checks:
        test += [f"      # {what}",
                 f"      - expr: {yaml_str(f'count({expr}) > bool 0 or on() vector(0)')}",
                 "        eval_time: 5m", "        exp_samples:",
                 "          - labels: '{}'", f"            value: {want}"]
    (out_dir / "data.test.yaml").write_text("\n".join(test) + "\n")

    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"dashboard: {len(dash['panels'])} panels, {len(exprs)} exprs; rules: {len(records)} "
          f"recording rules; {len(used)} metric names used, all exposed"
          + (f" (absent from this scrape, as allowed: {', '.join(missing_conditional)})"
             if missing_conditional else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
