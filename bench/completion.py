"""What run-completion bookkeeping costs on the ingest path, per committed request.

``CompletionTracker.observe`` runs after every commit (run ids of the batch, a substring scan of the
span attributes for a session span). This decodes the same 512-span requests bench/ingest.py sends
and times ``observe`` on them against the decode itself.

    python bench/completion.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otel_triage.collector.completion import CompletionTracker
from otel_triage.collector.decode import Limits, decode

from bench.ingest import make_requests


class _NoStore:
    def load(self):  # the tracker is timed alone: no database
        return [], set(), set()


def main() -> None:
    requests = make_requests(0, 200, 512)
    decoded = [decode("traces", r, None, Limits()) for r in requests]
    t = time.perf_counter()
    for r in requests:
        decode("traces", r, None, Limits())
    decode_us = (time.perf_counter() - t) / len(requests) * 1e6
    tracker = CompletionTracker(_NoStore(), quiet_period=30)  # type: ignore[arg-type]
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        for d in decoded:
            tracker.observe(d.tables)
        runs.append((time.perf_counter() - t) / len(decoded) * 1e6)
    observe_us = statistics.median(runs)
    spans = decoded[0].tables["otel_traces"].num_rows
    print(f"per {spans}-span request: decode {decode_us:.0f} µs, observe {observe_us:.0f} µs "
          f"({observe_us / decode_us:.1%} of decode; {observe_us / spans * 1000:.0f} ns a span)")


if __name__ == "__main__":
    main()
