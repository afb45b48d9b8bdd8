"""`triage prune --daemon HOST:PORT`: prune the file a running daemon holds, through it (the Prune RPC),
behind its token like every other query, with the same answer `triage prune --db` gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from otel_triage.proto import triage_pb2, triage_pb2_grpc

from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.sharing_run import send_run

TOKEN = "prune-token"
RUNS = ("old-1", "mid-2", "new-3")


def _triage(*args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TRIAGE_AUTH_TOKEN", "TRIAGE_TLS_CA")}
    if token:
        env["TRIAGE_AUTH_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "otel_triage.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def _serve(db: Path, quiet: float = 1) -> DaemonProcess:
    os.environ["TRIAGE_AUTH_TOKEN"] = TOKEN  # the daemon's token (env, as documented)
    try:
        return DaemonProcess(db, ["--quiet-period", str(quiet)]).start()
    finally:
        del os.environ["TRIAGE_AUTH_TOKEN"]


def test_prune_through_the_daemon_answers_as_prune_db(tmp_path: Path, db_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")  # send_run's SDK
    daemon = _serve(db_path)
    try:
        for run in RUNS:
            send_run(daemon.address, run)
            waited = _triage("wait", run, "--daemon", daemon.address, "--timeout", "60", token=TOKEN)
            assert "complete" in waited.stderr, waited.stderr  # its completion row is written now, not later
            time.sleep(0.05)  # last-seen times strictly ordered
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    twin = tmp_path / "twin.duckdb"
    shutil.copy(db_path, twin)
    by_file = json.loads(_triage("prune", "--db", str(twin), "--keep-runs", "1", "--json").stdout)

    daemon = _serve(db_path)
    try:
        refused = _triage("prune", "--daemon", daemon.address, "--keep-runs", "1")
        assert refused.returncode == 1 and "refused the request" in refused.stderr, refused.stderr
        assert query_runs(daemon.address) == sorted(RUNS)  # nothing went

        done = _triage("prune", "--daemon", daemon.address, "--keep-runs", "1", "--json", token=TOKEN)
        assert done.returncode == 0, done.stderr
        by_daemon = json.loads(done.stdout)
        assert set(by_daemon) == set(by_file) == {"runs", "rows", "summary", "bytes_before", "bytes_after"}
        assert {k: by_daemon[k] for k in ("runs", "rows", "summary")} == {
            k: by_file[k] for k in ("runs", "rows", "summary")}
        assert by_daemon["runs"] == ["old-1", "mid-2"] and by_daemon["rows"]["otel_traces"] > 0
        assert by_daemon["bytes_before"] > 0 and by_daemon["bytes_after"] > 0

        again = _triage("prune", "--daemon", daemon.address, "--keep-runs", "1", token=TOKEN)
        assert again.returncode == 0 and again.stdout.startswith("triage: nothing to prune; ")
        assert str(db_path) in again.stdout and " bytes" in again.stdout
        assert query_runs(daemon.address) == ["new-3"]
        send_run(daemon.address, "after-prune")  # still taking data
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    left = query(db_path, "SELECT DISTINCT RunId FROM otel_traces WHERE RunId IS NOT NULL ORDER BY 1")
    assert left == [("after-prune",), ("new-3",)]


def query_runs(address: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        runs = triage_pb2_grpc.TriageStub(channel).ListRuns(
            triage_pb2.ListRunsRequest(), metadata=[("authorization", f"Bearer {TOKEN}")], timeout=30).runs
    return sorted(r.run_id for r in runs)


@pytest.mark.parametrize("request_fields, words", [
    ({}, "say what to keep"),
    ({"keep_runs": -1}, "at least 1 run"),
    ({"older_than_days": -2.0}, "more than 0 days"),
    ({"older_than_days": float("nan")}, "give a number of days"),
    ({"older_than_days": float("inf")}, "give a number of days"),
])
def test_a_bad_prune_request_is_invalid_argument(db_path: Path, request_fields: dict, words: str) -> None:
    daemon = _serve(db_path)
    try:
        with grpc.insecure_channel(daemon.address) as channel:
            with pytest.raises(grpc.RpcError) as info:
                triage_pb2_grpc.TriageStub(channel).Prune(
                    triage_pb2.PruneRequest(**request_fields), metadata=[("authorization", f"Bearer {TOKEN}")],
                    timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in info.value.details()
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_a_run_pruned_while_open_does_not_come_back_as_complete(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs pruned before their completion fell due: the daemon's completion tracker forgets them, so no
    completion row brings a deleted run back (it would count as the newest run at the next prune)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    daemon = _serve(db_path, quiet=600)  # none completes in this session, however slow the machine
    try:
        for run in RUNS:
            send_run(daemon.address, run)
            time.sleep(0.05)
        daemon.kill()  # before any run completed: the next start finds them open
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert query(db_path, "SELECT count(*) FROM triage_run_completion") == [(0,)]
    daemon = _serve(db_path, quiet=3)  # the open runs fall due 3 s after the start: the prune comes first
    try:
        done = _triage("prune", "--daemon", daemon.address, "--keep-runs", "1", "--json", token=TOKEN)
        pruned = json.loads(done.stdout)["runs"]
        (kept,) = set(RUNS) - set(pruned)
        waited = _triage("wait", kept, "--daemon", daemon.address, "--timeout", "60", token=TOKEN)
        assert "complete" in waited.stderr, waited.stderr
        time.sleep(6)  # two quiet periods: a pruned run still tracked would have completed by now
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert query(db_path, "SELECT RunId FROM triage_run_completion") == [(kept,)]


def test_a_run_still_arriving_outranks_an_older_run_that_completed_since(db_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's age is its newest data, not when the daemon declared it complete: `old` ends its session
    and completes after `new` (still going) sent its spans; keeping one run must keep `new`."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"authorization=Bearer%20{TOKEN}")
    daemon = _serve(db_path, quiet=600)  # `new` stays open for the whole test
    try:
        send_run(daemon.address, "old")  # its session ends: complete once the settle time has passed
        time.sleep(0.05)
        send_run(daemon.address, "new", end_session=False)
        waited = _triage("wait", "old", "--daemon", daemon.address, "--timeout", "60", token=TOKEN)
        assert "complete" in waited.stderr, waited.stderr
        assert query_daemon_runs(daemon.address) == {"old", "new"}
        done = _triage("prune", "--daemon", daemon.address, "--keep-runs", "1", "--json", token=TOKEN)
        assert json.loads(done.stdout)["runs"] == ["old"], done.stdout + done.stderr
        assert query_daemon_runs(daemon.address) == {"new"}
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def query_daemon_runs(address: str) -> set[str]:
    listed = _triage("runs", "--daemon", address, "--json", token=TOKEN)
    return {r["run_id"] for r in json.loads(listed.stdout)["runs"]}


def test_prune_counts_the_write_ahead_log_and_the_spool(db_path: Path) -> None:
    """After a crash, rows live in the WAL and the ingest spool, not in the file: bytes_before counts
    them, so a prune (which checkpoints them into the file) does not report the store growing."""
    daemon = DaemonProcess(db_path, ["--quiet-period", "600"]).start()
    try:
        for run in RUNS:
            send_run(daemon.address, run, end_session=False)
    finally:
        daemon.kill()
    spool_dir = Path(os.path.realpath(db_path) + ".spool")
    parts = [db_path, Path(f"{db_path}.wal"), *(spool_dir.iterdir() if spool_dir.is_dir() else [])]
    on_disk = sum(p.stat().st_size for p in parts if p.exists())
    assert on_disk > db_path.stat().st_size  # the WAL or the spool holds rows
    done = _triage("prune", "--db", str(db_path), "--keep-runs", "1", "--json")
    found = json.loads(done.stdout)
    assert found["bytes_before"] == on_disk and len(found["runs"]) == 2, done.stdout + done.stderr
