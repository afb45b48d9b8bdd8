"""Read queries over the store. All SQL lives in ``queries/*.sql``; this module only runs it.

The same ``Reader`` serves the CLI (a read-only connection to a file nobody holds) and the daemon's
query API (a cursor on the daemon's own connection), so both paths return identical answers.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import duckdb

QUERIES = "otel_triage.collector.storage.queries"
# Metrics without a run id join a run up to this long after its last span (run_metric_points.sql):
# services export on an interval, the last time when they shut down.
METRIC_RUN_SLACK_NS = 5_000_000_000


@cache
def sql(name: str) -> str:
    """The text of ``queries/<name>.sql``."""
    return resources.files(QUERIES).joinpath(f"{name}.sql").read_text()


def rows_as_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


class Reader:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def run_traces(self, run_id: str | None, table: str = "run_traces") -> None:
        """Materialise the run → trace mapping once as a temp table; later queries join it."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql('run_traces')}", {"run_id": run_id})

    def list_runs(self) -> list[dict[str, Any]]:
        self.all_tests()
        return rows_as_dicts(self.con.execute(sql("runs")))

    def _temp(self, name: str, query: str, params: dict[str, Any] | None = None) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}", params or {})

    def run_ids(self) -> set[str]:
        """Every run id in the store (a scan of RunId columns only: milliseconds)."""
        return {r[0] for r in self.con.execute(sql("run_ids")).fetchall()}

    def all_tests(self) -> None:
        """Materialise run_traces and run_tests for every run once; later queries filter them."""
        self.run_traces(None)
        self._temp("run_tests", sql("tests"))

    def default_baseline(self, run_id: str) -> str | None:
        """The most recent earlier run in which this run's failed tests passed (baseline_run.sql).
        Expects ``all_tests()`` to have run."""
        row = self.con.execute(sql("baseline_run"), {"run_id": run_id}).fetchone()
        return row[0] if row else None

    def explain_inputs(self, run_id: str, baseline_run_id: str | None) -> dict[str, Any]:
        """Everything the correlator scores for one run, computed set-based in a few statements.

        Temp tables, in order: the baseline run's spans (latency reference), then the run's spans,
        tests, the subtree under every test (followed across span links), and the notable nodes
        under failed tests (explain_nodes.sql).
        """
        # The baseline run feeds per-operation latency and the run-level comparisons: keep only the
        # columns they read, so DuckDB prunes the attribute extraction explain_spans.sql would
        # otherwise do for every baseline span.
        baseline = ("SELECT TraceId, SpanId, ParentSpanId, service, operation, duration_ns, start_ns "
                    f"FROM ({sql('explain_spans')})")
        if baseline_run_id:
            self.run_traces(baseline_run_id)
            self._temp("explain_baseline_spans", baseline)
        else:
            self._temp("explain_baseline_spans", f"{baseline} LIMIT 0")
        self.run_traces(run_id)
        self._temp("explain_tests", "SELECT * FROM run_tests WHERE run_id = $run_id", {"run_id": run_id})
        # Broken traces (a call made without its context) join the run as inferred children (stitch.sql).
        self._temp("explain_stitched", sql("stitch"), {"run_id": run_id})
        self.con.execute("INSERT INTO run_traces SELECT DISTINCT $run_id, child_trace FROM explain_stitched "
                         "WHERE child_trace NOT IN (SELECT TraceId FROM run_traces)", {"run_id": run_id})
        self._temp("explain_spans", sql("explain_spans"))
        self._temp("explain_tree", sql("explain_tree"))
        tests = rows_as_dicts(self.con.execute("SELECT * FROM explain_tests"))
        self._temp("explain_notable", sql("explain_nodes"))
        nodes = rows_as_dicts(self.con.execute("SELECT * FROM explain_notable ORDER BY test_span, depth, SpanId"))
        names = dict(self.con.execute(
            "SELECT DISTINCT SpanId, service || ': ' || operation FROM explain_spans "
            "WHERE SpanId IN (SELECT unnest(path) FROM explain_notable)"
        ).fetchall())
        self._temp("run_metric_points", sql("run_metric_points"),
                   {"run_id": run_id, "baseline_run_id": baseline_run_id, "slack_ns": METRIC_RUN_SLACK_NS})
        summary = self.con.execute(sql("explain_run")).fetchone()
        services_seen, last_seen_ns, peers_silent = summary if summary else ([], 0, [])
        return {
            "tests": tests,
            "nodes": nodes,
            "span_names": names,
            "services": services_seen or [],
            "last_seen_unix_nano": last_seen_ns or 0,
            "silent_peers": peers_silent or [],
            "stitched": rows_as_dicts(self.con.execute("SELECT * FROM explain_stitched")),
            "peer_addresses": rows_as_dicts(self.con.execute(sql("peer_addresses"))),
        }

    def compare_with_baseline(self, run_id: str, baseline_run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The run against its baseline run, operation by operation (compare_*.sql): latency, the
        calls each operation makes, log templates, and metrics. Expects ``explain_inputs`` first."""
        self._temp("compare_spans", sql("compare_spans"))
        out = {name: rows_as_dicts(self.con.execute(sql(f"compare_{name}")))
               for name in ("latency", "calls", "logs")}
        out["metrics"] = rows_as_dicts(self.con.execute(
            sql("compare_metrics"), {"run_id": run_id, "baseline_run_id": baseline_run_id}))
        return out

    def subtree_diff(self, baseline_run_id: str, test_spans: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """How the given failed tests' subtrees differ from the same tests in the baseline run
        (subtree_diff.sql), and the names of the spans on their paths. Expects ``explain_inputs`` first."""
        rows = rows_as_dicts(self.con.execute(sql("subtree_diff"),
                                              {"baseline_run_id": baseline_run_id, "tests": test_spans}))
        ids = sorted({span for r in rows for span in (r["path"] or [])})
        names = dict(self.con.execute(
            "SELECT DISTINCT SpanId, service || ': ' || operation FROM explain_spans "
            "WHERE SpanId IN (SELECT unnest($ids::VARCHAR[]))", {"ids": ids}).fetchall())
        return rows, names

    def junit_run(self, names: list[str], start_ns: int, end_ns: int) -> tuple[str, str] | None:
        """(run id, how it matched) for a JUnit report that names no run (junit_run.sql)."""
        self.all_tests()
        row = self.con.execute(sql("junit_run"), {"names": names, "start_ns": start_ns, "end_ns": end_ns}).fetchone()
        return (row[0], row[1]) if row else None

    def files(self) -> list[dict[str, Any]]:
        """The drop folder's ledger, newest first."""
        return rows_as_dicts(self.con.execute(sql("files")))

    def seen_file(self, sha256: str) -> bool:
        return bool(self.con.execute(sql("file_seen"), {"sha256": sha256}).fetchone()[0])

    def metric_shifts(self, run_id: str, baseline_run_id: str,
                      windows: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
        """Metrics of the given services that rose in the given windows against the baseline run."""
        if not windows:
            return []
        services, starts, ends = (list(col) for col in zip(*windows))
        self._temp("explain_windows",
                   "SELECT unnest($s) AS service, unnest($a)::BIGINT AS start_ns, unnest($b)::BIGINT AS end_ns",
                   {"s": services, "a": starts, "b": ends})
        return rows_as_dicts(self.con.execute(sql("explain_metrics"),
                                              {"run_id": run_id, "baseline_run_id": baseline_run_id}))

    def test_spans(self, trace_id: str, span_id: str, max_spans: int = 20_000) -> dict[str, Any]:
        """The subtree under one test span with its exception events and logs (report_*.sql).

        Spans beyond ``max_spans`` are left out, shallowest and earliest kept; ``total_spans`` says
        how many there were."""
        self._temp("report_tree", sql("report_tree"), {"trace_id": trace_id, "span_id": span_id})
        total = self.con.execute("SELECT count(*) FROM report_tree").fetchone()
        spans = rows_as_dicts(self.con.execute(
            "SELECT * FROM report_tree ORDER BY depth, start_unix_nano, span_id LIMIT $n", {"n": max_spans}))
        return {
            "spans": spans,
            "total_spans": total[0] if total else 0,
            "events": rows_as_dicts(self.con.execute(sql("report_events"))),
            "logs": rows_as_dicts(self.con.execute(sql("report_logs"))),
        }

    def run_completion(self, run_id: str) -> dict[str, Any] | None:
        """The run's completion record (002_run_completion.sql), or None while it is open."""
        rows = rows_as_dicts(self.con.execute(sql("run_completion"), {"run_id": run_id}))
        return rows[0] if rows else None
