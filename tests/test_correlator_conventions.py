"""Test recognition beyond pytest-opentelemetry, on span graphs built with the real SDK and sent
through the real daemon: the OpenTelemetry test semantic conventions, pytest-otel, and the generic
ERROR-with-exception span; plus a consumer reached only through a span link."""

from __future__ import annotations

import json

from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests import otlp
from tests.test_cli import triage

RUN = "conv-1"


def _service(address: str, name: str, run_id: str | None = None):
    attrs = {"service.name": name}
    if run_id:
        attrs["cicd.pipeline.run.id"] = run_id
    return otlp.tracer_provider(address, attrs)


def _explain(db) -> dict:
    return json.loads(triage("explain", RUN, "--db", str(db), "--json").stdout)


def test_semconv_tests_and_a_consumer_reached_only_through_a_link(daemon, db_path):
    runner, api, worker = (_service(daemon.address, "runner", RUN), _service(daemon.address, "api"),
                           _service(daemon.address, "worker"))
    rt, at, wt = runner.get_tracer("t"), api.get_tracer("t"), worker.get_tracer("t")
    with rt.start_as_current_span("suite", attributes={"test.suite.name": "shop"}):
        with rt.start_as_current_span("test ok", attributes={"test.case.name": "shop.test_ok",
                                                              "test.case.result.status": "pass"}):
            with at.start_as_current_span("GET /ok", kind=SpanKind.SERVER):
                pass
        with rt.start_as_current_span("test notify", attributes={"test.case.name": "shop.test_notify",
                                                                  "test.case.result.status": "fail"}):
            with at.start_as_current_span("POST /notify", kind=SpanKind.SERVER):
                with at.start_as_current_span("publish", kind=SpanKind.PRODUCER) as producer:
                    producer_ctx = producer.get_span_context()
    # The consumer runs in its own trace, linked to the producer: the only way to reach it.
    with wt.start_as_current_span("process notifications", kind=SpanKind.CONSUMER, links=[Link(producer_ctx)],
                                  context=None) as consumer:
        consumer.record_exception(RuntimeError("template missing"))
        consumer.set_status(Status(StatusCode.ERROR, "template missing"))
    for tp in (runner, api, worker):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert daemon.terminate() == 0
    result = _explain(db_path)
    assert (result["tests"], result["passed_tests"]) == (2, 1)
    (failed,) = result["failed_tests"]
    assert failed["test"] == "shop.test_notify"
    assert failed["root_cause"]["service"] == "worker"
    assert failed["root_cause"]["path"][-1] == "worker: process notifications"
    assert result["suspects"][0]["service"] == "worker"


def test_pytest_otel_convention_and_a_test_that_is_simply_wrong(daemon, db_path):
    runner, api = _service(daemon.address, "runner", RUN), _service(daemon.address, "api")
    rt, at = runner.get_tracer("t"), api.get_tracer("t")
    with rt.start_as_current_span("Running test_price", attributes={"tests.name": "test_price",
                                                                    "tests.status": "failed",
                                                                    "tests.message": "assert 10 == 12"}):
        with at.start_as_current_span("GET /price", kind=SpanKind.SERVER):
            pass
    for tp in (runner, api):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert daemon.terminate() == 0
    (failed,) = _explain(db_path)["failed_tests"]
    assert failed["test"] == "test_price"
    assert failed["message"] == "assert 10 == 12"
    assert failed["root_cause"] is None and "test itself" in failed["no_cause_reason"]


def test_generic_error_span_with_exception_is_a_failed_test(daemon, db_path):
    runner, db_service = _service(daemon.address, "runner", RUN), _service(daemon.address, "db-gateway")
    rt, dt = runner.get_tracer("t"), db_service.get_tracer("t")
    with rt.start_as_current_span("checkout flow") as test:
        with dt.start_as_current_span("UPDATE stock", kind=SpanKind.SERVER) as deep:
            deep.record_exception(TimeoutError("lock wait timeout"))
            deep.set_status(Status(StatusCode.ERROR))
        test.record_exception(AssertionError("order not placed"))
        test.set_status(Status(StatusCode.ERROR, "order not placed"))
    for tp in (runner, db_service):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert daemon.terminate() == 0
    (failed,) = _explain(db_path)["failed_tests"]
    assert failed["test"] == "checkout flow" and failed["exception_type"] == "AssertionError"
    assert failed["root_cause"]["service"] == "db-gateway"
    assert "lock wait timeout" in failed["root_cause"]["reason"]
