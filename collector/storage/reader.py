"""Read queries over the store for the CLI and the query API (runs, files, a test's spans). All SQL
lives in ``queries/*.sql``; this module only runs it. The correlator reads through the store
contract instead (``store.py``, over the per-run facts of ``facts.py``).

The same ``Reader`` serves the CLI (a read-only connection to a file nobody holds) and the daemon's
query API (a cursor on the daemon's own connection), so both paths return identical answers.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import duckdb

QUERIES = "otel_triage.collector.storage.queries"


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

    def file_prefixes(self, path: str, size: int) -> list[tuple[str, int]]:
        """(sha256, size) of earlier, shorter contents of the file at ``path``, longest first
        (file_prefixes.sql): an appended file is taken from where the last one ended."""
        return [(r[0], r[1]) for r in self.con.execute(sql("file_prefixes"), {"path": path, "size": size}).fetchall()]

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
