"""What the CLI asks of a ClickHouse source: one run as a triage store, the runs of a window, and
whether a run is over. Built on ``clickhouse_extract.Extractor``; no correlator imports (the CLI
hands the store to the correlator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
from otel_triage.collector.clickhouse import RUN_ID_KEY, ClickHouseError, Connection, redact
from otel_triage.collector.clickhouse_extract import RUN, SINCE, Extractor, memory_store
from otel_triage.collector.completion import SESSION_SETTLE_SECONDS
from otel_triage.collector.storage import facts
from otel_triage.collector.storage.on_demand import OnDemandStore
from otel_triage.collector.storage.reader import Reader


def _no_run(conn: Connection, run_id: str) -> ClickHouseError:
    return ClickHouseError(
        f"no spans with cicd.pipeline.run.id = {run_id!r} in {conn.opts.database}.{conn.opts.prefix}traces "
        f"at {redact(conn.opts.url)} in the last {conn.opts.since} (--since); see `triage runs --clickhouse`")


def extract_run(conn: Connection, run_id: str, baseline_run_id: str | None = None,
                choose_baseline: Callable[[pa.Table], str | None] | None = None,
                history_runs: Callable[[pa.Table], list[str]] | None = None,
                extractor: Extractor | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory triage store holding the run and its baseline run in full, and the test spans of
    every other run of the window. Without ``baseline_run_id``, ``choose_baseline`` (the
    correlator's rule, handed in by the CLI: the collector never imports the correlator) picks it
    from every run's tests; ``history_runs`` (the correlator's too) names the earlier runs whose
    failures the flaky verdict re-scores, copied in full as well (at most a few). ``extractor``:
    one set up by the caller (``run_store`` copies only the attributes the facts read)."""
    ex = extractor or Extractor(conn)
    con = memory_store()
    try:
        ex.test_spans(con)
        reader = Reader(con)
        if run_id not in reader.run_ids():
            rows = conn.query_rows(
                f"SELECT count() FROM {conn.opts.table('traces')} WHERE Timestamp >= {SINCE} AND {RUN} = {{run:String}}",
                {**ex.params, "run": run_id})
            if not rows or not rows[0][0]:
                raise _no_run(conn, run_id)
        reader.all_tests()
        tests = con.sql("SELECT * FROM run_tests").to_arrow_table()
        baseline = baseline_run_id
        if not baseline and choose_baseline is not None:
            baseline = choose_baseline(tests)
        earlier = history_runs(tests) if history_runs is not None else []
        runs = list(dict.fromkeys([run_id, *([baseline] if baseline else []), *earlier]))
        # The runs' test spans are loaded again with everything else: drop the partial copies first.
        con.execute("CREATE TEMP TABLE ch_replaced AS SELECT DISTINCT TraceId FROM otel_traces "
                    "WHERE RunId IN (SELECT unnest($runs)) "
                    "UNION SELECT TraceId FROM run_traces WHERE RunId IN (SELECT unnest($runs))", {"runs": runs})
        for table in ("otel_traces", "otel_traces_events", "otel_traces_links"):
            con.execute(f"DELETE FROM {table} WHERE TraceId IN (SELECT TraceId FROM ch_replaced)")
        con.execute("DROP TABLE ch_replaced")
        ex.run_data(con, runs)
        facts.forget(con)  # anything computed over the partial copy: computed again over the whole
        return con
    except duckdb.OutOfMemoryException as exc:
        con.close()
        raise ClickHouseError(f"run {run_id!r} is too large to extract into memory: {exc}") from exc
    except BaseException:
        con.close()
        raise


def run_store(conn: Connection, run_id: str, baseline_run_id: str | None = None,
              choose_baseline: Callable[[pa.Table], str | None] | None = None,
              history_runs: Callable[[pa.Table], list[str]] | None = None) -> OnDemandStore:
    """``extract_run``'s copy as the correlator's store, its facts computed as they are read. Spans
    carry only the attributes the facts read (``clickhouse_extract.fact_keys``); the per-test items
    get the rest from ``conn``, which must stay open while the store is used."""
    ex = Extractor(conn)
    ex.fact_attributes_only = True
    con = extract_run(conn, run_id, baseline_run_id, choose_baseline, history_runs, extractor=ex)
    return OnDemandStore(con, full_attributes=ex.full_attributes)


