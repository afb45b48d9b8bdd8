"""A pytest plugin run.py loads (`-p report_plugin`) to learn each test's outcome by node id.

Writes {nodeid: "passed" | "failed" | "skipped"} to $SHOP_REPORT_FILE at the end of the session;
a failure or error in any phase (setup, call, teardown) counts as failed.
"""

from __future__ import annotations

import json
import os

import pytest

_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    previous = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and previous is None:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and previous is None:
        _outcomes[report.nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("SHOP_REPORT_FILE")
    if path:
        with open(path, "w") as out:
            json.dump(_outcomes, out, indent=1)
