"""The single DuckDB writer: group commit of decoded Arrow batches.

Every accepted export request becomes a ``WriteJob``. One thread owns the writable connection; it
takes every job that is waiting, concatenates their Arrow tables per target table and makes them
durable at once: in the daemon, one append to the spool, fsynced (spool.py; flusher.py inserts the
rows into DuckDB a row group at a time, and every ``read`` waits for that), else one transaction.
Only then does it resolve the jobs, which is what lets the OTLP handlers answer OK: acknowledged
means durable. Batching many requests per commit is what
keeps durability cheap (DuckDB inserts ~50k rows/s in 512-row batches, ~170k in 50k-row batches).
A run's derived rows (its facts: ~1.2M rows at 1M spans) go in one transaction of their own, a row
group at a time, with the ingest jobs that arrive meanwhile committed in between (``_commit_derived``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from otel_triage.collector.storage import spool as spooling
from otel_triage.collector.storage.flusher import Flusher, lean
from otel_triage.collector.tables import json_typed

log = logging.getLogger(__name__)


@dataclass
class WriteJob:
    tables: dict[str, pa.Table]
    rows: int
    done: Future = field(default_factory=Future)
    # Derived rows of one run (storage/facts.py): each table's rows of this run_id are replaced.
    replace_run: str | None = None
    # Told the committed tables on the writer thread before ``done`` resolves (run completion).
    committed: Callable[[dict[str, pa.Table]], None] | None = None


_STOP = object()
# A run's derived rows beyond this many are written a slice at a time, ingest committed in between
# (``_commit_derived``): a slice inserts in ~0.1 s.
DERIVED_SLICE_ROWS = 122_880


class Writer:
    """Owns the connection; ``submit`` from any thread, ``close`` drains and checkpoints.

    Two DuckDB settings are the ingest's, not DuckDB's defaults (docs/performance.md, "Ingest, ninth
    session"). DuckDB runs on one thread (the caller's) while only commits run, and on all cores
    while a read or ``exclusive`` runs: a commit of a few thousand rows gains nothing from a second
    thread but hand-offs to it, and the decoder needs that core (2x4 streams on 2 cores: ~91-96k
    spans/s with one thread a core, ~99-104k with one); the setting is the database's, so the first
    reader raises it and the last one lowers it. And automatic checkpoints do not vacuum: merging
    the row groups earlier checkpoints left part-filled stopped every commit for ~1.1 s every ~450k
    spans, for no faster scans (and at close it doubled the file: the merged row groups written
    anew, the old blocks left free); ``exclusive`` (retention's deletes) checkpoints with vacuuming,
    which is what gives deleted rows' space back."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        max_batch_rows: int = 200_000,
        on_commit: Callable[[int, int, float], None] | None = None,
        spool: spooling.Spool | None = None,
    ) -> None:
        self._con = con
        # Ingest rows are acknowledged once in the spool, and inserted a row group at a time.
        self._flusher = Flusher(con.cursor(), spool, json_typed) if spool is not None else None
        self._queue: queue.Queue = queue.Queue()
        self._max_batch_rows = max_batch_rows
        self._on_commit = on_commit
        self._lock = threading.Lock()  # commits and close never interleave on the writer's connection
        self._taken = threading.Condition()  # notified when the writer thread takes jobs or commits them
        self._committing = False
        self._held: list[object] = []  # jobs (or the stop marker) to take before the queue's
        self._readers_lock = threading.Lock()
        self._readers = 0
        self._read_threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        self._vacuum_tasks = int(con.execute("SELECT current_setting('max_vacuum_tasks')").fetchone()[0])
        con.execute("SET threads = 1")
        con.execute("SET max_vacuum_tasks = 0")
        self._thread = threading.Thread(target=self._run, name="triage-writer", daemon=True)
        self._thread.start()

    def submit(self, job: WriteJob) -> Future:
        self._queue.put(job)
        return job.done

    def depth(self) -> int:
        return self._queue.qsize()

    def wait_taken(self, timeout: float) -> None:
        """Return once the writer thread has taken every job submitted so far (it is committing
        them, or done), or after ``timeout`` seconds. The batcher waits here before it decodes, so
        what arrives during one commit is decoded, and then committed, as one batch."""
        with self._taken:
            self._taken.wait_for(self._queue.empty, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every job submitted so far is committed (or failed): True, or False after
        ``timeout``. The batcher waits here before it takes a batch (collector/batcher.py)."""
        with self._taken:
            return self._taken.wait_for(lambda: self._queue.empty() and not self._committing, timeout)

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], object]) -> object:
        """Run a read on a cursor of the writer's database (the daemon's query API uses this), once
        every row acknowledged so far is in it."""
        self.flush()
        cursor = self._con.cursor()
        try:
            with self._all_cores(cursor):
                return fn(cursor)
        finally:
            cursor.close()

    @contextlib.contextmanager
    def _all_cores(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """DuckDB on every core while this runs (see the class docstring)."""
        with self._readers_lock:
            if self._readers == 0:
                con.execute(f"SET threads = {self._read_threads}")
            self._readers += 1
        try:
            yield
        finally:
            with self._readers_lock:
                self._readers -= 1
                if self._readers == 0:
                    with contextlib.suppress(duckdb.Error):  # never in place of the read's own error
                        con.execute("SET threads = 1")

    def exclusive(self, fn: Callable[[duckdb.DuckDBPyConnection], object]) -> object:
        """Run ``fn`` in a transaction of its own between two commits (retention's deletes), then
        checkpoint so the blocks it freed are reused (or given back at the end of the file)."""
        with self._lock, self._paused(), self._all_cores(self._con):
            con = self._con
            con.execute("BEGIN")
            try:
                result = fn(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            try:
                self._checkpoint_vacuuming(con)
            except duckdb.Error as exc:  # a reader holds an old snapshot: the next checkpoint does it
                log.info("checkpoint after a write deferred: %s", exc)
            return result

    def _checkpoint_vacuuming(self, con: duckdb.DuckDBPyConnection) -> None:
        """A checkpoint that merges row groups with deletions (automatic ones do not: see above)."""
        con.execute(f"SET max_vacuum_tasks = {self._vacuum_tasks}")
        try:
            con.execute("CHECKPOINT")
        finally:
            con.execute("SET max_vacuum_tasks = 0")

    def _paused(self) -> contextlib.AbstractContextManager[None]:
        """Every acknowledged row in DuckDB, and the flusher's transaction closed meanwhile."""
        return self._flusher.paused() if self._flusher is not None else contextlib.nullcontext()

    def flush(self) -> None:
        """Return once every acknowledged row is in DuckDB (flusher.py)."""
        if self._flusher is not None:
            self._flusher.flush()

    def close(self) -> str | None:
        """Drain, commit and checkpoint; None, or why acknowledged rows are still in the spool."""
        self._queue.put(_STOP)
        self._thread.join()
        left = self._flusher.close() if self._flusher is not None else None
        with self._lock:
            self._con.execute("CHECKPOINT")
            self._con.close()
        return left

    def _take_batch(self) -> tuple[list[WriteJob], bool]:
        if self._held:  # taken while a run's derived rows were written (``_between``), not yet committed
            held, self._held = self._held, []
            self._mark(committing=True)
            return [item for item in held if item is not _STOP], any(item is _STOP for item in held)  # type: ignore[misc]
        first = self._queue.get()
        if first is _STOP:
            return [], True
        jobs, rows, stop = [first], first.rows, False
        while rows < self._max_batch_rows:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                stop = True
                break
            jobs.append(nxt)
            rows += nxt.rows
        self._mark(committing=True)
        return jobs, stop

    def _run(self) -> None:
        while True:
            jobs, stop = self._take_batch()
            if jobs:
                try:
                    self._commit(jobs)
                finally:
                    self._idle()
            if stop:
                # Drain whatever raced in behind the stop marker, so nothing accepted is left behind.
                rest = []
                while not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is not _STOP:
                        rest.append(item)
                if rest:
                    self._commit(rest)
                return

    def _commit(self, jobs: list[WriteJob]) -> None:
        derived = [job for job in jobs if job.replace_run is not None]
        if sum(t.num_rows for job in derived for t in job.tables.values()) <= DERIVED_SLICE_ROWS:
            self._commit_together(jobs)
            return
        if len(derived) < len(jobs):
            self._commit_together([job for job in jobs if job.replace_run is None])
        self._commit_derived(derived)

    def _commit_together(self, jobs: list[WriteJob]) -> None:
        """One transaction for all of ``jobs``; then each is resolved (or all failed together)."""
        started = time.perf_counter()
        try:
            if self._spooled(jobs):
                self._append(jobs)
            else:
                with self._lock:
                    self._transaction(jobs)
        except Exception as exc:  # the jobs fail together; their callers answer with an error
            self._failed(jobs, exc)
            return
        self._finish(jobs, time.perf_counter() - started)

    def _spooled(self, jobs: list[WriteJob]) -> bool:
        """Ingest rows small enough that a row group of them fits the flusher's transaction; others
        (derived rows, fat rows) are committed here, as before the spool: through the spool they
        would reach DuckDB's WAL all the same, after a second write."""
        return (self._flusher is not None and all(job.replace_run is None for job in jobs)
                and all(lean(job.tables) for job in jobs))

    def _append(self, jobs: list[WriteJob]) -> None:
        by_table: dict[str, list[pa.Table]] = {}
        for job in jobs:
            for name, table in job.tables.items():
                by_table.setdefault(name, []).append(table)
        self._flusher.append({name: parts[0] if len(parts) == 1 else pa.concat_tables(parts)  # type: ignore[union-attr]
                            for name, parts in by_table.items()})

    def _transaction(self, jobs: list[WriteJob]) -> None:
        by_table: dict[str, list[pa.Table]] = {}
        # Derived rows of one run (facts, its kept explanation) replace that run's rows table by table;
        # within one commit the newest of each table wins, and jobs of other tables all count.
        replaced: dict[str, dict[str, pa.Table]] = {}
        for job in jobs:
            if job.replace_run is not None:
                replaced.setdefault(job.replace_run, {}).update(job.tables)
                continue
            for name, table in job.tables.items():
                by_table.setdefault(name, []).append(table)
        con = self._con
        con.execute("BEGIN")
        try:
            for run_id, tables in replaced.items():
                for name, table in tables.items():
                    con.execute(f"DELETE FROM {name} WHERE run_id = ?", [run_id])
                    by_table.setdefault(name, []).append(table)
            for name, parts in by_table.items():
                # DuckDB finds the local by its name (a replacement scan): registering and
                # unregistering a view cost ~0.7 ms a table, a third of a small commit.
                _batch = json_typed(name, parts[0] if len(parts) == 1 else pa.concat_tables(parts))
                con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise

    def _commit_derived(self, jobs: list[WriteJob]) -> None:
        """A run's facts at 1M spans are ~1.2M rows (~3 s to insert; its per-test items 3.5M more):
        one transaction on a cursor of its own, inserted ``DERIVED_SLICE_ROWS`` at a time, and
        between two slices the ingest jobs waiting are committed on the writer's connection, so
        acknowledgements wait for one slice, not the whole write. Readers still see all of a run's
        new facts or none; the transactions touch different tables, so they never conflict."""
        replaced: dict[str, dict[str, pa.Table]] = {}
        for job in jobs:
            replaced.setdefault(job.replace_run, {}).update(job.tables)  # type: ignore[arg-type]
        started = time.perf_counter()
        self._idle()  # the batcher may send the next batch now (collector/batcher.py waits for this)
        try:
            with self._lock:
                cur = self._con.cursor()
                try:
                    cur.execute("BEGIN")
                    try:
                        for run_id, tables in replaced.items():
                            for name, table in tables.items():
                                cur.execute(f"DELETE FROM {name} WHERE run_id = ?", [run_id])
                                for offset in range(0, table.num_rows, DERIVED_SLICE_ROWS):
                                    _slice = table.slice(offset, DERIVED_SLICE_ROWS)
                                    cur.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _slice")
                                    self._between()
                        cur.execute("COMMIT")
                    except BaseException:
                        _rollback(cur)
                        raise
                finally:
                    cur.close()
        except Exception as exc:
            self._failed(jobs, exc)
            return
        self._finish(jobs, time.perf_counter() - started)

    def _between(self) -> None:
        """Commit the ingest jobs waiting now (the lock is held); derived jobs and the stop
        marker wait in ``_held`` for the next batch."""
        jobs = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP or item.replace_run is not None:
                self._held.append(item)
            else:
                jobs.append(item)
        if not jobs:
            return
        self._mark(committing=True)
        started = time.perf_counter()
        try:
            if self._spooled(jobs):
                self._append(jobs)
            else:
                self._transaction(jobs)
        except Exception as exc:
            self._failed(jobs, exc)
        else:
            self._finish(jobs, time.perf_counter() - started)
        self._idle()

    def _idle(self) -> None:
        self._mark(committing=False)

    def _mark(self, committing: bool) -> None:
        """Whether the writer holds jobs it has not committed; ``wait_taken``/``wait_idle`` wake."""
        with self._taken:
            self._committing = committing
            self._taken.notify_all()

    def _failed(self, jobs: list[WriteJob], exc: Exception) -> None:
        log.exception("commit of %d rows failed", sum(job.rows for job in jobs), exc_info=exc)
        for job in jobs:
            job.done.set_exception(exc)

    def _finish(self, jobs: list[WriteJob], elapsed: float) -> None:
        if self._on_commit:
            self._on_commit(len(jobs), sum(job.rows for job in jobs), elapsed)
        for job in jobs:
            if job.committed is not None:
                try:
                    job.committed(job.tables)
                except Exception:  # bookkeeping must never fail an export that is committed
                    log.exception("run completion tracking failed")
            job.done.set_result(None)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # After an I/O error (a full disk) DuckDB may have ended the transaction itself; a failing
    # ROLLBACK must not replace the error that says what went wrong.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")
