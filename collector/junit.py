"""JUnit XML reports → OTLP test spans, so CI systems that only write JUnit feed the same pipeline.

The dialects differ in details, not shape (pytest ``--junitxml`` xunit1/xunit2, jest-junit,
gotestsum, Maven Surefire, Gradle): a ``<testsuites>`` or bare ``<testsuite>`` root, suites nested
or not, ``<testcase name classname time file line>`` holding ``<failure>``, ``<error>``,
``<skipped>``, ``<system-out>``, ``<system-err>`` and ``<properties>``. Each testcase becomes one
span of the OpenTelemetry test conventions (``test.case.name``, ``test.case.result.status``,
``test.suite.name``), ERROR with an ``exception`` event for a failure or error.

How a testcase is tied to the run's traces is recorded on its span, from the surest to the weakest:
a trace id the report carries (a ``trace_id`` / ``traceparent`` property, or ``trace_id=…`` /
``traceparent: 00-…`` in its output) makes the test span part of that trace; otherwise the
correlator matches it at query time by test name, then by time window (``tests.sql``,
``explain_tree.sql``), since the traces may arrive after the report.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

RUN_ID_KEYS = ("cicd.pipeline.run.id", "ci.run.id", "run_id", "run.id")
TRACEPARENT = re.compile(r"\b00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\b")
TRACE_ID = re.compile(r"\btrace[_.\- ]?id[\"']?\s*[=:]\s*[\"']?([0-9a-f]{32})\b", re.IGNORECASE)
SCOPE = "otel_triage.junit"


class InvalidJUnit(ValueError):
    """The file is not a JUnit XML report; the message says why."""


@dataclass
class TestCase:
    name: str
    classname: str
    suite: str
    seconds: float
    outcome: str  # passed | failed | error | skipped
    message: str | None = None
    failure_type: str | None = None
    details: str | None = None
    file: str | None = None
    line: int | None = None
    properties: dict[str, str] = field(default_factory=dict)
    output: str = ""
    start_ns: int = 0

    @property
    def full_name(self) -> str:
        """``classname.name`` the way pytest, Surefire and jest-junit print a test."""
        return f"{self.classname}.{self.name}" if self.classname else self.name

    def trace_context(self) -> tuple[str, str] | None:
        """(trace id, parent span id or '') the report carries for this test, if any."""
        for key in ("traceparent", "trace.parent"):
            m = TRACEPARENT.search(self.properties.get(key, ""))
            if m:
                return m.group(1), m.group(2)
        for key in ("trace_id", "trace.id", "traceid", "otel.trace_id"):
            value = self.properties.get(key, "").lower()
            if re.fullmatch(r"[0-9a-f]{32}", value):
                return value, ""
        m = TRACEPARENT.search(self.output)
        if m:
            return m.group(1), m.group(2)
        m = TRACE_ID.search(self.output)
        return (m.group(1).lower(), "") if m else None


@dataclass
class Report:
    cases: list[TestCase]
    properties: dict[str, str]

    @property
    def run_id(self) -> str | None:
        for key in RUN_ID_KEYS:
            if self.properties.get(key):
                return self.properties[key]
        return None


def _properties(el: Element) -> dict[str, str]:
    out = {}
    for props in el.findall("properties"):
        for p in props.findall("property"):
            name = p.get("name")
            if name:
                out[name] = p.get("value") if p.get("value") is not None else (p.text or "")
    return out


MAX_NS = 2**63 - 1  # the store's TIMESTAMP_NS ends in 2262; OTLP's uint64 goes further
MAX_TEST_SECONDS = 7 * 86400.0  # a longer test time is a broken report, not a test


def _timestamp_ns(value: str | None) -> int | None:
    """Nanoseconds since the epoch, or None when missing, malformed or not storable (before 1970,
    after 2262): the caller falls back to the file's mtime rather than failing the report."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if t.tzinfo is None:  # pytest, Surefire: local time without a zone; read as UTC
            t = t.replace(tzinfo=timezone.utc)
        ns = int(t.timestamp() * 1e9)
    except (ValueError, OverflowError):
        return None
    return ns if 0 < ns < MAX_NS - int(MAX_TEST_SECONDS * 1e9) * 1000 else None


def _seconds(value: str | None) -> float:
    """A test's duration; ``inf``, ``nan``, negative and absurd values become 0 or the cap."""
    try:
        seconds = float((value or "0").replace(",", ""))
    except ValueError:
        return 0.0
    if not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return min(seconds, MAX_TEST_SECONDS)


