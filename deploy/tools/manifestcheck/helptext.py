"""What `wsdrain --help` says: every setting with its default, and the budget rule's slack."""

import re

# The budget rule as --help prints it; the slack (lingering close + margin) is whole or decimal
# seconds: `+ 4s` (the rule until issue 20), `+ 4.5s` (since: /prestop answers 0.5 s late).
RULE = (r"PRESTOP_DELAY \+ DRAIN_WINDOW \+ HANDOVER_TIMEOUT \+ CLOSE_TIMEOUT \+ "
        r"([0-9]+(?:\.[0-9]+)?)s <= TERMINATION_GRACE_PERIOD")


class HelpError(ValueError):
    pass


def parse_help(text):
    """({VARIABLE: default}, slack in seconds) from the text of `wsdrain --help`."""
    defaults = dict(re.findall(r"^\s+--[\w-]+\s+([A-Z_]+)\s+\[default: ([^\]]*)\]", text, re.M))
    m = re.search(RULE, text)
    if not defaults or not m:
        raise HelpError("cannot read the settings or the budget rule from --help")
    return defaults, float(m.group(1))


# (the slack as --help might print it, seconds or None for refused).
HELP_CASES = [
    ("4s", 4), ("4.5s", 4.5), ("0.5s", 0.5), ("10s", 10), ("4.25s", 4.25),
    ("4.5 s", None), (".5s", None), ("4.s", None), ("4,5s", None), ("4", None), ("4.5ms", None),
]


def help_case_failures():
    """The budget rule read from a --help text with each slack of HELP_CASES."""
    bad = []
    for slack, want in HELP_CASES:
        text = ("  --prestop-delay   PRESTOP_DELAY   [default: 15s]\n\nBudget rule:\n"
                "  PRESTOP_DELAY + DRAIN_WINDOW + HANDOVER_TIMEOUT + CLOSE_TIMEOUT + "
                f"{slack} <= TERMINATION_GRACE_PERIOD\n")
        try:
            got = parse_help(text)[1]
        except HelpError:
            got = None
        if got != want:
            bad.append(f"budget rule with `+ {slack}` read as {got}, want {want}")
    return bad
