"""The ingest spool: acknowledged rows survive a crash at every point between fsync and insert,
exactly once, and a failing insert refuses new exports instead of losing old ones."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from otel_triage.collector.decode import Limits
from otel_triage.collector.fastdecode import decode_together
from otel_triage.collector.storage import spool
from otel_triage.collector.storage.db import open_reader, open_writer
from otel_triage.collector.storage.errors import StoreError
from otel_triage.collector.storage.flusher import Flusher
from otel_triage.collector.storage.writer import WriteJob, Writer
from otel_triage.collector.tables import json_typed

from tests.test_receiver_errors import _request


def _tables(n: int, trace_byte: int) -> dict[str, pa.Table]:
    tables, _counts = decode_together("traces", [_request(n, trace_byte=trace_byte).SerializeToString()],
                                      None, Limits())
    return tables


def _spans(path: Path) -> int:
    con = open_reader(path)  # replays a spool left behind, as every triage opener does
    try:
        return con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0]
    finally:
        con.close()


def _spooled(db: Path, *batches: dict[str, pa.Table]) -> Path:
    """A file with an empty schema, and ``batches`` acknowledged into its spool, as a daemon
    killed before it inserted them leaves it."""
    open_writer(db).close()
    directory = spool.directory_of(str(db))
    assert directory is not None
    s = spool.Spool(directory, 0)
    for tables in batches:
        s.append(tables)
    s.close()
    return directory


def test_rows_left_in_the_spool_are_inserted_by_the_next_opener_and_the_spool_emptied(tmp_path):
    db = tmp_path / "t.duckdb"
    directory = _spooled(db, _tables(3, 1), _tables(4, 2))
    assert _spans(db) == 7
    assert not spool.has_segments(directory)
    assert _spans(db) == 7  # and never again


def test_a_record_cut_short_by_the_crash_is_left_out_the_ones_before_it_kept(tmp_path):
    db = tmp_path / "t.duckdb"
    directory = _spooled(db, _tables(3, 1), _tables(4, 2))
    [(_, segment)] = spool._segments(directory)
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])  # the last record's fsync never completed: never acknowledged
    assert _spans(db) == 3


def test_a_record_whose_bytes_do_not_match_its_checksum_ends_the_replay(tmp_path):
    db = tmp_path / "t.duckdb"
    directory = _spooled(db, _tables(3, 1), _tables(4, 2))
    [(_, segment)] = spool._segments(directory)
    data = bytearray(segment.read_bytes())
    data[-100] ^= 0xFF  # a torn page in the middle of the last record
    segment.write_bytes(bytes(data))
    assert _spans(db) == 3


def test_a_crash_after_the_insert_committed_but_before_the_segments_went_inserts_nothing_twice(tmp_path):
    db = tmp_path / "t.duckdb"
    directory = _spooled(db, _tables(3, 1), _tables(4, 2))
    con = duckdb.connect(str(db))
    [(seq, _)] = spool._segments(directory)
    assert spool.insert_segments(con, directory, seq, json_typed) == 7
    con.close()
    assert spool.has_segments(directory)  # the crash came before they were removed
    assert _spans(db) == 7


def test_the_flusher_commits_on_demand_and_a_failed_insert_refuses_exports_until_it_recovers(tmp_path):
    db = tmp_path / "t.duckdb"
    con = open_writer(db)
    the_spool = spool.open_spool(con, str(db))
    assert the_spool is not None
    directory = the_spool.directory
    flusher = Flusher(con.cursor(), the_spool, json_typed)
    try:
        flusher.append(_tables(3, 1))
        flusher.flush()  # what every read does first
        assert con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0] == 3

        con.execute("ALTER TABLE otel_traces RENAME TO otel_traces_away")  # every insert fails now
        flusher.append(_tables(4, 2))  # durable in the spool: acknowledged
        with pytest.raises(StoreError, match="not in the database"):
            flusher.flush()
        with pytest.raises(StoreError, match="refuses spooled rows"):
            flusher.append(_tables(5, 3))  # not acknowledged: the client retries
        assert spool.has_segments(directory)

        con.execute("ALTER TABLE otel_traces_away RENAME TO otel_traces")
        _append_once_recovered(flusher, _tables(5, 3))
        flusher.flush()
        assert con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0] == 3 + 4 + 5
    finally:
        flusher.close()
        con.close()
    assert not spool.has_segments(directory)


def test_a_batch_is_replayed_whole_or_not_at_all(tmp_path):
    """A dropped file and its ledger row are one batch: a crash that cut the batch anywhere
    (here inside its second table) replays neither, so the file is taken in again, once."""
    db = tmp_path / "t.duckdb"
    request = _request(3, trace_byte=1)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.events.add(name="e", time_unix_nano=1)
    tables, _counts = decode_together("traces", [request.SerializeToString()], None, Limits())
    assert set(tables) == {"otel_traces", "otel_traces_events"}
    directory = _spooled(db, _tables(2, 2), tables)
    [(_, segment)] = spool._segments(directory)
    segment.write_bytes(segment.read_bytes()[:-10])  # the events' stream, at the end of the batch
    con = open_reader(db)
    try:
        assert con.execute("SELECT count(*) FROM otel_traces").fetchall() == [(2,)]
        assert con.execute("SELECT count(*) FROM otel_traces_events").fetchall() == [(0,)]
    finally:
        con.close()


def test_retention_gives_space_back_while_the_flusher_holds_rows(tmp_path):
    """Writer.exclusive (retention) pauses the flusher: its checkpoint can free the deleted rows'
    blocks only if no transaction begun before the delete is open (DuckDB keeps them for it)."""
    db = tmp_path / "t.duckdb"
    con = open_writer(db)
    writer = Writer(con, spool=spool.open_spool(con, str(db)))
    try:
        request = _request(20_000, trace_byte=1)
        for span in request.resource_spans[0].scope_spans[0].spans:  # incompressible: blocks to free
            span.attributes[0].value.string_value = os.urandom(100).hex()
        old = decode_together("traces", [request.SerializeToString()], None, Limits())[0]
        writer.submit(WriteJob(old, 20_000)).result()
        writer.read(lambda c: c.execute("CHECKPOINT"))  # the rows in blocks of the file, not the WAL
        writer.submit(WriteJob(_tables(3, 2), 3)).result()  # the flusher's transaction is open now

        def delete(c: duckdb.DuckDBPyConnection) -> None:
            c.execute("DELETE FROM otel_traces WHERE TraceId = ?", ["01" * 16])

        writer.exclusive(delete)
        free = writer.read(lambda c: c.execute("SELECT free_blocks FROM pragma_database_size()").fetchall()[0][0])
        assert free > 0
        assert writer.read(lambda c: c.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0]) == 3
    finally:
        writer.close()


def test_a_spool_that_fails_to_seal_fails_the_flush_and_recovers_instead_of_hanging(tmp_path):
    db = tmp_path / "t.duckdb"
    con = open_writer(db)
    the_spool = spool.open_spool(con, str(db))
    assert the_spool is not None
    flusher = Flusher(con.cursor(), the_spool, json_typed)
    seal, failures = the_spool.seal, [OSError(5, "Input/output error")]

    def failing_seal() -> int:  # an I/O error closing a segment, once
        if failures:
            raise failures.pop()
        return seal()

    the_spool.seal = failing_seal  # type: ignore[method-assign]
    try:
        flusher.append(_tables(3, 1))
        outcome: list[object] = []
        reader = threading.Thread(target=lambda: outcome.append(_flush(flusher)))
        reader.start()
        reader.join(30)
        assert outcome and isinstance(outcome[0], StoreError), outcome  # an answer, not a hang
        _append_once_recovered(flusher, _tables(4, 2))
        flusher.flush()
        assert con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0] == 7
    finally:
        flusher.close()
        con.close()


def _append_once_recovered(flusher: Flusher, tables: dict[str, pa.Table]) -> None:
    """Append as a client retrying would: refused until the flusher has inserted the spooled rows
    again from disk (every second), then taken."""
    deadline = time.monotonic() + 30
    while True:
        try:
            flusher.append(tables)
            return
        except StoreError:
            assert time.monotonic() < deadline, "the flusher never recovered"
            time.sleep(0.1)


def _flush(flusher: Flusher) -> object:
    try:
        flusher.flush()
    except StoreError as exc:
        return exc
    return None


def test_a_file_where_the_spool_goes_is_a_clear_error_for_the_daemon(tmp_path):
    db = tmp_path / "t.duckdb"
    open_writer(db).close()
    Path(f"{db}.spool").write_text("someone's notes")
    proc = subprocess.run([sys.executable, "-m", "otel_triage.cli", "serve", "--db", str(db), "--listen", "127.0.0.1:0",
                           "--listen-http", "off"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "in the way of triage's spool" in proc.stderr, proc.stderr
    assert Path(f"{db}.spool").read_text() == "someone's notes"
    assert _spans(db) == 0  # reading needs no spool


def test_fat_rows_are_committed_directly_not_spooled(tmp_path):
    """A row group of 8 KB rows would not fit the flusher's transaction, so through the spool they
    would be written twice (spool, then DuckDB's WAL): the writer commits them itself."""
    db = tmp_path / "t.duckdb"
    con = open_writer(db)
    the_spool = spool.open_spool(con, str(db))
    writer = Writer(con, spool=the_spool)
    try:
        request = _request(50, trace_byte=1)
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.attributes[0].value.string_value = os.urandom(4000).hex()
        fat = decode_together("traces", [request.SerializeToString()], None, Limits())[0]
        writer.submit(WriteJob(fat, 50)).result()
        assert the_spool is not None and not spool.has_segments(the_spool.directory)
        cur = con.cursor()  # not through Writer.read: nothing is flushed first
        assert cur.execute("SELECT count(*) FROM otel_traces").fetchall() == [(50,)]
        writer.submit(WriteJob(_tables(3, 2), 3)).result()  # lean rows: spooled, as ever
        assert spool.has_segments(the_spool.directory)
        cur.close()
    finally:
        writer.close()
