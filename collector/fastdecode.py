"""The columnar decode path: OTLP bytes → Arrow tables without a Python object per span or attribute.

``ptars`` (Rust) turns the request into nested Arrow arrays; Arrow kernels flatten them into the
storage layouts of ``tables``, and ``columnar`` writes attribute JSON. Python runs per resource and
scope group, and per rare value (strings to escape, doubles, bytes, nested values), not per item.

The reference decoder (``decode``) stays the definition of every column. This path produces the
same tables for the requests it takes, and takes only requests whose every item is valid and
regular: anything else (an invalid id or time, an item over the size limit, a span kind outside
the enum, a repeated attribute key) raises ``Irregular`` and the request goes through the reference
decoder, which rejects items one by one as the OTLP spec asks. ``tests/test_fastdecode.py`` holds
the two paths to the same output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_triage.collector import decode as reference
from otel_triage.collector import rawattrs, tables
from otel_triage.collector.columnar import Irregular, attributes_json, hex_ids, value_json
from otel_triage.collector.decode import Decoded, Limits
from otel_triage.collector.skeleton import parse_groups

MAX_TIME_NS = (1 << 63) - 1
SPAN_KINDS = pa.array(["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"])
STATUS_CODES = pa.array(["Unset", "Ok", "Error"])
BODY_TYPES = ("string", "bool", "int", "double", "array", "kvlist", "bytes", "string_value_strindex")

_handlers: dict[type, Any] = {}
_handlers_lock = threading.Lock()


def _handler(message: type) -> Any:
    """One ptars handler per message type, shared by the threads (it holds the GIL while it
    converts), built on first use: it compiles the descriptors."""
    handler = _handlers.get(message)
    if handler is None:
        with _handlers_lock:
            handler = _handlers.get(message)
            if handler is None:
                import ptars  # on first use: the CLI's read commands never pay for it

                handler = ptars.HandlerPool([message.DESCRIPTOR.file]).get_for_message(message.DESCRIPTOR)
                _handlers[message] = handler
    return handler


def _record_batch(message: type, datas: list[bytes | bytearray]) -> pa.RecordBatch:
    """One row per request. ptars takes bytes only (a bytearray raises TypeError); the OTLP/HTTP
    receiver's body is a bytearray (copied for the call, the copy freed with it)."""
    try:
        return _handler(message).list_to_record_batch([d if isinstance(d, bytes) else bytes(d) for d in datas])
    except Exception as exc:  # not valid protobuf: the reference decoder says why (MalformedRequest)
        raise Irregular(f"ptars: {exc}") from None


def _children(lists: pa.Array) -> tuple[pa.StructArray, pa.Array]:
    """The items of a list column and, for each, the index of the row it belongs to."""
    return lists.flatten(), pc.list_parent_indices(lists)


def _check_ids(arr: pa.Array, size: int, optional: bool) -> None:
    lengths = pc.binary_length(arr)
    good = pc.equal(lengths, size)
    if optional:
        good = pc.or_(good, pc.equal(lengths, 0))
    if not pc.all(good).as_py() or pc.any(pc.equal(arr, pa.scalar(bytes(size), pa.binary()))).as_py():
        raise Irregular("an id of the wrong size or all zeroes")


def _check_times(*arrays: pa.Array) -> None:
    for arr in arrays:
        if len(arr) and pc.max(arr).as_py() >= MAX_TIME_NS:
            raise Irregular("a time beyond 2262")


def _ts(arr: pa.Array, zero_is_null: bool = False) -> pa.Array:
    out = pc.cast(arr, pa.int64())
    if zero_is_null:
        out = pc.if_else(pc.equal(out, 0), pa.scalar(None, pa.int64()), out)
    return out.cast(tables.TS)


def _enum_names(codes: pa.Array, names: pa.Array) -> pa.Array:
    if len(codes) and (pc.min(codes).as_py() < 0 or pc.max(codes).as_py() >= len(names)):
        raise Irregular("an enum value outside the known ones")
    return names.take(codes)


def _check_raw_size(attrs: pa.Array, max_item_bytes: int) -> None:
    """Before any JSON is built: a string value longer than the limit makes its item too large (its
    JSON is longer still), and the reference decoder rejects it; large requests go there early."""
    flat = attrs.flatten()
    if len(flat):
        strings = flat.field("value").field("string_value")
        if len(strings) and (pc.max(pc.binary_length(strings)).as_py() or 0) > max_item_bytes:
            raise Irregular("an item above the size limit")


