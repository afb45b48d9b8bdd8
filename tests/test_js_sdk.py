"""The real OpenTelemetry JavaScript SDK (Node 20) against the real daemon, over all three transports.

Its OTLP/HTTP exporters stream the body with ``Transfer-Encoding: chunked`` and no Content-Length
(they got 411 before the receiver read chunked bodies); gRPC goes through @grpc/grpc-js. Each transport
must store every span, log record and data point with the same types as the Python SDK's round trip.
The packages are pinned in tests/js/package-lock.json; ``.ci/run`` installs them with ``npm ci``.
Without them the test is skipped locally and fails under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import query
from tests.daemon import DaemonProcess

JS = Path(__file__).parent / "js"
SPANS = 2001  # four full batches of 512 and a partial one, as in issue #11


def node_or_skip() -> str:
    node = shutil.which("node")
    if node and (JS / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        return node
    if os.environ.get("CI") == "true":
        pytest.fail("the JavaScript SDK is missing under CI: .ci/run must run `npm ci` in tests/js")
    pytest.skip("JavaScript SDK not installed (cd tests/js && npm ci)")


def run_js(transport: str, endpoint: str, run_id: str, env: dict[str, str] | None = None,
           spans: int = SPANS) -> subprocess.CompletedProcess:
    node = node_or_skip()
    return subprocess.run([node, "export.mjs", transport, endpoint, run_id, str(spans)], cwd=JS,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("transport, compression", [
    ("proto", "none"), ("json", "none"), ("proto", "gzip"), ("grpc", "none")])
def test_js_sdk_stores_every_item(db_path: Path, transport: str, compression: str) -> None:
    node_or_skip()
    daemon = DaemonProcess(db_path).start()
    try:
        endpoint = f"http://{daemon.address if transport == 'grpc' else daemon.http_address}"
        done = run_js(transport, endpoint, "js-run", {"OTEL_EXPORTER_OTLP_COMPRESSION": compression})
        assert done.returncode == 0, done.stderr
        assert "error" not in done.stderr.lower(), done.stderr  # the SDK logs failed exports at WARN/ERROR
        ids = json.loads(done.stdout.strip().splitlines()[-1])
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    service = f"js-{transport}"
    assert query(db_path, "SELECT count(*), count(DISTINCT SpanId), min(ServiceName), min(RunId) FROM otel_traces") == [
        (SPANS, SPANS, service, "js-run")]
    parent = query(db_path, """SELECT TraceId, SpanId, SpanKind, SpanAttributes, ScopeName, ScopeVersion
                               FROM otel_traces WHERE SpanName = 'js parent'""")
    assert parent[0][:3] == (ids["traceId"], ids["spanId"], "Server")
    assert json.loads(parent[0][3]) == {"s": "text", "i": 7, "f": 2.5, "b": True, "ls": ["a", "b"],
                                        "li": [1, 2], "lf": [0.5], "lb": [False]}
    assert parent[0][4:] == ("tests.js", "1.2.3")
    child = query(db_path, """SELECT ParentSpanId, SpanKind, StatusCode, StatusMessage FROM otel_traces
                              WHERE SpanName = 'js child'""")
    assert child == [(ids["spanId"], "Client", "Error", "it broke")]
    events = query(db_path, "SELECT Name, Attributes FROM otel_traces_events ORDER BY Timestamp")
    assert [e[0] for e in events] == ["retry", "exception"]
    assert json.loads(events[0][1]) == {"attempt": 2}
    assert json.loads(events[1][1])["exception.message"] == "boom"
    assert query(db_path, "SELECT count(*) FROM otel_traces WHERE SpanAttributes::JSON->>'n' IS NOT NULL") == [
        (SPANS - 2,)]
    logs = query(db_path, "SELECT Body, SeverityText, SeverityNumber, TraceId, SpanId, LogAttributes FROM otel_logs")
    assert len(logs) == 1
    assert logs[0][:5] == ("payment declined for order-1", "ERROR", 17, ids["traceId"], ids["spanId"])
    assert json.loads(logs[0][5]) == {"order.id": "order-1", "retries": 3}
    sums = dict(query(db_path, "SELECT MetricName, Value FROM otel_metrics_sum"))
    assert sums == {"requests": 3.0, "inflight": -2.0}
    assert query(db_path, "SELECT MetricName, Count, Sum FROM otel_metrics_histogram") == [("latency", 3, 555.0)]
    assert query(db_path, "SELECT MetricName, Value, Attributes FROM otel_metrics_gauge") == [
        ("pool.in_use", 4.0, '{"pool":"db"}')]
