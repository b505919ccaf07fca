"""The self-test: every known breakage of a rendering must be caught, durations must parse as
the server parses them, and the budget rule must be read from --help whatever its slack."""

import copy

from .breakages import MUTATIONS, MUTATIONS_WITH_AGE
from .breakages_gke import MUTATIONS_GKE
from .breakages_spot import MUTATIONS_SPOT
from .failures import failures
from .helptext import help_case_failures
from .rendering import checks
from .units import duration_case_failures


def breakages(require_age, require_gke, require_spot=False):
    """The breakages that apply to a rendering checked with these options."""
    return {**MUTATIONS, **(MUTATIONS_WITH_AGE if require_age else {}),
            **(MUTATIONS_GKE if require_gke else {}), **(MUTATIONS_SPOT if require_spot else {})}


def self_test(docs, defaults, slack, schemas, require_age, require_gke, require_spot=False):
    """Runs every breakage on a copy of docs; leaves what went wrong in failures, returns how
    many breakages ran."""
    bad = duration_case_failures() + help_case_failures()
    mutations = breakages(require_age, require_gke, require_spot)
    for name, (mutate, expect) in mutations.items():
        ds = copy.deepcopy(docs)
        mutate(ds)
        found = checks(ds, defaults, slack, schemas, require_age, require_gke, require_spot)
        if not any(expect in f for f in found):
            bad.append(f"mutation '{name}' not caught (wanted '{expect}', got {found})")
    failures.clear()
    failures.extend(bad)
    return len(mutations)