def _check_size(json_text: pa.Array, max_item_bytes: int) -> None:
    if len(json_text) and pc.max(pc.binary_length(json_text)).as_py() > max_item_bytes:
        raise Irregular("an item above the size limit")


def _group_columns(groups: list[tuple[Any, Any]], default_run_id: str | None, index: pa.Array,
                   layout: str = tables.TRACES) -> dict[str, pa.Array]:
    """Resource and scope columns: computed per (resource, scope) group in Python, taken per item."""
    cols: dict[str, list] = {name: [] for name, _ in tables.LAYOUTS[layout]}
    run_ids = []
    for outer, inner in groups:
        resource = reference._Resource.of(outer, default_run_id)  # the reference's own rules
        resource.extend(cols, 1)
        reference._extend_scope(cols, inner, 1)
        run_ids.append(resource.run_id)
    out = {}
    for name, typ in tables.LAYOUTS[layout]:
        if name.startswith(("Resource", "Scope")) or name in ("ServiceName", "RunId"):
            values = cols[name]
            arr = pa.array(values, pa.binary()).cast(pa.string()) if typ is tables.JSON else pa.array(values, typ)
            out[name] = arr.take(index)
    return out


def _groups(requests: list[Any], outer_field: str, inner_field: str) -> list[tuple[Any, Any]]:
    return [(outer, inner) for request in requests
            for outer in getattr(request, outer_field) for inner in getattr(outer, inner_field)]


def _items_per_request(batch: pa.RecordBatch, outer: pa.StructArray, inner_field: str, group: pa.Array) -> list[int]:
    """How many items each request (row of ``batch``) holds, from the list nesting."""
    if batch.num_rows == 1:
        return [len(group)]
    request_of_outer = pc.list_parent_indices(batch.column(0))
    request_of_inner = request_of_outer.take(pc.list_parent_indices(outer.field(inner_field)))
    counts = np.bincount(request_of_inner.take(group).to_numpy(), minlength=batch.num_rows)
    return [int(c) for c in counts]


def _table(name: str, cols: dict[str, pa.Array]) -> pa.Table:
    layout = tables.LAYOUTS[name]
    return pa.Table.from_arrays([cols[n] for n, _ in layout], names=[n for n, _ in layout])


def build_traces(parse: Callable[[], Any], data: bytes, default_run_id: str | None,
                  max_item_bytes: int) -> tuple[dict[str, pa.Table], int]:
    """(tables, spans) of a request; raises Irregular when the reference decoder must do it.

    ``parse`` gives the request's groups (``skeleton.parse_groups``: resources and scopes, not the
    items, which ptars has checked, UTF-8 included), called after the columns are checked."""
    built, counts = _traces(lambda: [parse()], [data], default_run_id, max_item_bytes)
    return built, counts[0]


