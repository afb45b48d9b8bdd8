"""What is different from when it passed: a failed test's trace beside the same test's passing trace.

The baseline is the same test (by tests.sql's name key) passing in the explanation's baseline run,
else in the most recent earlier run where it passed (``queries/diff_baseline_tests.sql``). The store
walks both subtrees of every pair in one statement (``store.subtrees``: passing tests have no facts
of their own); they are matched call by call in one statement on the scratch DuckDB
(``queries/trace_diff.sql``); here the changes are only counted, ordered (``_interleave``) and put
in words. One sample against one sample is noisy, so a call counts as
slower only when it took at least ``SLOWER_RATIO`` times as long *and* ``SLOWER_MIN_MS`` more.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from otel_triage.correlator.history_model import SpanChange, TraceDiff
from otel_triage.correlator.model import Explanation
from otel_triage.correlator.sql import Scratch, in_thread
from otel_triage.correlator.store import Store

SLOWER_RATIO = 1.5
SLOWER_MIN_MS = 20.0
MAX_CHANGES = 20  # per failed test, in the JSON; the text shows a few, the report all of them
ORDER = ("status", "slower", "vanished", "appeared")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 1)


def _detail(r: dict[str, Any]) -> str:
    if r["change"] == "slower":
        a, b = r["duration_ns"] / 1e6, r["baseline_duration_ns"] / 1e6
        ratio = f", {a / b:.1f}x" if b > 0 else ""
        return f"+{a - b:.0f} ms ({b:.0f} ms → {a:.0f} ms{ratio})"
    if r["change"] == "status":
        return f"{r['baseline_status']} → {r['status']}"
    if r["change"] == "appeared":
        return "new call" + (" (Error)" if r["status"] == "Error" else "")
    return "no longer called"


def _interleave(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The most telling change of each kind first, then the next of each, so a short list (the text
    shows four) has the deepest status change (where the error began), the largest slowdown and the
    shallowest vanished and appeared calls, not four messengers relaying one error."""
    def tie(r: dict[str, Any]) -> tuple[str, str, str]:  # equal ranks keep one order in every store
        return (" > ".join(r["path"]), r["span_id"], r["baseline_span_id"])

    ranked = {
        "status": sorted((r for r in rows if r["change"] == "status"), key=lambda r: (-r["depth"], tie(r))),
        "slower": sorted((r for r in rows if r["change"] == "slower"),
                         key=lambda r: (r["baseline_duration_ns"] - r["duration_ns"], tie(r))),
        "vanished": sorted((r for r in rows if r["change"] == "vanished"), key=lambda r: (r["depth"], tie(r))),
        "appeared": sorted((r for r in rows if r["change"] == "appeared"), key=lambda r: (r["depth"], tie(r))),
    }
    out: list[dict[str, Any]] = []
    for i in range(max((len(v) for v in ranked.values()), default=0)):
        out += [v[i] for v in ranked.values() if i < len(v)]
    return out


def _trace_diff(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> TraceDiff:
    """One failed test's rows of trace_diff.sql (its changed calls but those inside a subtree that
    appeared or vanished, each row with the test's counts), ordered and put in words."""
    count = {k: rows[0][f"n_{k}"] if rows else 0 for k in ORDER}
    shown = _interleave([r for r in rows if r["change"]])[:MAX_CHANGES]
    changes = tuple(SpanChange(
        change=r["change"], service=r["service"], operation=r["operation"], path=tuple(r["path"]),
        span_id=r["span_id"], baseline_span_id=r["baseline_span_id"], duration_ms=_ms(r["duration_ns"]),
        baseline_duration_ms=_ms(r["baseline_duration_ns"]), status=r["status"],
        baseline_status=r["baseline_status"], detail=_detail(r)) for r in shown)
    parts = [f"{n} {word}" for n, word in ((count["appeared"], "call(s) appeared"),
                                           (count["vanished"], "vanished"), (count["slower"], "slower"),
                                           (count["status"], "changed status")) if n]
    summary = (f"against run {baseline['baseline_run_id']}: " + (", ".join(parts) if parts else "same calls, "
               "no call slower, no status changed"))
    return TraceDiff(
        baseline_run_id=baseline["baseline_run_id"], baseline_trace_id=baseline["baseline_trace_id"],
        baseline_span_id=baseline["baseline_span_id"],
        spans=rows[0]["spans"] if rows else 0, baseline_spans=rows[0]["baseline_spans"] if rows else 0,
        appeared=count["appeared"], vanished=count["vanished"], slower=count["slower"],
        status_changed=count["status"], changes=changes, summary=summary)


def start(store: Store, scratch: Scratch, run_id: str, baseline_run_id: str | None,
          failed: list[dict[str, Any]]) -> Pending | None:
    """Begin the diff of each failed test (``failed``: tests.sql rows, span_id and trace_id) that
    passed in an earlier run: its pair and both subtrees are read here (the store is not shared
    across threads), the call-by-call match (trace_diff.sql) runs on a thread of its own while the
    failed tests are ranked. ``scratch`` holds ``run_tests`` (``store.tests()``); the caller waits
    for the thread (``settle``) before closing it."""
    if not failed:
        return None
    baselines = {r["failed_span_id"]: r for r in scratch.rows(
        "diff_baseline_tests", {"run_id": run_id, "baseline_run_id": baseline_run_id})}
    paired = [f for f in failed if f["span_id"] in baselines]
    if not paired:
        return None
    roots = sorted({(f["trace_id"], f["span_id"]) for f in paired}
                   | {(baselines[f["span_id"]]["baseline_trace_id"], baselines[f["span_id"]]["baseline_span_id"])
                      for f in paired})
    fork = scratch.fork(subtrees=store.subtrees(roots))

    def work() -> dict[str, list[dict[str, Any]]]:
        fork.columns("diff_pairs", test_span=[f["span_id"] for f in paired], trace_id=[f["trace_id"] for f in paired],
                     span_id=[f["span_id"] for f in paired],
                     b_trace_id=[baselines[f["span_id"]]["baseline_trace_id"] for f in paired],
                     b_span_id=[baselines[f["span_id"]]["baseline_span_id"] for f in paired])
        by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in fork.rows("trace_diff", {"slower_ratio": SLOWER_RATIO, "slower_min_ns": int(SLOWER_MIN_MS * 1e6)}):
            by_test[row["test_span"]].append(row)
        return by_test

    return Pending(baselines, in_thread(work, fork.close, "trace diff"))


def annotate(explanation: Explanation, pending: Pending | None) -> Explanation:
    """Each failed test that passed in an earlier run gets its ``diff`` (``start``'s result)."""
    if pending is None:
        return explanation
    by_test, baselines = pending.rows.result(), pending.baselines
    tests = tuple(replace(f, diff=_trace_diff(by_test.get(f.span_id, []), baselines[f.span_id]))
                  if f.span_id in baselines else f for f in explanation.failed_tests)
    return replace(explanation, failed_tests=tests)


@dataclass(frozen=True)
class Pending:
    baselines: dict[str, dict[str, Any]]  # failed test span id -> its passing instance (diff_baseline_tests)
    rows: Future[dict[str, list[dict[str, Any]]]]  # failed test span id -> its trace_diff.sql rows
