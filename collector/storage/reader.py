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

    def tests(self) -> list[dict[str, Any]]:
        """Tests of the runs in run_traces (see tests.sql for how each runner is recognised)."""
        return rows_as_dicts(self.con.execute(sql("tests")))

    def list_runs(self) -> list[dict[str, Any]]:
        self.run_traces(None)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE run_tests AS {sql('tests')}")
        return rows_as_dicts(self.con.execute(sql("runs")))

    def run_exists(self, run_id: str) -> bool:
        return any(r["run_id"] == run_id for r in self.list_runs())
