"""The run against its baseline run, service by service: who behaves differently, and how.

Failed tests are a noisy symptom: a fault shows in some requests and not others, and a busy run has
failures of its own. So besides walking each failed test, the correlator weighs the whole run against
the baseline run, operation by operation (the storage layer counts, set-based, in ``compare_*.sql``):

- own time: an operation's spans slower than every baseline span of it (TraceRCA's abnormal share);
- network: the time on the wire of every call a service makes or answers, pooled per service, since
  a slow network belongs to one pod and shows on all of its connections;
- calls: children per span of an operation, e.g. a call the baseline always made and the run skips;
- log templates: templates per span of the operation that logs them, new ones and missing ones;
- metrics: a rise beyond the same metric's change on the other services, and saturation (a
  utilisation near its limit) as an absolute sign.

Every indicator speaks one scale (``anomaly.py``: the surprise in nats), and a service is ranked by
its strongest indicator net of how many it offered, not by the sum (see ``docs/correlation.md``).
A service whose callee is at least as surprising is downstream of it (root pruning, as in Nezha).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from otel_triage.correlator import anomaly
from otel_triage.correlator.model import Evidence

SIGNIFICANT = 6.0  # nats: p < 0.0025 for a single indicator, before the look-elsewhere correction
# Indicators one row of each comparison tests (an own-time row: beyond the baseline's slowest, and
# beyond its p90). Rows that cannot reach SIGNIFICANT stay in DuckDB; api.py passes their count per
# service as rows["pruned"], so the look-elsewhere correction is the same as if they had come.
INDICATORS = {"latency": 2, "patterns": 2, "calls": 1, "logs": 1}  # patterns: unseen, and seen at most once
WIRE_INDICATORS = 4  # a service's pooled time on the wire: four tail counts
WARN = 13  # OpenTelemetry SeverityNumber of WARN
# A fault takes normal behaviour away (a code path cut short, a call skipped, a log line never
# reached) or adds errors; more of the usual is mostly a change of workload, so it weighs less.
MORE_OF_THE_USUAL = 0.25
EVIDENCE_PER_SERVICE = 4
# A service whose callee is at least as surprising may only be relaying (errors, skipped work and
# slowness travel up the call graph): it ranks behind the services that are not relaying.
MESSENGER_SHARE = 0.5
# Saturated resources cause failures; latency, traffic and error-rate metrics show their effects,
# which the spans and logs already locate better. (system.cpu.*, process.cpu.*, k8s.pod.memory.*,
# container.cpu.*, and names like CpuUsageRate all match.)
RESOURCE_METRIC = re.compile(r"cpu|memory|heap|thread|pool|disk|file_descriptor", re.IGNORECASE)
# A utilisation: a share of a limit, in percent or as a ratio (semantic conventions: `*.utilization`).
UTILISATION = re.compile(r"utili[sz]ation|usage_?rate|usagerate", re.IGNORECASE)
# Beyond half busy a request waits longer than it is served (M/M/1: wait = u/(1-u) service times):
# the knee of every queue, not a figure fitted to one system.
QUEUEING = 0.5
METRIC_PEERS = 5  # services reporting a metric, for its cross-service spread to mean anything
METRIC_MAD_FLOOR = 0.1  # log-ratio spread assumed at least, so identical peers don't make noise significant


@dataclass
class ServiceShift:
    """What sets one service apart from the baseline run."""

    service: str
    score: float = 0.0
    tested: int = 0  # indicators examined, for the look-elsewhere correction
    relays_from: tuple[str, ...] = ()  # callees at least as surprising, which may explain its own change
    by_signal: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    items: list[tuple[float, Evidence]] = field(default_factory=list)

    def add(self, signal: str, nats: float, evidence: Evidence) -> None:
        self.by_signal[signal] = max(self.by_signal[signal], nats)
        self.items.append((nats, evidence))

    @property
    def strongest(self) -> float:
        return max((n for n, _ in self.items), default=0.0)

    def evidence(self) -> tuple[Evidence, ...]:
        # Ties broken by the evidence itself: rows arrive in no fixed order (hash aggregates, and a
        # store extracted from ClickHouse), and the explanation must not depend on it.
        return tuple(e for _, e in sorted(self.items, key=lambda x: (-x[0], x[1].kind, x[1].operation, x[1].detail))
                     [:EVIDENCE_PER_SERVICE])


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if ns < 10e6 else f"{ns / 1e6:.0f} ms"


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


def _rate(r: dict[str, Any], mix: dict[tuple[str, str], float]) -> tuple[float, float]:
    """(surprise, the run count the baseline's rate predicts) of one per-span rate; where no span
    has it more than once (it is part of the span's pattern), at most the operation's pattern
    surprise (``mix``)."""
    expected = r["baseline_count"] * r["run_exposure"] / r["baseline_exposure"]
    nats = anomaly.rates(r["run_count"], r["run_exposure"], r["baseline_count"], r["baseline_exposure"])
    if r["run_count"] <= r["run_exposure"] and r["baseline_count"] <= r["baseline_exposure"]:
        nats = min(nats, mix.get((r["service"], r["operation"]), nats))
    return nats, expected


def _slow_share(r: dict[str, Any]) -> float:
    """Surprise of an operation's share of spans beyond the baseline's slowest, or beyond its 90th
    percentile (robust to one slow outlier in the baseline), whichever is larger: a new sample
    exceeds the k-th smallest of n with probability (n + 1 - k)/(n + 1)."""
    n = r["baseline_n"] + 1
    return max(anomaly.binomial(r["above"], r["n"], 1 / n),
               anomaly.binomial(r["above_p90"], r["n"], (n - r["baseline_k"]) / n))


def _pattern_detail(r: dict[str, Any], rare: bool = False) -> str:
    """In words: how the most common unseen (or, ``rare``, seen-once) pattern differs from the
    operation's usual one."""
    usual, new = set(r["usual"] or ()), set(r["rare_pattern" if rare else "unseen_pattern"] or ())
    changes = [f"without {p}" for p in sorted(usual - new)] + [f"with {p}" for p in sorted(new - usual)]
    did = (f"{r['unseen'] + r['once']} of {r['n']} spans did what at most one of {r['baseline_n']} in the baseline did"
           if rare else f"{r['unseen']} of {r['n']} spans did what none of {r['baseline_n']} in the baseline did")
    return f"{did}, most often: " + ("; ".join(changes)[:400] or "the same parts in another combination")


def _host_metrics(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(service, metric) whose series another service shares exactly: the host's, not the service's."""
    owners: dict[tuple[str, float, float], set[str]] = defaultdict(set)
    for r in rows:
        owners[(r["metric"], r["max_v"], r["baseline_max"])].add(r["service"])
    return {(service, metric) for (metric, _, _), services in owners.items() if len(services) > 1
            for service in services}


def _metric_shifts(rows: list[dict[str, Any]]) -> list[tuple[str, float, dict[str, Any], float]]:
    """Metric rises that stand out among every service's change of the same metric.

    A metric has a point per export interval, too few to test one series alone. But a run's
    workload moves a metric on every service alike, while a fault moves it on one: so each
    service's log-ratio (run's highest over the baseline's) is compared with the median and MAD
    of that metric's log-ratios across services (a robust z), at least doubling. A resource metric
    (CPU, memory, pools) scores the Gaussian surprise z²/2. Symptom metrics (latency percentiles,
    traffic) are heavy-tailed on idle services and show effects the spans locate better: they are
    not ranked (ranking them cost the Nezha replay 20 points of AC@1, docs/correlation.md).
    """
    host = _host_metrics(rows)
    by_metric: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for r in rows:
        if (r["service"], r["metric"]) in host:
            continue
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
            resource = RESOURCE_METRIC.search(r["metric"]) is not None
            if lr >= math.log(2) and resource:
                out.append((r["service"], anomaly.gaussian(z), r, z))
    return out


def _utilisation(r: dict[str, Any], value: float) -> float | None:
    """A utilisation as a share of its limit, or None when the metric is not one."""
    if not UTILISATION.search(r["metric"]) or value is None:
        return None
    share = value / 100 if r["unit"] == "%" else value if r["unit"] in ("1", "") else None
    return None if share is None or not 0 <= share <= 1 else share


def _saturation(rows: list[dict[str, Any]]) -> list[tuple[str, float, dict[str, Any]]]:
    """Resources busier than in the baseline, scored by the share of time they were busy.

    A utilisation is the share of time the resource was busy; each request the service served in
    the run found it busy with that probability (arrivals see time averages). The surprise is the
    binomial one of the run's busy share against the baseline's highest, over those requests: a
    resource near its limit is surprising even when its relative rise is modest, and one idle in
    both runs is not.
    """
    out = []
    host = _host_metrics(rows)
    for r in rows:
        if (r["service"], r["metric"]) in host:
            continue
        run, base = _utilisation(r, r["max_v"]), _utilisation(r, r["baseline_max"])
        n = r["run_spans"]
        if run is None or base is None or n == 0:
            continue
        out.append((r["service"], anomaly.binomial(run * n, n, max(base, QUEUEING)), r))
    return out


def compare(rows: dict[str, list[dict[str, Any]]]) -> dict[str, ServiceShift]:
    """Service → its significant shifts against the baseline run (``api._comparisons``: the rows
    that can be significant, ``pruned`` indicators per service that cannot, and ``edges``, which
    service calls which)."""
    shifts: dict[str, ServiceShift] = {}

    def shift(service: str) -> ServiceShift:
        return shifts.setdefault(service, ServiceShift(service))

    # network, pooled per service over every connection it makes or answers
    # above the baseline's max, calls, expected; above its p90, expected
    wire: dict[str, list[float]] = defaultdict(lambda: [0.0] * 7)
    network = (0, 0)
    wire_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows["latency"]:
        q = 1.0 / (r["baseline_n"] + 1)  # a new sample exceeds all n baseline ones with probability 1/(n+1)
        if r["measure"] == "self":
            shift(r["service"]).tested += INDICATORS["latency"]
            nats = _slow_share(r)
            if nats >= SIGNIFICANT:
                shift(r["service"]).add("latency", nats, Evidence(
                    "latency", r["service"], r["operation"],
                    f"own time: {r['above']} of {r['n']} spans slower than any of {r['baseline_n']} in the baseline "
                    f"(median {_ms(r['p50_ns'])} against {_ms(r['baseline_p50_ns'])}, max {_ms(r['max_ns'])} "
                    f"against {_ms(r['baseline_max_ns'])})"))
            continue
        q90 = (r["baseline_n"] + 1 - r["baseline_k"]) / (r["baseline_n"] + 1)
        pool = wire[r["service"]]
        for i, v in enumerate((r["above"], r["n"], r["n"] * q, r["above_p90"], r["n"] * q90,
                               r["above_network"], r["above_network_p99"])):
            pool[i] += v
        if r["above"] or r["above_p90"]:
            wire_rows[r["service"]].append(r)
        network = (r["network_n"], r["network_k99"])
    for service, (above, n, expected, above_p90, expected_p90, above_net, above_net99) in wire.items():
        shift(service).tested += WIRE_INDICATORS
        net_n, net_k = network
        nats = max(anomaly.binomial(above, n, expected / n), anomaly.binomial(above_p90, n, expected_p90 / n),
                   anomaly.binomial(above_net, n, 1 / (net_n + 1)),
                   anomaly.binomial(above_net99, n, (net_n + 1 - net_k) / (net_n + 1)))
        if nats >= SIGNIFICANT:
            worst = max(wire_rows[service], key=lambda r: r["above"] / r["n"])
            shift(service).add("latency", nats, Evidence(
                "latency", service, worst["operation"],
                f"time on the wire ({worst['measure']}): median {_ms(worst['p50_ns'])} against "
                f"{_ms(worst['baseline_p50_ns'])}, max {_ms(worst['max_ns'])} against {_ms(worst['baseline_max_ns'])}; "
                f"{above:.0f} of {n:.0f} calls to or from {service} slower than any in the baseline "
                f"({expected:.1f} expected)"))

    # An operation's pattern surprise, which bounds what a change in how many of its spans show one
    # item may reach: a span's items are its pattern, so with no new or rare patterns such a change
    # is the workload's mix of known patterns moving (one branch for another), not the code's.
    mix: dict[tuple[str, str], float] = {}
    for r in rows.get("patterns", []):
        shift(r["service"]).tested += INDICATORS["patterns"]
        unseen = anomaly.novelty(r["unseen"], r["n"], r["baseline_singletons"], r["baseline_n"])
        rare = anomaly.rarity(r["unseen"] + r["once"], r["n"], r["baseline_singletons"], r["baseline_doubletons"],
                              r["baseline_n"])
        nats = mix[(r["service"], r["operation"])] = max(unseen, rare)
        if nats >= SIGNIFICANT:
            shift(r["service"]).add("patterns", nats, Evidence("pattern", r["service"], r["operation"],
                                                               _pattern_detail(r, rare > unseen)))

    for r in rows["calls"]:
        shift(r["service"]).tested += INDICATORS["calls"]
        nats, expected = _rate(r, mix)
        nats *= MORE_OF_THE_USUAL if r["run_count"] > expected else 1.0
        if nats >= SIGNIFICANT:
            what = f"{r['child_service']}: {r['child_operation']}"
            change = _rate_change(r, expected, ("no longer calls", "newly calls", "calls more often", "calls less often"))
            shift(r["service"]).add("calls", nats, Evidence("calls", r["service"], r["operation"],
                                                            _rate_detail(r, expected, f"{change} {what}")))

    for r in rows["logs"]:
        shift(r["service"]).tested += INDICATORS["logs"]
        nats, expected = _rate(r, mix)
        more, severe = r["run_count"] > expected, (r["severity"] or 0) >= WARN
        # errors that went away are good news; more of the usual lines is mostly workload
        nats *= (1.0 if severe else MORE_OF_THE_USUAL) if more else (0.0 if severe else 1.0)
        if nats >= SIGNIFICANT:
            change = _rate_change(r, expected, ("stopped logging", "newly logs", "logs more often", "logs less often"))
            shift(r["service"]).add("logs", nats, Evidence("log-template", r["service"], r["operation"],
                                                           _rate_detail(r, expected, f"{change} \u201c{r['template']}\u201d")))

    for r in rows["metrics"]:
        shift(r["service"]).tested += 1
    for service, nats, r, z in _metric_shifts(rows["metrics"]):
        if nats >= SIGNIFICANT:
            shift(service).add("metrics", nats, Evidence(
                "metric", service, r["metric"],
                f"{r['metric']} rose to {r['max_v']:.4g} {r['unit']} against at most {r['baseline_max']:.4g} in the "
                f"baseline, {z:.1f} deviations beyond the same metric's change on the other services"))
    for service, nats, r in _saturation(rows["metrics"]):
        if nats >= SIGNIFICANT:
            shift(service).add("saturation", nats, Evidence(
                "metric", service, r["metric"],
                f"{r['metric']} {r['max_v']:.3g} {r['unit']} in the failure window against at most "
                f"{r['baseline_max']:.3g} {r['unit']} in the baseline"))

    for r in rows.get("pruned", []):
        shift(r["service"]).tested += r["indicators"]
    for s in shifts.values():
        s.score = anomaly.Strongest(s.strongest, s.tested).net
    callees: dict[str, set[str]] = defaultdict(set)
    for r in [*rows["calls"], *rows.get("edges", [])]:
        if r["child_service"] != r["service"]:
            callees[r["service"]].add(r["child_service"])
    before = {name: s.score for name, s in shifts.items()}
    for name, s in shifts.items():
        below = sorted(c for c in callees[name] - {name} if before.get(c, 0.0) >= max(before[name], SIGNIFICANT))
        if below and before[name] > 0:
            s.relays_from = tuple(below)
            s.score *= MESSENGER_SHARE
    return {name: s for name, s in shifts.items() if s.items}
