"""The run against its baseline run, service by service: who behaves differently, and how.

Failed tests are a noisy symptom: a fault shows in some requests and not others, and a busy run has
failures of its own. So besides walking each failed test, the correlator weighs the whole run against
the baseline run, operation by operation (the storage layer counts, set-based, in ``compare_*.sql``):

- latency: spans slower than every baseline occurrence of the same operation, in their own time
  (self) and on the wire between caller and callee;
- calls: children per span of an operation, e.g. a call the baseline always made and the run skips;
- log templates: templates per span of the operation that logs them, new ones and missing ones;
- metrics: points above the baseline's highest.

Every comparison is an observed count against the count the baseline predicts, scored by the Poisson
log-likelihood ratio ``o·ln(o/e) - (o - e)``: one unit for every signal, so they add up, and nothing is
tuned to a particular system. Kinds of change that are weaker signs of a fault are weighed down
before the test, and only items whose weighed score passes ``SIGNIFICANT`` count.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from otel_triage.correlator.model import Evidence

SIGNIFICANT = 6.0  # 2·LLR ~ χ²(1): p < 0.001 for a single item
PSEUDO_COUNT = 0.5  # what a template or call never seen in the baseline is assumed to have had
WARN = 13  # OpenTelemetry SeverityNumber of WARN
# A fault takes normal behaviour away (a code path cut short, a call skipped, a log line never
# reached) or adds errors; more of the usual is mostly a change of workload, so it weighs less.
MORE_OF_THE_USUAL = 0.25
# A slow wire is either end's network. When one caller's calls to many services are slow, the caller
# collects from all of those edges; when one service is slow to reach, from the callee's side. The
# caller's share is half, so a single slow edge points at the service being called.
CALLER_SHARE_OF_WIRE = 0.5
EVIDENCE_PER_SERVICE = 4
# A service whose callee changed too may only be relaying (errors and skipped work travel up the
# call graph, the way unexplained trouble below a span makes it a messenger in a failed test).
MESSENGER_SHARE = 0.5
# Saturated resources cause failures; latency, traffic and error-rate metrics show their effects,
# which the spans and logs already locate better. (system.cpu.*, process.cpu.*, k8s.pod.memory.*,
# container.cpu.*, and names like CpuUsageRate all match.)
RESOURCE_METRIC = re.compile(r"cpu|memory|heap|thread|pool|disk|file_descriptor", re.IGNORECASE)
SYMPTOM_METRIC = 0.25
METRIC_PEERS = 5  # services reporting a metric, for its cross-service spread to mean anything
METRIC_Z = 3.5  # robust deviations (median/MAD) for a metric rise to count
METRIC_MAD_FLOOR = 0.1  # log-ratio spread assumed at least, so identical peers don't make noise significant


def surprise(observed: float, expected: float) -> float:
    """Poisson log-likelihood ratio of ``observed`` against ``expected`` (0 when they agree)."""
    expected = max(expected, 1e-9)
    if observed <= 0:
        return expected
    return observed * math.log(observed / expected) - (observed - expected)


@dataclass
class ServiceShift:
    """What sets one service apart from the baseline run."""

    service: str
    score: float = 0.0
    relays_from: tuple[str, ...] = ()  # changed services it calls, which may explain its own change
    by_signal: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    items: list[tuple[float, Evidence]] = field(default_factory=list)

    def add(self, signal: str, llr: float, evidence: Evidence) -> None:
        self.score += llr
        self.by_signal[signal] += llr
        self.items.append((llr, evidence))

    def evidence(self) -> tuple[Evidence, ...]:
        # Ties broken by the evidence itself: rows arrive in no fixed order (hash aggregates, and a
        # store extracted from ClickHouse), and the explanation must not depend on it.
        return tuple(e for _, e in sorted(self.items, key=lambda x: (-x[0], x[1].kind, x[1].operation, x[1].detail))
                     [:EVIDENCE_PER_SERVICE])


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if ns < 10e6 else f"{ns / 1e6:.0f} ms"


def _rate_expectation(row: dict[str, Any]) -> float:
    """Expected run count from the baseline's rate per span of the same operation."""
    return (row["baseline_count"] or PSEUDO_COUNT) * row["run_exposure"] / row["baseline_exposure"]


def _rate_change(r: dict[str, Any], expected: float, words: tuple[str, str, str, str]) -> str:
    """Which of (gone, new, more, less) a per-span rate did."""
    gone, new, more, less = words
    if r["run_count"] == 0:
        return gone
    if r["baseline_count"] == 0:
        return new
    return more if r["run_count"] > expected else less


def _rate_detail(r: dict[str, Any], expected: float, what: str) -> str:
    return (f"{what}: {r['run_count']} times in {r['run_exposure']} spans, {expected:.1f} expected from the "
            f"baseline ({r['baseline_count']} in {r['baseline_exposure']})")


