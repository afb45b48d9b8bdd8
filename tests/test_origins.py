"""Failures that hide their origin, on span graphs built with the real SDK and sent through the real
daemon: a peer known only by its address (older net.* conventions), and a server span that lost its
trace context, stitched back to the client call it answered by address and route. The example shop's
scenarios (tests/e2e) cover the rest end to end with real processes."""

from __future__ import annotations

import json

import duckdb
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp
from tests.test_cli import triage

RUN = "origins-1"


def _service(address: str, name: str, run_id: str | None = None):
    attrs = {"service.name": name}
    if run_id:
        attrs["cicd.pipeline.run.id"] = run_id
    return otlp.tracer_provider(address, attrs)


def _explain(db) -> dict:
    return json.loads(triage("explain", RUN, "--db", str(db), "--json").stdout)


def _fail(span, message: str) -> None:
    span.record_exception(AssertionError(message))
    span.set_status(Status(StatusCode.ERROR, message))


def test_a_crashed_peer_is_named_by_the_service_that_served_its_address(daemon, db_path):
    runner, api, ledger = (_service(daemon.address, "runner", RUN), _service(daemon.address, "api"),
                           _service(daemon.address, "ledger"))
    rt, at, lt = runner.get_tracer("t"), api.get_tracer("t"), ledger.get_tracer("t")
    peer = {"net.peer.name": "10.0.0.7", "net.peer.port": 8443}
    with rt.start_as_current_span("suite", attributes={"test.suite.name": "shop"}):
        with rt.start_as_current_span("test balance", attributes={"test.case.name": "test_balance",
                                                                   "test.case.result.status": "pass"}):
            with at.start_as_current_span("GET /balance", kind=SpanKind.SERVER):
                with at.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes=peer):
                    with lt.start_as_current_span("GET /accounts", kind=SpanKind.SERVER,
                                                  attributes={"net.host.name": "10.0.0.7", "net.host.port": 8443}):
                        pass
        for name, target in (("test_pay", peer), ("test_refund", {"net.peer.name": "10.0.0.9", "net.peer.port": 1})):
            with rt.start_as_current_span(name, attributes={"test.case.name": name,
                                                            "test.case.result.status": "fail"}) as test:
                with at.start_as_current_span("POST /pay", kind=SpanKind.SERVER):
                    with at.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=target) as call:
                        call.record_exception(ConnectionResetError("connection reset by peer"))
                        call.set_status(Status(StatusCode.ERROR, "connection reset by peer"))
                _fail(test, "payment not booked")
    for tp in (runner, api, ledger):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert daemon.terminate() == 0
    tests = {t["test"]: t for t in _explain(db_path)["failed_tests"]}
    pay = tests["test_pay"]["root_cause"]
    assert pay["service"] == "ledger", tests["test_pay"]["candidates"]
    (named,) = [e for e in pay["evidence"] if e["kind"] == "peer-address"]
    assert named["detail"].startswith("10.0.0.7:8443 is ledger: 1 earlier call(s) to it were served by ledger")
    # A peer that never reported anywhere keeps its address.
    assert tests["test_refund"]["root_cause"]["service"] == "10.0.0.9:1"


def test_a_server_span_without_trace_context_is_stitched_to_the_call_it_answered(daemon, db_path):
    runner, api, stock = (_service(daemon.address, "runner", RUN), _service(daemon.address, "api"),
                          _service(daemon.address, "stock"))  # stock carries no run id
    rt, at, st = runner.get_tracer("t"), api.get_tracer("t"), stock.get_tracer("t")
    target = {"server.address": "127.0.0.1", "server.port": 9107, "url.full": "http://127.0.0.1:9107/reserve/42"}
    with rt.start_as_current_span("test reserve", attributes={"test.case.name": "test_reserve",
                                                               "test.case.result.status": "fail"}) as test:
        with at.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as server:
            with at.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=target) as call:
                # The callee got no traceparent: its span is the root of a trace of its own.
                with st.start_as_current_span(
                        "POST /reserve/<id>", kind=SpanKind.SERVER, context=Context(),
                        attributes={"server.address": "127.0.0.1", "server.port": 9107,
                                    "url.path": "/reserve/42", "http.route": "/reserve/<id>"}) as orphan:
                    orphan.record_exception(RuntimeError("hold limit exceeded"))
                    orphan.set_status(Status(StatusCode.ERROR))
                call.set_attribute("http.response.status_code", 500)
                call.set_status(Status(StatusCode.ERROR))
            server.set_status(Status(StatusCode.ERROR))
        _fail(test, "order not reserved")
    for tp in (runner, api, stock):
        assert tp.force_flush(10_000)
        tp.shutdown()
    assert daemon.terminate() == 0
    result = _explain(db_path)
    (failed,) = result["failed_tests"]
    cause = failed["root_cause"]
    assert cause["service"] == "stock", failed["candidates"]
    assert not any("never reported" in note for note in result["notes"]), result["notes"]
    assert "hold limit exceeded" in cause["reason"]
    (link,) = cause["inferred_links"]
    assert (link["rule"], link["confidence"]) == ("address", 0.95)
    assert link["span_id"] == cause["path_span_ids"][-1]
    assert cause["path"][-1] == "stock: POST /reserve/<id> (inferred link, confidence 0.95)"
    # The stitched trace is run membership, computed once with the run's facts (not per explanation).
    orphan_trace = f"{orphan.get_span_context().trace_id:032x}"
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        (traces,) = con.execute("SELECT traces FROM triage_facts_runs WHERE run_id = ?", [RUN]).fetchone()
        stitched = con.execute("SELECT child_trace FROM triage_facts_stitched WHERE run_id = ?", [RUN]).fetchall()
    finally:
        con.close()
    assert stitched == [(orphan_trace,)]
    assert orphan_trace in traces
