"""Acknowledged means durable: an OK answer survives kill -9, and SIGTERM drains before exiting."""

from __future__ import annotations

import threading

import grpc

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
