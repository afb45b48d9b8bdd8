"""Scoring and comparison on fixture rows: no daemon, no store, just the correlator's logic."""

from __future__ import annotations

import math
from typing import Any

import pytest
from otel_triage.correlator import anomaly, weights
from otel_triage.correlator.compare import compare
from otel_triage.correlator.score import candidates_for_test


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
                     "baseline_n": 100, "baseline_k": 91, "above": 5, "above_p90": 6, "p50_ns": 9e6,
                     "baseline_p50_ns": 2e6, "max_ns": 2e7, "baseline_max_ns": 3e6}],
        "calls": [_calls_row("orders", "POST /orders", "payments", "POST /charge", 100, 100),
                  _calls_row("payments", "POST /charge", "payments", "INSERT", 0, 100)],
        "logs": [],
        "metrics": [],
    }
    shifts = compare(rows)
    # beyond the baseline's slowest (1 in 101) or beyond its p90, the 91st of 100 (10 in 101): the larger
    latency = max(anomaly.binomial(5, 10, 1 / 101), anomaly.binomial(6, 10, 10 / 101))
    assert shifts["payments"].by_signal == {"latency": pytest.approx(latency),
                                            "calls": pytest.approx(anomaly.rates(0, 100, 100, 100))}
    assert "orders" not in shifts  # its calls to payments did not change
    rows["calls"].append(_calls_row("orders", "POST /orders", "orders", "ROLLBACK", 40, 0))
    shifts = compare(rows)
    # orders changed too (more of the usual weighs a quarter), but it calls payments, which changed
    # more: it may only be relaying, so it weighs half, after the look-elsewhere correction (2 tested)
    assert shifts["orders"].relays_from == ("payments",)
    assert shifts["orders"].score == pytest.approx((anomaly.rates(40, 100, 0, 100) * 0.25 - math.log(2)) * 0.5)


def test_the_strongest_indicator_wins_not_the_sum() -> None:
    """A busy service with many significant shifts (20 calls skipped by 12 of 100 spans: 8.7 nats
    each, 174 in all) ranks behind one with a single large shift (a call every span made, gone:
    139 nats)."""
    busy = [_calls_row("busy", f"op{i}", "busy", "db", 0, 12) for i in range(20)]
    faulty = [_calls_row("faulty", "op", "faulty", "db", 0, 100)]
    shifts = compare({"latency": [], "calls": busy + faulty, "logs": [], "metrics": []})
    assert sum(n for n, _ in shifts["busy"].items) > shifts["faulty"].strongest
    assert shifts["faulty"].score > shifts["busy"].score > 0
