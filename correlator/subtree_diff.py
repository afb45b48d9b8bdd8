"""A failed test with no error and no abnormal latency, against the same test in the baseline run.

A wrong value with HTTP 200 leaves no error to follow; what differs from the passing run is in the
origin: a new WARN log template, a fallback path taken or a cache skipped (calls made a different
number of times, new or vanished), a changed attribute value. queries/subtree_diff.sql finds each
such difference under the failed test; here each becomes a vote for the service whose code changed
course (the caller, for calls), the strongest difference naming the candidate. A change is weaker
evidence than an error, so its score stays below what an error earns (CHANGE_ORIGIN).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from otel_triage.correlator.model import Candidate, Evidence

CHANGE_ORIGIN = 0.6  # the score of the strongest kind of change (a new WARN-or-worse log template)
WARN = 13  # OpenTelemetry SeverityNumber of WARN
# Relative weights: a new warning says most; a new or vanished call is a changed code path; an
# attribute value, a vanished or lesser log line, or a count that moved, says less.
WEIGHTS = {
    ("log template", "new", True): 1.0,
    ("log template", "new", False): 0.6,
    ("log template", "vanished", True): 0.6,
    ("log template", "vanished", False): 0.4,
    ("log template", "count", True): 0.4,
    ("log template", "count", False): 0.2,
    ("call", "new", False): 0.8,
    ("call", "vanished", False): 0.8,
    ("call", "count", False): 0.5,
    ("attribute", "new", False): 0.6,
    ("attribute", "vanished", False): 0.4,  # alone, below the cause threshold: often a config change
}
EVIDENCE_KIND = {"log template": "log-template", "call": "calls", "attribute": "change"}
MAX_EVIDENCE = 6


def _how(row: dict[str, Any]) -> str:
    if row["baseline_instances_with"] == 0:
        return "new"
    return "vanished" if row["run_count"] == 0 else "count"


def weight(row: dict[str, Any]) -> float:
    severe = row["change"] == "log template" and (row["severity"] or 0) >= WARN
    return WEIGHTS.get((row["change"], _how(row), severe), 0.0)


def describe(row: dict[str, Any]) -> str:
    how, item = _how(row), row["item"]
    counts = (f"{row['run_count']} time(s) here; in {row['baseline_instances_with']} of {row['baseline_instances']} "
              f"passing run(s) of the test in the baseline run, at most {row['baseline_count']} time(s)")
    if row["change"] == "log template":
        level = row["severity_text"] or "log"
        return {"new": f"new {level} log: {item!r} ({counts})",
                "vanished": f"no longer logs {item!r} ({counts})"}.get(how, f"logs {item!r} {counts}")
    if row["change"] == "call":
        return {"new": f"new call to {item} ({counts})",
                "vanished": f"no longer calls {item} ({counts})"}.get(how, f"calls {item} {counts}")
    return {"new": f"attribute {item} is new ({counts})"}.get(how, f"attribute {item} is gone ({counts})")


def candidates(rows: list[dict[str, Any]], names: dict[str, str]) -> dict[str, list[Candidate]]:
    """Failed test span id → its one candidate (the service with the strongest difference).

    From subtree_diff.sql rows."""
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if weight(row) > 0:
            by_service[(row["test_span"], row["service"])].append(row)
    out: dict[str, list[Candidate]] = defaultdict(list)
    for (test_span, service), found in by_service.items():
        found.sort(key=lambda r: (-weight(r), r["operation"], r["item"]))
        top = found[0]
        path_ids = tuple(top["path"] or ())
        evidence = tuple(Evidence(EVIDENCE_KIND[r["change"]], service, r["operation"], describe(r),
                                  r["trace_id"] or "", r["span_id"] or "") for r in found[:MAX_EVIDENCE])
        reason = (f"no error and no abnormal latency, but {service} behaved differently than when this test passed "
                  f"in the baseline run ({len(found)} difference(s)); strongest: {describe(top)}")
        out[test_span].append(Candidate(
            service, top["operation"], round(CHANGE_ORIGIN * weight(top), 3), reason, "change",
            tuple(names.get(s, "?") for s in path_ids[1:]), evidence, path_ids))
    # Only the strongest names a candidate: the other services that differ mostly follow it (a changed
    # path changes what its callees do), and each extra candidate would count in the run's suspects.
    return {span: sorted(cands, key=lambda c: (-c.score, -len(c.evidence), c.service))[:1]
            for span, cands in out.items()}
