"""A store whose per-run facts are computed when first read, table by table, for a copy nobody else
writes: the in-memory DuckDB a run is extracted into from ClickHouse (``clickhouse_runs.py``).

A file's facts are computed whole when a run completes (``facts.ensure``), since any later
explanation may read any of them. A copy lives for one command, which reads a few tables of a few
runs: every run's tests, but the nodes and operations only of the runs the flaky verdict re-scores,
the per-test items only when a failed test shows no error, and no other run's facts at all. On a
1M-span run, the per-test items alone are ~11 s of CPU that most explanations never read
(docs/performance.md). The rows are the ones ``facts.compute`` gives (the same ``RunScratch``
steps), so an explanation equals the one from a file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
from otel_triage.collector.storage import facts
from otel_triage.collector.storage.store import DuckStore


class OnDemandStore(DuckStore):
    """``DuckStore`` over a connection it alone uses; ``close`` drops the runs' scratch tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection,
                 full_attributes: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> None:
        """``full_attributes(con)``: for a copy whose spans carry only the attributes the facts
        name, called once before the per-test items (which list every key) are computed."""
        super().__init__(con)
        self._full_attributes = full_attributes
        self._scratch: dict[str, facts.RunScratch] = {}
        self._done: set[tuple[str, str]] = set()
        self._compute_lock = threading.Lock()
        facts.forget(con)  # only facts computed here, over this copy

    def _scratch_of(self, run_id: str) -> facts.RunScratch:
        scratch = self._scratch.get(run_id)
        if scratch is None:  # the copy does not change: no snapshot to hold
            scratch = self._scratch[run_id] = facts.RunScratch(self.con, run_id, snapshot=False)
        return scratch

    def _need(self, table: str, runs: list[str]) -> None:
        with self._compute_lock:
            for run_id in runs:
                if (table, run_id) not in self._done:
                    facts.write(self.con, run_id, {table: self._scratch_of(run_id).table(table)})
                    self._done.add((table, run_id))

    def ensure_facts(self) -> None:
        """Nothing up front: each read below computes what it reads."""

    def tests(self) -> pa.Table:
        self._need("triage_facts_tests", sorted(self.run_ids()))
        return super().tests()

    def code_versions(self) -> pa.Table:
        self._need("triage_facts_tests", sorted(self.run_ids()))
        return super().code_versions()

    def run_facts(self, run_id: str) -> dict[str, Any]:
        self._need("triage_facts_runs", [run_id])
        return super().run_facts(run_id)

    def _of_run(self, table: str, run_id: str) -> pa.Table:
        self._need(table, [run_id])
        return super()._of_run(table, run_id)

    def test_items(self, run_id: str) -> pa.Table:
        if self._full_attributes is not None:
            with self._compute_lock:
                if self._full_attributes is not None:
                    self._full_attributes(self.con)
                    self._full_attributes = None
        return super().test_items(run_id)

    def metric_points(self, run_ids: list[str], window_slack_ns: int = 0) -> pa.Table:
        self._need("triage_facts_services", [r for r in run_ids if r in self.run_ids()])
        return super().metric_points(run_ids, window_slack_ns)

    def subtrees(self, roots: list[tuple[str, str]]) -> pa.Table:
        """Each test's tree is computed for the tests asked about only: the trace diff reads a few
        (a failed test and a passing instance); all of a 1M-span run's are ~5 s of CPU."""
        self._need("triage_facts_tests", sorted(self.run_ids()))
        asked = self.con.execute(
            "SELECT DISTINCT run_id, span_id FROM triage_facts_tests WHERE span_id IN (SELECT unnest($s::VARCHAR[])) "
            "ORDER BY ALL", {"s": [s for _, s in roots]}).fetchall()
        with self._compute_lock:
            todo: dict[str, list[str]] = {}
            for run_id, span in asked:
                if ("triage_facts_test_tree", f"{run_id}\0{span}") not in self._done:
                    todo.setdefault(run_id, []).append(span)
            for run_id, spans in todo.items():
                rows = self._scratch_of(run_id).table("triage_facts_test_tree", tests=spans)
                self.con.register("_tree", rows)
                try:
                    self.con.execute("INSERT INTO triage_facts_test_tree BY NAME SELECT * FROM _tree")
                finally:
                    self.con.unregister("_tree")
                self._done.update(("triage_facts_test_tree", f"{run_id}\0{s}") for s in spans)
        return super().subtrees(roots)

    def close(self) -> None:
        for scratch in self._scratch.values():
            scratch.close()
        self._scratch.clear()

