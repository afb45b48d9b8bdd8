"""JUnit XML dialects → test cases: a real pytest --junitxml report, and small reports in the
documented formats of Jest (jest-junit), Go (gotestsum), Maven Surefire and nested suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_triage.collector import junit

FIXTURES = Path(__file__).parent / "fixtures" / "junit"

SUITE = '''
import pytest

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert {"status": 503} == {"status": 201}, "checkout answered 503"

@pytest.fixture
def broken():
    raise ConnectionError("inventory refused the connection")

def test_errors(broken):
    pass

@pytest.mark.skip(reason="needs the bank sandbox")
def test_skipped():
    pass
'''


def pytest_report(tmp_path: Path, family: str = "xunit2") -> bytes:
    """Run real pytest with --junitxml on a small module: one pass, one fail, one error, one skip."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "test_shop.py").write_text(SUITE)
    report = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:pytest_opentelemetry",
                    f"--junitxml={report}", "-o", f"junit_family={family}", "-o", "junit_suite_name=shop",
                    str(tmp_path / "test_shop.py")], cwd=tmp_path, capture_output=True, check=False)
    return report.read_bytes()


@pytest.mark.parametrize("family", ["xunit2", "xunit1"])
def test_real_pytest_report(tmp_path, family):
    report = junit.parse(pytest_report(tmp_path, family), fallback_start_ns=0)
    outcomes = {c.name: c.outcome for c in report.cases}
    assert outcomes == {"test_passes": "passed", "test_fails": "failed", "test_errors": "error",
                        "test_skipped": "skipped"}
    failed = next(c for c in report.cases if c.name == "test_fails")
    assert failed.classname == "test_shop" and failed.full_name == "test_shop.test_fails"
    assert "checkout answered 503" in (failed.message or "")
    assert failed.suite == "shop" and failed.start_ns > 0  # from the suite's timestamp
    errored = next(c for c in report.cases if c.name == "test_errors")
    assert "inventory refused the connection" in (errored.details or "")


def test_runner_dialects():
    jest = junit.parse((FIXTURES / "jest-junit.xml").read_bytes(), 0)
    assert [(c.suite, c.name, c.outcome) for c in jest.cases] == [
        ("cart", "cart adds an item", "passed"), ("cart", "cart checks out", "failed"),
        ("cart", "cart applies a coupon", "skipped")]
    assert jest.cases[1].message == "Error: expect(received).toBe(expected) // Object.is equality"

    go = junit.parse((FIXTURES / "gotestsum.xml").read_bytes(), 0)
    refund = go.cases[1]
    assert (refund.full_name, refund.outcome, refund.message) == ("example.com/shop/payments.TestRefund", "failed", "Failed")
    assert refund.trace_context() is None  # the traceparent is in the failure text, not the output
    assert go.cases[0].properties["go.version"].startswith("go1.22")

    surefire = junit.parse((FIXTURES / "surefire.xml").read_bytes(), 0)
    assert surefire.run_id == "maven-77"
    cancel = surefire.cases[1]
    assert (cancel.outcome, cancel.failure_type, cancel.message) == ("error", "java.net.ConnectException", "Connection refused")
    assert cancel.trace_context() == ("4bf92f3577b34da6a3ce929d0e0e4736", "")

    nested = junit.parse((FIXTURES / "nested.xml").read_bytes(), 0)
    assert nested.run_id == "nested-1"
    assert [c.suite for c in nested.cases] == ["integration.orders", "integration.orders"]
    assert nested.cases[1].trace_context() == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_spans_follow_the_test_conventions():
    report = junit.parse((FIXTURES / "nested.xml").read_bytes(), 0)
    req = ExportTraceServiceRequest.FromString(junit.to_request(report, "nested-1", "nested.xml", "ab" * 32))
    (rs,) = req.resource_spans
    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
    assert resource == {"service.name": "junit", "cicd.pipeline.run.id": "nested-1"}
    ok, failed = rs.scope_spans[0].spans
    attrs = {kv.key: kv.value.string_value for kv in failed.attributes}
    assert attrs["test.case.name"] == "integration.orders.test_create"
    assert attrs["test.case.result.status"] == "fail" and attrs["triage.junit.link"] == "trace-id"
    assert failed.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert failed.parent_span_id.hex() == "00f067aa0ba902b7"
    assert failed.status.code == failed.status.STATUS_CODE_ERROR and failed.status.message == "assert 500 == 201"
    (event,) = failed.events
    assert event.name == "exception"
    assert {kv.key: kv.value.string_value for kv in event.attributes}["exception.type"] == "AssertionError"
    assert {kv.key: kv.value.string_value for kv in ok.attributes}["test.case.result.status"] == "pass"


@pytest.mark.parametrize("data, words", [
    (b"<testsuites><testsuite><testcase name='x'></testsuite>", "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
     b"<testsuites><testsuite name='&lol2;'/></testsuites>", "declares entities"),
    (b"<html><body>not a report</body></html>", "root element is <html>"),
])
def test_bad_reports_are_refused_with_a_reason(data, words):
    with pytest.raises(junit.InvalidJUnit, match=words):
        junit.parse(data, 0)
