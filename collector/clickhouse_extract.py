"""Copy one run out of the exporter's ClickHouse tables into an in-memory DuckDB of triage's schema.

What is copied (docs/clickhouse.md, "What triage reads"):

1. **Every run's test spans in the ``--since`` window** (spans of a resource carrying a run id that
   can be tests or failed phases: ERROR status or a test attribute, with their events), so the baseline is chosen across runs
   exactly as ``baseline_run.sql`` does on a file, and ``triage runs`` can count tests.
2. **The run and its baseline run in full**: every span of every trace that holds a span whose
   resource carries ``cicd.pipeline.run.id`` = the run, and of traces linked to those; their
   events and links (the exporter's Nested columns, unnested by DuckDB); logs of those traces or of
   the run's resources; the run's gauge, sum and histogram points.

Conversions, because the exporter's schema is lossier than ours (each is documented there too):
kinds and status codes in either spelling (``SPAN_KIND_SERVER`` / ``Server``) become ours; attribute
maps become JSON objects of strings (the exporter printed every value as text; our queries cast the
few they compare as numbers); ``Duration`` Int64 or UInt64 becomes BIGINT; histogram Min/Max written
as 0 when absent become NULL; ``RunId`` is read from the resource, as the daemon does at ingest.
Everything streams as Arrow record batches, so memory holds the DuckDB store and one block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa
from otel_triage.collector.clickhouse import RUN_ID_KEY, ClickHouseError, Connection
from otel_triage.collector.storage.db import open_writer
from otel_triage.collector.storage.reader import QUERIES, sql

KINDS = {"SPAN_KIND_UNSPECIFIED": "Unspecified", "SPAN_KIND_INTERNAL": "Internal", "SPAN_KIND_SERVER": "Server",
         "SPAN_KIND_CLIENT": "Client", "SPAN_KIND_PRODUCER": "Producer", "SPAN_KIND_CONSUMER": "Consumer"}
CODES = {"STATUS_CODE_UNSET": "Unset", "STATUS_CODE_OK": "Ok", "STATUS_CODE_ERROR": "Error"}
RUN = f"ResourceAttributes['{RUN_ID_KEY}']"
SINCE = "now64(9) - toIntervalSecond({since:UInt64})"
# The runs' trace ids as a set built once: `x IN {ids:Array(String)}` (an array literal) cost chDB 26.9
# ~140 s of CPU over three days' partitions of 1.2M spans and 28k ids, this 0.3 s (bench/clickhouse.py).
IDS = "(SELECT arrayJoin({ids:Array(String)}))"
# Spans that can be tests or their failing phases: the filter tests.sql starts from, in ClickHouse.
TEST_SPANS = ("(StatusCode IN ('Error', 'STATUS_CODE_ERROR') OR mapContains(SpanAttributes, 'test.case.name') "
              "OR SpanAttributes['pytest.span_type'] IN ('test', 'run') OR mapContains(SpanAttributes, 'tests.name'))")


@cache
def fact_keys() -> tuple[str, ...]:
    """The span attribute keys the store's queries name (``'$."key"'`` paths, ``'"key"`` substring
    tests), read from their text so a query that starts reading a key gets it copied.

    The copy of a run carries only these keys in ``SpanAttributes`` (ClickHouse filters each map in
    C++): the facts read these and no others, except the per-test items, which list every key and
    get the full maps on demand (``Extractor.full_attributes``). ClickHouse's span query for 1.2M
    spans: 5.1-6.7 s of CPU with the full maps, 3.6-4.5 s with these keys (docs/clickhouse.md)."""
    keys: set[str] = set()
    for path in resources.files(QUERIES).iterdir():
        if path.name.endswith(".sql"):
            text = re.sub(r"--[^\n]*", "", path.read_text())
            keys.update(re.findall(r"\$\.\"([^\"]+)\"", text))
            keys.update(re.findall(r"'\"([^\"']+)\"", text))
    return tuple(sorted(keys))


# ClickHouse sends blocks of ~8k rows; DuckDB inserts a row group (122,880 rows) at a time for about
# half the CPU of 15 small inserts (bench/clickhouse.py: 4.6 -> 2.6 s for 1.2M spans). Memory holds
# one chunk (~60 MB of spans).
CHUNK_ROWS = 122_880


def _chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Record batches gathered into tables of about ``CHUNK_ROWS`` rows."""
    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        held.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            yield pa.Table.from_batches(held)
            held, rows = [], 0
    if held:
        yield pa.Table.from_batches(held)


