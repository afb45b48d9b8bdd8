"""A small, deterministic test run built with the real OpenTelemetry SDK and sent to the real daemon.

Shaped like pytest-opentelemetry's output (a ``test run`` session root span, one span per test named
by its node id, ``::call`` phases) over three services: ``integration-tests`` → ``orders`` →
``payments``. Two tests fail: one because payments raises (an exception event and an ERROR log),
one because the test itself is wrong. User strings carry ``|``, backticks and HTML on purpose, so
every renderer's escaping is exercised. Shared by the golden, webhook, wait and report tests.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp

RUNNER = "integration-tests"


def _provider(address: str, service: str, run_id: str | None) -> Any:
    attrs = {"service.name": service}
    if run_id:
        attrs["cicd.pipeline.run.id"] = run_id
    return otlp.tracer_provider(address, attrs)


def _test(tracer: Any, nodeid: str) -> Any:
    return tracer.start_as_current_span(nodeid, attributes={"pytest.nodeid": nodeid, "pytest.span_type": "test"})


def send_run(address: str, run_id: str, *, end_session: bool = True, healthy_calls: int = 3) -> None:
    """Send the run; with ``end_session=False`` the session root span never ends (a run still going)."""
    runner, orders, payments = (_provider(address, RUNNER, run_id), _provider(address, "orders", None),
                                _provider(address, "payments", None))
    rt, ot, pt = runner.get_tracer("pytest"), orders.get_tracer("orders"), payments.get_tracer("payments")
    lp = LoggerProvider(resource=Resource.create({"service.name": "payments"}))
    lp.add_log_record_processor(BatchLogRecordProcessor(otlp.log_exporter(address)))
    log = logging.getLogger(f"tests.sharing.{run_id}")
    log.propagate = False
    handler = LoggingHandler(level=logging.INFO, logger_provider=lp)
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    session = rt.start_span("test run", attributes={"pytest.span_type": "run"})
    from opentelemetry import trace

    with trace.use_span(session, end_on_exit=False):
        with _test(rt, "tests/test_shop.py::test_browse_catalogue") as t:
            with rt.start_as_current_span("tests/test_shop.py::test_browse_catalogue::call",
                                          attributes={"pytest.span_type": "test"}):
                with ot.start_as_current_span("GET /catalogue", kind=SpanKind.SERVER):
                    for i in range(healthy_calls):
                        with ot.start_as_current_span(f"SELECT items page {i}", kind=SpanKind.CLIENT):
                            pass
            t.set_status(Status(StatusCode.OK))
        with _test(rt, "tests/test_shop.py::test_pay[card|visa]") as t:
            with rt.start_as_current_span("tests/test_shop.py::test_pay[card|visa]::call",
                                          attributes={"pytest.span_type": "test"}):
                with ot.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server:
                    with ot.start_as_current_span("SELECT stock", kind=SpanKind.CLIENT):
                        pass
                    with ot.start_as_current_span("POST /charges", kind=SpanKind.CLIENT,
                                                  attributes={"http.response.status_code": 500,
                                                              "server.address": "payments"}) as call:
                        with pt.start_as_current_span("POST /charges", kind=SpanKind.SERVER,
                                                      attributes={"http.response.status_code": 500}) as charge:
                            with pt.start_as_current_span("ledger.write", kind=SpanKind.INTERNAL) as ledger:
                                log.error("ledger rejected charge <order-7> | card `****4242`")
                                try:
                                    raise RuntimeError("ledger locked: <script>alert(1)</script> | `rm -rf`")
                                except RuntimeError as exc:
                                    ledger.record_exception(exc)
                                ledger.set_status(Status(StatusCode.ERROR, "ledger locked"))
                            charge.set_status(Status(StatusCode.ERROR))
                        call.set_status(Status(StatusCode.ERROR, "HTTP 500"))
                    server.set_status(Status(StatusCode.ERROR, "payment failed"))
            t.add_event("exception", {"exception.type": "AssertionError",
                                      "exception.message": "assert 500 == 201 | body: `{\"error\": \"<b>payment failed</b>\"}`"})
            t.set_status(Status(StatusCode.ERROR, "<class 'AssertionError'>: assert 500 == 201"))
        with _test(rt, "tests/test_shop.py::test_discount") as t:
            with rt.start_as_current_span("tests/test_shop.py::test_discount::call",
                                          attributes={"pytest.span_type": "test"}):
                with ot.start_as_current_span("GET /discount", kind=SpanKind.SERVER):
                    pass
            t.add_event("exception", {"exception.type": "AssertionError",
                                      "exception.message": "assert 10 == 12"})
            t.set_status(Status(StatusCode.ERROR, "<class 'AssertionError'>: assert 10 == 12"))
    if end_session:
        session.set_status(Status(StatusCode.ERROR))
        session.end()
    log.removeHandler(handler)
    for tp in (runner, orders, payments):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert lp.force_flush(10_000)
    lp.shutdown()


HEX_ID = re.compile(r"\b(?:[0-9a-f]{32}|[0-9a-f]{16})\b")


def normalise(explanation: dict[str, Any]) -> dict[str, Any]:
    """Ids → stable placeholders by first appearance; notes about time ("ended 3 s ago") dropped."""
    import json

    seen: dict[str, str] = {}

    def sub(m: re.Match) -> str:
        kind = "trace" if len(m.group(0)) == 32 else "span"
        return seen.setdefault(m.group(0), f"{kind}-{len(seen) + 1:02d}")

    out = json.loads(HEX_ID.sub(sub, json.dumps(explanation)))
    out["notes"] = [n for n in out["notes"] if " ago" not in n]
    return out
