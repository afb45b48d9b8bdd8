"""Per-run facts: what every explanation of a run reads, computed once from the ``otel_*`` tables.

An explanation used to extract the JSON attributes of every span of the run, walk every test's
subtree and recompute per-operation latency on each call. ``compute(con, run_id)`` does that work
once for one run (``facts_*.sql`` over a private cursor; one snapshot) and returns the rows of the
``triage_facts_*`` tables (004_run_facts.sql) as Arrow tables; ``write`` replaces the run's rows.

The function reads nothing but the raw ``otel_*`` tables, so any store holding our schema (a file
the daemon wrote, an in-memory DuckDB filled from ClickHouse) gets the same facts, and running it
twice gives the same rows. ``stale_runs`` names the runs whose facts are missing or older than
their data: a file whose source row counts still match the counts stored with the facts has
nothing newer (no scan); otherwise only rows past those counts are looked at.

The daemon computes facts when a run completes and writes them through its single writer; any
reader calls ``ensure`` first, which computes what is missing (an old file, a run explained before
it completed, data that arrived after completion). ``ensure`` leaves the ``LAZY`` tables for the
first read (``DuckStore.test_items``): what each test did item by item is ~45% of a run's facts
and only failed tests with no error under them read it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import duckdb
from otel_triage.collector.storage.db import quiet
from otel_triage.collector.storage.reader import sql

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa

# Source table -> the triage_facts_runs column holding its row count when the facts were computed.
SOURCES = {"otel_traces": "traces_rows", "otel_traces_events": "events_rows",
           "otel_traces_links": "links_rows", "otel_logs": "logs_rows"}
# Fact table -> the query that fills it (all expect the temp tables compute() makes).
TABLES = {"triage_facts_tests": "SELECT * EXCLUDE (run_id), $run_id AS run_id FROM explain_tests",
          "triage_facts_nodes": "facts_nodes", "triage_facts_ops": "facts_ops",
          "triage_facts_latency": "facts_latency", "triage_facts_calls": "facts_calls",
          "triage_facts_logs": "facts_logs", "triage_facts_patterns": "facts_patterns",
          "triage_facts_runs": "facts_run",
          "triage_facts_stitched": "SELECT $run_id AS run_id, * FROM explain_stitched",
          "triage_facts_peers": "facts_peer_addresses", "triage_facts_services": "facts_services",
          "triage_facts_test_items": "facts_test_items", "triage_facts_test_tree": "facts_test_tree"}

Write = Callable[[str, dict[str, "pa.Table"]], None]

# Computed when first read, not with the others (triage_facts_runs.test_items_computed says which):
# every test's items, attribute by attribute, cost a 1M-span run ~15 of its ~42 s of facts (bench/facts.py),
# and only the subtree comparison of a failed test with no error under it reads them.
LAZY = ("triage_facts_test_items",)


def _text(query: str) -> str:
    return query if query.startswith("SELECT") else sql(query)


def row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    selects = ", ".join(f"(SELECT count(*) FROM {t}) AS {c}" for t, c in SOURCES.items())
    row = con.execute(f"SELECT {selects}").fetchall()[0]
    return dict(zip(SOURCES.values(), row or ()))


# The intermediate tables each fact table reads (besides the raw otel_* tables); each step needs
# the ones before it: run_traces < explain_tests < explain_stitched (which adds the stitched traces to
# run_traces) < explain_spans < explain_tree.
STEPS = ("run_traces", "explain_tests", "explain_stitched", "explain_spans", "explain_tree")
NEEDS = {"triage_facts_tests": "explain_tests", "triage_facts_stitched": "explain_stitched",
         "triage_facts_nodes": "explain_tree",
         "triage_facts_ops": "explain_tree", "triage_facts_test_items": "explain_tree",
         "triage_facts_test_tree": "explain_tree"}  # every other table: explain_spans


class RunScratch:
    """One run's intermediate tables on a private cursor (its temp tables, gone with it), each made
    the first time a fact table needs it: ``compute`` makes them all, a store that computes facts
    on demand (``on_demand.py``) only those of the tables it is asked for."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str, snapshot: bool = True) -> None:
        self.cur = quiet(con.cursor())
        self.run_id = run_id
        self.params = {"run_id": run_id}
        self.made = 0  # how many of STEPS exist
        self.snapshot = snapshot
        if snapshot:
            self.cur.execute("BEGIN TRANSACTION")  # one snapshot: the row counts match what was read
        self.counts = row_counts(self.cur)
        self.test_items_computed = True  # what triage_facts_runs says: compute(lazy=True) leaves them

    def _step(self, name: str) -> None:
        cur, params = self.cur, self.params
        if name == "run_traces":
            cur.execute(f"CREATE TEMP TABLE run_traces AS {sql('run_traces')}", params)
        elif name == "explain_tests":
            cur.execute(f"CREATE TEMP TABLE explain_tests AS {sql('tests')}")
        elif name == "explain_stitched":
            # Broken traces (a call made without its context) join the run as inferred children
            # (stitch.sql): run membership, so they are part of the run's traces from here on.
            cur.execute(f"CREATE TEMP TABLE explain_stitched AS {sql('stitch')}", params)
            cur.execute("INSERT INTO run_traces SELECT DISTINCT $run_id, child_trace FROM explain_stitched "
                        "WHERE child_trace NOT IN (SELECT TraceId FROM run_traces)", params)
        else:
            cur.execute(f"CREATE TEMP TABLE {name} AS {sql('facts_' + name.removeprefix('explain_'))}")

    def table(self, table: str, tests: list[str] | None = None) -> pa.Table:
        """The rows of one triage_facts_* table for the run; of ``triage_facts_test_tree``, with
        ``tests``, only the rows of those test spans (the trace diff reads a few tests' trees)."""
        need = STEPS.index(NEEDS.get(table, "explain_spans")) + 1
        while self.made < need:
            self._step(STEPS[self.made])
            self.made += 1
        text = _text(TABLES[table])
        params = self.params if "$run_id" in text else None
        if tests is not None and table == "triage_facts_test_tree":
            self.cur.execute("CREATE OR REPLACE TEMP TABLE asked_tree AS SELECT * FROM explain_tree "
                             "WHERE test_span IN (SELECT unnest($tests::VARCHAR[]))", {"tests": tests})
            text = text.replace("explain_tree", "asked_tree")
        if table == "triage_facts_runs":
            stamps = ", ".join(f"{int(v)}::BIGINT AS {c}"
                               for c, v in [*self.counts.items(), ("computed_unix_nano", time.time_ns())])
            text = f"SELECT *, {stamps}, {self.test_items_computed} AS test_items_computed FROM ({text})"
        return self.cur.sql(text, params=params).to_arrow_table()

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            if self.snapshot:
                self.cur.execute("ROLLBACK")
            self.cur.close()


