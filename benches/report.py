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


def by_label(rs):
    return {r["label"]: r for r in rs}


lines = ["# Benchmark summary", ""]
servers = ["wsdrain", "peer-default", "peer-4k"]

idle = rows("idle.csv")
if idle:
    lines += ["## Memory per idle WebSocket (server RSS growth / N)", "",
              "| N | server | idle | after one message | after one alive round | kernel TCP | kernel slab (est.) |",
              "|---|---|---|---|---|---|---|"]
    for r in idle:
        alive = r["rss_per_after_alive"] or "n/a (no alive messages)"
        if alive[0].isdigit():
            alive = f"{float(alive):.0f} B"
        lines.append(f"| {int(r['connections']):,} | {r['label']} | {float(r['rss_per_idle']):.0f} B | "
                     f"{float(r['rss_per_after_message']):.0f} B | {alive} | {float(r['kernel_tcp_per']):.0f} B | "
                     f"{float(r['kernel_slab_per']):.0f} B |")
    lines.append("")
    for n in sorted({int(r["connections"]) for r in idle}):
        at_n = {r["label"]: float(r["rss_per_idle"]) for r in idle if int(r["connections"]) == n}
        if "wsdrain" in at_n:
            ratios = ", ".join(f"{at_n[p] / max(at_n['wsdrain'], 1):.0f}× less than {p}"
                               for p in ("peer-default", "peer-4k") if p in at_n)
            lines.append(f"- N = {n:,}: wsdrain {at_n['wsdrain']:.0f} B per idle connection; {ratios}.")
    lines.append("")

echo = by_label(rows("echo.csv"))
if echo:
    lines += ["## Echo, 100 connections × 16 in flight × 32 B, as fast as replies come", "",
              "| server | msg/s | p50 | p99 | p99.9 | server CPU per message | errors |",
              "|---|---|---|---|---|---|---|"]
    for s in servers:
        if s in echo:
            r = echo[s]
            lines.append(f"| {s} | {float(r['msgs_per_sec']):,.0f} | {r['p50_us']} µs | {r['p99_us']} µs | "
                         f"{r['p999_us']} µs | {float(r['server_cpu_us_per_msg']):.3f} µs | {r['errors']} |")
    if "wsdrain" in echo:
        w = float(echo["wsdrain"]["server_cpu_us_per_msg"])
        for p in ("peer-default", "peer-4k"):
            if p in echo:
                lines.append(f"\n- server CPU per message, wsdrain / {p}: **{w / float(echo[p]['server_cpu_us_per_msg']):.2f}×** "
                             f"(target ≤ 0.5×)")
    lines.append("")

paced = by_label(rows("echo-paced.csv"))
if paced:
    lines += ["## Echo at the same offered load (50,000 msg/s over 100 connections)", "",
              "| server | achieved msg/s | p50 | p99 | p99.9 | server CPU per message |", "|---|---|---|---|---|---|"]
    for s in servers:
        if s in paced:
            r = paced[s]
            lines.append(f"| {s} | {float(r['msgs_per_sec']):,.0f} | {r['p50_us']} µs | {r['p99_us']} µs | "
                         f"{r['p999_us']} µs | {float(r['server_cpu_us_per_msg']):.3f} µs |")
    if "wsdrain" in paced:
        for p in ("peer-default", "peer-4k"):
            if p in paced:
                lines.append(f"\n- p99, wsdrain / {p}: **{int(paced['wsdrain']['p99_us']) / max(int(paced[p]['p99_us']), 1):.2f}×** (target ≤ 1×)")
    lines.append("")

connect = by_label(rows("connect.csv"))
if connect:
    lines += ["## Connect: TCP + upgrade + one echo + close, 50 in progress", "",
              "| server | connections/s | errors |", "|---|---|---|"]
    for s in servers:
        if s in connect:
            lines.append(f"| {s} | {float(connect[s]['connections_per_sec']):,.0f} | {connect[s]['errors']} |")
    lines.append("")

fanout = rows("fanout.csv")
if fanout:
    r = fanout[0]
    lines += ["## Alive fan-out (wsdrain)", "",
              f"- {int(r['connections']):,} idle connections, ALIVE_INTERVAL=1s: {int(r['alive_messages']):,} alive messages, "
              f"server CPU **{float(r['server_cpu_us_per_alive']):.3f} µs per alive message**."]


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
COLORS = {"wsdrain": "#1b7f3b", "peer-default": "#b03a2e", "peer-4k": "#d68910"}


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
    series = {}
    for r in idle:
        series.setdefault(r["label"], []).append((int(r["connections"]), max(float(r["rss_per_idle"]), 1)))
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
