"""Which entry requests of a case window are failed tests: the data README's protocol.

A test fails when its trace is anomalous against the fault-free baseline for the same API: root
latency above the baseline's maximum, an ERROR log linked by trace id, or a multiset of (service,
operation) spans that no baseline request of the API had. Decided from telemetry alone; the label
is never read here. An API the baseline never saw can only fail by the log check.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from bench.nezha_replay.convert import RunData, Trace


def _duration_ms(t: Trace) -> float:
    assert t.root is not None
    return (int(t.root["EndTimeUnixNano"]) - int(t.root["StartTimeUnixNano"])) / 1e6


def _shape(t: Trace) -> frozenset[tuple[tuple[str, str], int]]:
    return frozenset(Counter((s["service"], s["OperationName"]) for s in t.spans).items())


def decide(baseline: RunData, run: RunData) -> None:
    """Set ``failed_because`` on the run's tests (the baseline's requests are the reference: all pass)."""
    max_ms: dict[str, float] = defaultdict(float)
    shapes: dict[str, set[frozenset]] = defaultdict(set)
    for t in baseline.traces.values():
        if t.root is not None and t.api:
            max_ms[t.api] = max(max_ms[t.api], _duration_ms(t))
            shapes[t.api].add(_shape(t))
    for t in run.traces.values():
        if t.root is None or not t.api:
            continue
        reasons = []
        if t.api in max_ms and _duration_ms(t) > max_ms[t.api]:
            reasons.append(f"root latency {_duration_ms(t):.0f} ms > baseline max {max_ms[t.api]:.0f} ms")
        if t.error_logs:
            reasons.append(f"{t.error_logs} ERROR log line(s)")
        if t.api in shapes and _shape(t) not in shapes[t.api]:
            reasons.append("span multiset unlike any baseline request of this API")
        t.failed_because = "; ".join(reasons) or None
