"""Retention: `serve --retain-runs/--retain-days` and `triage prune` delete whole runs, over restarts.

Runs are sent with the real SDK through the real daemon (tests/sharing_run.py: three services of
which only the test runner carries the run id, logs with trace context and no run id, exception
events) plus metric points, a span link, a JUnit report from the drop folder and completion rows.
After pruning, nothing of a deleted run is left in any table, kept runs are untouched, a report
still in the folder is not taken in again, and the file stops growing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.sharing_run import send_run
from tests.test_cli import triage
from tests.test_drop_folder import drop, wait_for_files

pytestmark = pytest.mark.timeout(300)

REPORT = """<?xml version="1.0"?><testsuites><testsuite name="s">
<properties><property name="cicd.pipeline.run.id" value="{run}"/></properties>
<testcase classname="c" name="from_junit" time="0.5"/></testsuite></testsuites>"""


def _metric(address: str, run_id: str, at_ns: int) -> None:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "orders"
    rm.resource.attributes.add(key="cicd.pipeline.run.id").value.string_value = run_id
    metric = rm.scope_metrics.add().metrics.add(name="queue.depth")
    metric.gauge.data_points.add(time_unix_nano=at_ns, as_int=3)
    otlp.export_request(address, req)


def _linked_consumer(address: str, run_id: str, producer_trace: bytes, at_ns: int) -> None:
    """A consumer span of a service with no run id, in its own trace, linked to a producer of the run."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "worker"
    span = rs.scope_spans.add().spans.add(trace_id=bytes([len(run_id)]) + run_id.encode().ljust(15, b"-")[:15],
                                          span_id=b"\x01" * 8, name="consume", kind=5,
                                          start_time_unix_nano=at_ns, end_time_unix_nano=at_ns + 1000)
    span.links.add(trace_id=producer_trace, span_id=b"\x02" * 8)
    otlp.export_request(address, req)


def _run_trace(db: Path, run_id: str) -> tuple[bytes, int]:
    """A trace of the run and the run's first span start (the consumer runs then, not later)."""
    trace, start = query(db, "SELECT min(TraceId), min(epoch_ns(Timestamp)) FROM otel_traces WHERE RunId = ?",
                         [run_id])[0]
    return bytes.fromhex(trace), start


def _left(db: Path, run_id: str, traces: list[str]) -> dict[str, int]:
    """Rows of a run anywhere: by its run id, or through its traces for rows that carry none."""
    in_traces = "TraceId IN (SELECT unnest($traces))"
    counts = {}
    for table in ("otel_traces", "otel_traces_events", "otel_traces_links", "otel_logs"):
        counts[table] = query(db, f"SELECT count(*) FROM {table} WHERE RunId = $run OR {in_traces}",
                              {"run": run_id, "traces": traces})[0][0]
    counts["otel_metrics_gauge"] = query(db, "SELECT count(*) FROM otel_metrics_gauge WHERE RunId = ?", [run_id])[0][0]
    counts["triage_run_completion"] = query(db, "SELECT count(*) FROM triage_run_completion WHERE RunId = ?",
                                            [run_id])[0][0]
    return counts


def _traces_of(db: Path, run_id: str) -> list[str]:
    """The run's traces as the correlator sees them (run_traces.sql: run id, then span links)."""
    return [r[0] for r in query(db, "SELECT DISTINCT TraceId FROM otel_traces WHERE RunId = ? UNION "
                                    "SELECT l.TraceId FROM otel_traces_links l JOIN otel_traces t "
                                    "ON l.LinkedTraceId = t.TraceId WHERE t.RunId = ?", [run_id, run_id])]


