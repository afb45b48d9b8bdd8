"""TLS on both receivers and the query API (issue #14, Security), with the real Python and JavaScript
SDK exporters and the CLI: a client trusting the daemon's CA gets in; one trusting another CA, or
speaking plain text to the TLS ports, fails with a clear error, and the daemon keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.pki import Pki, make_pki
from tests.test_auth import node_or_skip_quietly
from tests.test_js_sdk import run_js

CERT_ENV = "OTEL_EXPORTER_OTLP_CERTIFICATE"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _triage(*args: str, env: dict[str, str | None] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    merged = {**os.environ, "TRIAGE_TLS_CA": None, **(env or {})}
    return subprocess.run([sys.executable, "-m", "otel_triage.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={k: v for k, v in merged.items() if v is not None})


def _export(exporter: object, name: str) -> SpanExportResult:
    tp = TracerProvider(resource=Resource.create({"service.name": "svc", "cicd.pipeline.run.id": "tls"}))
    with tp.get_tracer("t").start_as_current_span(name) as span:
        pass
    try:
        return exporter.export([span])  # type: ignore[attr-defined]
    finally:
        exporter.shutdown()  # type: ignore[attr-defined]


def _python_sdk(daemon: DaemonProcess, scheme: str, ca: Path | None, tag: str,
                monkeypatch: pytest.MonkeyPatch) -> tuple[SpanExportResult, SpanExportResult]:
    """One span over gRPC and one over HTTP; the exporters read the CA from OTEL_EXPORTER_OTLP_CERTIFICATE."""
    # requests lets these override the session's `verify` the exporter sets (psf/requests#3829):
    # where they are set, the exporter would trust the system bundle instead of OTEL_EXPORTER_OTLP_CERTIFICATE.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if ca is None:
        monkeypatch.delenv(CERT_ENV, raising=False)
    else:
        monkeypatch.setenv(CERT_ENV, str(ca))
    # A client that cannot get in retries until its timeout: short for those, generous for the others.
    timeout = 30 if tag in ("trusted", "after") else 3
    grpc_exporter = GrpcSpanExporter(endpoint=f"{scheme}://{daemon.address}", insecure=scheme == "http",
                                     timeout=timeout)
    http_exporter = HttpSpanExporter(endpoint=f"{scheme}://{daemon.http_address}/v1/traces", timeout=timeout)
    return _export(grpc_exporter, f"grpc {tag}"), _export(http_exporter, f"http {tag}")


def test_tls_on_every_port_with_the_real_sdks_and_the_cli(pki: Pki, db_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = DaemonProcess(db_path, ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]).start()
    try:
        assert "(TLS)" in daemon.stderr
        ok = (SpanExportResult.SUCCESS, SpanExportResult.SUCCESS)
        failed = (SpanExportResult.FAILURE, SpanExportResult.FAILURE)
        assert _python_sdk(daemon, "https", pki.ca, "trusted", monkeypatch) == ok
        assert _python_sdk(daemon, "https", pki.other_ca, "untrusted", monkeypatch) == failed
        assert _python_sdk(daemon, "http", None, "plaintext", monkeypatch) == failed

        plain = requests.post(f"http://{daemon.http_address}/v1/traces", data=b"x",
                              headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert plain.status_code == 400 and "speaks TLS only" in plain.text and "https://" in plain.text
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(f"https://{daemon.http_address}/v1/traces", data=b"", verify=str(pki.other_ca), timeout=10)
        secure = requests.post(f"https://{daemon.http_address}/v1/traces", data=b"",
                               headers={"Content-Type": "application/x-protobuf"}, verify=str(pki.ca), timeout=10)
        assert secure.status_code == 200

        by_flag = _triage("runs", "--daemon", daemon.address, "--tls-ca", str(pki.ca), "--json")
        assert by_flag.returncode == 0 and '"tls"' in by_flag.stdout, by_flag.stderr
        by_env = _triage("stats", "--daemon", daemon.address, "--json", env={"TRIAGE_TLS_CA": str(pki.ca)})
        assert by_env.returncode == 0, by_env.stderr
        plaintext_cli = _triage("runs", "--daemon", daemon.address)
        assert plaintext_cli.returncode == 1 and "--tls-ca" in plaintext_cli.stderr, plaintext_cli.stderr
        wrong_ca = _triage("runs", "--daemon", daemon.address, "--tls-ca", str(pki.other_ca))
        assert wrong_ca.returncode == 1 and "TLS with the triage daemon" in wrong_ca.stderr, wrong_ca.stderr
        missing_ca = _triage("runs", "--daemon", daemon.address, "--tls-ca", str(pki.ca) + ".nope")
        assert missing_ca.returncode == 2 and "No such file" in missing_ca.stderr

        js = node_or_skip_quietly()
        if js:
            for transport in ("proto", "json", "grpc"):
                endpoint = f"https://{daemon.address if transport == 'grpc' else daemon.http_address}"
                done = run_js(transport, endpoint, "tls-js", {CERT_ENV: str(pki.ca)}, spans=10)
                assert done.returncode == 0 and "error" not in done.stderr.lower(), done.stderr
                refused = run_js(transport, endpoint, "tls-js-untrusted",
                                 {CERT_ENV: str(pki.other_ca), "OTEL_EXPORTER_OTLP_TIMEOUT": "3000"}, spans=10)
                assert "certificate" in refused.stderr.lower() or "handshake" in refused.stderr.lower(), (
                    transport, refused.stderr)
        # Still serving after all the failed clients.
        assert _python_sdk(daemon, "https", pki.ca, "after", monkeypatch) == ok
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert query(db_path, "SELECT SpanName FROM otel_traces WHERE RunId = 'tls' ORDER BY 1") == [
        ("grpc after",), ("grpc trusted",), ("http after",), ("http trusted",)]
    if js:
        assert query(db_path, "SELECT ServiceName, count(*) FROM otel_traces WHERE RunId = 'tls-js' "
                              "GROUP BY 1 ORDER BY 1") == [("js-grpc", 10), ("js-json", 10), ("js-proto", 10)]
        assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'tls-js-untrusted'") == [(0,)]


def test_a_bad_certificate_or_key_stops_serve_before_it_listens(pki: Pki, tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    cases = {
        "missing cert": (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(pki.key)], "No such file"),
        "missing key": (["--tls-cert", str(pki.cert), "--tls-key", str(tmp_path / "nope.key")], "No such file"),
        "not PEM": (["--tls-cert", str(not_pem), "--tls-key", str(pki.key)], "not a PEM file"),
        "a key as the cert": (["--tls-cert", str(pki.key), "--tls-key", str(pki.key)], "cannot load them"),
        "mismatched pair": (["--tls-cert", str(pki.cert), "--tls-key", str(pki.other_key)], "is not the key of"),
        "cert alone": (["--tls-cert", str(pki.cert)], "go together"),
        "key alone": (["--tls-key", str(pki.key)], "go together"),
    }
    for name, (args, words) in cases.items():
        db = tmp_path / f"{name}.duckdb"
        done = _triage("serve", "--db", str(db), "--listen", "127.0.0.1:0", "--listen-http", "127.0.0.1:0", *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], (name, done.stderr)
        assert "listening" not in done.stderr and not db.exists(), name


def test_tls_without_a_token_still_refuses_a_non_loopback_address(pki: Pki, tmp_path: Path) -> None:
    tls = ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
    refused = _triage("serve", "--db", str(tmp_path / "t.duckdb"), "--listen", "0.0.0.0:0", "--listen-http", "off",
                      *tls, env={"TRIAGE_AUTH_TOKEN": None})
    assert refused.returncode == 1 and "refusing to listen on 0.0.0.0:0 without a token" in refused.stderr
    d = DaemonProcess(tmp_path / "ok.duckdb", ["--listen", "0.0.0.0:0", "--listen-http", "off", "--insecure", *tls])
    try:
        d.start()
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
