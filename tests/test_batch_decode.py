"""Requests decoded together give each request exactly what decoding it alone gives.

The daemon's decoder thread (collector/batcher.py) decodes every request waiting in one columnar
pass (``fastdecode.decode_together``), commits them in one job and answers each with its own item
count. These tests hold that pass to the per-request decoders on random and hostile requests, and
drive the real batcher and writer on a DuckDB file with a batch that holds a malformed request.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from otel_triage.collector import decode as d
from otel_triage.collector import fastdecode
from otel_triage.collector.batcher import ALONE, Batcher
from otel_triage.collector.columnar import Irregular
from otel_triage.collector.storage.db import open_writer
from otel_triage.collector.storage.writer import WriteJob, Writer

from tests.test_fastdecode import _log_request, _span_request


def _concat(decoded: list[d.Decoded]) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    for one in decoded:
        for name, table in one.tables.items():
            parts.setdefault(name, []).append(table)
    return {name: pa.concat_tables(ts) for name, ts in parts.items()}


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_together_equals_each_alone(signal: str) -> None:
    make, alone = ((_span_request, fastdecode.decode_traces) if signal == "traces"
                   else (_log_request, fastdecode.decode_logs))
    rnd = random.Random(5)
    for seed in range(40):
        datas = [make(seed * 10 + i) for i in range(rnd.randrange(1, 6))]
        for run_id in (None, "default-run"):
            singles = [alone(data, run_id) for data in datas]
            together = fastdecode.decode_together(signal, datas, run_id, d.Limits())
            assert together is not None  # every request here is regular
            tables, counts = together
            assert counts == [s.accepted for s in singles]
            expected = _concat(singles)
            assert set(tables) == set(expected)
            for name, table in expected.items():
                assert tables[name].schema == table.schema, name
                for column in table.column_names:
                    assert tables[name][column].to_pylist() == table[column].to_pylist(), (name, column)


def test_one_irregular_or_malformed_request_sends_the_batch_back() -> None:
    good = [_span_request(i) for i in range(3)]
    irregular = next(data for seed in range(200) if (data := _span_request(seed, regular=False))
                     and fastdecode.decode_traces(data).rejected)
    malformed = good[0][:-3]
    for bad in (irregular, malformed):
        assert fastdecode.decode_together("traces", [*good, bad], None, d.Limits()) is None
    assert fastdecode.decode_together("traces", good, None, d.Limits()) is not None


def _one_span(keys: list[str]) -> bytes:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=5, end_time_unix_nano=6)
    span.attributes.extend([KeyValue(key=k, value=AnyValue(int_value=i)) for i, k in enumerate(keys)])
    return req.SerializeToString()


@pytest.mark.parametrize("distinct", [3, 64, 65, 200, 600])
def test_a_repeated_key_is_found_among_many_distinct_keys(distinct: int) -> None:
    """Repeated keys are found by per-item bitmasks (64 keys a word, up to 8 words) or, with more
    distinct keys in the batch, by hashing: both ways, at the first and at the last key."""
    keys = [f"key.{i}" for i in range(distinct)]
    clean = [_one_span(keys[i:i + 7]) for i in range(0, distinct, 7)]
    tables, counts = fastdecode.decode_together("traces", clean, None, d.Limits())
    assert counts == [1] * len(clean)
    assert tables["otel_traces"]["SpanAttributes"].to_pylist() == [
        d.decode_traces(data).tables["otel_traces"]["SpanAttributes"][0].as_py() for data in clean]
    for repeated in (keys[0], keys[-1]):
        batch = [*clean, _one_span([repeated, "other", repeated])]
        assert fastdecode.decode_together("traces", batch, None, d.Limits()) is None
        with pytest.raises(Irregular):
            fastdecode.build_traces(lambda b=batch: ExportTraceServiceRequest.FromString(b[-1]), batch[-1], None,
                                    1 << 20)


def _batch_of(writer: Writer, batcher: Batcher, datas: list[bytes]) -> list:
    """Submit ``datas`` while the batcher waits for the writer, so that all of them are in flight
    when it takes its next batch; their answers."""
    # Hold the writer: it takes one job and waits for its lock; a second job stays queued, so the
    # batcher waits for it to be taken while all our requests queue up behind the first.
    with writer._lock:
        writer.submit(WriteJob({}, 0))
        writer.wait_taken(10)
        writer.submit(WriteJob({}, 0))
        answers = [batcher.submit("traces", data) for data in datas]
        threading.Event().wait(0.2)
        assert not any(a.done() for a in answers)
    return [a.result(timeout=30) for a in answers]


def test_the_batcher_commits_a_batch_once_and_sends_back_only_a_malformed_request(tmp_path: Path) -> None:
    """Requests decoded in one batch are committed in one job and each answered with its own count;
    a malformed request among them goes back to its own thread (which decodes it alone and refuses
    it), the others are still committed together."""
    writer = Writer(open_writer(tmp_path / "b.duckdb", "256MB"))
    observed: list[int] = []
    batcher = Batcher(writer, None, d.Limits(),
                      prepare_committed=lambda t: lambda: observed.append(t["otel_traces"].num_rows))
    try:
        good = [_span_request(2), _span_request(5)]
        spans = [fastdecode.decode_traces(data).accepted for data in good]
        assert all(spans)
        for datas in ([good[0], b"\x0a\x05broken", good[1]], good):
            first, *bad, second = _batch_of(writer, batcher, datas)
            assert bad in ([ALONE], [])
            assert first[1] is second[1] is not None  # one commit for the batch
            first[1].wait()
            second[1].wait()
            assert (first[0].accepted, second[0].accepted) == tuple(spans)
        assert observed == [sum(spans)] * 2  # run completion told once a batch
        count = writer.read(lambda cur: cur.execute("SELECT count(*) FROM otel_traces").fetchone()[0])
        assert count == 2 * sum(spans)
    finally:
        batcher.close()
        writer.close()


def test_with_enough_in_flight_the_batcher_takes_half_and_decodes_it_while_the_other_commits(
        tmp_path: Path) -> None:
    """Below ``pipeline_bytes`` in flight every waiting request is one batch; from it on, the batcher
    takes half of the requests in flight (two cohorts: one decoded while the other commits), and
    every request is still answered only once its own batch is committed."""
    datas = [data for seed in range(40) if fastdecode.decode_traces(data := _span_request(seed)).accepted][:8]
    spans = [fastdecode.decode_traces(data).accepted for data in datas]
    assert len(datas) == 8
    for pipeline_bytes, batches in ((1 << 30, [8]), (sum(map(len, datas)), [4, 4])):
        writer = Writer(open_writer(tmp_path / f"p{len(batches)}.duckdb", "256MB"))
        batcher = Batcher(writer, None, d.Limits(), pipeline_bytes=pipeline_bytes)
        try:
            results = _batch_of(writer, batcher, datas)
            commits = [commit for _, commit in results]
            for commit in commits:
                commit.wait()
            assert [commits.count(c) for c in dict.fromkeys(commits)] == batches
            assert [decoded.accepted for decoded, _ in results] == spans
            count = writer.read(lambda cur: cur.execute("SELECT count(*) FROM otel_traces").fetchone()[0])
            assert count == sum(spans)
        finally:
            batcher.close()
            writer.close()


def test_duckdb_runs_on_one_thread_for_commits_and_on_every_core_for_reads(tmp_path: Path) -> None:
    """Commits run DuckDB on the caller's thread alone; a read (and ``exclusive``) gets DuckDB's
    default of a thread a core while it runs, also when two reads overlap."""
    con = open_writer(tmp_path / "t.duckdb")
    cores = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    writer = Writer(con)

    def threads(cur) -> int:
        return int(cur.execute("SELECT current_setting('threads')").fetchone()[0])

    try:
        seen: list[int] = []
        inner_done = threading.Event()

        def outer(cur) -> None:
            seen.append(threads(cur))
            worker = threading.Thread(target=lambda: (writer.read(lambda c: seen.append(threads(c))),
                                                      inner_done.set()))
            worker.start()
            inner_done.wait(30)
            seen.append(threads(cur))  # the other read ended; this one still has every core

        writer.read(outer)
        assert seen == [cores, cores, cores]
        assert writer.exclusive(threads) == cores
        with writer._lock:  # between commits: what a commit runs with
            assert threads(con) == 1
    finally:
        writer.close()


def test_the_writer_is_idle_only_once_every_submitted_job_is_committed(tmp_path: Path) -> None:
    """The batcher takes its next batch when ``wait_idle`` returns: not while a job is queued or
    being committed (its clients have not been answered yet), and at once when nothing is."""
    writer = Writer(open_writer(tmp_path / "idle.duckdb"))
    try:
        assert writer.wait_idle(5)
        with writer._lock:  # the writer takes the job, then waits for the lock to commit it
            done = writer.submit(WriteJob({}, 0))
            writer.submit(WriteJob({}, 0))
            assert not writer.wait_idle(0.2)
            writer.wait_taken(10)
            assert not writer.wait_idle(0.2)
        done.result(timeout=30)
        assert writer.wait_idle(30)
    finally:
        writer.close()


def test_the_writer_tells_committed_rows_before_the_job_resolves_and_a_failing_hook_fails_nothing(
        tmp_path: Path) -> None:
    """Run completion is told on the writer thread once the rows are committed and before the job's
    future resolves (so before any client is answered); a hook that raises is logged, and the job,
    whose rows are committed, still succeeds."""
    writer = Writer(open_writer(tmp_path / "w.duckdb", "256MB"))
    try:
        tables, counts = fastdecode.decode_together("traces", [_span_request(2)], None, d.Limits())
        seen: list[tuple[str, int, bool, int]] = []

        def committed(rows: dict[str, pa.Table]) -> None:
            stored = writer.read(lambda cur: cur.execute("SELECT count(*) FROM otel_traces").fetchone()[0])
            seen.append((threading.current_thread().name, rows["otel_traces"].num_rows, job.done.done(), stored))

        job = WriteJob(tables, sum(counts), committed=committed)
        writer.submit(job).result(timeout=30)
        assert seen == [("triage-writer", counts[0], False, counts[0])]

        def fails(_rows: dict[str, pa.Table]) -> None:
            raise RuntimeError("bookkeeping bug")

        assert writer.submit(WriteJob(tables, sum(counts), committed=fails)).result(timeout=30) is None
        assert writer.read(lambda cur: cur.execute("SELECT count(*) FROM otel_traces").fetchone()[0]) == 2 * counts[0]
    finally:
        writer.close()


def test_run_completion_is_prepared_while_the_writer_commits_and_told_before_any_answer(tmp_path: Path) -> None:
    """With ``prepare_committed`` the decoder thread computes what a batch brings run completion
    (while the writer commits it) and the writer makes the note after the commit, before the
    batch's requests are answered; a prepare that raises fails no export."""
    writer = Writer(open_writer(tmp_path / "p.duckdb", "256MB"))
    events: list[tuple[str, str, bool]] = []

    def prepare(tables: dict[str, pa.Table]) -> Callable[[], None]:
        events.append(("prepare", threading.current_thread().name, False))
        if len(events) > 2:  # the second batch
            raise RuntimeError("bookkeeping bug")
        # A request is answered once its Commit's job is done (Pipeline.ingest waits for it).
        return lambda: events.append(("note", threading.current_thread().name,
                                      answers[0].result()[1].job.done.done()))

    batcher = Batcher(writer, None, d.Limits(), prepare_committed=prepare)
    try:
        answers = [batcher.submit("traces", _span_request(5))]
        decoded, commit = answers[0].result(timeout=30)
        commit.job.done.result(timeout=30)  # a writer waiting for a prepare never made would hang
        assert events == [("prepare", "triage-decoder", False), ("note", "triage-writer", False)]
        assert decoded.accepted == fastdecode.decode_traces(_span_request(5)).accepted
        answers = [batcher.submit("traces", _span_request(2))]
        again, commit = answers[0].result(timeout=30)
        commit.job.done.result(timeout=30)  # committed though its prepare raised
        assert events[2:] == [("prepare", "triage-decoder", False)]
        count = writer.read(lambda cur: cur.execute("SELECT count(*) FROM otel_traces").fetchone()[0])
        assert count == decoded.accepted + again.accepted
    finally:
        batcher.close()
        writer.close()


