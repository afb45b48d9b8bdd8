"""The schema keeps every OTLP field, the decoder fills every column, and old files upgrade."""

from __future__ import annotations

import duckdb
import pytest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from otel_triage.collector import tables
from otel_triage.collector.storage import db

# Where each OTLP field lands. A field added to OTLP fails this test until it gets a column.
COVERED = {
    resource_pb2.Resource: {"attributes": "ResourceAttributes", "dropped_attributes_count":
                            "ResourceDroppedAttributesCount", "entity_refs": None},
    common_pb2.InstrumentationScope: {"name": "ScopeName", "version": "ScopeVersion",
                                      "attributes": "ScopeAttributes",
                                      "dropped_attributes_count": "ScopeDroppedAttributesCount"},
    trace_pb2.Span: {
        "trace_id": "TraceId", "span_id": "SpanId", "trace_state": "TraceState", "parent_span_id": "ParentSpanId",
        "flags": "TraceFlags", "name": "SpanName", "kind": "SpanKind", "start_time_unix_nano": "Timestamp",
        "end_time_unix_nano": "Duration", "attributes": "SpanAttributes",
        "dropped_attributes_count": "DroppedAttributesCount", "events": "otel_traces_events",
        "dropped_events_count": "DroppedEventsCount", "links": "otel_traces_links",
        "dropped_links_count": "DroppedLinksCount", "status": "StatusCode+StatusMessage",
    },
    trace_pb2.Span.Event: {"time_unix_nano": "Timestamp", "name": "Name", "attributes": "Attributes",
                           "dropped_attributes_count": "DroppedAttributesCount"},
    trace_pb2.Span.Link: {"trace_id": "LinkedTraceId", "span_id": "LinkedSpanId", "trace_state": "TraceState",
                          "attributes": "Attributes", "dropped_attributes_count": "DroppedAttributesCount",
                          "flags": "Flags"},
    logs_pb2.LogRecord: {
        "time_unix_nano": "Timestamp", "observed_time_unix_nano": "ObservedTimestamp",
        "severity_number": "SeverityNumber", "severity_text": "SeverityText", "body": "Body+BodyType",
        "attributes": "LogAttributes", "dropped_attributes_count": "DroppedAttributesCount", "flags": "TraceFlags",
        "trace_id": "TraceId", "span_id": "SpanId", "event_name": "EventName",
    },
    metrics_pb2.Metric: {"name": "MetricName", "description": "MetricDescription", "unit": "MetricUnit",
                         "gauge": "otel_metrics_gauge", "sum": "otel_metrics_sum",
                         "histogram": "otel_metrics_histogram",
                         "exponential_histogram": "otel_metrics_exponential_histogram",
                         "summary": "otel_metrics_summary", "metadata": "MetricMetadata"},
    metrics_pb2.NumberDataPoint: {"attributes": "Attributes", "start_time_unix_nano": "StartTimeUnix",
                                  "time_unix_nano": "TimeUnix", "as_double": "Value", "as_int": "ValueInt",
                                  "exemplars": "Exemplars", "flags": "Flags"},
    metrics_pb2.HistogramDataPoint: {"attributes": "Attributes", "start_time_unix_nano": "StartTimeUnix",
                                     "time_unix_nano": "TimeUnix", "count": "Count", "sum": "Sum",
                                     "bucket_counts": "BucketCounts", "explicit_bounds": "ExplicitBounds",
                                     "exemplars": "Exemplars", "flags": "Flags", "min": "Min", "max": "Max"},
    metrics_pb2.ExponentialHistogramDataPoint: {
        "attributes": "Attributes", "start_time_unix_nano": "StartTimeUnix", "time_unix_nano": "TimeUnix",
        "count": "Count", "sum": "Sum", "scale": "Scale", "zero_count": "ZeroCount",
        "positive": "PositiveOffset+PositiveBucketCounts", "negative": "NegativeOffset+NegativeBucketCounts",
        "flags": "Flags", "exemplars": "Exemplars", "min": "Min", "max": "Max", "zero_threshold": "ZeroThreshold"},
    metrics_pb2.SummaryDataPoint: {"attributes": "Attributes", "start_time_unix_nano": "StartTimeUnix",
                                   "time_unix_nano": "TimeUnix", "count": "Count", "sum": "Sum",
                                   "quantile_values": "ValueAtQuantiles", "flags": "Flags"},
}


@pytest.mark.parametrize("message", list(COVERED), ids=lambda m: m.DESCRIPTOR.full_name)
def test_every_otlp_field_has_a_home(message):
    fields = {f.name for f in message.DESCRIPTOR.fields}
    assert fields == set(COVERED[message]), "an OTLP field without a column: add one (and a schema version)"


def test_arrow_layouts_match_the_ddl(tmp_path):
    con = db.open_writer(tmp_path / "t.duckdb")
    for table, layout in tables.LAYOUTS.items():
        ddl = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
        ).fetchall()]
        assert sorted(name for name, _ in layout) == sorted(ddl), table  # inserts go BY NAME
    con.close()


def test_fresh_file_records_the_schema_version(tmp_path):
    con = db.open_writer(tmp_path / "t.duckdb")
    assert con.execute("SELECT value FROM triage_meta WHERE key='schema_version'").fetchone()[0] == str(
        db.SCHEMA_VERSION)
    con.close()


def test_a_file_from_a_newer_triage_is_refused_clearly(tmp_path):
    path = tmp_path / "t.duckdb"
    db.open_writer(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE triage_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(db.StoreError, match="newer than this triage understands"):
        db.open_writer(path)


def test_a_file_without_version_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # an empty file, as an older triage might have left behind
    con = db.open_reader(path)
    assert con.execute("SELECT count(*) FROM otel_traces").fetchone()[0] == 0
    con.close()
