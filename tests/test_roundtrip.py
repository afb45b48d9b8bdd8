"""Every OTLP field survives the trip exporter → gRPC → daemon → DuckDB, for all three signals.

Part one uses the real SDK and its exporters, as services would. Part two sends hand-built requests
through the generated stubs for the fields the SDK never sets (bytes and kvlist values, schema URLs,
dropped counts, summaries, exemplars, metric metadata...), and checks each column.
"""

from __future__ import annotations

import json
import logging

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests import otlp
from tests.conftest import query

RESOURCE = {"service.name": "checkout", "cicd.pipeline.run.id": "run-42", "deployment.environment": "ci"}


def test_sdk_traces_logs_metrics_round_trip(daemon, db_path):
    tp = otlp.tracer_provider(daemon.address, RESOURCE)
    tracer = tp.get_tracer("tests.roundtrip", "1.2.3")
    with tracer.start_as_current_span("producer", kind=SpanKind.PRODUCER) as producer:
        producer_ctx = producer.get_span_context()
    attrs = {"s": "text", "i": 7, "f": 2.5, "b": True, "ls": ["a", "b"], "li": [1, 2], "lf": [0.5], "lb": [False]}
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes=attrs) as parent:
        with tracer.start_as_current_span(
            "child", kind=SpanKind.CONSUMER, links=[Link(producer_ctx, {"link.why": "consumed"})]
        ) as child:
            child.add_event("retry", {"attempt": 2})
            try:
                raise ValueError("boom")
            except ValueError as exc:
                child.record_exception(exc)
            child.set_status(Status(StatusCode.ERROR, "it broke"))
        parent_ctx = parent.get_span_context()

        lp = LoggerProvider(resource=Resource.create(RESOURCE))
        lp.add_log_record_processor(BatchLogRecordProcessor(otlp.log_exporter(daemon.address)))
        logger = logging.getLogger("tests.roundtrip.logs")
        logger.propagate = False
        handler = LoggingHandler(level=logging.DEBUG, logger_provider=lp)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.error("payment declined for %s", "order-1", extra={"order.id": "order-1"})
        logger.removeHandler(handler)

    reader = PeriodicExportingMetricReader(otlp.metric_exporter(daemon.address), export_interval_millis=60_000)
    mp = MeterProvider(
        resource=Resource.create(RESOURCE),
        metric_readers=[reader],
        views=[View(instrument_name="latency.exp", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = mp.get_meter("tests.metrics", "0.1")
    meter.create_counter("requests", unit="{request}", description="reqs").add(3, {"route": "/pay"})
    meter.create_up_down_counter("inflight").add(-2)
    hist = meter.create_histogram("latency", unit="ms")
    for v in (5, 50, 500):
        hist.record(v, {"route": "/pay"})
    meter.create_histogram("latency.exp", unit="ms").record(12.5)
    meter.create_observable_gauge("pool.in_use", callbacks=[lambda _o: [__import__(
        "opentelemetry.metrics", fromlist=["Observation"]).Observation(4, {"pool": "db"})]])

    assert tp.force_flush(30_000)
    assert lp.force_flush(30_000)
    tp.shutdown()
    lp.shutdown()
    mp.shutdown()  # one final collection and export
    assert daemon.terminate() == 0

    spans = {r[0]: r for r in query(db_path, """
        SELECT SpanName, TraceId, SpanId, ParentSpanId, SpanKind, StatusCode, StatusMessage, ServiceName, RunId,
               SpanAttributes, ScopeName, ScopeVersion, ResourceAttributes, TraceFlags, Duration
        FROM otel_traces""")}
    assert set(spans) == {"producer", "parent", "child"}
    p, c = spans["parent"], spans["child"]
    assert p[1] == format(parent_ctx.trace_id, "032x") and p[2] == format(parent_ctx.span_id, "016x")
    assert c[3] == p[2] and c[1] == p[1]
    assert (p[4], c[4], spans["producer"][4]) == ("Server", "Consumer", "Producer")
    assert (c[5], c[6]) == ("Error", "it broke")
    assert (p[7], p[8]) == ("checkout", "run-42")
    assert json.loads(p[9]) == attrs
    assert (p[10], p[11]) == ("tests.roundtrip", "1.2.3")
    assert json.loads(p[12])["deployment.environment"] == "ci"
    assert p[13] == 0x100  # the SDK sends SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE (parent is local)
    assert p[14] > 0

    events = query(db_path, "SELECT Name, Attributes, SpanId FROM otel_traces_events ORDER BY Timestamp")
    assert [e[0] for e in events] == ["retry", "exception"]
    assert json.loads(events[0][1]) == {"attempt": 2}
    exc_attrs = json.loads(events[1][1])
    assert exc_attrs["exception.type"] == "ValueError" and exc_attrs["exception.message"] == "boom"
    assert "Traceback" in exc_attrs["exception.stacktrace"]
    assert {e[2] for e in events} == {c[2]}

    links = query(db_path, "SELECT SpanId, LinkedTraceId, LinkedSpanId, Attributes FROM otel_traces_links")
    assert links == [(c[2], format(producer_ctx.trace_id, "032x"), format(producer_ctx.span_id, "016x"),
                      '{"link.why":"consumed"}')]

    logs = query(db_path, """SELECT Body, BodyType, SeverityText, SeverityNumber, TraceId, SpanId, LogAttributes,
                                    RunId, ServiceName, Timestamp IS NOT NULL, ObservedTimestamp IS NOT NULL
                             FROM otel_logs""")
    assert len(logs) == 1
    body, body_type, sev_text, sev_num, trace_id, span_id, log_attrs, run_id, service, has_ts, has_obs = logs[0]
    assert (body, body_type, sev_text, sev_num) == ("payment declined for order-1", "string", "ERROR", 17)
    assert (trace_id, span_id) == (p[1], p[2])  # logged inside "parent"
    assert json.loads(log_attrs)["order.id"] == "order-1"
    assert (run_id, service, has_ts, has_obs) == ("run-42", "checkout", True, True)

    sums = dict((r[0], r[1:]) for r in query(db_path, """
        SELECT MetricName, Value, ValueInt, IsMonotonic, AggregationTemporality, Attributes, MetricUnit,
               MetricDescription, ScopeName, ScopeVersion FROM otel_metrics_sum"""))
    assert sums["requests"][:5] == (3.0, 3, True, 2, '{"route":"/pay"}')
    assert sums["requests"][5:] == ("{request}", "reqs", "tests.metrics", "0.1")
    assert sums["inflight"][:3] == (-2.0, -2, False)
    hist_rows = query(db_path, """SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max
                                  FROM otel_metrics_histogram WHERE MetricName = 'latency'""")
    count, total, buckets, bounds, vmin, vmax = hist_rows[0]
    assert (count, total, vmin, vmax) == (3, 555.0, 5.0, 500.0)
    assert sum(buckets) == 3 and len(buckets) == len(bounds) + 1
    exp = query(db_path, "SELECT Count, Sum, Scale, PositiveBucketCounts FROM otel_metrics_exponential_histogram")
    assert exp[0][0] == 1 and exp[0][1] == 12.5 and sum(exp[0][3]) == 1
    gauge = query(db_path, "SELECT MetricName, ValueInt, Attributes FROM otel_metrics_gauge")
    assert gauge == [("pool.in_use", 4, '{"pool":"db"}')]


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _every_value_type() -> list[KeyValue]:
    return [
        _kv("str", AnyValue(string_value="ü")),
        _kv("int", AnyValue(int_value=-(2**63))),
        _kv("big", AnyValue(int_value=2**63 - 1)),
        _kv("dbl", AnyValue(double_value=1.0)),
        _kv("bool", AnyValue(bool_value=False)),
        _kv("bytes", AnyValue(bytes_value=b"\x00\xff")),
        _kv("arr", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="x")]))),
        _kv("kv", AnyValue(kvlist_value=KeyValueList(values=[_kv("inner", AnyValue(double_value=0.25))]))),
        _kv("empty", AnyValue()),
    ]


