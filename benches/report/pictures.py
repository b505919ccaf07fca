#!/usr/bin/env python3
"""Draws the pictures of a run's folder (benches/run.sh's CSVs) with matplotlib, as SVG (and,
with --png, a PNG beside each, to look at):

- memory.svg: server memory per idle WebSocket, a bar per server and number of connections;
- echo-cdf.svg, echo-paced-cdf.svg: the round trip by percentile, closed loop and at 50,000
  msg/s offered.

Usage: python3 benches/report/pictures.py FOLDER [--png]
(benches/report.sh runs it with the pinned matplotlib of requirements.txt.)
"""
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from results import NAMES, by_label, labels, median, rows, values  # noqa: E402

# Text stays text in the SVG (smaller, selectable), in a font every browser has or replaces with
# its own sans-serif; the same file twice for the same data (fixed ids, no date).
plt.rcParams.update({
    "svg.fonttype": "none",
    "svg.hashsalt": "wsdrain-benches",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans"],
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "legend.frameon": False,
})

# One colour per server in every picture (Okabe–Ito: told apart with any colour vision).
COLORS = {"wsdrain": "#0072B2", "uws": "#E69F00", "uws-publish": "#F0E442", "node-ws": "#009E73",
          "peer-4k": "#CC79A7", "peer-default": "#D55E00", "nginx": "#56B4E9",
          "wsdrain-old": "#999999"}
STYLES = {"wsdrain": "-", "uws": "--", "node-ws": "-.", "peer-4k": ":", "peer-default": (0, (5, 1, 1, 1))}


def thousands(v, _=None):
    """1234.5 → "1,235"; 0.5 → "0.5": round ticks as a reader writes them."""
    return f"{v:,.0f}" if v >= 1 or v == 0 else f"{v:g}"


def save(fig, folder, name, png):
    path = os.path.join(folder, name)
    fig.savefig(path, metadata={"Date": None}, bbox_inches="tight")
    if png:
        fig.savefig(path.replace(".svg", ".png"), dpi=150, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def memory(folder, png):
    """Grouped bars: x the servers (least memory first), a bar per N, log y with decade ticks."""
    idle = rows(folder, "idle.csv")
    if not idle:
        return
    counts = sorted({int(r["connections"]) for r in idle})
    groups = {(s, n): values([r for r in g if int(r["connections"]) == n], "rss_per_idle")
              for s, g in by_label(idle).items() for n in counts}
    servers = sorted(labels(idle), key=lambda s: median(groups[(s, counts[-1])] or [0]))
    blues = ["#9ecae1", "#4292c6", "#08306b"][-len(counts):] if len(counts) <= 3 else [None] * len(counts)
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    top = 1.0
    for i, n in enumerate(counts):
        xs, heights, low, high = [], [], [], []
        for k, s in enumerate(servers):
            vs = groups[(s, n)]
            if not vs:
                continue
            m = max(median(vs), 1.0)
            xs.append(k + (i - (len(counts) - 1) / 2) * width)
            heights.append(m)
            low.append(m - max(min(vs), 1.0))
            high.append(max(max(vs) - m, 0.0))
            top = max(top, max(vs))
        ax.bar(xs, heights, width * 0.92, color=blues[i], label=f"{n:,}",
               yerr=[low, high], error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#444"})
        # Each bar's median, written above its whisker.
        for x, h, up in zip(xs, heights, high):
            ax.text(x, (h + up) * 1.25, f"{h:,.0f}", rotation=90, ha="center", va="bottom", fontsize=7.5)
    ax.set_yscale("log")
    ax.set_ylim(10, top * 40)
    ax.yaxis.set_major_locator(LogLocator(base=10))
    ax.yaxis.set_major_formatter(FuncFormatter(thousands))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="y", which="major", color="#ddd", linewidth=0.8)
    ax.set_xticks(range(len(servers)), [NAMES.get(s, s).replace(", ", ",\n") for s in servers])
    ax.set_ylabel("server RSS growth per connection (bytes, log scale)")
    ax.set_title("Server memory per idle WebSocket (median of the rounds, whiskers min–max)")
    ax.legend(title="idle connections (N)", ncols=len(counts), loc="upper left")
    save(fig, folder, "memory.svg", png)


# The percentile axis: x = -log10(1 - p), so 90 %, 99 %, 99.9 % and 99.99 % are equally spaced.
PERCENTILES = [0.5, 0.9, 0.99, 0.999, 0.9999]


def tail(p):
    return -math.log10(max(1 - p, 1e-4))


def round_trip(folder, name, title, png):
    """The round trip by percentile, a line per server, from `loadgen echo --cdf`."""
    cdf = rows(folder, name)
    if not cdf:
        return
    fig, ax = plt.subplots(figsize=(6.2, 4.2))  # and the legend beside it
    fastest = []
    groups = by_label(cdf)
    for s in labels(cdf):  # the legend in the tables' order
        xs, ys, before = [], [], 0.0
        for r in groups[s]:
            fraction, ms = float(r["fraction"]), max(int(r["latency_us"]), 1) / 1000
            # Messages between the previous fraction and this one took `ms`: a step.
            xs += [tail(before), tail(fraction)]
            ys += [ms, ms]
            if before < 0.01 <= fraction:
                fastest.append(ms)  # this server's 1st percentile
            before = fraction
            if fraction >= 0.9999:
                break
        ax.plot(xs, ys, color=COLORS.get(s), linestyle=STYLES.get(s, "-"),
                linewidth=2.2 if s == "wsdrain" else 1.5, label=NAMES.get(s, s))
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(thousands))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_locator(FixedLocator([tail(p) for p in PERCENTILES]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{100 * (1 - 10 ** -x):g} %"))
    ax.set_xlim(0, tail(0.9999))
    if fastest:
        # The fastest 1 % of each server's messages only stretch the axis: below its bottom.
        ax.set_ylim(bottom=min(fastest) * 0.8)
    ax.grid(which="major", color="#ddd", linewidth=0.8)
    ax.set_xlabel("percentile of messages (tail to the right)")
    ax.set_ylabel("round trip (ms, log scale)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot
    save(fig, folder, name.replace(".csv", ".svg"), png)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--png"]
    if len(args) != 1:
        sys.exit(__doc__.strip())
    png = "--png" in sys.argv
    memory(args[0], png)
    round_trip(args[0], "echo-cdf.csv",
               "Round trip, closed loop: 100 connections × 16 in flight × 32 B (round 1)", png)
    round_trip(args[0], "echo-paced-cdf.csv",
               "Round trip at 50,000 msg/s offered over 100 connections (round 1)", png)