def _metric_shifts(rows: list[dict[str, Any]]) -> list[tuple[str, float, dict[str, Any], float]]:
    """Metric rises that stand out among every service's change of the same metric.

    A metric has a point per export interval, too few to test one series alone. But a run's
    workload moves a metric on every service alike, while a fault moves it on one: so each
    service's log-ratio (run's highest over the baseline's) is compared with the median and MAD
    of that metric's log-ratios across services, and a rise of ``METRIC_Z`` robust deviations,
    at least doubling, counts. A resource metric (CPU, memory, pools) scores the Gaussian
    log-likelihood ratio z²/2, the unit of every other comparison. Symptom metrics (latency
    percentiles, traffic) are heavy-tailed on idle services, so theirs grows only linearly
    (``SIGNIFICANT`` at ``METRIC_Z``), weighed down as well.
    """
    by_metric: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for r in rows:
        if r["baseline_max"] is not None and r["max_v"] is not None and r["baseline_max"] > 0 and r["max_v"] > 0:
            by_metric[r["metric"]].append((r, math.log(r["max_v"] / r["baseline_max"])))
    out = []
    for series in by_metric.values():
        if len(series) < METRIC_PEERS:
            continue
        ratios = sorted(lr for _, lr in series)
        median = ratios[len(ratios) // 2]
        mad = sorted(abs(lr - median) for lr in ratios)[len(ratios) // 2]
        for r, lr in series:
            z = (lr - median) / (1.4826 * mad + METRIC_MAD_FLOOR)
            if z >= METRIC_Z and lr >= math.log(2):
                resource = RESOURCE_METRIC.search(r["metric"]) is not None
                out.append((r["service"], z * z / 2 if resource else SYMPTOM_METRIC * SIGNIFICANT * z / METRIC_Z, r, z))
    # A service's metrics move together (CPU, latency percentiles): only its strongest counts.
    strongest: dict[str, tuple[str, float, dict[str, Any], float]] = {}
    for item in out:
        if item[0] not in strongest or item[1] > strongest[item[0]][1]:
            strongest[item[0]] = item
    return list(strongest.values())


def compare(rows: dict[str, list[dict[str, Any]]]) -> dict[str, ServiceShift]:
    """Service → its significant shifts against the baseline run (``Reader.compare_with_baseline``)."""
    shifts: dict[str, ServiceShift] = {}

    def shift(service: str) -> ServiceShift:
        return shifts.setdefault(service, ServiceShift(service))

    for r in rows["latency"]:
        expected = r["n"] / (r["baseline_n"] + 1)
        weight = CALLER_SHARE_OF_WIRE if r["measure"].startswith("wire to ") else 1.0
        llr = weight * surprise(r["above"], expected) if r["above"] > expected else 0.0
        if llr >= SIGNIFICANT:
            what = "own time" if r["measure"] == "self" else f"time on the wire ({r['measure']})"
            shift(r["service"]).add("latency", llr, Evidence(
                "latency", r["service"], r["operation"],
                f"{what}: {r['above']} of {r['n']} spans slower than any of {r['baseline_n']} in the baseline "
                f"(median {_ms(r['p50_ns'])} against {_ms(r['baseline_p50_ns'])}, max {_ms(r['max_ns'])} "
                f"against {_ms(r['baseline_max_ns'])})"))

    for r in rows["calls"]:
        expected = _rate_expectation(r)
        llr = surprise(r["run_count"], expected) * (MORE_OF_THE_USUAL if r["run_count"] > expected else 1.0)
        if llr >= SIGNIFICANT:
            what = f"{r['child_service']}: {r['child_operation']}"
            change = _rate_change(r, expected, ("no longer calls", "newly calls", "calls more often", "calls less often"))
            shift(r["service"]).add("calls", llr, Evidence("calls", r["service"], r["operation"],
                                                           _rate_detail(r, expected, f"{change} {what}")))

    for r in rows["logs"]:
        expected = _rate_expectation(r)
        more, severe = r["run_count"] > expected, (r["severity"] or 0) >= WARN
        # errors that went away are good news; more of the usual lines is mostly workload
        weight = (1.0 if severe else MORE_OF_THE_USUAL) if more else (0.0 if severe else 1.0)
        llr = surprise(r["run_count"], expected) * weight
        if llr >= SIGNIFICANT:
            change = _rate_change(r, expected, ("stopped logging", "newly logs", "logs more often", "logs less often"))
            shift(r["service"]).add("logs", llr, Evidence("log-template", r["service"], r["operation"],
                                                          _rate_detail(r, expected, f"{change} \u201c{r['template']}\u201d")))

    for service, llr, r, z in _metric_shifts(rows["metrics"]):
        shift(service).add("metrics", llr, Evidence(
            "metric", service, r["metric"],
            f"{r['metric']} rose to {r['max_v']:.4g} {r['unit']} against at most {r['baseline_max']:.4g} in the "
            f"baseline, {z:.1f} deviations beyond the same metric's change on the other services"))

    callees: dict[str, set[str]] = defaultdict(set)
    for r in rows["calls"]:
        if r["child_service"] != r["service"]:
            callees[r["service"]].add(r["child_service"])
    before = {name: s.score for name, s in shifts.items()}
    for name, s in shifts.items():
        below = sorted(c for c in callees[name] - {name} if before.get(c, 0.0) >= SIGNIFICANT)
        if below:
            s.relays_from = tuple(below)
            s.score *= MESSENGER_SHARE
    return shifts
