"""Scoring: from the notable spans under one failed test to ranked root-cause candidates.

The storage layer has already found, set-based, every span under the test that shows trouble (an
error, an error log, or latency beyond the baseline) and what surrounds it. Here each such span
becomes a vote for the service where the failure *began*:

- trouble with more trouble below it is a messenger (it relays), and votes weakly for itself;
- a failing client call whose server side never reported votes for the peer it called (an
  uninstrumented third party, or a service that crashed before exporting);
- a failing client call whose server answered an error status, or was slow, votes for that server;
- a recovered retry, and a sign that passing tests show too, are discounted (noise, not cause).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from otel_triage.correlator.model import Candidate, Evidence
from otel_triage.correlator.weights import (  # noqa: F401  (CAUSE_THRESHOLD: re-exported for api.py)
    CAUSE_THRESHOLD,
    ERROR_ORIGIN,
    LATENCY_ORIGIN,
    LOG_ORIGIN,
    MESSENGER,
    NOISE_FLOOR,
    RETRY_RECOVERED,
)


def _ms(ns: float | None) -> str:
    return f"{(ns or 0) / 1e6:.0f} ms"


def _error_text(n: dict[str, Any]) -> str:
    if n["exception_type"]:
        msg = n["exception_message"] or ""
        return f"{n['exception_type']}: {msg}".strip().rstrip(":")
    if n["status_message"]:
        return n["status_message"]
    if n["http_status"]:
        return f"HTTP {n['http_status']}"
    if n["error_type"]:
        return f"error.type={n['error_type']}"
    return "ERROR status"


def _vote(n: dict[str, Any]) -> tuple[str, str, float, str, str, list[Evidence]]:
    """(service, operation, score, signal, reason, evidence) for one notable span."""
    service, operation = n["service"], n["operation"]
    if n["sign"] == "error":
        text = _error_text(n)
        ev = [Evidence("exception" if n["exception_type"] else "error", service, operation, text,
                       n["TraceId"], n["SpanId"])]
        if n["trouble_below"]:
            return service, operation, MESSENGER, "error", f"relays an error from below ({text})", ev
        if n["kind"] in ("Client", "Producer") and n["server_children"] == 0 and n["peer"]:
            ev.append(Evidence("no-server-span", n["peer"], n["url_path"] or operation,
                               f"{n['peer']} reported no span for this call", n["TraceId"], n["SpanId"]))
            if n.get("peer_note"):  # named from its address (correlator/peers.py)
                ev.append(Evidence("peer-address", n["peer"], n["url_path"] or operation, n["peer_note"],
                                   n["TraceId"], n["SpanId"]))
            return (n["peer"], n["url_path"] or operation, ERROR_ORIGIN, "dependency",
                    f"calls from {service} fail ({text}) and {n['peer']} reported nothing", ev)
        if n["kind"] == "Client" and n["child_service"]:
            # The callee still working when its caller gave up is slow even without a baseline.
            if n["slow_below"] or (n["child_duration_ns"] or 0) >= n["duration_ns"]:
                return (n["child_service"], n["child_operation"], ERROR_ORIGIN, "latency",
                        f"{n['child_service']} was too slow and {service} gave up ({text})", ev)
            if (n["child_http_status"] or 0) >= 400:
                ev.append(Evidence("status", n["child_service"], n["child_operation"],
                                   f"answered HTTP {n['child_http_status']}", n["TraceId"], n["child_span_id"]))
                return (n["child_service"], n["child_operation"], ERROR_ORIGIN, "error",
                        f"{n['child_service']} answered HTTP {n['child_http_status']} to {service}", ev)
        return service, operation, ERROR_ORIGIN, "error", f"error began here: {text}", ev
    if n["sign"] == "error-log":
        body = (n["first_error_log"] or "").strip().splitlines()[0][:200] if n["first_error_log"] else ""
        ev = [Evidence("log", service, operation, f"{n['first_error_severity']}: {body}", n["TraceId"], n["SpanId"])]
        if n["trouble_below"]:
            return service, operation, MESSENGER, "log", f"logs an error relayed from below: {body}", ev
        return service, operation, LOG_ORIGIN, "log", f"logged {n['first_error_severity']} while its span looked OK: {body}", ev
    # slow
    detail = f"took {_ms(n['duration_ns'])} against a baseline of {_ms(n['baseline_p50_ns'])} (max {_ms(n['baseline_max_ns'])})"
    ev = [Evidence("latency", service, operation, detail, n["TraceId"], n["SpanId"])]
    if n["slow_below"]:
        return service, operation, MESSENGER * 0.5, "latency", f"slow because a callee is slow ({detail})", ev
    return service, operation, LATENCY_ORIGIN, "latency", f"slow: {detail}", ev


def candidates_for_test(nodes: list[dict[str, Any]], path_names: dict[str, str]) -> list[Candidate]:
    """Ranked candidates (best first) from the notable spans under one failed test."""
    best: dict[tuple[str, str], Candidate] = {}
    evidence: dict[tuple[str, str], list[Evidence]] = defaultdict(list)
    for n in nodes:
        service, operation, score, signal, reason, ev = _vote(n)
        if n["recovered"]:
            score *= RETRY_RECOVERED
            reason += "; a retry of the same call then succeeded"
            ev.append(Evidence("retry", n["service"], n["operation"], "recovered by a retry", n["TraceId"], n["SpanId"]))
        if n["passing_tests"] and n["passing_tests_with_sign"]:
            share = n["passing_tests_with_sign"] / n["passing_tests"]
            score *= max(NOISE_FLOOR, 1.0 - share)
            reason += f"; the same sign shows in {n['passing_tests_with_sign']} of {n['passing_tests']} passing tests"
            ev.append(Evidence("noise", n["service"], n["operation"],
                               f"also in {n['passing_tests_with_sign']} of {n['passing_tests']} passing tests"))
        key = (service, operation)
        evidence[key].extend(ev)
        if key not in best or score > best[key].score:
            path = tuple(path_names.get(s, "?") for s in n["path"][1:])
            path_ids = tuple(n["path"])
            if service != n["service"]:  # the vote went to the callee: end the path there
                path += (f"{service}: {operation}",)
                if n["child_span_id"] and service == n["child_service"]:
                    path_ids += (n["child_span_id"],)
            best[key] = Candidate(service, operation, round(score, 3), reason, signal, path, (), path_ids)
    ranked = sorted(best.values(), key=lambda c: (-c.score, c.service, c.operation))
    return [
        Candidate(c.service, c.operation, c.score, c.reason, c.signal, c.path,
                  tuple(evidence[(c.service, c.operation)][:8]), c.path_span_ids)
        for c in ranked
    ]
