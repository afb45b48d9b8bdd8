"""OTLP/HTTP with the real daemon: the opentelemetry-sdk HTTP exporters for all three signals, and raw
requests for everything the specification says a receiver answers (JSON, gzip, bad bodies, wrong
content types and paths, oversize requests), plus the durability rule: a 200 survives kill -9."""

from __future__ import annotations

import gzip
import http.client
import json
import logging

import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import query
from tests.daemon import DaemonProcess

TRACE_JSON = {"resourceSpans": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "browser"}},
    {"key": "cicd.pipeline.run.id", "value": {"stringValue": "http-1"}}]},
    "scopeSpans": [{"spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                               "name": "click checkout", "kind": "SPAN_KIND_CLIENT",
                               "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
                               "status": {"code": 2, "message": "503"}, "unknownFutureField": {"x": 1}}]}]}]}


def post(daemon: DaemonProcess, path: str, body: bytes, content_type: str = "application/x-protobuf",
         method: str = "POST", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = daemon.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": content_type, **(headers or {})})
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def test_sdk_http_exporters_for_all_three_signals(daemon, db_path):
    base = f"http://{daemon.http_address}"
    resource = Resource.create({"service.name": "web", "cicd.pipeline.run.id": "http-sdk"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
    with tp.get_tracer("t").start_as_current_span("GET /cart"):
        lp = LoggerProvider(resource=resource)
        lp.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs")))
        logger = logging.getLogger("tests.http")
        logger.propagate = False
        handler = LoggingHandler(logger_provider=lp)
        logger.addHandler(handler)
        logger.error("cart service answered 503")
        logger.removeHandler(handler)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=60_000)
    mp = MeterProvider(resource=resource, metric_readers=[reader])
    mp.get_meter("t").create_counter("cart.errors").add(3)
    for provider in (tp, lp, mp):  # shutdown exports what is left, the counter once
        provider.shutdown()
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT SpanName, RunId FROM otel_traces") == [("GET /cart", "http-sdk")]
    (trace_id,) = query(db_path, "SELECT TraceId FROM otel_traces")[0]
    assert query(db_path, "SELECT Body, TraceId FROM otel_logs") == [("cart service answered 503", trace_id)]
    assert query(db_path, "SELECT MetricName, Value FROM otel_metrics_sum") == [("cart.errors", 3.0)]


def test_json_and_gzip_requests_and_their_answers(daemon, db_path):
    status, headers, body = post(daemon, "/v1/traces", json.dumps(TRACE_JSON).encode(), "application/json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {}  # an empty ExportTraceServiceResponse: everything accepted
    # a span with a bad id is rejected alone: partial success, in the request's encoding
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=bytes(16), span_id=b"\x01" * 8, name="zero trace id")
    spans.add(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, name="fine")
    status, headers, body = post(daemon, "/v1/traces", gzip.compress(req.SerializeToString()),
                                 headers={"Content-Encoding": "gzip"})
    assert status == 200 and headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(body)
    assert response.partial_success.rejected_spans == 1 and "trace" in response.partial_success.error_message
    assert daemon.terminate() == 0
    rows = query(db_path, "SELECT TraceId, SpanId, SpanKind, StatusCode, RunId FROM otel_traces ORDER BY SpanName")
    assert rows == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "Client", "Error", "http-1"),
                    ("02" * 16, "03" * 8, "Unspecified", "Unset", None)]


@pytest.mark.parametrize("path, body, content_type, method, expected", [
    ("/v1/traces", b"\xff\xff\xff garbage", "application/x-protobuf", "POST", 400),
    ("/v1/traces", b'{"resourceSpans": [', "application/json", "POST", 400),
    ("/v1/traces", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex"}]}]}]}', "application/json", "POST", 400),
    ("/v1/traces", b"{}", "text/plain", "POST", 415),
    ("/v1/traces", b"", "application/x-protobuf", "GET", 405),
    ("/v1/spans", b"", "application/x-protobuf", "POST", 404),
    ("/v1/spans", b"{}", "application/json", "POST", 404),
    ("/v1/traces", b"", "application/json", "GET", 405),
])
def test_bad_requests_get_the_specified_status(daemon, path, body, content_type, method, expected):
    """The error body is a google.rpc.Status in the request's own encoding (the spec: the response
    uses the request's Content-Type), whatever the status."""
    status, headers, payload = post(daemon, path, body, content_type, method)
    assert status == expected
    if content_type in ("application/x-protobuf", "application/json"):
        assert headers["content-type"] == content_type
        message = (json.loads(payload)["message"] if content_type == "application/json"
                   else status_pb2.Status.FromString(payload).message)
        assert message
    # the daemon keeps serving
    ok, _, _ = post(daemon, "/v1/traces", b"", "application/x-protobuf")
    assert ok == 200


def test_oversize_requests_get_413_also_after_gzip(db_path):
    daemon = DaemonProcess(db_path, ["--max-request-bytes", "4096"]).start()
    try:
        assert post(daemon, "/v1/logs", b"\0" * 5000)[0] == 413
        status, _, payload = post(daemon, "/v1/logs", gzip.compress(b"\0" * 100_000), headers={"Content-Encoding": "gzip"})
        assert status == 413 and b"decompressed" in payload
    finally:
        daemon.terminate()


def test_a_200_survives_kill_9(daemon, db_path):
    status, _, _ = post(daemon, "/v1/traces", json.dumps(TRACE_JSON).encode(), "application/json")
    assert status == 200
    daemon.kill()
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(1,)]


def test_an_idle_keep_alive_connection_does_not_hold_up_shutdown(daemon, db_path):
    host, port = daemon.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v1/traces", body=json.dumps(TRACE_JSON).encode(), headers={"Content-Type": "application/json"})
    assert conn.getresponse().read() == b"{}"
    assert daemon.terminate(timeout=30) == 0  # the connection is still open on our side
    conn.close()
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(1,)]
