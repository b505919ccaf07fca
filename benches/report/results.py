"""Reading a run's folder (benches/run.sh's CSVs): rows, the servers in a fixed order, medians
over the rounds. Shared by summary.py (the tables) and pictures.py. Standard library only."""
import csv
import os
import re

# The servers in the order the tables list them; any other label follows in order of appearance.
ORDER = ["wsdrain", "wsdrain-old", "peer-default", "peer-4k", "uws", "uws-publish", "uws-spread", "node-ws"]

# What the pictures call each server.
NAMES = {"wsdrain": "wsdrain", "wsdrain-old": "wsdrain (older build)", "uws": "uWebSockets",
         "uws-publish": "uWebSockets (publish)", "uws-spread": "uWebSockets (spread over the grid)",
         "node-ws": "Node ws",
         "peer-4k": "tokio peer, 4 KiB buffers", "peer-default": "tokio peer, default buffers",
         "nginx": "nginx"}


def rows(folder, name):
    """The rows of FOLDER/NAME as dicts; none when the file is missing."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


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


def ordered(group):
    """A by_label dict with its servers in table order."""
    return {s: group[s] for s in labels([r for g in group.values() for r in g])}


def median(vs):
    vs = sorted(vs)
    n = len(vs)
    return vs[n // 2] if n % 2 else (vs[n // 2 - 1] + vs[n // 2]) / 2


def values(group, key):
    """The numbers in column KEY of these rows (blank cells left out)."""
    return [float(r[key]) for r in group if r.get(key) not in (None, "")]


def strace_counts(path):
    """Calls per syscall from an `strace -c` summary file; none when the file is missing."""
    counts = {}
    if not os.path.exists(path):
        return counts
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m:
                counts[m.group(2)] = int(m.group(1))
    return counts
