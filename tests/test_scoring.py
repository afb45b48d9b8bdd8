"""Scoring and comparison on fixture rows: no daemon, no store, just the correlator's logic."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from otel_triage.correlator import anomaly, weights
from otel_triage.correlator.compare import ServiceShift, compare
from otel_triage.correlator.model import Candidate, FailedTest
from otel_triage.correlator.score import candidates_for_test
from otel_triage.correlator.sql import Scratch
from otel_triage.correlator.suspects import rank_suspects as _suspects


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


def test_pattern_novelty_counts_the_baseline_sampling_error() -> None:
    """31 of 55 run spans with a pattern none of 12 baseline spans showed: taken as exact, the
    baseline's missing mass (1 in 13) made this 44 nats; as a 2x2 table, 12 spans say little. The
    same share against 1000 baseline spans is still strong, and less novelty than the baseline's
    own (its singletons' share) is no surprise."""
    small = anomaly.novelty(31, 55, 0, 12)
    assert small == pytest.approx(anomaly.rates(31, 55, 0, 12))
    assert small < anomaly.binomial(31, 55, 1 / 13) / 4
    assert anomaly.novelty(31, 55, 0, 1000) > 4 * small
    assert anomaly.novelty(5, 100, 20, 100) == 0.0
    row = {"service": "hub", "operation": "POST", "n": 55, "unseen": 31, "once": 0, "baseline_n": 12,
           "baseline_singletons": 0, "baseline_doubletons": 0, "usual": [], "unseen_pattern": [], "rare_pattern": []}
    shifts = compare({"latency": [], "patterns": [row], "calls": [], "logs": [], "metrics": []})
    assert shifts["hub"].by_signal["patterns"] == pytest.approx(small)


def _patterns(operation: str, n: int, unseen: int, once: int, baseline_n: int, singletons: int,
              doubletons: int) -> dict[str, Any]:
    return {"service": "seats", "operation": operation, "n": n, "unseen": unseen, "once": once,
            "baseline_n": baseline_n, "baseline_singletons": singletons, "baseline_doubletons": doubletons,
            "usual": ["calls a"], "unseen_pattern": ["calls b"], "rare_pattern": ["calls b"]}


def _presence(operation: str, child: str, run: int, run_n: int, base: int, base_n: int) -> dict[str, Any]:
    return {"service": "seats", "operation": operation, "child_service": "orders", "child_operation": child,
            "run_count": run, "run_exposure": run_n, "baseline_count": base, "baseline_exposure": base_n}


def test_a_workload_mix_of_known_patterns_is_no_fault() -> None:
    """An operation takes one of two known branches by its input (88% of 114 baseline spans call
    one, 53% of 72 run spans do): the per-span rate alone is 14 nats, but no span did anything the
    baseline had not done, so the change is the mix, capped at the operation's pattern surprise.
    The same drop where most run spans show a new pattern keeps its full surprise."""
    drop = _presence("GET", "/tickets", 38, 72, 100, 114)
    assert anomaly.rates(38, 72, 100, 114) > 12
    mix = compare({"latency": [], "patterns": [_patterns("GET", 72, 0, 0, 114, 0, 0)], "calls": [drop],
                   "logs": [], "metrics": []})
    assert "seats" not in mix
    new = compare({"latency": [], "patterns": [_patterns("GET", 72, 34, 0, 114, 0, 0)], "calls": [drop],
                   "logs": [], "metrics": []})
    assert new["seats"].by_signal["calls"] == pytest.approx(anomaly.rates(38, 72, 100, 114))
    # a count several times per span (a loop, retries) is not a pattern's presence: never capped
    loop = _presence("GET", "/tickets", 300, 72, 114, 114)
    many = compare({"latency": [], "patterns": [_patterns("GET", 72, 0, 0, 114, 0, 0)], "calls": [loop],
                    "logs": [], "metrics": []})
    assert many["seats"].by_signal["calls"] == pytest.approx(anomaly.rates(300, 72, 114, 114) * 0.25)


def test_a_branch_the_baseline_took_once_made_frequent_counts() -> None:
    """26 of 84 run spans skip a log line that 49 of 50 baseline spans wrote: their pattern is not
    new (the baseline showed it once), so novelty alone says nothing and the rate is capped by it;
    held against what a leave-one-out baseline sees at most once (its singletons and doubletons),
    it is significant. Doubletons enough to make it common shrink it to nothing."""
    assert anomaly.novelty(0, 84, 1, 50) == 0.0
    rare = anomaly.rarity(26, 84, 1, 1, 50)
    assert rare == pytest.approx(anomaly.rates(26, 84, 3, 50)) and rare > 6  # past compare.SIGNIFICANT
    assert anomaly.rarity(26, 84, 1, 20, 50) == 0.0
    shifts = compare({"latency": [], "patterns": [_patterns("query", 84, 0, 26, 50, 1, 1)], "calls": [],
                      "logs": [], "metrics": []})
    assert shifts["seats"].by_signal["patterns"] == pytest.approx(rare)
    assert "at most one of 50" in shifts["seats"].items[0][1].detail


def _failed(name: str, *cands: Candidate) -> FailedTest:
    return FailedTest(name, "t", name, None, None, None, "quiet", tuple(cands))


def _cand(service: str, score: float, signal: str) -> Candidate:
    return Candidate(service, "op", score, "", signal)


def test_a_callers_change_is_weighed_on_the_comparisons_scale() -> None:
    """Quiet failed tests: the subtree comparison names the caller (its path changed because its
    callee answered differently), the run's comparison finds the callee more surprising. The
    change is weighed by the caller's nats, not by a fixed score of its own, so the callee leads."""
    failed = [_failed(f"t{i}", _cand("caller", 0.48, "change"), _cand("callee", 0.9, "comparison")) for i in range(3)]
    shifts = {"callee": ServiceShift("callee", score=21.0), "caller": ServiceShift("caller", score=17.0)}
    ranked = [s.service for s in _suspects(failed, shifts)]
    assert ranked == ["callee", "caller"]
    # a change the comparison cannot see (an attribute value, too few spans) still speaks alone
    only = _suspects([_failed("t", _cand("cart", 0.36, "change"))], {})
    assert [(s.service, s.score) for s in only] == [("cart", 0.36)]


def test_a_relays_failed_test_evidence_is_pruned_like_its_shift() -> None:
    """A slow wire shows as latency of the caller in each failed test (its span is slow, its
    callee's server span is not); the comparison finds the callee far more surprising and the caller
    relaying it. Root pruning halves the caller's test evidence too, so the callee leads."""
    failed = [_failed(f"t{i}", _cand("gateway", 0.7, "latency")) for i in range(3)] + [_failed("t3")]
    shifts = {"travel": ServiceShift("travel", score=100.0),
              "gateway": ServiceShift("gateway", score=30.0, relays_from=("travel",))}
    assert [s.service for s in _suspects(failed, shifts)][:2] == ["travel", "gateway"]


def test_the_sql_surprise_of_a_rate_is_anomaly_rates() -> None:
    """compare_*.sql keep in DuckDB the rows whose surprise (macros.sql's rate_nats) is below
    significance: it must be the surprise compare.py computes (anomaly.rates), on both of its
    branches (at most once per span: a 2x2 table; more: two Poisson counts) and at the edges."""
    rng = random.Random(7)
    cases = [(0, 10, 5, 10), (5, 10, 0, 10), (0, 0, 3, 4), (3, 4, 0, 0), (0, 5, 0, 5), (1, 1, 1, 1),
             (10, 10, 10, 10), (40, 10, 3, 10), (0, 100, 100, 100), (31, 55, 0, 12)]
    for _ in range(300):
        re, be = rng.randint(1, 2000), rng.randint(1, 2000)
        many = rng.random() < 0.3  # counts beyond the exposures: the Poisson branch
        cases.append((rng.randint(0, re * (4 if many else 1)), re, rng.randint(0, be * (4 if many else 1)), be))
    scratch = Scratch()
    try:
        got = scratch.con.execute(
            "SELECT rate_nats(r, re, b, be) FROM (SELECT unnest($r) AS r, unnest($re) AS re, unnest($b) AS b, "
            "unnest($be) AS be)", {k: [c[i] for c in cases] for i, k in enumerate(("r", "re", "b", "be"))}).fetchall()
        novel = scratch.con.execute(
            "SELECT novelty_nats(r, re, b, be) FROM (SELECT unnest($r) AS r, unnest($re) AS re, unnest($b) AS b, "
            "unnest($be) AS be)", {k: [c[i] for c in cases] for i, k in enumerate(("r", "re", "b", "be"))}).fetchall()
    finally:
        scratch.close()
    for (nats,), (new,), case in zip(got, novel, cases):
        assert nats == pytest.approx(anomaly.rates(*case), rel=1e-9, abs=1e-9), case
        if case[0] <= case[1] and case[2] <= case[3]:  # novelty's counts: spans with a pattern, of the spans
            assert new == pytest.approx(anomaly.novelty(*case), rel=1e-9, abs=1e-9), case
