"""Decode cost per item, one thread: the reference decoder, the columnar path one request at a time,
and the columnar path over several requests at once (what the daemon's decoder thread does).

    python bench/decode.py [--requests 64] [--together 4]

Spans: the requests of bench/ingest.py (512 spans, ~10 attributes). Metrics: an SDK-like export of
gauges, sums and histograms (5 services x 20 metrics x 10 points, 3 attributes a point). Prints CPU
µs per item (process time: the steadier figure on a shared machine) and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector import decode as reference
from otel_triage.collector import fastdecode
from otel_triage.collector.memory import bound_allocators

from bench.ingest import SERVICES, make_requests


def metric_requests(n: int) -> list[bytes]:
    out = []
    for r in range(n):
        req = ExportMetricsServiceRequest()
        for service in SERVICES:
            rm = req.resource_metrics.add()
            rm.resource.attributes.add(key="service.name").value.string_value = service
            sm = rm.scope_metrics.add()
            sm.scope.name = "opentelemetry.instrumentation.flask"
            for m in range(20):
                metric = sm.metrics.add(name=f"http.server.metric_{m}", unit="ms")
                kind = ("gauge", "sum", "histogram")[m % 3]
                body = getattr(metric, kind)
                for p in range(10):
                    point = body.data_points.add(time_unix_nano=1_700_000_000_000_000_000 + r,
                                                 start_time_unix_nano=1_700_000_000_000_000_000)
                    for key, value in (("http.route", f"/api/{p}"), ("http.request.method", "GET"),
                                       ("server.address", f"{service}.svc")):
                        point.attributes.add(key=key).value.string_value = value
                    if kind == "histogram":
                        point.explicit_bounds.extend([5.0, 10.0, 25.0, 50.0, 100.0])
                        point.bucket_counts.extend([p, 1, 2, 3, 4, 5])
                        point.count, point.sum = p + 15, 123.5
                    elif p % 2:
                        point.as_int = p
                    else:
                        point.as_double = p / 3
        out.append(req.SerializeToString())
    return out


def cpu_per_item(fn: Callable[[], int]) -> float:
    fn()  # warm: ptars compiles its descriptors on first use
    start = time.process_time()
    items = fn()
    return (time.process_time() - start) / items * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--together", type=int, default=4)
    args = parser.parse_args()
    bound_allocators()
    limits = reference.Limits()
    k = args.together
    for signal, datas in (("traces", make_requests(0, args.requests, 512)), ("metrics", metric_requests(args.requests))):
        ref = reference.DECODERS[signal]  # the reference decoder itself, not decode()'s dispatch
        fast = fastdecode.DECODERS[signal]
        figures = {
            "reference": cpu_per_item(lambda: sum(ref(d, None, limits).accepted for d in datas)),  # noqa: B023
            "columnar, alone": cpu_per_item(lambda: sum(fast(d, None, limits).accepted for d in datas)),  # noqa: B023
            f"columnar, {k} together": cpu_per_item(lambda: sum(
                sum(fastdecode.decode_together(signal, datas[i:i + k], None, limits)[1])  # noqa: B023
                for i in range(0, len(datas), k))),  # noqa: B023
        }
        print(f"{signal}: " + ", ".join(f"{name} {us:.1f}" for name, us in figures.items()) + " µs CPU an item")
    print(f"load average (1 min) {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
