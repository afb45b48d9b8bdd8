"""The daemon's own health, measured with the OpenTelemetry SDK and read back for ``triage stats``.

An in-memory reader keeps the figures in the process: the Stats RPC collects them on demand, so
watching the daemon needs no second telemetry pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Sum,
)


class SelfMetrics:
    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self._reader = InMemoryMetricReader()
        self._provider = MeterProvider(metric_readers=[self._reader])
        meter = self._provider.get_meter("otel_triage.collector")
        self.received = meter.create_counter(
            "triage.receiver.items.received", unit="{item}", description="Items in export requests"
        )
        self.accepted = meter.create_counter(
            "triage.receiver.items.accepted", unit="{item}", description="Items committed to DuckDB"
        )
        self.rejected = meter.create_counter(
            "triage.receiver.items.rejected", unit="{item}", description="Items refused (partial success)"
        )
        self.requests = meter.create_counter(
            "triage.receiver.requests", unit="{request}", description="Export requests by outcome"
        )
        self.commit_duration = meter.create_histogram(
            "triage.writer.commit.duration", unit="s", description="Time of one group commit"
        )
        self.commit_rows = meter.create_histogram(
            "triage.writer.commit.rows", unit="{row}", description="Rows in one group commit"
        )

        def observe_depth(_options: CallbackOptions) -> list[Observation]:
            return [Observation(queue_depth())]

        meter.create_observable_gauge(
            "triage.writer.queue.depth",
            callbacks=[observe_depth],
            unit="{request}",
            description="Requests decoded and waiting for the writer",
        )

    def on_commit(self, jobs: int, rows: int, seconds: float) -> None:
        self.commit_duration.record(seconds)
        self.commit_rows.record(rows)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every data point as a flat dict: name, unit, attributes and value (or count/sum/max)."""
        out: list[dict[str, Any]] = []
        data = self._reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        row: dict[str, Any] = {
                            "name": metric.name,
                            "unit": metric.unit,
                            "attributes": dict(p.attributes or {}),
                        }
                        if isinstance(metric.data, (Sum, Gauge)):
                            row["value"] = p.value
                        elif isinstance(metric.data, Histogram):
                            row.update(count=p.count, sum=p.sum, min=p.min, max=p.max)
                        out.append(row)
        return sorted(out, key=lambda r: (r["name"], sorted(r["attributes"].items())))

    def shutdown(self) -> None:
        self._provider.shutdown()