def compute(con: duckdb.DuckDBPyConnection, run_id: str, lazy: bool = False) -> dict[str, pa.Table]:
    """The rows of every triage_facts_* table for one run, from the otel_* tables alone; with
    ``lazy``, the ``LAZY`` tables come empty (their old rows go) and are computed when first read."""
    scratch = RunScratch(con, run_id)
    scratch.test_items_computed = not lazy
    try:
        out = {table: scratch.table(table) for table in TABLES if not (lazy and table in LAZY)}
    finally:
        scratch.close()
    for table in LAZY if lazy else ():
        out[table] = con.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table()
    return out


def write(con: duckdb.DuckDBPyConnection, run_id: str, tables: dict[str, pa.Table]) -> None:
    """Replace the run's facts in one transaction (for a connection nobody else writes with)."""
    con.execute("BEGIN")
    try:
        replace(con, run_id, tables)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def replace(con: duckdb.DuckDBPyConnection, run_id: str, tables: dict[str, pa.Table]) -> None:
    """Delete the run's rows from each fact table and insert the new ones (inside a transaction)."""
    for name, table in tables.items():
        con.execute(f"DELETE FROM {name} WHERE run_id = ?", [run_id])
        con.register("_facts", table)
        try:
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _facts")
        finally:
            with contextlib.suppress(duckdb.Error):  # keep the insert's own error, not this one
                con.unregister("_facts")


def stale_runs(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Runs whose facts are missing, or older than data that has arrived for them since."""
    return check(con)[0]


def check(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str], dict[str, int]]:
    """(stale runs, runs checked fresh against newer rows, the source row counts checked)."""
    missing = {r[0] for r in con.execute(
        f"SELECT RunId FROM ({sql('run_ids')}) WHERE RunId NOT IN (SELECT run_id FROM triage_facts_runs)"
    ).fetchall()}
    counts = row_counts(con)
    moved = " OR ".join(f"{c} <> {int(n)}" for c, n in counts.items())
    checked = {r[0] for r in con.execute(f"SELECT run_id FROM triage_facts_runs WHERE {moved}").fetchall()}
    if not checked:
        return sorted(missing), [], counts
    changed = con.execute(
        "SELECT min(traces_rows), min(events_rows), min(links_rows), min(logs_rows) FROM triage_facts_runs "
        f"WHERE {moved}").fetchall()[0]
    lows = dict(zip(SOURCES.values(), changed))
    newer = {r[0] for r in con.execute(sql("facts_stale"), lows).fetchall()}
    return sorted(missing | newer), sorted(checked - newer), counts


def _advance(con: duckdb.DuckDBPyConnection, run_id: str, counts: dict[str, int]) -> dict[str, pa.Table]:
    """The run's summary row with the row counts it has been checked against: data for other runs
    (or for none) is then not looked at again by the next check."""
    sets = ", ".join(f"{int(n)}::BIGINT AS {c}" for c, n in counts.items())
    row = con.sql(f"SELECT * REPLACE ({sets}) FROM triage_facts_runs WHERE run_id = $r",
                  params={"r": run_id}).to_arrow_table()
    return {"triage_facts_runs": row}


def ensure(con: duckdb.DuckDBPyConnection, write_facts: Write | None = None,
           runs: Iterable[str] | None = None) -> list[str]:
    """Compute the facts of every stale run (or of ``runs``) and write them; returns those runs.

    ``write_facts(run_id, tables)`` defaults to writing on ``con`` itself; the daemon passes its
    single writer instead."""
    save = write_facts or (lambda run_id, tables: write(con, run_id, tables))
    fresh: list[str] = []
    counts: dict[str, int] = {}
    if runs is None:
        todo, fresh, counts = check(con)
    else:
        todo = sorted(runs)
    for run_id in todo:
        save(run_id, compute(con, run_id, lazy=True))
    for run_id in fresh:
        save(run_id, _advance(con, run_id, counts))
    return todo


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every run's facts; the next ``ensure`` computes them again. They are derived and find new
    data by row position, which a delete (and the vacuum at the next checkpoint) moves."""
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() "
                                "WHERE table_name LIKE 'triage_facts_%' AND NOT temporary").fetchall():
        con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM triage_explanations")  # kept explanations are derived from them
