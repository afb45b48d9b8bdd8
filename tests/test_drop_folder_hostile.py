"""Issue #14, drop folder and watcher: what a hostile or careless writer can put in a watched folder.

Each test runs the real daemon over a real folder: special files and links (a FIFO, a link to
/dev/zero, a link to a file outside the folder), a file re-read forever, a file appended after a
pause, JUnit reports with impossible numbers or a non-UTF-8 name, and a deep or wide tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_drop_folder import drop, files, wait_for_files, watching
from tests.test_receiver_errors import _request

pytestmark = pytest.mark.timeout(180)


def span_line(n: int, run_id: str = "drop-1") -> bytes:
    """One OTLP/JSON export request (a line of the Collector's file exporter) with one span."""
    doc = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}},
        {"key": "cicd.pipeline.run.id", "value": {"stringValue": run_id}}]},
        "scopeSpans": [{"spans": [{"traceId": f"{n + 1:032x}", "spanId": f"{n + 1:016x}", "name": f"op {n}",
                                   "startTimeUnixNano": str(1_700_000_000_000_000_000 + n),
                                   "endTimeUnixNano": str(1_700_000_000_000_000_000 + n + 1000), "kind": 2}]}]}]}
    return json.dumps(doc).encode() + b"\n"


def rchar(pid: int) -> int:
    """Bytes the process read through read(2) and friends so far (/proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_special_files_and_links_out_of_the_folder_are_refused_without_blocking(tmp_path, db_path):
    folder, outside = tmp_path / "drop", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    secret = outside / "secret.jsonl"
    secret.write_bytes(span_line(7, run_id="secret-run"))
    os.symlink("/dev/zero", folder / "z.json")  # unbounded: read whole, it took 3 GB in 10 s
    os.mkfifo(folder / "p.xml")  # opening it for reading blocks until a writer comes
    os.symlink(secret, folder / "leak.jsonl")  # leads outside the folder
    os.symlink(outside, folder / "linked-dir")  # a link to a folder outside: not walked
    (folder / "inside.jsonl").write_bytes(span_line(1))
    os.symlink(folder / "inside.jsonl", folder / "alias.jsonl")  # a link inside the folder: same content
    daemon = watching(db_path, folder)
    try:
        found = {Path(f["path"]).name: f for f in wait_for_files(daemon, 5)}
        # A FIFO created while the daemon runs (inotify sees it) must not block it either.
        os.mkfifo(folder / "late.json")
        drop(folder, "after.jsonl", span_line(2))
        found = {Path(f["path"]).name: f for f in wait_for_files(daemon, 7)}
        time.sleep(1.0)
        found = {Path(f["path"]).name: f for f in files(daemon)}
    finally:
        started = time.monotonic()
        assert daemon.terminate(timeout=30) == 0
        assert time.monotonic() - started < 20  # SIGTERM is not held up by a FIFO
    assert set(found) == {"z.json", "p.xml", "leak.jsonl", "linked-dir", "late.json", "inside.jsonl",
                          "after.jsonl"}, found
    assert "outside the watched folder" in found["linked-dir"]["error"]
    assert found["z.json"]["status"] == "rejected" and "a link to /dev/zero, outside" in found["z.json"]["error"]
    assert found["p.xml"]["status"] == "rejected" and "not a regular file" in found["p.xml"]["error"]
    assert found["late.json"]["status"] == "rejected" and "not a regular file" in found["late.json"]["error"]
    assert found["leak.jsonl"]["status"] == "rejected" and "outside the watched folder" in found["leak.jsonl"]["error"]
    assert (found["inside.jsonl"]["status"], found["after.jsonl"]["status"]) == ("ingested", "ingested")
    assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'secret-run'") == [(0,)]
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(2,)]


def test_an_ingested_file_is_not_read_again(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    daemon = watching(db_path, folder)
    try:
        drop(folder, "big.jsonl", b"".join(span_line(i) for i in range(2000)))  # ~800 kB
        wait_for_files(daemon, 1, timeout=120)
        time.sleep(1.0)
        before = rchar(daemon.pid)
        time.sleep(3.0)  # ten settle periods: before the fix it was re-read and hashed every second
        read = rchar(daemon.pid) - before
    finally:
        assert daemon.terminate() == 0
    size = (folder / "big.jsonl").stat().st_size
    assert read < size // 4, f"the daemon read {read} bytes of a {size}-byte file it had already taken in"


def test_a_file_appended_after_a_pause_stores_only_the_new_lines(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    log = folder / "export.jsonl"
    log.write_bytes(span_line(0) + span_line(1))
    daemon = watching(db_path, folder)
    try:
        (first,) = wait_for_files(daemon, 1)
        assert first["items"] == 2
        with log.open("ab") as f:  # the Collector's file exporter goes on writing after a pause
            f.write(span_line(2) + span_line(3) + span_line(4))
        rows = wait_for_files(daemon, 2)
    finally:
        assert daemon.terminate() == 0
    assert sorted(r["items"] for r in rows) == [2, 3]
    assert query(db_path, "SELECT count(*), count(DISTINCT SpanId) FROM otel_traces") == [(5, 5)]
    # Over a restart too: the appended file is not taken again, and a further append adds only itself.
    with log.open("ab") as f:
        f.write(span_line(5))
    daemon = watching(db_path, folder)
    try:
        rows = wait_for_files(daemon, 3)
        time.sleep(1.0)
        assert len(files(daemon)) == 3
    finally:
        assert daemon.terminate() == 0
    assert query(db_path, "SELECT count(*), count(DISTINCT SpanId) FROM otel_traces") == [(6, 6)]


JUNIT = """<?xml version="1.0"?>
<testsuites><testsuite name="s" {attrs}>
<testcase classname="c" name="{name}" time="{time}"><failure message="boom">trace</failure></testcase>
<testcase classname="c" name="ok" time="0.1"/>
</testsuite></testsuites>"""


def test_junit_with_impossible_numbers_or_a_non_utf8_name_is_recorded_once(tmp_path, db_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    drop(folder, "inf.xml", JUNIT.format(attrs="", name="t_inf", time="inf").encode())
    drop(folder, "nan.xml", JUNIT.format(attrs="", name="t_nan", time="nan").encode())
    drop(folder, "huge.xml", JUNIT.format(attrs="", name="t_huge", time="1e300").encode())
    drop(folder, "y2300.xml", JUNIT.format(attrs='timestamp="2300-01-01T00:00:00"', name="t_2300", time="1").encode())
    drop(folder, "y9999.xml", JUNIT.format(attrs='timestamp="9999-12-31T23:59:59"', name="t_9999", time="1").encode())
    raw = os.fsencode(folder) + b"/report-\xff\xfe.xml"  # not UTF-8: legal on Linux
    with open(raw, "wb") as f:
        f.write(JUNIT.format(attrs="", name="t_bytes", time="1").encode())
    daemon = watching(db_path, folder, "--run-id", "junit-1")
    try:
        rows = wait_for_files(daemon, 6)
        time.sleep(2.0)  # several settle periods: nothing is retried
        rows = files(daemon)
    finally:
        assert daemon.terminate() == 0
    assert len(rows) == 6, rows
    assert all(r["status"] == "ingested" for r in rows), rows
    assert "Traceback" not in daemon.stderr, daemon.stderr[-3000:]
    assert any("report-\ufffd\ufffd.xml" in r["path"] for r in rows), [r["path"] for r in rows]
    names = dict(query(db_path, "SELECT SpanAttributes->>'$.\"test.case.name\"', epoch_ns(Timestamp) + Duration "
                                "FROM otel_traces WHERE SpanName LIKE 'c.t_%'"))
    assert set(names) == {"c.t_inf", "c.t_nan", "c.t_huge", "c.t_2300", "c.t_9999", "c.t_bytes"}
    assert all(0 < end < 2**63 for end in names.values()), names


@pytest.fixture
def deep_tree(tmp_path):
    """A 1000-level tree under tmp_path/drop, removed by `rm -rf`: pytest's own cleanup of old temp
    folders (shutil.rmtree) recurses and would fail on it for every later test session."""
    folder = tmp_path / "drop"
    deep = folder
    for _ in range(1000):  # 1000 levels: 2 characters each keeps the path under PATH_MAX
        deep = deep / "d"
    subprocess.run(["mkdir", "-p", str(deep)], check=True)  # pathlib's mkdir(parents=True) recurses
    yield folder, deep
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_deep_and_wide_trees_are_walked_without_recursion_or_floods(deep_tree, db_path):
    folder, deep = deep_tree
    (deep / "deep-before.jsonl").write_bytes(span_line(1))
    wide = folder / "wide"
    for i in range(10_000):
        (wide / f"w{i}").mkdir(parents=True)
    daemon = watching(db_path, folder)
    try:
        wait_for_files(daemon, 1, timeout=60)
        drop(wide / "w9999", "wide-after.jsonl", span_line(2))
        (deep / "deep-after.jsonl").write_bytes(span_line(3))
        rows = wait_for_files(daemon, 3, timeout=60)
    finally:
        assert daemon.terminate() == 0
    assert sorted(Path(r["path"]).name for r in rows) == ["deep-after.jsonl", "deep-before.jsonl", "wide-after.jsonl"]
    assert len(daemon.stderr) < 20_000, daemon.stderr[-3000:]
    assert "RecursionError" not in daemon.stderr
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(3,)]


def test_the_database_its_wal_and_its_spool_are_private_to_the_daemons_user(tmp_path):
    """Created 0600 whatever the umask the daemon was started with (here 022, the usual one)."""
    db = tmp_path / "private.duckdb"
    old = os.umask(0o022)
    try:
        daemon = DaemonProcess(db).start()
    finally:
        os.umask(old)
    try:
        otlp.export_request(daemon.address, _request(3))  # committed: the WAL exists now
        wal, spool = Path(f"{db}.wal"), Path(f"{db}.spool")
        assert wal.exists()
        modes = {p.name: p.stat().st_mode & 0o777 for p in (db, wal, spool)}
        # Acknowledged rows wait in the spool for up to 2 s: any segment there is private too.
        segments = {p.name: p.stat().st_mode & 0o777 for p in spool.glob("*.arrows")}
    finally:
        assert daemon.terminate() == 0
    assert modes == {"private.duckdb": 0o600, "private.duckdb.wal": 0o600, "private.duckdb.spool": 0o700}, \
        {k: oct(v) for k, v in modes.items()}
    assert set(segments.values()) <= {0o600}
    assert db.stat().st_mode & 0o777 == 0o600
