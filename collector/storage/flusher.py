"""Spooled ingest rows into DuckDB a row group at a time, on a thread of their own.

The writer thread appends each group commit to the spool (spool.py: fsynced, then acknowledged)
and hands its tables here. This thread inserts them as they come into one open transaction on a
cursor of its own, and commits it once a table holds a row group's worth of rows (or the transaction
``FLUSH_BYTES``), so DuckDB writes them
compressed straight to the file instead of into its WAL and again at a checkpoint (and keeps no
uncommitted row group in memory longer than it takes to fill). It commits sooner when its oldest row
is ``FLUSH_SECONDS`` old, and whenever ``flush`` asks (before every read, a retention delete, close):
a reader sees every row acknowledged before it asked.

A failed insert leaves the rows where they were acknowledged, in the spool: the transaction is rolled
back, new exports are refused (their clients retry), and the spooled segments are inserted again
from disk until that succeeds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
from otel_triage.collector.storage import spool as spooling
from otel_triage.collector.storage.errors import StoreError

log = logging.getLogger(__name__)

FLUSH_ROWS = 122_880  # DuckDB's row group size: a commit of this many rows of a table skips its WAL
FLUSH_SECONDS = 2.0  # a slower trickle is in the database this soon after its first row
# ... and sooner when the open transaction holds this many bytes (Arrow's size of what it inserted):
# its last row group stays in memory uncompressed until the commit, and fat rows (8 KB attributes)
# would hold ~1 GB before 122,880 of them. Above what 122,880 spans of ~1.6 KB take: a smaller bound
# (64 MiB) cut the row groups of ordinary spans short (their rows then went through the WAL again).
FLUSH_BYTES = 192 << 20
# A failed insert with less than this free beside the database is a full disk (the error may not say so).
ROOM_BYTES = 64 << 20
# Appended and not yet inserted beyond which an export waits (the flusher keeps up at ~3 µs a row;
# this bounds the memory they hold when it does not), in rows and in bytes.
MAX_QUEUED_ROWS = 32_768
MAX_QUEUED_BYTES = 32 << 20
RETRY_SECONDS = 1.0
Typed = Callable[[str, pa.Table], pa.Table]


def _rows(tables: dict[str, pa.Table]) -> int:
    return sum(table.num_rows for table in tables.values())


def _bytes(tables: dict[str, pa.Table]) -> int:
    return sum(table.nbytes for table in tables.values())


def lean(tables: dict[str, pa.Table]) -> bool:
    """Whether a row group of rows like these fits in ``FLUSH_BYTES``: only then does the spool pay
    (DuckDB writes the row group straight to the file); fatter rows are committed directly."""
    rows = max((table.num_rows for table in tables.values()), default=0)
    return rows == 0 or _bytes(tables) * FLUSH_ROWS <= FLUSH_BYTES * rows


class Flusher:
    def __init__(self, cur: duckdb.DuckDBPyConnection, spool: spooling.Spool, typed: Typed) -> None:
        self._cur = cur
        self._spool = spool
        self._typed = typed
        self._cv = threading.Condition()
        self._queue: list[dict[str, pa.Table]] = []
        self._queued_rows = 0
        self._queued_bytes = 0
        self._appended = 0  # group commits appended to the spool so far
        self._committed = 0  # ... of which this many are in the database
        self._wanted = 0  # ``flush`` asks for a commit once this many are inserted
        self._stop = False
        self._dead = False  # the thread ended (closed, or a bug): nothing waits for it any more
        self._pauses = 0  # ``paused`` blocks under way: no transaction of ours is opened meanwhile
        self._idle = False  # the thread is waiting out a pause, everything before it committed
        self._error: BaseException | None = None
        self._why_of: BaseException | None = None  # the error _why_text describes
        self._why_text = ""
        # The open transaction (touched by this thread only).
        self._open = False
        self._rows: dict[str, int] = {}  # rows inserted a table
        self._bytes = 0  # Arrow bytes inserted
        self._since = 0.0
        self._thread = threading.Thread(target=self._run, name="triage-flush", daemon=True)
        self._thread.start()

    def append(self, tables: dict[str, pa.Table]) -> None:
        """Make one group commit durable (the caller acknowledges it after this) and queue it."""
        with self._cv:
            self._cv.wait_for(lambda: (self._queued_rows < MAX_QUEUED_ROWS and self._queued_bytes < MAX_QUEUED_BYTES)
                              or self._stop or self._error is not None
                              or self._dead)
            if self._error is not None or self._dead:
                raise StoreError(f"the database refuses spooled rows: {self._why()}")
            self._spool.append(tables)
            self._queue.append(tables)
            self._queued_rows += _rows(tables)
            self._queued_bytes += _bytes(tables)
            self._appended += 1
            self._cv.notify_all()

    def flush(self) -> None:
        """Return once every group commit appended so far is committed in the database."""
        with self._cv:
            target = self._appended
            if self._committed >= target:
                return
            self._wanted = max(self._wanted, target)
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._committed >= target or self._error is not None or self._dead)
            if self._committed < target:
                raise StoreError(f"acknowledged rows are not in the database yet: {self._error or 'closing'}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Every row appended so far committed, and no transaction of ours open until the block
        ends: retention deletes, then checkpoints to give the space back, and a checkpoint frees
        nothing a transaction begun before the delete can still see. Appends go on meanwhile
        (into the spool and the queue, up to its bound)."""
        with self._cv:
            self._pauses += 1
            self._wanted = max(self._wanted, self._appended)
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._idle or self._error is not None or self._dead)
        try:
            yield
        finally:
            with self._cv:
                self._pauses -= 1
                self._cv.notify_all()

    def close(self) -> str | None:
        """Commit what is queued, then stop. None when every acknowledged row is in the database;
        else why some are still only in the spool (the next opener inserts them)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join()
        self._spool.close()
        if self._committed >= self._appended:
            return None
        return f"{self._spool.directory} holds rows the database refused ({self._error})"

    def _why(self) -> str:
        """The insert's error, and a full disk when it is one: DuckDB words it many ways, some of them
        ("failed to offload data ... memory_limit") not naming the disk. Whether the disk is full is
        asked of the disk itself (can it take ROOM_BYTES more?), once per error."""
        error = self._error
        if error is None:
            return "the flusher stopped"
        if self._why_of is not error:
            self._why_of, self._why_text = error, str(error)
            if "no space left" not in self._why_text.lower() and not _room(self._spool.directory, ROOM_BYTES):
                free = shutil.disk_usage(self._spool.directory).free
                self._why_text = f"no space left on device beside {self._spool.directory} ({free:,} bytes free): {error}"
        return self._why_text

    def _due(self) -> bool:
        return (bool(self._queue) or self._stop or self._wanted > self._committed
                or (self._pauses > 0 and not self._idle)
                or (self._open and time.monotonic() - self._since >= FLUSH_SECONDS))

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug: fail the waiting appends and reads, never hang them
            log.exception("the spool's flusher stopped")
            with self._cv:
                self._error = self._error or exc
        finally:
            with self._cv:
                self._dead = True
                self._cv.notify_all()

    def _step(self) -> bool:
        """One turn: insert what is queued, commit if due; False once stopped."""
        with self._cv:
            if self._pauses and self._committed >= self._wanted and not self._open and not self._stop:
                self._idle = True
                self._cv.notify_all()
                self._cv.wait_for(lambda: not self._pauses or self._stop)
                self._idle = False
            self._cv.wait_for(self._due, timeout=FLUSH_SECONDS / 4)
            if self._error is not None:
                if self._stop:
                    return False
                self._cv.wait(RETRY_SECONDS)
                self._recover()
                return True
            items, upto = self._queue, self._appended
            self._queue, self._queued_rows, self._queued_bytes = [], 0, 0
            self._cv.notify_all()
            rows = dict(self._rows)
            for tables in items:
                for name, table in tables.items():
                    rows[name] = rows.get(name, 0) + table.num_rows
            size = self._bytes + sum(_bytes(t) for t in items)
            commit = (self._stop or self._wanted > self._committed or max(rows.values(), default=0) >= FLUSH_ROWS
                      or size >= FLUSH_BYTES
                      or (self._open and time.monotonic() - self._since >= FLUSH_SECONDS))
            stop = self._stop
            try:
                sealed = self._spool.seal() if commit else 0
            except Exception as exc:  # the items are in segments not marked in: recovery reads them
                self._failed(exc)
                return True
        try:
            self._insert(items)
            if commit:
                self._commit(sealed)
        except Exception as exc:
            self._failed(exc)
            return True
        if commit:
            with self._cv:
                self._committed = upto
                self._cv.notify_all()
        return not stop

    def _insert(self, items: list[dict[str, pa.Table]]) -> None:
        for tables in items:
            if not self._open:
                self._cur.execute("BEGIN")
                self._open, self._rows, self._bytes, self._since = True, {}, 0, time.monotonic()
            for name, table in tables.items():
                _batch = self._typed(name, table)
                self._cur.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
                self._rows[name] = self._rows.get(name, 0) + table.num_rows
                self._bytes += table.nbytes

    def _commit(self, sealed: int) -> None:
        if self._open:
            spooling.mark(self._cur, sealed)
            self._cur.execute("COMMIT")
            self._open, self._rows, self._bytes = False, {}, 0
        with contextlib.suppress(OSError):  # committed and marked: replay skips what is left
            self._spool.remove_through(sealed)

    def _failed(self, exc: BaseException) -> None:
        log.error("inserting acknowledged rows into the database failed (they stay in the spool): %s", exc)
        if self._open:
            with contextlib.suppress(duckdb.Error):
                self._cur.execute("ROLLBACK")
            self._open, self._rows, self._bytes = False, {}, 0
        with self._cv:
            self._error = exc
            self._cv.notify_all()

    def _recover(self) -> None:
        """Under the lock: insert every segment not yet in the database from disk (the queue's
        tables are among them), then accept exports again."""
        upto = self._appended
        self._queue, self._queued_rows, self._queued_bytes = [], 0, 0
        try:
            sealed = self._spool.seal()
            spooling.insert_segments(self._cur, self._spool.directory, sealed, self._typed)
        except Exception as exc:
            log.error("inserting spooled rows again failed: %s", exc)
            return
        with contextlib.suppress(OSError):  # inserted and marked: a later removal or replay skips them
            self._spool.remove_through(sealed)
        self._committed, self._error = upto, None
        self._cv.notify_all()


def _room(directory: Path, size: int) -> bool:
    """Whether the disk holding ``directory`` can take ``size`` more bytes now (a file reserved and
    removed); True when that cannot be told."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".room-")
    except OSError as exc:
        return exc.errno != errno.ENOSPC
    try:
        os.posix_fallocate(fd, 0, size)
        return True
    except OSError as exc:
        return exc.errno not in (errno.ENOSPC, errno.EDQUOT)
    finally:
        os.close(fd)
        os.unlink(name)
