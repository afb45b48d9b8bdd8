"""Write a triage DuckDB store into the Collector ClickHouse exporter's tables, as the exporter would.

Used by tests/test_clickhouse.py (and bench/clickhouse.py) to put the very runs the daemon stored
into chDB. The mapping (docs/clickhouse.md, "How the exporter writes what triage stores"):

- attribute values → ``Map(String, String)`` printed as the exporter's ``pcommon.Value.AsString``
  does: strings as is, ints and bools as text, doubles in the shortest form without a needless
  ``.0``, arrays and maps as JSON, bytes as base64;
- the run id the daemon resolved (``RunId``) → the resource attribute ``cicd.pipeline.run.id`` where
  the resource does not carry it already (JUnit reports, ``--run-id`` sidecar mode): in a Collector
  deployment the ``resource`` processor inserts it;
- span events and links → the Nested ``Events.*`` / ``Links.*`` columns of their span;
- a log record without a time → the exporter's ``Timestamp`` gets the observed time;
- histogram Min/Max absent → 0 (the exporter writes the Go zero value);
- kinds and status codes → ``Server`` / ``Error``, or ``SPAN_KIND_SERVER`` / ``STATUS_CODE_ERROR``
  with ``old_spelling`` (releases before the rename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "clickhouse"
CURRENT_DDL = FIXTURES / "exporter_current.sql"
OLDER_DDL = FIXTURES / "exporter_older.sql"

MACROS = [
    # pcommon.Value.AsString, for the JSON values triage stores
    """CREATE OR REPLACE TEMP MACRO go_str(v) AS CASE json_type(v)
        WHEN 'VARCHAR' THEN v ->> '$'
        WHEN 'DOUBLE' THEN CASE WHEN (v::DOUBLE) = trunc(v::DOUBLE) AND abs(v::DOUBLE) < 1e21
                                THEN ((v::DOUBLE)::HUGEINT)::VARCHAR ELSE (v::DOUBLE)::VARCHAR END
        WHEN 'OBJECT' THEN coalesce(v ->> '$.bytesValue', v::VARCHAR)
        ELSE v::VARCHAR END""",
    """CREATE OR REPLACE TEMP MACRO go_map(j) AS map_from_entries(list_transform(
        map_entries(json_transform(j, '"MAP(VARCHAR, JSON)"')), lambda e: {'key': e.key, 'value': go_str(e.value)}))""",
    """CREATE OR REPLACE TEMP MACRO with_run(ra, run) AS CASE
        WHEN run IS NOT NULL AND NOT map_contains(ra, 'cicd.pipeline.run.id')
        THEN map_concat(ra, MAP {'cicd.pipeline.run.id': run}) ELSE ra END""",
]

KIND_OLD = ("CASE SpanKind WHEN 'Server' THEN 'SPAN_KIND_SERVER' WHEN 'Client' THEN 'SPAN_KIND_CLIENT' "
            "WHEN 'Internal' THEN 'SPAN_KIND_INTERNAL' WHEN 'Producer' THEN 'SPAN_KIND_PRODUCER' "
            "WHEN 'Consumer' THEN 'SPAN_KIND_CONSUMER' ELSE 'SPAN_KIND_UNSPECIFIED' END")
CODE_OLD = ("CASE StatusCode WHEN 'Error' THEN 'STATUS_CODE_ERROR' WHEN 'Ok' THEN 'STATUS_CODE_OK' "
            "ELSE 'STATUS_CODE_UNSET' END")

TRACES = """
WITH ev AS (
    SELECT TraceId, SpanId, list(Timestamp) AS ts, list(Name) AS names, list(go_map(Attributes)) AS attrs
    FROM otel_traces_events GROUP BY ALL
), ln AS (
    SELECT TraceId, SpanId, list(LinkedTraceId) AS tids, list(LinkedSpanId) AS sids, list(TraceState) AS states,
           list(go_map(Attributes)) AS attrs
    FROM otel_traces_links GROUP BY ALL
)
SELECT t.Timestamp, t.TraceId, t.SpanId, t.ParentSpanId, t.TraceState, t.SpanName, {kind} AS SpanKind,
       t.ServiceName, with_run(go_map(t.ResourceAttributes), t.RunId) AS ResourceAttributes,
       t.ScopeName, t.ScopeVersion, go_map(t.SpanAttributes) AS SpanAttributes, t.Duration::{duration} AS Duration,
       {code} AS StatusCode, t.StatusMessage,
       coalesce(ev.ts, []) AS "Events.Timestamp", coalesce(ev.names, []) AS "Events.Name",
       coalesce(ev.attrs, []) AS "Events.Attributes",
       coalesce(ln.tids, []) AS "Links.TraceId", coalesce(ln.sids, []) AS "Links.SpanId",
       coalesce(ln.states, []) AS "Links.TraceState", coalesce(ln.attrs, []) AS "Links.Attributes"
