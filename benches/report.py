#!/usr/bin/env python3
"""Turns the CSVs of benches/run.sh into summary.md (tables and ratios) and two SVG plots.

Standard library only. Usage: python3 benches/report.py RESULTS_DIR
"""
import csv
import math
import os
import re
import sys

out = sys.argv[1]


def rows(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


ORDER = ["wsdrain", "wsdrain-old", "peer-default", "peer-4k", "uws", "uws-publish", "node-ws"]
# The ratio targets, per peer: issue 6's against the tokio peer, issue 15's against uWebSockets
# and nginx.
ECHO_TARGETS = {"peer-default": "≤ 0.5×", "uws": "≤ 0.9×"}
CONNECT_TARGETS = {"uws": "≤ 0.9×"}
FANOUT_TARGETS = {"uws": "≤ 1×", "uws-publish": "≤ 1×"}
STATIC_TARGETS = {"nginx": "≤ 0.75×"}


def labels(rs):
    """The servers in these rows: the known ones in ORDER, then any others as they come."""
    seen = list(dict.fromkeys(r["label"] for r in rs))
    return [s for s in ORDER if s in seen] + [s for s in seen if s not in ORDER]


def by_label(rs):
    """Rows per server (one per round)."""
    out = {}
    for r in rs:
        out.setdefault(r["label"], []).append(r)
    return out


def median(vs):
    vs = sorted(vs)
    n = len(vs)
    return vs[n // 2] if n % 2 else (vs[n // 2 - 1] + vs[n // 2]) / 2


def values(group, key):
    return [float(r[key]) for r in group if r.get(key) not in (None, "")]


def spread(group, key, fmt):
    """The median of the rounds, with min–max when there was more than one."""
    vs = values(group, key)
    if not vs:
        return "n/a"
    if len(vs) == 1 or min(vs) == max(vs):
        return fmt(vs[0])
    return f"{fmt(median(vs))} ({fmt(min(vs))}–{fmt(max(vs))})"


def ratio_line(what, group, key, lower_is_better=True, targets=None):
    """wsdrain's median over each peer's, e.g. "0.62×", with the issue-6 target where there is one."""
    if "wsdrain" not in group or not values(group["wsdrain"], key):
        return None
    w = median(values(group["wsdrain"], key))
    parts = []
    for p in group:
        vs = values(group[p], key)
        if p == "wsdrain" or not vs or median(vs) == 0:
            continue
        target = f" (target {targets[p]})" if targets and p in targets else ""
        parts.append(f"{p} **{w / median(vs):.2f}×**{target}")
    if not parts:
        return None
    better = "lower" if lower_is_better else "higher"
    return f"- {what}, wsdrain / peer (medians; {better} is better for wsdrain): " + ", ".join(parts) + "."


def times(x):
    return f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


def us(v):
    return f"{v:.0f} µs"


def us3(v):
    return f"{v:.3f} µs"


def bytes_(v):
    return f"{v:,.0f} B"


def mib(v):
    return f"{v / 1048576:.1f}"


def rate(v):
    return f"{v:,.0f}"


def ordered(group):
    return {s: group[s] for s in labels([r for g in group.values() for r in g])}


lines = ["# Benchmark summary", "",
         "Each figure is the median of the rounds run, with min–max when there was more than one; "
         "ratios are wsdrain's median over the peer's.", ""]

idle = rows("idle.csv")
if idle:
    lines += ["## Memory per idle WebSocket (server RSS growth / N)", "",
              "| N | server | rounds | RSS before (MiB) | idle | after one message | after one alive round | kernel TCP | kernel slab (est.) |",
              "|---|---|---|---|---|---|---|---|---|"]
    counts = sorted({int(r["connections"]) for r in idle})
    for n in counts:
        group = ordered(by_label([r for r in idle if int(r["connections"]) == n]))
        for s, g in group.items():
            alive = spread(g, "rss_per_after_alive", bytes_)
            if alive == "n/a":
                alive = "n/a (no alive messages)"
            lines.append(f"| {n:,} | {s} | {len(g)} | {spread(g, 'rss_before', mib)} | {spread(g, 'rss_per_idle', bytes_)} | "
                         f"{spread(g, 'rss_per_after_message', bytes_)} | {alive} | "
                         f"{spread(g, 'kernel_tcp_per', bytes_)} | {spread(g, 'kernel_slab_per', bytes_)} |")
    lines.append("")
    for n in counts:
        group = ordered(by_label([r for r in idle if int(r["connections"]) == n]))
        if "wsdrain" not in group:
            continue
        w = median(values(group["wsdrain"], "rss_per_idle"))
        parts = []
        for p, g in group.items():
            if p == "wsdrain":
                continue
            m = median(values(g, "rss_per_idle"))
            if w <= 0 or m <= 0:
                parts.append(f"{p} {m:.0f} B")
            elif m >= w:
                parts.append(f"{times(m / w)} less than {p}")
            else:
                parts.append(f"{times(w / m)} more than {p}")
        lines.append(f"- N = {n:,}: wsdrain {w:.0f} B per idle connection" + ("; " + ", ".join(parts) if parts else "") + ".")
    lines.append("")

def server_table(group, heading, intro, columns, ratio, errors=True):
    """One section: a row per server (its rounds, then each column's spread of the rounds, then
    the errors of all rounds), and wsdrain's ratio line over the peers. `columns` are
    (header, CSV key, format); `ratio` is (what, CSV key, targets)."""
    global lines
    if not group:
        return
    headers = ["server", "rounds"] + [c[0] for c in columns] + (["errors"] if errors else [])
    lines += [heading, ""] + ([intro, ""] if intro else [])
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for s, g in group.items():
        cells = [s, str(len(g))] + [spread(g, key, fmt) for _, key, fmt in columns]
        if errors:
            cells.append(str(sum(int(r["errors"]) for r in g)))
        lines.append("| " + " | ".join(cells) + " |")
    what, key, targets = ratio
    line = ratio_line(what, group, key, targets=targets)
    if line:
        lines += ["", line]
    lines.append("")


latencies = [("p50", "p50_us", us), ("p99", "p99_us", us), ("p99.9", "p999_us", us),
             ("server CPU per message", "server_cpu_us_per_msg", us3)]
server_table(ordered(by_label(rows("echo.csv"))),
             "## Echo, 100 connections × 16 in flight × 32 B, as fast as replies come", None,
             [("msg/s", "msgs_per_sec", rate)] + latencies,
             ("server CPU per message", "server_cpu_us_per_msg", ECHO_TARGETS))
server_table(ordered(by_label(rows("echo-paced.csv"))),
             "## Echo at the same offered load (50,000 msg/s over 100 connections)", None,
             [("achieved msg/s", "msgs_per_sec", rate)] + latencies,
             ("p99", "p99_us", {"peer-default": "≤ 1×", "peer-4k": "≤ 1×"}), errors=False)
server_table(ordered(by_label(rows("connect.csv"))),
             "## Connect: TCP + upgrade + one echo + close, 50 in progress", None,
             [("connections/s", "connections_per_sec", rate),
              ("server CPU per connection", "server_cpu_us_per_conn", us3)],
             ("server CPU per connection", "server_cpu_us_per_conn", CONNECT_TARGETS))
for name, size in (("index", "2.7 KB"), ("client", "26 KB")):
    server_table(ordered(by_label(rows(f"static-{name}.csv"))),
                 f"## Static file ({size}), 50 keep-alive connections, one request in flight each",
                 None,
                 [("requests/s", "requests_per_sec", rate),
                  ("server CPU per request", "server_cpu_us_per_req", us3)],
                 ("server CPU per request", "server_cpu_us_per_req", STATIC_TARGETS))
fanout = ordered(by_label(rows("fanout.csv")))
if fanout:
    n = int(next(iter(fanout.values()))[0]["connections"])
    server_table(fanout, "## Alive fan-out: alive messages every 1 s to idle connections",
                 f"{n:,} idle connections. wsdrain: ALIVE_INTERVAL=1s, a timer per connection; uws and "
                 "node-ws: one timer sending to every open socket in a loop; uws-publish: uWS's publish "
                 "to a topic every socket joined.",
                 [("alive messages", "alive_messages", rate),
                  ("server CPU per alive message", "server_cpu_us_per_alive", us3)],
                 ("server CPU per alive message", "server_cpu_us_per_alive", FANOUT_TARGETS))


def strace_counts(path):
    counts = {}
    if not os.path.exists(path):
        return counts
    for line in open(path):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
        if m:
            counts[m.group(2)] = int(m.group(1))
    return counts


fs = strace_counts(os.path.join(out, "fanout-strace.txt"))
alive_file = os.path.join(out, "fanout-strace-alive.txt")
if fs and os.path.exists(alive_file):
    lines += ["## Syscalls per alive message (wsdrain)", ""]
    alive = int(open(alive_file).read().strip() or 0)
    fs.pop("total", None)
    per = {k: v / max(alive, 1) for k, v in fs.items() if v / max(alive, 1) >= 0.001}
    lines.append(f"- strace -c for 3 s with the connections idle: {alive:,} alive messages sent (server metric); per alive message: " +
                 ", ".join(f"{k} {v:.3f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])) + ".")
lines.append("")

es = rows("echo-strace.csv")
if es:
    lines += ["## Syscalls per echoed message (strace -c, 3 s; strace slows the servers, so only the counts matter)", "",
              "| server | messages | syscalls per message |", "|---|---|---|"]
    for r in es:
        c = strace_counts(os.path.join(out, f"echo-strace-{r['label']}.txt"))
        c.pop("total", None)
        messages = float(r["msgs_per_sec"]) * 3.5  # warm-up + measured window, both under strace
        if c:
            detail = ", ".join(f"{k} {v / messages:.3f}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])[:5])
            lines.append(f"| {r['label']} | ~{messages:,.0f} | {sum(c.values()) / messages:.3f} ({detail}) |")
    lines.append("")

startup = os.path.join(out, "startup.txt")
if os.path.exists(startup):
    lines += ["## Start-up", "", "- " + open(startup).read().strip(), ""]

with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))


# ---- plots (plain SVG) ----
COLORS = {"wsdrain": "#1b7f3b", "peer-default": "#b03a2e", "peer-4k": "#d68910", "uws": "#1f5fa8",
          "uws-publish": "#6c8ebf", "node-ws": "#7d3c98"}


def svg_plot(path, title, xlabel, ylabel, series, xlog=False, ylog=False, ymax=None):
    w, h, left, bottom, top, right = 640, 400, 70, 50, 40, 150
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    if not xs:
        return
    fx = (lambda v: math.log10(max(v, 1e-9))) if xlog else (lambda v: v)
    fy = (lambda v: math.log10(max(v, 1e-9))) if ylog else (lambda v: v)
    x0, x1 = fx(min(xs)), fx(max(xs))
    y0, y1 = (fy(min(ys)), fy(max(ys))) if ylog else (0, ymax if ymax else max(ys) * 1.1)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def px(v):
        return left + (fx(v) - x0) / (x1 - x0) * (w - left - right)

    def py(v):
        return h - bottom - (fy(v) - y0) / (y1 - y0) * (h - bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="{w / 2 - 60}" y="22" font-size="14">{title}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
             f'<text x="{(w - right + left) / 2 - 40}" y="{h - 12}">{xlabel}</text>',
             f'<text x="14" y="{top - 10}">{ylabel}</text>']
    for i in range(5):
        tx = x0 + (x1 - x0) * i / 4
        vx = 10 ** tx if xlog else tx
        parts.append(f'<text x="{left + (w - left - right) * i / 4 - 15}" y="{h - bottom + 16}">{vx:,.0f}</text>')
        ty = y0 + (y1 - y0) * i / 4
        vy = 10 ** ty if ylog else ty
        label = f"{vy:,.2f}" if vy < 10 else f"{vy:,.0f}"
        parts.append(f'<text x="4" y="{h - bottom - (h - bottom - top) * i / 4 + 4}">{label}</text>')
    for k, (name, pts) in enumerate(series.items()):
        color = COLORS.get(name, "#555")
        pts = sorted(pts)
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{d}"/>')
        for x, y in pts if len(pts) < 10 else []:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<rect x="{w - right + 10}" y="{top + 20 * k}" width="12" height="12" fill="{color}"/>')
        parts.append(f'<text x="{w - right + 28}" y="{top + 20 * k + 11}">{name}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


if idle:
    # One point per server and N: the median of the rounds.
    series = {}
    for s in labels(idle):
        for n in sorted({int(r["connections"]) for r in idle if r["label"] == s}):
            vs = [float(r["rss_per_idle"]) for r in idle if r["label"] == s and int(r["connections"]) == n]
            series.setdefault(s, []).append((n, max(median(vs), 1)))
    svg_plot(os.path.join(out, "memory.svg"), "Server RSS per idle WebSocket", "connections (N)",
             "bytes per connection (log)", series, ylog=True)

for name, title in (("echo-cdf.csv", "Round trip, closed loop"), ("echo-paced-cdf.csv", "Round trip at 50,000 msg/s")):
    cdf = rows(name)
    if cdf:
        series = {}
        for r in cdf:
            # From the 0.1th percentile: the fastest few replies only stretch the axis.
            if float(r["fraction"]) >= 0.001:
                series.setdefault(r["label"], []).append((max(int(r["latency_us"]), 1), float(r["fraction"])))
        svg_plot(os.path.join(out, name.replace(".csv", ".svg")), title, "round trip µs (log)",
                 "fraction of messages", series, xlog=True, ymax=1.0)
