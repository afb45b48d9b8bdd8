"""OTLP export requests (serialized protobuf) → columnar Arrow batches, one per storage table.

Pure functions of bytes, so they can run in a worker process: the gRPC thread hands over the raw
request and gets back Arrow tables, item counts and the reasons for any rejected item. Validation
happens here too, because OTLP asks a receiver to reject bad items one by one (``partial_success``)
rather than the whole request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_triage.collector import tables
from otel_triage.collector.anyvalue import attributes_dict, attributes_json, double, kind_name, to_python
from otel_triage.collector.errors import InvalidArgument

RUN_ID_KEY = "cicd.pipeline.run.id"
SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
MAX_REASONS = 5
# Timestamps are stored as signed 64-bit nanoseconds (DuckDB TIMESTAMP_NS, Arrow timestamp[ns]), which
# end in April 2262; OTLP's fixed64 goes to 2^64 - 1. An item with a later time is rejected alone
# (partial success): failing the whole request would make exporters retry, then drop, good items too.
MAX_TIME_NS = (1 << 63) - 1


class MalformedRequest(InvalidArgument):
    """The request bytes are not a valid OTLP export request (→ INVALID_ARGUMENT)."""


@dataclass
class Limits:
    """Per-item limits; an item beyond them is rejected alone, the rest of its request is kept."""

    max_item_bytes: int = 1 << 20  # attributes + body of one span / log record / data point


@dataclass
class Decoded:
    signal: str
    tables: dict[str, pa.Table]
    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.reasons)
        return "; ".join(self.reasons) + (f" (and {more} more)" if more > 0 else "")


@dataclass
class _Resource:
    """Columns shared by every item under one resource and scope, computed once per group."""

    service: str
    run_id: str | None
    attributes: bytes
    schema_url: str
    dropped: int

    @classmethod
    def of(cls, group: Any, default_run_id: str | None) -> _Resource:
        attrs = attributes_dict(group.resource.attributes)
        service = attrs.get("service.name", "")
        run_id = attrs.get(RUN_ID_KEY)
        return cls(
            service=service if isinstance(service, str) else str(service),
            run_id=str(run_id) if run_id not in (None, "") else default_run_id,
            attributes=orjson.dumps(attrs),
            schema_url=group.schema_url,
            dropped=group.resource.dropped_attributes_count,
        )

    def extend(self, cols: dict[str, list], n: int) -> None:
        cols["ServiceName"] += [self.service] * n
        cols["RunId"] += [self.run_id] * n
        cols["ResourceAttributes"] += [self.attributes] * n
        cols["ResourceSchemaUrl"] += [self.schema_url] * n
        cols["ResourceDroppedAttributesCount"] += [self.dropped] * n


def _extend_scope(cols: dict[str, list], group: Any, n: int) -> None:
    scope = group.scope
    cols["ScopeName"] += [scope.name] * n
    cols["ScopeVersion"] += [scope.version] * n
    cols["ScopeAttributes"] += [attributes_json(scope.attributes)] * n
    cols["ScopeDroppedAttributesCount"] += [scope.dropped_attributes_count] * n
    cols["ScopeSchemaUrl"] += [group.schema_url] * n


def _parse(message_type: type, data: bytes) -> Any:
    request = message_type()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError) as exc:  # upb raises DecodeError for bad wire data and UTF-8
        raise MalformedRequest(f"cannot parse {message_type.__name__}: {exc}") from exc
    return request


def _time_error(**times: int) -> str | None:
    for name, value in times.items():
        if value >= MAX_TIME_NS:
            return f"{name} {value} is after 2262-04-11, beyond a 64-bit signed nanosecond timestamp"
    return None


def _events_time_error(events: Any) -> str | None:
    return next(filter(None, (_time_error(event_time_unix_nano=ev.time_unix_nano) for ev in events)), None)


def _long_value(span: Any, limit: int) -> str | None:
    """An attribute string longer than the item limit makes the item too large whatever else it
    holds: say so without building its JSON (a 60 MB value would be copied twice more for nothing).
    ByteSize (C, cheap) bounds the strings' lengths, so most items skip the loop."""
    if span.ByteSize() <= limit:
        return None
    for kv in span.attributes:
        if len(kv.value.string_value.encode()) > limit:
            return f"attribute {kv.key!r} holds a string above the {limit}-byte item limit"
    return None


def _id_error(what: str, raw: bytes, size: int, *, optional: bool) -> str | None:
    if len(raw) == size:
        if raw == bytes(size):
            return f"{what} is all zeroes (invalid per the OTLP spec)"
        return None
    if optional and not raw:
        return None
    return f"{what} has {len(raw)} bytes, expected {size}"


