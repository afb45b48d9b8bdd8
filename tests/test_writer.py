"""The single writer (collector/storage/writer.py): a run's derived rows (its facts, ~1.2M rows at
1M spans) are written a slice at a time in one transaction, and the ingest jobs that arrive meanwhile
are committed between two slices instead of waiting for the whole write; readers see all of the
run's new rows or none. A real DuckDB file and the real Writer thread."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pyarrow as pa
from otel_triage.collector.storage import db
from otel_triage.collector.storage.writer import DERIVED_SLICE_ROWS, WriteJob, Writer


def _peers(n: int, tag: str) -> pa.Table:
    return duckdb.connect().sql(
        "SELECT 'r1' AS run_id, $tag || i AS address, 'svc' AS service, i AS server_spans, i AS calls FROM range($n) t(i)",
        params={"n": n, "tag": tag}).to_arrow_table()


def _completion(i: int) -> pa.Table:
    return duckdb.connect().sql("SELECT $run AS RunId, 'quiet' AS Reason, $i::BIGINT AS CompletedUnixNano",
                                params={"run": f"other-{i}", "i": i}).to_arrow_table()


def test_ingest_is_committed_between_slices_of_a_runs_derived_rows(tmp_path: Path) -> None:
    con = db.open_writer(tmp_path / "w.duckdb")
    writer = Writer(con)
    try:
        writer.submit(WriteJob({"triage_facts_peers": _peers(3, "old")}, 3, replace_run="r1")).result(timeout=30)
        big = _peers(10 * DERIVED_SLICE_ROWS, "new")
        order: list[str] = []
        derived = writer.submit(WriteJob({"triage_facts_peers": big}, 0, replace_run="r1"))  # as the daemon: rows 0
        derived.add_done_callback(lambda _: order.append("derived"))
        writer.wait_taken(30)  # the writer has the derived job: what comes now arrives during its write
        ingest = []
        for i in range(3):
            job = writer.submit(WriteJob({"triage_run_completion": _completion(i)}, 1))
            job.add_done_callback(lambda _, i=i: order.append(f"ingest {i}"))
            ingest.append(job)

        seen: set[int] = set()  # what a reader on another cursor sees of run r1 meanwhile
        reader = con.cursor()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.add(reader.execute("SELECT count(*) FROM triage_facts_peers WHERE run_id = 'r1'").fetchall()[0][0])

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for job in ingest:
                job.result(timeout=60)
            derived.result(timeout=60)
        finally:
            stop.set()
            watcher.join()
            reader.close()
        assert order == ["ingest 0", "ingest 1", "ingest 2", "derived"]
        assert seen <= {3, big.num_rows}, "a reader saw part of the run's new rows"
        assert con.execute("SELECT count(*), count(*) FILTER (address LIKE 'new%') FROM triage_facts_peers").fetchall() \
            == [(big.num_rows, big.num_rows)]
        assert con.execute("SELECT count(*) FROM triage_run_completion").fetchall() == [(3,)]
    finally:
        writer.close()
