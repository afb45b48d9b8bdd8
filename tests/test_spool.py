"""The ingest spool: acknowledged rows survive a crash at every point between fsync and insert,
exactly once, and a failing insert refuses new exports instead of losing old ones."""

from __future__ import annotations

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
    directory = spool.directory_of(str(db))
    assert directory is not None
    flusher = Flusher(con.cursor(), spool.Spool(directory, spool.replay(con, directory, json_typed)), json_typed)
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
        deadline = time.monotonic() + 30
        while True:  # the flusher inserts the spooled rows again from disk, then accepts exports
            try:
                flusher.append(_tables(5, 3))
                break
            except StoreError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        flusher.flush()
        assert con.execute("SELECT count(*) FROM otel_traces").fetchall()[0][0] == 3 + 4 + 5
    finally:
        flusher.close()
        con.close()
    assert not spool.has_segments(directory)
