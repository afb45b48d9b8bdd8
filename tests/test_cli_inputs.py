"""Bad command-line input a probe of the real CLI found: each gets one line and a non-zero exit, never
a traceback, and nothing stored is lost (the report once overwrote the database it was made from)."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from tests.test_cli import _fill, triage


@pytest.fixture
def filled(daemon, db_path):
    """A file with run ``r`` in it, no daemon holding it."""
    _fill(daemon.address)
    assert daemon.terminate() == 0
    return db_path


def _one_line_error(proc: subprocess.CompletedProcess, status: int = 1) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_a_report_is_never_written_over_a_database(filled, tmp_path):
    err = _one_line_error(triage("report", "r", "--db", str(filled), "-o", str(filled), check=False))
    assert "is a DuckDB database" in err
    assert "r" in triage("runs", "--db", str(filled)).stdout  # every run still there
    err = _one_line_error(triage("report", "r", "--db", str(filled), "-o", str(tmp_path / "no" / "x.html"),
                                 check=False))
    assert err.strip().startswith("Error: cannot write") and len(err.strip().splitlines()) == 1
    triage("report", "r", "--db", str(filled), "-o", str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").read_text().startswith("<!")


def test_an_answer_that_cannot_be_written_is_one_line(filled):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "otel_triage.cli", "runs", "--db", str(filled), "--json"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip() == "Error: No space left on device"


def test_arguments_that_are_not_utf8_are_refused_at_once(filled):
    for args in ([b"explain", b"--db", str(filled).encode(), b"run\xff"], [b"serve", b"--run-id", b"x\xff"]):
        proc = subprocess.run([sys.executable.encode(), b"-m", b"otel_triage.cli", *args], capture_output=True,
                              text=True, timeout=120)
        assert "not valid UTF-8" in _one_line_error(proc, 2)


@pytest.mark.parametrize("args", [
    ("prune", "--older-than", "inf"), ("prune", "--older-than", "nan"), ("prune", "--older-than", "1e300"),
    ("wait", "r", "--timeout", "nan"), ("serve", "--retain-days", "inf"), ("serve", "--settle-seconds", "nan"),
    ("serve", "--max-request-bytes", "0"), ("serve", "--max-item-bytes", "-1"), ("serve", "--decode-workers", "-1"),
    ("serve", "--listen", "127.0.0.1:70000"), ("serve", "--listen-http", "127.0.0.1:99999"),
    ("runs", "--daemon", "127.0.0.1:70000"), ("prune", "--daemon", "127.0.0.1:65536", "--keep-runs", "1"),
    # DuckDB takes -5MB as no limit at all, and abc or 1KB as one no query fits in
    ("serve", "--db-memory-limit", "-5MB"), ("serve", "--db-memory-limit", "abc"), ("serve", "--db-memory-limit", "1KB"),
], ids=lambda a: " ".join(a))
def test_numbers_out_of_range_are_usage_errors(filled, tmp_path, args):
    """NaN and infinity passed click's ranges (a retention pass that failed every 10 min for ever,
    files never taken in, a traceback); a port over 65535 wrapped round to another port."""
    db = ["--db", str(tmp_path / "other.duckdb")] if args[0] == "serve" else ["--db", str(filled)]
    proc = triage(*args, *db, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("Error: Invalid value for"), proc.stderr
    assert not (tmp_path / "other.duckdb").exists()


def test_a_token_that_cannot_travel_in_a_header_is_refused_on_both_sides(filled, tmp_path):
    token = tmp_path / "tok"
    token.write_text("tök\n", encoding="utf-8")
    err = _one_line_error(triage("serve", "--db", str(tmp_path / "t.duckdb"), "--auth-token-file", str(token),
                                 check=False))
    assert "printable ASCII" in err
    err = _one_line_error(triage("runs", "--daemon", "127.0.0.1:9", "--auth-token-file", str(token), check=False), 2)
    assert "printable ASCII" in err


@pytest.mark.parametrize("theirs", [
    ["CREATE TABLE users (id INT)"],
    ["CREATE TABLE otel_traces (a INT)"],  # named like ours: the upgrade used to fail with a traceback
    ["CREATE TABLE t (a INT)", "CREATE VIEW v AS SELECT * FROM t"],
])
def test_a_database_triage_did_not_create_is_refused_and_left_as_it_was(tmp_path, theirs):
    path = tmp_path / "theirs.duckdb"
    con = duckdb.connect(str(path))
    for statement in theirs:
        con.execute(statement)
    before = con.execute("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() "
                         "WHERE NOT internal ORDER BY 1").fetchall()
    con.close()
    for command in (["runs", "--db", str(path)], ["serve", "--db", str(path), "--listen", "127.0.0.1:0"]):
        err = _one_line_error(triage(*command, check=False))
        assert "triage did not create" in err and len(err.strip().splitlines()) == 1, err
    con = duckdb.connect(str(path), read_only=True)
    after = con.execute("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() "
                        "WHERE NOT internal ORDER BY 1").fetchall()
    con.close()
    assert after == before
    assert not (tmp_path / "theirs.duckdb.spool").exists()


def test_an_unknown_run_id_of_100k_characters_is_named_in_an_answer_that_arrives(daemon):
    """The daemon's answer quotes the run id; whole, it overflowed gRPC's 16 KiB limit on trailing
    metadata and the client saw a transport error instead."""
    err = _one_line_error(triage("explain", "x" * 100_000, "--daemon", daemon.address, check=False))
    assert "unknown run id 'xxxx" in err and "characters cut" in err, err[:300]
    assert len(err) < 5000
