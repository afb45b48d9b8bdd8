"""Is a failed test just flaky? Its history in the store, and the causes of its failures, decide.

A test is **flaky** when it failed here but also passed on the same code (earlier runs whose runner
reported the same ``vcs.ref.head.revision`` / ``service.version``, or a retry within this run),
*and* its failures have no consistent cause, at least one of them none in the services. When every
failure was traced to a service, but not the same one, the verdict is ``different-services``: an
unstable environment, which retrying the test does not fix. A service behind (nearly) every failure is a fault of
that service, however intermittent, not flakiness: that is the line Datadog, Trunk or BuildPulse
cannot draw, because they never see the services.

The cause of each earlier failure is what the correlator's per-test scoring names in that run
(``score.py`` over ``queries/explain_nodes.sql`` on that run's precomputed facts, ``store.nodes``
and ``store.operations``, without a baseline run: a past run's latency-only causes may read
"none"); this run's causes are the explanation's own. The outcomes come from one SQL query
(``queries/test_history.sql`` over ``store.tests()`` and ``store.code_versions()``); only the past
runs with failures that matter are re-scored, the most recent ``MAX_SCORED_RUNS`` of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from otel_triage.correlator import peers as peer_names
from otel_triage.correlator.history_model import TestHistory
from otel_triage.correlator.model import Explanation
from otel_triage.correlator.score import candidates_for_test
from otel_triage.correlator.sql import Scratch
from otel_triage.correlator.store import Store
from otel_triage.correlator.weights import CAUSE_THRESHOLD, SQL

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa

HISTORY_RUNS = 20  # the window: a test's last runs, this one included
CONSISTENT_SHARE = 0.8  # one service behind at least this share of the failures is a cause, not chance
MAX_SCORED_RUNS = 5  # earlier runs re-scored for their causes, from their facts (bench/history.py)
UNKNOWN = "?"  # the cause of a failure in a run beyond MAX_SCORED_RUNS
NO_CAUSE = "none"
SHOWN_CAUSES = 10


def outcomes(scratch: Scratch, run_id: str | None, keys: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per test (name key; only ``keys`` when given): its runs in the window, oldest first
    (queries/test_history.sql). ``scratch`` holds ``run_tests`` and ``code_versions``."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scratch.rows("test_history", {"run_id": run_id, "window": HISTORY_RUNS, "keys": keys}):
        out[row["name_key"]].append(row)
    return out


def past_causes(store: Store, scratch: Scratch, wanted: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(run id, test span id) → the service the correlator's per-test scoring names for that failure,
    or "none"; the first ``MAX_SCORED_RUNS`` runs of ``wanted`` only.

    Each run is scored from its facts, as ``api.explain`` scores the run it explains but with no
    baseline run (its passing tests set the latency reference and discount noise), on a scratch
    DuckDB of their own, over the subtrees of the failed tests asked about only."""
    out: dict[tuple[str, str], str] = {}
    runs = list(wanted)[:MAX_SCORED_RUNS]
    if not runs:
        return out
    past = scratch.fork()  # one for every run re-scored, its inputs replaced per run (a cursor: a new DuckDB is ~30 ms)
    try:
        for run_id in runs:
            spans = wanted[run_id]
            nodes = store.nodes(run_id)
            ops = store.operations(run_id)
            tests = scratch.con.sql("SELECT * FROM run_tests WHERE run_id = $r", params={"r": run_id}).to_arrow_table()
            past.add(tests=tests, run_nodes=nodes, run_ops=ops, baseline_ops=ops.slice(0, 0))
            past.con.execute("CREATE OR REPLACE TEMP TABLE nodes AS SELECT * FROM run_nodes "
                             "WHERE test_span IN (SELECT unnest($spans))", {"spans": sorted(spans)})
            by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
            # An address-only peer named by the service serving it, as api.explain names it: else the
            # history says "10.0.2.14:8082" where the run's own explanation said inventory.
            peers = peer_names.resolve([{**r, "side": "run"} for r in store.peer_addresses(run_id).to_pylist()])
            for n in peer_names.rename(past.rows("explain_nodes", SQL), peers):
                by_test[n["test_span"]].append(n)
            names = dict(past.con.execute(
                "SELECT DISTINCT SpanId, service || ': ' || operation FROM nodes WHERE SpanId IN (SELECT unnest($ids))",
                {"ids": sorted({x for ns in by_test.values() for n in ns for x in n["path"]})}).fetchall())
            for span in spans:
                cands = candidates_for_test(by_test.get(span, []), names)
                out[(run_id, span)] = cands[0].service if cands and cands[0].score >= CAUSE_THRESHOLD else NO_CAUSE
    finally:
        past.close()
    return out


