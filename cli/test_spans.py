"""Test spans for ``pytest --triage`` when pytest-opentelemetry does not make them.

Same shape as pytest-opentelemetry 1.1 (NOTES.md), so a store holds one kind of test span whichever
plugin made it and a test's history does not split: a session span ``test run``
(``pytest.span_type=run``), one span per test named by its node id (``pytest.nodeid``,
``pytest.span_type=test``, ``code.*``; ERROR with an ``exception`` event when it fails) and
``::setup`` / ``::call`` / ``::teardown`` phase children. On top, the OpenTelemetry test conventions
pytest-opentelemetry lacks: ``test.case.name`` and ``test.case.result.status`` on the test span,
``test.suite.name`` and ``test.suite.run.status`` on the session span.

The provider is our own, exporting to the daemon; it also becomes the global one when nobody set
one, so instrumented clients in the tests (requests, httpx, ...) make client spans under the test
span and propagate ``traceparent`` to the services.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode

QUEUE_SIZE = 65536  # the SDK's default 2048 drops spans under a burst (NOTES.md)
SCHEDULE_DELAY_MS = 500


class TestSpans:
    """A pytest plugin object, registered by ``pytest_plugin`` only when it must make the spans."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, config: pytest.Config, address: str, attributes: dict[str, str],
                 tls_ca: str | None = None) -> None:
        # As pytest-opentelemetry names the runner: junit_suite_name (whose default is "pytest"),
        # --junitprefix, else the rootdir's name.
        named = config.getini("junit_suite_name")
        suite = str((named if named != "pytest" else None) or config.getoption("junitprefix", None)
                    or config.rootpath.name)
        resource = Resource.create({"service.name": suite, **attributes})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(
            _exporter(address, tls_ca),
            max_queue_size=QUEUE_SIZE, schedule_delay_millis=SCHEDULE_DELAY_MS))
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("otel-triage.pytest")
        workerinput = getattr(config, "workerinput", None)
        parent = propagate.extract(workerinput) if workerinput and "traceparent" in workerinput else None
        if parent is None and os.environ.get("TRACEPARENT"):
            parent = propagate.extract({"traceparent": os.environ["TRACEPARENT"]})
        name = f"test worker {workerinput['workerid']}" if workerinput else os.environ.get("PYTEST_RUN_NAME", "test run")
        self.session = self.tracer.start_span(
            name, context=parent, attributes={"pytest.span_type": "run", "test.suite.name": suite})
        self.failed = False
        self.tests: dict[str, Span] = {}
        self.test_failed: dict[str, bool] = {}

    @staticmethod
    def _attributes(item: pytest.Item) -> dict[str, Any]:
        path, line, _ = item.location
        attrs: dict[str, Any] = {"code.filepath": path, "code.function": item.name,
                                 "pytest.nodeid": item.nodeid, "pytest.span_type": "test"}
        if line:
            attrs["code.lineno"] = line
        return attrs

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: each worker's session span becomes a child of ours, so the run is one trace."""
        propagate.inject(node.workerinput, context=trace.set_span_in_context(self.session))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        attrs = {**self._attributes(item), "test.case.name": item.nodeid}
        with self.tracer.start_as_current_span(item.nodeid, context=trace.set_span_in_context(self.session),
                                               attributes=attrs, record_exception=False,
                                               set_status_on_exception=False) as span:
            self.tests[item.nodeid] = span
            self.test_failed[item.nodeid] = False
            yield
            failed = self.test_failed.pop(item.nodeid)
            span.set_attribute("test.case.result.status", "fail" if failed else "pass")
            if not failed:
                span.set_status(Status(StatusCode.OK))
            self.tests.pop(item.nodeid, None)

    def _phase(self, item: pytest.Item, phase: str) -> Any:
        return self.tracer.start_as_current_span(f"{item.nodeid}::{phase}", attributes=self._attributes(item))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item, "setup"):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item, "call"):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        with self._phase(item, "teardown"):
            yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        report = outcome.get_result()
        span = self.tests.get(item.nodeid)
        if span is None or not report.failed:
            return
        self.test_failed[item.nodeid] = True
        self.failed = True
        if call.excinfo is not None:
            exc = call.excinfo.value
            span.record_exception(exc, attributes={"exception.stacktrace": str(report.longrepr)})
            span.set_status(Status(StatusCode.ERROR, f"{call.excinfo.type}: {exc}"))
        else:
            span.set_status(Status(StatusCode.ERROR, f"{report.when} failed"))

    def flush(self) -> None:
        """End the session span and send everything: the daemon's run completion waits for it."""
        if self.session.is_recording():
            self.session.set_attribute("test.suite.run.status", "failure" if self.failed else "success")
            self.session.set_status(Status(StatusCode.ERROR if self.failed else StatusCode.OK))
            self.session.end()
        self.provider.force_flush()

    def pytest_sessionfinish(self) -> None:
        self.flush()  # workers too: their session spans end here

    def shutdown(self) -> None:
        self.flush()
        self.provider.shutdown()


def _exporter(address: str, tls_ca: str | None) -> OTLPSpanExporter:
    """To the daemon: in plain text, or over TLS trusting ``tls_ca`` (``--triage-daemon`` with
    TRIAGE_TLS_CA)."""
    if not tls_ca:
        return OTLPSpanExporter(endpoint=address, insecure=True)
    import grpc

    return OTLPSpanExporter(endpoint=address, insecure=False,
                            credentials=grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()))
