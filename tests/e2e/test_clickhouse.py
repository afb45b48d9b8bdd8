"""`triage … --clickhouse`: the example scenarios, copied into the OpenTelemetry Collector ClickHouse
exporter's tables in embedded ClickHouse (chDB), explain exactly as they do from the daemon's file.

The recording (conftest.py) is written into the exporter's tables by tests/clickhouse_load.py, the
way the exporter writes them (its DDL: tests/fixtures/clickhouse/); then every command reads it back
through the real CLI. chDB allows one engine path per process and a path held by one process cannot
be opened by another: every client here is closed before a subprocess opens the path.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect  # the test extra installs it and chdb: a missing one fails, never skips
import pytest
from click.testing import CliRunner
from otel_triage.cli.main import cli

from tests.clickhouse_load import CURRENT_DDL, OLDER_DDL, create_schema, load
from tests.e2e.conftest import Recording
from tests.e2e.scenarios import ORDER

pytestmark = pytest.mark.timeout(900)


JUNIT_RUN = "propagated_error"


def junit_report(run_id: str, trace_id: str) -> bytes:
    """A CI's JUnit report for the run: one test its spans also name (matched by name), one only the
    report knows, tied to a trace of the run by the trace id in its output."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="contract" tests="2" failures="2">
  <properties><property name="cicd.pipeline.run.id" value="{run_id}"/></properties>
  <testcase classname="test_orders" name="test_place_order" time="0.4">
    <failure message="orders answered 502">AssertionError: orders answered 502</failure>
  </testcase>
  <testcase classname="test_contract" name="test_order_schema_published" time="0.1">
    <failure message="schema registry has no orders/v2">AssertionError: no orders/v2</failure>
    <system-out>checked trace_id={trace_id}</system-out>
  </testcase>
</testsuite>
""".encode()


@pytest.fixture(scope="module")
def with_junit(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the recording to which the daemon's drop folder added a JUnit report for one run."""
    import shutil
    import time

    from tests.daemon import DaemonProcess

    base = tmp_path_factory.mktemp("junit")
    db, folder = base / "triage.duckdb", base / "drop"
    folder.mkdir()
    shutil.copy(recording.db, db)
    run = recording.runs[JUNIT_RUN]
    (folder / "junit.xml").write_bytes(junit_report(run.run_id, run.explanation["failed_tests"][0]["trace_id"]))
    daemon = DaemonProcess(db, ["--watch", str(folder), "--settle-seconds", "0.3"]).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            code, out, _ = triage("files", "--daemon", daemon.address, "--json")
            if code == 0 and json.loads(out)["files"]:
                break
            time.sleep(0.2)
        assert json.loads(out)["files"][0]["status"] == "ingested", out
    finally:
        daemon.terminate()
    return db


