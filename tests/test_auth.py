"""A daemon with a token (issue #14, Security): every receiver and the query API want
``authorization: Bearer <token>``, tried with the real Python and JavaScript SDK exporters and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_js_sdk import node_or_skip, run_js

TOKEN = "s3cret-token"
RUN = {"service.name": "svc", "cicd.pipeline.run.id": "auth"}


def _triage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_triage.cli", *args], capture_output=True, text=True,
                          timeout=60, env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None})


def _python_sdk(daemon: DaemonProcess, headers: dict[str, str] | None) -> tuple[SpanExportResult, SpanExportResult]:
    """One span over gRPC and one over HTTP with the real Python exporters; their export results."""
    results = []
    for name, exporter in (("grpc", otlp.span_exporter(daemon.address, headers=headers, timeout=5)),
                           ("http", HttpSpanExporter(endpoint=f"http://{daemon.http_address}/v1/traces",
                                                     headers=headers, timeout=5))):
        tp = TracerProvider(resource=Resource.create(RUN))  # the span is exported below, once
        with tp.get_tracer("t").start_as_current_span(f"python {name} {'with' if headers else 'without'}") as span:
            pass
        results.append(exporter.export([span]))
        exporter.shutdown()
    return results[0], results[1]


def test_a_token_is_required_of_every_client(tmp_path: Path, db_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    daemon = DaemonProcess(db_path, ["--auth-token-file", str(token_file)]).start()
    try:
        assert _python_sdk(daemon, None) == (SpanExportResult.FAILURE, SpanExportResult.FAILURE)
        assert _python_sdk(daemon, {"authorization": "Bearer wrong"}) == (
            SpanExportResult.FAILURE, SpanExportResult.FAILURE)
        assert _python_sdk(daemon, {"authorization": f"Bearer {TOKEN}"}) == (
            SpanExportResult.SUCCESS, SpanExportResult.SUCCESS)
        answer = requests.post(f"http://{daemon.http_address}/v1/traces", data=b"",
                               headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "authorization: Bearer" in answer.json()["message"]
        with pytest.raises(grpc.RpcError) as info:
            otlp.raw_export(daemon.address, "traces", b"")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

        refused = _triage("runs", "--daemon", daemon.address, env={"TRIAGE_AUTH_TOKEN": None})
        assert refused.returncode == 1 and "refused the request" in refused.stderr and "TRIAGE_AUTH_TOKEN" in refused.stderr
        by_env = _triage("runs", "--daemon", daemon.address, "--json", env={"TRIAGE_AUTH_TOKEN": TOKEN})
        assert by_env.returncode == 0 and '"auth"' in by_env.stdout
        by_file = _triage("stats", "--daemon", daemon.address, "--auth-token-file", str(token_file))
        assert by_file.returncode == 0, by_file.stderr

        if node_or_skip_quietly():
            for transport in ("proto", "json", "grpc"):
                endpoint = f"http://{daemon.address if transport == 'grpc' else daemon.http_address}"
                headers = {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{TOKEN}"}
                done = run_js(transport, endpoint, "auth-js", headers, spans=10)
                assert done.returncode == 0 and "error" not in done.stderr.lower(), done.stderr
            denied = run_js("proto", f"http://{daemon.http_address}", "auth-js-denied", spans=10)
            assert "Unauthorized" in denied.stderr or "401" in denied.stderr, denied.stderr
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert query(db_path, "SELECT SpanName FROM otel_traces WHERE RunId = 'auth' ORDER BY 1") == [
        ("python grpc with",), ("python http with",)]
    if node_or_skip_quietly():
        assert query(db_path, "SELECT ServiceName, count(*) FROM otel_traces WHERE RunId = 'auth-js' "
                              "GROUP BY 1 ORDER BY 1") == [("js-grpc", 10), ("js-json", 10), ("js-proto", 10)]
        assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'auth-js-denied'") == [(0,)]


def node_or_skip_quietly() -> bool:
    """The JS half runs where the JS SDK is installed (always under CI, where its absence fails)."""
    try:
        node_or_skip()
        return True
    except pytest.skip.Exception:
        return False


def test_a_non_loopback_address_needs_a_token_or_insecure(tmp_path: Path) -> None:
    args = ["serve", "--db", str(tmp_path / "t.duckdb"), "--listen", "0.0.0.0:0", "--listen-http", "off"]
    refused = _triage(*args, env={"TRIAGE_AUTH_TOKEN": None})
    assert refused.returncode == 1 and "refusing to listen on 0.0.0.0:0 without a token" in refused.stderr
    refused = _triage("serve", "--db", str(tmp_path / "t.duckdb"), "--listen", "127.0.0.1:0",
                      "--listen-http", "0.0.0.0:0", env={"TRIAGE_AUTH_TOKEN": None})
    assert refused.returncode == 1 and "refusing to listen on 0.0.0.0:0" in refused.stderr
    for extra in (["--insecure"], []):
        env = {} if extra else {"TRIAGE_AUTH_TOKEN": TOKEN}
        d = DaemonProcess(tmp_path / f"ok{len(extra)}.duckdb", ["--listen", "0.0.0.0:0", "--listen-http", "off", *extra])
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            d.start()
            assert d.terminate() == 0
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            if d.proc and d.proc.poll() is None:
                d.kill()