def judge(rows: list[dict[str, Any]], causes: list[str]) -> TestHistory:
    """The verdict for the last row's run; ``causes`` has one entry per failed row, oldest first."""
    anchor = rows[-1]
    version = anchor["code_version"]
    earlier = rows[:-1]
    same = [r for r in earlier if version is None or r["code_version"] == version]
    same_passed = sum(1 for r in same if r["passed"])
    rerun = bool(anchor["failed"] and anchor["passed"])
    failed = sum(1 for r in rows if r["failed"])
    passed = sum(1 for r in rows if r["passed"] and not r["failed"])
    known = [c for c in causes if c != UNKNOWN]
    top, top_n = Counter(known).most_common(1)[0] if known else (NO_CAUSE, 0)
    consistent = top if top != NO_CAUSE and top_n >= CONSISTENT_SHARE * len(known) else None
    if same_passed == 0 and not rerun:
        verdict = "changed-code" if passed else "always-failed"
    elif consistent:
        verdict = "consistent-cause"
    elif known and NO_CAUSE not in known:
        verdict = "different-services"  # every failure had a real fault, just not the same one
    else:
        verdict = "flaky"
    words = [f"failed {failed} of the last {len(rows)} runs" if len(rows) > 1 else "first run of this test"]
    if rerun:
        words.append("passed on a retry in this run")
    if same_passed:
        code = "of the same code" if version is not None else "(no code version recorded)"
        words.append(f"passed in {same_passed} of {len(same)} earlier runs {code}")
    elif passed:
        words.append("never passed on this code version: a code change, not flakiness")
    shown = ", ".join(causes[-SHOWN_CAUSES:])
    if consistent:
        share = f"{top_n} of {len(known)} failures" if top_n < len(known) else "every failure"
        words.append(f"{share} traced to {consistent}: a service fault, not flakiness")
    elif verdict == "different-services":
        words.append(f"each failure traced to a service, different ones: {shown}")
    elif len(set(known)) > 1:
        words.append(f"causes differ: {shown}")
    elif known:
        words.append(f"no service at fault in any failure: {shown}")
    return TestHistory(
        verdict=verdict, flaky=verdict == "flaky", summary="; ".join(words), runs=len(rows), failed=failed,
        passed=passed, code_version=version, same_code_runs=len(same) + 1, same_code_passed=same_passed,
        passed_on_rerun=rerun, causes=tuple(causes), consistent_cause=consistent)


