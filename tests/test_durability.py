"""Acknowledged means durable: an OK answer survives kill -9, and SIGTERM drains before exiting."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import threading
from pathlib import Path

import grpc
import pytest

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_receiver_errors import _request


def test_kill_9_right_after_ok_loses_nothing(daemon, db_path):
    acked = 0
    for i in range(1, 41):
        otlp.export_request(daemon.address, _request(250, trace_byte=i))
        acked += 250
    daemon.kill()  # SIGKILL: no drain, no checkpoint; only what was committed survives
    assert query(db_path, "SELECT count(*) FROM otel_traces")[0][0] == acked
    # The file is still a valid triage store: a new daemon opens it and keeps appending.
    again = DaemonProcess(db_path).start()
    otlp.export_request(again.address, _request(5, trace_byte=99))
    assert again.terminate() == 0
    assert not Path(f"{db_path}.spool").exists()  # a clean stop leaves every row in the file
    assert query(db_path, "SELECT count(*) FROM otel_traces")[0][0] == acked + 5


def test_sigterm_drains_in_flight_exports_and_exits_zero(daemon, db_path):
    outcomes: list[str] = []

    def sender(byte: int) -> None:
        for i in range(20):
            try:
                otlp.export_request(daemon.address, _request(500, trace_byte=(byte * 20 + i) % 256 or 1))
                outcomes.append("ok")
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)
                return

    threads = [threading.Thread(target=sender, args=(b,)) for b in range(1, 5)]
    for t in threads:
        t.start()
    while outcomes.count("ok") < 8:
        threading.Event().wait(0.01)
    assert daemon.terminate() == 0
    for t in threads:
        t.join()
    stored = query(db_path, "SELECT count(*) FROM otel_traces")[0][0]
    # Every OK is in the file. Calls that raced the shutdown were refused with a code the exporters
    # retry (UNAVAILABLE from triage, CANCELLED from gRPC core for calls arriving as the port closes).
    assert stored >= outcomes.count("ok") * 500
    assert set(outcomes) <= {"ok", "UNAVAILABLE", "CANCELLED"}


_TGKILL = {"x86_64": 234, "aarch64": 131}  # syscall numbers: a signal to one thread of another process


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() not in _TGKILL, reason="Linux tgkill")
def _blocks(pid: int, tid: int, sig: int) -> bool:
    """Whether thread ``tid`` blocks ``sig`` (its SigBlk mask; the daemon may inherit other blocked
    signals from whoever started it, so only this signal's bit counts)."""
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return bool(mask >> (sig - 1) & 1)


def test_sigterm_that_lands_on_another_thread_still_stops_the_daemon(daemon, db_path):
    """A process-directed SIGTERM may be delivered to any thread that does not block it; then it does
    not interrupt the main thread's wait, and the daemon must still notice it (it once sat an hour)."""
    otlp.export_request(daemon.address, _request(5, trace_byte=7))
    main = daemon.pid
    others = [int(t) for t in os.listdir(f"/proc/{main}/task") if int(t) != main]
    unblocked = [t for t in others if not _blocks(main, t, signal.SIGTERM)]
    assert unblocked, "no thread but the main one can take SIGTERM: the case cannot happen"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(_TGKILL[platform.machine()], main, unblocked[-1], signal.SIGTERM) == 0
    assert daemon.proc.wait(30) == 0
    assert query(db_path, "SELECT count(*) FROM otel_traces")[0][0] == 5
