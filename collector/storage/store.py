"""The DuckDB store behind the correlator's read contract (``correlator/store.py``).

Each method is one statement over the ``triage_facts_*`` tables (or the metric tables), returning
Arrow; none leaves state behind. ``ensure_facts`` computes facts for runs that lack them or got
data since (``facts.py``): on the daemon's connection they are written through its single writer
(``write_facts``); on a connection of its own (the CLI after ``open_store``, a test, an in-memory
copy of a run from another backend) it writes them itself. A read-only connection cannot, so
``open_store`` brings the file's facts up to date before it opens it read-only.

A completed run's explanation is kept (007_kept_explanations.sql) the way facts are written
(``write_facts``: the daemon's single writer, else the store's own connection); a read-only store
keeps it by ``close`` reopening the file for writing once the reading is done.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from otel_triage.collector.storage import facts
from otel_triage.collector.storage.db import StoreError, open_reader, open_writer
from otel_triage.collector.storage.reader import sql

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa

class DuckStore:
    def __init__(self, con: duckdb.DuckDBPyConnection, write_facts: facts.Write | None = None,
                 read_only: bool = False, facts_checked: bool = False,
                 lock: threading.Lock | None = None, path: str | None = None) -> None:
        self.con = con
        self._lock = lock or threading.Lock()  # the daemon shares one: facts are computed once
        self._write = write_facts
        self._read_only = read_only
        self._checked = facts_checked  # open_store has just brought them up to date
        self._path = path  # a read-only store's file, written by ``close`` (kept explanations)
        self._pending: dict[str, pa.Table] = {}

    def _arrow(self, query: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self.con.sql(query, params=params or None).to_arrow_table()

    def ensure_facts(self) -> None:
        if self._checked:
            self._checked = False
            return
        if self._read_only:
            stale = facts.stale_runs(self.con)
            if stale:
                raise StoreError(f"the facts of run(s) {', '.join(stale[:5])} are out of date and this "
                                 "connection is read-only; open the file with open_store()")
            return
        with self._lock:
            facts.ensure(self.con, self._write)

    def run_ids(self) -> set[str]:
        return {r[0] for r in self.con.execute(sql("run_ids")).fetchall()}

    def tests(self) -> pa.Table:
        return self._arrow("SELECT * FROM triage_facts_tests")

    def run_facts(self, run_id: str) -> dict[str, Any]:
        row: Any = self.con.execute("SELECT services, last_seen_unix_nano, silent_peers FROM triage_facts_runs "
                               "WHERE run_id = $run_id", {"run_id": run_id}).fetchall()
        row = row[0] if row else None
        services, last_seen, silent = row if row else ([], 0, [])
        return {"services": services, "last_seen_unix_nano": last_seen, "silent_peers": silent}

    def is_complete(self, run_id: str) -> bool:
        return bool(self.con.execute(sql("run_completion"), {"run_id": run_id}).fetchall())

    def _of_run(self, table: str, run_id: str) -> pa.Table:
        return self._arrow(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = $run_id", {"run_id": run_id})

    def nodes(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_nodes", run_id)

    def operations(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_ops", run_id)

    def latency(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_latency", run_id)

    def calls(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_calls", run_id)

    def log_templates(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_logs", run_id)

    def patterns(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_patterns", run_id)

    def metric_points(self, run_ids: list[str], window_slack_ns: int = 0) -> pa.Table:
        return self._arrow(sql("metric_points"), {"run_ids": run_ids, "slack_ns": window_slack_ns})

    def stitched(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_stitched", run_id)

    def peer_addresses(self, run_id: str) -> pa.Table:
        return self._of_run("triage_facts_peers", run_id)

    def test_items(self, run_id: str) -> pa.Table:
        """Computed on first read (facts.LAZY) and kept like the other facts; a read-only store
        computes them for itself (writing them could overwrite facts a writer computed meanwhile)."""
        if self._items_pending(run_id):
            with self._lock:  # the daemon's facts lock: computed once, never beside a recomputation
                if self._items_pending(run_id):
                    scratch = facts.RunScratch(self.con, run_id)
                    try:
                        items = scratch.table("triage_facts_test_items")
                    finally:
                        scratch.close()
                    if self._read_only:
                        return items
                    done = self._arrow("SELECT * REPLACE (true AS test_items_computed) FROM triage_facts_runs "
                                       "WHERE run_id = $r", {"r": run_id})
                    self._save(run_id, {"triage_facts_test_items": items, "triage_facts_runs": done})
        return self._of_run("triage_facts_test_items", run_id)

    def _items_pending(self, run_id: str) -> bool:
        return bool(self.con.execute("SELECT 1 FROM triage_facts_runs WHERE run_id = $r AND NOT test_items_computed",
                                     {"r": run_id}).fetchall())

    def code_versions(self) -> pa.Table:
        return self._arrow("SELECT run_id, span_id, code_version FROM triage_facts_tests")

    def subtrees(self, roots: list[tuple[str, str]]) -> pa.Table:
        return self._arrow(sql("test_subtrees"), {"trace_ids": [t for t, _ in roots],
                                                  "span_ids": [s for _, s in roots]})

    def explanation_stamp(self, run_id: str, baseline_run_id: str | None, window_slack_ns: int) -> str:
        """The facts' part (explanation_facts_stamp.sql) and a digest of the metric points of the
        run and its baseline (metric_points.sql: points without a run id join by time window, so
        late exports change it)."""
        facts_part = self.con.execute(sql("explanation_facts_stamp"), {"run_id": run_id}).fetchall()[0][0]
        runs = [run_id] + ([baseline_run_id] if baseline_run_id else [])
        points = self.con.execute(
            "SELECT count(*), coalesce(bit_xor(hash(RunId, service, metric, unit, kind, t, v, joined_by)), 0) "
            f"FROM ({sql('metric_points')})", {"run_ids": runs, "slack_ns": window_slack_ns}).fetchall()[0]
        return f"{facts_part}|{baseline_run_id or ''}|{points[0]}:{points[1]}"

    def kept_explanation(self, run_id: str) -> tuple[str, str | None, str] | None:
        row = self.con.execute("SELECT stamp, baseline_run_id, explanation FROM triage_explanations "
                               "WHERE run_id = $r ORDER BY computed_unix_nano DESC LIMIT 1", {"r": run_id}).fetchall()
        return row[0] if row else None

    def keep_explanation(self, run_id: str, stamp: str, baseline_run_id: str | None, explanation: str) -> None:
        # Built by DuckDB: pa.table over Python values imports pandas when it is installed (~0.3 s).
        row = self._arrow("SELECT $r AS run_id, $b::VARCHAR AS baseline_run_id, $s AS stamp, "
                          "$e AS explanation, $t::BIGINT AS computed_unix_nano",
                          {"r": run_id, "b": baseline_run_id, "s": stamp, "e": explanation, "t": time.time_ns()})
        if self._read_only:
            self._pending[run_id] = row
        else:
            self._save(run_id, {"triage_explanations": row})

    def _save(self, run_id: str, tables: dict[str, pa.Table]) -> None:
        """Replace the run's rows of these derived tables: through the daemon's writer, else here."""
        if self._write:
            self._write(run_id, tables)
        else:
            facts.write(self.con, run_id, tables)

    def close(self) -> None:
        """Close the connection; a read-only store then writes the explanations it was asked to keep,
        on a connection of its own (best effort: a daemon may have taken the file meanwhile)."""
        self.con.close()
        if not (self._pending and self._path):
            return
        with contextlib.suppress(StoreError, duckdb.Error):
            writer = open_writer(self._path)
            try:
                for run_id, row in self._pending.items():
                    facts.write(writer, run_id, {"triage_explanations": row})
            finally:
                writer.close()
        self._pending.clear()


def open_store(path: str | Path) -> DuckStore:
    """A read-only store on a file nobody holds, its facts brought up to date first (once after an
    upgrade or new data: the file is opened for writing just for that)."""
    con = open_reader(path)
    stale, fresh, _ = facts.check(con)
    if stale or fresh:  # facts to compute, or checks of newer data to remember
        con.close()
        writer = open_writer(path)
        try:
            facts.ensure(writer)
        finally:
            writer.close()
        con = open_reader(path)
    return DuckStore(con, read_only=True, facts_checked=True, path=str(path))