def _causes_needed(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Past runs (newest first) and the failed test spans in them whose causes a verdict needs."""
    wanted: dict[str, set[str]] = {}
    for r in sorted(rows, key=lambda r: -r["started"]):
        if r["failed"]:
            wanted.setdefault(r["run_id"], set()).update(r["failed_spans"] or [])
    return wanted


def _causes_of(rows: list[dict[str, Any]], known: dict[tuple[str, str], str]) -> list[str]:
    out = []
    for r in rows:
        if r["failed"]:
            spans = r["failed_spans"] or []
            out.append(next((known[(r["run_id"], s)] for s in spans if (r["run_id"], s) in known), UNKNOWN))
    return out


def annotate(store: Store, scratch: Scratch, explanation: Explanation) -> Explanation:
    """Each failed test of the explanation gets its ``history``. ``scratch`` holds ``run_tests``
    (``store.tests()``)."""
    if not explanation.failed_tests:
        return explanation
    scratch.add(code_versions=store.code_versions())
    keys = dict(scratch.con.execute("SELECT span_id, name_key FROM run_tests WHERE run_id = $r",
                                    {"r": explanation.run_id}).fetchall())
    history = outcomes(scratch, explanation.run_id, sorted({keys.get(f.span_id, "") for f in explanation.failed_tests}))
    here = {f.span_id: (f.root_cause.service if f.root_cause else NO_CAUSE) for f in explanation.failed_tests}
    wanted: dict[str, set[str]] = {}
    for f in explanation.failed_tests:
        rows = history.get(keys.get(f.span_id, ""), [])
        for run, spans in _causes_needed(rows[:-1]).items():
            wanted.setdefault(run, set()).update(spans)
    known = past_causes(store, scratch, _newest_first(wanted, history))
    known.update({(explanation.run_id, span): cause for span, cause in here.items()})
    tests = []
    for f in explanation.failed_tests:
        rows = history.get(keys.get(f.span_id, ""), [])
        tests.append(replace(f, history=judge(rows, _causes_of(rows, known))) if rows else f)
    return replace(explanation, failed_tests=tuple(tests))


def runs_rescored(tests: pa.Table, run_id: str) -> list[str]:
    """The earlier runs ``annotate`` re-scores for ``run_id``'s failed tests, newest first: what a
    second source (ClickHouse) must copy out in full, beside the run and its baseline, for the same
    verdicts. ``tests`` is every run's tests (``store.tests()``, or test spans copied out); the code
    version decides verdicts, not which runs are re-scored, so none is needed here."""
    scratch = Scratch(run_tests=tests)
    scratch.con.execute("CREATE TEMP TABLE code_versions (run_id VARCHAR, span_id VARCHAR, code_version VARCHAR)")
    try:
        failed = [r[0] for r in scratch.con.execute(
            "SELECT DISTINCT name_key FROM run_tests WHERE run_id = $r AND status = 'failed'", {"r": run_id}).fetchall()]
        if not failed:
            return []
        history = outcomes(scratch, run_id, failed)
    finally:
        scratch.close()
    wanted: dict[str, set[str]] = {}
    for key in failed:
        for run, spans in _causes_needed(history.get(key, [])[:-1]).items():
            wanted.setdefault(run, set()).update(spans)
    return list(_newest_first(wanted, history))[:MAX_SCORED_RUNS]


def list_tests(store: Store, flaky_only: bool = False) -> list[dict[str, Any]]:
    """Every test in the store with its pass/fail history (``triage tests``); a test that failed gets
    the verdict as of its latest failure. Flaky tests first, then by name."""
    store.ensure_facts()
    scratch = Scratch(run_tests=store.tests(), code_versions=store.code_versions())
    try:
        history = outcomes(scratch, None)
        wanted: dict[str, set[str]] = {}
        for rows in history.values():
            for run, spans in _causes_needed(rows).items():
                wanted.setdefault(run, set()).update(spans)
        known = past_causes(store, scratch, _newest_first(wanted, history))
    finally:
        scratch.close()
    out = []
    for rows in history.values():
        last_failure = max((i for i, r in enumerate(rows) if r["failed"]), default=None)
        verdict = None if last_failure is None else judge(rows[: last_failure + 1],
                                                           _causes_of(rows[: last_failure + 1], known))
        if flaky_only and not (verdict and verdict.flaky):
            continue
        out.append({
            "test": rows[-1]["test"], "runs": len(rows),
            "passed": sum(1 for r in rows if r["passed"] and not r["failed"]),
            "failed": sum(1 for r in rows if r["failed"]),
            "last_run_id": rows[-1]["run_id"],
            "outcomes": [{"run_id": r["run_id"], "status": "failed" if r["failed"] else "passed" if r["passed"]
                          else "other", "code_version": r["code_version"]} for r in rows],
            "flaky": bool(verdict and verdict.flaky),
            "history": None if verdict is None else _plain(verdict),
        })
    return sorted(out, key=lambda t: (not t["flaky"], t["test"]))


def _newest_first(wanted: dict[str, set[str]], history: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """The runs to re-score, most recent first, so MAX_SCORED_RUNS keeps the ones nearest in time."""
    started = {r["run_id"]: r["started"] for rows in history.values() for r in rows}
    return dict(sorted(wanted.items(), key=lambda kv: -started.get(kv[0], 0)))


def _plain(h: TestHistory) -> dict[str, Any]:
    d = asdict(h)
    d["causes"] = list(d["causes"])
    return d
