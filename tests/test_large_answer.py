"""An explanation larger than gRPC's default 4 MB message limit still reaches `explain --daemon`.

A run of 300 failed tests, each failing with a 12 KB exception message (a stack dump, a response
body: real messages get this long), is sent with the real SDK through the real daemon. Its JSON
explanation is several MB: the daemon sends it, the CLI must accept it, and it must equal what
`explain --db` prints from the same file once the daemon has stopped.
"""

from __future__ import annotations

import json

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp
from tests.daemon import DaemonProcess
from tests.test_cli import triage

RUN = "big-answer"
FAILED = 300


def _send(address: str) -> None:
    runner = otlp.tracer_provider(address, {"service.name": "integration-tests", "cicd.pipeline.run.id": RUN})
    service = otlp.tracer_provider(address, {"service.name": "orders"})
    rt, ot = runner.get_tracer("pytest"), service.get_tracer("orders")
    session = rt.start_span("test run", attributes={"pytest.span_type": "run"})
    with trace.use_span(session, end_on_exit=True):
        for i in range(FAILED):
            nodeid = f"tests/test_big.py::test_case_{i:03d}"
            with rt.start_as_current_span(nodeid, attributes={"pytest.nodeid": nodeid,
                                                              "pytest.span_type": "test"}) as test:
                with ot.start_as_current_span("POST /orders", kind=SpanKind.SERVER,
                                              attributes={"http.response.status_code": 500}) as server:
                    message = f"order {i} rejected: " + "".join(f"frame {k}: at orders.handle(line {k})\n"
                                                                 for k in range(320))
                    server.record_exception(RuntimeError(message))
                    server.set_status(Status(StatusCode.ERROR, message[:200]))
                test.set_status(Status(StatusCode.ERROR, f"AssertionError: order {i} not accepted"))
    for provider in (runner, service):
        provider.shutdown()


def test_an_explanation_over_4_mb_reaches_the_cli(tmp_path):
    db = tmp_path / "big.duckdb"
    daemon = DaemonProcess(db).start()
    try:
        _send(daemon.address)
        triage("wait", RUN, "--daemon", daemon.address, "--timeout", "120")
        over_grpc = triage("explain", RUN, "--daemon", daemon.address, "--json").stdout
    finally:
        assert daemon.terminate() == 0
    assert len(over_grpc.encode()) > 4 * 2**20, len(over_grpc)
    answer = json.loads(over_grpc)
    assert len(answer["failed_tests"]) == FAILED
    assert {f["root_cause"]["service"] for f in answer["failed_tests"]} == {"orders"}
    assert json.loads(triage("explain", RUN, "--db", str(db), "--json").stdout) == answer