def _traces(parse: Callable[[], list[Any]], datas: list[bytes], default_run_id: str | None,
            max_item_bytes: int) -> tuple[dict[str, pa.Table], list[int]]:
    """``build_traces`` of several requests at once: (tables, spans of each request). Each Arrow
    kernel call costs the same for 500 spans as for 5, so one call for many requests is cheaper."""
    batch = _record_batch(rawattrs.RAW_TRACES, datas)  # attributes as bytes: rawattrs parses them
    rs, _ = _children(batch.column(0))
    ss, _ = _children(rs.field("scope_spans"))
    spans, group = _children(ss.field("spans"))
    n = len(spans)
    if n == 0:
        parse()  # its groups are still checked (ptars checked the bytes too)
        return {}, [0] * len(datas)
    counts = _items_per_request(batch, rs, "scope_spans", group)
    f = dict(zip((t.name for t in spans.type), spans.flatten()))
    _check_ids(f["trace_id"], 16, optional=False)
    _check_ids(f["span_id"], 8, optional=False)
    _check_ids(f["parent_span_id"], 8, optional=True)
    _check_times(f["start_time_unix_nano"], f["end_time_unix_nano"])
    attrs = rawattrs.attributes_json(f["attributes"], max_item_bytes)
    _check_size(attrs, max_item_bytes)
    events, ev_span = _children(f["events"])
    links, link_span = _children(f["links"])
    ev = dict(zip((t.name for t in events.type), events.flatten()))
    _check_times(ev["time_unix_nano"])
    start = pc.cast(f["start_time_unix_nano"], pa.int64())
    status = dict(zip((t.name for t in spans.type.field("status").type), f["status"].flatten()))
    trace_hex, span_hex = hex_ids(f["trace_id"]), hex_ids(f["span_id"])
    cols = _group_columns(_groups(parse(), "resource_spans", "scope_spans"), default_run_id, group)
    cols.update({
        "Timestamp": start.cast(tables.TS),
        "TraceId": trace_hex,
        "SpanId": span_hex,
        "ParentSpanId": hex_ids(f["parent_span_id"]),
        "TraceState": f["trace_state"],
        "TraceFlags": f["flags"],
        "SpanName": f["name"],
        "SpanKind": _enum_names(f["kind"], SPAN_KINDS),
        "SpanAttributes": attrs,
        "Duration": pc.subtract(pc.cast(f["end_time_unix_nano"], pa.int64()), start),
        "StatusCode": _enum_names(pc.fill_null(status["code"], 0), STATUS_CODES),
        "StatusMessage": pc.fill_null(status["message"], ""),
        "DroppedAttributesCount": f["dropped_attributes_count"],
        "DroppedEventsCount": f["dropped_events_count"],
        "DroppedLinksCount": f["dropped_links_count"],
    })
    out = {tables.TRACES: _table(tables.TRACES, cols)}
    run_id = cols["RunId"]
    if len(events):
        out[tables.EVENTS] = _table(tables.EVENTS, {
            "TraceId": trace_hex.take(ev_span), "SpanId": span_hex.take(ev_span), "RunId": run_id.take(ev_span),
            "Timestamp": _ts(ev["time_unix_nano"]), "Name": ev["name"],
            "Attributes": rawattrs.attributes_json(ev["attributes"], max_item_bytes),
            "DroppedAttributesCount": ev["dropped_attributes_count"],
        })
    if len(links):
        lk = dict(zip((t.name for t in links.type), links.flatten()))
        out[tables.LINKS] = _table(tables.LINKS, {
            "TraceId": trace_hex.take(link_span), "SpanId": span_hex.take(link_span),
            "RunId": run_id.take(link_span), "LinkedTraceId": hex_ids(lk["trace_id"]),
            "LinkedSpanId": hex_ids(lk["span_id"]), "TraceState": lk["trace_state"], "Flags": lk["flags"],
            "Attributes": rawattrs.attributes_json(lk["attributes"], max_item_bytes),
            "DroppedAttributesCount": lk["dropped_attributes_count"],
        })
    return out, counts


def _body(body: pa.StructArray) -> tuple[pa.Array, pa.Array]:
    """(Body, BodyType) as the reference writes them: a string as is, other kinds as JSON, an
    empty or absent body NULL and 'empty'."""
    fields = dict(zip((f.name for f in body.type), body.flatten()))
    kind = pa.nulls(len(body), pa.string())
    for name, child in reversed(fields.items()):  # the first set field wins, as in the oneof
        kind = pc.if_else(pc.is_valid(child), name[: -len("_value")], kind)
    text = pc.if_else(pc.is_valid(fields["string_value"]), fields["string_value"], value_json(body))
    text = pc.if_else(pc.is_null(kind), pa.scalar(None, pa.string()), text)
    return text, kind.fill_null("empty")


def build_logs(parse: Callable[[], Any], data: bytes, default_run_id: str | None,
                max_item_bytes: int) -> tuple[dict[str, pa.Table], int]:
    """(tables, log records) of a parsed request; raises Irregular as ``build_traces`` does."""
    built, counts = _logs(lambda: [parse()], [data], default_run_id, max_item_bytes)
    return built, counts[0]