def decode_traces(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    request = _parse(ExportTraceServiceRequest, data)
    spans = tables.empty_columns(tables.TRACES)
    events = tables.empty_columns(tables.EVENTS)
    links = tables.empty_columns(tables.LINKS)
    out = Decoded("traces", {})
    kinds, codes = SPAN_KINDS, STATUS_CODES
    for rs in request.resource_spans:
        resource = _Resource.of(rs, default_run_id)
        for ss in rs.scope_spans:
            kept = 0
            for span in ss.spans:
                tid, sid, pid = span.trace_id, span.span_id, span.parent_span_id
                problem = (
                    _id_error("trace_id", tid, 16, optional=False)
                    or _id_error("span_id", sid, 8, optional=False)
                    or _id_error("parent_span_id", pid, 8, optional=True)
                    or _time_error(start_time_unix_nano=span.start_time_unix_nano,
                                   end_time_unix_nano=span.end_time_unix_nano)
                    or (_events_time_error(span.events) if span.events else None)
                )
                long_value = _long_value(span, limits.max_item_bytes)
                attrs = attributes_json(span.attributes) if long_value is None else b""
                if problem is None and long_value is not None:
                    problem = long_value
                if problem is None and len(attrs) > limits.max_item_bytes:
                    problem = f"attributes are {len(attrs)} bytes, above the {limits.max_item_bytes}-byte item limit"
                if problem is not None:
                    out.reject(f"span {span.name!r}: {problem}")
                    continue
                kept += 1
                tid_hex, sid_hex = tid.hex(), sid.hex()
                start = span.start_time_unix_nano
                spans["Timestamp"].append(start)
                spans["TraceId"].append(tid_hex)
                spans["SpanId"].append(sid_hex)
                spans["ParentSpanId"].append(pid.hex())
                spans["TraceState"].append(span.trace_state)
                spans["TraceFlags"].append(span.flags)
                spans["SpanName"].append(span.name)
                spans["SpanKind"].append(kinds[span.kind] if span.kind < 6 else str(span.kind))
                spans["SpanAttributes"].append(attrs)
                spans["Duration"].append(span.end_time_unix_nano - start)
                status = span.status
                spans["StatusCode"].append(codes[status.code] if status.code < 3 else str(status.code))
                spans["StatusMessage"].append(status.message)
                spans["DroppedAttributesCount"].append(span.dropped_attributes_count)
                spans["DroppedEventsCount"].append(span.dropped_events_count)
                spans["DroppedLinksCount"].append(span.dropped_links_count)
                for ev in span.events:
                    events["TraceId"].append(tid_hex)
                    events["SpanId"].append(sid_hex)
                    events["RunId"].append(resource.run_id)
                    events["Timestamp"].append(ev.time_unix_nano)
                    events["Name"].append(ev.name)
                    events["Attributes"].append(attributes_json(ev.attributes))
                    events["DroppedAttributesCount"].append(ev.dropped_attributes_count)
                for link in span.links:
                    links["TraceId"].append(tid_hex)
                    links["SpanId"].append(sid_hex)
                    links["RunId"].append(resource.run_id)
                    links["LinkedTraceId"].append(link.trace_id.hex())
                    links["LinkedSpanId"].append(link.span_id.hex())
                    links["TraceState"].append(link.trace_state)
                    links["Flags"].append(link.flags)
                    links["Attributes"].append(attributes_json(link.attributes))
                    links["DroppedAttributesCount"].append(link.dropped_attributes_count)
            if kept:
                resource.extend(spans, kept)
                _extend_scope(spans, ss, kept)
                out.accepted += kept
    out.tables = tables.build({tables.TRACES: spans, tables.EVENTS: events, tables.LINKS: links})
    return out


def decode_logs(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    request = _parse(ExportLogsServiceRequest, data)
    logs = tables.empty_columns(tables.LOGS)
    out = Decoded("logs", {})
    for rl in request.resource_logs:
        resource = _Resource.of(rl, default_run_id)
        for sl in rl.scope_logs:
            kept = 0
            for rec in sl.log_records:
                problem = (
                    _id_error("trace_id", rec.trace_id, 16, optional=True)
                    or _id_error("span_id", rec.span_id, 8, optional=True)
                    or _time_error(time_unix_nano=rec.time_unix_nano,
                                   observed_time_unix_nano=rec.observed_time_unix_nano)
                )
                attrs = attributes_json(rec.attributes)
                body_type = kind_name(rec.body)
                if body_type == "string":
                    body: str | None = rec.body.string_value
                elif body_type == "empty":
                    body = None
                else:
                    body = orjson.dumps(to_python(rec.body)).decode()
                size = len(attrs) + (len(body) if body else 0)
                if problem is None and size > limits.max_item_bytes:
                    problem = f"body and attributes are {size} bytes, above the {limits.max_item_bytes}-byte item limit"
                if problem is not None:
                    out.reject(f"log record: {problem}")
                    continue
                kept += 1
                logs["Timestamp"].append(rec.time_unix_nano or None)
                logs["ObservedTimestamp"].append(rec.observed_time_unix_nano or None)
                logs["TraceId"].append(rec.trace_id.hex())
                logs["SpanId"].append(rec.span_id.hex())
                logs["TraceFlags"].append(rec.flags)
                logs["SeverityText"].append(rec.severity_text)
                logs["SeverityNumber"].append(rec.severity_number)
                logs["Body"].append(body)
                logs["BodyType"].append(body_type)
                logs["EventName"].append(rec.event_name)
                logs["LogAttributes"].append(attrs)
                logs["DroppedAttributesCount"].append(rec.dropped_attributes_count)
            if kept:
                resource.extend(logs, kept)
                _extend_scope(logs, sl, kept)
                out.accepted += kept
    out.tables = tables.build({tables.LOGS: logs})
    return out


def _exemplars(points_exemplars: Any) -> bytes:
    if not points_exemplars:
        return b"[]"
    return orjson.dumps(
        [
            {
                "TimeUnix": e.time_unix_nano,
                "Value": e.as_int if e.WhichOneof("value") == "as_int" else double(e.as_double),
                "ValueType": e.WhichOneof("value") or "",
                "TraceId": e.trace_id.hex(),
                "SpanId": e.span_id.hex(),
                "FilteredAttributes": attributes_dict(e.filtered_attributes),
            }
            for e in points_exemplars
        ]
    )


def _common_point(cols: dict[str, list], metric: Any, meta: bytes, p: Any) -> bytes:
    attrs = attributes_json(p.attributes)
    cols["MetricName"].append(metric.name)
    cols["MetricDescription"].append(metric.description)
    cols["MetricUnit"].append(metric.unit)
    cols["MetricMetadata"].append(meta)
    cols["Attributes"].append(attrs)
    cols["StartTimeUnix"].append(p.start_time_unix_nano or None)
    cols["TimeUnix"].append(p.time_unix_nano)
    cols["Flags"].append(p.flags)
    return attrs


def _optional(p: Any, name: str) -> float | None:
    return getattr(p, name) if p.HasField(name) else None


def decode_metrics(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    request = _parse(ExportMetricsServiceRequest, data)
    cols = {t: tables.empty_columns(t) for t in tables.METRIC_TABLES.values()}
    out = Decoded("metrics", {})
    for rm in request.resource_metrics:
        resource = _Resource.of(rm, default_run_id)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue  # a metric without data carries no points to count or keep
                table = tables.METRIC_TABLES[kind]
                c = cols[table]
                body = getattr(metric, kind)
                meta = attributes_json(metric.metadata)
                kept = 0
                for p in body.data_points:
                    if len(p.attributes) and p.ByteSize() > limits.max_item_bytes:
                        out.reject(f"metric {metric.name!r}: data point above the {limits.max_item_bytes}-byte item limit")
                        continue
                    late = _time_error(time_unix_nano=p.time_unix_nano, start_time_unix_nano=p.start_time_unix_nano)
                    if late:
                        out.reject(f"metric {metric.name!r}: data point {late}")
                        continue
                    kept += 1
                    _common_point(c, metric, meta, p)
                    if kind in ("gauge", "sum"):
                        is_int = p.WhichOneof("value") == "as_int"
                        c["Value"].append(float(p.as_int) if is_int else p.as_double)
                        c["ValueInt"].append(p.as_int if is_int else None)
                        c["Exemplars"].append(_exemplars(p.exemplars))
                        if kind == "sum":
                            c["AggregationTemporality"].append(body.aggregation_temporality)
                            c["IsMonotonic"].append(body.is_monotonic)
                    elif kind == "histogram":
                        c["Exemplars"].append(_exemplars(p.exemplars))
                        c["Count"].append(p.count)
                        c["Sum"].append(_optional(p, "sum"))
                        c["BucketCounts"].append(list(p.bucket_counts))
                        c["ExplicitBounds"].append(list(p.explicit_bounds))
                        c["Min"].append(_optional(p, "min"))
                        c["Max"].append(_optional(p, "max"))
                        c["AggregationTemporality"].append(body.aggregation_temporality)
                    elif kind == "exponential_histogram":
                        c["Exemplars"].append(_exemplars(p.exemplars))
                        c["Count"].append(p.count)
                        c["Sum"].append(_optional(p, "sum"))
                        c["Scale"].append(p.scale)
                        c["ZeroCount"].append(p.zero_count)
                        c["ZeroThreshold"].append(p.zero_threshold)
                        c["PositiveOffset"].append(p.positive.offset)
                        c["PositiveBucketCounts"].append(list(p.positive.bucket_counts))
                        c["NegativeOffset"].append(p.negative.offset)
                        c["NegativeBucketCounts"].append(list(p.negative.bucket_counts))
                        c["Min"].append(_optional(p, "min"))
                        c["Max"].append(_optional(p, "max"))
                        c["AggregationTemporality"].append(body.aggregation_temporality)
                    else:  # summary
                        c["Count"].append(p.count)
                        c["Sum"].append(p.sum)
                        c["ValueAtQuantiles"].append(
                            [{"Quantile": q.quantile, "Value": q.value} for q in p.quantile_values]
                        )
                if kept:
                    resource.extend(c, kept)
                    _extend_scope(c, sm, kept)
                    out.accepted += kept
    out.tables = tables.build(cols)
    return out


DECODERS = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}


def decode(signal: str, data: bytes, default_run_id: str | None, limits: Limits) -> Decoded:
    """Entry point for worker processes (a module-level function pickles by name): traces and logs
    take the columnar path first (fastdecode, which imports this module: hence imported here)."""
    from otel_triage.collector import fastdecode

    return fastdecode.DECODERS[signal](data, default_run_id, limits)
