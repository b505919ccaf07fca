#!/usr/bin/env python3
"""Summarise an Autobahn|Testsuite fuzzingclient report and gate on it.

Reads OUTDIR/index.json (and each case's JSON report), prints a table of counts per section and
every FAILED (and NON-STRICT) case with its expectation and what was observed, writes the same as
Markdown, and exits 1 when a gated section has a FAILED case (or fewer cases ran than expected).

A case's status is the worst of its two verdicts, read as Autobahn's own HTML report shows them:
  FAILED         behavior or behaviorClose FAILED; also behaviorClose UNCLEAN and behavior
                 NO_CLOSE or any unknown value (shown as "Fail" by Autobahn)
  UNIMPLEMENTED  behavior UNIMPLEMENTED
  INFORMATIONAL  behavior INFORMATIONAL (the case has no pass/fail verdict)
  NON-STRICT     behavior NON-STRICT, or behaviorClose WRONG CODE / FAILED BY CLIENT
  OK             behavior OK and behaviorClose OK or INFORMATIONAL
"""
import argparse
import json
import os
import sys

STATUSES = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Misc",
    "12": "Compression",
    "13": "Compression",
}


def status(case):
    b, c = case.get("behavior"), case.get("behaviorClose")
    if b == "FAILED" or c in ("FAILED", "UNCLEAN") or b not in STATUSES or c not in (
        "OK",
        "INFORMATIONAL",
        "NON-STRICT",
        "WRONG CODE",
        "FAILED BY CLIENT",
    ):
        return "FAILED"
    if b in ("UNIMPLEMENTED", "INFORMATIONAL"):
        return b
    if b == "NON-STRICT" or c in ("NON-STRICT", "WRONG CODE", "FAILED BY CLIENT"):
        return "NON-STRICT"
    return "OK"


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def clip(value, limit=300):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def details(outdir, case_id, entry, events=False):
    """The lines describing one case, from its own JSON report."""
    path = os.path.join(outdir, entry.get("reportfile", ""))
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        return ["(case report %s unreadable: %s)" % (path, e)]
    close = rep.get("expectedClose") or {}
    lines = [
        "description:  " + clip(rep.get("description", "")),
        "expectation:  " + clip(rep.get("expectation", "")),
        "observed:     behavior %s: %s" % (rep.get("behavior"), clip(rep.get("result", ""))),
        "close:        behaviorClose %s: expected code %s%s, %s"
        % (
            rep.get("behaviorClose"),
            "/".join(str(c) for c in close.get("closeCode", [])) or "any",
            " (clean)" if close.get("requireClean") else "",
            clip(rep.get("resultClose", "")),
        ),
        "server sent:  close %s %s; clean=%s%s"
        % (
            rep.get("remoteCloseCode"),
            json.dumps(rep.get("remoteCloseReason")),
            rep.get("wasClean"),
            (", not clean: " + clip(rep.get("wasNotCleanReason"))) if rep.get("wasNotCleanReason") else "",
        ),
    ]
    if events:
        lines.insert(3, "expected:     " + clip(rep.get("expected", {}), 400))
        lines.insert(4, "received:     " + clip(rep.get("received", []), 400))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir", help="the fuzzingclient outdir (holds index.json)")
    ap.add_argument("--agent", default="wsdrain")
    ap.add_argument("--markdown", help="write the summary as Markdown here")
    ap.add_argument("--gate", default="1,2,3,4,5,6,7,9,10", help="sections where FAILED fails the run")
    ap.add_argument("--min-cases", type=int, default=0, help="fail when fewer cases ran")
    args = ap.parse_args()

    with open(os.path.join(args.outdir, "index.json")) as f:
        index = json.load(f)
    if args.agent not in index:
        print("autobahn: agent %r not in index.json (agents: %s)" % (args.agent, list(index)))
        return 1
    cases = index[args.agent]
    gate = set(args.gate.split(","))

    per_section = {}
    for case_id, entry in cases.items():
        sec = case_id.split(".")[0]
        row = per_section.setdefault(sec, dict({s: 0 for s in STATUSES}, cases=0, ms=0))
        row[status(entry)] += 1
        row["cases"] += 1
        row["ms"] += entry.get("duration") or 0

    header = ["section", "cases"] + STATUSES + ["time (s)"]
    rows = []
    total = dict({s: 0 for s in STATUSES}, cases=0, ms=0)
    for sec in sorted(per_section, key=int):
        row = per_section[sec]
        for k in total:
            total[k] += row[k]
        name = "%s %s" % (sec, SECTIONS.get(sec, ""))
        rows.append([name.strip(), row["cases"]] + [row[s] for s in STATUSES] + ["%.1f" % (row["ms"] / 1000.0)])
    rows.append(["total", total["cases"]] + [total[s] for s in STATUSES] + ["%.1f" % (total["ms"] / 1000.0)])

    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
    print(fmt(header))
    for r in rows:
        print(fmt(r))

    failed = sorted((c for c in cases if status(cases[c]) == "FAILED"), key=case_key)
    non_strict = sorted((c for c in cases if status(cases[c]) == "NON-STRICT"), key=case_key)
    gated = [c for c in failed if c.split(".")[0] in gate]

    listing = []
    for title, ids in (("FAILED", failed), ("NON-STRICT", non_strict)):
        if not ids:
            continue
        listing.append((title, [(c, details(args.outdir, c, cases[c], title == "FAILED")) for c in ids]))
    for title, items in listing:
        print("\n%s cases:" % title)
        for case_id, lines in items:
            print("  %s" % case_id)
            for line in lines:
                print("      " + line)

    if args.markdown:
        md = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for r in rows:
            cells = [str(v) for v in r]
            if r[0] == "total":
                cells = ["**%s**" % v for v in cells]
            md.append("| " + " | ".join(cells) + " |")
        for title, items in listing:
            md.append("")
            md.append("%s cases:" % title)
            md.append("")
            for case_id, lines in items:
                md.append("- **%s**: " % case_id + "; ".join(l.split(":", 1)[0] + ": " + l.split(":", 1)[1].strip() for l in lines))
        with open(args.markdown, "w") as f:
            f.write("\n".join(md) + "\n")

    rc = 0
    if total["cases"] < args.min_cases:
        print("\nautobahn: only %d cases ran, expected %d" % (total["cases"], args.min_cases))
        rc = 1
    if gated:
        print("\nautobahn: %d FAILED case(s) in sections %s: %s" % (len(gated), args.gate, " ".join(gated)))
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