def _logs(parse: Callable[[], list[Any]], datas: list[bytes], default_run_id: str | None,
          max_item_bytes: int) -> tuple[dict[str, pa.Table], list[int]]:
    """``build_logs`` of several requests at once: (tables, log records of each request)."""
    batch = _record_batch(ExportLogsServiceRequest, datas)
    rl, _ = _children(batch.column(0))
    sl, _ = _children(rl.field("scope_logs"))
    records, group = _children(sl.field("log_records"))
    if len(records) == 0:
        parse()  # its groups are still checked (ptars checked the bytes too)
        return {}, [0] * len(datas)
    counts = _items_per_request(batch, rl, "scope_logs", group)
    f = dict(zip((t.name for t in records.type), records.flatten()))
    _check_ids(f["trace_id"], 16, optional=True)
    _check_ids(f["span_id"], 8, optional=True)
    _check_times(f["time_unix_nano"], f["observed_time_unix_nano"])
    _check_raw_size(f["attributes"], max_item_bytes)
    body_strings = f["body"].field("string_value")
    if len(body_strings) and (pc.max(pc.binary_length(body_strings)).as_py() or 0) > max_item_bytes:
        raise Irregular("a body above the size limit")
    attrs = attributes_json(f["attributes"])
    body, body_type = _body(f["body"])
    size = pc.add(pc.binary_length(attrs), pc.fill_null(pc.utf8_length(body), 0))
    if pc.max(size).as_py() > max_item_bytes:
        raise Irregular("an item above the size limit")
    cols = _group_columns(_groups(parse(), "resource_logs", "scope_logs"), default_run_id, group, tables.LOGS)
    cols.update({
        "Timestamp": _ts(f["time_unix_nano"], zero_is_null=True),
        "ObservedTimestamp": _ts(f["observed_time_unix_nano"], zero_is_null=True),
        "TraceId": hex_ids(f["trace_id"]), "SpanId": hex_ids(f["span_id"]), "TraceFlags": f["flags"],
        "SeverityText": f["severity_text"], "SeverityNumber": f["severity_number"],
        "Body": body, "BodyType": body_type, "EventName": f["event_name"], "LogAttributes": attrs,
        "DroppedAttributesCount": f["dropped_attributes_count"],
    })
    return {tables.LOGS: _table(tables.LOGS, cols)}, counts


def _fast(message: type, build: Callable[..., tuple[dict[str, pa.Table], int]], slow: Callable[..., Decoded],
          signal: str, data: bytes, default_run_id: str | None, limits: Limits) -> Decoded:
    """The columnar path for regular requests, the reference decoder (``slow``) for the others.
    Everything the columnar path built is dropped before the reference starts (a large request is
    held once)."""
    try:
        built, items = build(lambda: parse_groups(message, data), data, default_run_id, limits.max_item_bytes)
    except Irregular:
        built = None
    if built is None:  # outside the except block, whose traceback would keep the arrays alive
        return slow(data, default_run_id, limits)
    return Decoded(signal, built, accepted=items)


def decode_traces(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    return _fast(ExportTraceServiceRequest, build_traces, reference.decode_traces, "traces", data,
                 default_run_id, limits)


def decode_logs(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    return _fast(ExportLogsServiceRequest, build_logs, reference.decode_logs, "logs", data, default_run_id, limits)


def _metrics(parse: Callable[[], list[Any]], datas: list[bytes], default_run_id: str | None,
             max_item_bytes: int) -> tuple[dict[str, pa.Table], list[int]]:
    from otel_triage.collector import fastmetrics  # it imports this module: hence here

    return fastmetrics.metrics(parse, datas, default_run_id, max_item_bytes)


def build_metrics(parse: Callable[[], Any], data: bytes, default_run_id: str | None,
                  max_item_bytes: int) -> tuple[dict[str, pa.Table], int]:
    built, counts = _metrics(lambda: [parse()], [data], default_run_id, max_item_bytes)
    return built, counts[0]


_TOGETHER: dict[str, tuple[type, Callable[..., tuple[dict[str, pa.Table], list[int]]]]] = {
    "traces": (ExportTraceServiceRequest, _traces),
    "logs": (ExportLogsServiceRequest, _logs),
    "metrics": (ExportMetricsServiceRequest, _metrics),
}
TOGETHER = frozenset(_TOGETHER)  # the signals decode_together takes


def decode_together(signal: str, datas: list[bytes], default_run_id: str | None,
                    limits: Limits) -> tuple[dict[str, pa.Table], list[int]] | None:
    """Several requests of one signal in one columnar pass: (their tables, items of each request),
    or None when any of them is irregular or malformed (each must then be decoded alone, so that
    it alone gets its rejections or its error)."""
    message, build = _TOGETHER[signal]
    try:
        return build(lambda: [parse_groups(message, d) for d in datas], datas, default_run_id,
                     limits.max_item_bytes)
    except (Irregular, reference.MalformedRequest):
        return None


def decode_metrics(data: bytes, default_run_id: str | None = None, limits: Limits = Limits()) -> Decoded:
    return _fast(ExportMetricsServiceRequest, build_metrics, reference.decode_metrics, "metrics", data,
                 default_run_id, limits)


DECODERS = {"traces": decode_traces, "logs": decode_logs, "metrics": decode_metrics}
