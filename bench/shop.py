"""A synthetic shop under integration test, as OTLP: what bench/explain.py (and bench/facts.py,
bench/clickhouse.py, bench/history.py) explain.

ExportTraceServiceRequests shaped like pytest-opentelemetry plus instrumented HTTP services (gateway,
auth, orders, inventory, payments, notifier via a broker with span links; a third-party bank never
reports), with logs; ~8 requests (~100 spans) per test; a share of tests fail with an error that
starts in inventory or payments and is relayed up to the test. ``build_chunk`` generates one part
of a run and decodes it as the daemon would (``collector.decode``); ``dataset.py`` stores them.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector.decode import decode_logs, decode_traces

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z; runs are a day apart, all long finished
DAY = 86_400 * 10**9
MS = 1_000_000



INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
UNSET, OK, ERROR = 0, 1, 2
WSGI, REQUESTS, DBAPI = ("opentelemetry.instrumentation.wsgi", "opentelemetry.instrumentation.requests",
                         "opentelemetry.instrumentation.dbapi")
PYTEST = "pytest-opentelemetry"
UA = "python-requests/2.34.2"
PORTS = {"gateway": 8080, "auth": 8081, "orders": 8082, "inventory": 8083, "payments": 8084,
         "broker": 8085, "bank": 443}
AREAS = ("orders", "stock", "quote", "auth", "checkout", "refunds", "catalog", "notifications")
VERBS = ("create", "read", "update", "list", "cancel", "retry", "reject", "accept")
# Endpoints the tests call through the gateway, and how often.
ENDPOINTS = ("me", "stock", "quote", "order")
WEIGHTS = (2, 3, 3, 2)
STACK = "".join(f'  File "/srv/shop/{{svc}}/handlers.py", line {100 + i}, in handler_{i}\n    result = step_{i}(request)\n'
                for i in range(12))


def test_resource(run_id: str) -> dict[str, Any]:
    return {
        "telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.2", "service.instance.id": f"runner-{run_id}",
        "cicd.pipeline.run.id": run_id, "service.name": "integration-tests",
        "process.runtime.name": "cpython", "process.runtime.version": "3.11.7",
        "process.pid": 29252, "process.executable.name": "python3",
        "process.command_line": "/ci/.venv/bin/python3 -m pytest tests/integration --export-traces -q",
        "process.owner": "ci", "service.version": "3e2cb04cf7d62c0e885f81f7bc974407f1e73a30",
    }


def service_resource(service: str) -> dict[str, Any]:
    # Services under test do not know the run id: they join the run through the test's trace.
    return {
        "telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.2", "service.instance.id": f"{service}-4242",
        "deployment.environment.name": "ci", "service.name": service, "service.namespace": "shop",
    }


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    target_spans: int
    fail_rate: float
    start_ns: int


@dataclass
class TestPlan:
    no: int
    name: str
    start_ns: int
    requests: list[str]
    fault: str | None  # "inventory" | "payments": the service where this test's failure starts


def test_name(no: int) -> str:
    module = no // 25
    return f"tests/integration/test_{AREAS[module % len(AREAS)]}_{module:04d}.py::test_{VERBS[no % len(VERBS)]}_{no % 25:02d}"


SPANS_PER_REQUEST = {"me": 6, "stock": 8, "quote": 13, "order": 23}
REQUEST_SLOT = 60 * MS


def plan_run(run: RunSpec, seed: int) -> list[TestPlan]:
    """Tests until the run reaches its span target; the same test numbers get the same names in
    every run, so an earlier run where a failing test passed is found as its baseline."""
    tests, spans, now = [], 0, run.start_ns
    while spans < run.target_spans:
        no = len(tests)
        rng = random.Random(f"{seed}:{run.run_id}:{no}")
        requests = rng.choices(ENDPOINTS, WEIGHTS, k=rng.randint(2, 14))
        fault = None
        if rng.random() < run.fail_rate:
            fault = "inventory" if rng.random() < 0.6 else "payments"
            requests[-1] = "order"
        tests.append(TestPlan(no, test_name(no), now, requests, fault))
        spans += 4 + (no % 25 == 0) + sum(SPANS_PER_REQUEST[r] for r in requests)
        now += 8 * MS + len(requests) * REQUEST_SLOT
    return tests


def _set_attributes(kvs: Any, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        v = kvs.add(key=key).value
        if isinstance(value, bool):
            v.bool_value = value
        elif isinstance(value, int):
            v.int_value = value
        else:
            v.string_value = value


class Batch:
    """One ExportTraceServiceRequest (and one logs request) for a chunk of one run's tests."""

    def __init__(self, run: RunSpec, rng: random.Random) -> None:
        self.run = run
        self.rng = rng
        self.traces = ExportTraceServiceRequest()
        self.logs = ExportLogsServiceRequest()
        self._resources: dict[str, Any] = {}
        self._scopes: dict[tuple[str, str], Any] = {}
        self._log_scopes: dict[str, Any] = {}

    def _resource_attrs(self, service: str) -> dict[str, Any]:
        return test_resource(self.run.run_id) if service == "integration-tests" else service_resource(service)

    def _scope(self, service: str, scope: str) -> Any:
        ss = self._scopes.get((service, scope))
        if ss is None:
            rs = self._resources.get(service)
            if rs is None:
                rs = self._resources[service] = self.traces.resource_spans.add()
                _set_attributes(rs.resource.attributes, self._resource_attrs(service))
            ss = self._scopes[(service, scope)] = rs.scope_spans.add()
            ss.scope.name = scope
            ss.scope.version = "1.1.0" if scope == PYTEST else "0.66b2"
        return ss

    def new_id(self) -> bytes:
        return (self.rng.getrandbits(64) | 1).to_bytes(8, "big")

    def span(self, service: str, scope: str, trace: bytes, parent: bytes, name: str, kind: int, start: int,
             dur: int, attrs: dict[str, Any], status: int = UNSET, message: str = "") -> tuple[bytes, Any]:
        sid = self.new_id()
        span = self._scope(service, scope).spans.add(
            trace_id=trace, span_id=sid, parent_span_id=parent, name=name, kind=kind,
            start_time_unix_nano=start, end_time_unix_nano=start + dur)
        _set_attributes(span.attributes, attrs)
        if status:
            span.status.code = status
            span.status.message = message
        return sid, span

    def exception(self, span: Any, service: str, etype: str, message: str) -> None:
        ev = span.events.add(name="exception", time_unix_nano=span.end_time_unix_nano - MS)
        _set_attributes(ev.attributes, {"exception.type": etype, "exception.message": message,
                                        "exception.stacktrace": "Traceback (most recent call last):\n"
                                        + STACK.format(svc=service) + f"{etype}: {message}\n",
                                        "exception.escaped": "False"})

    def log(self, service: str, trace: bytes, span: bytes, at: int, severity: int, body: str) -> None:
        sl = self._log_scopes.get(service)
        if sl is None:
            rl = self.logs.resource_logs.add()
            _set_attributes(rl.resource.attributes, self._resource_attrs(service))
            sl = self._log_scopes[service] = rl.scope_logs.add()
            sl.scope.name = f"shop.{service}"
        rec = sl.log_records.add(time_unix_nano=at, observed_time_unix_nano=at + 50_000, trace_id=trace,
                                 span_id=span, flags=1, severity_number=severity,
                                 severity_text="ERROR" if severity >= 17 else "INFO")
        rec.body.string_value = body
        _set_attributes(rec.attributes, {"code.function": "handle", "code.lineno": 88})


