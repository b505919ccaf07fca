#!/usr/bin/env python3
"""Writes FOLDER/summary.md from the CSVs of benches/run.sh in FOLDER: per server the median of
the rounds with min–max, and wsdrain's median over each peer's. Standard library only.

Usage: python3 benches/report/summary.py FOLDER
"""
import os
import sys

from results import by_label, median, ordered, rows, strace_counts, values

# The ratio targets, per peer: issue 6's against the tokio peer, issue 15's against uWebSockets
# and nginx.
ECHO_TARGETS = {"peer-default": "≤ 0.5×", "uws": "≤ 0.9×"}
CONNECT_TARGETS = {"uws": "≤ 0.9×"}
FANOUT_TARGETS = {"uws": "≤ 1×", "uws-publish": "≤ 1×", "uws-spread": "≤ 1×"}
STATIC_TARGETS = {"nginx": "≤ 0.75×"}
PACED_TARGETS = {"peer-default": "≤ 1×", "peer-4k": "≤ 1×"}


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


def spread(group, key, fmt):
    """The median of the rounds, with min–max when there was more than one."""
    vs = values(group, key)
    if not vs:
        return "n/a"
    if len(vs) == 1 or min(vs) == max(vs):
        return fmt(vs[0])
    return f"{fmt(median(vs))} ({fmt(min(vs))}–{fmt(max(vs))})"


def ratio_line(what, group, key, targets=None):
    """wsdrain's median over each peer's, e.g. "0.62×", with the target where there is one."""
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
    return f"- {what}, wsdrain / peer (medians; lower is better for wsdrain): " + ", ".join(parts) + "."