def list_runs(conn: Connection) -> list[dict[str, Any]]:
    """The runs of the --since window, newest first, in `triage runs --db`'s shape (runs.sql):
    span counts over each run's traces and test counts from the window's test spans."""
    ex = Extractor(conn)
    con = memory_store()
    try:
        ex.test_spans(con)
        reader = Reader(con)
        reader.all_tests()
        tests = {r[0]: (r[1], r[2]) for r in con.execute(
            "SELECT run_id, count(*), count(*) FILTER (status = 'failed') FROM run_tests GROUP BY ALL").fetchall()}
    finally:
        con.close()
    t = conn.opts.table("traces")
    spans = conn.query_rows(f"""
        WITH runs AS (SELECT DISTINCT {RUN} AS RunId, TraceId FROM {t} WHERE Timestamp >= {SINCE} AND {RUN} != '')
        SELECT r.RunId, count(), toInt64(toUnixTimestamp64Nano(min(s.Timestamp))),
               max(toInt64(toUnixTimestamp64Nano(s.Timestamp)) + toInt64(s.Duration)),
               arraySort(groupUniqArray(toString(s.ServiceName)))
        FROM {t} AS s INNER JOIN runs AS r ON s.TraceId = r.TraceId
        WHERE s.Timestamp >= {SINCE} GROUP BY r.RunId""", ex.params)
    out: dict[str, dict[str, Any]] = {}
    for run, n, first, last, services in spans:
        out[run] = {"run_id": run, "spans": n, "logs": 0, "metric_points": 0, "services": list(services),
                    "first_seen_unix_nano": first, "last_seen_unix_nano": last}
    if conn.schema.has("logs"):
        # As runs.sql: a record counts by its resource's run id, else by a trace id of the run.
        logs = conn.opts.table("logs")
        rows = conn.query_rows(f"""
            WITH runs AS (SELECT DISTINCT {RUN} AS RunId, TraceId FROM {t} WHERE Timestamp >= {SINCE} AND {RUN} != '')
            SELECT RunId, count(), groupUniqArray(service) FROM (
                SELECT {RUN} AS RunId, toString(ServiceName) AS service FROM {logs}
                WHERE Timestamp >= {SINCE} AND {RUN} != ''
                UNION ALL
                SELECT r.RunId, toString(l.ServiceName) FROM {logs} AS l INNER JOIN runs AS r ON l.TraceId = r.TraceId
                WHERE l.Timestamp >= {SINCE} AND l.ResourceAttributes['{RUN_ID_KEY}'] = '' AND l.TraceId != ''
            ) GROUP BY RunId""", ex.params)
        for run, n, services in rows:
            _merge(out, run, "logs", n, services)
    for kind in ("gauge", "sum", "histogram"):
        if conn.schema.has(f"metrics_{kind}"):
            rows = conn.query_rows(f"""
                SELECT {RUN} AS RunId, count(), groupUniqArray(toString(ServiceName))
                FROM {conn.opts.table('metrics_' + kind)}
                WHERE TimeUnix >= {SINCE} AND {RUN} != '' GROUP BY RunId""", ex.params)
            for run, n, services in rows:
                _merge(out, run, "metric_points", n, services)
    for run, row in out.items():
        row["services"] = sorted(s for s in set(row["services"]) if s)
        row["tests"], row["failed_tests"] = tests.get(run, (0, 0))
    return sorted(out.values(), key=lambda r: (-r["last_seen_unix_nano"], r["run_id"]))


def _merge(out: dict[str, dict[str, Any]], run: str, field: str, n: int, services: list[str]) -> None:
    row = out.setdefault(run, {"run_id": run, "spans": 0, "logs": 0, "metric_points": 0, "services": [],
                               "first_seen_unix_nano": 0, "last_seen_unix_nano": 0})
    row[field] += n
    row["services"] = [*row["services"], *services]


def run_status(conn: Connection, run_id: str, quiet_period: float) -> dict[str, Any]:
    """{"known", "complete", "reason", "completed_unix_nano"} as `triage wait` reads it.

    ClickHouse holds no completion record (the daemon writes one): a run is complete once its test
    session span is there (pytest-opentelemetry's ``pytest.span_type=run``, or a root span with a
    final ``test.suite.run.status``; collector/completion.py), or when none of its spans started
    within ``quiet_period`` seconds."""
    t = conn.opts.table("traces")
    rows = conn.query_rows(f"""
        SELECT count(),
               countIf(SpanAttributes['pytest.span_type'] = 'run' OR (ParentSpanId = '' AND
                       SpanAttributes['test.suite.run.status'] IN ('success', 'failure', 'skipped', 'aborted', 'timed_out'))),
               toInt64(toUnixTimestamp64Nano(max(Timestamp + toIntervalNanosecond(Duration)))),
               toInt64(toUnixTimestamp64Nano(now64(9)))
        FROM {t} WHERE Timestamp >= {SINCE} AND {RUN} = {{run:String}}""",
        {"since": conn.opts.since_seconds, "run": run_id})
    n, sessions, last_ns, now_ns = rows[0] if rows else (0, 0, 0, 0)
    if not n:
        return {"known": False, "complete": False, "reason": "", "completed_unix_nano": 0}
    if sessions and now_ns - last_ns >= SESSION_SETTLE_SECONDS * 1e9:  # services flush after the runner
        return {"known": True, "complete": True, "reason": "session-ended", "completed_unix_nano": last_ns}
    if now_ns - last_ns >= quiet_period * 1e9:
        return {"known": True, "complete": True, "reason": "quiet", "completed_unix_nano": last_ns}
    return {"known": True, "complete": False, "reason": "", "completed_unix_nano": 0}
