"""Arrow layouts of the storage tables, for the decoder to fill column by column.

The DuckDB DDL in ``storage/schema/`` is the source of truth; ``tests/test_schema.py`` checks that
these layouts name the same columns, so a column added on one side cannot be silently dropped.
JSON columns travel as UTF-8 bytes from orjson and become Arrow strings in one vectorised cast.
"""

from __future__ import annotations

import pyarrow as pa

TRACES = "otel_traces"
EVENTS = "otel_traces_events"
LINKS = "otel_traces_links"
LOGS = "otel_logs"
METRIC_TABLES = {
    "gauge": "otel_metrics_gauge",
    "sum": "otel_metrics_sum",
    "histogram": "otel_metrics_histogram",
    "exponential_histogram": "otel_metrics_exponential_histogram",
    "summary": "otel_metrics_summary",
}

JSON = pa.binary()  # marker: cast to string after building
TS = pa.timestamp("ns")
U32, I32, I64, U64, F64 = pa.uint32(), pa.int32(), pa.int64(), pa.uint64(), pa.float64()
STR = pa.string()

_RESOURCE = [
    ("ServiceName", STR),
    ("RunId", STR),
    ("ResourceAttributes", JSON),
    ("ResourceSchemaUrl", STR),
    ("ResourceDroppedAttributesCount", U32),
]
_SCOPE = [
    ("ScopeName", STR),
    ("ScopeVersion", STR),
    ("ScopeAttributes", JSON),
    ("ScopeDroppedAttributesCount", U32),
    ("ScopeSchemaUrl", STR),
]
_METRIC = [
    ("MetricName", STR),
    ("MetricDescription", STR),
    ("MetricUnit", STR),
    ("MetricMetadata", JSON),
    ("Attributes", JSON),
    ("StartTimeUnix", TS),
    ("TimeUnix", TS),
    ("Flags", U32),
]

LAYOUTS: dict[str, list[tuple[str, pa.DataType]]] = {
    TRACES: [
        ("Timestamp", TS),
        ("TraceId", STR),
        ("SpanId", STR),
        ("ParentSpanId", STR),
        ("TraceState", STR),
        ("TraceFlags", U32),
        ("SpanName", STR),
        ("SpanKind", STR),
        *_RESOURCE,
        *_SCOPE,
        ("SpanAttributes", JSON),
        ("Duration", I64),
        ("StatusCode", STR),
        ("StatusMessage", STR),
        ("DroppedAttributesCount", U32),
        ("DroppedEventsCount", U32),
        ("DroppedLinksCount", U32),
    ],
    EVENTS: [
        ("TraceId", STR),
        ("SpanId", STR),
        ("RunId", STR),
        ("Timestamp", TS),
        ("Name", STR),
        ("Attributes", JSON),
        ("DroppedAttributesCount", U32),
    ],
    LINKS: [
        ("TraceId", STR),
        ("SpanId", STR),
        ("RunId", STR),
        ("LinkedTraceId", STR),
        ("LinkedSpanId", STR),
        ("TraceState", STR),
        ("Flags", U32),
        ("Attributes", JSON),
        ("DroppedAttributesCount", U32),
    ],
    LOGS: [
        ("Timestamp", TS),
        ("ObservedTimestamp", TS),
        ("TraceId", STR),
        ("SpanId", STR),
        ("TraceFlags", U32),
        ("SeverityText", STR),
        ("SeverityNumber", I32),
        *_RESOURCE,
        ("Body", STR),
        ("BodyType", STR),
        ("EventName", STR),
        *_SCOPE,
        ("LogAttributes", JSON),
        ("DroppedAttributesCount", U32),
    ],
    METRIC_TABLES["gauge"]: [
        *_RESOURCE, *_SCOPE, *_METRIC,
        ("Exemplars", JSON), ("Value", F64), ("ValueInt", I64),
    ],
    METRIC_TABLES["sum"]: [
        *_RESOURCE, *_SCOPE, *_METRIC,
        ("Exemplars", JSON), ("Value", F64), ("ValueInt", I64),
        ("AggregationTemporality", I32), ("IsMonotonic", pa.bool_()),
    ],
    METRIC_TABLES["histogram"]: [
        *_RESOURCE, *_SCOPE, *_METRIC,
        ("Exemplars", JSON), ("Count", U64), ("Sum", F64),
        ("BucketCounts", pa.list_(U64)), ("ExplicitBounds", pa.list_(F64)),
        ("Min", F64), ("Max", F64), ("AggregationTemporality", I32),
    ],
    METRIC_TABLES["exponential_histogram"]: [
        *_RESOURCE, *_SCOPE, *_METRIC,
        ("Exemplars", JSON), ("Count", U64), ("Sum", F64), ("Scale", I32),
        ("ZeroCount", U64), ("ZeroThreshold", F64),
        ("PositiveOffset", I32), ("PositiveBucketCounts", pa.list_(U64)),
        ("NegativeOffset", I32), ("NegativeBucketCounts", pa.list_(U64)),
        ("Min", F64), ("Max", F64), ("AggregationTemporality", I32),
    ],
    METRIC_TABLES["summary"]: [
        *_RESOURCE, *_SCOPE, *_METRIC,
        ("Count", U64), ("Sum", F64),
        ("ValueAtQuantiles", pa.list_(pa.struct([("Quantile", F64), ("Value", F64)]))),
    ],
}

ALL_TABLES = tuple(LAYOUTS)


def empty_columns(table: str) -> dict[str, list]:
    return {name: [] for name, _ in LAYOUTS[table]}


def build(columns_by_table: dict[str, dict[str, list]]) -> dict[str, pa.Table]:
    """Python column lists → Arrow tables; empty tables are left out."""
    out: dict[str, pa.Table] = {}
    for table, cols in columns_by_table.items():
        layout = LAYOUTS[table]
        first = cols[layout[0][0]]
        if not first:
            continue
        arrays = []
        for name, typ in layout:
            if typ is JSON:
                arrays.append(pa.array(cols[name], pa.binary()).cast(STR))
            else:
                arrays.append(pa.array(cols[name], typ))
        out[table] = pa.Table.from_arrays(arrays, names=[n for n, _ in layout])
    return out


_JSON_TYPE = pa.json_(STR)


def json_typed(table_name: str, table: pa.Table) -> pa.Table:
    """The JSON columns of a decoded table typed as Arrow's JSON extension, so DuckDB stores them as
    JSON without parsing each value again (~1 µs a row; the decoders wrote them with a JSON encoder).
    Tables that are not ours pass unchanged."""
    layout = LAYOUTS.get(table_name)
    if layout is None:
        return table
    for name, typ in layout:
        i = table.schema.get_field_index(name)
        if typ is JSON and i >= 0 and table.schema.field(i).type == STR:
            column = pa.chunked_array([pa.ExtensionArray.from_storage(_JSON_TYPE, chunk)
                                       for chunk in table.column(i).chunks], _JSON_TYPE)
            table = table.set_column(i, name, column)
    return table