def test_a_files_requests_are_decoded_together_and_an_odd_one_alone(tmp_path: Path, monkeypatch) -> None:
    """The drop folder's path (``Pipeline.ingest_together``) decodes a file's requests of a signal in
    one columnar pass, halving a pass the columnar decoder declines: every request gets what it
    gets decoded alone (an irregular one the reference decoder's answer, a malformed one its
    error), and the rows stored are the same."""
    from otel_triage.collector.pipeline import Pipeline
    from otel_triage.collector.selfmetrics import SelfMetrics

    datas = [_span_request(seed, regular=seed % 5 != 3) for seed in range(14)]
    parts = [("traces", data) for data in datas] + [("traces", b"\x0a\x05broken"), ("logs", _log_request(3))]
    irregular = [i for i, data in enumerate(datas) if fastdecode.decode_together("traces", [data], None, d.Limits()) is None]
    assert irregular and len(irregular) < len(datas)  # both kinds, or the test proves nothing

    alone_writer = Writer(open_writer(tmp_path / "alone.duckdb", "256MB"))
    alone: list[object] = []
    try:
        for signal, data in parts:
            try:
                decoded = d.decode(signal, data, None, d.Limits())
            except d.MalformedRequest as exc:
                alone.append(type(exc))
                continue
            alone.append((decoded.accepted, decoded.rejected))
            if decoded.tables:
                alone_writer.submit(WriteJob(decoded.tables, decoded.accepted)).result()
    finally:
        alone_writer.close()

    from otel_triage.collector import pipeline as pipeline_module

    passes: list[int] = []

    def counted(signal: str, group: list[bytes], *args: object) -> object:
        passes.append(len(group))
        return fastdecode.decode_together(signal, group, *args)

    monkeypatch.setattr(pipeline_module, "decode_together", counted)
    writer = Writer(open_writer(tmp_path / "together.duckdb", "256MB"))
    pipeline = Pipeline(writer, SelfMetrics(lambda: 0))
    try:
        results = pipeline.ingest_together(parts, lambda _results: {})
    finally:
        pipeline.close()
        writer.close()
    assert [type(r) if isinstance(r, d.MalformedRequest) else (r.accepted, r.rejected) for r in results] == alone
    assert max(passes) > 1 and len(passes) < len(parts)  # decoded together, then the declined passes halved

    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{tmp_path / 'alone.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{tmp_path / 'together.duckdb'}' AS t (READ_ONLY)")
    for table in ("otel_traces", "otel_traces_events", "otel_traces_links", "otel_logs"):
        count = con.execute(f"SELECT count(*) FROM t.{table}").fetchall()[0][0]
        differ = con.execute(f"SELECT count(*) FROM (SELECT * FROM a.{table} EXCEPT ALL SELECT * FROM t.{table}) "
                             f"UNION ALL SELECT count(*) FROM (SELECT * FROM t.{table} EXCEPT ALL "
                             f"SELECT * FROM a.{table})").fetchall()
        assert differ == [(0,), (0,)], (table, count, differ)
    assert con.execute("SELECT count(*) FROM t.otel_traces").fetchall()[0][0] > 0