EVERY_VALUE_JSON = {
    "str": "ü", "int": -(2**63), "big": 2**63 - 1, "dbl": 1.0, "bool": False, "bytes": {"bytesValue": "AP8="},
    "arr": [1, "x"], "kv": {"inner": 0.25}, "empty": None,
}


def _resource_group(group, run_id: str = "run-raw") -> None:
    group.schema_url = "https://opentelemetry.io/schemas/1.30.0"
    group.resource.attributes.extend([_kv("service.name", AnyValue(string_value="raw")),
                                      _kv("cicd.pipeline.run.id", AnyValue(string_value=run_id))])
    group.resource.dropped_attributes_count = 3


def _scope(scope_group) -> None:
    scope_group.schema_url = "https://example.com/scope-schema"
    scope_group.scope.name = "raw.scope"
    scope_group.scope.version = "9"
    scope_group.scope.attributes.extend([_kv("scope.attr", AnyValue(bool_value=True))])
    scope_group.scope.dropped_attributes_count = 4


RESOURCE_SQL = """ResourceSchemaUrl, ResourceDroppedAttributesCount, ScopeName, ScopeVersion, ScopeAttributes,
                  ScopeDroppedAttributesCount, ScopeSchemaUrl, ServiceName, RunId"""
RESOURCE_ROW = ("https://opentelemetry.io/schemas/1.30.0", 3, "raw.scope", "9", '{"scope.attr":true}', 4,
                "https://example.com/scope-schema", "raw", "run-raw")