FROM otel_traces AS t
LEFT JOIN ev USING (TraceId, SpanId)
LEFT JOIN ln USING (TraceId, SpanId)
"""

LOGS = """
SELECT coalesce(Timestamp, ObservedTimestamp) AS Timestamp, TraceId, SpanId, TraceFlags::UTINYINT AS TraceFlags,
       SeverityText, SeverityNumber::UTINYINT AS SeverityNumber, ServiceName, coalesce(Body, '') AS Body,
       ResourceSchemaUrl, with_run(go_map(ResourceAttributes), RunId) AS ResourceAttributes, ScopeSchemaUrl,
       ScopeName, ScopeVersion, go_map(ScopeAttributes) AS ScopeAttributes, go_map(LogAttributes) AS LogAttributes
       {event_name}
FROM otel_logs
"""

METRIC_COMMON = """
    with_run(go_map(ResourceAttributes), RunId) AS ResourceAttributes, ResourceSchemaUrl, ScopeName, ScopeVersion,
    go_map(ScopeAttributes) AS ScopeAttributes, ScopeDroppedAttributesCount AS ScopeDroppedAttrCount,
    ScopeSchemaUrl, ServiceName, MetricName, MetricDescription, MetricUnit, go_map(Attributes) AS Attributes,
    coalesce(StartTimeUnix, TimeUnix) AS StartTimeUnix, TimeUnix, Flags"""

METRICS = {
    "gauge": f"SELECT {METRIC_COMMON}, Value FROM otel_metrics_gauge",
    "sum": f"SELECT {METRIC_COMMON}, Value, AggregationTemporality, IsMonotonic FROM otel_metrics_sum",
    "histogram": (f"SELECT {METRIC_COMMON}, Count, coalesce(Sum, 0) AS Sum, BucketCounts, ExplicitBounds, "
                  "coalesce(Min, 0) AS Min, coalesce(Max, 0) AS Max, AggregationTemporality "
                  "FROM otel_metrics_histogram"),
}


def create_schema(client: Any, ddl: Path = CURRENT_DDL) -> None:
    """Run the exporter's DDL (statements split by lines holding only ';')."""
    for statement in ddl.read_text().split("\n;\n"):
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
        if body:
            client.command(body)


def load(store: Path | duckdb.DuckDBPyConnection, client: Any, database: str = "otel",
         old_spelling: bool = False) -> dict[str, int]:
    """Copy every span, log record and gauge/sum/histogram point of a triage store; rows per table."""
    con = duckdb.connect(str(store), read_only=True) if isinstance(store, Path) else store
    try:
        for macro in MACROS:
            con.execute(macro)
        columns = {r[0] for r in client.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = 'otel_logs'",
            parameters={"d": database}).result_rows}
        traces = TRACES.format(kind=KIND_OLD if old_spelling else "t.SpanKind",
                               code=CODE_OLD if old_spelling else "t.StatusCode",
                               duration="BIGINT" if old_spelling else "UBIGINT")
        queries = {"otel_traces": traces,
                   "otel_logs": LOGS.format(event_name=", EventName" if "EventName" in columns else ""),
                   **{f"otel_metrics_{k}": q for k, q in METRICS.items()}}
        counts = {}
        for table, sql in queries.items():
            reader = con.sql(sql).to_arrow_reader(100_000)
            counts[table] = 0
            for batch in reader:
                if batch.num_rows:
                    client.insert_arrow(f"{database}.{table}", batch_table(batch))
                    counts[table] += batch.num_rows
        return counts
    finally:
        if isinstance(store, Path):
            con.close()


def batch_table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])
