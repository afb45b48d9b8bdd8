"""The fault switch: one scenario name per environment, read once at startup.

Every process gets the same `TRIAGE_EXAMPLE_FAULT`; each service checks only the names it
implements, so a scenario's fault lives in exactly one place in the code.
"""

from __future__ import annotations

import os

FAULT_ENV = "TRIAGE_EXAMPLE_FAULT"


def current() -> str:
    """The scenario name in force, or "clean"."""
    return os.environ.get(FAULT_ENV, "").strip() or "clean"


def active(*names: str) -> bool:
    """True when the running scenario is one of `names`."""
    return current() in names
