"""A completed (or settled) run's explanation is computed once and kept (007_kept_explanations.sql, api.py):
read back byte for byte while its inputs are unchanged, computed again when any of them changes,
never kept for a run still arriving or an explicit baseline. Real files, the real CLI in a subprocess;
the daemon's side is in tests/test_completion.py."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from otel_triage.collector.storage import db, facts
from otel_triage.collector.storage.store import DuckStore
from otel_triage.correlator import api

from tests.test_cli import triage
from tests.test_engine import GOLDEN, _insert, _runs

COMPLETE = "INSERT INTO triage_run_completion (RunId, Reason, CompletedUnixNano) VALUES (?, 'session-ended', 1)"


@pytest.fixture(scope="module")
def runs() -> list[dict[str, pa.Table]]:
    return _runs()


def _file(tmp_path: Path, runs: list[dict[str, pa.Table]], complete: bool = True) -> Path:
    path = tmp_path / "kept.duckdb"
    con = db.open_writer(path)
    for tables in runs:
        _insert(con, tables)
    if complete:
        con.execute(COMPLETE, ["fixed-run"])
    con.close()
    return path


def _kept(path: Path) -> list[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT run_id, explanation FROM triage_explanations ORDER BY ALL").fetchall()
    finally:
        con.close()


def _explain(path: Path, *extra: str) -> str:
    return triage("explain", "fixed-run", "--db", str(path), "--json", *extra).stdout


def _mark(path: Path, text: str) -> None:
    """Overwrite the kept text (its stamp unchanged): what `explain` prints then proves where it read."""
    con = duckdb.connect(str(path))
    con.execute("UPDATE triage_explanations SET explanation = ?", [text])
    con.close()


def test_a_completed_run_is_computed_once_then_read_back_byte_for_byte(tmp_path: Path, runs) -> None:
    path = _file(tmp_path, runs)
    first = _explain(path)
    assert json.loads(first) == json.loads(GOLDEN.read_text())
    ((run_id, kept),) = _kept(path)
    assert run_id == "fixed-run" and kept + "\n" == first  # click.echo adds the newline
    assert _explain(path) == first
    # The text and Markdown renderings read the same kept explanation.
    assert "inventory" in triage("explain", "fixed-run", "--db", str(path)).stdout
    marked = json.loads(first) | {"notes": ["read from the kept explanation"]}
    _mark(path, json.dumps(marked))
    assert json.loads(_explain(path))["notes"] == ["read from the kept explanation"]
    assert "read from the kept explanation" in triage("explain", "fixed-run", "--db", str(path),
                                                      "--format", "markdown").stdout


def test_new_data_for_the_run_makes_it_compute_again(tmp_path: Path, runs) -> None:
    path = _file(tmp_path, runs)
    first = _explain(path)
    _mark(path, json.dumps(json.loads(first) | {"notes": ["stale"]}))
    # A late error log on one of the run's spans (no run id, only its trace): the facts go stale, so
    # does the kept explanation.
    con = duckdb.connect(str(path))
    trace, span = con.execute("SELECT TraceId, SpanId FROM otel_traces WHERE RunId = 'fixed-run' LIMIT 1").fetchall()[0]
    con.execute("INSERT INTO otel_logs BY NAME SELECT * REPLACE (? AS TraceId, ? AS SpanId, NULL AS RunId) "
                "FROM otel_logs LIMIT 1", [trace, span])
    con.close()
    again = json.loads(_explain(path))
    assert again["notes"] != ["stale"] and again["failed_tests"] == json.loads(first)["failed_tests"]
    assert json.loads(_kept(path)[0][1]) == again  # kept anew


def test_a_settled_run_with_no_completion_record_is_kept(tmp_path: Path, runs) -> None:
    """No completion record (no session span, the daemon stopped first, the file written otherwise):
    a run whose last span is not recent is kept all the same; new data would change the stamp."""
    path = _file(tmp_path, runs, complete=False)
    first = _explain(path)
    assert json.loads(first) == json.loads(GOLDEN.read_text())
    ((run_id, kept),) = _kept(path)
    assert run_id == "fixed-run" and kept + "\n" == first
    _mark(path, json.dumps(json.loads(first) | {"notes": ["read from the kept explanation"]}))
    assert json.loads(_explain(path))["notes"] == ["read from the kept explanation"]


def test_a_run_still_arriving_or_an_explicit_baseline_is_computed_every_time(tmp_path: Path, runs) -> None:
    path = _file(tmp_path, runs, complete=False)
    con = duckdb.connect(str(path))  # the run's last span ends now: data may still be arriving
    con.execute("UPDATE otel_traces SET Timestamp = Timestamp + (now()::TIMESTAMP - (SELECT max(Timestamp) "
                "FROM otel_traces WHERE RunId = 'fixed-run'))::INTERVAL WHERE RunId = 'fixed-run'")
    con.close()
    notes = json.loads(_explain(path))["notes"]
    assert any("data may still be arriving" in note for note in notes)
    assert _kept(path) == []
    con = duckdb.connect(str(path))
    con.execute(COMPLETE, ["fixed-run"])
    con.close()
    _explain(path, "--baseline", "fixed-baseline")
    assert _kept(path) == []


def test_the_stamp_follows_every_input_and_ignores_later_runs(runs) -> None:
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    con.execute(COMPLETE, ["fixed-run"])
    store = DuckStore(con)
    store.ensure_facts()

    def stamp() -> str:
        store.ensure_facts()
        return store.explanation_stamp("fixed-run", "fixed-baseline", api.METRIC_RUN_SLACK_NS)

    before = stamp()
    # A run whose tests start after fixed-run ended can be neither its baseline nor in its history.
    shift = 10 * 86_400 * 10**9
    con.register("_later", runs[0]["otel_traces"])
    con.execute("INSERT INTO otel_traces BY NAME SELECT * REPLACE ('later' AS RunId, Timestamp + to_microseconds("
                f"{shift // 1000}) AS Timestamp, 'ff' || TraceId[3:] AS TraceId) FROM _later")
    assert stamp() == before
    # An earlier run's facts changing does change it (it may be the baseline, or in a test's history).
    facts.ensure(con, runs=["fixed-baseline"])
    after_baseline = stamp()
    assert after_baseline != before
    # A metric point without a run id that joins the run by service and time window.
    service, t = con.execute("SELECT ServiceName, Timestamp FROM otel_traces WHERE RunId = 'fixed-run' "
                             "ORDER BY Timestamp LIMIT 1").fetchall()[0]
    con.execute("INSERT INTO otel_metrics_gauge VALUES (?, NULL, '{}', '', 0, 'm', '', '{}', 0, '', 'cpu', '', '1', "
                "'{}', '{}', NULL, ?, 0, '[]', 0.9, NULL)", [service, t])
    assert stamp() != after_baseline


def test_reading_a_kept_explanation_imports_neither_pyarrow_nor_numpy(tmp_path: Path, runs) -> None:
    """Their import is ~0.2 s of a command that otherwise takes ~0.3 s (docs/performance.md); the
    engine and the explanation model's dataclasses another ~0.06 s (correlator/kept.py)."""
    import subprocess
    import sys

    path = _file(tmp_path, runs)
    _explain(path)
    probe = ("import json, sys\nfrom otel_triage.cli.main import cli\n"
             "try:\n    cli(['explain', 'fixed-run', '--db', sys.argv[1], '--json'])\nexcept SystemExit as e:\n"
             "    assert not e.code, e.code\n"
             "print(json.dumps(sorted(m for m in ('pyarrow', 'numpy', 'pandas', 'otel_triage.correlator.api', "
             "'otel_triage.correlator.model') if m in sys.modules)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run_id"] == "fixed-run"
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_a_reader_waits_out_another_readers_short_write(tmp_path: Path, runs) -> None:
    """A `--db` command that computed a run's explanation holds the file for writing briefly as it
    closes, to keep it; a reader opening the file then waits that out (db.LOCK_PATIENCE_SECONDS)
    instead of failing with "held by a running triage daemon"."""
    import subprocess
    import sys

    path = _file(tmp_path, runs)
    _explain(path)  # facts and the kept explanation in place
    hold = ("import sys, time\nfrom otel_triage.collector.storage.db import open_writer\n"
            "con = open_writer(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(0.5)\ncon.close()\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        assert json.loads(_explain(path))["run_id"] == "fixed-run"
    finally:
        assert holder.wait(timeout=60) == 0



def test_a_runs_facts_and_its_kept_explanation_in_one_commit_are_both_written(tmp_path: Path) -> None:
    """The daemon writes both through its single writer, each job replacing the run's rows of its own
    tables; when they meet in one commit, neither may swallow the other."""
    import threading

    from otel_triage.collector.storage.writer import WriteJob, Writer

    con = db.open_writer(tmp_path / "w.duckdb")
    writer = Writer(con)
    rows = duckdb.connect()
    kept = rows.sql("SELECT 'r1' AS run_id, NULL::VARCHAR AS baseline_run_id, 's' AS stamp, '{}' AS explanation, "
                    "1::BIGINT AS computed_unix_nano").to_arrow_table()
    peers = rows.sql("SELECT 'r1' AS run_id, 'db:5432' AS address, 'db' AS service, 1::BIGINT AS server_spans, "
                     "2::BIGINT AS calls").to_arrow_table()
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=writer.exclusive, args=(lambda _: held.set() or release.wait(10),))
    holder.start()
    assert held.wait(10)  # the connection is held: what is submitted now waits behind it
    try:
        first = writer.submit(WriteJob({}, 0))
        writer.wait_taken(10)  # taken alone, blocked on the held connection; the next two queue together
        both = [writer.submit(WriteJob({"triage_facts_peers": peers}, 0, replace_run="r1")),
                writer.submit(WriteJob({"triage_explanations": kept}, 0, replace_run="r1"))]
    finally:
        release.set()
        holder.join()
    for done in (first, *both):
        done.result(timeout=30)
    assert con.execute("SELECT count(*) FROM triage_facts_peers WHERE run_id = 'r1'").fetchall() == [(1,)]
    assert con.execute("SELECT run_id FROM triage_explanations").fetchall() == [("r1",)]
    writer.close()
