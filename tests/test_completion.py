"""Run completion, `--notify` webhooks and `triage wait`, with the real daemon and a real HTTP receiver.

Completion rules (docs/sharing.md, "Run completion"): the session span ended (then the data settles), a
caller marked it, or the run was quiet for --quiet-period. Webhook receivers that are down, slow or
answer 500 are retried; none of it blocks or loses ingestion.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import jsonschema
import pytest
from otel_triage.proto import triage_pb2, triage_pb2_grpc

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.sharing_run import send_run
from tests.test_cli import triage
from tests.test_receiver_errors import _request
from tests.webhook import Receiver

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "correlator" / "explain.schema.json").read_text())


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def test_session_end_completes_the_run_and_the_webhook_gets_the_explain_json(db_path, receiver):
    daemon = DaemonProcess(db_path, ["--notify", receiver.url, "--quiet-period", "120"]).start()
    try:
        send_run(daemon.address, "done-1")  # the session span ends: complete once the data settles
        # `wait` blocks until then (the quiet period of 120 s is far away: the session end decides).
        waited = triage("wait", "done-1", "--daemon", daemon.address, "--format", "json", "--timeout", "100")
        assert "complete (session-ended)" in waited.stderr
        explained = json.loads(waited.stdout)
        jsonschema.validate(explained, SCHEMA)
        assert [t["test"] for t in explained["failed_tests"]] == [
            "tests/test_shop.py::test_pay[card|visa]", "tests/test_shop.py::test_discount"]
        receiver.wait_for(lambda r: len(r.answered_ok) == 1)
        (hook,) = receiver.answered_ok
        jsonschema.validate(hook["body"], SCHEMA)
        assert hook["body"]["run_id"] == "done-1" and hook["headers"]["X-Triage-Run-Id"] == "done-1"
        assert hook["headers"]["Content-Type"] == "application/json"
        assert hook["body"]["failed_tests"] == explained["failed_tests"]
        failing = triage("wait", "done-1", "--daemon", daemon.address, "--fail-on-failures", check=False)
        assert failing.returncode == 3 and "FAILED tests/test_shop.py::test_pay[card|visa]" in failing.stdout
        timed_out = triage("wait", "never-1", "--daemon", daemon.address, "--timeout", "1", check=False)
        assert timed_out.returncode == 124 and "not complete after 1 s" in timed_out.stderr
    finally:
        assert daemon.terminate() == 0
    # The completion is in the file: `wait --db` answers after the daemon is gone.
    offline = triage("wait", "done-1", "--db", str(db_path), "--format", "markdown")
    assert "complete (session-ended)" in offline.stderr and "| failed test | root cause |" in offline.stdout
    assert query(db_path, "SELECT Reason, NotifiedUnixNano IS NOT NULL FROM triage_run_completion") == [
        ("session-ended", True)]
    # The daemon computed the explanation when the run completed and kept it: the webhook, `wait` and
    # `explain --db` read that one.
    ((kept,),) = query(db_path, "SELECT explanation FROM triage_explanations WHERE run_id = 'done-1'")
    assert json.loads(kept) == explained == hook["body"]
    assert triage("explain", "done-1", "--db", str(db_path), "--json").stdout == kept + "\n"

    # A restart does not notify done-1 again: the next delivery is the new run, completed by quiet.
    daemon = DaemonProcess(db_path, ["--notify", receiver.url, "--quiet-period", "1"]).start()
    try:
        send_run(daemon.address, "quiet-1", end_session=False)
        receiver.wait_for(lambda r: len(r.answered_ok) == 2)
        assert receiver.answered_ok[1]["body"]["run_id"] == "quiet-1"
        status = triage("wait", "quiet-1", "--daemon", daemon.address, "--timeout", "60")
        assert "complete (quiet)" in status.stderr
    finally:
        assert daemon.terminate() == 0
    assert [e["body"]["run_id"] for e in receiver.received] == ["done-1", "quiet-1"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failing_receivers_are_retried_and_never_block_ingestion(db_path):
    slow = Receiver(behaviour=lambda n: (200, 5.0)).start()  # always past the 0.5 s timeout
    flaky = Receiver(behaviour=lambda n: (500, 0.0) if n == 1 else (200, 0.0)).start()
    down = f"http://127.0.0.1:{_closed_port()}/hook"  # nobody listens: connection refused
    daemon = DaemonProcess(db_path, ["--notify", slow.url, "--notify", down, "--notify", flaky.url,
                                     "--notify-timeout", "0.5", "--notify-attempts", "3",
                                     "--quiet-period", "1"]).start()
    try:
        send_run(daemon.address, "hooked-1")
        slow.got_request.wait(120)
        assert slow.got_request.is_set()
        # The notifier is now stuck on the slow receiver: ingestion goes on, every export committed.
        tp = otlp.tracer_provider(daemon.address, {"service.name": "loader", "cicd.pipeline.run.id": "during-1"})
        tracer = tp.get_tracer("t")
        for i in range(3000):
            with tracer.start_as_current_span(f"op {i % 7}"):
                pass
        assert tp.force_flush(60_000)
        tp.shutdown()
        flaky.wait_for(lambda r: len(r.answered_ok) >= 1)
        assert len(flaky.received) >= 2 and flaky.answered_ok[0]["body"]["run_id"] == "hooked-1"
        assert len(slow.received) >= 2  # retried after each timeout
    finally:
        assert daemon.terminate() == 0
        slow.stop()
        flaky.stop()
    assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'during-1'") == [(3000,)]
    log = daemon.stderr
    assert f"giving up on run hooked-1 for {slow.url} after 3 attempts" in log, log
    assert f"giving up on run hooked-1 for {down} after 3 attempts: ConnectionRefusedError" in log, log
    assert "failed (HTTP 500); retry 1/2" in log, log


def test_semconv_suite_end_and_mark_complete_in_process(db_path):
    """An OpenTelemetry test-suite root span with a final test.suite.run.status ends the run; and the
    entry point other importers (JUnit) call, mark_complete, records and answers at once."""
    from otel_triage.cli.serve import Daemon, ServeConfig

    daemon = Daemon(ServeConfig(db=str(db_path), listen="127.0.0.1:0", quiet_period=300))
    port = daemon.start()
    address = f"127.0.0.1:{port}"
    try:
        tp = otlp.tracer_provider(address, {"service.name": "runner", "cicd.pipeline.run.id": "suite-1"})
        tracer = tp.get_tracer("t")
        with tracer.start_as_current_span("suite", attributes={"test.suite.name": "shop"}) as suite:
            with tracer.start_as_current_span("test ok", attributes={"test.case.name": "shop.ok",
                                                                      "test.case.result.status": "pass"}):
                pass
            suite.set_attribute("test.suite.run.status", "success")
        assert tp.force_flush(10_000)
        tp.shutdown()
        waited = triage("wait", "suite-1", "--daemon", address, "--timeout", "100")
        assert "complete (session-ended)" in waited.stderr and "all 1 tests passed" in waited.stdout

        done = daemon.completion.mark_complete("junit-7", "junit-report")
        assert done.reason == "junit-report"
        assert daemon.completion.mark_complete("junit-7", "again") == done  # idempotent
        assert "complete (junit-report)" in triage("wait", "junit-7", "--daemon", address, "--timeout", "5",
                                                   check=False).stderr
    finally:
        daemon.stop()
    assert query(db_path, "SELECT RunId, Reason FROM triage_run_completion ORDER BY RunId") == [
        ("junit-7", "junit-report"), ("suite-1", "session-ended")]


def test_many_waiting_clients_never_starve_ingestion(db_path):
    """More `wait` calls than the daemon has RPC threads: the excess is answered at once (clients
    poll), so exports still get threads and the held calls still learn of completion."""
    daemon = DaemonProcess(db_path, ["--quiet-period", "1"]).start()
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            stub = triage_pb2_grpc.TriageStub(channel)
            waits = [stub.RunStatus.future(triage_pb2.RunStatusRequest(run_id="r", wait_seconds=60), timeout=90)
                     for _ in range(40)]
            otlp.export_request(daemon.address, _request(3), timeout=30)  # run "r": answered, committed
            answers = [w.result() for w in waits]
        held = [a for a in answers if a.complete]
        assert held and all(a.reason == "quiet" for a in held)
        assert len(answers) - len(held) >= 40 - 8  # beyond the cap: answered at once, still open
    finally:
        assert daemon.terminate() == 0
    assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'r'") == [(3,)]


def test_a_run_not_delivered_before_shutdown_is_delivered_by_the_next_start(db_path, receiver):
    down = f"http://127.0.0.1:{_closed_port()}/hook"
    daemon = DaemonProcess(db_path, ["--notify", down, "--notify-attempts", "1000", "--quiet-period", "1"]).start()
    try:
        send_run(daemon.address, "pending-1", end_session=False)
        assert "complete (quiet)" in triage("wait", "pending-1", "--daemon", daemon.address, "--timeout", "60").stderr
    finally:
        assert daemon.terminate() == 0  # stops while still retrying the unreachable URL
    assert query(db_path, "SELECT NotifiedUnixNano FROM triage_run_completion") == [(None,)]
    daemon = DaemonProcess(db_path, ["--notify", receiver.url]).start()
    try:
        receiver.wait_for(lambda r: len(r.answered_ok) == 1)
        assert receiver.answered_ok[0]["body"]["run_id"] == "pending-1"
    finally:
        assert daemon.terminate() == 0
    assert query(db_path, "SELECT NotifiedUnixNano IS NOT NULL FROM triage_run_completion") == [(True,)]


def test_services_still_exporting_metrics_do_not_hold_a_finished_session_open(db_path):
    """Services keep exporting metrics after the tests (a periodic reader never stops): the session
    still settles 5 s after its last spans, not after --quiet-period (`pytest --triage` waits on it)."""
    import time

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    daemon = DaemonProcess(db_path, ["--quiet-period", "120"]).start()
    reader = PeriodicExportingMetricReader(otlp.metric_exporter(daemon.address), export_interval_millis=300)
    meters = MeterProvider(metric_readers=[reader], resource=Resource.create(
        {"service.name": "inventory", "cicd.pipeline.run.id": "busy-1"}))
    try:
        meters.get_meter("m").create_observable_gauge("pool.used", callbacks=[lambda _: []])
        counter = meters.get_meter("m").create_counter("requests")
        tp = otlp.tracer_provider(daemon.address, {"service.name": "runner", "cicd.pipeline.run.id": "busy-1"})
        with tp.get_tracer("t").start_as_current_span("test run", attributes={"pytest.span_type": "run"}):
            counter.add(1)
        assert tp.force_flush(10_000)
        tp.shutdown()
        started = time.monotonic()
        waited = triage("wait", "busy-1", "--daemon", daemon.address, "--timeout", "20", check=False)
        took = time.monotonic() - started
        assert "complete (session-ended)" in waited.stderr, waited.stderr
        assert took < 20, took  # without the fix: the 120 s quiet period (cut off by --timeout 20)
        counter.add(1)  # the reader really was exporting all along
    finally:
        meters.shutdown()
        daemon.terminate()
    assert query(db_path, "SELECT count(*) > 3 FROM otel_metrics_sum WHERE RunId = 'busy-1'") == [(True,)]


def test_a_held_wait_is_answered_when_the_daemon_stops_not_after_its_grace_period(db_path):
    """`triage wait --daemon` holds a RunStatus call up to 55 s; SIGTERM used to wait out gRPC's 30 s
    grace for it, and the waiting CI job with it."""
    d = DaemonProcess(db_path).start()
    try:
        waiter = subprocess.Popen([sys.executable, "-m", "otel_triage.cli", "wait", "never-sent", "--daemon", d.address,
                                   "--timeout", "120"], stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)  # its call is held now
        started = time.monotonic()
        assert d.terminate() == 0
        stopped = time.monotonic() - started
        _, err = waiter.communicate(timeout=60)
        answered = time.monotonic() - started
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
    assert stopped < 15 and answered < 15, (stopped, answered)
    assert waiter.returncode == 1 and "no triage daemon answers" in err, err