def idle_section(idle):
    """Memory per idle WebSocket: a row per N and server, then wsdrain against each peer."""
    lines = ["## Memory per idle WebSocket (server RSS growth / N)", "",
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
    return lines + [""]


def server_table(group, heading, intro, columns, ratio, errors=True):
    """One section: a row per server (its rounds, then each column's spread of the rounds, then
    the errors of all rounds), and wsdrain's ratio line over the peers. `columns` are
    (header, CSV key, format); `ratio` is (what, CSV key, targets)."""
    if not group:
        return []
    headers = ["server", "rounds"] + [c[0] for c in columns] + (["errors"] if errors else [])
    lines = [heading, ""] + ([intro, ""] if intro else [])
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
    return lines + [""]


def load_sections(folder):
    """Echo (closed loop and paced), connect, static files and the alive fan-out."""
    def table(name):
        return ordered(by_label(rows(folder, name)))

    latencies = [("p50", "p50_us", us), ("p99", "p99_us", us), ("p99.9", "p999_us", us),
                 ("server CPU per message", "server_cpu_us_per_msg", us3)]
    lines = server_table(table("echo.csv"),
                         "## Echo, 100 connections × 16 in flight × 32 B, as fast as replies come", None,
                         [("msg/s", "msgs_per_sec", rate)] + latencies,
                         ("server CPU per message", "server_cpu_us_per_msg", ECHO_TARGETS))
    lines += server_table(table("echo-paced.csv"),
                          "## Echo at the same offered load (50,000 msg/s over 100 connections)", None,
                          [("achieved msg/s", "msgs_per_sec", rate)] + latencies,
                          ("p99", "p99_us", PACED_TARGETS), errors=False)
    lines += server_table(table("connect.csv"),
                          "## Connect: TCP + upgrade + one echo + close, 50 in progress", None,
                          [("connections/s", "connections_per_sec", rate),
                           ("server CPU per connection", "server_cpu_us_per_conn", us3)],
                          ("server CPU per connection", "server_cpu_us_per_conn", CONNECT_TARGETS))
    for name in ("index", "client"):
        static = table(f"static-{name}.csv")
        if not static:
            continue
        first = next(iter(static.values()))[0]
        size = f"{first['path']}, {int(first['body_bytes']) / 1000:.1f} KB"
        lines += server_table(static,
                              f"## Static file ({size}), 50 keep-alive connections, one request in flight each",
                              None,
                              [("requests/s", "requests_per_sec", rate),
                               ("server CPU per request", "server_cpu_us_per_req", us3)],
                              ("server CPU per request", "server_cpu_us_per_req", STATIC_TARGETS))
    fanout = table("fanout.csv")
    if fanout:
        n = int(next(iter(fanout.values()))[0]["connections"])
        lines += server_table(fanout, "## Alive fan-out: alive messages every 1 s to idle connections",
                              f"{n:,} idle connections. wsdrain: ALIVE_INTERVAL=1s, a timer per connection on a "
                              "100 ms grid (a tenth of the connections per grid point); uws and node-ws: one timer "
                              "sending to every open socket in a loop, all in one tick; uws-publish: uWS's publish "
                              "to a topic every socket joined; uws-spread: one send per socket spread over a 100 ms "
                              "grid, as wsdrain spreads them.",
                              [("alive messages", "alive_messages", rate),
                               ("server CPU per alive message", "server_cpu_us_per_alive", us3)],
                              ("server CPU per alive message", "server_cpu_us_per_alive", FANOUT_TARGETS))
    return lines


# The echo run under strace in benches/run.sh: --seconds 3 plus --warmup 0.5, both traced. Its
# CSV row has the rate of the measured 3 s only, so the messages strace saw are that rate times
# this. Change it with run.sh's strace phase.
ECHO_STRACE_SECONDS = 3 + 0.5


def syscall_sections(folder):
    """Syscalls per alive message and per echoed message, from strace -c."""
    lines = []
    fs = strace_counts(os.path.join(folder, "fanout-strace.txt"))
    alive_file = os.path.join(folder, "fanout-strace-alive.txt")
    if fs and os.path.exists(alive_file):
        lines += ["## Syscalls per alive message (wsdrain)", ""]
        with open(alive_file) as f:
            alive = int(f.read().strip() or 0)
        fs.pop("total", None)
        per = {k: v / max(alive, 1) for k, v in fs.items() if v / max(alive, 1) >= 0.001}
        lines.append(f"- strace -c for 3 s with the connections idle: {alive:,} alive messages sent (server metric); per alive message: " +
                     ", ".join(f"{k} {v:.3f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])) + ".")
    lines.append("")

    es = rows(folder, "echo-strace.csv")
    if es:
        lines += ["## Syscalls per echoed message (strace -c, 3 s; strace slows the servers, so only the counts matter)", "",
                  "| server | messages | syscalls per message |", "|---|---|---|"]
        for r in es:
            c = strace_counts(os.path.join(folder, f"echo-strace-{r['label']}.txt"))
            c.pop("total", None)
            messages = float(r["msgs_per_sec"]) * ECHO_STRACE_SECONDS
            if c:
                detail = ", ".join(f"{k} {v / messages:.3f}" for k, v in sorted(c.items(), key=lambda kv: -kv[1])[:5])
                lines.append(f"| {r['label']} | ~{messages:,.0f} | {sum(c.values()) / messages:.3f} ({detail}) |")
        lines.append("")
    return lines


def summary(folder):
    lines = ["# Benchmark summary", "",
             "Each figure is the median of the rounds run, with min–max when there was more than one; "
             "ratios are wsdrain's median over the peer's.", ""]
    run = os.path.join(folder, "run.txt")
    if os.path.exists(run):
        with open(run) as f:
            lines += ["The run: " + "; ".join(line.strip() for line in f if line.strip()) + ".", ""]
    idle = rows(folder, "idle.csv")
    if idle:
        lines += idle_section(idle)
    lines += load_sections(folder)
    lines += syscall_sections(folder)
    startup = os.path.join(folder, "startup.txt")
    if os.path.exists(startup):
        with open(startup) as f:
            lines += ["## Start-up", "", "- " + f.read().strip(), ""]
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip())
    text = "\n".join(summary(sys.argv[1])) + "\n"
    with open(os.path.join(sys.argv[1], "summary.md"), "w") as f:
        f.write(text)
    print(text, end="")
