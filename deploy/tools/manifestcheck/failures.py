"""The failures found in one rendering: every rule appends its message here."""

failures = []


def check(cond, msg):
    """Records msg when cond is false; returns cond, so a rule can go on only if it held."""
    if not cond:
        failures.append(msg)
    return cond
