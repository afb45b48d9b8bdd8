"""``explain(store, run_id)``: the correlator's one entry point, used by the CLI and the daemon.

Reads go through the store contract (``store.py``: Arrow tables of per-run facts); the correlator's
own SQL (``queries/*.sql``) runs over them in a private DuckDB (``sql.py``); scoring in
``score.py`` and ``compare.py``; the result is the ``model.Explanation`` every renderer reads.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from otel_triage.correlator import comparisons, diff, flaky, kept, stitch, subtree_diff
from otel_triage.correlator import peers as peer_names
from otel_triage.correlator.compare import ServiceShift, compare
from otel_triage.correlator.model import (
    Candidate,
    Evidence,
    Explanation,
    FailedTest,
    Group,
    from_dict,
)
from otel_triage.correlator.score import candidates_for_test
from otel_triage.correlator.sql import Scratch, settle
from otel_triage.correlator.store import Store
from otel_triage.correlator.suspects import rank_suspects
from otel_triage.correlator.weights import (
    CAUSE_THRESHOLD,
    METRIC_BONUS,
    METRIC_RUN_SLACK_NS,
    METRIC_WINDOW_SLACK_NS,
    SQL,
    STILL_RECEIVING_SECONDS,
    TOP_FOR_METRICS,
)

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa


class ExplainError(Exception):
    """The run cannot be explained (unknown run id, unknown baseline); the message says why."""


def _best_per_service(cands: list[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in cands:
        if c.service not in seen:
            seen.add(c.service)
            out.append(c)
    return out


def _no_cause_reason(cands: list[Candidate], message: str | None) -> str:
    if not cands:
        return ("no service under this test showed an error, an error log or abnormal latency: "
                f"the test itself failed ({message or 'no message'}); check the test's expectation")
    return (f"the only signs under this test are weak or also seen in passing tests "
            f"(best: {cands[0].service}, score {cands[0].score}); the test's own check failed: {message or ''}")


LINKS = {  # tests.sql's link column, in words, surest first
    "junit-name": "a JUnit report names this test too (matched by its normalised name): certain",
    "trace-id": "from a JUnit report, tied to the trace whose id the report carries: certain",
    "time-window": ("from a JUnit report that names no trace and matches no test span: tied to the run's "
                    "traces that started while it ran, which is a guess"),
}


def _weigh_metrics(scratch: Scratch, run_id: str, baseline_run_id: str,
                   ranked: dict[str, list[Candidate]], tests: dict[str, dict[str, Any]]) -> dict[str, list[Candidate]]:
    """Add metric shifts (saturation) as evidence to the leading candidates, with a small bonus."""
    windows = sorted({
        (c.service, tests[span]["start_unix_nano"] - METRIC_WINDOW_SLACK_NS,
         tests[span]["start_unix_nano"] + tests[span]["duration_ns"] + METRIC_WINDOW_SLACK_NS)
        for span, cands in ranked.items() for c in cands[:TOP_FOR_METRICS]
    })
    shifts: dict[str, list[Evidence]] = defaultdict(list)
    if not windows:
        return ranked
    services, starts, ends = (list(col) for col in zip(*windows))
    scratch.columns("windows", service=services, start_ns=starts, end_ns=ends)
    for row in scratch.rows("explain_metrics", {"run_id": run_id, "baseline_run_id": baseline_run_id, **SQL}):
        shifts[row["service"]].append(Evidence(
            "metric", row["service"], row["metric"],
            f"{row['metric']} reached {row['window_value']:.4g} {row['unit']} in the failure's window "
            f"against at most {row['baseline_value']:.4g} in the baseline run"))
    if not shifts:
        return ranked
    out = {}
    for span, cands in ranked.items():
        weighed = [
            replace(c, score=round(min(1.0, c.score + METRIC_BONUS), 3),
                    evidence=(*c.evidence, *shifts[c.service][:3])) if c.service in shifts and i < TOP_FOR_METRICS
            else c
            for i, c in enumerate(cands)
        ]
        out[span] = sorted(weighed, key=lambda c: (-c.score, c.service))
    return out


def _from_comparison(reached: set[tuple[str, str]], shifts: dict[str, ServiceShift]) -> Candidate | None:
    """For a failed test with no trusted cause under it: the service it reached that differs most
    from the baseline run, on the comparison's scale, with that evidence in words.

    Only evidence the test touched counts: an operation it reached, or a resource metric of a
    service it called (a saturated service slows every request it serves). The score is the
    chance that the difference is not noise, 1 - e^-net (net: nats beyond what the number of
    indicators yields by chance), so a weak difference stays below ``CAUSE_THRESHOLD``.
    """
    services = {s for s, _ in reached}
    best: tuple[float, ServiceShift, Evidence] | None = None
    for name, shift in shifts.items():
        if name not in services or shift.score <= 0:
            continue
        touched = [(n, e) for n, e in shift.items if e.kind == "metric" or (name, e.operation) in reached]
        if touched and (best is None or shift.score > best[0]):
            best = (shift.score, shift, max(touched, key=lambda x: x[0])[1])
    if best is None:
        return None
    score, shift, top = best
    relay = f" (its callees {', '.join(shift.relays_from)} differ as much: it may relay)" if shift.relays_from else ""
    return Candidate(shift.service, top.operation, round(1 - math.exp(-score), 3),
                     f"no error under this test; of the services it reached, {shift.service} differs most from "
                     f"the baseline run{relay}: {top.detail}", "comparison", (),
                     (top, *[e for e in shift.evidence() if e != top][:3]))


def _weigh_changes(store: Store, scratch: Scratch, run_id: str, baseline_run_id: str,
                   ranked: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
    """Failed tests whose subtree shows no trusted error or abnormal latency (none, or only weak or
    noisy signs such as a latency spike on a busy machine): add what differs from the same test in
    the baseline run (queries/subtree_diff.sql over both runs' per-test items)."""
    quiet = [span for span, cands in ranked.items() if not cands or cands[0].score < CAUSE_THRESHOLD]
    if not quiet:
        return ranked
    scratch.add(run_items=store.test_items(run_id), baseline_items=store.test_items(baseline_run_id))
    rows = scratch.rows("subtree_diff", {"baseline_run_id": baseline_run_id, "tests": quiet})
    ids = sorted({span for r in rows for span in (r["path"] or [])})
    names = dict(scratch.con.execute("SELECT DISTINCT SpanId, service || ': ' || operation FROM nodes "
                                     "WHERE SpanId IN (SELECT unnest($ids::VARCHAR[]))", {"ids": ids}).fetchall())
    found = subtree_diff.candidates(rows, names)
    return {span: _best_per_service(sorted([*cands, *found.get(span, [])], key=lambda c: (-c.score, c.service)))
            for span, cands in ranked.items()}


def explain(store: Store, run_id: str, baseline_run_id: str | None = None) -> Explanation:
    found, text = _explained(store, run_id, baseline_run_id)
    return found if found is not None else from_dict(orjson.loads(text or "{}"))


def explain_json(store: Store, run_id: str, baseline_run_id: str | None = None) -> str:
    found, text = _explained(store, run_id, baseline_run_id)
    return text if text is not None else to_json(found)  # type: ignore[arg-type]


def _explained(store: Store, run_id: str, baseline_run_id: str | None) -> tuple[Explanation | None, str | None]:
    """(the explanation, its JSON): one of them, or both when just computed and kept.

    A completed run's default explanation is computed once and kept with the stamp of its inputs
    (``store.explanation_stamp``, taken before computing: data that arrives meanwhile makes it
    stale, never the reverse); `explain`, `wait`, `report` and webhooks then read it while the
    stamp holds. The daemon computes it when the run completes, after the facts. A run still
    arriving, or an explicit baseline, is computed every time."""
    keep, text = kept.read(store, run_id, baseline_run_id)
    if text is not None:
        return None, text
    runs = store.run_ids()
    if run_id not in runs:
        known = ", ".join(sorted(runs)[:5]) or "none yet"
        raise ExplainError(f"unknown run id {run_id!r} (runs include: {known}; see `triage runs`)")
    scratch = Scratch(run_tests=store.tests())
    try:
        baseline_run_id, words = _baseline(scratch, run_id, baseline_run_id, runs)
        stamp = kept.stamp(store, run_id, baseline_run_id) if keep else None
        found = _explain(store, scratch, run_id, baseline_run_id, words)
    finally:
        scratch.close()
    if stamp is None:
        return found, None
    text = to_json(found)
    store.keep_explanation(run_id, stamp, baseline_run_id, text)
    return found, text


def default_baseline(tests: pa.Table, run_id: str) -> str | None:
    """The most recent earlier run in which this run's failed tests passed (queries/baseline_run.sql),
    from every run's tests (``store.tests()``, or test spans a second source copied out)."""
    scratch = Scratch(run_tests=tests)
    try:
        found = scratch.rows("baseline_run", {"run_id": run_id})
    finally:
        scratch.close()
    return found[0]["run_id"] if found else None


def _baseline(scratch: Scratch, run_id: str, baseline_run_id: str | None, runs: set[str]) -> tuple[str | None, str]:
    """The baseline run (the given one, else the default) and how the explanation names it."""
    if baseline_run_id:
        if baseline_run_id not in runs:
            raise ExplainError(f"unknown baseline run id {baseline_run_id!r}")
        return baseline_run_id, f"run {baseline_run_id} (--baseline), and the passing tests of this run"
    found = scratch.rows("baseline_run", {"run_id": run_id})
    if not found:
        return None, "the passing tests of this run (no earlier run passed these tests)"
    chosen = found[0]["run_id"]
    return chosen, (f"run {chosen}: the most recent earlier run in which these tests passed, "
                    "and the passing tests of this run")


def _explain(store: Store, scratch: Scratch, run_id: str, baseline_run_id: str | None,
             baseline_words: str) -> Explanation:
    run_ops = store.operations(run_id)
    baseline_ops = store.operations(baseline_run_id) if baseline_run_id else run_ops.slice(0, 0)
    scratch.add(tests=scratch.con.sql("SELECT * FROM run_tests WHERE run_id = $r", params={"r": run_id}).to_arrow_table(),
                nodes=store.nodes(run_id), run_ops=run_ops, baseline_ops=baseline_ops)
    failed = scratch.rows("SELECT * FROM tests WHERE status = 'failed'")  # in the run's order: a filter keeps it
    pending = None
    if baseline_run_id:
        points = store.metric_points([run_id, baseline_run_id], METRIC_RUN_SLACK_NS)
        scratch.add(points=points)
        # the run against its baseline, on a thread of its own while the failed tests are ranked
        pending = comparisons.start(store, scratch, run_id, baseline_run_id,
                                    {"run_ops": run_ops, "baseline_ops": baseline_ops, "points": points})
    # each failed test's trace beside its passing one: matched on a thread of its own too
    pending_diff = None
    try:
        pending_diff = diff.start(store, scratch, run_id, baseline_run_id, failed)
        return _ranked(store, scratch, run_id, baseline_run_id, baseline_words, failed, pending, pending_diff)
    finally:
        settle(pending, pending_diff and pending_diff.rows)  # their threads query cursors of scratch, which the caller closes


def _ranked(store: Store, scratch: Scratch, run_id: str, baseline_run_id: str | None, baseline_words: str,
            failed_tests: list[dict[str, Any]], pending: Future[comparisons.Rows] | None,
            pending_diff: diff.Pending | None) -> Explanation:
    data = {
        "tests": failed_tests,
        "counts": scratch.rows("SELECT count(*) AS tests, count(*) FILTER (status = 'passed') AS passed FROM tests")[0],
        "nodes": scratch.rows("explain_nodes", SQL),
        **store.run_facts(run_id),
    }
    data["span_names"] = dict(scratch.con.execute(
        "SELECT DISTINCT SpanId, service || ': ' || operation FROM nodes "
        "WHERE SpanId IN (SELECT unnest($ids))",
        {"ids": sorted({s for n in data["nodes"] for s in n["path"]})}).fetchall())
    # An address-only peer named by who serves it, from the run's spans, else its baseline run's.
    addresses = [{**r, "side": side} for side, run in (("run", run_id), ("baseline", baseline_run_id)) if run
                 for r in store.peer_addresses(run).to_pylist()]
    peers = peer_names.resolve(addresses)
    inferred = stitch.links(store.stitched(run_id).to_pylist())  # broken traces joined to the span they answered
    by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n in peer_names.rename(data["nodes"], peers):
        by_test[n["test_span"]].append(n)

    tests_by_span = {t["span_id"]: t for t in data["tests"]}
    ranked = {
        t["span_id"]: stitch.mark(_best_per_service(candidates_for_test(by_test.get(t["span_id"], []),
                                                                        data["span_names"])), inferred)
        for t in data["tests"]
    }
    if baseline_run_id:
        ranked = _weigh_metrics(scratch, run_id, baseline_run_id, ranked, tests_by_span)
        ranked = _weigh_changes(store, scratch, run_id, baseline_run_id, ranked)

    shifts = compare(pending.result()) if pending is not None else {}
    untrusted = [span for span, cands in ranked.items() if not (cands and cands[0].score >= CAUSE_THRESHOLD)]
    reach = _reach(scratch, untrusted) if shifts and untrusted else {}

    failed: list[FailedTest] = []
    for t in data["tests"]:
        cands = ranked[t["span_id"]]
        if shifts and not (cands and cands[0].score >= CAUSE_THRESHOLD):
            found = _from_comparison(reach.get(t["span_id"], set()), shifts)
            if found:
                cands = sorted([found, *(c for c in cands if c.service != found.service)], key=lambda c: -c.score)
        cause = cands[0] if cands and cands[0].score >= CAUSE_THRESHOLD else None
        failed.append(FailedTest(
            test=t["test"], trace_id=t["trace_id"], span_id=t["span_id"], message=t["message"],
            exception_type=t["exception_type"], root_cause=cause,
            no_cause_reason=None if cause else _no_cause_reason(cands, t["message"]),
            candidates=tuple(cands), link=LINKS.get(t.get("link") or ""),
        ))

    groups: dict[tuple[str | None, str | None], list[str]] = defaultdict(list)
    for f in failed:
        key = (f.root_cause.service, f.root_cause.operation) if f.root_cause else (None, None)
        groups[key].append(f.test)
    group_list = tuple(
        Group(service=s, operation=o, tests=tuple(tests),
              reason=f"{len(tests)} failed test(s) trace back to {s} ({o})" if s else
              f"{len(tests)} failed test(s) with no service at fault")
        for (s, o), tests in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0][0] or "~"))
    )

    suspects = rank_suspects(failed, shifts)

    notes = []
    named = {c.service for f in failed for c in f.candidates}
    for peer in sorted({peers[p].service if p in peers else p for p in data["silent_peers"]}):
        if peer in named:
            kind = "a service of this run" if peer in data["services"] else "no service that reported telemetry"
            notes.append(f"{peer} never reported a server span for calls made to it ({kind}): "
                         "it is named from its callers' client spans; evidence from inside it is missing")
    age = time.time() - data["last_seen_unix_nano"] / 1e9
    # A run the daemon has recorded as complete (its session ended and the data settled) is not
    # still arriving, however recent its last span.
    if data["last_seen_unix_nano"] and age < STILL_RECEIVING_SECONDS and not store.is_complete(run_id):
        notes.append(f"the run's last span ended {age:.0f} s ago: data may still be arriving")
    found = Explanation(run_id=run_id, baseline_run_id=baseline_run_id, baseline=baseline_words,
                        tests=data["counts"]["tests"], passed_tests=data["counts"]["passed"], failed_tests=tuple(failed),
                        groups=group_list, suspects=suspects, notes=tuple(notes))
    # Additive (issue #16): each failed test's trace beside its passing one, then its flaky verdict.
    return flaky.annotate(store, scratch, diff.annotate(found, pending_diff))


def _reach(scratch: Scratch, tests: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Failed test span id (of ``tests``) → the (service, operation) its subtree reached (the
    ``nodes`` facts hold every span under each failed test), for ``_from_comparison``."""
    out: dict[str, set[tuple[str, str]]] = {}
    for r in scratch.rows("SELECT DISTINCT test_span, service, operation FROM nodes "
                          "WHERE depth > 0 AND test_span IN (SELECT unnest($tests))", {"tests": tests}):
        out.setdefault(r["test_span"], set()).add((r["service"], r["operation"]))
    return out


def to_json(found: Explanation) -> str:
    """The versioned JSON (docs/json.md), the same bytes as ``to_dict`` encoded. orjson: a 1M-span
    run's 7 MB took the stdlib's indenting encoder (pure Python) 0.35 s of CPU, orjson 0.04 s; and
    it encodes the dataclasses itself, in field order (``to_dict`` first built 0.2-0.3 s of dicts);
    characters beyond ASCII are written as UTF-8."""
    return orjson.dumps(found.encodable(), option=orjson.OPT_INDENT_2).decode()

