"""Hostile or broken clients against the real daemon's receivers (issue #14): one bad item never costs
its request, nothing a client sends makes a retryable failure of a permanent one, and what a client
is told names the real problem."""

from __future__ import annotations

import http.client
import json

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tests import otlp
from tests.conftest import query

LAST_U64 = 2**64 - 1  # a legal OTLP fixed64, after the year 2262 that signed nanoseconds reach
RUN = {"service.name": "svc", "cicd.pipeline.run.id": "hostile"}


def test_a_timestamp_beyond_2262_rejects_only_its_item(daemon, db_path):
    tp = otlp.tracer_provider(daemon.address, RUN)  # one batch: the bad span travels with good ones
    tracer = tp.get_tracer("t")
    tracer.start_span("far future").end(end_time=LAST_U64)
    for i in range(3):
        tracer.start_span(f"fine {i}").end()
    assert tp.force_flush(30_000)
    tp.shutdown()

    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=LAST_U64).body.string_value = "late"
    records.add(observed_time_unix_nano=1).body.string_value = "kept"
    answer = ExportLogsServiceResponse.FromString(otlp.raw_export(daemon.address, "logs", logs.SerializeToString())[0])
    assert answer.partial_success.rejected_log_records == 1

    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.gauge.data_points.add(time_unix_nano=LAST_U64, as_int=1)
    metric.gauge.data_points.add(time_unix_nano=5, as_int=2)
    answer = ExportMetricsServiceResponse.FromString(
        otlp.raw_export(daemon.address, "metrics", metrics.SerializeToString())[0])
    assert answer.partial_success.rejected_data_points == 1

    host, port = daemon.http_address.rsplit(":", 1)
    spans = [{"traceId": "01" * 16, "spanId": f"{i + 1:016x}", "name": name,
              "startTimeUnixNano": "1", "endTimeUnixNano": end} for i, (name, end) in
             enumerate([("json late", str(LAST_U64)), ("json kept", "2")])]
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v1/traces", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read())["partialSuccess"]["rejectedSpans"] == "1"
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT SpanName FROM otel_traces ORDER BY SpanName") == [
        ("fine 0",), ("fine 1",), ("fine 2",), ("json kept",)]
    assert query(db_path, "SELECT Body FROM otel_logs") == [("kept",)]
    assert query(db_path, "SELECT ValueInt FROM otel_metrics_gauge") == [(2,)]
