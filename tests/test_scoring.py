"""Scoring and comparison on fixture rows: no daemon, no store, just the correlator's logic."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa
import pytest
from otel_triage.correlator import weights
from otel_triage.correlator.compare import PSEUDO_COUNT, SIGNIFICANT, compare, surprise
from otel_triage.correlator.score import candidates_for_test
from otel_triage.correlator.sql import Scratch


def node(span: str, service: str, operation: str, path: list[str], **kw: Any) -> dict[str, Any]:
    """One notable span under a failed test, as explain_nodes.sql returns it."""
    row = {"TraceId": "t1", "SpanId": span, "ParentSpanId": path[-2] if len(path) > 1 else "",
           "test_span": path[0], "depth": len(path) - 1, "path": path, "service": service,
           "operation": operation, "kind": "Server", "sign": "error", "exception_type": None,
           "exception_message": None, "status_message": "", "http_status": None, "error_type": None,
           "peer": None, "url_path": None, "duration_ns": 10_000_000, "baseline_p50_ns": None,
           "baseline_max_ns": None, "first_error_log": None, "first_error_severity": None,
           "trouble_below": False, "slow_below": False, "server_children": 0, "child_service": None,
           "child_operation": None, "child_http_status": None, "child_span_id": None,
           "child_duration_ns": None, "recovered": False, "passing_tests": 10, "passing_tests_with_sign": 0}
    row.update(kw)
    return row


NAMES = {"T": "tests: test_x", "g": "gateway: POST /orders", "p": "payments: POST /charge", "c": "orders: POST"}


def test_the_deepest_error_is_the_origin_and_its_callers_are_messengers() -> None:
    nodes = [
        node("g", "gateway", "POST /orders", ["T", "g"], http_status=502, trouble_below=True),
        node("p", "payments", "POST /charge", ["T", "g", "p"], exception_type="KeyError",
             exception_message="'currency'"),
    ]
    ranked = candidates_for_test(nodes, NAMES)
    assert [(c.service, c.score, c.signal) for c in ranked] == [
        ("payments", weights.ERROR_ORIGIN, "error"), ("gateway", weights.MESSENGER, "error")]
    assert ranked[0].path == ("gateway: POST /orders", "payments: POST /charge")
    assert ranked[0].evidence[0].detail == "KeyError: 'currency'"


def test_a_failing_call_nobody_answered_names_the_silent_peer() -> None:
    nodes = [node("c", "orders", "POST", ["T", "c"], kind="Client", peer="bank.example.com",
                  url_path="/v1/charges", status_message="ConnectTimeout")]
    (cand,) = candidates_for_test(nodes, NAMES)
    assert (cand.service, cand.operation, cand.signal, cand.score) == (
        "bank.example.com", "/v1/charges", "dependency", weights.ERROR_ORIGIN)
    assert [e.kind for e in cand.evidence] == ["error", "no-server-span"]


def test_recovered_and_noisy_signs_are_discounted() -> None:
    recovered = candidates_for_test([node("p", "payments", "POST /charge", ["T", "p"], recovered=True)], NAMES)
    assert recovered[0].score == pytest.approx(weights.ERROR_ORIGIN * weights.RETRY_RECOVERED)
    noisy = candidates_for_test([node("p", "payments", "POST /charge", ["T", "p"], passing_tests_with_sign=4)],
                                NAMES)
    assert noisy[0].score == pytest.approx(0.6)
    always = candidates_for_test([node("p", "payments", "POST /charge", ["T", "p"], passing_tests_with_sign=10)],
                                 NAMES)
    assert always[0].score == pytest.approx(weights.NOISE_FLOOR)


def _calls_row(service: str, op: str, child: str, child_op: str, run: int, base: int, run_exp: int = 100,
               base_exp: int = 100) -> dict[str, Any]:
    return {"service": service, "operation": op, "child_service": child, "child_operation": child_op,
            "run_count": run, "baseline_count": base, "run_exposure": run_exp, "baseline_exposure": base_exp}


def test_comparison_scores_changes_by_surprise_and_halves_relays() -> None:
    rows = {
        "latency": [{"service": "payments", "operation": "POST /charge", "measure": "self", "n": 10,
                     "baseline_n": 100, "above": 5, "p50_ns": 9e6, "baseline_p50_ns": 2e6,
                     "max_ns": 2e7, "baseline_max_ns": 3e6}],
        "calls": [_calls_row("orders", "POST /orders", "payments", "POST /charge", 100, 100),
                  _calls_row("payments", "POST /charge", "payments", "INSERT", 0, 100)],
        "logs": [],
        "metrics": [],
    }
    shifts = compare(rows)
    latency = surprise(5, 10 / 101)
    assert shifts["payments"].by_signal == {"latency": pytest.approx(latency), "calls": pytest.approx(100.0)}
    assert "orders" not in shifts  # its calls to payments did not change
    rows["calls"].append(_calls_row("orders", "POST /orders", "orders", "ROLLBACK", 40, 0))
    shifts = compare(rows)
    # orders changed too, but it calls payments, which changed: it may only be relaying, so it weighs half
    assert shifts["orders"].relays_from == ("payments",)
    assert shifts["orders"].score == pytest.approx(surprise(40, PSEUDO_COUNT) * 0.25 * 0.5)


def test_the_sql_keeps_every_row_that_can_change_the_comparison() -> None:
    """compare_calls.sql and compare_logs.sql drop rows that cannot pass SIGNIFICANT: the shifts
    are the same as from every row."""
    rng = random.Random(3)
    ops = [(s, f"op{i}") for s in ("a", "b", "c") for i in range(6)]
    def calls(scale: float) -> pa.Table:
        rows = [(s, o, cs, co, max(0, int(rng.gauss(20, 6) * scale))) for s, o in ops for cs, co in rng.sample(ops, 4)]
        return pa.table(dict(zip(["service", "operation", "child_service", "child_operation", "calls"], zip(*rows))))
    def logs(scale: float) -> pa.Table:
        rows = [(s, o, f"line {k}", rng.choice([9, 17]), max(1, int(rng.gauss(10, 4) * scale)))
                for s, o in ops for k in range(3)]
        return pa.table(dict(zip(["service", "operation", "template", "severity", "c"], zip(*rows))))
    # "r" changed (a new call) and calls "s", which changed too (a call gone), through an unchanged
    # call: only that insignificant row tells that "r" may be relaying.
    relay = {"run": [("r", "op", "s", "x", 20), ("r", "op", "r", "new", 40), ("s", "x", "s", "y", 0)],
             "base": [("r", "op", "s", "x", 20), ("s", "x", "s", "y", 100)]}
    def with_relay(table: pa.Table, side: str) -> pa.Table:
        extra = dict(zip(table.column_names, zip(*relay[side])))
        return pa.concat_tables([table, pa.table(extra, schema=table.schema)])
    counts = pa.table({"service": [s for s, _ in [*ops, ("r", "op"), ("s", "x")]],
                       "operation": [o for _, o in [*ops, ("r", "op"), ("s", "x")]], "spans": [100] * (len(ops) + 2)})
    scratch = Scratch(run_calls=with_relay(calls(1.6), "run"), baseline_calls=with_relay(calls(1.0), "base"), run_logs=logs(0.3), baseline_logs=logs(1.0),
                      run_counts=counts, baseline_counts=counts)
    every = {name: scratch.rows(f"compare_{name}", {"significant": -1e9, "pseudo_count": PSEUDO_COUNT})
             for name in ("calls", "logs")}
    kept = {name: scratch.rows(f"compare_{name}", {"significant": SIGNIFICANT, "pseudo_count": PSEUDO_COUNT})
            for name in ("calls", "logs")}
    assert len(kept["calls"]) < len(every["calls"]) and len(kept["logs"]) < len(every["logs"])

    def summary(rows: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[float, tuple[str, ...]]]:
        shifts = compare({**rows, "latency": [], "metrics": []})
        return {s: (round(v.score, 9), v.relays_from) for s, v in shifts.items()}

    assert summary(kept) == summary(every)
    assert summary(kept)["r"][1] == ("s",)