def test_every_otlp_field_is_stored(daemon, db_path):
    tid, sid, pid = bytes(range(1, 17)), bytes(range(1, 9)), bytes(range(9, 17))
    traces = ExportTraceServiceRequest()
    rs = traces.resource_spans.add()
    _resource_group(rs)
    ss = rs.scope_spans.add()
    _scope(ss)
    span = ss.spans.add(trace_id=tid, span_id=sid, parent_span_id=pid, trace_state="k=v", flags=0x301,
                        name="op", kind=3, start_time_unix_nano=1_000_000_000_123,
                        end_time_unix_nano=1_000_000_500_456, dropped_attributes_count=5,
                        dropped_events_count=6, dropped_links_count=7)
    span.attributes.extend(_every_value_type())
    span.status.code = 2
    span.status.message = "bad"
    ev = span.events.add(time_unix_nano=1_000_000_000_200, name="exception", dropped_attributes_count=8)
    ev.attributes.extend([_kv("exception.type", AnyValue(string_value="E")),
                          _kv("exception.message", AnyValue(string_value="m")),
                          _kv("exception.stacktrace", AnyValue(string_value="st"))])
    link = span.links.add(trace_id=bytes(range(2, 18)), span_id=bytes(range(2, 10)), trace_state="a=b",
                          dropped_attributes_count=9, flags=0x100)
    link.attributes.extend([_kv("l", AnyValue(int_value=1))])
    assert not otlp.export_request(daemon.address, traces).HasField("partial_success")

    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    _resource_group(rl)
    sl = rl.scope_logs.add()
    _scope(sl)
    bodies = [AnyValue(string_value="plain"), AnyValue(int_value=5),
              AnyValue(kvlist_value=KeyValueList(values=[_kv("k", AnyValue(bool_value=True))])),
              AnyValue(bytes_value=b"\x01"), AnyValue()]
    for i, body in enumerate(bodies):
        rec = sl.log_records.add(time_unix_nano=10 + i, observed_time_unix_nano=20 + i, severity_number=13,
                                 severity_text="WARN", body=body, dropped_attributes_count=2, flags=1,
                                 trace_id=tid, span_id=sid, event_name="evt")
        rec.attributes.extend(_every_value_type())
    otlp.export_request(daemon.address, logs)

    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    _resource_group(rm)
    sm = rm.scope_metrics.add()
    _scope(sm)
    g = sm.metrics.add(name="g", description="d", unit="u")
    g.metadata.extend([_kv("meta", AnyValue(string_value="x"))])
    gp = g.gauge.data_points.add(time_unix_nano=5, start_time_unix_nano=4, as_double=1.5, flags=1)
    gp.attributes.extend([_kv("a", AnyValue(string_value="b"))])
    gp.exemplars.add(time_unix_nano=6, as_int=3, trace_id=tid, span_id=sid).filtered_attributes.extend(
        [_kv("f", AnyValue(int_value=1))])
    s = sm.metrics.add(name="s")
    s.sum.aggregation_temporality = 1
    s.sum.is_monotonic = True
    s.sum.data_points.add(time_unix_nano=5, as_int=2**62)
    h = sm.metrics.add(name="h")
    h.histogram.aggregation_temporality = 2
    h.histogram.data_points.add(time_unix_nano=5, count=3, sum=6.0, bucket_counts=[1, 2], explicit_bounds=[1.0],
                                min=0.5, max=4.0)
    h.histogram.data_points.add(time_unix_nano=6, count=0, bucket_counts=[], explicit_bounds=[])
    e = sm.metrics.add(name="e")
    e.exponential_histogram.aggregation_temporality = 1
    ep = e.exponential_histogram.data_points.add(time_unix_nano=5, count=4, sum=8.0, scale=3, zero_count=1,
                                                 zero_threshold=0.001, min=0.1, max=5.0)
    ep.positive.offset, ep.negative.offset = 2, -1
    ep.positive.bucket_counts.extend([1, 1])
    ep.negative.bucket_counts.extend([1])
    q = sm.metrics.add(name="q")
    qp = q.summary.data_points.add(time_unix_nano=5, count=10, sum=20.0)
    qp.quantile_values.add(quantile=0.5, value=2.0)
    qp.quantile_values.add(quantile=0.99, value=9.0)
    otlp.export_request(daemon.address, metrics)
    assert daemon.terminate() == 0

    row = query(db_path, f"""
        SELECT epoch_ns(Timestamp), TraceId, SpanId, ParentSpanId, TraceState, TraceFlags, SpanName, SpanKind,
               SpanAttributes, Duration, StatusCode, StatusMessage, DroppedAttributesCount, DroppedEventsCount,
               DroppedLinksCount, {RESOURCE_SQL} FROM otel_traces""")
    assert len(row) == 1
    r = row[0]
    assert r[:8] == (1_000_000_000_123, tid.hex(), sid.hex(), pid.hex(), "k=v", 0x301, "op", "Client")
    assert json.loads(r[8]) == EVERY_VALUE_JSON
    assert r[9:15] == (500_333, "Error", "bad", 5, 6, 7)
    assert r[15:] == RESOURCE_ROW
    assert query(db_path, "SELECT epoch_ns(Timestamp), Name, Attributes, DroppedAttributesCount, RunId "
                          "FROM otel_traces_events") == [
        (1_000_000_000_200, "exception",
         '{"exception.type":"E","exception.message":"m","exception.stacktrace":"st"}', 8, "run-raw")]
    assert query(db_path, "SELECT LinkedTraceId, LinkedSpanId, TraceState, Flags, Attributes, "
                          "DroppedAttributesCount FROM otel_traces_links") == [
        (bytes(range(2, 18)).hex(), bytes(range(2, 10)).hex(), "a=b", 0x100, '{"l":1}', 9)]

    log_rows = query(db_path, f"""
        SELECT epoch_ns(Timestamp), epoch_ns(ObservedTimestamp), SeverityNumber, SeverityText, Body, BodyType,
               DroppedAttributesCount, TraceFlags, TraceId, SpanId, EventName, LogAttributes, {RESOURCE_SQL}
        FROM otel_logs ORDER BY Timestamp""")
    assert [(x[4], x[5]) for x in log_rows] == [
        ("plain", "string"), ("5", "int"), ('{"k":true}', "kvlist"), ('{"bytesValue":"AQ=="}', "bytes"),
        (None, "empty")]
    first = log_rows[0]
    assert first[:4] == (10, 20, 13, "WARN") and first[6:11] == (2, 1, tid.hex(), sid.hex(), "evt")
    assert json.loads(first[11]) == EVERY_VALUE_JSON
    assert first[12:] == RESOURCE_ROW

    assert query(db_path, f"""SELECT MetricName, MetricDescription, MetricUnit, MetricMetadata, Attributes,
                                     epoch_ns(StartTimeUnix), epoch_ns(TimeUnix), Flags, Value, ValueInt, Exemplars,
                                     {RESOURCE_SQL} FROM otel_metrics_gauge""") == [
        ("g", "d", "u", '{"meta":"x"}', '{"a":"b"}', 4, 5, 1, 1.5, None,
         json.dumps([{"TimeUnix": 6, "Value": 3, "ValueType": "as_int", "TraceId": tid.hex(), "SpanId": sid.hex(),
                      "FilteredAttributes": {"f": 1}}], separators=(",", ":")), *RESOURCE_ROW)]
    assert query(db_path, "SELECT Value, ValueInt, AggregationTemporality, IsMonotonic, StartTimeUnix "
                          "FROM otel_metrics_sum") == [(float(2**62), 2**62, 1, True, None)]
    assert query(db_path, "SELECT Count, Sum, BucketCounts, ExplicitBounds, Min, Max, AggregationTemporality "
                          "FROM otel_metrics_histogram ORDER BY TimeUnix") == [
        (3, 6.0, [1, 2], [1.0], 0.5, 4.0, 2), (0, None, [], [], None, None, 2)]
    assert query(db_path, """SELECT Count, Sum, Scale, ZeroCount, ZeroThreshold, PositiveOffset,
                                    PositiveBucketCounts, NegativeOffset, NegativeBucketCounts, Min, Max,
                                    AggregationTemporality FROM otel_metrics_exponential_histogram""") == [
        (4, 8.0, 3, 1, 0.001, 2, [1, 1], -1, [1], 0.1, 5.0, 1)]
    assert query(db_path, "SELECT Count, Sum, ValueAtQuantiles FROM otel_metrics_summary") == [
        (10, 20.0, [{"Quantile": 0.5, "Value": 2.0}, {"Quantile": 0.99, "Value": 9.0}])]