def _transform(column: str, mapping: dict[str, str]) -> str:
    keys = ", ".join(f"'{k}'" for k in mapping)
    values = ", ".join(f"'{v}'" for v in mapping.values())
    return f"transform(toString({column}), [{keys}], [{values}], toString({column}))"


def _json(column: str) -> str:
    return f"toJSONString({column})"


def _fact_attributes(column: str) -> str:
    keys = ", ".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in fact_keys())
    return f"toJSONString(mapFilter((k, v) -> has([{keys}], k), {column}))"


class Extractor:
    """Reads one ClickHouse database (``Connection``) into DuckDB; one instance per command."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.opts = conn.opts
        self.schema = conn.schema
        self.params: dict[str, Any] = {"since": self.opts.since_seconds}
        self.fact_attributes_only = False  # copy only fact_keys() of each span's attributes
        self._copied: tuple[str, dict[str, Any]] | None = None  # stage 2's filter, for full_attributes

    def _col(self, table: str, column: str, default: str) -> str:
        return column if self.schema.has(table, column) else default

    # --- ClickHouse side -------------------------------------------------------------------------
    def _span_select(self, where: str) -> str:
        t = "traces"
        attributes = _fact_attributes("SpanAttributes") if self.fact_attributes_only else _json("SpanAttributes")
        links_attrs = ("arrayMap(x -> toJSONString(x), `Links.Attributes`)" if self.schema.has(t, "Links.Attributes")
                       else "arrayMap(x -> '{}', `Links.TraceId`)")
        return f"""
            SELECT toUnixTimestamp64Nano(toDateTime64(Timestamp, 9)) AS ts, TraceId, SpanId, ParentSpanId,
                   {self._col(t, 'TraceState', "''")} AS TraceState, SpanName,
                   {_transform('SpanKind', KINDS)} AS SpanKind, toString(ServiceName) AS ServiceName,
                   nullIf({RUN}, '') AS RunId, cityHash64(ResourceAttributes) AS res_key,
                   {self._col(t, 'ScopeName', "''")} AS ScopeName, {self._col(t, 'ScopeVersion', "''")} AS ScopeVersion,
                   {attributes} AS SpanAttributes, toInt64(Duration) AS Duration,
                   {_transform('StatusCode', CODES)} AS StatusCode, StatusMessage,
                   arrayMap(x -> toUnixTimestamp64Nano(toDateTime64(x, 9)), `Events.Timestamp`) AS ev_ts,
                   arrayMap(x -> toString(x), `Events.Name`) AS ev_name,
                   arrayMap(x -> toJSONString(x), `Events.Attributes`) AS ev_attrs,
                   `Links.TraceId` AS ln_trace, `Links.SpanId` AS ln_span,
                   {self._col(t, 'Links.TraceState', "arrayMap(x -> '', `Links.TraceId`)")} AS ln_state,
                   {links_attrs} AS ln_attrs
            FROM {self.opts.table(t)}
            WHERE {where}"""

    def run_traces(self, runs: list[str]) -> tuple[list[str], str, dict[str, Any]]:
        """The runs' trace ids (run_traces.sql: traces holding a span whose resource carries one of
        the run ids, and traces linked to those) and a time filter for their spans.

        Two scans of the window's resource maps would be the cost of filtering every later query by
        a subquery; the ids are read once instead and every later query filters by them and by
        time. Times come from the exporter's trace-id lookup table when present (each trace's first
        and last span start, to the second); otherwise from the run's own spans, open-ended."""
        t = self.opts.table("traces")
        ends = "max(toInt64(toUnixTimestamp64Nano(toDateTime64(Timestamp, 9))) + toInt64(Duration))"
        starts = "min(toInt64(toUnixTimestamp64Nano(toDateTime64(Timestamp, 9))))"
        rows = self.conn.query_rows(
            f"SELECT TraceId, {starts}, {ends} FROM {t} WHERE Timestamp >= {SINCE} AND {RUN} IN {{runs:Array(String)}} "
            "GROUP BY TraceId", {**self.params, "runs": runs})
        if not rows:
            return [], "0 = 1", {}
        ids = [r[0] for r in rows]
        lo = min(r[1] for r in rows)
        linked = self.conn.query_rows(
            # ARRAY JOIN + IN (a hash set), not hasAny(links, ids): that compares every link with every id.
            f"SELECT DISTINCT TraceId FROM {t} ARRAY JOIN `Links.TraceId` AS linked "
            f"WHERE Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND linked IN {IDS}",
            {"lo": lo, "ids": ids})
        ids = sorted(set(ids) | {r[0] for r in linked})
        params: dict[str, Any] = {"ids": ids, "lo": lo}
        if self.schema.has("traces_trace_id_ts"):
            found = self.conn.query_rows(
                "SELECT toInt64(toUnixTimestamp(min(Start))), toInt64(toUnixTimestamp(max(End))), count() "
                f"FROM {self.opts.table('traces_trace_id_ts')} WHERE TraceId IN {IDS}", {"ids": ids})
            if found and found[0][2]:
                params.update(lo=min(lo, found[0][0] * 1_000_000_000), hi=(found[0][1] + 1) * 1_000_000_000)
                return ids, ("Timestamp >= fromUnixTimestamp64Nano({lo:Int64}) AND "
                             f"Timestamp < fromUnixTimestamp64Nano({{hi:Int64}}) AND TraceId IN {IDS}"), params
        return ids, f"Timestamp >= fromUnixTimestamp64Nano({{lo:Int64}}) AND TraceId IN {IDS}", params

    # --- DuckDB side -----------------------------------------------------------------------------
    def _fill_resources(self, con: duckdb.DuckDBPyConnection, table: str, ts: str, span_name: bool) -> None:
        """The resource maps (as JSON, by ``res_key``) of ``ch_batch``'s rows that ``ch_resources``
        lacks. A resource is the same map on every row of its process (a handful in a run of a
        million spans), so one row per new key is looked up again, by the table's primary key
        (service, span name, time), where a GROUP BY over the copied rows hashed and aggregated
        every row's map a second time (1.2-1.6 s of CPU for 1.2M spans). Each row found adds its
        own key, so the keys sought are among them."""
        con.execute("CREATE TEMP TABLE IF NOT EXISTS ch_resources (res_key UBIGINT PRIMARY KEY, "
                    "ResourceAttributes JSON NOT NULL)")
        name = "SpanName" if span_name else "''"
        found = con.execute(f"""
            WITH ex AS (SELECT arg_min(ServiceName, {ts}) AS s, arg_min({name}, {ts}) AS n, min({ts}) AS ts,
                               arg_min(TraceId, {ts}) AS t
                        FROM ch_batch WHERE res_key NOT IN (SELECT res_key FROM ch_resources) GROUP BY res_key)
            SELECT list(DISTINCT s), list(DISTINCT n), min(ts), max(ts), list(DISTINCT t) FROM ex
            HAVING count(*) > 0""").fetchall()
        if not found:
            return
        services, names, lo, hi, traces = found[0]
        params = {"s": services, "n": names, "lo": lo, "hi": hi, "t": traces}
        where = ["ServiceName IN {s:Array(String)}", "TraceId IN {t:Array(String)}",
                 "Timestamp >= fromUnixTimestamp64Nano({lo:Int64})", "Timestamp <= fromUnixTimestamp64Nano({hi:Int64})"]
        if span_name:
            where.append("SpanName IN {n:Array(String)}")
        if self.schema.has(table, "TimestampTime"):  # the logs' primary key
            where.append("TimestampTime BETWEEN toDateTime(intDiv({lo:Int64}, 1000000000)) "
                         "AND toDateTime(intDiv({hi:Int64}, 1000000000))")
        select = (f"SELECT cityHash64(ResourceAttributes) AS res_key, {_json('ResourceAttributes')} AS ResourceAttributes "
                  f"FROM {self.opts.table(table)} WHERE {' AND '.join(where)} LIMIT 1 BY res_key")
        for batch in self.conn.stream_arrow(select, params):
            con.register("ch_res", batch)
            con.execute("INSERT OR IGNORE INTO ch_resources SELECT res_key, ResourceAttributes FROM ch_res")
            con.unregister("ch_res")

    def _load_spans(self, con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]) -> int:
        """Spans, their events and links. The spans carry their resource's hash, the maps travel
        once each as JSON (``ch_resources``, ``_fill_resources``), which halves ClickHouse's share
        of the work (bench/clickhouse.py)."""
        n = 0
        for batch in _chunks(self.conn.stream_arrow(self._span_select(where), params)):
            con.register("ch_batch", batch)
            self._fill_resources(con, "traces", "ts", span_name=True)
            inserted = con.execute("""
                INSERT INTO otel_traces SELECT make_timestamp_ns(ts), TraceId, SpanId, ParentSpanId, TraceState,
                    0, SpanName, SpanKind, ServiceName, RunId, r.ResourceAttributes, '', 0, ScopeName, ScopeVersion,
                    '{}', 0, '', SpanAttributes, Duration, StatusCode, StatusMessage, 0, 0, 0
                FROM ch_batch AS b JOIN ch_resources AS r ON r.res_key = b.res_key""").fetchone()[0]
            if inserted != batch.num_rows:  # a resource not found again: never lose spans silently
                raise ClickHouseError(f"{batch.num_rows - inserted} spans' resource attributes could not be read back")
            con.execute("""
                INSERT INTO otel_traces_events
                SELECT TraceId, SpanId, RunId, make_timestamp_ns(unnest(ev_ts)), unnest(ev_name), unnest(ev_attrs), 0
                FROM ch_batch WHERE len(ev_ts) > 0""")
            con.execute("""
                INSERT INTO otel_traces_links
                SELECT TraceId, SpanId, RunId, unnest(ln_trace), unnest(ln_span), unnest(ln_state), 0,
                       unnest(ln_attrs), 0
                FROM ch_batch WHERE len(ln_trace) > 0""")
            con.unregister("ch_batch")
            n += batch.num_rows
            if n > self.opts.max_spans:
                raise ClickHouseError(
                    f"more than {self.opts.max_spans:,} spans to extract: too large for memory; narrow "
                    "--since or raise --max-spans if this machine has the memory")
        return n

    def _load(self, con: duckdb.DuckDBPyConnection, table: str, sql: str, params: dict[str, Any],
              source: str = "") -> None:
        """Insert by name; ClickHouse sends times as ``<name>_ns`` integers (no time-zone casts) and,
        from ``source`` (a table suffix), each row's resource as its ``res_key`` (``_fill_resources``)."""
        for batch in _chunks(self.conn.stream_arrow(sql, params)):
            stamps = [c[:-3] for c in batch.schema.names if c.endswith("_ns")]
            dropped = [f"{c}_ns" for c in stamps] + (["res_key"] if source else [])
            select = ", ".join(["* EXCLUDE (" + ", ".join(dropped) + ")",
                                *(f"make_timestamp_ns({c}_ns) AS {c}" for c in stamps)]) if dropped else "*"
            con.register("ch_batch", batch)
            if source:
                self._fill_resources(con, source, "Timestamp_ns", span_name=False)
            rows = "ch_batch JOIN ch_resources USING (res_key)" if source else "ch_batch"
            inserted = con.execute(f"INSERT INTO {table} BY NAME SELECT {select} FROM {rows}").fetchone()[0]
            con.unregister("ch_batch")
            if inserted != batch.num_rows:
                raise ClickHouseError(f"{batch.num_rows - inserted} {table} rows' resource attributes could not be read back")

    def test_spans(self, con: duckdb.DuckDBPyConnection) -> int:
        """Stage 1: the test spans of every run in the window (for the baseline and `triage runs`).
        tests.sql reads only spans of the runner's resource (the one carrying the run id)."""
        where = f"Timestamp >= {SINCE} AND {RUN} != '' AND {TEST_SPANS}"
        return self._load_spans(con, where, self.params)

    def run_data(self, con: duckdb.DuckDBPyConnection, runs: list[str]) -> int:
        """Stage 2: the runs in full (spans, events, links, logs, metric points)."""
        ids, where, params = self.run_traces(runs)
        n = self._load_spans(con, where, params) if ids else 0
        self._copied = (where, params) if ids else None
        params = {**self.params, "runs": runs, "ids": ids, **_services_window(con, runs)}
        if self.schema.has("logs"):
            self._load(con, "otel_logs", self._logs_select(), params, source="logs")
        for kind in ("gauge", "sum", "histogram"):
            if self.schema.has(f"metrics_{kind}"):
                self._load(con, f"otel_metrics_{kind}", self._metrics_select(kind), params)
        return n

    def full_attributes(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every attribute of the spans stage 2 copied, in place of the ``fact_keys()`` alone: for
        the per-test items (facts_test_items.sql lists every key), which an explanation reads only
        when a failed test shows no error. Rows are matched by (TraceId, SpanId): a span id stored
        twice with different attributes gets one of its maps on both rows."""
        if not self.fact_attributes_only or self._copied is None:
            return
        where, params = self._copied
        con.execute("CREATE OR REPLACE TEMP TABLE ch_attributes (TraceId VARCHAR, SpanId VARCHAR, SpanAttributes JSON)")
        select = (f"SELECT TraceId, SpanId, {_json('SpanAttributes')} AS SpanAttributes "
                  f"FROM {self.opts.table('traces')} WHERE {where}")
        for batch in _chunks(self.conn.stream_arrow(select, params)):
            con.register("ch_batch", batch)
            con.execute("INSERT INTO ch_attributes SELECT * FROM ch_batch")
            con.unregister("ch_batch")
        con.execute("UPDATE otel_traces AS t SET SpanAttributes = a.SpanAttributes FROM ch_attributes AS a "
                    "WHERE t.TraceId = a.TraceId AND t.SpanId = a.SpanId")
        con.execute("DROP TABLE ch_attributes")
        self.fact_attributes_only = False

    def _logs_select(self) -> str:
        t = "logs"
        observed = self._col(t, "ObservedTimestamp", "Timestamp")
        return f"""
            SELECT toUnixTimestamp64Nano(toDateTime64(Timestamp, 9)) AS Timestamp_ns,
                   toUnixTimestamp64Nano(toDateTime64({observed}, 9)) AS ObservedTimestamp_ns,
                   TraceId, SpanId, toUInt32({self._col(t, 'TraceFlags', '0')}) AS TraceFlags,
                   toString(SeverityText) AS SeverityText, toInt32(SeverityNumber) AS SeverityNumber,
                   toString(ServiceName) AS ServiceName, nullIf({RUN}, '') AS RunId, nullIf(Body, '') AS Body,
                   'string' AS BodyType, toString({self._col(t, 'EventName', "''")}) AS EventName,
                   cityHash64(ResourceAttributes) AS res_key,
                   toString({self._col(t, 'ResourceSchemaUrl', "''")}) AS ResourceSchemaUrl,
                   toString({self._col(t, 'ScopeName', "''")}) AS ScopeName,
                   toString({self._col(t, 'ScopeVersion', "''")}) AS ScopeVersion,
                   {_json(self._col(t, 'ScopeAttributes', 'map()'))} AS ScopeAttributes,
                   toString({self._col(t, 'ScopeSchemaUrl', "''")}) AS ScopeSchemaUrl,
                   {_json('LogAttributes')} AS LogAttributes, toUInt32(0) AS ResourceDroppedAttributesCount,
                   toUInt32(0) AS ScopeDroppedAttributesCount, toUInt32(0) AS DroppedAttributesCount
            FROM {self.opts.table(t)}
            WHERE Timestamp >= {SINCE} AND (TraceId IN {IDS} OR {RUN} IN {{runs:Array(String)}})"""

    def _metrics_select(self, kind: str) -> str:
        t = f"metrics_{kind}"
        extra = {
            "gauge": "Value, CAST(NULL AS Nullable(Int64)) AS ValueInt",
            "sum": (f"Value, CAST(NULL AS Nullable(Int64)) AS ValueInt, "
                    f"toInt32({self._col(t, 'AggregationTemporality', '0')}) AS AggregationTemporality, "
                    "toBool(IsMonotonic) AS IsMonotonic"),
            # The exporter writes Min and Max as 0 when a point has none: both 0 means absent.
            "histogram": ("toUInt64(Count) AS Count, Sum, BucketCounts, ExplicitBounds, "
                          f"if({self._col(t, 'Min', '0')} = 0 AND {self._col(t, 'Max', '0')} = 0, NULL, "
                          f"{self._col(t, 'Min', '0')}) AS Min, "
                          f"if({self._col(t, 'Min', '0')} = 0 AND {self._col(t, 'Max', '0')} = 0, NULL, "
                          f"{self._col(t, 'Max', '0')}) AS Max, "
                          f"toInt32({self._col(t, 'AggregationTemporality', '0')}) AS AggregationTemporality"),
        }[kind]
        return f"""
            SELECT toString(ServiceName) AS ServiceName, nullIf({RUN}, '') AS RunId,
                   {_json('ResourceAttributes')} AS ResourceAttributes,
                   toString({self._col(t, 'ResourceSchemaUrl', "''")}) AS ResourceSchemaUrl,
                   toUInt32(0) AS ResourceDroppedAttributesCount,
                   toString({self._col(t, 'ScopeName', "''")}) AS ScopeName,
                   toString({self._col(t, 'ScopeVersion', "''")}) AS ScopeVersion,
                   {_json(self._col(t, 'ScopeAttributes', 'map()'))} AS ScopeAttributes,
                   toUInt32({self._col(t, 'ScopeDroppedAttrCount', '0')}) AS ScopeDroppedAttributesCount,
                   toString({self._col(t, 'ScopeSchemaUrl', "''")}) AS ScopeSchemaUrl,
                   MetricName, {self._col(t, 'MetricDescription', "''")} AS MetricDescription, MetricUnit,
                   '{{}}' AS MetricMetadata, {_json('Attributes')} AS Attributes,
                   toUnixTimestamp64Nano(toDateTime64({self._col(t, 'StartTimeUnix', 'TimeUnix')}, 9)) AS StartTimeUnix_ns,
                   toUnixTimestamp64Nano(toDateTime64(TimeUnix, 9)) AS TimeUnix_ns,
                   toUInt32({self._col(t, 'Flags', '0')}) AS Flags, '[]' AS Exemplars, {extra}
            FROM {self.opts.table(t)}
            WHERE TimeUnix >= {SINCE} AND ({RUN} IN {{runs:Array(String)}}
                  OR ({RUN} = '' AND toString(ServiceName) IN {{services:Array(String)}}
                      AND toUnixTimestamp64Nano(toDateTime64(TimeUnix, 9)) BETWEEN {{lo:Int64}} AND {{hi:Int64}}
                      AND arrayExists((s, a, b) -> s = toString(ServiceName)
                                      AND toUnixTimestamp64Nano(toDateTime64(TimeUnix, 9)) BETWEEN a AND b,
                                      {{w_service:Array(String)}}, {{w_lo:Array(Int64)}}, {{w_hi:Array(Int64)}})))"""


# Points without a run id join a run by service and time window (metric_points.sql); copy out those of
# each run's services from the run's first span to this long after its last, a superset of that window.
METRICS_AFTER_NS = 60_000_000_000


def _services_window(con: duckdb.DuckDBPyConnection, runs: list[str]) -> dict[str, Any]:
    """Each copied run's services and time span (its traces by run_traces.sql, as the facts take
    them), for metric points that carry no run id: one (service, from, to) per run and service, and
    their hull for the index. Per run, so an earlier run copied for the flaky verdict does not widen
    the window to the days between it and this one."""
    rows = con.execute(f"""
        WITH rt AS ({sql('run_traces')}),
        spans AS (SELECT rt.RunId, t.ServiceName, epoch_ns(t.Timestamp) AS s, epoch_ns(t.Timestamp) + t.Duration AS e
                  FROM rt JOIN otel_traces AS t USING (TraceId) WHERE rt.RunId IN (SELECT unnest($runs)))
        SELECT p.ServiceName, w.lo, w.hi
        FROM (SELECT DISTINCT RunId, ServiceName FROM spans) AS p
        JOIN (SELECT RunId, min(s) AS lo, max(e) AS hi FROM spans GROUP BY RunId) AS w USING (RunId)
        ORDER BY ALL""", {"run_id": None, "runs": runs}).fetchall()  # fetchall: no result left open
    return {"services": sorted({r[0] for r in rows}), "lo": min((r[1] for r in rows), default=0),
            "hi": max((r[2] for r in rows), default=0) + METRICS_AFTER_NS,
            "w_service": [r[0] for r in rows], "w_lo": [r[1] for r in rows],
            "w_hi": [r[2] + METRICS_AFTER_NS for r in rows]}


def memory_store() -> duckdb.DuckDBPyConnection:
    """An empty in-memory store with triage's schema (db.py creates it as it creates a file)."""
    return open_writer(":memory:")