@dataclass
class Call:
    """An HTTP call seen from both sides: the caller's CLIENT span and the callee's SERVER span."""

    server_id: bytes
    server: Any
    start: int
    dur: int


def http(b: Batch, trace: bytes, caller: str, parent: bytes, callee: str, method: str, route: str, path: str,
         start: int, dur: int, status: int, body: Callable[[Call], int] | None = None) -> int:
    """Emit the client and server spans of one call; ``body`` may lower the answered status code
    (a failure inside); returns the status the caller saw."""
    port = PORTS[callee]
    s_start, s_dur = start + MS // 2, dur - MS
    server_id, server = b.span(callee, WSGI, trace, b"", f"{method} {route}", SERVER, s_start, s_dur, {})
    if body is not None:
        status = body(Call(server_id, server, s_start, s_dur))
    client_id, _ = b.span(
        caller, REQUESTS, trace, parent, method, CLIENT, start, dur,
        {"http.request.method": method, "url.full": f"http://{callee}:{port}{path}", "user_agent.original": UA,
         "server.address": callee, "network.peer.address": "10.0.0.7", "server.port": port,
         "network.peer.port": port, "peer.service": callee, "http.response.status_code": status,
         **({"error.type": str(status)} if status >= 400 else {}), "network.protocol.version": "1.1"},
        status=ERROR if status >= 400 else UNSET)
    server.parent_span_id = client_id
    _set_attributes(server.attributes, {
        "http.request.method": method, "url.scheme": "http", "server.address": f"{callee}:{port}",
        "server.port": port, "url.path": path, "client.address": "10.0.0.7", "client.port": 40000 + start % 20000,
        "user_agent.original": UA, "network.protocol.version": "1.1", "http.route": route,
        "http.response.status_code": status, **({"error.type": str(status)} if status >= 500 else {})})
    if status >= 500:
        server.status.code = ERROR
    return status