def parse(data: bytes, fallback_start_ns: int) -> Report:
    """Every testcase of a JUnit XML report. Entity declarations are refused (billion laughs, XXE)."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise InvalidJUnit(f"refused: the XML declares entities ({type(exc).__name__})") from exc
    except (ParseError, ValueError) as exc:
        raise InvalidJUnit(f"not well-formed XML: {exc}") from exc
    if root.tag not in ("testsuites", "testsuite"):
        raise InvalidJUnit(f"not a JUnit report: the root element is <{root.tag}>, not <testsuites> or <testsuite>")
    report = Report([], _properties(root))
    clock = [_timestamp_ns(root.get("timestamp")) or fallback_start_ns]

    def walk(suite: Element, inherited: dict[str, str]) -> None:
        props = {**inherited, **_properties(suite)}
        name = suite.get("name") or ""
        start = _timestamp_ns(suite.get("timestamp"))
        if start:
            clock[0] = start
        for child in suite:
            if child.tag == "testsuite":
                walk(child, props)
            elif child.tag == "testcase":
                report.cases.append(_case(child, name, props, clock))
        report.properties.update({k: v for k, v in props.items() if k in RUN_ID_KEYS})

    if root.tag == "testsuite":
        walk(root, {})
    else:
        for suite in root:
            if suite.tag == "testsuite":
                walk(suite, report.properties)
            elif suite.tag == "testcase":  # some tools put cases straight under <testsuites>
                report.cases.append(_case(suite, root.get("name") or "", report.properties, clock))
    return report


def _case(el: Element, suite: str, suite_props: dict[str, str], clock: list[int]) -> TestCase:
    seconds = _seconds(el.get("time"))
    case = TestCase(
        name=el.get("name") or "(unnamed)", classname=el.get("classname") or "", suite=suite,
        seconds=seconds, outcome="passed", file=el.get("file"),
        line=int(el.get("line")) if (el.get("line") or "").isdigit() else None,
        properties={**suite_props, **_properties(el)}, start_ns=clock[0],
    )
    clock[0] = min(clock[0] + int(seconds * 1e9), MAX_NS - int(MAX_TEST_SECONDS * 1e9))
    for tag in ("failure", "error", "skipped"):
        found = el.find(tag)
        if found is None:
            continue
        case.outcome = "failed" if tag == "failure" else "error" if tag == "error" else "skipped"
        text_lines = (found.text or "").strip().splitlines()
        case.message = found.get("message") or (text_lines[0] if text_lines else None)
        case.failure_type = found.get("type")
        case.details = (found.text or "").strip() or None
        break
    outputs = [el.findtext(tag) or "" for tag in ("system-out", "system-err")]
    case.output = "\n".join(o for o in outputs if o)
    return case


def _kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _id(seed: str, size: int) -> bytes:
    return hashlib.sha256(seed.encode()).digest()[:size]


def to_request(report: Report, run_id: str | None, source: str, content_sha256: str) -> bytes:
    """The report as one ExportTraceServiceRequest: a span per testcase on a ``junit`` resource.

    Ids not given by the report derive from the file's content, so the same report always makes the
    same spans (the ledger already stops a second ingest; this keeps a re-import idempotent too).
    """
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "junit"))
    if run_id:
        rs.resource.attributes.append(_kv("cicd.pipeline.run.id", run_id))
    scope = rs.scope_spans.add()
    scope.scope.name = SCOPE
    for i, case in enumerate(report.cases):
        seed = f"{content_sha256}:{i}"
        context = case.trace_context()
        trace_id, parent = (bytes.fromhex(context[0]), bytes.fromhex(context[1]) if context[1] else b"") if context \
            else (_id(seed, 16), b"")
        attrs = [
            _kv("test.case.name", case.full_name),
            _kv("test.suite.name", case.suite),
            _kv("triage.junit.file", source),
            _kv("triage.junit.link", "trace-id" if context else "unlinked"),
        ]
        if case.outcome in ("passed", "failed", "error"):
            attrs.append(_kv("test.case.result.status", "pass" if case.outcome == "passed" else "fail"))
        else:
            attrs.append(_kv("triage.junit.skipped", True))
        if case.file:
            attrs.append(_kv("code.file.path", case.file))
        if case.line is not None:
            attrs.append(_kv("code.line.number", case.line))
        span = scope.spans.add(
            trace_id=trace_id, span_id=_id(seed + ":span", 8), parent_span_id=parent, name=case.full_name,
            kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=case.start_ns,
            end_time_unix_nano=case.start_ns + int(case.seconds * 1e9), attributes=attrs,
        )
        if case.outcome in ("failed", "error"):
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=(case.message or case.outcome)[:2000]))
            event = span.events.add(name="exception", time_unix_nano=span.end_time_unix_nano)
            event.attributes.append(_kv("exception.type", case.failure_type or ("AssertionError" if case.outcome == "failed" else "Error")))
            event.attributes.append(_kv("exception.message", (case.message or "")[:4000]))
            if case.details:
                event.attributes.append(_kv("exception.stacktrace", case.details[:32000]))
        elif case.outcome == "passed":
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_OK))
    return req.SerializeToString()
