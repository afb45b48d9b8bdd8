"""Run completion, `triage wait` and `--notify` webhooks, with the real daemon and a real HTTP
receiver on loopback that can be down, slow or failing: retried, never blocking ingestion."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_cli import triage

pytestmark = pytest.mark.timeout(120)


class Webhook:
    """A loopback receiver whose first answers are scripted: 'ok', 'fail' (500) or 'slow' (sleeps)."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.received: list[dict] = []
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                action = hook.script.pop(0) if hook.script else "ok"
                if action == "slow":
                    time.sleep(2.0)
                if action == "fail":
                    self.send_response(500)
                    self.end_headers()
                    return
                if action == "ok":
                    hook.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_session(address: str, run_id: str, *, fail: bool) -> None:
    """A pytest-opentelemetry-shaped session: the `test run` span arrives last, when it ends."""
    runner = otlp.tracer_provider(address, {"service.name": "runner", "cicd.pipeline.run.id": run_id})
    api = otlp.tracer_provider(address, {"service.name": "api"})
    rt, at = runner.get_tracer("t"), api.get_tracer("t")
    with rt.start_as_current_span("test run", attributes={"pytest.span_type": "run"}):
        with rt.start_as_current_span("test_pay", attributes={"test.case.name": "test_pay",
                                                              "test.case.result.status": "fail" if fail else "pass"}):
            with at.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as span:
                if fail:
                    span.record_exception(RuntimeError("card processor down"))
                    span.set_status(Status(StatusCode.ERROR, "card processor down"))
        api.force_flush()
    for tp in (api, runner):
        assert tp.force_flush(10_000)
        tp.shutdown()


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_session_end_completes_the_run_wait_prints_it_and_the_webhook_gets_it(db_path):
    hook = Webhook(["fail", "slow", "ok"])  # a 500, then a timeout, then accepted
    daemon = DaemonProcess(db_path, ["--notify", hook.url, "--notify-timeout", "1", "--quiet-period", "300"]).start()
    try:
        waiting = triage("wait", "pay-1", "--daemon", daemon.address, "--timeout", "1", check=False)
        assert waiting.returncode == 2 and "has no data yet" in waiting.stderr
        run_session(daemon.address, "pay-1", fail=True)
        done = triage("wait", "pay-1", "--daemon", daemon.address, "--timeout", "30", "--format", "json",
                      "--fail-on-failures", check=False)
        assert done.returncode == 1, done.stderr  # complete, with a failed test, and we asked
        assert "complete: the test session span ended" in done.stderr
        assert json.loads(done.stdout)["failed_tests"][0]["root_cause"]["service"] == "api"
        wait_for(lambda: hook.received, timeout=60)
        assert hook.attempts == 3
        assert hook.received[0]["run_id"] == "pay-1" and hook.received[0]["schema_version"] == 1
    finally:
        assert daemon.terminate() == 0
        hook.close()
    # Completion is in the file: wait --db answers at once, and a restart does not notify again.
    out = triage("wait", "pay-1", "--db", str(db_path), "--timeout", "0", "--format", "markdown")
    assert out.stdout.startswith("### ❌ triage: run pay-1: 1 of 1 tests failed")
    hook2 = Webhook([])
    daemon = DaemonProcess(db_path, ["--notify", hook2.url, "--quiet-period", "0.5"]).start()
    time.sleep(2)
    assert daemon.terminate() == 0
    hook2.close()
    assert hook2.attempts == 0


def test_a_dead_webhook_is_given_up_on_and_never_blocks_ingestion(db_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    daemon = DaemonProcess(db_path, ["--notify", dead, "--notify-attempts", "3", "--notify-timeout", "0.5",
                                     "--quiet-period", "0.5"]).start()
    run_session(daemon.address, "quiet-1", fail=False)
    # While the notifier retries the dead receiver, ingestion goes on and commits.
    for i in range(5):
        run_session(daemon.address, f"more-{i}", fail=False)
    wait_for(lambda: "gave up notifying" in daemon.stderr, timeout=60)
    assert daemon.terminate() == 0
    assert "after 3 attempts" in daemon.stderr and "Connection refused" in daemon.stderr
    assert query(db_path, "SELECT count(DISTINCT RunId) FROM otel_traces WHERE RunId IS NOT NULL") == [(6,)]
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(18,)]


def test_a_quiet_run_completes_after_the_quiet_period(db_path):
    daemon = DaemonProcess(db_path, ["--quiet-period", "1"]).start()
    try:
        provider = otlp.tracer_provider(daemon.address, {"service.name": "runner", "cicd.pipeline.run.id": "q-1"})
        with provider.get_tracer("t").start_as_current_span("test_x", attributes={"test.case.name": "test_x",
                                                                                   "test.case.result.status": "pass"}):
            pass
        provider.shutdown()
        out = triage("wait", "q-1", "--daemon", daemon.address, "--timeout", "30")
        assert "complete: no new data for 1 s" in out.stderr
        assert "all 1 tests passed" in out.stdout
    finally:
        assert daemon.terminate() == 0