def db(b: Batch, trace: bytes, service: str, parent: bytes, start: int, dur: int, op: str, query: str,
       fail: str | None = None) -> Any:
    _, span = b.span(service, DBAPI, trace, parent, op, CLIENT, start, dur,
                     {"db.system.name": "sqlite", "db.query.text": query},
                     status=ERROR if fail else UNSET, message=f"OperationalError: {fail}" if fail else "")
    if fail:
        b.exception(span, service, "sqlite3.OperationalError", fail)
    return span


def verify(b: Batch, trace: bytes, gw: Call) -> None:
    http(b, trace, "gateway", gw.server_id, "auth", "GET", "/verify", "/verify", gw.start + MS, 3 * MS, 200)


def endpoint(b: Batch, trace: bytes, parent: bytes, kind: str, start: int, fault: str | None, no: int) -> int:
    """One request of the test to the gateway and everything it causes; returns the status it got."""
    rng = b.rng
    jitter = rng.randint(0, 4 * MS)
    sku = "unknown" if kind == "stock" and rng.random() < 0.1 else f"sku-{rng.randrange(500)}"

    def stock(c: Call) -> int:
        b.span("inventory", "shop.inventory", trace, c.server_id, "cache get", INTERNAL,
               c.start + MS, MS, {"cache.key": f"stock:{sku}", "cache.hit": False})
        db(b, trace, "inventory", c.server_id, c.start + 3 * MS, 2 * MS, "SELECT",
           "SELECT available FROM stock WHERE sku = ?")
        return 404 if sku == "unknown" else 200

    def reserve(c: Call) -> int:
        b.span("inventory", "shop.inventory", trace, c.server_id, "cache get", INTERNAL, c.start + MS, MS,
               {"cache.key": "stock:widget", "cache.hit": False})
        db(b, trace, "inventory", c.server_id, c.start + 2 * MS, MS // 2, "BEGIN", "BEGIN IMMEDIATE")
        if fault == "inventory":
            db(b, trace, "inventory", c.server_id, c.start + 3 * MS, 2 * MS, "UPDATE",
               "UPDATE stock SET available = available - ?, reserved_total = reserved_total + 1 WHERE sku = ?",
               fail="no such column: reserved_total")
            db(b, trace, "inventory", c.server_id, c.start + 5 * MS, MS // 2, "ROLLBACK", "ROLLBACK")
            b.exception(c.server, "inventory", "sqlite3.OperationalError", "no such column: reserved_total")
            b.log("inventory", trace, c.server_id, c.start + 6 * MS, 17, "unhandled error in POST /reserve")
            return 500
        db(b, trace, "inventory", c.server_id, c.start + 3 * MS, 2 * MS, "UPDATE",
           "UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?")
        db(b, trace, "inventory", c.server_id, c.start + 5 * MS, MS // 2, "COMMIT", "COMMIT")
        return 201

    def fees(c: Call) -> int:
        db(b, trace, "payments", c.server_id, c.start + MS, 2 * MS, "SELECT", "SELECT fee FROM fees WHERE currency = ?")
        return 200

    def charge(c: Call) -> int:
        b.span("payments", "shop.payments", trace, c.server_id, "fraud screen", INTERNAL, c.start + MS, 4 * MS,
               {"fraud.score": 3})
        if fault == "payments":
            b.exception(c.server, "payments", "KeyError", "'currency'")
            b.log("payments", trace, c.server_id, c.start + 6 * MS, 17, "unhandled error in POST /charge")
            return 500
        db(b, trace, "payments", c.server_id, c.start + 6 * MS, 2 * MS, "INSERT",
           "INSERT INTO charges (order_id, amount) VALUES (?, ?)")
        b.span("payments", REQUESTS, trace, c.server_id, "POST", CLIENT, c.start + 9 * MS, 6 * MS,
               {"http.request.method": "POST", "url.full": "https://bank.example.com/v1/charges",
                "server.address": "bank.example.com", "server.port": 443, "peer.service": "bank",
                "http.response.status_code": 201, "network.protocol.version": "1.1", "user_agent.original": UA})
        return 201

    def order(c: Call) -> int:
        db(b, trace, "orders", c.server_id, c.start + MS, MS // 2, "BEGIN", "BEGIN")
        inv = http(b, trace, "orders", c.server_id, "inventory", "POST", "/reserve", "/reserve",
                   c.start + 2 * MS, 8 * MS, 201, reserve)
        pay = 201
        if inv < 400:
            pay = http(b, trace, "orders", c.server_id, "payments", "POST", "/charge", "/charge",
                       c.start + 11 * MS, 17 * MS, 201, charge)
        failed = inv >= 400 or pay >= 400
        db(b, trace, "orders", c.server_id, c.start + 29 * MS, MS, "INSERT" if not failed else "ROLLBACK",
           "INSERT INTO orders (sku, qty) VALUES (?, ?)" if not failed else "ROLLBACK")
        if failed:
            who = "inventory" if inv >= 400 else "payments"
            b.log("orders", trace, c.server_id, c.start + 30 * MS, 17,
                  f"request POST /orders failed: {who} answered 500")
            return 502
        db(b, trace, "orders", c.server_id, c.start + 30 * MS, MS // 2, "COMMIT", "COMMIT")
        producer, _ = b.span("orders", "shop.orders", trace, c.server_id, "send notifications", PRODUCER,
                             c.start + 31 * MS, MS, {"messaging.system": "shop-broker",
                                                     "messaging.operation.type": "send",
                                                     "messaging.destination.name": "notifications",
                                                     "messaging.message.id": f"msg-{no}"})
        consumer_trace = b.rng.getrandbits(128).to_bytes(16, "big")
        cid, consumer = b.span("notifier", "shop.notifier", consumer_trace, b"", "process notifications",
                               CONSUMER, c.start + 40 * MS, 4 * MS,
                               {"messaging.system": "shop-broker", "messaging.operation.type": "process",
                                "messaging.destination.name": "notifications", "messaging.message.id": f"msg-{no}"})
        consumer.links.add(trace_id=trace, span_id=producer)
        b.span("notifier", REQUESTS, consumer_trace, cid, "POST", CLIENT, c.start + 42 * MS, MS,
               {"http.request.method": "POST", "url.full": f"http://broker:8085/messages/msg-{no}/ack",
                "server.address": "broker", "server.port": 8085, "peer.service": "broker",
                "http.response.status_code": 200, "network.protocol.version": "1.0", "user_agent.original": UA})
        return 201

    def gateway(c: Call) -> int:
        verify(b, trace, c)
        at, status = c.start + 5 * MS, 200
        if kind == "me":
            http(b, trace, "gateway", c.server_id, "auth", "GET", "/userinfo", "/userinfo", at, 3 * MS, 200)
        elif kind == "stock":
            status = http(b, trace, "gateway", c.server_id, "inventory", "GET", "/stock/<sku>", f"/stock/{sku}",
                          at, 6 * MS + jitter, 200, stock)
        elif kind == "quote":
            def quote(q: Call) -> int:
                http(b, trace, "orders", q.server_id, "inventory", "GET", "/stock/<sku>", f"/stock/{sku}",
                     q.start + MS, 6 * MS, 200, stock)
                return http(b, trace, "orders", q.server_id, "payments", "GET", "/fees", "/fees",
                            q.start + 8 * MS, 4 * MS, 200, fees)

            status = http(b, trace, "gateway", c.server_id, "orders", "GET", "/quote", f"/quote?sku={sku}",
                          at, 14 * MS + jitter, 200, quote)
        else:
            status = http(b, trace, "gateway", c.server_id, "orders", "POST", "/orders", "/orders", at,
                          46 * MS, 201, order)
            status = 502 if status >= 500 else status
        if status >= 500:
            b.log("gateway", trace, c.server_id, c.start + 52 * MS, 17,
                  f"request {c.server.name} failed: upstream answered {status}")
        b.log("gateway", trace, c.server_id, c.start + 53 * MS, 9, f"{c.server.name} {status}")
        return status

    path = {"me": "/api/me", "stock": f"/api/stock/{sku}", "quote": f"/api/quote?sku={sku}", "order": "/api/orders"}
    route = {"me": "/api/me", "stock": "/api/stock/<sku>", "quote": "/api/quote", "order": "/api/orders"}
    method = "POST" if kind == "order" else "GET"
    return http(b, trace, "integration-tests", parent, "gateway", method, route[kind], path[kind].split("?")[0],
                start, 55 * MS, 201 if kind == "order" else 200, gateway)


def emit_test(b: Batch, t: TestPlan, session: tuple[bytes, bytes] | None) -> None:
    trace, parent = session if session else (b.rng.getrandbits(128).to_bytes(16, "big"), b"")
    attrs = {"code.filepath": t.name.split("::")[0], "code.function": t.name.split("::")[1],
             "pytest.nodeid": t.name, "pytest.span_type": "test", "code.lineno": 10 + t.no % 25 * 7}
    end = t.start_ns + 8 * MS + len(t.requests) * REQUEST_SLOT
    test_id, test_span = b.span("integration-tests", PYTEST, trace, parent, t.name, INTERNAL, t.start_ns,
                                end - t.start_ns, attrs)
    setup_id, _ = b.span("integration-tests", PYTEST, trace, test_id, f"{t.name}::setup", INTERNAL,
                         t.start_ns + MS, 3 * MS, attrs)
    if t.no % 25 == 0:
        b.span("integration-tests", PYTEST, trace, setup_id, "api setup", INTERNAL, t.start_ns + MS, 2 * MS,
               {"code.filepath": "tests/integration/conftest.py", "code.function": "api", "code.lineno": 32,
                "pytest.fixture_scope": "module", "pytest.span_type": "fixture"})
    call_start = t.start_ns + 5 * MS
    call_id, _ = b.span("integration-tests", PYTEST, trace, test_id, f"{t.name}::call", INTERNAL, call_start,
                        len(t.requests) * REQUEST_SLOT, attrs)
    status = 200
    for i, kind in enumerate(t.requests):
        last = i == len(t.requests) - 1
        status = endpoint(b, trace, call_id, kind, call_start + i * REQUEST_SLOT, t.fault if last else None, t.no)
    b.span("integration-tests", PYTEST, trace, test_id, f"{t.name}::teardown", INTERNAL, end - 2 * MS, MS, attrs)
    if t.fault:
        message = f"assert {status} == 201\n +  where {status} = <Response [{status}]>.status_code"
        test_span.status.code = ERROR
        test_span.status.message = f"<class 'AssertionError'>: {message}"
        b.exception(test_span, "integration-tests", "AssertionError", message)
    else:
        test_span.status.code = OK


@dataclass
class Chunk:
    run: RunSpec
    tests: list[TestPlan]
    session: tuple[bytes, bytes] | None  # (trace id, session span id) in session mode
    session_span: tuple[int, int, bool] | None = None  # (start, end, failed): emit the root here


def build_chunk(chunk: Chunk) -> tuple[dict[str, pa.Table], int, int]:
    """Worker: generate one chunk as OTLP, serialize it, decode it as the daemon would."""
    b = Batch(chunk.run, random.Random(f"{chunk.run.run_id}:{chunk.tests[0].no}"))
    if chunk.session and chunk.session_span:
        start, end, failed = chunk.session_span
        trace, sid = chunk.session
        span = b._scope("integration-tests", PYTEST).spans.add(
            trace_id=trace, span_id=sid, name="test run", kind=INTERNAL, start_time_unix_nano=start,
            end_time_unix_nano=end)
        _set_attributes(span.attributes, {"pytest.span_type": "run"})
        span.status.code = ERROR if failed else OK
    for t in chunk.tests:
        emit_test(b, t, chunk.session)
    spans = decode_traces(b.traces.SerializeToString())
    logs = decode_logs(b.logs.SerializeToString())
    assert not spans.rejected and not logs.rejected, spans.error_message or logs.error_message
    return {**spans.tables, **logs.tables}, spans.accepted, logs.accepted


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)

