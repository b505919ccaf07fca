"""Durations and sizes: the server's durations, Kubernetes quantities, Prometheus durations."""

import re

# The longest duration the server accepts (MAX_DURATION in src/config/parse.rs: 10 days).
MAX_DURATION_SECONDS = 10 * 24 * 3600


def seconds(text):
    """A duration exactly as the server parses it (parse_duration in src/config/parse.rs): digits
    with at most one inner dot, then nothing (seconds), ms, s, m or h; no space inside; at most 10
    days. Anything else raises ValueError, as the server refuses to start on it."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?", str(text).strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration the server accepts (15s, 500ms, 2m, 1h, 15)")
    value = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if value > MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is too long for the server (at most 10 days)")
    return value


# (text, seconds or None for refused): the cases of the server's own test (config.rs durations).
DURATION_CASES = [
    ("15s", 15), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("15", 15), ("0.5", 0.5), ("0", 0),
    ("1.5s", 1.5), ("3470s", 3470), ("57m", 3420),
    ("", None), ("s", None), ("1x", None), ("-1", None), (".5", None), ("5.", None),
    ("1e3", None), ("15 s", None), ("31d", None), ("99999999h", None), ("NaN", None),
]


def duration_case_failures():
    bad = []
    for text, want in DURATION_CASES:
        try:
            got = seconds(text)
        except ValueError:
            got = None
        if got != want:
            bad.append(f"seconds({text!r}) = {got}, the server's parse_duration gives {want}")
    return bad


def quantity_bytes(q):
    """A Kubernetes memory quantity (64Mi, 1G, 1000) in bytes."""
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|K|M|G)?", str(q))
    mult = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1e3, "M": 1e6, "G": 1e9, None: 1}
    return float(m.group(1)) * mult[m.group(2)]


def prometheus_seconds(text):
    """A Prometheus duration (30s, 1m, 1m30s, 500ms) in seconds, or None."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(int(n) * units[u] for n, u in parts)
