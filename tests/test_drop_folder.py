"""`triage serve --watch DIR` with the real daemon: real pytest --junitxml reports and OTLP/JSON
files dropped the ways writers drop them (atomic rename, slow writes), exactly once across a
restart, and every kind of bad file reported while the rest of the folder still goes in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_cli import triage
from tests.test_junit import SUITE, pytest_report

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = pytest.mark.timeout(120)


def watching(db: Path, folder: Path, *extra: str) -> DaemonProcess:
    return DaemonProcess(db, ["--watch", str(folder), "--settle-seconds", "0.3", *extra]).start()


def files(daemon: DaemonProcess) -> list[dict]:
    return json.loads(triage("files", "--daemon", daemon.address, "--json").stdout)["files"]


def wait_for_files(daemon: DaemonProcess, count: int, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = files(daemon)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} ledger rows, got {files(daemon)}\n{daemon.stderr}")


def drop(folder: Path, name: str, data: bytes) -> Path:
    """The way careful writers do it: write a temporary name, then rename into place."""
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    final = folder / name
    os.replace(tmp, final)
    return final


def test_a_real_pytest_report_becomes_the_runs_tests_exactly_once(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    report = pytest_report(tmp_path / "suite")
    drop(folder, "report.xml", report)
    daemon = watching(db_path, folder, "--run-id", "ci-42")
    (row,) = wait_for_files(daemon, 1)
    assert (row["status"], row["format"], row["items"], row["run_id"]) == ("ingested", "junit", 4, "ci-42")
    runs = json.loads(triage("runs", "--daemon", daemon.address, "--json").stdout)["runs"]
    (run,) = [r for r in runs if r["run_id"] == "ci-42"]
    assert (run["tests"], run["failed_tests"]) == (4, 2)
    explanation = json.loads(triage("explain", "ci-42", "--daemon", daemon.address, "--json").stdout)
    failed = {t["test"]: t for t in explanation["failed_tests"]}
    assert set(failed) == {"test_shop.test_fails", "test_shop.test_errors"}
    assert "checkout answered 503" in failed["test_shop.test_fails"]["message"]
    assert failed["test_shop.test_fails"]["link"].startswith("from a JUnit report that names no trace")
    # A JUnit report for a run means the run is over (docs/sharing.md, "Run completion").
    waited = triage("wait", "ci-42", "--daemon", daemon.address, "--timeout", "10", "--format", "json")
    assert "complete (junit-report)" in waited.stderr
    assert daemon.terminate() == 0

    # A restart over the same folder takes in nothing twice; a copy under another name neither.
    spans = query(db_path, "SELECT count(*) FROM otel_traces")[0][0]
    drop(folder, "report-copy.xml", report)
    daemon = watching(db_path, folder, "--run-id", "ci-42")
    time.sleep(1.5)
    assert len(files(daemon)) == 1
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT count(*) FROM otel_traces")[0][0] == spans == 4


def test_otlp_json_lines_and_a_file_still_growing(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    daemon = watching(db_path, folder)
    lines = (FIXTURES / "otlp-json" / "proto-examples.jsonl").read_bytes().splitlines(keepends=True)
    growing = folder / "export.jsonl"
    with growing.open("wb") as f:  # a writer appending slowly, as the Collector's file exporter does
        for line in lines:
            f.write(line)
            f.flush()
            time.sleep(0.15)
    (row,) = wait_for_files(daemon, 1)
    assert daemon.terminate() == 0
    assert (row["status"], row["format"], row["items"]) == ("ingested", "otlp-json", 5)  # 1 span, 1 log, 3 points
    (span,) = query(db_path, "SELECT TraceId, SpanId, ParentSpanId, SpanKind, ServiceName FROM otel_traces")
    assert span == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b173", "Server", "my.service")
    (log,) = query(db_path, "SELECT TraceId, Body, LogAttributes->>'$.\"int.attribute\"' FROM otel_logs")
    assert log == ("5b8efff798038103d269b633813fc60c", "Example log record", "10")
    assert query(db_path, "SELECT Value FROM otel_metrics_gauge") == [(10.0,)]
    assert query(db_path, "SELECT Count, Sum FROM otel_metrics_histogram") == [(3, 3.0)]


def test_bad_files_are_reported_and_the_rest_still_goes_in(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    good = (FIXTURES / "otlp-json" / "proto-examples.jsonl").read_bytes()
    drop(folder, "malformed.xml", b"<testsuites><testsuite name='x'><testcase name='a'></testsuite>")
    drop(folder, "bomb.xml", b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                              b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                              b"<testsuites><testsuite name='&lol1;'/></testsuites>")
    drop(folder, "truncated.jsonl", good + good.splitlines()[0][:150] + b"\n")
    drop(folder, "binary.json", bytes(range(256)) * 8)
    big = folder / "huge.jsonl"
    subprocess.run(["truncate", "-s", "3M", str(big)], check=True)  # sparse: a big file without the disk
    drop(folder, "surefire.xml", (FIXTURES / "junit" / "surefire.xml").read_bytes())
    daemon = watching(db_path, folder, "--max-file-bytes", str(2 << 20))
    found = {Path(f["path"]).name: f for f in wait_for_files(daemon, 6)}
    assert found["malformed.xml"]["status"] == "rejected" and "not well-formed" in found["malformed.xml"]["error"]
    assert found["bomb.xml"]["status"] == "rejected" and "declares entities" in found["bomb.xml"]["error"]
    assert found["truncated.jsonl"]["status"] == "partial" and found["truncated.jsonl"]["items"] == 5
    assert found["truncated.jsonl"]["error"].startswith("line 4: ")
    assert found["binary.json"]["status"] == "rejected" and "neither JUnit XML nor OTLP/JSON" in found["binary.json"]["error"]
    assert found["huge.jsonl"]["status"] == "rejected" and "over --max-file-bytes" in found["huge.jsonl"]["error"]
    assert (found["surefire.xml"]["status"], found["surefire.xml"]["run_id"]) == ("ingested", "maven-77")
    # The daemon still serves, and the rejected files are not retried on the next scan.
    out = triage("files", "--daemon", daemon.address)
    assert "rejected" in out.stdout and "huge.jsonl" in out.stdout
    assert daemon.terminate() == 0
    explanation = json.loads(triage("explain", "maven-77", "--db", str(db_path), "--json").stdout)
    (failed,) = explanation["failed_tests"]
    assert failed["test"] == "com.shop.OrderServiceIT.cancelsOrder"
    assert (failed["exception_type"], failed["message"]) == ("java.net.ConnectException", "Connection refused")
    assert "tied to the trace whose id the report carries" in failed["link"]


def test_a_report_and_pytest_opentelemetry_spans_of_the_same_tests_are_listed_once(tmp_path, db_path):
    """The same pytest session exports its spans (pytest-opentelemetry) and writes --junitxml: the
    report joins the spans' run by test names and confirms those tests instead of doubling them."""
    folder = tmp_path / "drop"
    folder.mkdir()
    daemon = watching(db_path, folder)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_shop.py").write_text(SUITE)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{daemon.address}", "OTEL_EXPORTER_OTLP_INSECURE": "true",
           "OTEL_RESOURCE_ATTRIBUTES": "cicd.pipeline.run.id=spans-7,service.name=integration-tests"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--export-traces",
                    f"--junitxml={tmp_path / 'report.xml'}", str(suite / "test_shop.py")],
                   cwd=suite, env=env, capture_output=True, check=False, timeout=120)
    drop(folder, "report.xml", (tmp_path / "report.xml").read_bytes())
    (row,) = wait_for_files(daemon, 1)
    assert (row["status"], row["run_id"]) == ("ingested", "spans-7")  # matched by test names
    assert daemon.terminate() == 0
    explanation = json.loads(triage("explain", "spans-7", "--db", str(db_path), "--json").stdout)
    failed = sorted((t["test"], t["link"]) for t in explanation["failed_tests"])
    confirmed = "a JUnit report names this test too (matched by its normalised name): certain"
    assert failed == [("test_shop.py::test_errors", confirmed), ("test_shop.py::test_fails", confirmed)]
    assert explanation["tests"] == 4