def test_retain_runs_deletes_whole_runs_over_a_restart(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    daemon = DaemonProcess(db_path, ["--watch", str(folder), "--settle-seconds", "0.3", "--quiet-period", "1"]).start()
    try:
        for run in ("old-1", "mid-2", "new-3"):
            send_run(daemon.address, run)
            _metric(daemon.address, run, time.time_ns())
            if run == "old-1":  # its ledger row names old-1; its test case is old-1's newest data
                drop(folder, "old.xml", REPORT.format(run="old-1").encode())
                wait_for_files(daemon, 1)
                time.sleep(0.6)  # the test case runs 0.5 s from the file's mtime: then mid-2 is newer
            time.sleep(0.05)  # last-seen times (the newest data of each run) strictly ordered
        for run in ("old-1", "mid-2", "new-3"):
            assert "complete" in triage("wait", run, "--daemon", daemon.address, "--timeout", "60").stderr
    finally:
        assert daemon.terminate() == 0
    producers = {run: _run_trace(db_path, run) for run in ("old-1", "new-3")}
    daemon = DaemonProcess(db_path).start()
    try:
        for run, (trace, start) in producers.items():
            _linked_consumer(daemon.address, run, trace, start)
    finally:
        assert daemon.terminate() == 0
    traces = {run: _traces_of(db_path, run) for run in ("old-1", "mid-2", "new-3")}
    before = {run: _left(db_path, run, traces[run]) for run in traces}
    assert all(n > 0 for table, n in before["old-1"].items()), before["old-1"]  # every kind of row is there
    assert before["old-1"]["otel_traces_links"] == 1 and before["new-3"]["otel_traces_links"] == 1

    # Restart with retention: the pass at start deletes the oldest run whole.
    daemon = DaemonProcess(db_path, ["--watch", str(folder), "--settle-seconds", "0.3", "--retain-runs", "2"]).start()
    try:
        deadline = time.monotonic() + 60
        while "retention: pruned 1 runs (old-1)" not in daemon.stderr:
            assert time.monotonic() < deadline, daemon.stderr
            time.sleep(0.1)
        runs = json.loads(triage("runs", "--daemon", daemon.address, "--json").stdout)["runs"]
        assert sorted(r["run_id"] for r in runs) == ["mid-2", "new-3"]
        time.sleep(1.5)  # the report still in the folder is seen again by the start scan: not taken again
        listed = json.loads(triage("files", "--daemon", daemon.address, "--json").stdout)["files"]
        assert [(f["run_id"], f["status"]) for f in listed] == [("old-1", "pruned")]
    finally:
        assert daemon.terminate() == 0
    assert _left(db_path, "old-1", traces["old-1"]) == dict.fromkeys(before["old-1"], 0)
    for run in ("mid-2", "new-3"):
        assert _left(db_path, run, traces[run]) == before[run], run
    explained = json.loads(triage("explain", "new-3", "--db", str(db_path), "--json").stdout)
    assert [t["test"] for t in explained["failed_tests"]] == [
        "tests/test_shop.py::test_pay[card|visa]", "tests/test_shop.py::test_discount"]

    # Offline, with the daemon stopped: keep one run.
    pruned = json.loads(triage("prune", "--db", str(db_path), "--keep-runs", "1", "--json").stdout)
    assert pruned["runs"] == ["mid-2"] and pruned["rows"]["otel_traces"] > 0
    assert pruned["bytes_after"] <= pruned["bytes_before"]
    assert _left(db_path, "mid-2", traces["mid-2"]) == dict.fromkeys(before["mid-2"], 0)
    assert _left(db_path, "new-3", traces["new-3"]) == before["new-3"]
    # The per-run facts find new data by row position, which a delete moves: they go with any prune
    # and the kept run's next explanation computes them again, to the same answer; only each failed
    # test's history and diff, which read the store's other runs, now see this run alone.
    assert query(db_path, "SELECT count(*) FROM triage_facts_runs")[0][0] == 0
    after = json.loads(triage("explain", "new-3", "--db", str(db_path), "--json").stdout)
    assert [t["history"]["runs"] for t in after["failed_tests"]] == [1, 1]
    assert [t["diff"] for t in after["failed_tests"]] == [None, None]

    def own(e: dict) -> dict:
        return {**e, "failed_tests": [{k: v for k, v in t.items() if k not in ("history", "diff")}
                                      for t in e["failed_tests"]]}

    assert own(after) == own(explained)
    again = triage("prune", "--db", str(db_path), "--keep-runs", "1")
    assert "nothing to prune" in again.stdout


def _bulk(address: str, run_id: str, spans: int, at_ns: int, trace_byte: int) -> None:
    for start in range(0, spans, 2000):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "svc"
        rs.resource.attributes.add(key="cicd.pipeline.run.id").value.string_value = run_id
        ss = rs.scope_spans.add()
        for i in range(start, min(spans, start + 2000)):
            span = ss.spans.add(trace_id=bytes([trace_byte]) + i.to_bytes(15, "big"), span_id=(i + 1).to_bytes(8, "big"),
                                name=f"op {i % 17}", start_time_unix_nano=at_ns + i, end_time_unix_nano=at_ns + i + 500)
            span.attributes.add(key="payload").value.string_value = f"{run_id}-{i}-" + "x" * 200
        otlp.export_request(address, req)


def test_retain_days_and_a_file_that_stops_growing(tmp_path, db_path):
    day = 86400 * 10**9
    now = time.time_ns()
    daemon = DaemonProcess(db_path).start()
    try:
        _bulk(daemon.address, "ancient", 30_000, now - 30 * day, 1)
        _bulk(daemon.address, "recent", 30_000, now - day, 2)
        orphan = ExportTraceServiceRequest()  # a span of no run, 30 days old
        orphan.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x09" * 16, span_id=b"\x09" * 8, name="stray", start_time_unix_nano=now - 30 * day,
            end_time_unix_nano=now - 30 * day + 1)
        otlp.export_request(daemon.address, orphan)
    finally:
        assert daemon.terminate() == 0
    full = os.path.getsize(db_path)

    # --retain-days at start: the 30-day-old run and the stray span go, the 1-day-old run stays.
    daemon = DaemonProcess(db_path, ["--retain-days", "7"]).start()
    try:
        deadline = time.monotonic() + 60
        while "retention: pruned 1 runs (ancient)" not in daemon.stderr:
            assert time.monotonic() < deadline, daemon.stderr
            time.sleep(0.1)
        _bulk(daemon.address, "next", 30_000, now, 3)  # fills the blocks the deletes freed
    finally:
        assert daemon.terminate() == 0
    assert query(db_path, "SELECT RunId, count(*) FROM otel_traces GROUP BY ALL ORDER BY 1") == [
        ("next", 30_000), ("recent", 30_000)]
    sizes = [os.path.getsize(db_path)]
    # Months of use in miniature: prune the oldest run, add a new one, again and again.
    for k in range(1, 5):
        triage("prune", "--db", str(db_path), "--keep-runs", "1")
        daemon = DaemonProcess(db_path).start()
        try:
            _bulk(daemon.address, f"next-{k}", 30_000, now + k * 10**9, 3 + k)
        finally:
            assert daemon.terminate() == 0
        sizes.append(os.path.getsize(db_path))
    assert [r[0] for r in query(db_path, "SELECT DISTINCT RunId FROM otel_traces ORDER BY 1")] == ["next-3", "next-4"]
    print(f"file with 2 runs of 30k spans: {full / 2**20:.1f} MiB; after each prune-and-add: "
          + ", ".join(f"{s / 2**20:.1f}" for s in sizes) + " MiB")
    # Freed blocks are used again (DuckDB vacuums row groups with deletions at a checkpoint): the
    # file oscillates instead of growing by a run (full / 2) each cycle. The first cycles also add
    # the per-run facts tables, a fixed ~256 KiB block each however small, so the bound on the size
    # is loose and the one on the growth is tight.
    assert max(sizes) <= 3 * full, (full, sizes)
    assert sizes[-1] <= max(sizes[:2]) + full / 4, (full, sizes)
