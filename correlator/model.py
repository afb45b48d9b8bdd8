"""The explanation model: what every renderer (text, JSON, proto) reads. Frozen, plain data.

JSON schema version 1 (``correlator/explain.schema.json``) is derived from these classes by
``to_dict``; fields are only ever added within a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from otel_triage.correlator.history_model import TestHistory, TraceDiff, diff_from_dict, history_from_dict

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Evidence:
    kind: str  # error | exception | log | latency | status | no-server-span | retry | noise | metric | calls | log-template | pattern | peer-address | inferred-link | change
    service: str
    operation: str
    detail: str
    trace_id: str = ""
    span_id: str = ""


@dataclass(frozen=True)
class InferredLink:
    """A parent → child step of a path that no trace context recorded: stitched by inference."""

    parent_span_id: str
    span_id: str
    rule: str  # address | same service (correlator/stitch.py)
    confidence: float  # 0..1: the rule's strength over how many spans could equally be the parent
    detail: str


@dataclass(frozen=True)
class Candidate:
    service: str
    operation: str
    score: float
    reason: str
    signal: str  # error | latency | log | dependency | comparison (from the run's comparison with its baseline) | change
    path: tuple[str, ...] = ()  # "service: operation" from the test down to the cause
    evidence: tuple[Evidence, ...] = ()
    # Span ids matching ``path``, from the test span itself down to the cause (the report's waterfall
    # highlights them). Added within schema version 1: older producers leave it empty.
    path_span_ids: tuple[str, ...] = ()
    # Steps of ``path`` joined by inference (a broken trace stitched back); added within version 1.
    inferred_links: tuple[InferredLink, ...] = ()


@dataclass(frozen=True)
class FailedTest:
    test: str
    trace_id: str
    span_id: str
    message: str | None
    exception_type: str | None
    root_cause: Candidate | None
    no_cause_reason: str | None
    candidates: tuple[Candidate, ...]
    link: str | None = None  # how a test from a JUnit report was tied to the traces (None: it is a span)
    # Added within schema version 1 (history_model.py): the flaky verdict from the store's earlier
    # runs, and the test's trace beside the same test's in the baseline run. None: not computed.
    history: TestHistory | None = None
    diff: TraceDiff | None = None


@dataclass(frozen=True)
class Group:
    service: str | None
    operation: str | None
    reason: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Suspect:
    service: str
    score: float
    failed_tests: int
    reason: str
    evidence: tuple[Evidence, ...] = ()  # how the service differs from the baseline run, run-wide


@dataclass(frozen=True)
class Explanation:
    run_id: str
    baseline_run_id: str | None
    baseline: str  # how the baseline was chosen, in words
    tests: int
    passed_tests: int
    failed_tests: tuple[FailedTest, ...]
    groups: tuple[Group, ...]
    suspects: tuple[Suspect, ...]
    notes: tuple[str, ...] = field(default=())

    def encodable(self) -> dict[str, Any]:
        """The versioned JSON form with the dataclasses left in place, for an encoder that takes
        them in field order (orjson: the same bytes as ``to_dict``, without building its dicts)."""
        return {"schema_version": SCHEMA_VERSION, **{n: getattr(self, n) for n in _names(Explanation)}}

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (docs/json.md)."""
        body = {name: _plain(getattr(self, name)) for name in _names(Explanation) if name != "failed_tests"}
        body["failed_tests"] = [_test_dict(t) for t in self.failed_tests]
        for suspect in body["suspects"]:
            suspect["evidence"] = list(suspect["evidence"])
        return {"schema_version": SCHEMA_VERSION, **{n: body[n] for n in _names(Explanation)}}


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copies (every leaf here is immutable): a run with
    hundreds of failed tests converts in milliseconds instead of a second."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _names(type(value))}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _test_dict(test: FailedTest) -> dict[str, Any]:
    out = _plain(test)
    for cand in [out["root_cause"], *out["candidates"]]:
        if cand is not None:
            cand["path"] = list(cand["path"])
            cand["path_span_ids"] = list(cand["path_span_ids"])
            cand["inferred_links"] = list(cand["inferred_links"])
            cand["evidence"] = list(cand["evidence"])
    out["candidates"] = list(out["candidates"])
    return out


def _candidate(d: dict[str, Any] | None) -> Candidate | None:
    if d is None:
        return None
    return Candidate(**{**d, "path": tuple(d["path"]), "path_span_ids": tuple(d.get("path_span_ids", ())),
                        "inferred_links": tuple(InferredLink(**x) for x in d.get("inferred_links", ())),
                        "evidence": tuple(Evidence(**e) for e in d["evidence"])})


def from_dict(d: dict[str, Any]) -> Explanation:
    """The inverse of ``Explanation.to_dict`` (the CLI renders a daemon's JSON answer with it)."""
    tests = tuple(
        FailedTest(**{**t, "root_cause": _candidate(t["root_cause"]),
                      "candidates": tuple(_candidate(c) for c in t["candidates"]),
                      "history": history_from_dict(t.get("history")), "diff": diff_from_dict(t.get("diff"))})
        for t in d["failed_tests"]
    )
    return Explanation(
        run_id=d["run_id"], baseline_run_id=d["baseline_run_id"], baseline=d["baseline"], tests=d["tests"],
        passed_tests=d["passed_tests"], failed_tests=tests,
        groups=tuple(Group(**{**g, "tests": tuple(g["tests"])}) for g in d["groups"]),
        suspects=tuple(Suspect(**{**s, "evidence": tuple(Evidence(**e) for e in s.get("evidence", ()))})
                       for s in d["suspects"]),
        notes=tuple(d["notes"]),
    )
