"""Acknowledged ingest rows on their way into DuckDB: an Arrow IPC log beside the database.

Why it exists: DuckDB writes a commit of a few thousand rows twice (into its WAL at the commit, then
compressed by a later checkpoint, which stops every commit while it runs), but one of a whole row
group (122,880 rows) once, compressed, straight into the file: 2,048-row commits cost ~7 µs of CPU a
span, 122,880-row ones ~3.5 (docs/performance.md, "Ingest, eleventh session"). Clients wait for
durability, not for DuckDB, so each group commit of the writer is appended here and fsynced, then
acknowledged, and its rows reach DuckDB a row group at a time (or sooner: before any read, after
``FLUSH_SECONDS``, at close). The transaction that inserts them also records the last segment it
holds (``triage_meta``), so a replay after a crash inserts every acknowledged record exactly once.

A segment is a file of records, one a group commit: a header (magic, number of tables, payload
length, CRC-32 of the payload), then per table its name and the table as one Arrow IPC stream
(LZ4-compressed buffers). A batch is replayed whole or not at all (a dropped file and its ledger row
are one batch). Each record is fsynced before its rows are acknowledged, so only a record that was
never acknowledged can be torn by a crash: replay stops at the first record whose length or checksum
does not hold. Rows too fat for a row group to fit the flusher's transaction are not spooled
(flusher.lean): they would reach DuckDB's WAL all the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import duckdb
from otel_triage.collector.storage.errors import StoreError

if TYPE_CHECKING:  # pyarrow costs ~0.2 s to import: a reader that finds no spool needs none of it
    import pyarrow as pa

log = logging.getLogger(__name__)
Typed = Callable[[str, "pa.Table"], "pa.Table"]  # tables.json_typed

MAGIC = b"TSP1"
HEADER = struct.Struct("<4sIQI")  # magic, number of tables, payload length, CRC-32 of the payload
ENTRY = struct.Struct("<HQ")  # a table's name length and IPC stream length, before each
SUFFIX = ".arrows"
META_KEY = "spool_segment"  # triage_meta: the last segment whose rows are in the database


def directory_of(db_path: str) -> Path | None:
    """The spool beside a database file; None for an in-memory database (nothing to survive)."""
    if not db_path or db_path == ":memory:" or db_path.startswith(":memory:"):
        return None
    # The real path: the same file opened through a symlink or another relative path must find
    # the same spool (its segment numbers are only meaningful against that file's mark).
    return Path(os.path.realpath(db_path) + ".spool")


def _segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:012d}{SUFFIX}"


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # no spool (replay refuses a file)
        for entry in directory.iterdir():
            if entry.suffix == SUFFIX and entry.stem.isdigit():
                found.append((int(entry.stem), entry))
    return sorted(found)


def _ipc_options() -> pa.ipc.IpcWriteOptions:
    """LZ4 on one thread: a 2,048-span batch is 1.5 MB as plain IPC and 0.2 MB compressed, which
    makes the append (write and fsync) ~2.1 ms instead of ~5.4 and costs less CPU, not more (it
    copies and checksums fewer bytes; performance.md, "Ingest, eleventh session")."""
    import pyarrow as pa
    return pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)


def has_segments(directory: Path) -> bool:
    return bool(_segments(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flushed_segment(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT value FROM triage_meta WHERE key = ?", [META_KEY]).fetchall()
    return int(rows[0][0]) if rows else 0


def mark(con: duckdb.DuckDBPyConnection, seq: int) -> None:
    con.execute("INSERT OR REPLACE INTO triage_meta VALUES (?, ?)", [META_KEY, str(seq)])


def read_segment(path: Path) -> list[tuple[str, pa.Table]]:
    """The tables of every whole record of a segment, in order; a torn tail (never acknowledged)
    is left out."""
    import pyarrow as pa
    tables = []
    data = path.read_bytes()
    at = 0
    while at + HEADER.size <= len(data):
        magic, count, size, crc = HEADER.unpack_from(data, at)
        start = at + HEADER.size
        if magic != MAGIC or start + size > len(data) or zlib.crc32(memoryview(data)[start:start + size]) != crc:
            break
        at = start
        for _ in range(count):
            name_len, ipc_len = ENTRY.unpack_from(data, at)
            at += ENTRY.size
            name = data[at:at + name_len].decode()
            at += name_len
            tables.append((name, pa.ipc.open_stream(pa.py_buffer(memoryview(data)[at:at + ipc_len])).read_all()))
            at += ipc_len
    if at != len(data):
        log.warning("%s: %d bytes after the last whole record ignored (a write the crash cut short, "
                    "never acknowledged)", path, len(data) - at)
    return tables


def insert_segments(con: duckdb.DuckDBPyConnection, directory: Path, through: int, typed: Typed) -> int:
    """Insert, in one transaction, the records of every segment after the last one marked in and up
    to ``through``, and mark ``through`` in; the rows inserted."""
    import pyarrow as pa
    done = flushed_segment(con)
    tables: dict[str, list[pa.Table]] = {}
    for seq, path in _segments(directory):
        if done < seq <= through:
            for name, table in read_segment(path):
                tables.setdefault(name, []).append(table)
    con.execute("BEGIN")
    try:
        for name, parts in tables.items():
            _batch = typed(name, pa.concat_tables(parts, promote_options="default"))
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
        mark(con, through)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return sum(t.num_rows for parts in tables.values() for t in parts)


def replay(con: duckdb.DuckDBPyConnection, directory: Path | None, typed: Typed) -> int:
    """Insert the records a crash left in the spool, then remove its segments; the number new
    segments start after."""
    if directory is None:
        return 0
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"{directory} is in the way of triage's spool (it is not a directory): move it")
    segments = _segments(directory)
    if not segments:
        return flushed_segment(con)
    last = segments[-1][0]
    if last > flushed_segment(con):
        rows = insert_segments(con, directory, last, typed)
        log.info("replayed %d acknowledged rows from the spool %s", rows, directory)
    for _seq, path in segments:
        path.unlink(missing_ok=True)
    return max(last, flushed_segment(con))


class Spool:
    """The append side, used under the flusher's lock: records go to the open segment until
    ``seal`` starts the next one."""

    def __init__(self, directory: Path, after: int) -> None:
        self.directory = self._dir = directory
        if not directory.is_dir():
            directory.mkdir(mode=0o700)
            _fsync_dir(directory.parent)  # the directory's own entry, before anything acknowledged in it
        self._seq = after + 1
        self._fh: BinaryIO | None = None

    def append(self, tables: dict[str, pa.Table]) -> None:
        """Write and fsync one group commit as one record: its rows are durable when this returns."""
        import pyarrow as pa
        if self._fh is None:
            fh = open(_segment_path(self._dir, self._seq), "ab")  # noqa: SIM115 (kept open)
            try:
                _fsync_dir(self._dir)
            except BaseException:
                fh.close()
                raise
            self._fh = fh
        fh = self._fh
        start = fh.tell()
        try:
            parts: list[bytes | pa.Buffer] = []
            for name, table in tables.items():
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema, options=_ipc_options()) as out:
                    out.write_table(table)
                stream, encoded = sink.getvalue(), name.encode()
                parts += [ENTRY.pack(len(encoded), stream.size), encoded, stream]
            crc = 0
            for part in parts:
                crc = zlib.crc32(part, crc)
            fh.write(HEADER.pack(MAGIC, len(tables), sum(len(p) if isinstance(p, bytes) else p.size for p in parts), crc))
            for part in parts:
                fh.write(part)
            fh.flush()
            os.fdatasync(fh.fileno())
        except BaseException:
            self._abandon(start)
            raise

    def _abandon(self, start: int) -> None:
        """After a failed append (a full disk): cut the record off, durably; if even that fails,
        leave it as a torn tail (replay stops reading this segment there) and go on in a new
        segment."""
        fh, self._fh = self._fh, None
        assert fh is not None
        with contextlib.suppress(OSError, ValueError):
            fh.close()
        try:
            os.truncate(fh.name, start)
            fd = os.open(fh.name, os.O_WRONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            self._seq += 1

    def seal(self) -> int:
        """Close the open segment (records appended from now go to the next); its number."""
        sealed = self._seq
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._seq += 1
        return sealed

    def remove_through(self, seq: int) -> None:
        for s, path in _segments(self._dir):
            if s <= seq:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the open segment; an empty spool leaves no directory behind (a clean stop)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for _seq, path in _segments(self._dir):
            if path.stat().st_size == 0:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: rows an insert refused, replayed at next open
            self._dir.rmdir()


def open_spool(con: duckdb.DuckDBPyConnection, db_path: str) -> Spool | None:
    """The daemon's spool for ``db_path`` (after a replay of anything left in it)."""
    from otel_triage.collector.tables import json_typed
    directory = directory_of(str(db_path))
    if directory is None:
        return None
    after = replay(con, directory, json_typed)
    try:
        return Spool(directory, after)
    except OSError as exc:
        raise StoreError(f"cannot create the spool {directory} beside the database ({exc.strerror}): "
                         "triage acknowledges rows once they are there") from exc