@pytest.fixture(scope="module")
def chdb_url(recording: Recording, with_junit: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"chdb://{tmp_path_factory.mktemp('chdb')}/engine"
    client = clickhouse_connect.get_client(dsn=url)
    try:
        create_schema(client, CURRENT_DDL)
        create_schema(client, OLDER_DDL)
        load(recording.db, client, "otel")
        load(recording.db, client, "otel_old", old_spelling=True)
        client.command("CREATE DATABASE junit")
        for table in ("otel_traces", "otel_logs", "otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram"):
            client.command(f"CREATE TABLE junit.{table} AS otel.{table}")
        load(with_junit, client, "junit")
        # A database whose traces table lacks a column triage reads (StatusMessage).
        client.command("CREATE DATABASE broken")
        client.command("CREATE TABLE broken.otel_traces AS otel.otel_traces")
        client.command("ALTER TABLE broken.otel_traces DROP COLUMN StatusMessage")
    finally:
        client.close()
    yield url


def triage(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def explain_json(*source: str, run_id: str) -> dict:
    """The whole explanation, each failed test's ``history`` (the flaky verdict over earlier runs)
    included: from ClickHouse the earlier runs it re-scores are copied out in full too."""
    code, out, err = triage("explain", run_id, *source, "--json")
    assert code == 0, err
    return json.loads(out)


# Every example scenario, metrics_without_run_id included (its services' metric points carry no run
# id and join the run by service and time window, from ClickHouse as from a file).
MATCHED = list(ORDER)


@pytest.mark.parametrize("name", MATCHED)
def test_explain_from_clickhouse_equals_explain_from_the_file(recording: Recording, chdb_url: str,
                                                              name: str) -> None:
    run_id = recording.runs[name].run_id
    from_file = explain_json("--db", str(recording.db), run_id=run_id)
    from_clickhouse = explain_json("--clickhouse", chdb_url, run_id=run_id)
    assert from_clickhouse == from_file  # field for field: tests, causes, evidence, baseline, notes, history
    assert from_file["tests"] > 0 and from_file["run_id"] == run_id
    assert all(t["history"] is not None for t in from_file["failed_tests"])


def test_the_older_exporter_schema_explains_the_same(recording: Recording, chdb_url: str) -> None:
    """Duration Int64, SPAN_KIND_* / STATUS_CODE_* spellings, no trace-id lookup table, logs without
    EventName, sums with second-precision times."""
    for name in MATCHED:
        run_id = recording.runs[name].run_id
        from_file = explain_json("--db", str(recording.db), run_id=run_id)
        assert explain_json("--clickhouse", chdb_url, "--database", "otel_old", run_id=run_id) == from_file, name


def test_junit_reports_explain_the_same(recording: Recording, with_junit: Path, chdb_url: str) -> None:
    """The drop folder's JUnit spans (run id on their resource, as the exporter stores a resource)."""
    run_id = recording.runs[JUNIT_RUN].run_id
    from_file = explain_json("--db", str(with_junit), run_id=run_id)
    links = {t["test"]: t["link"] for t in from_file["failed_tests"]}
    assert links.get("test_contract.test_order_schema_published", "").startswith("from a JUnit report, tied to the trace")
    assert links.get("test_orders.py::test_place_order", "").startswith("a JUnit report names this test too")
    assert explain_json("--clickhouse", chdb_url, "--database", "junit", run_id=run_id) == from_file


def test_runs_lists_what_the_file_lists(recording: Recording, chdb_url: str) -> None:
    code, from_file, err = triage("runs", "--db", str(recording.db), "--json")
    assert code == 0, err
    code, from_clickhouse, err = triage("runs", "--clickhouse", chdb_url, "--json")
    assert code == 0, err
    assert json.loads(from_clickhouse)["runs"] == json.loads(from_file)["runs"]


def test_the_real_command_line(recording: Recording, chdb_url: str, tmp_path: Path) -> None:
    """Separate processes, the URL from TRIAGE_CLICKHOUSE: explain (markdown), wait and report."""
    run_id = recording.runs["propagated_error"].run_id
    env_run = [sys.executable, "-m", "otel_triage.cli"]

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([*env_run, *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, **(env or {})})

    from_file = run("explain", run_id, "--db", str(recording.db), "--format", "markdown")
    from_ch = run("explain", run_id, "--format", "markdown", env={"TRIAGE_CLICKHOUSE": chdb_url})
    assert from_ch.returncode == 0, from_ch.stderr
    assert from_ch.stdout == from_file.stdout
    assert "- history: " in from_ch.stdout
    waited = run("wait", run_id, "--clickhouse", chdb_url, "--timeout", "30", "--json", "--fail-on-failures")
    assert waited.returncode == 3, waited.stderr  # complete, with failed tests
    assert "complete (session-ended)" in waited.stderr
    assert json.loads(waited.stdout) == json.loads(run("explain", run_id, "--db", str(recording.db), "--json").stdout)
    page = tmp_path / "report.html"
    reported = run("report", run_id, "--clickhouse", chdb_url, "-o", str(page))
    assert reported.returncode == 0, reported.stderr
    html = page.read_text()
    assert "inventory" in html and "test_place_order" in html
    # The report is the user's file: made with the user's umask, not the in-memory store's private one.
    by_file = tmp_path / "by-file.html"
    assert run("report", run_id, "--db", str(recording.db), "-o", str(by_file)).returncode == 0
    assert page.stat().st_mode & 0o777 == by_file.stat().st_mode & 0o777
    # An explicit --db beats TRIAGE_CLICKHOUSE from the environment.
    listed = run("runs", "--db", str(recording.db), "--json", env={"TRIAGE_CLICKHOUSE": "chdb:///nonexistent"})
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, message", [
    (["--clickhouse", "http://127.0.0.1:{port}"], "cannot reach ClickHouse at http://127.0.0.1:"),
    (["--database", "nope"], "has no database 'nope'"),
    (["--table-prefix", "nope_"], "no table otel.nope_traces"),
    (["--database", "broken"], "broken.otel_traces lacks column(s) StatusMessage"),
    (["--max-spans", "50"], "more than 50 spans to extract: too large for memory"),
    (["--since", "1s"], "no spans with cicd.pipeline.run.id = 'e2e-clean'"),
])
def test_bad_sources_are_one_line_errors(recording: Recording, chdb_url: str, args: list[str], message: str) -> None:
    args = [a.format(port=closed_port()) for a in args]
    source = [] if "--clickhouse" in args else ["--clickhouse", chdb_url]
    code, out, err = triage("explain", recording.runs["clean"].run_id, *source, *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("Error: ") and message in err, err


@pytest.mark.parametrize("args, message", [
    (["--clickhouse", "tcp://127.0.0.1:9000"], "not tcp:// (the Collector's tcp://host:9000 is the native protocol"),
    (["--clickhouse", "chdb://relative/store"], "a chDB directory is given as chdb:///absolute/path"),
    (["--clickhouse", "./store.chdb"], "a chDB directory is given as chdb:///absolute/path"),
    (["--since", "0s"], "at least 1s and at most 36500d"),
    (["--since", "99999999d"], "at least 1s and at most 36500d"),
    (["--db", "x.duckdb"], "--clickhouse and --db name two sources"),
])
def test_a_source_that_cannot_be_one_is_a_usage_error(chdb_url: str, args: list[str], message: str) -> None:
    source = [] if "--clickhouse" in args else ["--clickhouse", chdb_url]
    code, out, err = triage("runs", *source, *args)
    assert code == 2 and out == "" and message in err, err
    assert err.splitlines()[-1].startswith("Error: ") and "Traceback" not in err


def test_a_chdb_directory_that_is_not_there_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.chdb"
    code, _, err = triage("runs", "--clickhouse", f"chdb://{missing}")
    assert code == 1 and err == f"Error: no chDB directory at {missing} (--clickhouse chdb://{missing})\n"
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_an_unknown_run_is_a_one_line_error(chdb_url: str) -> None:
    code, _, err = triage("explain", "no-such-run", "--clickhouse", chdb_url)
    assert code == 1 and err.count("\n") == 1
    assert "no spans with cicd.pipeline.run.id = 'no-such-run' in otel.otel_traces" in err


def test_without_the_optional_client_the_flag_says_what_to_install(tmp_path: Path) -> None:
    program = ("import sys; sys.modules['clickhouse_connect'] = None; "
               "from otel_triage.cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", program, "runs", "--clickhouse", "chdb:///nowhere"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == "Error: --clickhouse needs the optional ClickHouse client: pip install 'otel-triage[clickhouse]'\n"
    # ...and everything else works without it.
    proc = subprocess.run([sys.executable, "-c", program, "runs", "--db", str(tmp_path / "none.duckdb")],
                          capture_output=True, text=True, timeout=60)
    assert "does not exist" in proc.stderr


def test_edge_values_of_the_exporter_read_as_the_file_holds_them(chdb_url: str) -> None:
    """Histogram Min/Max the exporter wrote as 0 for a point without them read as absent (NULL); a
    real maximum stays; attribute values all strings; a trace without a lookup-table row still read."""
    from otel_triage.collector.clickhouse import ClickHouseOptions, Connection
    from otel_triage.collector.clickhouse_runs import extract_run

    client = clickhouse_connect.get_client(dsn=chdb_url)
    try:
        client.command("CREATE DATABASE IF NOT EXISTS edge")
        for table in ("otel_traces", "otel_metrics_histogram"):
            client.command(f"CREATE TABLE IF NOT EXISTS edge.{table} AS otel.{table}")
        client.command("""INSERT INTO edge.otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
            ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode, StatusMessage)
            VALUES (now64(9) - 60, 'aa', 'a1', '', 'test run', 'Internal', 'runner',
                    {'cicd.pipeline.run.id': 'edge-run'}, {'http.response.status_code': '503', 'retry': 'true'},
                    1000, 'Error', 'boom')""")
        client.command("""INSERT INTO edge.otel_metrics_histogram (ResourceAttributes, ServiceName, MetricName,
            MetricUnit, Attributes, TimeUnix, Count, Sum, BucketCounts, ExplicitBounds, Min, Max)
            VALUES ({'cicd.pipeline.run.id': 'edge-run'}, 'db', 'wait', 'ms', {}, now64(9) - 60, 4, 10, [4], [], 0, 0),
                   ({'cicd.pipeline.run.id': 'edge-run'}, 'db', 'wait', 'ms', {}, now64(9) - 59, 2, 8, [2], [], 1, 7)""")
    finally:
        client.close()
    conn = Connection(ClickHouseOptions(url=chdb_url, database="edge"))
    try:
        con = extract_run(conn, "edge-run")
    finally:
        conn.close()
    assert con.execute("SELECT Count, Min, Max FROM otel_metrics_histogram ORDER BY Count").fetchall() == [
        (2, 1.0, 7.0), (4, None, None)]
    assert con.execute("SELECT SpanKind, StatusCode, SpanAttributes::VARCHAR, RunId FROM otel_traces").fetchall() == [
        ("Internal", "Error", '{"http.response.status_code":"503","retry":"true"}', "edge-run")]
    con.close()
