"""What `wsdrain --help` says: every setting with its default, and the budget rule's slack."""

import re


class HelpError(ValueError):
    pass


def parse_help(text):
    """({VARIABLE: default}, slack in seconds) from the text of `wsdrain --help`."""
    defaults = dict(re.findall(r"^\s+--[\w-]+\s+([A-Z_]+)\s+\[default: ([^\]]*)\]", text, re.M))
    m = re.search(
        r"PRESTOP_DELAY \+ DRAIN_WINDOW \+ HANDOVER_TIMEOUT \+ CLOSE_TIMEOUT \+ (\d+)s "
        r"<= TERMINATION_GRACE_PERIOD",
        text,
    )
    if not defaults or not m:
        raise HelpError("cannot read the settings or the budget rule from --help")
    return defaults, int(m.group(1))
