"""The flaky verdict and the trace diff of one failed test: frozen data every renderer reads.

Kept apart from ``model.py`` so the two features add fields to ``FailedTest`` without growing it;
both are additive within JSON schema version 1 (``explain.schema.json``), ``None`` when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestHistory:
    """How the test fared in the last runs of the store, up to and including this one."""

    __test__ = False  # not a pytest class

    verdict: str  # flaky | consistent-cause | different-services | changed-code | always-failed
    flaky: bool
    summary: str  # "failed 3 of the last 20 runs; causes differ: none, auth, none"
    runs: int  # runs in the window that ran this test (this one included)
    failed: int
    passed: int
    code_version: str | None  # vcs.ref.head.revision, else service.version, of the runner; None: not recorded
    same_code_runs: int  # runs in the window on the same code version (all of them when none is recorded)
    same_code_passed: int
    passed_on_rerun: bool  # the test also passed within this very run (a retry)
    causes: tuple[str, ...]  # the root-cause service of each failure in the window, oldest first; "none"
    consistent_cause: str | None  # the service behind (nearly) every failure, when there is one


@dataclass(frozen=True)
class SpanChange:
    """One call under the test that differs from the same call under the baseline's test."""

    change: str  # appeared | vanished | slower | status
    service: str
    operation: str
    path: tuple[str, ...]  # "service: operation" from below the test span down to this call
    span_id: str = ""  # in this run ("" for a vanished call)
    baseline_span_id: str = ""  # in the baseline run ("" for an appeared call)
    duration_ms: float | None = None
    baseline_duration_ms: float | None = None
    status: str = ""  # Unset | Ok | Error
    baseline_status: str = ""
    detail: str = ""  # in words: "+1150 ms (8 ms → 1158 ms, 144.8x)", "Ok → Error"


@dataclass(frozen=True)
class TraceDiff:
    """The test's subtree beside the same test's subtree in the baseline run."""

    baseline_run_id: str
    baseline_trace_id: str
    baseline_span_id: str
    spans: int
    baseline_spans: int
    appeared: int
    vanished: int
    slower: int
    status_changed: int
    changes: tuple[SpanChange, ...]  # the most telling first, at most MAX_CHANGES
    summary: str


def history_from_dict(d: dict[str, Any] | None) -> TestHistory | None:
    return None if d is None else TestHistory(**{**d, "causes": tuple(d["causes"])})


def diff_from_dict(d: dict[str, Any] | None) -> TraceDiff | None:
    if d is None:
        return None
    changes = tuple(SpanChange(**{**c, "path": tuple(c["path"])}) for c in d["changes"])
    return TraceDiff(**{**d, "changes": changes})
